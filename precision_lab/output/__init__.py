"""Output: labels and styles, tables, the one-screen summary, plots, progress and
writers (JSON, CSV), over finished rows."""

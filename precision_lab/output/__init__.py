"""Output: labels and styles, tables, the one-screen summary, plots, progress and
writers (JSON, CSV), over finished rows."""

from . import csv_writer  # noqa: E402,F401  (the writers register themselves)

"""`precision-lab list`: every registered family with its forms, and the formats."""

from __future__ import annotations

from rich.table import Table

from ..families import registry
from ..numerics import formats
from .running import console


def list_all() -> int:
    out = console(False)
    for kind in registry.KINDS.values():
        fam = kind.family()
        t = Table(title=f"family {kind.name} (axis {kind.axis_help}): {kind.title}", title_justify="left")
        t.add_column("form", no_wrap=True)
        for col in ("quantity", "formula", "library call"):
            t.add_column(col)
        for f in fam.forms + fam.factors:
            t.add_row(f.name, f.quantity + (" (by name)" if f in fam.factors else ""), f.summary, f.library or "")
        out.print(t)
    t = Table(title="formats", title_justify="left")
    t.add_column("format", no_wrap=True)
    for col in ("bits", "eps", "max", "min subnormal", "∞", "swept", "default"):
        t.add_column(col)
    for f in formats.FORMATS.values():
        t.add_row(f.name, str(f.bits), f"{f.eps:.3g}", f"{f.max:.4g}", f"{f.smallest_subnormal:.3g}",
                  "yes" if f.has_inf else "no", "every value" if f.exhaustive else "sampled",
                  "yes" if f.name in formats.DEFAULT_FORMATS else "")
    out.print(t)
    return 0

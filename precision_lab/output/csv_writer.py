"""CSV: one line per row, its identity and its figures, for spreadsheets and dataframes.

Columns: the row's key (family, form, quantity, dtype, compute_dtype, target,
classes, sweep, target_class, range), the run's settings that shape it (mode,
floor, loss_scale), then its figures: points, exhaustive, the count of each class
(and of zeros whose exact value is subnormal), the largest error in ULPs, and each
failure class's onset on both sides with how it was found. Non-finite numbers are
written as nan, inf and -inf; an absent value as an empty cell.
"""

from __future__ import annotations

import csv
from typing import IO

from ..engine.rows import IDENTITY, rows_of
from ..numerics.classify import CLASSES, FAILURES
from .writers import Writer, jsonable, register

COUNTS = (*CLASSES, "zero_subnormal", "zero_negligible")


def columns() -> list[str]:
    return [*IDENTITY, "mode", "floor", "loss_scale", "points", "exhaustive", *(f"count_{c}" for c in COUNTS),
            "max_ulp", *(f"onset_{c}_{side}{what}" for c in FAILURES for side in ("neg", "pos")
                         for what in ("", "_method"))]


def line(row) -> list:
    """A row's cells, in the order of `columns`."""
    key = row.key
    cells = [getattr(key, f) for f in IDENTITY] + [row.mode, row.floor, row.loss_scale, row.points, row.exhaustive]
    cells += [row.counts.get(c, 0) for c in COUNTS] + [row.max_ulp]
    for c in FAILURES:
        onset = row.onset.get(c) or {}
        method = onset.get("method") or {}
        for side in ("neg", "pos"):
            cells += [onset.get(side), method.get(side)]
    return ["" if v is None else (f"{v[0]:g},{v[1]:g}" if isinstance(v, tuple) else jsonable(v)) for v in cells]


def write(doc: dict, stream: IO[str]) -> None:
    out = csv.writer(stream, lineterminator="\n")
    out.writerow(columns())
    for row in rows_of(doc["rows"]):
        out.writerow(line(row))


CSV = register(Writer("csv", "also write one CSV line per row (its identity and figures) to PATH "
                             "(atomically; - for stdout)", write))

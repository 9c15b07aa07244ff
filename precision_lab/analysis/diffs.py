"""What changed between two sweeps: rows matched by what they measure, compared on
what they found.

Two JSON documents of `sweep` or `check` (two backends, two jax versions, two modes, a
loss before and after a change) are matched row by row on the row's identity (its key:
family, form, quantity, format, target or softmax case, range); matched rows are compared on their
figures: counts per class, onsets (value and method, per side), listed intervals and
the largest ULP error. Run settings (versions, flags, dates) are not figures; they are
shown beside the differences, since they usually explain them.
"""

from __future__ import annotations

import dataclasses
import json

from ..engine.rows import RowKey
from ..errors import InputError

FIGURES = ("points", "exhaustive", "counts", "onset", "intervals", "max_ulp")
SCHEMAS = ("precision_lab.sweep/1", "precision_lab.sweep/2")
SETTINGS = ("backend", "device_kind", "device_count", "process_count", "jax", "jaxlib", "ml_dtypes", "precision_lab",
            "xla_flags", "mode", "floor", "tolerance_ulp", "seed")


@dataclasses.dataclass
class Change:
    """One figure of one row that differs: its path in the row, and both values."""

    row: str
    field: str
    a: object
    b: object


@dataclasses.dataclass
class Diff:
    changes: list[Change]
    only_a: list[str]  # rows in A with no match in B
    only_b: list[str]
    settings: dict  # setting -> (A's, B's), where they differ
    rows: int  # rows matched

    @property
    def same(self) -> bool:
        return not (self.changes or self.only_a or self.only_b)

    def to_json(self) -> dict:
        return {"same": self.same, "rows_matched": self.rows, "only_a": self.only_a, "only_b": self.only_b,
                "settings": {k: list(v) for k, v in self.settings.items()},
                "changes": [dataclasses.asdict(c) for c in self.changes]}


def load(path: str) -> dict:
    """A sweep's JSON document, or one sentence saying why it is not one."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} is not a JSON document ({type(e).__name__}).") from None
    if not isinstance(doc, dict) or doc.get("schema") not in SCHEMAS:
        raise InputError(f"{path} is not a precision-lab result (its `schema` is not one of {', '.join(SCHEMAS)}); "
                         "write one with --json.")
    rows, meta = doc.get("rows"), doc.get("meta")
    if not isinstance(meta, dict) or not isinstance(rows, list) or not all(
            isinstance(r, dict) and isinstance(r.get("form"), str) and isinstance(r.get("dtype"), str) for r in rows):
        raise InputError(f"{path} is not a whole precision-lab result: it needs `meta` and rows with a form and a dtype.")
    return doc


def _row_name(row) -> str:
    """A row's identity, readably: form, format and case (see engine.rows.RowKey)."""
    return RowKey.of(row).name()


def _walk(path: str, a, b, out: list, name: str) -> None:
    """Append a Change for every leaf where a and b differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            _walk(f"{path}.{k}" if path else k, a.get(k), b.get(k), out, name)
    elif a != b:
        out.append(Change(name, path, a, b))


def diff(a: dict, b: dict) -> Diff:
    """Compare two sweep documents (as loaded by `load`)."""
    ra, rb = {}, {}
    for rows, into in ((a["rows"], ra), (b["rows"], rb)):
        for r in rows:
            into.setdefault(RowKey.of(r), r)
    changes = []
    for k in ra:
        if k in rb:
            for field in FIGURES:
                _walk(field, ra[k].get(field), rb[k].get(field), changes, _row_name(ra[k]))
    settings = {s: (a["meta"].get(s), b["meta"].get(s)) for s in SETTINGS
                if a["meta"].get(s) != b["meta"].get(s)}
    return Diff(changes, [_row_name(r) for k, r in ra.items() if k not in rb],
                [_row_name(r) for k, r in rb.items() if k not in ra], settings, sum(k in rb for k in ra))


def print_diff(d: Diff, name_a: str, name_b: str, console) -> None:
    """The differences as a table, A's and B's values side by side."""
    from rich.table import Table

    if d.settings:
        t = Table(title="settings that differ", title_justify="left")
        for col in ("setting", name_a, name_b):
            t.add_column(col, overflow="fold")
        for k, (va, vb) in d.settings.items():
            t.add_row(k, _setting(va), _setting(vb))
        console.print(t)
    for side, names in ((name_a, d.only_a), (name_b, d.only_b)):
        if names:
            console.print(f"rows only in {side}: " + "; ".join(names))
    if d.changes:
        n = len(d.changes)
        t = Table(title=f"{n} figure{'s' if n > 1 else ''} differ{'' if n > 1 else 's'}", title_justify="left")
        for col in ("row", "figure", name_a, name_b):
            t.add_column(col, overflow="fold", min_width=10)
        for c in d.changes:
            t.add_row(c.row, c.field, _fmt(c.a), _fmt(c.b))
        console.print(t)
    if d.same:
        console.print(f"same figures: {d.rows} rows match, none differs.")
    else:
        console.print(f"{d.rows} rows matched; {len({c.row for c in d.changes})} differ, "
                      f"{len(d.only_a)} only in {name_a}, {len(d.only_b)} only in {name_b}.")


SHOWN = 40  # characters of a long value (a list of intervals) shown in the table; --json has all


def _fmt(v) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list) and len(json.dumps(v)) > SHOWN:
        text = json.dumps(v)
        return f"{len(v)} items: {text[:SHOWN]}…"
    return "–" if v is None else json.dumps(v)


def _setting(v) -> str:
    return "(unset)" if v in (None, "") else str(v)

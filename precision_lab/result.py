"""A run's result: its settings (`meta`) and its typed rows, as the API returns it and
the JSON document holds it (schema ``precision_lab.sweep/2``).

    >>> result.rows(form="ce_naive", dtype="bfloat16", classes=1000, sweep="margin")
    >>> result.row("bce_naive_chain", "bfloat16", 0.0)["onset"]["nan"]
"""

from __future__ import annotations

import dataclasses

from .engine.rows import Row, rows_of
from .errors import InputError
from .output import summary

SCHEMA = "precision_lab.sweep/2"
# the fields rows are selected by, in the order an ambiguity is explained
SELECT = ("form", "dtype", "target", "quantity", "family", "classes", "sweep", "target_class", "compute_dtype",
          "loss_scale")


class Rows(list):
    """A result's rows (a list of Rows, which read like the JSON's row dicts), also
    callable to select some by their fields: ``result.rows(form="ce_naive",
    dtype="bfloat16", classes=1000, sweep="margin", target_class="top")``."""

    def __call__(self, **fields) -> list[Row]:
        unknown = sorted(set(fields) - set(SELECT))
        if unknown:
            raise InputError(f"Rows cannot be selected by {', '.join(unknown)}; select by {', '.join(SELECT)}.")
        return [r for r in self if all(_same(_field(r, k), v) for k, v in fields.items() if v is not None)]


def _field(row: Row, key: str):
    return row.key.compute_dtype if key == "compute_dtype" else getattr(row, key)


def _same(have, want) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(have, (int, float)):
        return float(have) == float(want)
    return have == want


@dataclasses.dataclass(repr=False)
class SweepResult:
    """What a sweep or check found: `meta` (versions, settings, backend) and `rows`
    (one per form, format and case; see the JSON schema in docs/results.md)."""

    meta: dict
    rows: list[Row]
    spec: object = dataclasses.field(default=None, compare=False)  # the run's specification, where known

    def __post_init__(self):
        self.rows = Rows(rows_of(self.rows))

    @classmethod
    def from_json(cls, doc: dict) -> SweepResult:
        return cls(doc["meta"], rows_of(doc["rows"]))

    def row(self, form: str, dtype: str | None = None, target: float | str | None = None, **fields) -> Row:
        """The one row of `form` in `dtype` (and `target`: y for sigmoid rows, a softmax
        target class ``top``/``other``), narrowed by any other row field (`classes`,
        `sweep`, `target_class`, `quantity`, ...). Raises InputError when no row or
        several rows match, naming the fields that tell them apart."""
        if isinstance(target, str):
            fields.setdefault("target_class", target)
            target = None
        asked = ", ".join(f"{k}={v!r}" for k, v in dict(form=form, dtype=dtype, target=target, **fields).items()
                          if v is not None)
        if dtype is not None and ":" in dtype:  # an upcast, such as bfloat16:float32
            dtype, fields["compute_dtype"] = dtype.split(":", 1)
        elif dtype is not None:
            fields.setdefault("compute_dtype", dtype)
        keys = dict(form=form, dtype=dtype, target=target, **fields)
        found = self.rows(**keys)
        if not found:
            raise InputError(f"No row has {asked}; this result has forms {', '.join(sorted({r.form for r in self.rows}))} "
                             f"in {', '.join(dict.fromkeys(r.dtype for r in self.rows))}.")
        if len(found) > 1:
            apart = {k: sorted({repr(_field(r, k)) for r in found}) for k in SELECT if keys.get(k) is None}
            apart = {k: v for k, v in apart.items() if len(v) > 1}
            raise InputError(f"{len(found)} rows have {asked}; choose by "
                             + "; ".join(f"{k} ({', '.join(v)})" for k, v in apart.items()) + ".")
        return found[0]

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "meta": self.meta, "rows": [r.to_json() for r in self.rows]}

    def summary(self, width: int = 80) -> str:
        """The one-screen answer per family, as plain text (see ``output.summary``)."""
        return summary.text(self, width)

    def __repr__(self) -> str:
        fams = ", ".join(dict.fromkeys(r.family for r in self.rows))
        dtypes = ", ".join(dict.fromkeys(r.dtype for r in self.rows))
        unstable = sorted({r.form for r in self.rows if not r.stable})
        return (f"<SweepResult: {len(self.rows)} rows of {fams or 'nothing'} in {dtypes or 'no format'}; "
                f"{len(unstable)} forms with NaN, ∞ or 0 somewhere; .summary() for the answer, .rows(...) to select>")

    def _repr_pretty_(self, p, cycle) -> None:  # IPython and Jupyter
        p.text(repr(self) if cycle else self.summary())

"""How bad a form is: each row graded, and a form's grades per format, worst first.

Grades, by severity:

* ``breaks``     a NaN or ∞ (training breaks);
* ``lost``       a value lost to 0 where the exact value is a normal number (a lost
                 gradient stops learning silently);
* ``tiny``       lost to 0 only below the format's resolution: a loss where the true
                 loss is below eps (harmless for training, whose gradient is computed on
                 its own), or gradient entries whose exact value is below eps times the
                 largest entry of the same gradient (``zero_negligible``: an update
                 that adds them to entries near 1 could not have kept them anyway);
* ``flush``      0 only where the exact value is subnormal (flushed, or underflowed early);
* ``inexact``    stable, but some points are further from the exact value than the
                 input's rounding explains;
* ``unresolved`` stable where decided, some points undecided (a user's function);
* ``clean``      within the tolerance at every point swept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..numerics import formats
from .labels import dtype_label as label
from .labels import form_name

GRADES = ("breaks", "lost", "tiny", "flush", "inexact", "unresolved", "clean")
TITLES = {
    "breaks": "NaN or ∞: training breaks",
    "lost": "Lost to 0 where the exact value is a normal number",
    "tiny": "Lost to 0 only below the format's resolution: a loss < eps (harmless for training), or gradient "
            "entries < eps × the gradient's largest (negligible beside it; an optimizer that scales each entry, "
            "as Adam does, would still miss them)",
    "flush": "0 only where the exact value is subnormal (flushed or underflowed early)",
    "inexact": "Stable, but inexact beyond what the input's rounding forces",
    "unresolved": "Stable where decided; some points undecided",
    "clean": "Clean: within the tolerance at every point swept",
}
GRADE_WORDS = {"breaks": "NaN or ∞ even so", "lost": "values lost to 0 even so", "tiny": "0 only below eps",
               "flush": "0 only where exact subnormal", "inexact": "some points inexact",
               "unresolved": "some points undecided", "clean": "clean"}
STYLES = {"breaks": "bold red", "lost": "yellow", "tiny": "default", "flush": "dim yellow", "inexact": "cyan",
          "unresolved": "dim", "clean": "green"}

def _library(name: str, verdict_list) -> str | None:
    """The library call of the form `name` (see FormVerdict.library)."""
    return next((v.library for v in verdict_list if v.name == name), None)


def _judged_format(row: dict) -> formats.Format:
    """The format a row's values are in (a loss computed in a wider format is judged there)."""
    return formats.get(row.get("value_dtype") or row["dtype"])


def grade(row: dict) -> str:
    c = row["counts"]
    if c["nan"] or c["inf"]:
        return "breaks"
    if c["zero"] > c.get("zero_subnormal", 0):
        if c["zero"] == c.get("zero_subnormal", 0) + c.get("zero_negligible", 0):
            return "tiny"  # every lost gradient entry negligible beside its gradient's largest
        tiny = row.get("zero_exact_max")
        if row["quantity"] == "loss" and tiny is not None and tiny < _judged_format(row).eps:
            return "tiny"
        return "lost"
    if c["zero"]:
        return "flush"
    if c["inaccurate"]:
        return "inexact"
    if c.get("unresolved"):
        return "unresolved"
    return "clean"


def worst(grades) -> str:
    return min(grades, key=GRADES.index)


@dataclasses.dataclass
class FormVerdict:
    """One form of a family: its grade per format and overall, with the rows behind them."""

    name: str
    quantity: str
    summary: str
    by_format: dict[str, list[dict]]  # format label -> rows

    def grade_in(self, fmt_label: str) -> str:
        return worst(grade(r) for r in self.by_format[fmt_label])

    @property
    def grade(self) -> str:
        return worst(self.grade_in(f) for f in self.by_format)

    @property
    def library(self) -> str | None:
        """The library call that computes the form, as its rows name it (with a label
        distribution where some rows have one: the call that takes it)."""
        rows = [r for rs in self.by_format.values() for r in rs if r.get("library")]
        soft = [r for r in rows if r.get("target_class") == "soft"]
        return (soft or rows)[0]["library"] if rows else None


def verdicts(rows: Sequence[dict]) -> list[FormVerdict]:
    """Each form of `rows` once, in the rows' order: a user's function once per quantity
    (its loss and its gradient share a name)."""
    out: dict[tuple, FormVerdict] = {}
    for r in rows:
        v = out.setdefault((form_name(r), r["quantity"]), FormVerdict(form_name(r), r["quantity"], r["summary"], {}))
        v.by_format.setdefault(label(r), []).append(r)
    return list(out.values())

"""Gates for other projects' CI: which rows of a result fail a `--fail-on` rule.

A rule is ``[FORM=]CLASS[>LIMIT]``, rules are separated by commas:

* ``nan``                  any row with a NaN point fails;
* ``zero_normal``          a value lost to 0 where the exact value is a normal number
                           (``zero`` also counts flushed subnormals, ``zero_subnormal``
                           only those);
* ``inaccurate>1%``        more than 1 % of a row's swept points (as sampled) are of the
                           class; ``inaccurate>10`` more than 10 points;
* ``ce_fused=inaccurate>1%`` the rule for the rows of one form only;
* ``batch``                a point whose value changes with the batch size or its
                           position in the call (of the points each row re-runs, see
                           engine.batches);
* ``killed``               a user's gradient that a clip makes 0 where the loss
                           without the clip has one (see analysis.killed);
* ``halved``               ... that a clip halves (a tie of jnp.clip's max and min).

Without a limit a rule fails on any point (``>0``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from ..errors import InputError

GATE_CLASSES = ("nan", "inf", "zero", "zero_normal", "zero_subnormal", "inaccurate", "unresolved", "batch", "killed",
                "halved")
_RULE = re.compile(r"^(?:(?P<form>[^=<>\s]+)=)?(?P<cls>[a-z_]+)(?:>(?P<limit>[0-9]*\.?[0-9]+)(?P<pct>%)?)?$")


@dataclasses.dataclass(frozen=True)
class Gate:
    cls: str
    limit: float = 0.0  # a row fails when its count (or percentage) exceeds this
    percent: bool = False
    form: str | None = None

    def __str__(self) -> str:
        limit = f">{self.limit:g}{'%' if self.percent else ''}" if self.limit or self.percent else ""
        return f"{self.form + '=' if self.form else ''}{self.cls}{limit}"

    def measure(self, row: dict) -> float:
        """The row's figure for this gate: a count of points, or a percentage of them."""
        k = count(row, self.cls)
        return 100.0 * k / row["points"] if self.percent else float(k)

    def fails(self, row: dict) -> bool:
        return (self.form is None or self.form == row["form"]) and self.measure(row) > self.limit


def count(row: dict, cls: str) -> int:
    """A row's points of `cls`, with the two kinds of zero told apart."""
    c = row["counts"]
    if cls == "batch":
        return (row.get("batch_dependent") or {}).get("count", 0)
    if cls in ("killed", "halved"):
        return ((row.get("killed_gradient") or {}).get(cls) or {}).get("count", 0)
    if cls == "zero_normal":
        return c["zero"] - c.get("zero_subnormal", 0)
    return c.get(cls, 0)


def parse(rules: str | Iterable[str], classes: Sequence[str] = GATE_CLASSES,
          forms: Iterable[str] | None = None) -> list[Gate]:
    """Gates from ``"nan,ce_fused=inaccurate>1%"`` (or its comma-separated items);
    `forms`, when given, are the form names a rule may name."""
    items = [s.strip() for s in (rules.split(",") if isinstance(rules, str) else rules)]
    known = None if forms is None else set(forms)
    gates = []
    for item in items:
        m = _RULE.match(item)
        if not m:
            raise InputError(f"`{item}` is not a --fail-on rule: write CLASS, CLASS>N, CLASS>P% or FORM=CLASS>P% "
                             f"(e.g. nan,ce_fused=inaccurate>1%).")
        if m["cls"] not in classes:
            raise InputError(f"Unknown class `{m['cls']}` in --fail-on; choose from {', '.join(classes)}.")
        if known is not None and m["form"] and m["form"] not in known:
            raise InputError(f"--fail-on names form `{m['form']}`, which this run does not sweep; its forms are "
                             f"{', '.join(sorted(known))}.")
        limit = float(m["limit"]) if m["limit"] else 0.0
        if m["pct"] and limit >= 100:
            raise InputError(f"`{item}` can never fail: a percentage limit must be below 100.")
        gates.append(Gate(m["cls"], limit, bool(m["pct"]), m["form"]))
    return gates


def failures(rows: Sequence[dict], gates: Sequence[Gate]) -> list[tuple[dict, Gate]]:
    """Each failing row with the first gate it fails."""
    out = []
    for r in rows:
        gate = next((g for g in gates if g.fails(r)), None)
        if gate is not None:
            out.append((r, gate))
    return out

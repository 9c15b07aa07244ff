"""The record of a walk through a form's jaxpr (see `walk`): one `Step` per
equation, and the `Walk` with what broke it, as text, a table or JSON."""

from __future__ import annotations

import dataclasses
import io
import math

import mpmath
import numpy as np
from flint import arb

from ..numerics import balls, formats, jaxpr, rounding
from ..numerics.structure import UNDECIDED


@dataclasses.dataclass
class Step:
    """One equation of the walk, at its worst entry (the largest error)."""

    index: int
    primitive: str
    source: str  # file:line (function)
    scope: str  # enclosing jit/custom_jvp calls
    dtype: str
    shape: tuple
    entry: tuple  # the entry shown (() for scalars)
    computed: object  # float (NaN, ±inf included), bool or int
    exact: object  # an arb ball, bool, int or UNDECIDED
    error: float | None  # ULPs; inf for a NaN against a defined value; None if undefined or not a float
    local: float | None  # the largest local error over the entries, ULPs
    marks: list[str]

    def to_json(self) -> dict:
        return {"index": self.index, "primitive": self.primitive, "source": self.source, "scope": self.scope,
                "entry": list(self.entry), "computed": _num(self.computed), "exact": _exact_text(self.exact),
                "error_ulp": _ulp(self.error), "local_ulp": _ulp(self.local), "marks": list(self.marks)}


@dataclasses.dataclass
class Walk:
    name: str
    dtype: str
    args: tuple
    steps: list[Step]
    allowance: float
    prec: int  # bits of the exact evaluation that every rounded result agreed at
    eager: np.ndarray  # the op-by-op result
    jitted: np.ndarray  # jax.jit(fn)(*args)
    exact: np.ndarray  # the exact result (object array)
    rewritten: bool
    hlo: list[str]  # the root fusion of the optimised HLO, when rewritten
    judged: dict | None = None  # for a built-in form: the sweep's class, ULP error and κ at this input

    @property
    def final_error(self) -> float | None:
        """The op-by-op result's largest error against the exact one, in ULPs of its format."""
        fmt = jaxpr.format_of(np.asarray(self.eager).dtype)
        if fmt is None:
            return None
        err = _ulps(np.asarray(self.eager), np.asarray(self.exact, object).reshape(np.shape(self.eager)), fmt)
        err = np.abs(err[~np.isnan(err)]) if np.size(err) else err
        return float(np.max(err)) if np.size(err) else None

    def _first(self, mark):
        """The first step with `mark` whose value reaches the output (not one multiplied
        by a computed 0, or in a branch the program did not take)."""
        return next((s for s in self.steps if mark in s.marks and "unused" not in s.marks), None)

    @property
    def first_nonfinite(self) -> Step | None:
        return self._first("nonfinite")

    @property
    def first_lost(self) -> Step | None:
        return self._first("lost")

    @property
    def largest_local(self) -> Step | None:
        cand = [s for s in self.steps if s.local is not None and s.local > 0]
        return max(cand, key=lambda s: s.local) if cand else None

    @property
    def flushes(self) -> list[Step]:
        return [s for s in self.steps if "flush" in s.marks]

    def cause(self) -> dict:
        """What broke, JSON-ready."""
        j = lambda s: None if s is None else s.to_json()  # noqa: E731
        return {"first_nonfinite": j(self.first_nonfinite), "first_lost": j(self.first_lost),
                "largest_local": j(self.largest_local), "rewritten": self.rewritten,
                "flushes": [j(s) for s in self.flushes],
                "eager": [_num(v) for v in np.ravel(self.eager).astype(np.float64)],
                "jitted": [_num(v) for v in np.ravel(self.jitted).astype(np.float64)],
                "exact": [_exact_text(v) for v in np.ravel(self.exact)], "hlo": self.hlo,
                "judged": None if self.judged is None else {k: _num(v) for k, v in self.judged.items()}}

    def summary(self) -> str:
        """One line: the cause, and whether the jitted program agrees."""
        parts = []
        for label, s in (("first non-finite", self.first_nonfinite), ("value lost", self.first_lost)):
            if s is not None:
                parts.append(f"{label} at #{s.index} {s.primitive} ({s.source})")
        if self.flushes:
            parts.append("flush at " + ", ".join(f"#{s.index} {s.primitive}" for s in self.flushes))
        read = [s for s in self.steps if "subnormal input" in s.marks]
        if read:
            parts.append("a subnormal input read as 0 at " + ", ".join(f"#{s.index} {s.primitive}" for s in read))
        if not parts:
            parts.append(f"no operation lost more than {self.allowance:g} ULPs on exact inputs")
            final = self.final_error
            if final is not None and final > self.allowance:
                parts.append(f"the result's {_fmt(final)}-ULP error builds up from roundings carried through "
                             "(e.g. a cancellation of rounded inputs), not from one operation")
        jit = (f"the jitted program differs ({_fmt(self.jitted)} against {_fmt(self.eager)} op by op): "
               "XLA rewrote the expression") if self.rewritten else "the jitted program agrees"
        text = "; ".join(parts) + "; " + jit + "."
        if self.judged:
            j = self.judged
            text += (f" The sweep classes this point {j['class']} (error {_fmt(j['ulp'])} ULP; the exact value's "
                     f"condition number κ = {j['kappa']:.3g})")
        return text

    def table(self):
        from rich.table import Table

        t = Table(title=f"{self.name} in {self.dtype} at {', '.join(_fmt(a) for a in self.args)}",
                  title_justify="left")
        for col in ("#", "source", "primitive", "computed", "exact", "error (ULP)", "local", "marks"):
            t.add_column(col, no_wrap=col in ("#", "primitive"))
        for s in self.steps:
            prim = s.primitive + (f"[{','.join(map(str, s.entry))}]" if s.entry else "")
            t.add_row(str(s.index), (s.scope + ": " if s.scope else "") + s.source, prim, _fmt(s.computed),
                      _exact_text(s.exact, 8), _fmt(s.error), _fmt(s.local), " ".join(s.marks))
        return t

    def text(self, width: int = 160) -> str:
        from rich.console import Console

        buf = io.StringIO()
        console = Console(file=buf, width=width, no_color=True, highlight=False)
        console.print(self.table())
        console.print(self.summary(), soft_wrap=True)
        for line in self.hlo:
            console.print("  " + line, soft_wrap=True)
        return buf.getvalue()


def _num(v):
    """A number for JSON: NaN and ±∞ as strings."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return v if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))


def _ulp(v):
    """A ULP count for JSON: a whole number, "inf" for a NaN against a defined value."""
    return int(v) if v is not None and math.isfinite(v) else _num(v)


def _exact_text(v, digits: int = 17) -> str:
    """An exact value as text: a ball by its midpoint, to `digits` significant digits."""
    if v is UNDECIDED:
        return "undefined"
    if isinstance(v, arb):
        if not v.is_finite():
            return "+inf" if v > 0 else "-inf" if v < 0 else "undefined"
        man, exp = (int(t) for t in v.mid().man_exp())
        with rounding.EXACT, mpmath.workprec(max(53, man.bit_length() + 8)):  # one thread at a time
            return mpmath.nstr(mpmath.mpf((man, exp)), digits)
    return str(v)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, np.ndarray):
        return _fmt(v.item()) if v.size == 1 else "[" + ", ".join(_fmt(x) for x in v.ravel()[:4]) + (
            ", …]" if v.size > 4 else "]")
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.6g}"


def _ulps(values, ex, fmt):
    """Per entry: ULPs of the format values `values` from the exact `ex` rounded;
    inf where a NaN stands for a defined value, NaN where the exact is undefined."""
    v = np.asarray(values, fmt.dtype)
    poison = np.vectorize(lambda x: x is UNDECIDED, otypes=[bool])(ex) if ex.size else np.zeros(ex.shape, bool)
    isnan = np.isnan(v.astype(np.float64))
    o = formats.to_ordinal(np.where(isnan, np.zeros_like(v), v), fmt)
    err = (o - _ordinals(ex, fmt)).astype(np.float64)
    err = np.where(isnan, np.inf, err)
    return np.where(poison, np.nan, err)


def _ordinals(values, fmt) -> np.ndarray:
    """Ordinals of exact values (object array), NaN-free: UNDECIDED gets 0 (masked by callers)."""
    return np.vectorize(lambda v: (balls.ordinal(v, fmt) or 0) if v is not UNDECIDED else 0, otypes=[np.int64])(
        values) if values.size else np.zeros(values.shape, np.int64)

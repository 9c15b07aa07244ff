"""A walk through a form's jaxpr: which operation broke it.

`walk(fn, args, dtype)` traces `fn` on arguments of the format, flattens the jaxpr
(jit, custom_jvp and custom_vjp calls inlined: every real operation, forward and
backward, in order) and, for each equation, records

* **computed**: the primitive run alone on the computed values of its inputs
  (eager mode: each primitive dispatched on its own through XLA, each result
  rounded to its format);
* **exact**: the real value, from the exact evaluator (exact.py) on exact inputs;
* **error**: computed against exact rounded to the result's format, in ULPs
  (ordinal difference; ±∞ one step past the largest finite value);
* **local error** (Herbie's): the primitive run in the format on its inputs'
  exact values rounded to their formats, against its own exact result. A large
  local error is where the value was lost; a large error with a small local error
  is damage carried in from earlier. Errors count ULPs of each result's own format
  (float32 for the float32 sum inside a float16 softmax); a widening conversion's
  local error counts ULPs of its input's format, and an operation with an input
  whose exact value lies beyond its format's range has none (the loss is the
  producer's, marked there).

Marks: ``nonfinite`` (computed NaN/±∞ where the exact value is finite), ``lost``
(local error above the allowance, or a non-finite local result where the exact is
finite), ``flush`` (a computed 0 where the real result of the operation, on the
exact or on the computed inputs, rounds to a non-zero subnormal; or a subnormal
input read as 0: XLA's CPU backend flushes subnormals of float32 and bfloat16),
``underflow`` (a computed 0 whose real value, on the computed inputs, is too small
for the format, subnormals included), ``overflow`` (a computed ±∞ whose real value
on the computed inputs is finite), ``undefined`` (the exact value is undefined,
e.g. 0/0), ``differs`` (a boolean or integer result other than the exact one), and
``no exact rule`` (a primitive the exact evaluator cannot evaluate: its "exact" value
is the primitive run in float64, an approximation; see ``exact.float64_apply``).
For vector values each step shows the entry with the largest error.

The walk also runs ``jax.jit(fn)``: where its result differs bitwise from the
op-by-op one, XLA rewrote the expression, and the walk keeps the root fusion of
the optimised HLO.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re

import jax
import jax.numpy as jnp
import mpmath
import numpy as np

from ..numerics import exact, formats
from ..errors import InputError
from ..numerics.exact import POISON

DEFAULT_ALLOWANCE = 4.0  # ULPs of local error before an operation counts as where the value was lost
HLO_LINES = 12


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
    exact: object  # mpmath.mpf, bool, int or POISON
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
        fmt = exact.format_of(np.asarray(self.eager).dtype)
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
    if v is POISON:
        return "undefined"
    if isinstance(v, mpmath.mpf):
        return mpmath.nstr(v, digits)
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


# ------------------------------------------------------------------ the walk


def _ordinals(values, fmt) -> np.ndarray:
    """Ordinals of exact values (object array), NaN-free: POISON gets 0 (masked by callers)."""
    return np.vectorize(lambda v: exact.round_ordinal(v, fmt) if v is not POISON else 0, otypes=[np.int64])(
        values) if values.size else np.zeros(values.shape, np.int64)


def _round(values, dtype) -> np.ndarray:
    """Exact values rounded to `dtype` (POISON as NaN; integers and booleans as they are)."""
    fmt = exact.format_of(dtype)
    if fmt is None:
        return np.asarray(values.tolist(), dtype).reshape(values.shape)
    f = formats.ordinal_to_float64(_ordinals(values, fmt), fmt)
    f = np.where(np.vectorize(lambda v: v is POISON, otypes=[bool])(values), np.nan, f) if values.size else f
    with np.errstate(invalid="ignore", over="ignore"):
        return f.astype(fmt.dtype)


def _ulps(values, ex, fmt):
    """Per entry: ULPs of the format values `values` from the exact `ex` rounded;
    inf where a NaN stands for a defined value, NaN where the exact is undefined."""
    v = np.asarray(values, fmt.dtype)
    poison = np.vectorize(lambda x: x is POISON, otypes=[bool])(ex) if ex.size else np.zeros(ex.shape, bool)
    isnan = np.isnan(v.astype(np.float64))
    o = formats.to_ordinal(np.where(isnan, np.zeros_like(v), v), fmt)
    err = (o - _ordinals(ex, fmt)).astype(np.float64)
    err = np.where(isnan, np.inf, err)
    return np.where(poison, np.nan, err)


def _undefined(x) -> np.ndarray:
    return np.vectorize(lambda v: v is POISON, otypes=[bool])(x) if x.size else np.zeros(x.shape, bool)


def _finite(x) -> np.ndarray:
    """Entries of an exact array that are finite reals."""
    f = lambda v: isinstance(v, mpmath.mpf) and bool(mpmath.isfinite(v))  # noqa: E731
    return np.vectorize(f, otypes=[bool])(x) if x.size else np.zeros(x.shape, bool)


def _bind(e: exact.Eqn, ins):
    outs = e.primitive.bind(*ins, **e.params)
    return [np.asarray(o) for o in (outs if e.primitive.multiple_results else [outs])]


def _exact_passes(flat, args, prec, limit=3):
    """Exact outputs of every equation, at `prec` bits, doubled while any rounded result changes."""
    def one(p):
        rec = []
        exact.run(flat, args, p, visit=lambda i, ins, outs: rec.append((ins, outs)), fallback=True)
        return rec

    def key(rec):
        return [[_ordinals(o, f).tolist() if (f := exact.format_of(a.dtype)) else None
                 for o, a in zip(outs, e.out_avals)] for e, (_, outs) in zip(flat.eqns, rec)]

    cur = one(prec)
    for _ in range(limit):
        nxt = one(2 * prec)
        if key(nxt) == key(cur):
            return cur, prec
        cur, prec = nxt, 2 * prec
    return cur, prec


def default_prec(fmt) -> int:
    """Bits enough to resolve 1 − x for x one subnormal step from 1, twice over."""
    return max(256, 2 * (fmt.bias + fmt.mant) + 64)


def walk(fn, args, dtype: str, allowance: float = DEFAULT_ALLOWANCE, name: str | None = None,
         jitted: np.ndarray | None = None) -> Walk:
    """Walk `fn(*args)` in the format `dtype` (args: numbers or arrays, rounded to the format).

    `jitted` is the compiled program's result to compare with (default: `jax.jit(fn)`
    on these arguments alone; a sweep passes what its own batched program computed)."""
    fmt = formats.get(dtype)
    xs = [jnp.asarray(a) if np.issubdtype(np.asarray(a).dtype, np.integer) else jnp.asarray(fmt.cast(a))
          for a in args]  # integer arguments (a class label) stay integers
    flat = exact.flatten(jax.make_jaxpr(fn)(*xs))
    exact_args = [exact.to_exact(np.asarray(x)) for x in xs]
    records, prec = _exact_passes(flat, exact_args, default_prec(fmt))

    env = dict(zip(flat.inputs, xs)) | {k: jnp.asarray(v) for k, v in flat.consts.items()}
    get = lambda r, aval: jnp.asarray(r.val, aval.dtype) if isinstance(r, exact.Lit) else env[r]  # noqa: E731
    steps, computed = [], []
    with mpmath.workprec(prec):
        for i, (e, (ex_ins, ex_outs)) in enumerate(zip(flat.eqns, records)):
            ins = [get(r, a) for r, a in zip(e.ins, e.in_avals)]
            outs = _bind(e, ins)
            for r, o in zip(e.outs, outs):
                if r is not None:
                    env[r] = jnp.asarray(o)
            steps.append(_step(i, e, ins, outs, ex_ins, ex_outs, allowance))
            computed.append([np.asarray(x) for x in ins])
        for i in _unused(flat, computed):
            steps[i].marks.append("unused")
        final = flat.outputs[0]
        eager = np.asarray(get(final, flat.eqns[-1].out_avals[0] if flat.eqns else xs[0]))
        ex_final = exact.run(flat, exact_args, prec, fallback=True)[0]
    jitted = np.asarray(jax.jit(fn)(*xs) if jitted is None else jitted)
    rewritten = not _same(eager, jitted)
    hlo = root_fusion(jax.jit(fn).lower(*xs).compile().as_text()) if rewritten else []
    return Walk(name or getattr(fn, "__name__", "fn"), fmt.name, tuple(np.asarray(x).item() if np.ndim(x) == 0
                else np.asarray(x) for x in xs), steps, allowance, prec, eager, jitted, ex_final, rewritten, hlo)


def _unused(flat: exact.Flat, computed: list) -> list[int]:
    """Equations whose computed value cannot reach the output: every path passes a
    multiplication by a computed 0 (with this value finite: 0·∞ is NaN and matters),
    or a select_n branch the computed predicate did not take."""
    live = {r for r in flat.outputs if not isinstance(r, exact.Lit)}
    producer = {o: i for i, e in enumerate(flat.eqns) for o in e.outs if o is not None}
    for i in range(len(flat.eqns) - 1, -1, -1):
        e, ins = flat.eqns[i], computed[i]
        if not any(o in live for o in e.outs if o is not None):
            continue
        keep = list(range(len(e.ins)))
        if e.primitive.name == "mul":
            zero = [bool(np.all(x == 0)) for x in ins]
            finite = [bool(np.all(np.isfinite(x.astype(np.float64)))) if x.dtype.kind in "fV" or
                      str(x.dtype) in formats.FORMATS else True for x in ins]
            keep = [k for k in (0, 1) if not (zero[1 - k] and finite[k])]
        elif e.primitive.name == "select_n" and np.ndim(ins[0]) == 0:
            keep = [0, 1 + int(ins[0])]
        live.update(e.ins[k] for k in keep if not isinstance(e.ins[k], exact.Lit))
    return [i for i, e in enumerate(flat.eqns) if not any(o in live for o in e.outs if o is not None)]


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan = np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64))
    ia, ib = (x.view(np.dtype(f"u{x.dtype.itemsize}")) for x in (a, b))
    return bool(np.all(nan | (ia == ib)))


def _step(i, e, ins, outs, ex_ins, ex_outs, allowance) -> Step:
    aval, out, ex = e.out_avals[0], np.asarray(outs[0]), ex_outs[0]
    fmt = exact.format_of(aval.dtype)
    marks = []
    base = dict(index=i, primitive=e.primitive.name, source=e.source, scope=e.scope, dtype=str(aval.dtype),
                shape=tuple(aval.shape))
    if fmt is None:  # booleans and integers: right or wrong
        got = np.asarray(ex.tolist(), dtype=object).reshape(ex.shape)
        bad = [j for j in np.ndindex(ex.shape) if got[j] is not POISON and got[j] != out[j].item()]
        j = bad[0] if bad else (0,) * out.ndim
        return Step(**base, entry=j, computed=out[j].item(), exact=ex[j], error=None, local=None,
                    marks=["differs"] if bad else [])
    err = _ulps(out, ex, fmt)
    # local error: the operation on its inputs' exact values rounded to their formats
    # (none where an input is undefined, or beyond its format's range: that loss is its producer's)
    local = None
    rounded = [_round(x, a.dtype) for x, a in zip(ex_ins, e.in_avals)]
    if all(exact.format_of(a.dtype) is not None and not np.any(np.isinf(r.astype(np.float64)) & _finite(x))
           or exact.format_of(a.dtype) is None and not np.any(_undefined(x)) for x, r, a in zip(ex_ins, rounded, e.in_avals)):
        got = _bind(e, [jnp.asarray(r) for r in rounded])[0]
        lfmt = fmt  # a widening conversion is measured in its input's (coarser) format: it only copies
        if e.primitive.name == "convert_element_type" and (f_in := exact.format_of(e.in_avals[0].dtype)):
            lfmt = f_in if f_in.mant < fmt.mant else fmt
            got = got.astype(lfmt.dtype)
        loc = _ulps(got, ex, lfmt)
        loc = np.where(~np.isfinite(got.astype(np.float64)) & _finite(ex), np.inf, loc)  # overflow, NaN: lost
        loc = loc[~np.isnan(loc)]
        local = float(np.max(np.abs(loc))) if loc.size else None
    # the real result of the operation on the computed inputs: what this one rounding did
    own = exact.apply_or_float64(e.primitive, e.params, [exact.to_exact(np.asarray(x)) for x in ins], e.in_avals)[0]
    own_o, ex_o = _ordinals(own, fmt), _ordinals(ex, fmt)
    sub = lambda o: (o != 0) & (np.abs(o) < (1 << fmt.mant))  # noqa: E731  non-zero subnormal ordinals
    undefined = _undefined(ex)
    ex_finite = _finite(ex)  # as a real: a value beyond the format's range is finite
    outf = out.astype(np.float64)
    zero = outf == 0
    if np.any(~np.isfinite(outf) & ex_finite):
        marks.append("nonfinite")
    if local is not None and local > allowance:
        marks.append("lost")
    sub_in = any(exact.format_of(a.dtype) is not None and np.any((np.asarray(x, np.float64) != 0) & (
        np.abs(np.asarray(x, np.float64)) < exact.format_of(a.dtype).smallest_normal)) for x, a in zip(ins, e.in_avals))
    own_defined = ~_undefined(own)
    own_err = np.where(own_defined, _ulps(out, own, fmt), 0.0)
    if np.any(zero & sub(own_o)) or (sub_in and np.any(np.abs(own_err) > allowance)):
        marks.append("flush")
    elif np.any(zero & own_defined & (own_o == 0) & np.vectorize(lambda v: v is not POISON and v != 0,
                                                                  otypes=[bool])(own)):
        marks.append("underflow")
    if np.any(np.isinf(outf) & _finite(own)):
        marks.append("overflow")
    if np.any(undefined):
        marks.append("undefined")
    if e.primitive.name not in exact.SUPPORTED:  # its "exact" value is float64's (exact.float64_apply)
        marks.append("no exact rule")
    key = np.where(np.isnan(err), -1.0, np.abs(err))
    j = np.unravel_index(int(np.argmax(key)), key.shape) if key.size else ()
    e_j = err[j]
    return Step(**base, entry=tuple(int(x) for x in j), computed=float(outf[j]), exact=ex[j],
                error=None if np.isnan(e_j) else float(e_j), local=local, marks=marks)


def root_fusion(hlo: str, lines: int = HLO_LINES) -> list[str]:
    """The ops of the computation the ENTRY's ROOT calls (or the ENTRY itself), metadata
    stripped, at most `lines` lines."""
    blocks, name, cur = {}, None, []
    for line in hlo.splitlines():
        m = re.match(r"\s*(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
        if m and name is None:
            name, cur = ("ENTRY" if m.group(1) else m.group(2)), []
        elif line.strip() == "}" and name is not None:
            blocks[name], name = cur, None
        elif name is not None:
            cur.append(re.sub(r",?\s*metadata=\{[^}]*\}", "", line.strip()))
    entry = blocks.get("ENTRY", [])
    root = next((s for s in entry if s.startswith("ROOT")), "")
    called = re.search(r"calls=%?([\w.\-]+)", root)
    body = blocks.get(called.group(1), entry) if called else entry
    return body[:lines]


def explain(form, dtype: str, z: float, y: float = 0.0, family: str = "sigmoid", classes: int = 10,
            target_class: str = "top", sweep: str = "margin", allowance: float = DEFAULT_ALLOWANCE,
            jitted: np.ndarray | None = None) -> Walk:
    """Walk a form (by name, or any kernel ``f(z, y)``) at logit (or margin, offset) `z`.

    For the softmax family the target is the true class (`target_class` top or
    other) on the structured `sweep` (margin or offset), with K = `classes`.
    """
    from .. import api
    from ..families import softmax

    if callable(form):
        return walk(form, (z, y), dtype, allowance)
    if family == "softmax":
        if target_class not in softmax.TARGET_CLASSES:
            raise InputError(f"Unknown target class `{target_class}`; choose from top, other.")
        if sweep not in softmax.SWEEPS:
            raise InputError(f"Unknown sweep `{sweep}`; choose from {', '.join(softmax.SWEEPS)}.")
        if int(classes) != classes or classes < 2:
            raise InputError(f"K = {classes} is not a class count; a softmax needs K ≥ 2 whole classes.")
        fam = api.get_family(family, int(classes))
        code = softmax.case(sweep, target_class)
        fmt = formats.get(dtype)
        vector = np.asarray(fam.inputs(jnp.asarray(fmt.cast([z])), fam.case(code)))[0]  # as the sweep builds it
        w = walk(fam.form(form).kernel, (vector, fam.label(code, fmt)), dtype, allowance, form, jitted)
        ev = api.evaluate(family, [form], dtype, [z], target_class, sweep=sweep, classes=int(classes))
    else:
        api.check_targets([y])
        w = walk(api.get_family(family).form(form).kernel, (z, y), dtype, allowance, form, jitted)
        ev = api.evaluate(family, [form], dtype, [z], y)
    w.judged = {"class": str(ev["class"][form][0]), "ulp": float(ev["ulp"][form][0]),
                "kappa": float(np.max(ev["kappa"][form][0]))}
    return w

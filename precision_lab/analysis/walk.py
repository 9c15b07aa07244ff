"""A walk through a form's jaxpr: which operation broke it.

`walk(fn, args, dtype)` traces `fn` on arguments of the format, flattens the jaxpr
(jit, custom_jvp and custom_vjp calls inlined: every real operation, forward and
backward, in order) and, for each equation, records

* **computed**: the primitive run alone on the computed values of its inputs
  (eager mode: each primitive dispatched on its own through XLA, each result
  rounded to its format);
* **exact**: the real value, on arb balls (`balls`, the reference's rigorous tier)
  from exact inputs, at a precision raised until every result rounds to one value
  of its format;
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

Marks: ``nonfinite`` (computed NaN/±∞ where the exact value is finite, or NaN where it
is undefined, as the log of a negative number), ``lost``
(local error above the allowance, or a non-finite local result where the exact is
finite), ``flush`` (a computed 0 where the real result of the operation, on the
exact or on the computed inputs, rounds to a non-zero subnormal: XLA's CPU backend
flushes subnormals of float32 and bfloat16), ``subnormal input`` (a subnormal input
read as 0, so that the result is off: 1/x = ∞ for a subnormal x whose reciprocal is
finite),
``underflow`` (a computed 0 whose real value, on the computed inputs, is too small
for the format, subnormals included), ``overflow`` (a computed ±∞ whose real value
on the computed inputs is finite), ``undefined`` (the exact value is undefined,
e.g. 0/0), ``differs`` (a boolean or integer result other than the exact one), and
``no exact rule`` (a primitive the exact evaluator cannot evaluate: its "exact" value
is the primitive run in float64, an approximation; see ``balls.float64_apply``).
For vector values each step shows the entry with the largest error.

The walk also runs ``jax.jit(fn)``: where its result differs bitwise from the
op-by-op one, XLA rewrote the expression, and the walk keeps the root fusion of
the optimised HLO.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
from flint import arb

from ..numerics import balls, formats, jaxpr, structure
from ..numerics.structure import UNDECIDED
from .steps import Step, Walk, _ordinals, _ulps

DEFAULT_ALLOWANCE = 4.0  # ULPs of local error before an operation counts as where the value was lost
HLO_LINES = 12


def _round(values, dtype) -> np.ndarray:
    """Exact values rounded to `dtype` (UNDECIDED as NaN; integers and booleans as they are)."""
    fmt = jaxpr.format_of(dtype)
    if fmt is None:
        return np.asarray(values.tolist(), dtype).reshape(values.shape)
    f = formats.ordinal_to_float64(_ordinals(values, fmt), fmt)
    f = np.where(_undefined(values), np.nan, f) if values.size else f
    with np.errstate(invalid="ignore", over="ignore"):
        return f.astype(fmt.dtype)


def _undefined(x) -> np.ndarray:
    return np.vectorize(lambda v: v is UNDECIDED, otypes=[bool])(x) if x.size else np.zeros(x.shape, bool)


def _finite(x) -> np.ndarray:
    """Entries of an exact array that are finite reals."""
    f = lambda v: isinstance(v, arb) and v.is_finite()  # noqa: E731
    return np.vectorize(f, otypes=[bool])(x) if x.size else np.zeros(x.shape, bool)


def _bind(e: jaxpr.Eqn, ins):
    outs = e.primitive.bind(*ins, **e.params)
    return [np.asarray(o) for o in (outs if e.primitive.multiple_results else [outs])]


RAISES = 2  # precision ×4 at most this many times over default_prec


def _exact_passes(flat, args, prec):
    """Exact values of every equation's inputs and outputs, and the outputs, on balls
    at `prec` bits, raised ×4 while a result of a format is open (a ball across one
    of its rounding boundaries, or no value yet): the balls are rigorous, so what
    rounds to one value is settled. What the last precision leaves open rounds from
    its midpoint (an exact tie, or a value that is undefined)."""
    for raised in range(RAISES + 1):
        rec = []
        out = balls.evaluate(flat, args, prec, visit=lambda i, ins, outs: rec.append((ins, outs)), fallback=True)
        if raised == RAISES or not any(_open(o, a.dtype) for e, (_, outs) in zip(flat.eqns, rec)
                                       for o, a in zip(outs, e.out_avals)):
            return [([_valued(x) for x in ins], [_valued(x) for x in outs]) for ins, outs in rec], \
                [_valued(x) for x in out], prec
        prec *= 4


def _valued(x):
    """An exact array with every unbounded ball as UNDECIDED (no value at this precision)."""
    if not any(balls.unbounded(v) for v in np.ravel(x)):
        return x
    out = structure.obj(x).copy()
    for i in np.ndindex(out.shape):
        if balls.unbounded(out[i]):
            out[i] = UNDECIDED
    return out


def _open(values, dtype) -> bool:
    fmt = jaxpr.format_of(dtype)
    return fmt is not None and any(v is UNDECIDED or balls.unbounded(v) or (isinstance(v, arb) and v.is_finite() and
                                                                       balls.rounded(v, fmt) is None)
                                   for v in values.ravel())


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
    flat = jaxpr.flatten(jax.make_jaxpr(fn)(*xs))
    records, ex_outputs, prec = _exact_passes(flat, [np.asarray(x) for x in xs], default_prec(fmt))

    env = dict(zip(flat.inputs, xs)) | {k: jnp.asarray(v) for k, v in flat.consts.items()}
    get = lambda r, aval: jnp.asarray(r.val, aval.dtype) if isinstance(r, jaxpr.Lit) else env[r]  # noqa: E731
    steps, computed = [], []
    with balls.precision(prec):
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
        ex_final = ex_outputs[0]
    jitted = np.asarray(jax.jit(fn)(*xs) if jitted is None else jitted)
    rewritten = not _same(eager, jitted)
    hlo = _root_fusion(jax.jit(fn).lower(*xs).compile().as_text()) if rewritten else []
    return Walk(name or getattr(fn, "__name__", "fn"), fmt.name, tuple(np.asarray(x).item() if np.ndim(x) == 0
                else np.asarray(x) for x in xs), steps, allowance, prec, eager, jitted, ex_final, rewritten, hlo)


def _unused(flat: jaxpr.Flat, computed: list) -> list[int]:
    """Equations whose computed value cannot reach the output: every path passes a
    multiplication by a computed 0 (with this value finite: 0·∞ is NaN and matters),
    or a select_n branch the computed predicate did not take."""
    live = {r for r in flat.outputs if not isinstance(r, jaxpr.Lit)}
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
        live.update(e.ins[k] for k in keep if not isinstance(e.ins[k], jaxpr.Lit))
    return [i for i, e in enumerate(flat.eqns) if not any(o in live for o in e.outs if o is not None)]


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan = np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64))
    ia, ib = (x.view(np.dtype(f"u{x.dtype.itemsize}")) for x in (a, b))
    return bool(np.all(nan | (ia == ib)))


def _local_error(e, ex_ins, ex, fmt) -> float | None:
    """The operation on its inputs' exact values rounded to their formats, against its
    exact result: the largest error in ULPs (none where an input is undefined, or beyond
    its format's range: that loss is its producer's)."""
    rounded = [_round(x, a.dtype) for x, a in zip(ex_ins, e.in_avals)]
    if not all(jaxpr.format_of(a.dtype) is not None and not np.any(np.isinf(r.astype(np.float64)) & _finite(x))
               or jaxpr.format_of(a.dtype) is None and not np.any(_undefined(x))
               for x, r, a in zip(ex_ins, rounded, e.in_avals)):
        return None
    got = _bind(e, [jnp.asarray(r) for r in rounded])[0]
    lfmt = fmt  # a widening conversion is measured in its input's (coarser) format: it only copies
    if e.primitive.name == "convert_element_type" and (f_in := jaxpr.format_of(e.in_avals[0].dtype)):
        lfmt = f_in if f_in.mant < fmt.mant else fmt
        got = got.astype(lfmt.dtype)
    loc = _ulps(got, ex, lfmt)
    loc = np.where(~np.isfinite(got.astype(np.float64)) & _finite(ex), np.inf, loc)  # overflow, NaN: lost
    loc = loc[~np.isnan(loc)]
    return float(np.max(np.abs(loc))) if loc.size else None


def _step(i, e, ins, outs, ex_ins, ex_outs, allowance) -> Step:
    aval, out, ex = e.out_avals[0], np.asarray(outs[0]), ex_outs[0]
    fmt = jaxpr.format_of(aval.dtype)
    marks = []
    base = dict(index=i, primitive=e.primitive.name, source=e.source, scope=e.scope, dtype=str(aval.dtype),
                shape=tuple(aval.shape))
    if fmt is None:  # booleans and integers: right or wrong
        got = np.asarray(ex.tolist(), dtype=object).reshape(ex.shape)
        bad = [j for j in np.ndindex(ex.shape) if got[j] is not UNDECIDED and got[j] != out[j].item()]
        j = bad[0] if bad else (0,) * out.ndim
        return Step(**base, entry=j, computed=out[j].item(), exact=ex[j], error=None, local=None,
                    marks=["differs"] if bad else [])
    err = _ulps(out, ex, fmt)
    local = _local_error(e, ex_ins, ex, fmt)
    # the real result of the operation on the computed inputs: what this one rounding did
    own = _valued(balls.apply_or_float64(e.primitive, e.params, [balls.to_balls(np.asarray(x)) for x in ins],
                                         e.in_avals)[0])
    own_o = _ordinals(own, fmt)
    sub = lambda o: (o != 0) & (np.abs(o) < (1 << fmt.mant))  # noqa: E731  non-zero subnormal ordinals
    undefined = _undefined(ex)
    ex_finite = _finite(ex)  # as a real: a value beyond the format's range is finite
    outf = out.astype(np.float64)
    zero = outf == 0
    # non-finite where the real is finite, or NaN where it is undefined (a NaN breaks training all the same)
    broke = (~np.isfinite(outf) & ex_finite) | (np.isnan(outf) & undefined)
    if np.any(broke):
        marks.append("nonfinite")
    if local is not None and local > allowance:
        marks.append("lost")
    sub_in = any(jaxpr.format_of(a.dtype) is not None and np.any((np.asarray(x, np.float64) != 0) & (
        np.abs(np.asarray(x, np.float64)) < jaxpr.format_of(a.dtype).smallest_normal)) for x, a in zip(ins, e.in_avals))
    own_defined = ~_undefined(own)
    own_err = np.where(own_defined, _ulps(out, own, fmt), 0.0)
    if np.any(zero & sub(own_o)):
        marks.append("flush")
    elif sub_in and np.any(np.abs(own_err) > allowance):
        marks.append("subnormal input")  # read as 0: the loss is the input's flush, not this result's
    elif np.any(zero & own_defined & (own_o == 0) & np.vectorize(lambda v: v is not UNDECIDED and v != 0,
                                                                  otypes=[bool])(own)):
        marks.append("underflow")
    if np.any(np.isinf(outf) & _finite(own)):
        marks.append("overflow")
    if np.any(undefined):
        marks.append("undefined")
    if e.primitive.name not in balls.SUPPORTED:  # its "exact" value is float64's (balls.float64_apply)
        marks.append("no exact rule")
    key = np.where(np.isnan(err), -1.0, np.abs(err))
    if "nonfinite" in marks:  # the entry shown is a non-finite one (its value is what the cause names)
        key = np.where(broke, np.where(np.isnan(key), 0.0, key) + 1.0, -2.0)
    j = np.unravel_index(int(np.argmax(key)), key.shape) if key.size else ()
    e_j = err[j]
    return Step(**base, entry=tuple(int(x) for x in j), computed=float(outf[j]), exact=ex[j],
                error=None if np.isnan(e_j) else float(e_j), local=local, marks=marks)


def _root_fusion(hlo: str, lines: int = HLO_LINES) -> list[str]:
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

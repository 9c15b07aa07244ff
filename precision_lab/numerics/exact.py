"""An exact evaluator of jaxprs: every primitive on the real numbers, with mpmath.

The jaxpr is first flattened (see `jaxpr`): a list of real operations, each with its
source line.

Values are numpy object arrays (0-d for scalars) whose entries are
``mpmath.mpf`` for floats, ``int`` for integers, ``bool`` for booleans, or
``POISON``. Constants are taken as traced (their value in their format, which
is exact as a real). Floats are computed at a working precision ``prec`` (bits):
÷ and every function round once at ``prec``; +, − and × carry 16 × ``prec`` bits,
so that they are exact on any two values of a format (1e308 + 2**−1074 needs 2099
bits). `walk` re-evaluates at a doubled precision and keeps raising it while any
result, rounded to its format, changes.

Real semantics, where IEEE arithmetic and the reals part ways:

* converting between float types is the identity (exact); to an integer type it
  truncates toward zero, to bool it tests ≠ 0; ``reduce_precision`` is the identity;
* infinite real values are ±∞: x/0 = ±∞ with the sign of x ≠ 0, log 0 = −∞,
  log1p(−1) = −∞, exp(∞) = ∞, 1/∞ = 0, rsqrt 0 = ∞, 0**negative = ∞;
* undefined values are ``POISON``, which propagates through every operation: 0/0,
  ∞/∞, ∞ − ∞, 0·∞, the log or square root of a negative number, a negative number to
  a non-integer power. Two exceptions: ``select_n`` drops the branches not taken, and
  POISON × an exact 0 is 0 (a factor that is exactly 0 kills an undefined one, as
  autodiff's zero cotangents mean it to). A poisoned predicate or index poisons
  the result.

An unsupported primitive raises `UnsupportedPrimitive`, naming it.
"""

from __future__ import annotations

import operator

import jax.numpy as jnp
import mpmath
import numpy as np
from jax import lax

from . import rounding
from .jaxpr import CALLS, MOVES, Flat, UnsupportedPrimitive, flatten, format_of, interpret, scatter_targets


class _Poison:
    """The value of an undefined real operation (0/0, ∞ − ∞, log of a negative number)."""

    def __repr__(self):
        return "POISON"


POISON = _Poison()


# ------------------------------------------------------------------ values


def to_exact(x, dtype=None) -> np.ndarray:
    """A concrete value (JAX or numpy array, Python scalar) as an exact object array."""
    a = np.asarray(x)
    dt = np.dtype(dtype) if dtype is not None else a.dtype
    out = np.empty(a.shape, object)
    for i in np.ndindex(a.shape):
        v = a[i]
        if dt == np.bool_:
            out[i] = bool(v)
        elif np.issubdtype(dt, np.integer):
            out[i] = int(v)
        else:
            f = float(v)  # every format's value is exactly a float64
            out[i] = POISON if f != f else mpmath.mpf(f)
    return out


def _real(v):
    """An mpmath result as a value: complex or NaN results are undefined."""
    if isinstance(v, mpmath.mpf):
        return POISON if mpmath.isnan(v) else v
    return POISON


def _strict(f):
    def g(*args):
        if any(a is POISON for a in args):
            return POISON
        return f(*args)

    return g


def _isinf(x):
    return isinstance(x, mpmath.mpf) and mpmath.isinf(x)


ARITH_FACTOR = 16  # +, −, × carry this many times the working precision


def _arith(f, op):
    """+, − or × on two values: integers as integers, reals at ARITH_FACTOR × the working precision."""

    def g(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return op(a, b)
        return _real(f(a, b, prec=ARITH_FACTOR * mpmath.mp.prec))

    return g


_add, _sub, _times = _arith(mpmath.fadd, operator.add), _arith(mpmath.fsub, operator.sub), _arith(
    mpmath.fmul, operator.mul)


def _mul(a, b):
    if (a is POISON and b == 0) or (b is POISON and a == 0):
        return mpmath.mpf(0)
    if a is POISON or b is POISON:
        return POISON
    return _times(a, b)


@_strict
def _div(a, b):
    if isinstance(a, int) and isinstance(b, int):  # integer division truncates toward zero
        return POISON if b == 0 else (abs(a) // abs(b)) * (1 if (a >= 0) == (b >= 0) else -1)
    if b == 0:
        return POISON if a == 0 else mpmath.mpf("inf") * mpmath.sign(a)
    return _real(a / b)


def _pow(a, b):
    if a == 0 and b < 0:
        return mpmath.mpf("inf")
    if a < 0 and not (mpmath.isint(b) or _isinf(b)):
        return POISON
    return _real(mpmath.power(a, b))


def _log(a):
    return POISON if a < 0 else _real(mpmath.log(a))


def _log1p(a):
    return POISON if a < -1 else _real(mpmath.log1p(a))


def _sqrt(a):
    return POISON if a < 0 else _real(mpmath.sqrt(a))


def _rsqrt(a):
    return POISON if a < 0 else mpmath.mpf("inf") if a == 0 else _real(1 / mpmath.sqrt(a))


def _logistic(a):
    return _real(1 / (1 + mpmath.exp(-a)))


def _sign(a):
    return type(a)(mpmath.sign(a)) if isinstance(a, mpmath.mpf) else (a > 0) - (a < 0)


def _max(a, b):
    return a if a >= b else b


def _min(a, b):
    return a if a <= b else b


def _wrap(f):
    """A real function of mpmath numbers, its result checked (NaN or complex: POISON)."""

    def g(*a):
        r = f(*a)
        return r if isinstance(r, (bool, int)) else _real(r)

    return _strict(g)


_UNARY = {
    "neg": _strict(operator.neg), "abs": _strict(abs), "sign": _strict(_sign),
    "exp": _wrap(mpmath.exp), "exp2": _wrap(lambda a: mpmath.power(2, a)), "log": _strict(_log),
    "log1p": _strict(_log1p), "expm1": _wrap(mpmath.expm1), "logistic": _strict(_logistic),
    "tanh": _wrap(mpmath.tanh), "sqrt": _strict(_sqrt), "rsqrt": _strict(_rsqrt),
    "sin": _wrap(mpmath.sin), "cos": _wrap(mpmath.cos), "erf": _wrap(mpmath.erf),
    "cosh": _wrap(mpmath.cosh), "sinh": _wrap(mpmath.sinh),
    "square": lambda a: _mul(a, a), "not": _strict(lambda a: (not a) if isinstance(a, bool) else ~a),
    "is_finite": _strict(lambda a: bool(mpmath.isfinite(a))),
    "stop_gradient": lambda a: a, "copy": lambda a: a, "copy_p": lambda a: a,
}
_BINARY = {
    "add": _strict(_add), "add_any": _strict(_add), "sub": _strict(_sub),
    "mul": _mul, "div": _div, "pow": _strict(_pow), "max": _strict(_max), "min": _strict(_min),
    "eq": _strict(operator.eq), "ne": _strict(operator.ne), "lt": _strict(operator.lt),
    "le": _strict(operator.le), "gt": _strict(operator.gt), "ge": _strict(operator.ge),
    "and": _strict(operator.and_), "or": _strict(operator.or_), "xor": _strict(operator.xor),
}
_UFUNC = {k: np.frompyfunc(f, 1, 1) for k, f in _UNARY.items()} | {
    k: np.frompyfunc(f, 2, 1) for k, f in _BINARY.items()}


def _obj(x):
    a = np.empty(np.shape(x), object)
    a[...] = x
    return a


def _convert(x, new_dtype):
    dt = np.dtype(new_dtype)

    @_strict
    def one(v):
        if dt == np.bool_:
            return bool(v != 0)
        if np.issubdtype(dt, np.integer):
            return POISON if _isinf(v) else int(v)  # int() of an mpf truncates toward zero
        return mpmath.mpf(int(v)) if isinstance(v, (bool, int)) else v

    return _obj(np.frompyfunc(one, 1, 1)(x))


def _reduce(x, axes, f, zero=None):
    """Reduce an object array over `axes` with the binary `f` (`zero` for an empty axis)."""
    uf = np.frompyfunc(f, 2, 1)
    for ax in sorted(axes, reverse=True):
        empty = mpmath.mpf(0) if zero is None else zero
        x = _obj(uf.reduce(x, axis=ax)) if x.shape[ax] else np.full(np.delete(x.shape, ax), empty, object)
    return _obj(x)


def _argmax(x, axes, index_dtype):
    (ax,) = axes
    x = np.moveaxis(x, ax, -1)
    out = np.empty(x.shape[:-1], object)
    for i in np.ndindex(out.shape):
        row = list(x[i])
        out[i] = POISON if any(v is POISON for v in row) else max(range(len(row)), key=lambda j: (row[j], -j))
    return out


def _dot_general(a, b, dimension_numbers, mul=None, add=None, **_):
    (lc, rc), (lb, rb) = dimension_numbers
    lf = [d for d in range(a.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(b.ndim) if d not in rc and d not in rb]
    a2 = np.transpose(a, list(lb) + lf + list(lc))
    b2 = np.transpose(b, list(rb) + rf + list(rc))
    nb, nlf, nrf = len(lb), len(lf), len(rf)
    a3 = a2.reshape(a2.shape[: nb + nlf] + (1,) * nrf + a2.shape[nb + nlf:])
    b3 = b2.reshape(b2.shape[:nb] + (1,) * nlf + b2.shape[nb:])
    prod = _obj(np.frompyfunc(mul, 2, 1)(a3, b3) if mul else _UFUNC["mul"](a3, b3))
    nc = len(lc)
    return _reduce(prod, range(prod.ndim - nc, prod.ndim), add or _BINARY["add"]) if nc else prod


def _select_n(pred, *cases):
    shape = np.broadcast_shapes(pred.shape, *(c.shape for c in cases))
    pred = np.broadcast_to(pred, shape)
    cases = [np.broadcast_to(c, shape) for c in cases]
    out = np.empty(shape, object)
    for i in np.ndindex(shape):
        p = pred[i]
        out[i] = POISON if p is POISON else cases[int(p)][i]
    return out




def _move(prim, params, args, in_avals):
    """Run a data-moving primitive on the ids of the data entries (with JAX itself),
    then pick the exact values by id: every layout rule of XLA is honoured as is."""
    data = MOVES[prim.name] or tuple(range(len(args)))
    pool, ops, base = [], [], 0
    for i, (a, aval) in enumerate(zip(args, in_avals)):
        if i in data:
            ops.append(jnp.arange(base, base + a.size, dtype=jnp.int64).reshape(a.shape))
            pool.extend(a.ravel())
            base += a.size
        else:
            if any(v is POISON for v in a.ravel()):
                return np.full(np.broadcast_shapes(*(x.shape for x in args)), POISON, object)
            ops.append(jnp.asarray(np.asarray(a.tolist(), aval.dtype).reshape(a.shape)))
    if prim.name in ("gather", "scatter") and params.get("fill_value") is not None:
        params = dict(params, fill_value=-1)
    found = prim.bind(*ops, **params)
    return [_pick(pool, np.asarray(ids)) for ids in found] if prim.multiple_results else _pick(pool, np.asarray(found))


def _pick(pool: list, ids: np.ndarray) -> np.ndarray:
    out = np.empty(ids.shape, object)
    for i in np.ndindex(ids.shape):
        out[i] = pool[ids[i]] if 0 <= ids[i] < len(pool) else POISON  # out of bounds: fill value
    return out




def scatter_add(params, operand, indices, updates, add) -> np.ndarray:
    """scatter-add on object arrays: each update entry added (with `add`) into its target."""
    targets = scatter_targets(params, operand.shape, np.asarray(indices.tolist(), np.int64).reshape(indices.shape),
                              updates.shape)
    out = operand.copy().ravel()
    for j, t in zip(np.ndindex(updates.shape), targets.ravel()):
        if t >= 0:
            out[t] = add(out[t], updates[j])
    return out.reshape(operand.shape)


def _clamp(lo, x, hi):
    return _obj(_UFUNC["min"](_UFUNC["max"](x, lo), hi))


def _iota(dtype, shape, dimension, **_):
    return to_exact(lax.broadcasted_iota(dtype, shape, dimension))


SUPPORTED = sorted(set(_UFUNC) | set(MOVES) | set(CALLS) | {
    "integer_pow", "select_n", "convert_element_type", "reduce_precision", "clamp", "iota",
    "reduce_sum", "reduce_max", "reduce_min", "argmax", "argmin", "dot_general", "scatter-add"})


def apply(prim, params: dict, args: list, in_avals=None) -> list:
    """The exact result(s) of one primitive on exact object arrays (a list of outputs)."""
    name = prim.name
    args = [_obj(a) for a in args]
    if name in _UNARY or name in _BINARY:
        out = _UFUNC[name](*args)
    elif name == "integer_pow":
        out = np.frompyfunc(_strict(lambda a: _real(mpmath.power(a, params["y"])) if not
                                    (a == 0 and params["y"] < 0) else mpmath.mpf("inf")), 1, 1)(args[0])
    elif name == "select_n":
        out = _select_n(*args)
    elif name == "convert_element_type":
        out = _convert(args[0], params["new_dtype"])
    elif name == "reduce_precision":
        out = args[0]  # exactly: the identity (the rounding it stands for is the format's)
    elif name == "clamp":
        out = _clamp(*args)
    elif name == "iota":
        out = _iota(**params)
    elif name in ("reduce_sum", "reduce_max", "reduce_min"):
        f = {"reduce_sum": _BINARY["add"], "reduce_max": _BINARY["max"], "reduce_min": _BINARY["min"]}[name]
        out = _reduce(args[0], params["axes"], f)
    elif name in ("argmax", "argmin"):
        x = args[0] if name == "argmax" else _obj(_UFUNC["neg"](args[0]))
        out = _argmax(x, params["axes"], params["index_dtype"])
    elif name == "dot_general":
        out = _dot_general(*args, **params)
    elif name == "scatter-add":
        if any(v is POISON for v in args[1].ravel()):
            out = np.full(args[0].shape, POISON, object)
        else:
            out = scatter_add(params, args[0], args[1], args[2], _BINARY["add"])
    elif name in MOVES:
        out = _move(prim, params, args, in_avals)
    else:
        raise UnsupportedPrimitive(f"The exact evaluator has no rule for primitive `{name}`.")
    return [_obj(o) for o in out] if prim.multiple_results else [_obj(out)]




def run(flat: Flat, args, prec: int, visit=None, fallback: bool = False) -> list:
    """Evaluate a flattened jaxpr exactly at `prec` bits; `visit(i, ins, outs)` sees
    every equation's exact inputs and outputs. Returns the exact outputs. With
    `fallback`, a primitive with no exact rule is run in float64 instead (see
    `float64_apply`); without, it raises UnsupportedPrimitive."""
    with mpmath.workprec(prec):
        return interpret(flat, args, to_exact, _apply_or_float64 if fallback else apply, visit)


def _apply_or_float64(prim, params: dict, args: list, in_avals=None) -> list:
    try:
        return apply(prim, params, args, in_avals)
    except UnsupportedPrimitive:
        return float64_apply(prim, params, args, in_avals)


def float64_apply(prim, params: dict, args: list, in_avals) -> list:
    """A primitive with no exact rule, run by JAX in float64 on its inputs rounded to
    float64: an approximation, which callers must flag (an undefined input gives
    NaN, and a NaN result is undefined)."""
    ops, poisoned = [], False
    for a, aval in zip(args, in_avals):
        a = _obj(a)
        if np.issubdtype(aval.dtype, np.floating) or format_of(aval.dtype) is not None:
            f = np.frompyfunc(lambda v: np.nan if v is POISON else float(v), 1, 1)(a)
            ops.append(np.asarray(f, np.float64).reshape(a.shape))
        else:  # an undefined index or flag makes every result undefined
            poisoned |= any(v is POISON for v in a.ravel())
            ops.append(np.asarray([0 if v is POISON else v for v in a.ravel()], aval.dtype).reshape(a.shape))
    out = prim.bind(*ops, **params)
    outs = [to_exact(o) for o in (out if prim.multiple_results else [out])]
    return [np.full(o.shape, POISON, object) for o in outs] if poisoned else outs


apply_or_float64 = _apply_or_float64


def eval_jaxpr(closed, *args, prec: int = 256) -> list:
    """The exact values of a closed jaxpr's outputs on concrete `args` (object arrays)."""
    return run(flatten(closed), args, prec)




def round_ordinal(v, fmt) -> int | None:
    """Ordinal of the value of `fmt` nearest to the exact real `v` (ties to even),
    ±(max_ordinal + 1) beyond the rounding range; None for POISON or NaN. One rounding,
    straight from the mpf's exact bits (rounding.binary_ordinal): no double rounding
    through float64."""
    if v is POISON:
        return None
    v = mpmath.mpf(v)
    if mpmath.isnan(v):
        return None
    if mpmath.isinf(v):
        return fmt.max_ordinal + 1 if v > 0 else -(fmt.max_ordinal + 1)
    sign, man, exp, _ = v._mpf_
    return rounding.binary_ordinal(-man if sign else man, exp, fmt)
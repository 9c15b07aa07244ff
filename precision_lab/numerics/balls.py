"""Tier 2 of a user function's reference: its jaxpr on ball arithmetic (python-flint's arb).

Every real value is a ball (midpoint ± radius) that arb guarantees to contain the
exact value, at a working precision; integers and booleans are exact Python values.
The semantics are exact.py's (conversions between floats are the identity, and so
on). What a ball cannot settle at this precision is ``UNDECIDED``: a comparison of
overlapping balls, a log or square root of a ball that holds 0, a division by one,
an undefined real value (arb gives NaN), a conversion to an integer across an integer
boundary. ``UNDECIDED`` propagates like exact.py's POISON: select_n drops the
branches not taken, and a factor that is exactly 0 kills it.

`evaluate` runs a flattened (vmapped) jaxpr on a batch of points at a precision;
`settle` raises the precision (×4) while a point's output ball does not round to one
value of the format, up to a cap: what is settled is proven (arb's enclosures are
rigorous); what is not is unresolved.
"""

from __future__ import annotations

import numpy as np
from flint import arb, ctx

from . import exact
from . import jaxpr

UNDECIDED = exact.POISON  # one mark for "no value here", as exact.py's undefined values


def _to_balls(a) -> np.ndarray:
    """A numpy array (or scalar) as an object array of exact balls, ints or bools."""
    a = np.asarray(a)
    out = np.empty(a.shape, object)
    for i in np.ndindex(a.shape):
        v = a[i]
        if a.dtype == np.bool_:
            out[i] = bool(v)
        elif np.issubdtype(a.dtype, np.integer):
            out[i] = int(v)
        else:
            f = float(v)
            out[i] = UNDECIDED if f != f else (arb(f) if np.isfinite(f) else _inf(f))
    return out


def _inf(f):
    return arb.pos_inf() if f > 0 else arb.neg_inf()


def _ball(v):
    """A ball's value, or UNDECIDED where arb has none (NaN)."""
    return UNDECIDED if v.is_nan() else v


def _strict(f):
    """f, where no argument is UNDECIDED (then UNDECIDED). Written out, not with any():
    it wraps every operation on every point."""
    def g(*args):
        for a in args:
            if a is UNDECIDED:
                return UNDECIDED
        return f(*args)

    return g


def _num(v):
    return arb(v) if isinstance(v, (bool, int)) else v


def _arith(op_int, op_ball):
    def g(a, b):
        if type(a) is arb and type(b) is arb:  # the common case, first and fast
            r = op_ball(a, b)
            return UNDECIDED if r.is_nan() else r
        if a is UNDECIDED or b is UNDECIDED:
            return UNDECIDED
        if isinstance(a, int) and isinstance(b, int):
            return op_int(a, b)
        return _ball(op_ball(_num(a), _num(b)))

    return g


def _exact_zero(v) -> bool:
    return (isinstance(v, int) and v == 0) or (isinstance(v, arb) and v.is_zero())


def _mul(a, b):
    if type(a) is arb and type(b) is arb and not (a.is_zero() or b.is_zero()):  # the common case
        r = a * b
        return UNDECIDED if r.is_nan() else r
    if _exact_zero(a) or _exact_zero(b):  # an exact 0 kills even an undecided factor
        return 0 if isinstance(a, int) and isinstance(b, int) else arb(0)
    return _times(a, b)


@_strict
def _div(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return UNDECIDED if b == 0 else (abs(a) // abs(b)) * (1 if (a >= 0) == (b >= 0) else -1)
    b = _num(b)
    if b.contains(0):
        return UNDECIDED
    return _ball(_num(a) / b)


def _cmp(lt):
    """A comparison (as `lt` on certainly-true relations): True or False where
    certain, UNDECIDED where the balls overlap."""

    @_strict
    def g(a, b):
        if isinstance(a, (bool, int)) and isinstance(b, (bool, int)):
            return lt(a, b)
        if a is b:  # one real compared with itself (max(x, c) is x itself where x > c for certain)
            return _SELF[_NAME[lt]]
        a, b = _num(a), _num(b)
        if lt(a, b):
            return True
        return False if _NOT[lt](a, b) else UNDECIDED

    return g


def _lt(a, b):
    return a < b


def _le(a, b):
    return a <= b


def _gt(a, b):
    return a > b


def _ge(a, b):
    return a >= b


def _eq(a, b):
    return a == b


def _ne(a, b):
    return a != b


_NOT = {_lt: _ge, _le: _gt, _gt: _le, _ge: _lt, _eq: _ne, _ne: _eq}
_NAME = {_lt: "lt", _le: "le", _gt: "gt", _ge: "ge", _eq: "eq", _ne: "ne"}


def _fn(name):
    """A real function of a ball, by arb's method `name`."""

    @_strict
    def g(a):
        return _ball(getattr(_num(a), name)())

    return g


@_strict
def _logistic(a):
    a = _num(a)
    if a < 0:  # e^a/(1 + e^a): 1/(1 + e^−a) would overflow e^−a at a = −1e300
        e = a.exp()
        return _ball(e / (1 + e))
    return _ball(1 / (1 + (-a).exp()))


@_strict
def _log(a):
    a = _num(a)
    return UNDECIDED if not a > 0 else _ball(a.log())


@_strict
def _log1p(a):
    a = _num(a)
    return UNDECIDED if not a > -1 else _ball(a.log1p())


@_strict
def _sqrt(a):
    a = _num(a)
    return UNDECIDED if not a >= 0 else _ball(a.sqrt())


@_strict
def _rsqrt(a):
    a = _num(a)
    return UNDECIDED if not a > 0 else _ball(a.rsqrt())


@_strict
def _pow(a, b):
    a, b = _num(a), _num(b)
    if b.is_exact() and b.is_integer():  # x ** 2.0 is x², defined for every x
        n = int(b.unique_fmpz())
        return UNDECIDED if n < 0 and a.contains(0) else _ball(a ** n)
    if not a > 0:  # a negative base, or one that may be 0, with a non-integer exponent
        return UNDECIDED
    return _ball(a ** b)


def _integer_pow(y):
    @_strict
    def g(a):
        a = _num(a)
        if y < 0 and a.contains(0):
            return UNDECIDED
        return _ball(a ** y)

    return g


@_strict
def _sign(a):
    if isinstance(a, (bool, int)):
        return (a > 0) - (a < 0)
    if a.is_zero():
        return arb(0)
    if a > 0:
        return arb(1)
    if a < 0:
        return arb(-1)
    return UNDECIDED


@_strict
def _is_finite(a):
    return True if isinstance(a, (bool, int)) else bool(a.is_finite())


@_strict
def _max(a, b):
    """max: the operand itself where it is certainly the larger (so that a later x == max(x, c),
    as autodiff's rule for max asks, is decided), else arb's max of the balls."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    if _num(a) >= _num(b):
        return a
    if _num(b) >= _num(a):
        return b
    return _ball(_num(a).max(_num(b)))


@_strict
def _min(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    if _num(a) <= _num(b):
        return a
    if _num(b) <= _num(a):
        return b
    return _ball(_num(a).min(_num(b)))


@_strict
def _not(a):
    return (not a) if isinstance(a, bool) else ~a


_UNARY = {
    "neg": _strict(lambda a: -a), "abs": _strict(abs), "sign": _sign,
    "exp": _fn("exp"), "exp2": _strict(lambda a: _ball(arb(2) ** _num(a))), "log": _log, "log1p": _log1p,
    "expm1": _fn("expm1"), "logistic": _logistic, "tanh": _fn("tanh"), "sqrt": _sqrt, "rsqrt": _rsqrt,
    "sin": _fn("sin"), "cos": _fn("cos"), "erf": _fn("erf"), "cosh": _fn("cosh"), "sinh": _fn("sinh"),
    "square": lambda a: _mul(a, a), "not": _not,
    "is_finite": _is_finite, "stop_gradient": lambda a: a, "copy": lambda a: a, "copy_p": lambda a: a,
    "reduce_precision": lambda a: a,
}
_SELF = {"eq": True, "le": True, "ge": True, "ne": False, "lt": False, "gt": False}
_add = _arith(lambda x, y: x + y, lambda x, y: x + y)
_times = _arith(lambda x, y: x * y, lambda x, y: x * y)
_BINARY = {
    "add": _add, "add_any": _add, "sub": _arith(lambda x, y: x - y, lambda x, y: x - y),
    "mul": _mul, "div": _div, "pow": _pow, "max": _max, "min": _min,
    "eq": _cmp(_eq), "ne": _cmp(_ne), "lt": _cmp(_lt), "le": _cmp(_le), "gt": _cmp(_gt), "ge": _cmp(_ge),
    "and": _strict(lambda a, b: a & b), "or": _strict(lambda a, b: a | b), "xor": _strict(lambda a, b: a ^ b),
}
_UFUNC = {k: np.frompyfunc(f, 1, 1) for k, f in _UNARY.items()} | {
    k: np.frompyfunc(f, 2, 1) for k, f in _BINARY.items()}


_obj = exact._obj


def _convert(x, new_dtype):
    dt = np.dtype(new_dtype)

    @_strict
    def one(v):
        if isinstance(v, (bool, int)):
            return bool(v) if dt == np.bool_ else (int(v) if np.issubdtype(dt, np.integer) else arb(int(v)))
        if dt == np.bool_:
            return False if v.is_zero() else (True if not v.contains(0) else UNDECIDED)
        if np.issubdtype(dt, np.integer):
            if not v.is_finite():
                return UNDECIDED
            lo, hi = (_trunc(b) for b in (v.lower(), v.upper()))
            return lo if lo == hi else UNDECIDED
        return v

    return _obj(np.frompyfunc(one, 1, 1)(x))


def _trunc(b: arb) -> int:
    man, e = b.man_exp()
    man, e = int(man), int(e)
    q = man << e if e >= 0 else abs(man) >> -e
    return q if e >= 0 else (q if man >= 0 else -q)


def _argmax(x, axes, sign):
    (ax,) = axes
    x = np.moveaxis(x, ax, -1)
    out = np.empty(x.shape[:-1], object)
    for i in np.ndindex(out.shape):
        row = [(_num(v) * sign if v is not UNDECIDED else UNDECIDED) for v in x[i]]
        if any(v is UNDECIDED for v in row):
            out[i] = UNDECIDED
            continue
        w = max(range(len(row)), key=lambda j: (float(row[j].mid()), -j))
        out[i] = w if all(j == w or row[w] > row[j] for j in range(len(row))) else UNDECIDED
    return out


def apply(prim, params: dict, args: list, in_avals) -> list:
    """The ball result(s) of one primitive."""
    name = prim.name
    same = len(args) == 2 and args[0] is args[1]  # one value compared with itself
    args = [_obj(a) for a in args]
    if same and name in _SELF:  # x ≠ x (a NaN test) is False for every real x, however wide its ball
        out = np.frompyfunc(lambda v: UNDECIDED if v is UNDECIDED else _SELF[name], 1, 1)(args[0])
    elif name in _UNARY or name in _BINARY:
        out = _UFUNC[name](*args)
    elif name == "integer_pow":
        out = np.frompyfunc(_integer_pow(params["y"]), 1, 1)(args[0])
    elif name == "select_n":
        out = exact._select_n(*args)  # UNDECIDED is exact.POISON: a branch not taken is dropped
    elif name == "convert_element_type":
        out = _convert(args[0], params["new_dtype"])
    elif name == "clamp":
        out = _UFUNC["min"](_UFUNC["max"](args[1], args[0]), args[2])
    elif name == "iota":
        out = _to_balls(np.asarray(exact._iota(**params).tolist(), params["dtype"]))
    elif name in ("reduce_sum", "reduce_max", "reduce_min"):
        out = exact._reduce(args[0], params["axes"], {"reduce_sum": _add, "reduce_max": _max, "reduce_min": _min}[name],
                            arb(0))
    elif name in ("argmax", "argmin"):
        out = _argmax(args[0], params["axes"], 1 if name == "argmax" else -1)
    elif name == "dot_general":
        out = exact._dot_general(*args, **params, mul=_mul, add=_add)
    elif name == "scatter-add":
        if any(v is UNDECIDED for v in args[1].ravel()):
            out = np.full(args[0].shape, UNDECIDED, object)
        else:
            out = exact.scatter_add(params, args[0], args[1], args[2], _add)
    elif name in jaxpr.MOVES:
        out = exact._move(prim, params, args, in_avals)
    else:
        raise jaxpr.UnsupportedPrimitive(f"The exact evaluator has no rule for primitive `{name}`.")
    return [_obj(o) for o in out] if prim.multiple_results else [_obj(out)]


SUPPORTED = frozenset(set(_UNARY) | set(_BINARY) | set(jaxpr.MOVES) | {
    "integer_pow", "select_n", "convert_element_type", "clamp", "iota", "reduce_sum", "reduce_max", "reduce_min",
    "argmax", "argmin", "dot_general", "scatter-add"})


def unsupported(flat: jaxpr.Flat) -> list[str]:
    """The primitives of a flattened jaxpr that have no ball rule."""
    return sorted({e.primitive.name for e in flat.eqns} - SUPPORTED)


def evaluate(flat: jaxpr.Flat, args, prec: int) -> list:
    """A flattened jaxpr's outputs on balls at `prec` bits (args: numpy arrays)."""
    old = ctx.prec
    ctx.prec = prec
    try:
        return jaxpr.interpret(flat, args, _to_balls, apply)
    finally:
        ctx.prec = old


def rounded(v, fmt) -> int | None:
    """The ordinal of `fmt` that every real of the ball `v` rounds to (±(max+1)
    beyond the range), or None where the ball straddles a rounding boundary or has
    no value."""
    if v is UNDECIDED or isinstance(v, (bool, int)):
        return None if v is UNDECIDED else exact.round_ordinal(exact.mpmath.mpf(int(v)), fmt)
    if not v.is_finite():
        return None
    old = ctx.prec
    ctx.prec = BOUND_PREC  # the ball's ends, rounded outward, at the precision they need (53 bits would blur them)
    try:
        ends = (v.lower(), v.upper())
    finally:
        ctx.prec = old
    lo, hi = (exact.round_ordinal(exact.mpmath.mpf(tuple(int(t) for t in b.man_exp())), fmt) for b in ends)
    return lo if lo == hi else None


BOUND_PREC = 1 << 15  # bits of a ball's ends: beyond any midpoint the ball tier computes

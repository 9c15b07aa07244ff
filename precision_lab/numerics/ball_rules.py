"""The ball rules of single operations: each primitive's real result as an arb ball
(python-flint), exact Python ints and bools, or UNDECIDED (see balls.py for the
semantics). Structure and reductions are in ball_structure.py."""

from __future__ import annotations

import math

import numpy as np
from flint import arb

from .structure import UNDECIDED


def ball(v):
    """A ball's value, or UNDECIDED where arb has none (NaN)."""
    return UNDECIDED if v.is_nan() else v


def strict(f):
    """f, where no argument is UNDECIDED (then UNDECIDED). Written out, not with any():
    it wraps every operation on every point."""
    def g(*args):
        for a in args:
            if a is UNDECIDED:
                return UNDECIDED
        return f(*args)

    return g


def num(v):
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
        return ball(op_ball(num(a), num(b)))

    return g


def _exact_zero(v) -> bool:
    return (isinstance(v, int) and v == 0) or (isinstance(v, arb) and v.is_zero())


def mul(a, b):
    if type(a) is arb and type(b) is arb and not (a.is_zero() or b.is_zero()):  # the common case
        r = a * b
        return UNDECIDED if r.is_nan() else r
    if _exact_zero(a) or _exact_zero(b):  # an exact 0 kills any factor: undecided, undefined or ±∞
        return 0 if isinstance(a, int) and isinstance(b, int) else arb(0)
    return _times(a, b)


@strict
def _div(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return UNDECIDED if b == 0 else (abs(a) // abs(b)) * (1 if (a >= 0) == (b >= 0) else -1)
    a, b = num(a), num(b)
    if b.is_zero() and (a > 0 or a < 0):  # x/0 = ±∞, with the sign of x ≠ 0
        return infinity(1 if a > 0 else -1)
    if b.contains(0):
        return UNDECIDED
    return ball(a / b)


def _cmp(lt):
    """A comparison (as `lt` on certainly-true relations): True or False where
    certain, UNDECIDED where the balls overlap."""

    @strict
    def g(a, b):
        if isinstance(a, (bool, int)) and isinstance(b, (bool, int)):
            return lt(a, b)
        if a is b:  # one real compared with itself (max(x, c) is x itself where x > c for certain)
            return SELF[_NAME[lt]]
        a, b = num(a), num(b)
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


def fn(name):
    """A real function of a ball, by arb's method `name`."""

    @strict
    def g(a):
        return ball(getattr(num(a), name)())

    return g


@strict
def _logistic(a):
    a = num(a)
    if a < 0:  # e^a/(1 + e^a): 1/(1 + e^−a) would overflow e^−a at a = −1e300
        e = a.exp()
        return ball(e / (1 + e))
    return ball(1 / (1 + (-a).exp()))


@strict
def _log(a):
    a = num(a)
    if a.is_zero():
        return arb.neg_inf()  # log 0 = −∞
    return UNDECIDED if not a > 0 else ball(a.log())


@strict
def log1p(a):
    a = num(a)
    if a.is_exact() and a == -1:
        return arb.neg_inf()  # log1p(−1) = −∞
    return UNDECIDED if not a > -1 else ball(a.log1p())


@strict
def _sqrt(a):
    a = num(a)
    return UNDECIDED if not a >= 0 else ball(a.sqrt())


@strict
def _rsqrt(a):
    a = num(a)
    if a.is_zero():
        return arb.pos_inf()  # 1/√0 = ∞
    return UNDECIDED if not a > 0 else ball(a.rsqrt())


@strict
def _pow(a, b):
    a, b = num(a), num(b)
    if b.is_exact() and b.is_integer():  # x ** 2.0 is x², defined for every x
        n = int(b.unique_fmpz())
        if n < 0 and a.contains(0):
            return arb.pos_inf() if a.is_zero() else UNDECIDED  # 0 ** negative = ∞
        return ball(a ** n)
    if a.is_zero() and b < 0:
        return arb.pos_inf()
    if not a > 0:  # a negative base, or one that may be 0, with a non-integer exponent
        return UNDECIDED
    return ball(a ** b)


def integer_pow(y):
    @strict
    def g(a):
        a = num(a)
        if y < 0 and a.contains(0):
            return arb.pos_inf() if a.is_zero() else UNDECIDED
        return ball(a ** y)

    return g


@strict
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


@strict
def _is_finite(a):
    return True if isinstance(a, (bool, int)) else bool(a.is_finite())


@strict
def maximum(a, b):
    """max: the operand itself where it is certainly the larger (so that a later x == max(x, c),
    as autodiff's rule for max asks, is decided), else arb's max of the balls."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    if num(a) >= num(b):
        return a
    if num(b) >= num(a):
        return b
    return ball(num(a).max(num(b)))


@strict
def minimum(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    if num(a) <= num(b):
        return a
    if num(b) <= num(a):
        return b
    return ball(num(a).min(num(b)))


@strict
def _not(a):
    return (not a) if isinstance(a, bool) else ~a


def _domain(name, inside):
    """arb's `name` where the ball lies inside the function's domain (`inside(ball)`
    decided true), else UNDECIDED: outside, the real value is undefined; across the
    edge, more bits may decide."""
    @strict
    def g(a):
        a = num(a)
        return ball(getattr(a, name)()) if inside(a) else UNDECIDED

    return g


@strict
def _lgamma(a):
    """ln|Γ(a)|: arb's lgamma for a > 0; ln|Γ| for a negative ball with no integer."""
    a = num(a)
    if a.is_exact() and (not a.is_finite() and a > 0 or a.is_integer() and a <= 0):
        return arb.pos_inf()  # ln Γ(∞) = ∞; ln|Γ| at a pole (an exact 0, −1, −2, …) is +∞ from both sides
    if a > 0:
        return ball(a.lgamma())
    if a.contains_integer() or not a < 0:
        return UNDECIDED  # a pole (ln|Γ| is +∞ there), or a ball across one
    return ball(abs(a.gamma()).log())


@strict
def _digamma(a):
    a = num(a)
    if a.is_exact() and not a.is_finite() and a > 0:
        return arb.pos_inf()  # ψ(∞) = ∞ (at a pole the two sides have opposite signs: undefined)
    return UNDECIDED if not a > 0 and a.contains_integer() else ball(a.digamma())


@strict
def _cbrt(a):
    a = num(a)
    if a.is_zero():
        return arb(0)
    if a > 0:
        return ball(a.root(3))
    if a < 0:
        return -ball((-a).root(3))
    return UNDECIDED


def _integral(name):
    """floor or ceil: an exact integer where both ends of the ball give the same one."""
    @strict
    def g(a):
        a = num(a)
        r = getattr(a, name)()
        return r if r.is_exact() else UNDECIDED

    return g


@strict
def _rem(a, b):
    """C's fmod: a − b·trunc(a/b), where trunc(a/b) is decided."""
    if isinstance(a, int) and isinstance(b, int):
        return int(np.fmod(a, b))
    a, b = num(a), num(b)
    if b.contains(0):
        return UNDECIDED
    q = a / b
    if not q.is_finite():
        return UNDECIDED
    lo, hi = trunc(q.lower()), trunc(q.upper())
    return ball(a - b * lo) if lo == hi else UNDECIDED


@strict
def _atan2(y, x):
    """atan2 on the reals (y = 0 is +0: atan2(0, x < 0) = π); arb's, which widens a
    ball across the branch cut until more bits decide."""
    return ball(arb.atan2(num(y), num(x)))


UNARY = {
    "neg": strict(lambda a: -a), "abs": strict(abs), "sign": _sign,
    "exp": fn("exp"), "exp2": strict(lambda a: ball(arb(2) ** num(a))), "log": _log, "log1p": log1p,
    "expm1": fn("expm1"), "logistic": _logistic, "tanh": fn("tanh"), "sqrt": _sqrt, "rsqrt": _rsqrt,
    "sin": fn("sin"), "cos": fn("cos"), "erf": fn("erf"), "cosh": fn("cosh"), "sinh": fn("sinh"),
    "square": lambda a: mul(a, a), "not": _not,
    "tan": fn("tan"), "atan": fn("atan"), "asinh": fn("asinh"), "erfc": fn("erfc"),
    "asin": _domain("asin", lambda a: a >= -1 and a <= 1), "acos": _domain("acos", lambda a: a >= -1 and a <= 1),
    "atanh": _domain("atanh", lambda a: a > -1 and a < 1), "acosh": _domain("acosh", lambda a: a >= 1),
    "erf_inv": _domain("erfinv", lambda a: a > -1 and a < 1), "lgamma": _lgamma, "digamma": _digamma,
    "cbrt": _cbrt, "floor": _integral("floor"), "ceil": _integral("ceil"),
    "is_finite": _is_finite, "stop_gradient": lambda a: a, "copy": lambda a: a, "copy_p": lambda a: a,
    "reduce_precision": lambda a: a,
}
SELF = {"eq": True, "le": True, "ge": True, "ne": False, "lt": False, "gt": False}
add = _arith(lambda x, y: x + y, lambda x, y: x + y)
_times = _arith(lambda x, y: x * y, lambda x, y: x * y)
BINARY = {
    "add": add, "add_any": add, "sub": _arith(lambda x, y: x - y, lambda x, y: x - y),
    "mul": mul, "div": _div, "pow": _pow, "max": maximum, "min": minimum,
    "eq": _cmp(_eq), "ne": _cmp(_ne), "lt": _cmp(_lt), "le": _cmp(_le), "gt": _cmp(_gt), "ge": _cmp(_ge),
    "rem": _rem, "atan2": _atan2,
    "and": strict(lambda a, b: a & b), "or": strict(lambda a, b: a | b), "xor": strict(lambda a, b: a ^ b),
}
UFUNC = {k: np.frompyfunc(f, 1, 1) for k, f in UNARY.items()} | {
    k: np.frompyfunc(f, 2, 1) for k, f in BINARY.items()}



def trunc(b: arb) -> int:
    man, e = b.man_exp()
    man, e = int(man), int(e)
    q = man << e if e >= 0 else abs(man) >> -e
    return q if e >= 0 else (q if man >= 0 else -q)


def to_balls(a) -> np.ndarray:
    """A numpy array (or scalar) as an object array of exact balls, ints or bools."""
    a = np.asarray(a)
    out = np.empty(a.shape, object)
    if a.dtype == np.bool_:
        items = [bool(v) for v in a.ravel().tolist()]
    elif np.issubdtype(a.dtype, np.integer):
        items = [int(v) for v in a.ravel().tolist()]
    else:
        items = [UNDECIDED if f != f else (arb(f) if -math.inf < f < math.inf else infinity(f))
                 for f in a.astype(np.float64).ravel().tolist()]
    out.reshape(-1)[:] = items
    return out


def unbounded(v) -> bool:
    """A ball arb cannot bound: an infinite radius ([± ∞]) or no midpoint. [∞ ± r] with a
    finite r is ∞ itself (a ball is [m − r, m + r])."""
    return v.__class__ is arb and (not v.rad().is_finite() or v.mid().is_nan())


def infinity(f):
    return arb.pos_inf() if f > 0 else arb.neg_inf()

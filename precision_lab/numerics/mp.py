"""float64 references that are correctly rounded everywhere: double-double, with
arb balls (python-flint) where double-double cannot be trusted.

Double-double (dd.py) carries about 106 bits only while every quantity it touches
lies in about [2**-960, 2**1000]: below, its low word is quantised to 2**-1074 (a
subnormal σ(z) carries about 51 bits, and renormalising a quantised low word can
land on a half-ULP tie); above, splitting overflows. It also cannot recover the
bits a formula cancels (σ(z) − y where σ(z) ≈ y). An `Exact` array holds a DD value
for every point plus, for the points a family marks as risky, an expression that
is evaluated on arb balls (numpy object arrays of `flint.arb`) when the value is
rounded: at START_PREC bits, then at doubling precision for the points whose ball
still straddles a float64 rounding boundary. A ball encloses the exact value
(arb's arithmetic and functions are rigorous), so a point whose ball rounds to one
float64 is settled by proof, subnormals included; at MAX_PREC what is left (a value
that is exactly a tie, or exactly 0 reached by cancellation) is rounded from the
ball's midpoint.

python-flint replaced mpmath here: a multiplication of an arb by a float64 takes
~150 ns against mpmath's ~3.5 µs, and a ball says when it is settled where
mpmath's Ziv loop could only compare two precisions.

`Exact` supports what the reference formulas use: + − × /, unary −, abs, `where`
(on a condition array or a scalar), indexing (`v[..., None]`), and mixing with
Python numbers, float64 arrays (those with a leading axis of points are taken row
by row) and other `Exact` values. `to_float()` gives the float64 result, as DD's.
"""

from __future__ import annotations

import math

import numpy as np
from flint import arb

from . import dd

START_PREC = 128  # bits of the first ball evaluation
MAX_PREC = 1 << 12  # the last: a ball still across a boundary here is rounded at its midpoint
# (operands stay below 2**1100: a difference still holding 0 here is below 2**-2900, 0 in float64)


from .rounding import arb_to_float64, settled, workprec


# ---- ball arithmetic on object arrays ----------------------------------------------------
def _ball(v):
    return v if isinstance(v, arb) else arb(v)


def _div(a, b):
    """a / b on balls, with float64's x / 0 where b is exactly 0 (exact bases never
    reach it); a ball of b that holds 0 gives NaN (not settled at this precision)."""
    b = _ball(b)
    if b.is_zero():
        a = _ball(a)
        if a.is_nan() or a.contains(0):
            return arb.nan()
        return arb.pos_inf() if a > 0 else arb.neg_inf()
    return _ball(a) / b


_DIV = np.frompyfunc(_div, 2, 1)
_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: _DIV(a, b),
}
_LOG1P = np.frompyfunc(lambda v: _ball(v).log1p(), 1, 1)
_EXP = np.frompyfunc(lambda v: _ball(v).exp(), 1, 1)


def _obj(a):
    return np.asarray(a, dtype=object) if isinstance(a, np.ndarray) else a


# ---- expressions -----------------------------------------------------------------------
class Leaf:
    """A base quantity: fn(prec, rows) -> object array (rows, ...) of mpf, or one mpf
    when `rowwise` is False (a constant). Values are cached per (prec, rows)."""

    def __init__(self, fn, rowwise: bool = True):
        self.fn, self.rowwise, self.cache = fn, rowwise, {}

    def value(self, prec: int, rows: np.ndarray):
        key = (prec, rows.tobytes()) if self.rowwise else prec
        if key not in self.cache:
            with workprec(prec):
                self.cache[key] = self.fn(prec, rows) if self.rowwise else self.fn(prec)
        return self.cache[key]


class _Rows:
    """A float64 array with a leading axis of points: taken row by row."""

    def __init__(self, a):
        self.a = a


class Node:
    def __init__(self, op: str, *args):
        self.op, self.args = op, args


def _eval(e, prec: int, rows: np.ndarray, memo: dict):
    if isinstance(e, Leaf):
        return e.value(prec, rows)
    if isinstance(e, _Rows):
        return _obj(e.a[rows])
    if not isinstance(e, Node):
        return _obj(e)  # a number, or an array broadcast as it stands
    key = id(e)
    if key in memo:
        return memo[key]
    a = [_eval(x, prec, rows, memo) for x in e.args]
    if e.op in _OPS:
        v = _OPS[e.op](a[0], a[1])
    elif e.op == "neg":
        v = -a[0]
    elif e.op == "abs":
        v = np.abs(a[0]) if isinstance(a[0], np.ndarray) else abs(a[0])
    elif e.op == "where":
        c = a[0]
        v = np.where(np.asarray(c, bool), a[1], a[2]).astype(object)
    elif e.op == "getitem":
        v = a[0][e.args[1]]
    elif e.op == "log1p":
        v = _LOG1P(a[0])
    elif e.op == "exp":
        v = _EXP(a[0])
    else:  # pragma: no cover
        raise ValueError(e.op)
    memo[key] = v
    return v


def evaluate(e, rows: np.ndarray) -> np.ndarray:
    """float64 of expression e at the points `rows`, correctly rounded: on balls at
    START_PREC bits, then at doubling precision for the points with an entry whose
    ball is not settled, up to MAX_PREC (then rounded from the midpoint)."""
    out, todo, prec = None, np.arange(len(rows)), START_PREC
    while todo.size:
        with workprec(prec):
            balls = np.asarray(_eval(e, prec, rows[todo], {}), dtype=object)
            flat = balls.ravel()
            found = [arb_to_float64(v) for v in flat] if prec >= MAX_PREC else [settled(v) for v in flat]
            ok = np.array([v is not None for v in found], bool).reshape(balls.shape)
            cur = np.array([math.nan if v is None else v for v in found], np.float64).reshape(balls.shape)
        if out is None:
            out = np.empty((len(rows),) + cur.shape[1:])
        done = np.all(ok.reshape(len(todo), -1), axis=1)
        out[todo[done]] = cur[done]
        todo = todo[~done]
        prec = min(2 * prec, MAX_PREC)
    return out if out is not None else np.empty((0,))


def near_tie(v: dd.DD, rel: float = 2.0**-96) -> np.ndarray:
    """Where a DD value (accurate to ~2**-100) lies within `rel` of a float64 rounding
    boundary, so that hi may not be its correct rounding: the exact value can sit
    that close to a tie, e.g. a difference of two float64 (exact in DD, often a
    midpoint) plus a tiny term."""
    with np.errstate(all="ignore"):
        a, lo = np.abs(v.hi), np.abs(v.lo)
        u = np.spacing(a)  # the gap above |hi|; below a power of two it is u/2
        tol = rel * a
        near = (np.abs(lo - u / 2) <= tol) | (np.abs(lo - u / 4) <= tol)
        return near & np.isfinite(v.hi) & (a >= 2.0**-1022)


# ---- the array type ----------------------------------------------------------------------
class Exact:
    """float64 reference values: DD at every point, balls at the points `rows`.

    `n` is the number of points (the leading axis of every row-wise array); `rows`
    (sorted indices) the points evaluated on balls. A value without the points'
    axis (a constant) has shape ().
    """

    __slots__ = ("dd", "expr", "rows", "n")
    __array_ufunc__ = None  # ndarray (op) Exact defers to Exact's reflected operators

    def __init__(self, value: dd.DD, expr, rows: np.ndarray, n: int):
        self.dd, self.expr, self.rows, self.n = value, expr, rows, n

    # -- construction
    @classmethod
    def leaf(cls, value: dd.DD, fn, rows, n: int, rowwise: bool = True) -> Exact:
        return cls(value, Leaf(fn, rowwise), np.asarray(rows, np.int64), n)

    @property
    def shape(self):
        return self.dd.shape

    def to_float(self) -> np.ndarray:
        out = self.dd.to_float()
        if not out.ndim:
            return out
        if self.rows.size:
            out[self.rows] = evaluate(self.expr, self.rows)
        near = near_tie(self.dd)
        extra = np.setdiff1d(np.flatnonzero(near.reshape(len(near), -1).any(axis=1)), self.rows)
        if extra.size:
            out[extra] = evaluate(self.expr, extra)
        return out

    def __repr__(self) -> str:
        return f"Exact(dd={self.dd!r}, mp rows={self.rows.size})"

    # -- operand handling
    def _other(self, o):
        """(DD or float operand, expression operand, rows, n) for o."""
        if isinstance(o, Exact):
            return o.dd, o.expr, o  # values of one base share n and rows
        if isinstance(o, dd.DD):
            raise TypeError("an Exact value cannot be combined with a bare DD (its ball part is unknown)")
        a = np.asarray(o)
        if a.ndim and a.ndim == self.dd.hi.ndim and a.shape[0] == self.n and self.dd.hi.ndim:
            return o, _Rows(np.asarray(o, np.float64)), None
        return o, (a.item() if a.ndim == 0 else a), None

    def _binary(self, op, o, reflected=False):
        od, oe, ox = self._other(o)
        a, b = (od, self.dd) if reflected else (self.dd, od)
        if not isinstance(a, dd.DD):
            a = dd.DD(np.asarray(a, np.float64))
        value = {"add": a.__add__, "sub": a.__sub__, "mul": a.__mul__, "div": a.__truediv__}[op](b)
        ea, eb = (oe, self.expr) if reflected else (self.expr, oe)
        return Exact(value, Node(op, ea, eb), self.rows, self.n)

    def __add__(self, o):
        return self._binary("add", o)

    def __radd__(self, o):
        return self._binary("add", o, True)

    def __sub__(self, o):
        return self._binary("sub", o)

    def __rsub__(self, o):
        return self._binary("sub", o, True)

    def __mul__(self, o):
        return self._binary("mul", o)

    def __rmul__(self, o):
        return self._binary("mul", o, True)

    def __truediv__(self, o):
        return self._binary("div", o)

    def __rtruediv__(self, o):
        return self._binary("div", o, True)

    def __neg__(self):
        return Exact(-self.dd, Node("neg", self.expr), self.rows, self.n)

    def __abs__(self):
        return Exact(abs(self.dd), Node("abs", self.expr), self.rows, self.n)

    def __getitem__(self, idx):
        return Exact(self.dd[idx], Node("getitem", self.expr, idx), self.rows, self.n)

    # comparisons on the DD value (hi, then lo): Python-like on a constant
    def _cmp(self, o, op):
        od = o.dd if isinstance(o, Exact) else dd.DD(np.asarray(o, np.float64))
        h, l = self.dd.hi - od.hi, self.dd.lo - od.lo
        r = op(np.where(h == 0, l, h), 0.0)
        return r[()] if np.ndim(r) == 0 else r

    def __eq__(self, o):
        return self._cmp(o, np.equal)

    def __ne__(self, o):
        return self._cmp(o, np.not_equal)

    def __lt__(self, o):
        return self._cmp(o, np.less)

    def __le__(self, o):
        return self._cmp(o, np.less_equal)

    def __gt__(self, o):
        return self._cmp(o, np.greater)

    def __ge__(self, o):
        return self._cmp(o, np.greater_equal)

    __hash__ = None

    def unary(self, name: str, dd_fn):
        """dd_fn on the DD part, arb's `name` (log1p, exp) on the ball part."""
        return Exact(dd_fn(self.dd), Node(name, self.expr), self.rows, self.n)


def where(cond, a, b):
    """`where` on Exact values (or numbers, or float64 arrays); a scalar condition selects."""
    if np.ndim(cond) == 0:
        return a if bool(cond) else b
    ex = [v for v in (a, b) if isinstance(v, Exact)]
    if not ex:
        return np.where(cond, a, b)
    ref = max(ex, key=lambda v: v.dd.hi.ndim)
    (ad, ae, _), (bd, be, _) = ref._other(a), ref._other(b)
    ad, bd = (v if isinstance(v, dd.DD) else dd.DD(np.asarray(v, np.float64)) for v in (ad, bd))
    c = np.asarray(cond, bool)
    value = dd.DD._raw(np.where(c, ad.hi, bd.hi), np.where(c, ad.lo, bd.lo))
    ce = _Rows(c) if c.ndim and c.ndim == ref.dd.hi.ndim and c.shape[0] == ref.n else c
    return Exact(value, Node("where", ce, ae, be), ref.rows, ref.n)


def parts(values, fn, rows, n: int) -> list[Exact]:
    """Exact base quantities: `values` (DD, one per quantity, over all n points) and
    fn(rows) -> one object array of arb balls per quantity at the points `rows`, computed at
    the current flint precision (once per point and precision for all quantities)."""
    rows = np.asarray(rows, np.int64)
    cache: dict = {}  # prec -> {point: (values of each quantity)}

    def part(i):
        def f(prec, r):
            known = cache.setdefault(prec, {})
            missing = [j for j in r.tolist() if j not in known]
            if missing:
                for j, vals in zip(missing, zip(*fn(np.asarray(missing, np.int64)))):
                    known[j] = vals
            out = np.empty(len(r), object)
            out[:] = [known[j][i] for j in r.tolist()]
            return out
        return f

    return [Exact.leaf(v, part(i), rows, n) for i, v in enumerate(values)]


def constant(value: dd.DD, fn, rows, n: int) -> Exact:
    """A constant (shape ()) for the base of n points: DD value, and fn() -> an arb
    ball at the current precision."""
    return Exact.leaf(value, lambda prec: fn(), rows, n, rowwise=False)

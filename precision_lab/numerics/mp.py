"""float64 references that are correctly rounded everywhere: double-double, with
mpmath where double-double cannot be trusted.

Double-double (dd.py) carries about 106 bits only while every quantity it touches
lies in about [2**-960, 2**1000]: below, its low word is quantised to 2**-1074 (a
subnormal σ(z) carries about 51 bits, and renormalising a quantised low word can
land on a half-ULP tie); above, splitting overflows. It also cannot recover the
bits a formula cancels (σ(z) − y where σ(z) ≈ y). An `Exact` array holds a DD value
for every point plus, for the points a family marks as risky, an expression that
is evaluated with mpmath (numpy object arrays of `mpmath.mpf`) when the value is
rounded: at 128 and then 192 bits, doubling the precision until two successive
evaluations round to the same float64 (Ziv's strategy), then rounded once to
float64 from the exact binary value of the mpf, subnormals included.

`Exact` supports what the reference formulas use: + − × /, unary −, abs, `where`
(on a condition array or a scalar), indexing (`v[..., None]`), and mixing with
Python numbers, float64 arrays (those with a leading axis of points are taken row
by row) and other `Exact` values. `to_float()` gives the float64 result, as DD's.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

from . import dd

START_PREC = 128  # bits of the first mpmath evaluation
MAX_PREC = 1 << 12  # taken as it is at this precision (operands stay below 2**1100:
# a difference still exactly 0 here is below 2**-2900, 0 in float64)


# ---- correct rounding of an mpf to float64 ------------------------------------------
def _round_shift(man: int, shift: int) -> tuple[int, bool]:
    """man / 2**shift rounded to the nearest integer, ties to even (shift > 0), and
    whether it was an exact tie."""
    q, r = man >> shift, man & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    return (q + 1 if r > half or (r == half and q & 1) else q), r == half


def _to_float64(x) -> tuple[float, bool]:
    """(to_float64(x), whether x is exactly 0 or exactly halfway between two float64)."""
    if not isinstance(x, mpmath.mpf):
        return float(x), False
    sign, man, exp, bc = x._mpf_
    if not man:
        return float(x), x == 0  # 0, ±inf, nan
    top = exp + bc - 1  # x = ±man * 2**exp, 2**top <= |x| < 2**(top + 1)
    keep = 53 if top >= -1022 else top + 1075  # significant bits float64 keeps here
    tie = False
    if keep <= 0:  # below half the smallest subnormal (or exactly at it: tie to 0)
        tie = keep == 0 and man == 1 << (bc - 1)
        m, e = (1, -1074) if keep == 0 and not tie else (0, 0)
    elif bc > keep:
        (m, tie), e = _round_shift(man, bc - keep), exp + bc - keep
    else:
        m, e = man, exp
    if m and e + m.bit_length() > 1024:
        v = math.inf
    else:
        v = math.ldexp(m, e)  # exact: m has at most 53 bits (54 on a carry to 2**k)
    return (-v if sign else v), tie


def to_float64(x) -> float:
    """The float64 nearest to the mpf (or number) x, ties to even, subnormals and
    overflow to ±inf included: one rounding of x's exact binary value (float(mpf)
    may round a subnormal twice)."""
    return _to_float64(x)[0]


def round_array(a) -> tuple[np.ndarray, np.ndarray]:
    """to_float64 over an object array, each distinct object rounded once (np.where
    on object arrays shares objects, so a broadcast column is rounded once); and
    where the mpf is exactly 0 or exactly a tie."""
    a = np.asarray(a, dtype=object)
    flat = a.ravel()
    seen: dict[int, tuple[float, bool]] = {}
    out = np.empty(flat.size)
    exact = np.zeros(flat.size, bool)
    for i, v in enumerate(flat):
        k = id(v)
        r = seen.get(k)
        if r is None:
            r = seen[k] = _to_float64(v)
        out[i], exact[i] = r
    return out.reshape(a.shape), exact.reshape(a.shape)


# ---- mpmath arithmetic on object arrays ------------------------------------------------
def _safe(op):
    def f(a, b):
        try:
            return op(a, b)
        except ZeroDivisionError:  # x / 0 as float64 has it (exact bases never reach it)
            a = mpmath.mpf(a)
            return mpmath.nan if a == 0 or mpmath.isnan(a) else mpmath.sign(a) * mpmath.inf
    return np.frompyfunc(f, 2, 1)


_DIV = _safe(lambda a, b: a / b)
_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: _DIV(a, b),
}


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
            with mpmath.workprec(prec):
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
        v = np.frompyfunc(mpmath.log1p, 1, 1)(a[0])
    elif e.op == "exp":
        v = np.frompyfunc(mpmath.exp, 1, 1)(a[0])
    else:  # pragma: no cover
        raise ValueError(e.op)
    memo[key] = v
    return v


def evaluate(e, rows: np.ndarray) -> np.ndarray:
    """float64 of expression e at the points `rows`, correctly rounded: evaluated at
    START_PREC and START_PREC + 64 bits, then at doubling precision for the points
    whose two latest evaluations round differently (Ziv's strategy), or give an exact
    0 or an exact tie."""
    out, prev, todo, prec = None, None, np.arange(len(rows)), START_PREC
    while todo.size:
        with mpmath.workprec(prec):
            cur, zero = round_array(_eval(e, prec, rows[todo], {}))
        if out is None:
            out = np.empty((len(rows),) + cur.shape[1:])
        if prev is not None:
            same = (cur == prev) | (np.isnan(cur) & np.isnan(prev))
            # an exact 0 or an exact tie is what a cancellation, or a tiny term lost
            # beside a larger one, gives at any precision too low to see it: it is
            # trusted only at MAX_PREC
            same &= ~zero
            same = np.all(same.reshape(len(todo), -1), axis=1) | (prec >= MAX_PREC)
            out[todo[same]] = cur[same]
            todo, cur = todo[~same], cur[~same]
        prev = cur
        prec = START_PREC + 64 if prec == START_PREC else min(2 * prec, MAX_PREC)
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
    """float64 reference values: DD at every point, mpmath at the points `rows`.

    `n` is the number of points (the leading axis of every row-wise array); `rows`
    (sorted indices) the points evaluated with mpmath. A value without the points'
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
            raise TypeError("an Exact value cannot be combined with a bare DD (its mpmath part is unknown)")
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
        """dd_fn on the DD part, mpmath's `name` (log1p, exp) on the mpmath part."""
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
    fn(rows) -> one object array of mpf per quantity at the points `rows`, computed at
    the current mpmath precision (once per point and precision for all quantities)."""
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
    """A constant (shape ()) for the base of n points: DD value, and fn() -> mpf at the
    current precision."""
    return Exact.leaf(value, lambda prec: fn(), rows, n, rowwise=False)

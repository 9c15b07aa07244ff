"""Vectorised double-double (DD) arithmetic in numpy: the float64 reference.

A DD number is an unevaluated sum ``hi + lo`` of two float64 arrays with
``|lo| <= ulp(hi)/2``, about 106 significant bits.  It is the independent
reference that float64 kernels are measured against.

Accuracy (relative; checked against mpmath at 120 bits in tests/test_dd.py):
``+ - * /`` < 2**-103 (accurate DD algorithms, cf. Joldes, Muller & Popescu
2017), also near overflow; ``exp``, ``log1p`` (x >= 0) and ``sigmoid_parts``
(any float64 z) < 2**-100.  Worst seen over ~10**5 points: arithmetic 2**-104.5,
exp 2**-105.0, log1p 2**-103.4, sigmoid_parts 2**-103.1.
This holds while |value| >= 2**-968; below that lo is a multiple of 2**-1074 and
the error is about one such unit.  ``to_float()`` (= hi) is the correctly
rounded float64 of the exact result, subnormals included, unless that lies
within ~2**-104 of a rounding boundary: results are rounded once from their
full-precision (scaled) value, never by renormalising a quantised lo.
±inf results carry lo = 0; no floating-point warnings reach the caller.

Method: error-free transformations (Knuth two_sum, fast_two_sum, Dekker/Veltkamp
two_prod, as numpy has no fma); public operators work on frexp mantissas and
scale back with np.ldexp, so splitting cannot overflow.  exp: x = k*ln2 + r with
ln2 as a 148-bit triple, expm1(r/2**10) by Taylor series (orders <= 5 in DD,
6-8 in float64), 10 doublings t <- t*(2+t), then (1+t)*2**k.  log1p: one Newton
step y <- y + (x - expm1(y))/(1 + expm1(y)) from y = np.log1p(x.hi) (the expm1
form has no cancellation for small x); x - x**2/2 below 2**-60.  Work is done in
blocks of 16384 elements to stay in cache (sigmoid_parts: ~0.75 s per 10**6).
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from math import factorial

import numpy as np

_SPLITTER = 134217729.0  # 2**27 + 1, Veltkamp splitting constant
# ln2 = _LN2_1 + _LN2_2 + _LN2_3 to ~2**-157: _LN2_1 is ln2 rounded to 42 bits (so
# k*_LN2_1 is exact for |k| < 2**11), the others the next two float64 parts.
# Derived with mpmath at 400 bits: L1 = nint(ln2*2**42)/2**42, L2 = float(ln2-L1),
# L3 = float(ln2-L1-L2).
_LN2_1 = float.fromhex("0x1.62e42fefa3800p-1")
_LN2_2 = float.fromhex("0x1.ef35793c76730p-45")
_LN2_3 = float.fromhex("0x1.f97b57a079a19p-103")
_INV_LN2 = float.fromhex("0x1.71547652b82fep+0")  # float(1/ln2); only picks k
_CHUNK = 16384  # elements per block: keeps the working set in cache
_M = 10  # expm1(r) is evaluated at r/2**_M, then doubled _M times


def _dd_const(q: Fraction) -> tuple[float, float]:
    """Exact DD rounding of a rational (float(Fraction) rounds correctly)."""
    hi = float(q)
    return hi, float(q - Fraction(hi))


_C = [_dd_const(Fraction(1, factorial(j))) for j in range(9)]  # 1/j! as DD


class NumpyOps:
    """The array operations of the kernels below, on the host. `ddj` supplies the same
    under JAX (on a device), where XLA contracts a product and a sum into an FMA and
    simplifies (1 + t) − 1 to t: `opaque` hides a sum or product of an error-free
    transformation from both, so that its error term is computed as written."""

    where, abs, rint, ldexp = staticmethod(np.where), staticmethod(np.abs), staticmethod(np.rint), staticmethod(np.ldexp)
    clip, isnan, isfinite = staticmethod(np.clip), staticmethod(np.isnan), staticmethod(np.isfinite)
    log1p, zeros_like, inf = staticmethod(np.log1p), staticmethod(np.zeros_like), np.inf
    frexp, maximum = staticmethod(np.frexp), staticmethod(np.maximum)

    @staticmethod
    def to_int(k):
        return k.astype(np.int64)

    @staticmethod
    def opaque(x):
        return x


_o = NumpyOps  # the operations the kernels use: the host's, or JAX's while `ddj` traces them


@contextlib.contextmanager
def using(ops):
    """Run the kernels below with other array operations (`ddj` traces them under JAX)."""
    global _o
    saved, _o = _o, ops
    try:
        yield
    finally:
        _o = saved


# ---- error-free transformations (on raw float64 arrays) ----------------------
def _two_sum(a, b):
    s = _o.opaque(a + b)  # on a device, kept from being simplified away: (a + b) − a is not b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a, b):  # needs |a| >= |b| or a == 0
    s = _o.opaque(a + b)
    return s, b - (s - a)


def _split(a):
    t = _o.opaque(_SPLITTER * a)  # kept apart from the subtractions below: an FMA there breaks the split
    hi = t - (t - a)
    return hi, a - hi


def _two_prod(a, b):
    """p + e == a*b exactly, for |a|, |b|, |a*b| below ~2**995 (no scaling)."""
    p = _o.opaque(a * b)
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


# ---- DD kernels on (hi, lo) pairs ---------------------------------------------
def _add(ah, al, bh, bl):
    """Accurate DD + DD (error ~3*2**-106 relative to the result)."""
    s, e = _two_sum(ah, bh)
    t, f = _two_sum(al, bl)
    s, e = _fast_two_sum(s, e + t)
    return _fast_two_sum(s, e + f)


def _add_sloppy(ah, al, bh, bl):
    """DD + DD when no cancellation can occur (cheaper)."""
    s, e = _two_sum(ah, bh)
    return _fast_two_sum(s, e + (al + bl))


def _mul(ah, al, bh, bl):
    p, e = _two_prod(ah, bh)
    return _fast_two_sum(p, e + (ah * bl + al * bh))


def _div(ah, al, bh, bl):
    """a / b from three float64 quotients (QD-library style)."""
    q1 = ah / bh
    rh, rl = _add(ah, al, *_mul(-bh, -bl, q1, 0.0))
    q2 = rh / bh
    rh, rl = _add(rh, rl, *_mul(-bh, -bl, q2, 0.0))
    s, e = _fast_two_sum(q1, q2)
    return _fast_two_sum(s, e + rh / bh)


# ---- exp / expm1 ---------------------------------------------------------------
def _reduce(xh, xl):
    """x -> (k, r) with x = k*ln2 + r, |r| <~ ln2/2; x must be clipped to +-1100."""
    k = _o.rint(xh * _INV_LN2)
    s, e = _two_sum(xh - k * _LN2_1, xl)  # xh - k*L1 is exact (Sterbenz)
    p, pe = _two_prod(k, _LN2_2)
    s, f = _two_sum(s, -p)
    rh, rl = _two_sum(s, (e + f) - (pe + k * _LN2_3))
    return k, rh, rl


def _expm1_reduced(rh, rl):
    """expm1(r) as DD with relative error ~2**-104, for |r| <= ~0.36."""
    rh, rl = rh * 2.0**-_M, rl * 2.0**-_M  # |r| < 2**-11.4
    q = _C[6][0] + rh * (_C[7][0] + rh * _C[8][0])  # terms beyond r**5: float
    qh, ql = _fast_two_sum(_C[5][0], rh * q + _C[5][1])
    for j in (4, 3, 2, 1):  # Horner: q <- 1/j! + r*q, in DD
        qh, ql = _mul(rh, rl, qh, ql)
        qh, ql = _add_sloppy(_C[j][0], _C[j][1], qh, ql)
    th, tl = _mul(rh, rl, qh, ql)  # t = expm1(r/2**M); omitted r**9/9! < 2**-110 t
    for _ in range(_M):  # exp(2r) - 1 = t*(2+t) = 2t + t*t
        sh, sl = _two_prod(th, th)
        th, tl = _add_sloppy(2.0 * th, 2.0 * tl, sh, sl + 2.0 * th * tl)
    return th, tl


def _expm1(yh, yl):
    """expm1(y) = 2**k * (1 + t) - 1 for |y| < ~709 (log1p's Newton step)."""
    k, rh, rl = _reduce(yh, yl)
    th, tl = _expm1_reduced(rh, rl)
    h, l = _fast_two_sum(1.0, th)
    ki = _o.to_int(k)
    h, l = _add(_o.ldexp(h, ki), _o.ldexp(l + tl, ki), -1.0, 0.0)
    return _o.where(k == 0, th, h), _o.where(k == 0, tl, l)


def _exp_scaled(xh, xl):
    """exp(x) = (h + l) * 2**k with h + l in [0.7, 1.42] (x clipped; nan -> 0)."""
    xc = _o.clip(xh, -760.0, 720.0)
    xl = _o.where(xc == xh, xl, 0.0)
    k, rh, rl = _reduce(_o.where(_o.isnan(xc), 0.0, xc), xl)
    th, tl = _expm1_reduced(rh, rl)
    h, l = _fast_two_sum(1.0, th)
    h, l = _fast_two_sum(h, l + tl)
    return h, l, _o.to_int(k)


def _ldexp_dd(h, l, k):
    """(h + l) * 2**k rounded once: hi is the correctly rounded float64 (also when
    subnormal), lo what remains, rounded to a multiple of 2**-1074."""
    hi = _o.ldexp(h, k)
    lo = _o.ldexp((h - _o.ldexp(hi, -k)) + l, k)  # h - hi/2**k is exact
    lo = _o.where(_o.isfinite(hi), lo, 0.0)
    sh, sl = _fast_two_sum(hi, lo)  # exact where hi is subnormal: folds lo in
    sub = _o.abs(hi) < 2.0**-1022
    return _o.where(sub, sh, hi), _o.where(sub, sl, lo)


def _exp_raw(xh, xl):
    hi, lo = _ldexp_dd(*_exp_scaled(xh, xl))
    return _o.where(_o.isnan(xh), xh, hi), lo


def exp(x) -> DD:
    """e**x as DD: < 2**-100 relative; 0 below ~-745.13, inf above ~709.78."""
    return DD._raw(*_blockwise(_exp_raw, *_parts(x)))


def _log1p_raw(xh, xl):
    y0 = _o.log1p(xh)
    tiny = _o.abs(xh) < 2.0**-60
    newton = _o.isfinite(y0) & ~tiny & (xh < 2.0**1000)
    y0c = _o.where(newton, y0, 0.0)
    th, tl = _expm1(y0c, 0.0)  # y <- y0 + (x - expm1(y0)) / (1 + expm1(y0))
    d = _add(xh, xl, -th, -tl)[0]
    yh, yl = _two_sum(y0c, d / (1.0 + th))
    # tiny x: log1p(x) = x - x**2/2 + O(x**3), exact to 2**-120 relative
    sh, sl = _two_sum(xh, -0.5 * xh * xh)
    sh, sl = _fast_two_sum(sh, sl + xl)
    hi = _o.where(newton, yh, _o.where(tiny, sh, y0))  # else inf/nan/huge x: y0
    lo = _o.where(newton, yl, _o.where(tiny, sl, 0.0))
    return hi, lo


def log1p(x) -> DD:
    """log(1 + x) as DD for x >= 0 (value up to ~2**1000): < 2**-100 relative."""
    return DD._raw(*_blockwise(_log1p_raw, *_parts(x)))


def _sigmoid_raw(z):
    a = _o.abs(z)
    h, l, k = _exp_scaled(-a, _o.zeros_like(a))  # e = exp(-|z|) = (h + l) * 2**k
    h = _o.where(_o.isnan(a), a, h)  # nan in, nan out
    eh, el = _ldexp_dd(h, l, k)  # in (0, 1], or 0 when it underflows
    dh, dl = _fast_two_sum(1.0, eh)
    dh, dl = _fast_two_sum(dh, dl + el)  # 1 + e
    ph, pl = _div(1.0, 0.0, dh, dl)  # 1 / (1 + e)
    # tiny results are formed at scale 2**k and rounded once (else lo's subnormal
    # quantisation could misround hi just above 2**-1022)
    qh, ql = _ldexp_dd(*_mul(h, l, ph, pl), k)  # e / (1 + e)
    gh, gl = _log1p_raw(eh, el)
    sh, sl = _two_sum(h, -_o.ldexp(h * h, k - 1))  # log1p(e) = e - e**2/2 for tiny e
    sh, sl = _ldexp_dd(*_fast_two_sum(sh, sl + l), k)
    gh, gl = _o.where(k < -64, sh, gh), _o.where(k < -64, sl, gl)
    bh, bl = _two_sum(a, gh)
    bh, bl = _fast_two_sum(bh, bl + gl)  # |z| + log1p(e)
    bh, bl = _o.where(a < _o.inf, bh, a), _o.where(a < _o.inf, bl, 0.0)
    pos = ~(z < 0)
    return tuple(_o.where(pos, u, v) for u, v in
                 ((ph, qh), (pl, ql), (qh, ph), (ql, pl), (bh, gh), (bl, gl), (gh, bh), (gl, bl)))


def sigmoid_parts(z) -> tuple[DD, DD, DD, DD]:
    """(sigma(z), sigma(-z), softplus(z), softplus(-z)) as DD, cancellation-free."""
    out = _blockwise(_sigmoid_raw, np.asarray(z, dtype=np.float64))
    return tuple(DD._raw(out[i], out[i + 1]) for i in range(0, 8, 2))


def _blockwise(fn, *args):
    """fn over broadcast float64 arrays, in cache-sized chunks (2x faster for 1e6)."""
    with np.errstate(all="ignore"):
        args = np.broadcast_arrays(*args)
        shape = args[0].shape
        flat = [np.ravel(a) for a in args]
        if flat[0].size <= _CHUNK:
            return tuple(np.reshape(o, shape) for o in fn(*flat))
        outs = None
        for i in range(0, flat[0].size, _CHUNK):
            res = fn(*(a[i:i + _CHUNK] for a in flat))
            if outs is None:
                outs = [np.empty(flat[0].size) for _ in res]
            for o, r in zip(outs, res):
                o[i:i + _CHUNK] = r
        return tuple(np.reshape(o, shape) for o in outs)


# ---- the DD array type -----------------------------------------------------------
def _parts(x):
    if isinstance(x, DD):
        return x.hi, x.lo
    x = np.asarray(x, dtype=np.float64)
    return x, np.zeros_like(x)


class DD:
    """A double-double number array: value = hi + lo with |lo| <= ulp(hi)/2 (normalised)."""

    __slots__ = ("hi", "lo")
    __array_ufunc__ = None  # ndarray (op) DD defers to DD's reflected operators

    def __init__(self, hi, lo=0.0):
        hi, lo = np.broadcast_arrays(np.asarray(hi, np.float64), np.asarray(lo, np.float64))
        with np.errstate(all="ignore"):
            s, e = _two_sum(hi, lo)
            ok = np.isfinite(hi) & np.isfinite(lo)
            s = np.where(lo == 0, hi, np.where(ok, s, hi + lo))  # -0.0, inf, nan as float64
            self.hi, self.lo = np.asarray(s), np.asarray(np.where(np.isfinite(s), e, 0.0))

    @classmethod
    def _raw(cls, hi, lo) -> DD:
        obj = cls.__new__(cls)
        obj.hi, obj.lo = np.asarray(hi, np.float64), np.asarray(lo, np.float64)
        return obj

    @classmethod
    def from_float(cls, x) -> DD:
        return cls(x)

    def to_float(self) -> np.ndarray:
        return self.hi.copy()  # normalised: hi is the value rounded to nearest

    @property
    def shape(self) -> tuple[int, ...]:
        return self.hi.shape

    def __getitem__(self, idx) -> DD:
        return DD._raw(self.hi[idx], self.lo[idx])

    def __repr__(self) -> str:
        return f"DD(hi={self.hi!r}, lo={self.lo!r})"

    def __neg__(self) -> DD:
        return DD._raw(-self.hi, -self.lo)

    def __abs__(self) -> DD:
        neg = self.hi < 0
        return DD._raw(np.where(neg, -self.hi, self.hi), np.where(neg, -self.lo, self.lo))

    def __add__(self, other) -> DD:
        return DD._raw(*_blockwise(_add_raw, self.hi, self.lo, *_parts(other)))

    __radd__ = __add__

    def __sub__(self, other) -> DD:
        bh, bl = _parts(other)
        return DD._raw(*_blockwise(_add_raw, self.hi, self.lo, -bh, -bl))

    def __rsub__(self, other) -> DD:
        return DD._raw(*_blockwise(_add_raw, -self.hi, -self.lo, *_parts(other)))

    def __mul__(self, other) -> DD:
        return DD._raw(*_blockwise(_mul_raw, self.hi, self.lo, *_parts(other)))

    __rmul__ = __mul__

    def __truediv__(self, other) -> DD:
        return DD._raw(*_blockwise(_div_raw, self.hi, self.lo, *_parts(other)))

    def __rtruediv__(self, other) -> DD:
        return DD._raw(*_blockwise(_div_raw, *_parts(other), self.hi, self.lo))


# Public operators: mantissas are scaled (frexp, or halved near overflow) so that
# splitting never overflows and the result is rounded once, like float64.
def _finish(ok, lead, hi, lo):
    """Where not ok (a non-finite operand): float64's result ``lead``; inf gets
    lo = 0, and a zero result float64's sign."""
    hi = _o.where(ok, _o.where(hi == 0, lead * 0.0, hi), lead)
    return hi, _o.where(_o.isfinite(hi), lo, 0.0)


def _add_raw(ah, al, bh, bl):
    f = _o.where(_o.maximum(_o.abs(ah), _o.abs(bh)) >= 2.0**1022, 0.5, 1.0)
    hi, lo = _add(ah * f, al * f, bh * f, bl * f)
    return _finish(_o.isfinite(ah) & _o.isfinite(bh), ah + bh, hi / f, lo / f)


def _mul_raw(ah, al, bh, bl):
    (ma, ea), (mb, eb) = _o.frexp(ah), _o.frexp(bh)
    hi, lo = _ldexp_dd(*_mul(ma, _o.ldexp(al, -ea), mb, _o.ldexp(bl, -eb)), ea + eb)
    return _finish(_o.isfinite(ah) & _o.isfinite(bh), ah * bh, hi, lo)


def _div_raw(ah, al, bh, bl):
    (ma, ea), (mb, eb) = _o.frexp(ah), _o.frexp(bh)
    hi, lo = _ldexp_dd(*_div(ma, _o.ldexp(al, -ea), mb, _o.ldexp(bl, -eb)), ea - eb)
    return _finish(_o.isfinite(ah) & _o.isfinite(bh) & (bh != 0), ah / bh, hi, lo)

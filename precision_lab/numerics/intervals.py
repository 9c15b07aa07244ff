"""Tier 1 of the exact evaluator: enclosures of real values in float64 intervals.

Each real value is enclosed in an interval [lo, hi] of float64 (NumPy, every point
at once). +, −, ×, ÷ and √ are correctly rounded in IEEE float64, so one step
outward per operation keeps the enclosure; sums of n terms widen by their float64
error bound (n·eps·Σ|x|); exp, log, log1p, expm1, tanh, cosh, sinh, logistic, erf
and pow come from the C library, whose errors are not proven: their results widen
by ``LIBM_ULPS`` ulps, twice an empirical bound (glibc's manual lists at most 1–2
ulps for these on x86-64; 4 is allowed for). What this tier cannot decide (a log of
an interval holding 0, a comparison of overlapping intervals, ∞ − ∞) is marked
`bad` and left to tier 2; a primitive it has no rule for raises `NoRule`. The rules
per primitive are in `interval_rules`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import formats, jaxpr

LIBM_ULPS = 8  # outward widening of a C-library function's result: 2 × an empirical 4-ulp bound


class NoRule(Exception):
    """Tier 1 has no interval rule for a primitive: every point goes to tier 2."""


@dataclasses.dataclass
class IV:
    """An enclosure of an array of reals (floats), or exact integers/booleans, with
    `bad` marking the entries this tier cannot decide."""

    lo: np.ndarray
    hi: np.ndarray
    bad: np.ndarray
    alias: tuple = ()  # (IV, mask): where mask holds, this value is that IV's real itself

    @staticmethod
    def exact(v) -> IV:
        a = np.asarray(v)
        if a.dtype.kind == "f" or a.dtype.kind == "V" or str(a.dtype) in formats.FORMATS:
            a = a.astype(np.float64)
        return IV(a, a, np.zeros(a.shape, bool))


def _down(x, k=1):
    """x moved k representable steps toward −∞ (NaN stays NaN, −∞ stays)."""
    with np.errstate(over="ignore"):  # −max steps to −∞: an outward bound still
        for _ in range(k):
            x = np.nextafter(x, -np.inf)
    return x


def _up(x, k=1):
    with np.errstate(over="ignore"):
        for _ in range(k):
            x = np.nextafter(x, np.inf)
    return x


def _libm(lo, hi):
    """Widen a C-library result outward by LIBM_ULPS ulps. A result that overflowed
    is a finite real beyond float64: its lower bound is the largest float (+∞ would
    exclude it), as `_down` makes it for +, −, ×, ÷."""
    big = np.finfo(np.float64).max
    with np.errstate(invalid="ignore", over="ignore"):
        sp_lo, sp_hi = np.spacing(np.abs(lo)), np.spacing(np.abs(hi))
        lo2 = np.where(np.isfinite(lo), _down(lo - LIBM_ULPS * sp_lo), np.where(lo == np.inf, big, lo))
        hi2 = np.where(np.isfinite(hi), _up(hi + LIBM_ULPS * sp_hi), np.where(hi == -np.inf, -big, hi))
    return lo2, hi2


def _nan(*xs):
    out = np.zeros(np.broadcast_shapes(*(np.shape(x) for x in xs)), bool)
    for x in xs:
        out = out | np.isnan(x)
    return out


def _monotone(f, a: IV, domain=None, libm=True, clip=None) -> IV:
    """A non-decreasing function on an interval (undecided outside `domain(lo, hi)`)."""
    with np.errstate(all="ignore"):
        lo, hi = f(a.lo), f(a.hi)
    lo, hi = _libm(lo, hi) if libm else (_down(lo), _up(hi))
    if clip is not None:
        lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
    bad = a.bad | _nan(lo, hi)
    if domain is not None:
        bad = bad | ~domain(a.lo, a.hi)
    return IV(lo, hi, bad)


def _decreasing(f, a: IV, domain=None) -> IV:
    r = _monotone(f, IV(a.hi, a.lo, a.bad), domain=None)
    bad = r.bad if domain is None else r.bad | ~domain(a.lo, a.hi)
    return IV(r.lo, r.hi, bad)


def _corners(op, a: IV, b: IV, libm=False) -> IV:
    """op's range over the box: the least and the largest of its values at the corners
    (one value where both operands are exact points); np.minimum and np.maximum carry
    a NaN corner through, which marks the entry bad."""
    with np.errstate(all="ignore"):
        xs = (a.lo,) if a.lo is a.hi else (a.lo, a.hi)
        ys = (b.lo,) if b.lo is b.hi else (b.lo, b.hi)
        c = [op(x, y) for x in xs for y in ys]
    lo, hi = c[0], c[0]
    for v in c[1:]:
        lo, hi = np.minimum(lo, v), np.maximum(hi, v)
    bad = a.bad | b.bad | _nan(lo, hi)
    lo, hi = _libm(lo, hi) if libm else (_down(lo), _up(hi))
    return IV(lo, hi, bad)


def _add(a, b):
    with np.errstate(all="ignore"):
        lo, hi = a.lo + b.lo, a.hi + b.hi
    return IV(_down(lo), _up(hi), a.bad | b.bad | _nan(lo, hi))


def _sub(a, b):
    return _add(a, IV(-b.hi, -b.lo, b.bad))


def _div(a, b):
    r = _corners(np.divide, a, b)
    return IV(r.lo, r.hi, r.bad | ((b.lo <= 0) & (b.hi >= 0)))


def _pow(a, b):
    if b.lo.dtype.kind == "f" and np.all((b.lo == b.hi) & (b.lo == np.round(b.lo)) & (np.abs(b.lo) < 2**31)) \
            and b.lo.size and np.all(b.lo == b.lo.ravel()[0]):
        r = _integer_pow(a, int(b.lo.ravel()[0]))  # x ** 2.0 is x², defined for every x
        return IV(r.lo, r.hi, r.bad | b.bad)
    r = _corners(np.power, a, b, libm=True)
    return IV(r.lo, r.hi, r.bad | ~(a.lo > 0))


def _integer_pow(a, y):
    if y == 0:
        return IV(np.ones_like(a.lo), np.ones_like(a.hi), a.bad)
    with np.errstate(all="ignore"):
        p_lo, p_hi = np.power(a.lo, float(y)), np.power(a.hi, float(y))
    lo, hi = np.minimum(p_lo, p_hi), np.maximum(p_lo, p_hi)
    cross = (a.lo < 0) & (a.hi > 0)
    if y % 2 == 0 and y > 0:
        lo = np.where(cross, 0.0, lo)
    lo, hi = _libm(lo, hi)
    if y % 2 == 0 and y > 0:
        lo = np.maximum(lo, 0.0)
    bad = a.bad | _nan(lo, hi) | (cross & (y < 0)) | ((y < 0) & ((a.lo == 0) | (a.hi == 0)))
    return IV(lo, hi, bad)


def _neg(a):
    return IV(-a.hi, -a.lo, a.bad)


def _abs(a):
    lo = np.where((a.lo <= 0) & (a.hi >= 0), 0.0, np.minimum(np.abs(a.lo), np.abs(a.hi)))
    return IV(lo, np.maximum(np.abs(a.lo), np.abs(a.hi)), a.bad)


def _sign(a):
    s = np.where(a.lo > 0, 1.0, np.where(a.hi < 0, -1.0, 0.0))
    return IV(s, s, a.bad | ((a.lo <= 0) & (a.hi >= 0) & ~((a.lo == 0) & (a.hi == 0))))


def _compare(op):
    """A comparison decided where the intervals settle it."""

    def f(a, b):
        both = [op(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
        t = np.logical_and.reduce(both)
        f_ = ~np.logical_or.reduce(both)
        # `eq` and `ne` on intervals: corners cannot see a point inside both intervals
        if op in (np.equal, np.not_equal):
            point = (a.lo == a.hi) & (b.lo == b.hi)
            eq = point & (a.lo == b.lo)
            apart = (a.hi < b.lo) | (b.hi < a.lo)
            v = eq if op is np.equal else apart
            return IV(v, v, a.bad | b.bad | ~(point | apart))
        return IV(t, t, a.bad | b.bad | ~(t | f_))

    return f


def _logical(op):
    def f(*xs):
        v = op(*(x.lo for x in xs))
        bad = np.zeros(np.shape(v), bool)
        for x in xs:
            bad = bad | x.bad
        return IV(v, v, bad)

    return f


def _select_n(pred, *cases):
    shape = np.broadcast_shapes(pred.lo.shape, *(c.lo.shape for c in cases))
    which = np.broadcast_to(pred.lo, shape).astype(np.int64)
    pick = lambda attr: np.choose(which, [np.broadcast_to(getattr(c, attr), shape) for c in cases])  # noqa: E731
    return IV(pick("lo"), pick("hi"), np.broadcast_to(pred.bad, shape) | pick("bad"))


def _convert(a: IV, new_dtype):
    dt = np.dtype(new_dtype)
    if dt == np.bool_:
        if a.lo.dtype == np.bool_:
            return a
        t = (a.lo > 0) | (a.hi < 0)
        f = (a.lo == 0) & (a.hi == 0)
        return IV(t, t, a.bad | ~(t | f))
    if np.issubdtype(dt, np.integer):
        if a.lo.dtype.kind in "biu":
            return IV(a.lo.astype(np.int64), a.hi.astype(np.int64), a.bad)
        with np.errstate(all="ignore"):
            lo, hi = np.trunc(a.lo), np.trunc(a.hi)
        ok = np.isfinite(lo) & (lo == hi) & (np.abs(lo) < 2.0 ** 62)
        v = np.where(ok, lo, 0).astype(np.int64)
        return IV(v, v, a.bad | ~ok)
    if a.lo.dtype.kind in "biu":
        v = a.lo.astype(np.float64)
        return IV(v, v, a.bad | (np.abs(a.lo.astype(np.float64)) >= 2.0 ** 53))
    return a


def _reduce_sum(a: IV, axes):
    axes = tuple(axes)
    n = int(np.prod([a.lo.shape[i] for i in axes])) if axes else 1
    with np.errstate(all="ignore"):
        lo, hi = a.lo.sum(axis=axes), a.hi.sum(axis=axes)
        mag = np.maximum(np.abs(a.lo), np.abs(a.hi)).sum(axis=axes)
        slack = (n + 1) * np.finfo(np.float64).eps * mag
        lo, hi = _down(lo - slack), _up(hi + slack)
    return IV(lo, hi, a.bad.any(axis=axes) | _nan(lo, hi))


def _reduce(f):
    def g(a: IV, axes):
        axes = tuple(axes)
        return IV(f(a.lo, axis=axes), f(a.hi, axis=axes), a.bad.any(axis=axes))

    return g


def _argmax(a: IV, axes, index_dtype, sign=1):
    (ax,) = axes
    lo, hi = (np.moveaxis(x, ax, -1) * sign for x in ((a.lo, a.hi) if sign > 0 else (a.hi, a.lo)))
    w = np.argmax(lo, axis=-1)
    onehot = np.arange(lo.shape[-1]) == w[..., None]
    others = np.where(onehot, -np.inf, hi).max(axis=-1, initial=-np.inf)
    won = np.take_along_axis(lo, w[..., None], -1)[..., 0] > others
    return IV(w.astype(np.int64), w.astype(np.int64), np.moveaxis(a.bad, ax, -1).any(axis=-1) | ~won)


def _clamp(lo_v, x, hi_v):
    return IV(np.minimum(np.maximum(x.lo, lo_v.lo), hi_v.lo), np.minimum(np.maximum(x.hi, lo_v.hi), hi_v.hi),
              x.bad | lo_v.bad | hi_v.bad)


def _logistic(x):
    """σ(x) within a few ulps, without overflow (1/(1 + e^710) would give 0)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _cosh(a: IV) -> IV:
    """cosh: decreasing below 0, increasing above, 1 at 0."""
    m = np.maximum(np.abs(a.lo), np.abs(a.hi))
    n = np.where((a.lo <= 0) & (a.hi >= 0), 0.0, np.minimum(np.abs(a.lo), np.abs(a.hi)))
    r = _monotone(np.cosh, IV(n, m, a.bad))
    return IV(np.maximum(r.lo, 1.0), r.hi, r.bad)


def _scatter_add(params, operand: IV, indices: IV, updates: IV) -> IV:
    """scatter-add of bounds: each target's sum of lower (upper) bounds, widened by the
    float64 error bound of its additions."""
    if indices.bad.any():
        raise NoRule("scatter-add")
    targets = jaxpr.scatter_targets(params, operand.lo.shape, indices.lo, updates.lo.shape).ravel()
    keep = targets >= 0
    t = targets[keep]
    lo, hi = operand.lo.astype(np.float64).ravel().copy(), operand.hi.astype(np.float64).ravel().copy()
    mag = np.maximum(np.abs(lo), np.abs(hi))
    count = np.zeros(lo.shape)
    bad = np.broadcast_to(operand.bad, operand.lo.shape).ravel().copy()
    with np.errstate(all="ignore"):
        np.add.at(lo, t, updates.lo.ravel()[keep])
        np.add.at(hi, t, updates.hi.ravel()[keep])
        np.add.at(mag, t, np.maximum(np.abs(updates.lo), np.abs(updates.hi)).ravel()[keep])
        np.add.at(count, t, 1.0)
        slack = (count + 1) * np.finfo(np.float64).eps * mag
        lo, hi = _down(lo - slack), _up(hi + slack)
    np.logical_or.at(bad, t, np.broadcast_to(updates.bad, updates.lo.shape).ravel()[keep])
    shape = operand.lo.shape
    return IV(lo.reshape(shape), hi.reshape(shape), bad.reshape(shape) | _nan(lo, hi).reshape(shape))

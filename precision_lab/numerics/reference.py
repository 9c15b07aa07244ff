"""The reference of a user's function: what its traced code means on the reals, in tiers.

A user's function is traced at the row's format (its jaxpr is what runs: constants
such as ``finfo(x.dtype).tiny`` as traced) and the jaxpr is evaluated on the reals
(conversions are the identity; see exact.py for the semantics). Two tiers decide
each point's exact value *rounded to the format*, which is all a classification
needs:

1. **interval** (vectorised, every point at once): each real value is enclosed in a
   float64 interval [lo, hi]. +, −, ×, ÷ and √ are correctly rounded in IEEE
   float64, so one step outward per operation keeps the enclosure; sums of n terms
   widen by their float64 error bound (n·eps·Σ|x|); exp, log, log1p, expm1, tanh,
   logistic, erf and pow come from the C library, whose errors are not proven:
   their results widen by ``LIBM_ULPS`` ulps, twice an empirical bound (glibc's
   manual lists at most 1–2 ulps for these on x86-64; 4 is allowed for). A point is
   decided when its enclosure rounds to one value of the format. This tier is
   therefore *empirically* rigorous, not proven: it rests on the library bound.
   Operations it has no rule for (or cannot decide: a log of an interval holding
   0, a comparison of overlapping intervals, ∞ − ∞) leave the point to tier 2.
2. **exact** (per undecided point): mpmath through exact.py, where +, −, × are exact
   and ÷ and each function are computed at the working precision. The precision
   starts at ``exact.default_prec`` bits and doubles while the value rounded to the
   format changes between two precisions, up to ``PREC_CAP`` bits. A point is
   *unresolved* (class ``unresolved``) where its real value is undefined (log of a
   negative number, 0/0, ∞ − ∞ reaching the output) or still changing at the cap:
   ``1 − sigmoid(z)`` cancels about 1.44·z bits, so the cap resolves it up to
   z ≈ PREC_CAP / 1.44. Agreement of two precisions is Ziv's test, not a proof.

Each result also carries a *sensitivity* S ≥ 0 for the condition floor (see
classify): |d/dt f(x + t·x)| at t = 0 (a forward-mode derivative of the traced
function along its input), from tier 1, its smallest magnitude over the enclosure.
For a scalar input that is Σ|x ∂f/∂x| exactly; for a vector it is a lower bound, so
it excuses no more than the condition floor would. Where tier 1 cannot enclose it,
S is NaN and nothing beyond the tolerance is excused.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import jax
import numpy as np

from . import balls, exact, formats

LIBM_ULPS = 8  # outward widening of a C-library function's result: 2 × an empirical 4-ulp bound
START_PREC = 128  # bits: the ball tier's first precision; ×4 while a point is not settled
PREC_CAP = 8192  # bits: its last
EXACT_POINTS = 1 << 18  # points per call the exact tier takes (a whole scalar call), nearest zero first; the rest are unresolved
MAX_EXACT_WIDTH = 64  # vector inputs longer than this are not evaluated by the exact tier (unresolved)


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
    with np.errstate(all="ignore"):
        c = [op(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    lo, hi = np.minimum.reduce(c), np.maximum.reduce(c)
    bad = a.bad | b.bad | _nan(*c)
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


def _move(prim, params, args: list[IV], in_avals):
    """Data movement, run by JAX itself on the bounds and the marks (exact)."""
    data = exact._MOVES[prim.name] or tuple(range(len(args)))
    for i, a in enumerate(args):
        if i not in data and a.bad.any():
            raise NoRule(prim.name)  # an undecided index: leave it to tier 2

    def run(attr, cast=None) -> list[np.ndarray]:
        ops = []
        for i, (a, aval) in enumerate(zip(args, in_avals)):
            v = getattr(a, attr) if i in data else a.lo
            if i in data and cast is not None:
                v = v.astype(cast)
            elif i not in data:
                v = np.asarray(v, aval.dtype)
            ops.append(v)
        p = params
        if prim.name in ("gather", "scatter") and params.get("fill_value") is not None and cast is None:
            p = dict(params, fill_value=np.nan)
        out = prim.bind(*ops, **p)
        return [np.asarray(o) for o in (out if prim.multiple_results else [out])]

    marked = any(args[i].bad.any() for i in data)
    out = []
    for lo, hi, bad in zip(run("lo"), run("hi"), run("bad", np.float64) if marked else [None] * 99):
        bad = bad != 0 if bad is not None else np.zeros(lo.shape, bool)
        out.append(IV(lo, hi, bad | np.isnan(lo) if lo.dtype.kind == "f" else bad))
    return out


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
    targets = exact.scatter_targets(params, operand.lo.shape, indices.lo, updates.lo.shape).ravel()
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


_UNARY = {
    "neg": _neg, "abs": _abs, "sign": _sign,
    "exp": lambda a: _monotone(np.exp, a, clip=(0, np.inf)),
    "exp2": lambda a: _monotone(np.exp2, a, clip=(0, np.inf)),
    "log": lambda a: _monotone(np.log, a, domain=lambda lo, hi: lo > 0),
    "log1p": lambda a: _monotone(np.log1p, a, domain=lambda lo, hi: lo > -1),
    "expm1": lambda a: _monotone(np.expm1, a, clip=(-1, np.inf)),
    "tanh": lambda a: _monotone(np.tanh, a, clip=(-1, 1)),
    "sinh": lambda a: _monotone(np.sinh, a),
    "cosh": lambda a: _cosh(a),
    "logistic": lambda a: _monotone(_logistic, a, clip=(0, 1)),
    "sqrt": lambda a: _monotone(np.sqrt, a, domain=lambda lo, hi: lo >= 0, libm=False),
    "rsqrt": lambda a: _decreasing(lambda x: 1 / np.sqrt(x), a, domain=lambda lo, hi: lo > 0),
    "square": lambda a: _integer_pow(a, 2),
    "stop_gradient": lambda a: a, "copy": lambda a: a, "copy_p": lambda a: a,
    "reduce_precision": lambda a: a,
    "not": _logical(np.logical_not),
    "is_finite": lambda a: IV(np.isfinite(a.lo) & np.isfinite(a.hi), np.isfinite(a.lo) & np.isfinite(a.hi),
                              a.bad | ~(np.isfinite(a.lo) & np.isfinite(a.hi))),
}
try:  # erf is monotone; scipy is optional
    from scipy.special import erf as _erf  # noqa: F401

    _UNARY["erf"] = lambda a: _monotone(_erf, a, clip=(-1, 1))
except ImportError:  # pragma: no cover
    pass

_BINARY = {
    "add": _add, "add_any": _add, "sub": _sub, "mul": lambda a, b: _corners(np.multiply, a, b), "div": _div,
    "pow": _pow,
    "max": lambda a, b: IV(np.maximum(a.lo, b.lo), np.maximum(a.hi, b.hi), a.bad | b.bad,
                           ((a, a.lo >= b.hi), (b, b.lo >= a.hi))),
    "min": lambda a, b: IV(np.minimum(a.lo, b.lo), np.minimum(a.hi, b.hi), a.bad | b.bad,
                           ((a, a.hi <= b.lo), (b, b.hi <= a.lo))),
    "eq": _compare(np.equal), "ne": _compare(np.not_equal), "lt": _compare(np.less),
    "le": _compare(np.less_equal), "gt": _compare(np.greater), "ge": _compare(np.greater_equal),
    "and": _logical(np.logical_and), "or": _logical(np.logical_or), "xor": _logical(np.logical_xor),
}


def _bool_ops(name, args):
    """and/or/not/xor on integers are bitwise."""
    if args[0].lo.dtype.kind in "iu":
        op = {"and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor, "not": np.invert}[name]
        return _logical(op)(*args)
    return None


SELF_COMPARE = {"eq": True, "le": True, "ge": True, "ne": False, "lt": False, "gt": False}


def _aliased(a: IV, b: IV):
    """Where b is a's own real (or a is b's), as a mask; None if neither is an alias."""
    mask = None
    for x, y in ((a, b), (b, a)):
        for target, m in y.alias:
            if target is x:
                mask = m if mask is None else mask | m
    return None if mask is None else np.broadcast_to(mask, np.broadcast_shapes(a.lo.shape, b.lo.shape))


def apply(prim, params: dict, args: list[IV], in_avals) -> list[IV]:
    name = prim.name
    if name in SELF_COMPARE and args[0] is args[1]:  # x ≠ x (a NaN test) is False for every real x
        v = np.full(args[0].lo.shape, SELF_COMPARE[name])
        out = IV(v, v, args[0].bad)
    elif name in SELF_COMPARE and (same := _aliased(*args)) is not None:
        # x against max(x, c) where x is certainly the larger: the same real (autodiff's rule for max)
        r = _BINARY[name](*args)
        v = np.where(same, SELF_COMPARE[name], r.lo)
        out = IV(v, v, np.where(same, args[0].bad | args[1].bad, r.bad))
    elif name in ("and", "or", "xor", "not") and (r := _bool_ops(name, args)) is not None:
        out = r
    elif name in _UNARY:
        out = _UNARY[name](args[0])
    elif name in _BINARY:
        if name in ("add", "sub", "mul", "max", "min") and args[0].lo.dtype.kind in "iu" and \
                args[1].lo.dtype.kind in "iu":
            op = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[name]
            v = op(args[0].lo, args[1].lo)
            out = IV(v, v, args[0].bad | args[1].bad)
        else:
            out = _BINARY[name](*args)
    elif name == "integer_pow":
        out = _integer_pow(args[0], params["y"])
    elif name == "select_n":
        out = _select_n(*args)
    elif name == "convert_element_type":
        out = _convert(args[0], params["new_dtype"])
    elif name == "clamp":
        out = _clamp(*args)
    elif name == "iota":
        out = IV.exact(np.asarray(jax.lax.broadcasted_iota(params["dtype"], params["shape"], params["dimension"])))
    elif name == "reduce_sum":
        out = _reduce_sum(args[0], params["axes"])
    elif name in ("reduce_max", "reduce_min"):
        out = _reduce(np.max if name == "reduce_max" else np.min)(args[0], params["axes"])
    elif name in ("argmax", "argmin"):
        out = _argmax(args[0], params["axes"], params["index_dtype"], 1 if name == "argmax" else -1)
    elif name == "scatter-add":
        out = _scatter_add(params, *args)
    elif name in exact._MOVES:
        outs = _move(prim, params, args, in_avals)
        return outs if prim.multiple_results else outs[:1]
    else:
        raise NoRule(name)
    shape = np.shape(out.lo)
    out.bad = np.broadcast_to(out.bad, shape)
    return [out]


def enclose(flat: exact.Flat, args) -> list[IV]:
    """Tier 1: enclosures of a flattened jaxpr's outputs at concrete `args` (arrays)."""
    return exact.interpret(flat, args, IV.exact, apply)


# ------------------------------------------------------------------ one function's reference

_DTYPE_NAMES = re.compile(r"\b(f8_e4m3fn|f8_e5m2|bf16|f16|f32|f64)\b")


def signature(closed) -> str:
    """A jaxpr's text with its float types named alike: equal for two formats iff the
    function traces to the same operations in both."""
    return _DTYPE_NAMES.sub("F", str(closed.jaxpr))


@dataclasses.dataclass
class Tiers:
    """How many points each tier decided, and why the others are unresolved."""

    interval: int = 0
    exact: int = 0
    undefined: int = 0
    cap: int = 0
    budget: int = 0
    float64: int = 0  # points measured against the function in float64 (a primitive with no exact rule)
    rewritten: int = 0  # unresolved points that the identity-rewritten jaxpr decided
    interval_s: float = 0.0
    exact_s: float = 0.0

    def to_json(self) -> dict:
        # no_enclosure, cap and budget: points the function's own jaxpr left undecided
        # (no value at the cap, a ball across a rounding boundary at the cap, beyond
        # the tier's points); rewritten: those its identity rewrite then decided
        return {"interval": self.interval, "exact": self.exact, "rewritten": self.rewritten,
                "unresolved": self.undefined + self.cap + self.budget - self.rewritten,
                "own_unresolved_no_enclosure": self.undefined, "own_unresolved_cap": self.cap,
                "own_unresolved_budget": self.budget, "float64": self.float64,
                "interval_points_per_s": _rate(self.interval + self.exact + self.undefined + self.cap + self.budget,
                                               self.interval_s),
                "exact_points_per_s": _rate(self.exact + self.undefined + self.cap, self.exact_s),
                "prec_cap_bits": PREC_CAP, "libm_ulps": LIBM_ULPS}


def _rate(n, s):
    return None if s <= 0 or n == 0 else round(n / s, 1)


class Reference:
    """The exact values of one quantity, `fn(x, label)`: tiers 1 and 2 at points of a
    format, with the exact tier's values kept per real input (shared by formats whose
    jaxprs agree), and counts per (format, label)."""

    def __init__(self, fn, identity=None, wide=None):
        self.fn = fn
        # what the float64 fallback runs (default `fn`): `fn` computed in float64, for an
        # `fn` that casts its inputs to a narrower format first
        self.wide = wide or fn
        # `fn` rewritten by identities on the reals (fixes.fixed): where fn's own jaxpr
        # stays unresolved (a cancellation beyond the cap), the rewritten one decides
        self.identity = identity
        self.memo: dict = {}  # (signature, label, input bytes) -> mpf/POISON/None (cap)
        self.tiers: dict = {}  # (format name, label) -> Tiers

    @functools.lru_cache(maxsize=None)
    def _flat(self, shape, dtype, label_dtype, label_shape) -> tuple:
        x = jax.ShapeDtypeStruct(shape, dtype)
        y = jax.ShapeDtypeStruct(label_shape, label_dtype)
        closed = jax.make_jaxpr(jax.vmap(self.fn, (0, None)))(x, y)
        jvp = lambda x, y: jax.jvp(lambda x: self.fn(x, y), (x,), (x,))[1]  # noqa: E731
        try:
            sens = exact.flatten(jax.make_jaxpr(jax.vmap(jvp, (0, None)))(x, y))
        except Exception:  # noqa: BLE001  no forward derivative: nothing excused
            sens = None
        return exact.flatten(closed), signature(closed), sens, tuple(closed.out_avals[0].shape[1:])

    def _out_shape(self, xs, label) -> tuple:
        return self._flat(xs.shape, xs.dtype, np.asarray(label).dtype, np.shape(label))[3]

    def unsupported(self, fmt: formats.Format, label, shape: tuple = ()) -> list[str]:
        """Primitives of the function, traced at `fmt` on inputs of `shape`, that the
        exact tiers cannot evaluate."""
        label = np.asarray(label)
        return balls.unsupported(self._flat((1, *shape), fmt.dtype, label.dtype, label.shape)[0])

    def values(self, fmt: formats.Format, xs: np.ndarray, label) -> tuple[np.ndarray, np.ndarray]:
        """(exact, sens) at kernel inputs `xs` (the format's values, one per row) with
        the row's `label`: exact rounded to the format, as float64, NaN where
        unresolved; sens as in the module docstring. A function with a primitive the
        exact tiers have no rule for is measured against itself run in float64 (the
        caller flags such rows, and skips float64 rows)."""
        import time

        xs = np.asarray(xs)
        label = np.asarray(label)
        flat, sig, sens_flat, out_shape = self._flat(xs.shape, xs.dtype, label.dtype, label.shape)
        stats = self.tiers.setdefault((fmt.name, float(label)), Tiers())
        if balls.unsupported(flat):
            return self._float64(xs, label, stats)
        t0 = time.perf_counter()
        decided, value = None, None
        if fmt.bits < 64:
            try:
                (out,) = enclose(flat, [xs, label])
                o_lo, o_hi = (formats.round_to_ordinal(np.where(np.isnan(v), 0.0, v), fmt) for v in (out.lo, out.hi))
                same = (o_lo == o_hi) & ~out.bad & ~_nan(out.lo, out.hi)
                decided = same.reshape(len(xs), -1).all(axis=1)
                value = np.where(same, formats.ordinal_to_float64(o_lo, fmt), np.nan)
            except NoRule:
                pass
        sens = np.full((len(xs),) + out_shape, np.nan)
        if sens_flat is not None:
            try:
                (s,) = enclose(sens_flat, [xs, label])
                m = np.where((s.lo <= 0) & (s.hi >= 0), 0.0, np.minimum(np.abs(s.lo), np.abs(s.hi)))
                sens = np.where(s.bad | _nan(s.lo, s.hi), np.nan, m)
            except NoRule:
                pass
        stats.interval_s += time.perf_counter() - t0
        if decided is None:
            decided = np.zeros(len(xs), bool)
            value = np.full(sens.shape, np.nan)
        value = np.array(value, np.float64).reshape(sens.shape)
        stats.interval += int(decided.sum())
        todo = np.flatnonzero(~decided)
        if len(todo):
            t0 = time.perf_counter()
            value[todo] = self._exact(fmt, xs[todo], label, sig, stats)
            stats.exact_s += time.perf_counter() - t0
        left = np.flatnonzero(np.isnan(value.reshape(len(xs), -1)).any(axis=1))
        if len(left) and self.identity is not None and self.identity._flat(
                xs.shape, xs.dtype, label.dtype, label.shape)[1] != sig:
            # the same real function written without the cancellation (a rewrite that is an
            # identity on the reals, see fixes): its exact value is this one's
            again, _ = self.identity.values(fmt, xs[left], label)
            found = ~np.isnan(again.reshape(len(left), -1)).any(axis=1)
            value[left[found]] = again[found]
            stats.rewritten += int(found.sum())
        return value, sens

    def _float64(self, xs, label, stats):
        """The function itself at float64 (vmapped, jitted): the fallback reference."""
        wide = lambda a: a.astype(np.float64) if a.dtype.kind in "fV" or str(a.dtype) in formats.FORMATS else a  # noqa: E731
        x64, l64 = wide(xs), wide(label)
        value = np.asarray(jax.jit(jax.vmap(self.wide, (0, None)))(x64, l64), np.float64)
        jvp = lambda x, y: jax.jvp(lambda x: self.wide(x, y), (x,), (x,))[1]  # noqa: E731
        sens = np.abs(np.asarray(jax.jit(jax.vmap(jvp, (0, None)))(x64, l64), np.float64))
        sens = np.where(np.isfinite(sens), sens, np.nan)  # a float64 overflow excuses nothing
        stats.float64 += len(xs)
        return value, sens

    def _exact(self, fmt, xs, label, sig, stats) -> np.ndarray:
        """Tier 2 at points `xs`: their values rounded to `fmt` (as float64), NaN where
        unresolved. A point's last ball is kept (per real input and label), so another
        format starts from it and raises the precision only if it must."""
        keys = [(sig, float(label), x.tobytes()) for x in np.ascontiguousarray(xs)]
        width = int(np.prod(xs.shape[1:], dtype=np.int64))
        out = np.full((len(xs),) + self._out_shape(xs, label), np.nan)
        done = {}
        for i, k in enumerate(keys):
            if k in self.memo and (r := _round_all(self.memo[k][0], fmt)) is not None:
                done[i] = r
        near = np.abs(xs.astype(np.float64)).reshape(len(xs), -1).max(axis=1)
        todo = sorted((i for i in range(len(xs)) if i not in done), key=lambda i: near[i])
        over = todo[EXACT_POINTS:] if width <= MAX_EXACT_WIDTH else todo
        todo = todo[:EXACT_POINTS] if width <= MAX_EXACT_WIDTH else []
        prec = START_PREC
        while todo and prec <= PREC_CAP:
            now = [i for i in todo if self.memo.get(keys[i], (None, 0))[1] < prec]
            if now:
                sub = xs[now]
                flat = self._flat(sub.shape, sub.dtype, np.asarray(label).dtype, np.shape(label))[0]
                try:
                    vals = balls.evaluate(flat, [sub, np.asarray(label)], prec)[0]
                except exact.UnsupportedPrimitive:  # no exact rule: these points stay unresolved
                    over, todo = over + todo, []
                    break
                for j, i in enumerate(now):
                    self.memo[keys[i]] = (vals[j], prec)
                    if (r := _round_all(vals[j], fmt)) is not None:
                        done[i] = r
            todo = [i for i in todo if i not in done]
            prec *= 4
        for i, r in done.items():
            out[i] = r
        stats.exact += len(done)
        stats.budget += len(over)
        for i in todo:
            if _has_value(self.memo[keys[i]][0]):
                stats.cap += 1
            else:
                stats.undefined += 1
        return out


def _quick_round(e, fmt) -> int | None:
    """The ordinal a ball rounds to, decided in float64 where that suffices (formats
    narrower than float64): its midpoint ± (radius + a float64 ulp), outward, is an
    interval of reals holding the ball; if both ends round to one value of the format,
    so does every real between them. None: not decided this way."""
    if type(e) is not balls.arb or not e.is_finite():
        return None
    m, r = float(e.mid()), float(e.rad())
    if not (np.isfinite(m) and np.isfinite(r)) or m == 0:
        return None
    w = r * (1 + 2.0**-50) + np.spacing(abs(m)) * 2  # mid and rad as float64 are off by half an ulp each
    lo, hi = np.nextafter(m - w, -np.inf), np.nextafter(m + w, np.inf)
    a, b = formats.round_to_ordinal(np.array([lo, hi]), fmt)
    return int(a) if a == b else None


def _entries(v):
    return list(np.asarray(v, object).ravel()) if isinstance(v, np.ndarray) else [v]


def _has_value(v) -> bool:
    return all(e is not balls.UNDECIDED and not (hasattr(e, "is_finite") and not e.is_finite()) for e in _entries(v))


def _round_all(v, fmt):
    """A point's ball(s) rounded to `fmt` as float64 (an array for a vector), or None
    unless every entry rounds to one value."""
    out = []
    for e in _entries(v):
        o = _quick_round(e, fmt) if fmt.bits < 64 else None
        o = balls.rounded(e, fmt) if o is None else o
        if o is None:
            return None
        out.append(np.inf if o > fmt.max_ordinal else -np.inf if o < -fmt.max_ordinal else
                   float(formats.from_ordinal(np.int64(o), fmt).astype(np.float64)))
    return np.array(out).reshape(np.shape(v)) if isinstance(v, np.ndarray) else out[0]

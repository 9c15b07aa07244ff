"""The reference of a user's function: what its traced code means on the reals, in tiers.

A user's function is traced at the row's format (its jaxpr is what runs: constants
such as ``finfo(x.dtype).tiny`` as traced) and the jaxpr is evaluated on the reals
(conversions are the identity; see balls.py for the semantics). Two tiers decide
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
2. **exact** (per undecided point): arb balls (python-flint) through balls.py, which
   are rigorous. The precision starts at ``START_PREC`` bits and rises ×4 while a
   point's ball straddles a rounding boundary of the format, up to ``PREC_CAP`` bits.
   A point is *unresolved* (class ``unresolved``) where its real value is undefined
   (log of a negative number, 0/0, ∞ − ∞ reaching the output) or not settled at the
   cap: ``1 − sigmoid(z)`` cancels about 1.44·z bits, so the cap resolves it up to
   z ≈ PREC_CAP / 1.44.

Where the function has an identity rewrite (the same real function without the
cancellation or the overflow; see families.rewrites), its tier 1 runs at the points
the own tier 1 leaves open, and its tier 2 at those the own first precision leaves
open (`Reference.values`); either one's settled value is the exact one.

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
from flint import arb

from . import balls, formats, jaxpr
from .interval_rules import enclose
from .intervals import LIBM_ULPS, NoRule, _nan

START_PREC = 128  # bits: the ball tier's first precision; ×4 while a point is not settled
PREC_CAP = 8192  # bits: its last
EXACT_POINTS = 1 << 18  # points per call the exact tier takes (a whole scalar call), nearest zero first; the rest are unresolved
MAX_EXACT_WIDTH = 64  # vector inputs longer than this are not evaluated by the exact tier (unresolved)


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
    rewritten: int = 0  # points the identity-rewritten jaxpr decided (the own jaxpr's first precision left them open)
    fallback_unresolved: int = 0  # float64-fallback points left unresolved: its value was ∞, NaN or 0
    interval_s: float = 0.0
    exact_s: float = 0.0

    def __add__(self, other: Tiers) -> Tiers:
        return Tiers(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)))

    def to_json(self) -> dict:
        # no_enclosure, cap and budget: points left undecided (no value at the cap, a
        # ball across a rounding boundary at the cap, beyond the tier's points), by the
        # function's own jaxpr and by its identity rewrite; rewritten: points the
        # identity rewrite decided once the own jaxpr's first precision left them open
        return {"interval": self.interval, "exact": self.exact, "rewritten": self.rewritten,
                "unresolved": self.undefined + self.cap + self.budget + self.fallback_unresolved,
                "own_unresolved_no_enclosure": self.undefined, "own_unresolved_cap": self.cap,
                "own_unresolved_budget": self.budget, "float64": self.float64,
                "float64_unresolved": self.fallback_unresolved,
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

    @functools.lru_cache(maxsize=None)
    def _flat(self, shape, dtype, label_dtype, label_shape) -> tuple:
        """The function's flattened jaxpr (vmapped) on inputs of `shape`, its signature
        and the shape of one point's output."""
        x = jax.ShapeDtypeStruct(shape, dtype)
        y = jax.ShapeDtypeStruct(label_shape, label_dtype)
        closed = jax.make_jaxpr(jax.vmap(self.fn, (0, None)))(x, y)
        return jaxpr.flatten(closed), signature(closed), tuple(closed.out_avals[0].shape[1:])

    @functools.lru_cache(maxsize=None)
    def _sens_flat(self, shape, dtype, label_dtype, label_shape):
        """The flattened jaxpr of its forward derivative (None where it has none): traced
        only for the interval tier's sensitivities, not for every count of open points."""
        jvp = lambda x, y: jax.jvp(lambda x: self.fn(x, y), (x,), (x,))[1]  # noqa: E731
        try:
            return jaxpr.flatten(jax.make_jaxpr(jax.vmap(jvp, (0, None)))(
                jax.ShapeDtypeStruct(shape, dtype), jax.ShapeDtypeStruct(label_shape, label_dtype)))
        except Exception:  # noqa: BLE001  no forward derivative: nothing excused
            return None

    def _sensitivity(self, xs, label, out_shape) -> np.ndarray:
        """|x·f'(x)| per point, its least value over the interval tier's enclosure (0
        where that holds 0); NaN where the tier has no rule or no value."""
        sens = np.full((len(xs),) + out_shape, np.nan)
        sens_flat = self._sens_flat(xs.shape, xs.dtype, label.dtype, label.shape)
        if sens_flat is not None:
            try:
                (s,) = enclose(sens_flat, [xs, label])
                m = np.where((s.lo <= 0) & (s.hi >= 0), 0.0, np.minimum(np.abs(s.lo), np.abs(s.hi)))
                sens = np.where(s.bad | _nan(s.lo, s.hi), np.nan, m)
            except NoRule:
                pass
        return sens

    def _out_shape(self, xs, label) -> tuple:
        return self._flat(xs.shape, xs.dtype, np.asarray(label).dtype, np.shape(label))[2]

    def unsupported(self, fmt: formats.Format, label, shape: tuple = ()) -> list[str]:
        """Primitives of the function, traced at `fmt` on inputs of `shape`, that the
        exact tiers cannot evaluate."""
        label = np.asarray(label)
        return balls.unsupported(self._flat((1, *shape), fmt.dtype, label.dtype, label.shape)[0])

    def values(self, fmt: formats.Format, xs: np.ndarray, label, stats: Tiers | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(exact, sens) at kernel inputs `xs` (the format's values, one per row) with
        the row's `label`: exact rounded to the format, as float64, NaN where
        unresolved; sens as in the module docstring; `stats` counts what decided each
        point. A function with a primitive the exact tiers have no rule for is measured
        against itself run in float64 (the caller flags such rows, and skips float64
        rows)."""
        import time

        xs = np.asarray(xs)
        label = np.asarray(label)
        flat, sig, out_shape = self._flat(xs.shape, xs.dtype, label.dtype, label.shape)
        stats = Tiers() if stats is None else stats
        if balls.unsupported(flat):
            return self._float64(xs, label, stats)
        t0 = time.perf_counter()
        decided, value = _enclosed(flat, fmt, xs, label) if fmt.bits < 64 else (None, None)
        sens = self._sensitivity(xs, label, out_shape)
        stats.interval_s += time.perf_counter() - t0
        if decided is None:
            decided = np.zeros(len(xs), bool)
            value = np.full(sens.shape, np.nan)
        value = np.array(value, np.float64).reshape(sens.shape)
        stats.interval += int(decided.sum())
        todo = np.flatnonzero(~decided)
        # the identity rewrite (the same real function without the cancellation or the
        # overflow) is tried on the intervals next, then once the own jaxpr's first
        # precision leaves a point open: it settles in float64 intervals what the own
        # jaxpr needs balls for (e^m beyond float64's range inside a log-sum-exp) and
        # in a few bits what it would need thousands for (1 − σ(z) cancels 1.44·z
        # bits); either one's settled value is the exact one, so the order only changes
        # the cost and which tier is credited
        ident_flat, ident_sig = (self.identity._flat(xs.shape, xs.dtype, label.dtype, label.shape)[:2]
                                 if self.identity is not None and len(todo) else (None, sig))
        ident = ident_sig != sig
        if ident and fmt.bits < 64:
            # on the call's whole shape (one traced program for every call), read where open
            t0 = time.perf_counter()
            found, again = _enclosed(ident_flat, fmt, xs, label)
            if found is not None:
                found = found[todo]
                value[todo[found]] = np.asarray(again, np.float64).reshape(value.shape)[todo[found]]
                stats.rewritten += int(found.sum())
                todo = todo[~found]
            stats.interval_s += time.perf_counter() - t0
        for cap in ((START_PREC, PREC_CAP) if ident else (PREC_CAP,)):
            if len(todo):
                t0 = time.perf_counter()
                value[todo] = self._exact(fmt, xs[todo], label, sig, stats, cap)
                stats.exact_s += time.perf_counter() - t0
            todo = np.flatnonzero(np.isnan(value.reshape(len(xs), -1)).any(axis=1))
            if cap < PREC_CAP and len(todo):
                again, _ = self.identity.values(fmt, xs[todo], label)
                found = ~np.isnan(again.reshape(len(todo), -1)).any(axis=1)
                value[todo[found]] = again[found]
                stats.rewritten += int(found.sum())
                todo = todo[~found]
        return value, sens

    def _float64(self, xs, label, stats):
        """The function itself at float64 (vmapped, jitted): the fallback reference."""
        wide = lambda a: a.astype(np.float64) if a.dtype.kind in "fV" or str(a.dtype) in formats.FORMATS else a  # noqa: E731
        x64, l64 = wide(xs), wide(label)
        value = np.asarray(jax.jit(jax.vmap(self.wide, (0, None)))(x64, l64), np.float64)
        # float64's own ∞, NaN or 0 may be an overflow, a cancellation or an underflow of
        # the fallback itself: never taken as exact, such a point is unresolved
        lost = ~np.isfinite(value) | (value == 0)
        stats.fallback_unresolved += int(lost.reshape(len(xs), -1).any(axis=1).sum())
        value = np.where(lost, np.nan, value)
        jvp = lambda x, y: jax.jvp(lambda x: self.wide(x, y), (x,), (x,))[1]  # noqa: E731
        sens = np.abs(np.asarray(jax.jit(jax.vmap(jvp, (0, None)))(x64, l64), np.float64))
        sens = np.where(np.isfinite(sens), sens, np.nan)  # a float64 overflow excuses nothing
        stats.float64 += len(xs)
        return value, sens

    def _exact(self, fmt, xs, label, sig, stats, cap: int = PREC_CAP) -> np.ndarray:
        """Tier 2 at points `xs`: their values rounded to `fmt` (as float64), NaN where
        unresolved. A point's last ball is kept (per real input and label), so another
        format starts from it and raises the precision only if it must."""
        keys = [(sig, float(label), x.tobytes()) for x in np.ascontiguousarray(xs)]
        width = int(np.prod(xs.shape[1:], dtype=np.int64))
        out = np.full((len(xs),) + self._out_shape(xs, label), np.nan)
        done = {}
        known = [i for i, k in enumerate(keys) if k in self.memo]
        for i, r in zip(known, _round_points([self.memo[keys[i]][0] for i in known], fmt)):
            if r is not None:
                done[i] = r
        near = np.abs(xs.astype(np.float64)).reshape(len(xs), -1).max(axis=1)
        todo = sorted((i for i in range(len(xs)) if i not in done), key=lambda i: near[i])
        over = todo[EXACT_POINTS:] if width <= MAX_EXACT_WIDTH else todo
        todo = todo[:EXACT_POINTS] if width <= MAX_EXACT_WIDTH else []
        prec = START_PREC
        while todo and prec <= cap:
            now = [i for i in todo if self.memo.get(keys[i], (None, 0))[1] < prec]
            if now:
                sub = xs[now]
                flat = self._flat(sub.shape, sub.dtype, np.asarray(label).dtype, np.shape(label))[0]
                try:
                    vals = balls.evaluate(flat, [sub, np.asarray(label)], prec)[0]
                except jaxpr.UnsupportedPrimitive:  # no exact rule: these points stay unresolved
                    over, todo = over + todo, []
                    break
                for j, i in enumerate(now):
                    self.memo[keys[i]] = (vals[j], prec)
                for i, r in zip(now, _round_points(list(vals), fmt)):
                    if r is not None:
                        done[i] = r
            todo = [i for i in todo if i not in done]
            prec *= 4
        for i, r in done.items():
            out[i] = r
        stats.exact += len(done)
        if cap < PREC_CAP:  # not the last try: what is left is counted by the last
            return out
        stats.budget += len(over)
        for i in todo:
            if _has_value(self.memo[keys[i]][0]):
                stats.cap += 1
            else:
                stats.undefined += 1
        return out


def _enclosed(flat, fmt: formats.Format, xs: np.ndarray, label) -> tuple:
    """Tier 1 on a flattened jaxpr: (decided, value) at points `xs`, a point decided
    where every entry's enclosure rounds to one value of `fmt` (value NaN elsewhere);
    (None, None) where the jaxpr has an operation the tier has no rule for."""
    try:
        (out,) = enclose(flat, [xs, label])
    except NoRule:
        return None, None
    o_lo, o_hi = (formats.round_to_ordinal(np.where(np.isnan(v), 0.0, v), fmt) for v in (out.lo, out.hi))
    same = (o_lo == o_hi) & ~out.bad & ~_nan(out.lo, out.hi)
    return same.reshape(len(xs), -1).all(axis=1), np.where(same, formats.ordinal_to_float64(o_lo, fmt), np.nan)


UNDECIDED_ORDINAL = np.iinfo(np.int64).min  # beside ±(max + 1), which mean beyond the range


def _quick_round(entries: list, fmt) -> np.ndarray:
    """The ordinal each ball (or exact int) rounds to, decided in float64 where that
    suffices (formats narrower than float64), all at once: a ball's midpoint ± (radius
    + two float64 ulps), outward, is an interval of reals holding it (mid and rad as
    float64 are off by half an ulp each); if both ends round to one value of the
    format, so does every real between them. UNDECIDED_ORDINAL: not decided this way."""
    n = len(entries)
    m, r = np.zeros(n), np.zeros(n)
    ok = np.zeros(n, bool)
    for i, e in enumerate(entries):
        if type(e) is arb:
            if e.is_finite():
                m[i], r[i], ok[i] = float(e.mid()), float(e.rad()), True
        elif isinstance(e, (bool, int)) and abs(int(e)) < 2**53:
            m[i], ok[i] = float(e), True
    ok &= np.isfinite(m) & np.isfinite(r)
    with np.errstate(over="ignore", invalid="ignore"):
        w = r * (1 + 2.0**-50) + np.spacing(np.abs(m)) * 2
        lo, hi = np.nextafter(m - w, -np.inf), np.nextafter(m + w, np.inf)
    a = formats.round_to_ordinal(np.where(ok, lo, 0.0), fmt)
    b = formats.round_to_ordinal(np.where(ok, hi, 0.0), fmt)
    return np.where(ok & (a == b), a, UNDECIDED_ORDINAL).astype(np.int64)


def _round_points(values: list, fmt) -> list:
    """Each point's ball(s) rounded to `fmt` as float64 (an array for a vector), or None
    unless every entry rounds to one value: the quick path for all entries at once,
    `balls.rounded` for the rest."""
    per = [_entries(v) for v in values]
    flat = [e for p in per for e in p]
    none = UNDECIDED_ORDINAL
    ords = _quick_round(flat, fmt) if fmt.bits < 64 and flat else np.full(len(flat), none, np.int64)
    for j in np.flatnonzero(ords == none):
        o = balls.rounded(flat[j], fmt)
        ords[j] = none if o is None else o
    vals = formats.from_ordinal(np.clip(ords, -fmt.max_ordinal, fmt.max_ordinal).astype(np.int64), fmt)
    vals = np.where(ords > fmt.max_ordinal, np.inf, np.where(ords < -fmt.max_ordinal, -np.inf,
                                                             vals.astype(np.float64)))
    out, at = [], 0
    for v, p in zip(values, per):
        k = len(p)
        if (ords[at:at + k] == none).any():
            out.append(None)
        else:
            out.append(vals[at:at + k].reshape(np.shape(v)) if isinstance(v, np.ndarray) else float(vals[at]))
        at += k
    return out


def _entries(v):
    return list(np.asarray(v, object).ravel()) if isinstance(v, np.ndarray) else [v]


def _has_value(v) -> bool:
    return all(e is not balls.UNDECIDED and not (hasattr(e, "is_finite") and not e.is_finite()) for e in _entries(v))

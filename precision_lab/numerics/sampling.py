"""The swept points of one format: its whole lattice, or a sample of it.

Formats of up to 16 bits are swept exhaustively: every finite value, ±0 once.
Wider formats are sampled, in increasing order and reproducibly from `seed`:

* half the points (at most 2**mant, so rounding never merges two) form a linear
  grid on [−L, L], L the first power of two above −ln(smallest subnormal), where
  σ(z) underflows: the region where the sigmoid family's failures begin;
* the other half are stratified over the bit patterns outside it (one uniform
  draw per equal-width stratum of ordinals, as Herbie samples uniformly over bit
  patterns), with ±max always included.

Any slice of the sequence can be produced on its own, so sweeps are chunked and
memory stays bounded however many points are asked for.
"""

from __future__ import annotations

import math

import numpy as np

from . import formats

DEFAULT_POINTS = 1 << 16
MIN_POINTS = 64  # a sampled axis takes at least this many points


def _hash32(x):
    """A counter-based generator: uniform uint32 from consecutive uint32 counters
    (the "lowbias32" integer hash; numpy or jax, 32-bit multiplies vectorise well)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))


class Axis:
    """The ordered points swept in one format: `len(axis)` ordinals, chunk by chunk."""

    def __init__(self, fmt: formats.Format, points: int = DEFAULT_POINTS, seed: int = 0,
                 exhaustive: bool | None = None):
        self.fmt = fmt
        self.exhaustive = fmt.exhaustive if exhaustive is None else exhaustive or points >= fmt.lattice_size
        self.seed = seed
        if self.exhaustive:
            self.n = fmt.lattice_size
            return
        points = max(points, MIN_POINTS)
        half_width = 2.0 ** math.ceil(math.log2(formats.underflow_logit(fmt)))
        self.grid_limit = half_width
        n_grid = min(points // 2, 1 << fmt.mant) | 1  # odd, so 0 is on the grid
        n_side = max((points - n_grid + 1) // 2, 2)
        self.grid_ord = int(formats.to_ordinal(fmt.cast(half_width), fmt))  # ordinal of +L
        if n_side > fmt.max_ordinal - self.grid_ord:  # more strata than values beyond L: points would repeat
            if fmt.bits <= 16:
                self.exhaustive, self.n = True, fmt.lattice_size
                return
            from ..errors import InputError

            most = (1 << fmt.mant | 1) + 2 * (fmt.max_ordinal - self.grid_ord)
            raise InputError(f"A sample of {fmt.name} holds at most {most} distinct points, fewer than the "
                             f"{points} asked for; `exhaustive` (--exhaustive) sweeps every value of a format up "
                             f"to {EXHAUSTIVE_MAX_BITS} bits ({fmt.name}: {fmt.lattice_size}).")
        self.n_grid, self.n_side = n_grid, n_side
        self.n = n_grid + 2 * n_side

    def __len__(self) -> int:
        return self.n

    def __eq__(self, other) -> bool:
        return isinstance(other, Axis) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self):
        return (self.fmt.name, self.n, self.seed, self.exhaustive, getattr(self, "n_grid", None))

    @property
    def zero_index(self) -> int:
        """Position of the point 0 in the sequence."""
        return self.fmt.max_ordinal if self.exhaustive else self.n_side + self.n_grid // 2

    def ordinals(self, i, xp=np):
        """Ordinals (int64) of the points at positions `i` of the sequence; strictly increasing in i.

        Works on the host (numpy) and inside a jitted program (jax.numpy) alike, and
        gives the same values in both.
        """
        i = xp.asarray(i).astype(np.int64)
        if self.exhaustive:
            return i - self.fmt.max_ordinal
        half = self.n_grid // 2
        g = (i - self.n_side - half).astype(np.float64) * (self.grid_limit / half)
        grid = formats.round_to_ordinal(g, self.fmt, xp)
        pos = i >= self.n_side + self.n_grid
        j = xp.clip(xp.where(pos, i - self.n_side - self.n_grid, self.n_side - 1 - i), 0, self.n_side - 1)
        strata = self._strata(j, pos, xp)
        return xp.where(i < self.n_side, -strata, xp.where(pos, strata, grid))

    def _strata(self, j, pos, xp):
        """Ordinal of stratum j of the region (L, max], one draw each (mirrored where not `pos`)."""
        lo, hi = self.grid_ord + 1, self.fmt.max_ordinal
        width = (hi - lo + 1) / self.n_side
        start = lo + xp.floor(j.astype(np.float64) * width).astype(np.int64)
        end = lo + xp.floor((j + 1).astype(np.float64) * width).astype(np.int64)  # exclusive
        counter = (j.astype(np.uint32) << np.uint32(1)) | pos.astype(np.uint32)
        u = _hash32(counter ^ np.uint32(_hash32(np.uint32(self.seed & 0xFFFFFFFF)))).astype(np.float64)
        draw = start + xp.floor(u * (2.0**-32) * (end - start).astype(np.float64)).astype(np.int64)
        return xp.where(j == self.n_side - 1, hi, xp.minimum(draw, end - 1))

    def values(self, start: int, stop: int) -> np.ndarray:
        return formats.from_ordinal(self.ordinals(np.arange(start, min(stop, self.n))), self.fmt)


class Range:
    """Every value of a format whose ordinal lies in [lo, hi]: an exhaustive axis over
    part of the lattice (±0 once, as ordinal 0)."""

    exhaustive = True

    def __init__(self, fmt: formats.Format, lo: int, hi: int):
        if lo > hi:
            raise ValueError(f"empty range of ordinals [{lo}, {hi}]")
        self.fmt, self.lo, self.hi = fmt, int(lo), int(hi)
        self.n = self.hi - self.lo + 1

    def __len__(self) -> int:
        return self.n

    def __eq__(self, other) -> bool:
        return isinstance(other, Range) and (self.fmt.name, self.lo, self.hi) == (other.fmt.name, other.lo, other.hi)

    def __hash__(self) -> int:
        return hash((self.fmt.name, self.lo, self.hi))

    @property
    def zero_index(self) -> int:
        """Position of the first point at or above 0 (0 if all are, len if none is)."""
        return min(max(-self.lo, 0), self.n)

    def ordinals(self, i, xp=np):
        return xp.asarray(i).astype(np.int64) + self.lo

    def values(self, start: int, stop: int) -> np.ndarray:
        return formats.from_ordinal(self.ordinals(np.arange(start, min(stop, self.n))), self.fmt)


class Spaced:
    """`n` ordinals spread evenly over [lo, hi], both ends included: a sampled axis over
    part of the lattice (boundaries are then refined like any sampled axis's)."""

    exhaustive = False

    def __init__(self, fmt: formats.Format, lo: int, hi: int, n: int):
        if hi - lo + 1 < n or n < 2:
            raise ValueError(f"cannot space {n} points over the ordinals [{lo}, {hi}]")
        self.fmt, self.lo, self.hi, self.n = fmt, int(lo), int(hi), int(n)

    def __len__(self) -> int:
        return self.n

    def __eq__(self, other) -> bool:
        return isinstance(other, Spaced) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self):
        return (self.fmt.name, self.lo, self.hi, self.n)

    @property
    def zero_index(self) -> int:
        """Position of the first point at or above 0."""
        i = np.searchsorted(self.ordinals(np.arange(self.n)), 0)
        return int(i)

    def ordinals(self, i, xp=np):
        """lo + ⌊i·(hi − lo)/(n − 1)⌋, exactly: a float64 span reaches 2**64, so the
        step's whole part q and remainder r are taken apart, lo + i·q may wrap in int64
        on the way (its value lies in [lo, hi], so the wrapped sum is exact), and i·r
        < n² stays small."""
        i = xp.asarray(i).astype(np.int64)
        q, r = divmod(self.hi - self.lo, self.n - 1) if self.n > 2 else (0, 0)  # n = 2: i = 1 is hi
        with np.errstate(over="ignore"):
            out = (i * np.int64(q) + np.int64(self.lo)) + (i * np.int64(r)) // np.int64(self.n - 1)
        return xp.where(i == self.n - 1, np.int64(self.hi), out)

    def values(self, start: int, stop: int) -> np.ndarray:
        return formats.from_ordinal(self.ordinals(np.arange(start, min(stop, self.n))), self.fmt)


EXHAUSTIVE_MAX_BITS = 32  # `exhaustive` sweeps every value of formats up to this width


def axis_for(fmt: formats.Format, points: int | None, seed: int, value_range=None, exhaustive: bool = False):
    """A row's axis: every value of the format (or of [LO, HI]) when `exhaustive` or
    the format has 16 bits or fewer; else `points` of them (default DEFAULT_POINTS)."""
    from ..errors import InputError

    if exhaustive and fmt.bits > EXHAUSTIVE_MAX_BITS:
        raise InputError(f"`exhaustive` sweeps every value of formats of up to {EXHAUSTIVE_MAX_BITS} bits; "
                         f"{fmt.name} (2**{fmt.bits} values) stays sampled: leave it out of the formats.")
    if value_range:
        return ranged(fmt, value_range, points, every=exhaustive)
    return Axis(fmt, points or DEFAULT_POINTS, seed, exhaustive=exhaustive or None)


def ranged(fmt: formats.Format, value_range: tuple[float, float], points: int | None, every: bool = False):
    """The axis of the format's values in [LO, HI]: every one of them for formats swept
    exhaustively (16 bits or fewer, or any with `every`) or where they are at most
    `points` (default DEFAULT_POINTS); otherwise `points` of them, evenly spaced in
    ordinal."""
    from ..errors import InputError

    lo, hi = (float(v) for v in value_range)
    if not lo <= hi:
        raise InputError(f"--range {lo:g},{hi:g} is empty; give LO ≤ HI.")
    with np.errstate(over="ignore"):  # a bound beyond the format's range is its ∞ here
        o_lo = int(formats.to_ordinal(fmt.cast(np.float64(lo)), fmt))
        o_hi = int(formats.to_ordinal(fmt.cast(np.float64(hi)), fmt))
    top = fmt.max_ordinal
    o_lo += float(formats.from_ordinal(np.int64(o_lo), fmt)) < lo  # the format's values inside [LO, HI]
    o_hi -= float(formats.from_ordinal(np.int64(o_hi), fmt)) > hi
    o_lo, o_hi = max(o_lo, -top), min(o_hi, top)
    if o_lo > o_hi:
        raise InputError(f"No {fmt.name} value lies in [{lo:g}, {hi:g}].")
    n = points or DEFAULT_POINTS
    if every or fmt.exhaustive or o_hi - o_lo + 1 <= n:
        return Range(fmt, o_lo, o_hi)
    return Spaced(fmt, o_lo, o_hi, max(n, 2))

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


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A counter-based generator: uniform uint64 from consecutive counters."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class Axis:
    """The ordered points swept in one format: `len(axis)` ordinals, chunk by chunk."""

    def __init__(self, fmt: formats.Format, points: int = DEFAULT_POINTS, seed: int = 0):
        self.fmt = fmt
        self.exhaustive = fmt.exhaustive
        self.seed = seed
        if self.exhaustive:
            self.n = fmt.lattice_size
            return
        half_width = 2.0 ** math.ceil(math.log2(formats.underflow_logit(fmt)))
        self.grid_limit = half_width
        n_grid = min(points // 2, 1 << fmt.mant) | 1  # odd, so 0 is on the grid
        n_side = max((points - n_grid + 1) // 2, 2)
        self.n_grid, self.n_side = n_grid, n_side
        self.n = n_grid + 2 * n_side
        self.grid_ord = int(formats.to_ordinal(fmt.cast(half_width), fmt))  # ordinal of +L

    def __len__(self) -> int:
        return self.n

    def ordinals(self, start: int, stop: int) -> np.ndarray:
        """Ordinals of points start..stop-1 of the sequence, strictly increasing."""
        i = np.arange(start, min(stop, self.n), dtype=np.int64)
        if self.exhaustive:
            return i - self.fmt.max_ordinal
        out = np.empty(i.shape, np.int64)
        neg = i < self.n_side
        grid = (i >= self.n_side) & (i < self.n_side + self.n_grid)
        pos = i >= self.n_side + self.n_grid
        out[neg] = -self._strata(self.n_side - 1 - i[neg], 0)
        g = i[grid] - self.n_side
        step = 2.0 * self.grid_limit / (self.n_grid - 1)
        values = self.fmt.cast(-self.grid_limit + g * step)
        out[grid] = formats.to_ordinal(values, self.fmt)
        out[pos] = self._strata(i[pos] - self.n_side - self.n_grid, 1)
        return out

    def _strata(self, j: np.ndarray, side: int) -> np.ndarray:
        """Ordinal of stratum j of the region (L, max], one draw each (side 0 mirrored)."""
        lo, hi = self.grid_ord + 1, self.fmt.max_ordinal
        width = (hi - lo + 1) / self.n_side
        start = lo + np.floor(j * width).astype(np.int64)
        end = lo + np.floor((j + 1) * width).astype(np.int64)  # exclusive
        counter = (np.uint64(self.seed) << np.uint64(33)) ^ (np.uint64(side) << np.uint64(32))
        u = _splitmix64(counter + j.astype(np.uint64)) >> np.uint64(11)
        draw = start + np.floor(u * (2.0**-53) * (end - start)).astype(np.int64)
        return np.where(j == self.n_side - 1, hi, np.minimum(draw, end - 1))

    def values(self, start: int, stop: int) -> np.ndarray:
        return formats.from_ordinal(self.ordinals(start, stop), self.fmt)

"""How the backend really accumulates Σ in each format: measured, not assumed.

Random positive vectors are cast to the format and summed by a jitted
`jnp.sum`; each result is compared bit for bit with three host simulations:
a wide accumulator rounded once at the end (XLA's CPU backend sums bfloat16 and
float16 in float32), pairwise summation rounding to the format at every step,
and left-to-right summation rounding at every step.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..numerics import formats

TRIALS, LENGTH = 64, 1000


def _pairwise(x: np.ndarray) -> np.ndarray:
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = np.concatenate([x, np.zeros_like(x[..., :1])], axis=-1)
        x = x[..., 0::2] + x[..., 1::2]
    return x[..., 0]


def _sequential(x: np.ndarray) -> np.ndarray:
    acc = x[..., 0]
    for i in range(1, x.shape[-1]):
        acc = acc + x[..., i]
    return acc


@functools.lru_cache(maxsize=None)
def _measure_one(name: str, platform: str) -> dict:
    fmt = formats.get(name)
    rng = np.random.default_rng(12345)
    with np.errstate(over="ignore"):
        x = fmt.cast(rng.uniform(0.5, 1.0, (TRIALS, LENGTH)) * min(1.0, fmt.max / (2 * LENGTH)))
    backend = np.asarray(jax.jit(lambda v: jnp.sum(v, axis=1))(jax.device_put(x, jax.devices(platform)[0])))
    exact = np.array([math.fsum(row) for row in x.astype(np.float64)])
    with np.errstate(over="ignore"):
        sims = {"wide accumulator, rounded once": fmt.cast(exact),
                "pairwise in the format": _pairwise(x), "left to right in the format": _sequential(x)}
    matches = {k: int((v.astype(np.float64) == backend.astype(np.float64)).sum()) for k, v in sims.items()}
    best = max(matches, key=matches.get)
    return {"trials": TRIALS, "length": LENGTH, "matches": matches,
            "verdict": f"jnp.sum matches {best} in {matches[best]}/{TRIALS} trials"}


def measure(names, device) -> dict:
    """For each format name: how many trials each accumulation model reproduced exactly."""
    return {n: _measure_one(n, device.platform) for n in names}

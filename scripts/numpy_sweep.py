"""A straightforward vectorised NumPy sweep of the sigmoid family, as a user would write it.

The baseline that scripts/bench_sweep.py compares the engine with: the same
kernels (gradients written out by hand where the engine uses jax.grad), a
float64 reference, and the same classification and counts, one chunk at a time.
It is deliberately plain NumPy: no JAX, no compilation.

    python scripts/numpy_sweep.py --points 65536
"""

from __future__ import annotations

import argparse
import time

import numpy as np

CLASSES = ("ok", "inaccurate", "zero", "inf", "nan")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def kernels(z, y):
    """Every sigmoid-family form at logits z (float32 arrays), target y (float32)."""
    one = z.dtype.type(1)
    yh = sigmoid(z)
    dmse = yh - y
    dloss = -y / yh + (one - y) / (one - yh)
    dsig = yh * (one - yh)
    eps = z.dtype.type(1e-7)
    p = np.clip(yh, eps, one - eps)
    log_sig = -np.logaddexp(z.dtype.type(0), -z)  # log σ(z)
    log_sig_neg = -np.logaddexp(z.dtype.type(0), z)  # log σ(−z)
    return {
        "mse": z.dtype.type(0.5) * dmse**2,
        "bce_naive": -(y * np.log(yh) + (one - y) * np.log(one - yh)),
        "bce_keras": -(y * np.log(p) + (one - y) * np.log(one - p)),
        "bce_torch": (y - one) * np.maximum(np.log(one - yh), z.dtype.type(-100))
        - y * np.maximum(np.log(yh), z.dtype.type(-100)),
        "bce_logits": -(y * log_sig + (one - y) * log_sig_neg),
        "mse_chain": dmse * dsig,
        "bce_naive_chain": dloss * dsig,
        "bce_naive_autodiff": (-y / yh + (one - y) / (one - yh)) * dsig,
        "bce_torch_chain": (yh - y) / np.maximum(yh * (one - yh), z.dtype.type(1e-12)) * dsig,
        "bce_fused": yh - y,
        "bce_logits_autodiff": -(y * sigmoid(-z) - (one - y) * yh),
        "dloss_dyhat": dloss,
        "dsigmoid_dz": dsig,
        "dmse_dyhat": dmse,
    }


def references(z64, y):
    """Exact values (float64) and scales for the absolute floor, per form."""
    s, c = sigmoid(z64), sigmoid(-z64)
    sp, spn = np.logaddexp(0, z64), np.logaddexp(0, -z64)
    d = (1 - y) - c if y >= 0.5 else s - y
    bce = (y * spn + (1 - y) * sp, y * spn + (1 - y) * sp)
    grad = (d, s + y)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.zeros_like(s) if y == 0 else y / s
        neg = np.zeros_like(c) if y == 1 else (1 - y) / c
    return {
        "mse": (0.5 * d * d, np.abs(d) * (s + y)),
        "bce_naive": bce, "bce_keras": bce, "bce_torch": bce, "bce_logits": bce,
        "mse_chain": (d * s * c, (s + y) * s * c),
        "bce_naive_chain": grad, "bce_naive_autodiff": grad, "bce_torch_chain": grad,
        "bce_fused": grad, "bce_logits_autodiff": grad,
        "dloss_dyhat": (neg - pos, neg + pos),
        "dsigmoid_dz": (s * c, s * c),
        "dmse_dyhat": grad,
    }


def ordinal32(x):
    i = x.view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def classify(out, exact, scale, tolerance=4.0):
    """Class codes of float32 results against float64 exact values."""
    eps = np.float64(np.finfo(np.float32).eps)
    with np.errstate(over="ignore", invalid="ignore"):
        o_e = ordinal32(exact.astype(np.float32))  # NumPy rounds subnormals correctly
        o_c = ordinal32(out)
        ulp = np.abs(o_c - o_e)
        err = np.abs(out.astype(np.float64) - exact)
        inaccurate = (ulp > tolerance) & (err > tolerance * eps * np.minimum(scale, np.finfo(np.float32).max))
    code = np.zeros(out.shape, np.int8)
    code[inaccurate] = 1
    code[(o_c == 0) & (o_e != 0)] = 2
    code[np.isinf(out) & (o_c != o_e)] = 3
    code[np.isnan(out)] = 4
    return code


def sweep_chunk(z32: np.ndarray, target: float) -> dict[str, np.ndarray]:
    """Counts per class of every form over one chunk of float32 logits."""
    y32 = np.float32(target)
    with np.errstate(all="ignore"):
        outs = kernels(z32, y32)
        refs = references(z32.astype(np.float64), float(y32))
    return {name: np.bincount(classify(outs[name], *refs[name]), minlength=5) for name in outs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1 << 16)
    ap.add_argument("--target", type=float, default=0.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    z = rng.uniform(-100, 100, args.points).astype(np.float32)
    t0 = time.perf_counter()
    counts = sweep_chunk(z, args.target)
    dt = time.perf_counter() - t0
    for name, c in counts.items():
        print(f"{name:22s}", dict(zip(CLASSES, c.tolist())))
    print(f"{args.points / dt:.3g} points/s")


if __name__ == "__main__":
    main()

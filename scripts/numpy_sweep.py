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


def _c(z, v):
    return z.dtype.type(v)


# One function per form, each written on its own as in precision_lab/sigmoid.py
# (gradients that JAX takes with jax.grad are written out by hand).
def mse(z, y):
    return _c(z, 0.5) * (sigmoid(z) - y) ** 2


def bce_naive(z, y):
    yh = sigmoid(z)
    return -(y * np.log(yh) + (_c(z, 1) - y) * np.log(_c(z, 1) - yh))


def bce_keras(z, y):
    eps = _c(z, 1e-7)
    p = np.clip(sigmoid(z), eps, _c(z, 1) - eps)
    return -(y * np.log(p) + (_c(z, 1) - y) * np.log(_c(z, 1) - p))


def bce_torch(z, y):
    p = sigmoid(z)
    return (y - _c(z, 1)) * np.maximum(np.log(_c(z, 1) - p), _c(z, -100)) - y * np.maximum(np.log(p), _c(z, -100))


def bce_logits(z, y):
    return -(y * -np.logaddexp(_c(z, 0), -z) + (_c(z, 1) - y) * -np.logaddexp(_c(z, 0), z))


def dmse_dyhat(z, y):
    return sigmoid(z) - y


def dloss_dyhat(z, y):
    yh = sigmoid(z)
    return -y / yh + (_c(z, 1) - y) / (_c(z, 1) - yh)


def dsigmoid_dz(z, y):
    yh = sigmoid(z)
    return yh * (_c(z, 1) - yh)


def mse_chain(z, y):
    return dmse_dyhat(z, y) * dsigmoid_dz(z, y)


def bce_naive_chain(z, y):
    return dloss_dyhat(z, y) * dsigmoid_dz(z, y)


def bce_naive_autodiff(z, y):
    yh = sigmoid(z)
    return (-y / yh + (_c(z, 1) - y) / (_c(z, 1) - yh)) * (yh * (_c(z, 1) - yh))


def bce_torch_chain(z, y):
    p = sigmoid(z)
    return (p - y) / np.maximum(p * (_c(z, 1) - p), _c(z, 1e-12)) * dsigmoid_dz(z, y)


def bce_fused(z, y):
    return sigmoid(z) - y


def bce_logits_autodiff(z, y):
    return -(y * sigmoid(-z) - (_c(z, 1) - y) * sigmoid(z))


FORMS = (mse, bce_naive, bce_keras, bce_torch, bce_logits, mse_chain, bce_naive_chain, bce_naive_autodiff,
         bce_torch_chain, bce_fused, bce_logits_autodiff, dloss_dyhat, dsigmoid_dz, dmse_dyhat)


def kernels(z, y):
    """Every sigmoid-family form at logits z (float32 arrays), target y (float32)."""
    return {f.__name__: f(z, y) for f in FORMS}


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


def softmax_kernels(z, t):
    """The softmax forms on logit vectors z (N × K, format dtype) with true classes t (N,)."""
    n, k = z.shape
    rows = np.arange(n)
    one = z.dtype.type(1)
    onehot = np.zeros_like(z)
    onehot[rows, t] = one
    e = np.exp(z)
    p_naive = e / e.sum(axis=1, keepdims=True)
    s = z - z.max(axis=1, keepdims=True)
    es = np.exp(s)
    total = es.sum(axis=1, keepdims=True)
    p = es / total
    eps = z.dtype.type(1e-7)
    lse = np.log(total[:, 0])
    return {
        "ce_naive": -np.log(p_naive[rows, t]),
        "ce_shifted": -np.log(p[rows, t]),
        "ce_keras": -np.log(np.clip(p / p.sum(axis=1, keepdims=True), eps, one - eps)[rows, t]),
        "ce_log_softmax": lse - s[rows, t],
        "ce_naive_chain": (-one / p_naive[rows, t])[:, None] * (p_naive[rows, t][:, None] * (onehot - p_naive)),
        "ce_naive_autodiff": p_naive - onehot,
        "ce_shifted_autodiff": p - onehot,
        "ce_fused": p - onehot,
        "ce_log_softmax_autodiff": p - onehot,
    }


def softmax_references(z64, t):
    """Exact loss and gradient (float64, max-shifted, without cancellation) and scales."""
    n, k = z64.shape
    rows = np.arange(n)
    top = z64.argmax(axis=1)
    e = np.exp(z64 - z64[rows, top][:, None])
    rest = e.copy()
    rest[rows, top] = 0
    others = e.copy()
    others[rows, t] = 0
    total = e.sum(axis=1)
    loss = (z64[rows, top] - z64[rows, t]) + np.log1p(rest.sum(axis=1))
    grad = e / total[:, None]
    grad[rows, t] = -others.sum(axis=1) / total
    onehot = np.zeros_like(grad)
    onehot[rows, t] = 1
    loss_scale = np.abs(z64[rows, top] + np.log1p(rest.sum(axis=1))) + np.abs(z64[rows, t])
    return (loss, loss_scale), (grad, np.abs(grad) + onehot)


def classify_any(out, exact, scale, fmt, tolerance=4.0):
    """Class codes of results in any format (ml_dtypes for bfloat16) against float64 exact values."""
    bits = out.dtype.itemsize * 8
    ints = {16: np.int16, 32: np.int32}[bits]

    def ordinal(x):
        i = x.view(ints).astype(np.int64)
        return np.where(i < 0, -(i & ((1 << (bits - 1)) - 1)), i)

    with np.errstate(over="ignore", invalid="ignore"):
        o_e = ordinal(exact.astype(out.dtype))
        o_c = ordinal(out)
        err = np.abs(out.astype(np.float64) - exact)
        inaccurate = (np.abs(o_c - o_e) > tolerance) & (err > tolerance * fmt.eps * np.minimum(scale, fmt.max))
        isinf = np.isinf(out.astype(np.float64))
        code = np.zeros(out.shape, np.int8)
        code[inaccurate] = 1
        code[(o_c == 0) & (o_e != 0)] = 2
        code[isinf & (o_c != o_e)] = 3
        code[np.isnan(out.astype(np.float64))] = 4
    return code


def softmax_chunk(m: np.ndarray, k: int, target: int, fmt) -> dict[str, np.ndarray]:
    """Counts per class of every softmax form over margin vectors z = (m, 0, …, 0)."""
    z = np.zeros((len(m), k), fmt.dtype)
    z[:, 0] = m
    t = np.full(len(m), target)
    with np.errstate(all="ignore"):
        outs = softmax_kernels(z, t)
        (loss, loss_s), (grad, grad_s) = softmax_references(z.astype(np.float64), t)
    counts = {}
    for name, out in outs.items():
        exact, scale = (loss, loss_s) if out.ndim == 1 else (grad, grad_s)
        code = classify_any(out, exact, scale, fmt)
        counts[name] = np.bincount(code.reshape(len(m), -1).max(axis=1), minlength=5)
    return counts


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

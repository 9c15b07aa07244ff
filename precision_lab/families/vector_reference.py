"""Exact values of the softmax forms on whole logit vectors (the random and logits sweeps).

The reference is a max-shifted log-sum-exp computed apart from the kernels: in
float64 with NumPy for formats up to 32 bits (Σ over K ≤ 2**22 terms loses at most
about 22·2**-53, far below any of their ULPs), in double-double on the host for
float64, with arb balls for the entries whose exponentials fall where double-double is
quantised (`_mp_tails`). With label distributions (soft or one-hot labels) the
reference is `_soft_reference`'s.
"""

from __future__ import annotations

import math

import numpy as np
from flint import arb

from ..numerics import dd, formats, mp, rounding


def reference(z: np.ndarray, t: np.ndarray, fmt: formats.Format):
    """Exact loss and gradient of the format's logit vectors z (float64 values) with
    labels t: class indices (`_class_reference`) or label distributions (N × K, the
    values the kernel received: `_soft_reference`).

    Returns (loss, its sensitivity), (grad, its sensitivity), rounded to float64: the
    sensitivity of f is Σᵢ|zᵢ ∂f/∂zᵢ| (see classify), with ∂L/∂zᵢ = g_i and, writing
    P = Σ_j t_j (1 for a class index) and s = softmax(z), g_j = P·s_j − t_j, so that
    ∂g_j/∂zᵢ = P·s_j(δ_ij − s_i) and the sensitivity of g_j is P·s_j(S + |z_j|(1 − 2s_j)),
    S = Σᵢ|zᵢ|s_i. The labels are exact (not part of the sensitivity).
    """
    soft = t.ndim == 2
    loss, grad = _soft_reference(z, t, fmt) if soft else _class_reference(z, t, fmt)
    weight = t.sum(axis=1, keepdims=True) if soft else 1.0
    rows = np.arange(len(z))
    top = np.argmax(z, axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.exp(z - z[rows, top][:, None])
        p /= p.sum(axis=1, keepdims=True)
        az = np.abs(z)
        s = (az * p).sum(axis=1, keepdims=True)
        return (loss, (az * np.abs(grad)).sum(axis=1)), (grad, weight * p * (s + az * (1 - 2 * p)))


def _class_reference(z: np.ndarray, t: np.ndarray, fmt: formats.Format):
    """Loss and gradient for class indices t. With e_j = exp(z_j − max z):
    loss = (max z − z_t) + log1p(Σ_{j≠argmax} e_j) and p_t − 1 = −Σ_{j≠t} e_j / Σ e_j,
    each sum taken without the term that would cancel."""
    n, k = z.shape
    rows = np.arange(n)
    top = np.argmax(z, axis=1)
    shift = z[rows, top] - z[rows, t]  # rounded (the float64 loss takes it in DD)
    if fmt.bits < 64:
        e = np.exp(z - z[rows, top][:, None])
        total = e.sum(axis=1)
        log_total = np.log1p(_without(e, top).sum(axis=1))
        loss = shift + log_total
        grad = e / total[:, None]
        grad[rows, t] = -_without(e, t).sum(axis=1) / total
    else:
        e = dd.exp(dd.DD(z) - z[rows, top][:, None])
        total = _dd_sum(e)
        log_total = dd.log1p(_dd_sum(_without(e, top))).to_float()
        # max z − z_t is not exact in float64 (only z_j are): taken in DD
        tail = _dd_sum(_without(e, top))
        loss_dd = (dd.DD(z[rows, top]) - z[rows, t]) + dd.log1p(tail)
        loss = loss_dd.to_float()
        for i in np.flatnonzero(mp.near_tie(loss_dd)):  # (max z − z_t) is often a midpoint
            loss[i] = _mp_loss(z[i], top[i], t[i], float(tail.hi[i]))
        grad = (e / dd.DD(total.hi[:, None], total.lo[:, None])).to_float()
        grad[rows, t] = (-_dd_sum(_without(e, t)) / total).to_float()
        _mp_tails(z, t, top, shift, total, loss, grad)
    return loss, grad


def _soft_reference(z: np.ndarray, p: np.ndarray, fmt: formats.Format):
    """Loss Σ_i p_i (logsumexp(z) − z_i) and gradient g = P·softmax(z) − p (P = Σ p_i)
    for label distributions p. For formats up to 32 bits in float64: with
    d_i = z_i − max z ≤ 0 the loss is Σ p_i·(−d_i) + P·log1p(Σ_{j≠argmax} e^d_j), a sum
    of non-negative terms; g_i = s_i·Σ_{j≠i} p_j − p_i·Σ_{j≠i} s_j, the sums over
    j ≠ i taken by prefix and suffix sums (nothing cancels in them; a one-hot p gives the
    class-index formulas). What is left, the subtraction, cancels where s_i·P ≈ p_i:
    where float64's error bound there exceeds 2**-10 ULP of the format, and for every
    float64 vector, the vector is evaluated on arb balls (`_mp_soft`)."""
    n, k = z.shape
    rows = np.arange(n)
    top = np.argmax(z, axis=1)
    d = z - z[rows, top][:, None]
    e = np.exp(d)
    s = e / e.sum(axis=1, keepdims=True)
    loss = (p * -d).sum(axis=1) + p.sum(axis=1) * np.log1p(_without(e, top).sum(axis=1))
    a, b = _others(p), _others(s)
    grad = s * a - p * b
    bound = 2.0**-53 * (k + 8) * (s * a + p * b)
    redo = np.ones(n, bool) if fmt.bits >= 64 else (bound > 2.0**-(fmt.precision + 10) * np.abs(grad)).any(axis=1)
    for i in np.flatnonzero(redo):
        loss[i], grad[i] = _mp_soft(z[i], p[i])
    return loss, grad


def _others(x: np.ndarray) -> np.ndarray:
    """Σ_{j≠i} x_j for each entry i of each row (x ≥ 0): prefix plus suffix sums."""
    before = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x[:, :-1], axis=1)], axis=1)
    after = np.concatenate([np.cumsum(x[:, :0:-1], axis=1)[:, ::-1], np.zeros_like(x[:, :1])], axis=1)
    return before + after


def _settle(fn, prec: int = mp.START_PREC) -> list[float]:
    """fn() -> arb balls, evaluated at `prec` bits and at doubling precision until every
    ball rounds to one float64 (up to mp.MAX_PREC, then rounded from the midpoint)."""
    while True:
        with rounding.workprec(prec):
            balls = fn()
            found = [rounding.settled(v) for v in balls]
        if all(v is not None for v in found):
            return found
        if prec >= mp.MAX_PREC:
            return [rounding.arb_to_float64(v) for v in balls]
        prec = min(2 * prec, mp.MAX_PREC)


def _ball_sum(xs) -> arb:
    total = arb(0)
    for x in xs:
        total += x
    return total


def _mp_soft(zi: np.ndarray, pi: np.ndarray) -> tuple[float, np.ndarray]:
    """One vector's soft-label loss and gradient on arb balls, settled (see `_settle`)."""
    top = int(np.argmax(zi))

    def balls():
        d = [_diff(v, zi[top]) for v in zi]
        e = [x.exp() for x in d]
        total = _ball_sum(e)
        q = [arb(float(x)) for x in pi]
        weight = _ball_sum(q)
        log_total = total.log()
        loss = _ball_sum(qi * (log_total - di) for qi, di in zip(q, d))
        return [loss] + [weight * ei / total - qi for ei, qi in zip(e, q)]

    values = _settle(balls)
    return values[0], np.array(values[1:])


TAIL = -655.0  # e^(z_j − max z) below this exponent: under ~2**-945, where DD is quantised


def _mp_tails(z, t, top, shift, total: dd.DD, loss, grad) -> None:
    """Redo on arb balls (settled, see `_settle`) what double-double cannot round
    correctly: e_j = e^(z_j − max z) below ~2**-945 carries the low word's
    quantisation to 2**-1074. So p_j = e_j / Σe for such an entry (not the target's:
    its p_t − 1 is about −1), and, where every entry but the top one is that small,
    the loss (max z − z_t) + log1p(Σ_{j≠top} e_j) and, if t is the top one, its
    p_t − 1 = −Σ_{j≠top} e_j / Σe. Σe ≥ 1 keeps its DD value (relative error ~2**-104)."""
    n = len(z)
    rows = np.arange(n)
    d = z - z[rows, top][:, None]  # rounded: picks the entries only
    tiny = d < TAIL
    if not tiny.any():
        return

    def total_of(i):
        return arb(float(total.hi[i])) + arb(float(total.lo[i]))

    for i, j in zip(*np.nonzero(tiny)):
        if j != t[i]:
            grad[i, j] = _settle(lambda i=i, j=j: [_diff(z[i, j], z[i, top[i]]).exp() / total_of(i)])[0]
    others_tiny = tiny.sum(axis=1) == z.shape[1] - 1
    for i in np.flatnonzero(others_tiny):
        def tail(i=i):
            return _ball_sum(_diff(v, z[i, top[i]]).exp() for j, v in enumerate(z[i]) if j != top[i])
        s = _settle(lambda: [tail()])[0]
        loss[i] = _mp_loss(z[i], top[i], t[i], s)
        if t[i] == top[i]:
            grad[i, t[i]] = _settle(lambda i=i, tail=tail: [-tail() / total_of(i)])[0]


def _mp_loss(zi, top: int, t: int, tail: float) -> float:
    """(max z − z_t) + log1p(Σ_{j≠top} e_j) of one vector on balls, from enough bits to
    see the tail sum Σ (~`tail`) beside max z − z_t, settled."""
    gap = math.log2(max(abs(float(zi[top])), abs(float(zi[t])), 1.0)) - math.log2(max(tail, 2.0**-1074))

    def balls():
        s = _ball_sum(_diff(v, zi[top]).exp() for j, v in enumerate(zi) if j != top)
        return [_diff(zi[top], zi[t]) + s.log1p()]

    return _settle(balls, min(mp.MAX_PREC, 160 + max(0, int(gap))))[0]


def _diff(a, b) -> arb:
    """a − b of two float64 values, exactly, as an arb (2200 bits hold any such difference)."""
    with rounding.workprec(2200):
        return arb(float(a)) - arb(float(b))


def _without(e, idx):
    """A copy of e (float64 or double-double, N × K) with entry idx of each row set to 0."""
    rows = np.arange(len(idx))
    if isinstance(e, dd.DD):
        hi, lo = e.hi.copy(), e.lo.copy()
        hi[rows, idx] = 0.0
        lo[rows, idx] = 0.0
        return dd.DD(hi, lo)
    out = e.copy()
    out[rows, idx] = 0.0
    return out


def _dd_sum(x: dd.DD) -> dd.DD:
    """Σ over the last axis, pairwise, in double-double."""
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = dd.DD(np.concatenate([x.hi, np.zeros_like(x.hi[..., :1])], -1),
                      np.concatenate([x.lo, np.zeros_like(x.lo[..., :1])], -1))
        x = x[..., 0::2] + x[..., 1::2]
    return x[..., 0]

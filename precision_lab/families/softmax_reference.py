"""Exact references of the softmax family's structured sweeps, and their case codes.

Both structured sweeps have closed-form references built on q = (K − 1)·e^(−m)
(m ≥ 0) or r = e^m/(K − 1) (m < 0), each part written without cancellation, and
evaluated in float64 under JAX for formats up to 32 bits and in double-double on the
host for float64 (arb balls where double-double cannot be trusted).

A case (sweep, true class) reaches the programs as a code: the true class in bit 0
(0 top, 1 other) and the sweep in bit 1 (0 margin, 1 offset), so that both sweeps
and both classes share one compiled program per format. Only this module and the
family read it.
"""

from __future__ import annotations

import math
import types

import jax.numpy as jnp
import numpy as np
from flint import arb

from ..numerics import dd, ddj, mp, rounding

SWEEPS = ("margin", "offset")
TARGET_CLASSES = {"top": 0, "other": 1}


def case(sweep: str, target_class: str) -> int:
    """The code that the structured kernels take as their target: the true class in
    bit 0 (0 top, 1 other) and the sweep in bit 1 (0 margin, 1 offset), so that both
    sweeps and both classes share one compiled program per format. `is_offset`,
    `class_index` and `decode` read it (on ints, float64 and traced arrays alike);
    nothing else does."""
    return TARGET_CLASSES[target_class] + 2 * SWEEPS.index(sweep)


CODES = tuple(range(2 * len(SWEEPS)))


def is_offset(code):
    """Whether a case code is on the offset sweep."""
    return code >= 2


def class_index(code):
    """The true class of a case code: 0 (the top logit) or 1 (another)."""
    return code - 2 * is_offset(code)


def decode(code) -> tuple[str, str]:
    """(sweep, target class) of a case code."""
    code = int(code)
    return SWEEPS[int(is_offset(code))], ("top", "other")[class_index(code)]


def _vector(x, offset: bool, k: int):
    """z = (x, 0, …, 0) for the margin sweep, x + (1, 0, …, 0) in the format for the
    offset sweep (a Python bool: the sweep is part of the input program)."""
    if offset:
        return x + jnp.zeros(k, x.dtype).at[0].set(1)
    return jnp.zeros(k, x.dtype).at[0].set(x)


def _parts(m, k: int, xp):
    """Exact pieces of z = (m, 0, …, 0): ln Σe^z, ln Σe^z − m, p_0, p_0 − 1 and p_j (j ≥ 1),
    each written without cancellation. `m` is a float64 array; xp does the arithmetic
    (float64 under JAX, or double-double)."""
    pos = m >= 0
    e = xp.exp(-abs(m))  # e^(−|m|)
    q = (k - 1) * e  # m ≥ 0: Σe^z / e^m − 1
    r = e / (k - 1)  # m < 0: Σe^z / (K − 1) − 1
    log_k1 = xp.ln(k - 1)
    lse = xp.where(pos, m + xp.log1p(q), log_k1 + xp.log1p(r))
    lse_minus_m = xp.where(pos, xp.log1p(q), log_k1 + xp.log1p(r) - m)
    p0 = xp.where(pos, 1 / (1 + q), r / (1 + r))
    p0_minus_1 = xp.where(pos, -q / (1 + q), -1 / (1 + r))
    p_other = xp.where(pos, e / (1 + q), 1 / ((k - 1) * (1 + r)))
    return lse, lse_minus_m, p0, p0_minus_1, p_other


class _Device:
    """Arithmetic for references in float64 under JAX."""

    exp, log1p, ln = staticmethod(jnp.exp), staticmethod(jnp.log1p), staticmethod(math.log)

    @staticmethod
    def where(c, a, b):
        return jnp.where(c, a, b)


# Double-double is trusted where e^(−|m|)/(K − 1)² ≥ e**-660 ≈ 2**-952 (every part
# and intermediate then lies in [2**-960, 2**1000]); beyond |m| = 747 + ln(K − 1)
# the tiny parts are below 2**-1077 and their DD value 0 gives every reference
# exactly. For K = 2 and m < 0, p_1 − 1 = −p_0 cancels |m|/ln 2 bits.
DD_TRUSTED = 660.0


class _Host:
    """Arithmetic for references on the host (float64): `mp.Exact` values, double-double
    at every point and arb balls at the points where double-double cannot be trusted, so
    that every reference rounds correctly to float64. Its values stay exact through
    `_assemble` (`_f` leaves them as they are) and are rounded once, by `to_float()`."""

    def __init__(self, m: np.ndarray, k: int):
        m = np.atleast_1d(np.asarray(m, np.float64))
        a, lk = np.abs(m), math.log(k - 1)
        risky = (a >= DD_TRUSTED - 2 * lk) & (a <= 748.0 + lk)
        if k == 2:
            risky |= (m < -14.0) & (a <= 748.0 + lk)
        self.rows, self.n = np.flatnonzero(risky), len(m)

    def exp(self, x):
        x = np.atleast_1d(np.asarray(x, np.float64))

        def fn(rows):
            out = np.empty(len(rows), object)
            out[:] = [arb(float(v)).exp() for v in x[rows]]
            return [out]
        return mp.parts((dd.exp(x),), fn, self.rows, self.n)[0]

    @staticmethod
    def log1p(x):
        return x.unary("log1p", dd.log1p)

    def ln(self, v: int):
        """ln v as a constant: double-double to 2**-106, and a ball at any precision."""
        with rounding.workprec(256):
            exact = arb(v).log()
            hi = rounding.arb_to_float64(exact)
            lo = rounding.arb_to_float64(exact - hi)
        return mp.constant(dd.DD(hi, lo), lambda: arb(v).log(), self.rows, self.n)

    where = staticmethod(mp.where)
    arange = staticmethod(np.arange)


class _DeviceDD:
    """Arithmetic for float64 references on a device: `ddj`'s double-double, the
    host's kernels (see `_Host`)."""

    exp, log1p, ln, where = staticmethod(ddj.exp), staticmethod(ddj.log1p), staticmethod(ddj.ln), staticmethod(ddj.where)
    arange = staticmethod(jnp.arange)


def _untrusted(x64, code64, k: int) -> np.ndarray:
    """The points whose float64 references the device leaves to the host: `_Host`'s
    ball rows, and every |m| from which the low parts of products of two tiny parts
    (e^(−|m|)/(K − 1))² fall below 2**-1022 (a device flushes them to 0)."""
    m = np.abs(np.where(is_offset(code64), 1.0, np.asarray(x64, np.float64)))
    lk = math.log(k - 1)
    risky = m >= ddj.SUBNORMAL_LOGIT - 2 * lk
    if k == 2:
        risky |= np.where(is_offset(code64), 1.0, np.asarray(x64, np.float64)) < -13.0
    return risky


def _host_base(x64, code64, k: int):
    """The host's references, built three entries wide: entries 2 … K − 1 of every
    vector are one value (p_j for j ≥ 2, and what is made of it), so the exact
    arithmetic runs once for them and `_Wide` copies the rounded entry out to K. On the
    offset sweep every point's logits differ by m = 1 (the loss is shift-invariant), so
    its references are one point's, computed once and repeated (`_Repeated`)."""
    x = np.atleast_1d(np.asarray(x64, np.float64))
    if len(x) > 1 and np.all(is_offset(code64)):
        base = _host_base(x[:1], code64, k)
        for name, v in vars(base).items():
            setattr(base, name, _Repeated(v, len(x)))
        return base
    m = np.where(is_offset(code64), 1.0, np.asarray(x64, np.float64))  # as `_base` has it
    host = _Host(m, k)
    base = _base(np.atleast_1d(np.asarray(x64, np.float64)), code64, k, host, host, width=min(k, 3))
    if k > 3:
        for name in ("grad", "grad_sens", "row", "row_sens"):
            setattr(base, name, _Wide(getattr(base, name), k))
    return base


class _Wide:
    """A host reference computed on entries 0, 1 and 2 of K, whose entry 2 stands for
    every entry from 2 on: rounded once (`to_float`), then copied out to K entries."""

    def __init__(self, value, k: int):
        self.value, self.k = value, k

    def to_float(self) -> np.ndarray:
        v = self.value
        out = v.to_float() if hasattr(v, "to_float") else np.asarray(v, np.float64)
        return np.concatenate((out, np.repeat(out[..., 2:], self.k - 3, axis=-1)), axis=-1)


class _Repeated:
    """A host reference of one point, rounded once (`to_float`), then repeated for `n`."""

    def __init__(self, value, n: int):
        self.value, self.n = value, n

    def to_float(self) -> np.ndarray:
        v = self.value
        out = np.asarray(v.to_float() if hasattr(v, "to_float") else v, np.float64)
        return np.repeat(np.atleast_1d(out), self.n, axis=0)


def _f(v):
    return v.to_float() if isinstance(v, dd.DD) else v


def _base(x64, code64, k: int, xp, array, width: int | None = None):
    """Reference quantities for the swept number x (m, or c for the offset sweep): its
    vectors `width` entries wide (K by default; see `_host_base`)."""
    offset = is_offset(code64)
    m = array.where(offset, 0 * x64 + 1.0, x64)
    with np.errstate(all="ignore"):  # host arithmetic reaches ±∞ at the far ends, as the exact values do
        return _assemble(m, code64, offset, k, xp, array, k if width is None else width)


def _assemble(m, code64, offset, k: int, xp, array, width: int):
    lse, lse_m, p0, p0m1, pj = (_f(v) for v in _parts(m, k, xp))
    top = class_index(code64) == 0
    idx = array.arange(width)
    col = lambda v: v[..., None]  # noqa: E731
    loss = array.where(top, lse_m, lse)  # ln Σe^z − z_t (z_1 = 0)
    # gradient p − onehot(t): entry 0 is p_0 − 1 (top) or p_0; entry 1 is p_1 − 1 (other)
    g0 = array.where(top, p0m1, p0)
    g1 = array.where(top, pj, pj - 1)
    grad = array.where(idx == 0, col(g0), array.where(idx == 1, col(g1), col(pj)))
    # the factors of ce_naive_chain: −1/p_t, and p_t(δ_t − p) (1 − p_t is −(p_0 − 1) or 1 − p_1)
    pt = array.where(top, p0, pj)
    e0 = array.where(top, -p0m1, -p0)  # δ_t0 − p_0
    e1 = array.where(top, -pj, 1 - pj)  # δ_t1 − p_1
    e = array.where(idx == 0, col(e0), array.where(idx == 1, col(e1), col(-pj)))  # δ_tj − p_j
    row = col(pt) * e
    # Sensitivities Σᵢ|zᵢ ∂f/∂zᵢ|: only z_0 = m is not 0 (for the offset sweep m = 1,
    # the logits' one difference, as the loss is shift-invariant), so each is |m·∂f/∂z_0|,
    # with ∂p_j/∂z_0 = p_j(δ_j0 − p_0).
    am = col(abs(m))
    p = array.where(idx == 0, col(p0), col(pj))
    f = array.where(idx == 0, col(-p0m1), col(-p0))  # δ_j0 − p_0
    grad_sens = am * abs(p * f)
    row_sens = am * abs(col(pt) * (col(e0) * e - p * f))  # ∂(p_t e_j) = p_t(δ_t0 − p_0)e_j − p_t ∂p_j
    return types.SimpleNamespace(loss=loss, loss_sens=abs(m) * abs(g0), grad=grad, grad_sens=grad_sens,
                                 dloss_dpt=-1 / pt, dloss_sens=abs(m) * abs(e0 / pt), row=row, row_sens=row_sens)


def _ref_loss(b):
    return b.loss, b.loss_sens


def _ref_grad(b):
    return b.grad, b.grad_sens


def _ref_dloss_dpt(b):
    return b.dloss_dpt, b.dloss_sens


def _ref_row(b):
    return b.row, b.row_sens


REFS = {"loss": _ref_loss, "grad": _ref_grad, "dloss_dpt": _ref_dloss_dpt, "softmax_jacobian_row": _ref_row}

"""The softmax family: categorical cross-entropy over K classes.

Forms are plain functions of a logit vector `z` (K entries, in the working
format) and the index `t` of the true class, written as a JAX user writes them. Given
a label distribution `t` (a K-vector: soft or one-hot labels) instead, the loss forms
take −Σ t_i ln p_i and the fused ones softmax(z) − t; `CLASS_ONLY` forms need an index.
Two structured sweeps turn one swept number into a logit vector:

* ``margin`` (axis m): z = (m, 0, …, 0);
* ``offset`` (axis c): z = c + (1, 0, …, 0), computed in the format. The exact loss
  does not depend on c, so the reference is the loss of (1, 0, …, 0): every
  deviation, the rounding of c + 1 included, is the format's fault.

The true class is the top one (index 0) or another (index 1). Both sweeps have
closed-form references built on q = (K − 1)·e^(−m) (m ≥ 0) or r = e^m/(K − 1)
(m < 0), evaluated in float64 under JAX for formats up to 32 bits and in
double-double on the host for float64.

Σ exp is accumulated the way the backend's `jnp.sum` does it (measured, see
accumulation.py), and, in the ``*_fmt_sum`` forms, pairwise with a rounding to the
format after every addition, so the growth of error with K shows in both cases.
"""

from __future__ import annotations

import functools
import math
import types

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
from jax import lax

from ..numerics import dd, ddj, mp
from .base import Family, Form

KERAS_EPSILON = 1e-7
SWEEPS = ("margin", "offset")
TARGET_CLASSES = {"top": 0, "other": 1}


def _pick(v, t):
    return lax.dynamic_index_in_dim(v, t.astype(jnp.int32), keepdims=False)


def _soft(t) -> bool:
    """Whether the label is a distribution over the K classes (soft or one-hot labels,
    as label smoothing makes them) rather than a class index."""
    return jnp.ndim(t) == 1


def _onehot(z, t):
    if _soft(t):
        return t.astype(z.dtype)
    return (jnp.arange(z.shape[-1]) == t.astype(jnp.int32)).astype(z.dtype)


def _nll(p, t):
    """−ln p_t; with a label distribution t, −Σ t_i ln p_i, as it is usually written."""
    if _soft(t):
        return -jnp.sum(t.astype(p.dtype) * jnp.log(p))
    return -jnp.log(_pick(p, t))


def _lse_minus(lse, s, t):
    """logsumexp − s_t; with a label distribution t, −Σ t_i (s_i − logsumexp) (optax's
    softmax_cross_entropy)."""
    if _soft(t):
        return -jnp.sum(t.astype(s.dtype) * (s - lse))
    return lse - _pick(s, t)


def format_sum(v):
    """Σv pairwise, rounded to v's format after every addition (a stated order)."""
    n = 1 << max(0, math.ceil(math.log2(v.shape[-1])))
    v = jnp.pad(v, (0, n - v.shape[-1]))
    info = jnp.finfo(v.dtype)
    while v.shape[-1] > 1:
        v = lax.reduce_precision(v[0::2] + v[1::2], exponent_bits=info.nexp, mantissa_bits=info.nmant)
    return v[0]


# ------------------------------------------------------------------ losses


def ce_naive(z, t):
    e = jnp.exp(z)  # no shift: overflows once a logit passes ln(max)
    return _nll(e / jnp.sum(e), t)


def ce_shifted(z, t):
    e = jnp.exp(z - jnp.max(z))
    return _nll(e / jnp.sum(e), t)


def ce_keras(z, t):
    p = jax.nn.softmax(z)
    p = p / jnp.sum(p)  # Keras renormalises, then clips to [ε, 1 − ε]
    eps = jnp.asarray(KERAS_EPSILON, z.dtype)
    return _nll(jnp.clip(p, eps, 1 - eps), t)


def ce_log_softmax(z, t):
    # logsumexp(z) − z_t with the max shifted out: the fused form
    s = z - lax.stop_gradient(jnp.max(z))
    return _lse_minus(jnp.log(jnp.sum(jnp.exp(s))), s, t)


def ce_log_softmax_fmt_sum(z, t):
    s = z - lax.stop_gradient(jnp.max(z))
    return _lse_minus(jnp.log(format_sum(jnp.exp(s))), s, t)


# ------------------------------------------------------------------ gradients


def dloss_dpt(z, t):
    """∂L/∂p_t = −1/p_t with the unshifted softmax: −∞ once p_t rounds to 0."""
    e = jnp.exp(z)
    return -1 / _pick(e / jnp.sum(e), t)


def softmax_jacobian_row(z, t):
    """Row t of the softmax Jacobian, p_t(δ_t − p): 0 once p_t rounds to 0."""
    e = jnp.exp(z)
    p = e / jnp.sum(e)
    return _pick(p, t) * (_onehot(z, t) - p)


def ce_naive_chain(z, t):
    """∂L/∂p_t times row t of the softmax Jacobian, each computed on its own: ∞ × 0."""
    return dloss_dpt(z, t) * softmax_jacobian_row(z, t)


def ce_naive_autodiff(z, t):
    return jax.grad(ce_naive)(z, t)


def ce_shifted_autodiff(z, t):
    return jax.grad(ce_shifted)(z, t)


def ce_fused(z, t):
    return jax.nn.softmax(z) - _onehot(z, t)


def ce_fused_fmt_sum(z, t):
    e = jnp.exp(z - jnp.max(z))
    return e / format_sum(e) - _onehot(z, t)


def ce_log_softmax_autodiff(z, t):
    return jax.grad(ce_log_softmax)(z, t)


VECTOR_FORMS = (
    ("ce_naive", "loss", ce_naive, "−ln p_t, softmax exp(z)/Σexp(z) unshifted"),
    ("ce_shifted", "loss", ce_shifted, "−ln p_t, softmax after subtracting max z"),
    ("ce_keras", "loss", ce_keras, "p clipped to [ε, 1−ε], as Keras"),
    ("ce_log_softmax", "loss", ce_log_softmax, "logsumexp(z) − z_t, shifted"),
    ("ce_log_softmax_fmt_sum", "loss", ce_log_softmax_fmt_sum, "the same, Σexp rounded to the format each step"),
    ("ce_naive_chain", "grad", ce_naive_chain, "(−1/p_t)·p_t(δ_t − p), unsimplified"),
    ("ce_naive_autodiff", "grad", ce_naive_autodiff, "jax.grad(ce_naive)"),
    ("ce_shifted_autodiff", "grad", ce_shifted_autodiff, "jax.grad(ce_shifted)"),
    ("ce_fused", "grad", ce_fused, "softmax(z) − onehot(t)"),
    ("ce_fused_fmt_sum", "grad", ce_fused_fmt_sum, "the same, Σexp rounded to the format each step"),
    ("ce_log_softmax_autodiff", "grad", ce_log_softmax_autodiff, "jax.grad(ce_log_softmax)"),
    ("dloss_dpt", "factor", dloss_dpt, "∂L/∂p_t = −1/p_t"),
    ("softmax_jacobian_row", "factor", softmax_jacobian_row, "p_t(δ_t − p), row t of ∂p/∂z"),
)
FACTORS = {"ce_naive_chain": ("dloss_dpt", "softmax_jacobian_row")}
AUTODIFF = {"ce_naive_autodiff": ce_naive, "ce_shifted_autodiff": ce_shifted,
            "ce_log_softmax_autodiff": ce_log_softmax}  # the loss each jax.grad form differentiates
# forms written on the true class's probability p_t: no meaning for a label distribution
CLASS_ONLY = ("ce_naive_chain", "dloss_dpt", "softmax_jacobian_row")


# ------------------------------------------------------------------ references


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
    at every point and mpmath at the points where double-double cannot be trusted, so
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
            out[:] = [mpmath.exp(mpmath.mpf(float(v))) for v in x[rows]]
            return [out]
        return mp.parts((dd.exp(x),), fn, self.rows, self.n)[0]

    @staticmethod
    def log1p(x):
        return x.unary("log1p", dd.log1p)

    def ln(self, v: int):
        """ln v as a constant: double-double to 2**-106, and mpmath at any precision."""
        with mpmath.workprec(256):
            exact = mpmath.log(v)
            hi = mp.to_float64(exact)
            lo = mp.to_float64(exact - hi)
        return mp.constant(dd.DD(hi, lo), lambda: mpmath.log(v), self.rows, self.n)

    where = staticmethod(mp.where)
    arange = staticmethod(np.arange)


class _DeviceDD:
    """Arithmetic for float64 references on a device: `ddj`'s double-double, the
    host's kernels (see `_Host`)."""

    exp, log1p, ln, where = staticmethod(ddj.exp), staticmethod(ddj.log1p), staticmethod(ddj.ln), staticmethod(ddj.where)
    arange = staticmethod(jnp.arange)


def _untrusted(x64, code64, k: int) -> np.ndarray:
    """The points whose float64 references the device leaves to the host: `_Host`'s
    mpmath rows, and every |m| from which the low parts of products of two tiny parts
    (e^(−|m|)/(K − 1))² fall below 2**-1022 (a device flushes them to 0)."""
    m = np.abs(np.where(is_offset(code64), 1.0, np.asarray(x64, np.float64)))
    lk = math.log(k - 1)
    risky = m >= ddj.SUBNORMAL_LOGIT - 2 * lk
    if k == 2:
        risky |= np.where(is_offset(code64), 1.0, np.asarray(x64, np.float64)) < -13.0
    return risky


def _host_base(x64, code64, k: int):
    m = np.where(is_offset(code64), 1.0, np.asarray(x64, np.float64))  # as `_base` has it
    host = _Host(m, k)
    return _base(np.atleast_1d(np.asarray(x64, np.float64)), code64, k, host, host)


def _f(v):
    return v.to_float() if isinstance(v, dd.DD) else v


def _base(x64, code64, k: int, xp, array):
    """Reference quantities for the swept number x (m, or c for the offset sweep)."""
    offset = is_offset(code64)
    m = array.where(offset, 0 * x64 + 1.0, x64)
    with np.errstate(all="ignore"):  # host arithmetic reaches ±∞ at the far ends, as the exact values do
        return _assemble(m, code64, offset, k, xp, array)


def _assemble(m, code64, offset, k: int, xp, array):
    lse, lse_m, p0, p0m1, pj = (_f(v) for v in _parts(m, k, xp))
    top = class_index(code64) == 0
    idx = array.arange(k)
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


_REFS = {"loss": _ref_loss, "grad": _ref_grad, "dloss_dpt": _ref_dloss_dpt, "softmax_jacobian_row": _ref_row}


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


@functools.lru_cache(maxsize=None)
def family(classes: int = 10) -> Family:
    """The softmax family on the structured sweeps with K = `classes` (target: `case`).

    Its kernels are the forms themselves, `fn(z, t)` on a K-vector and a class index;
    the engine builds the vectors of a sweep in a program of their own, and passes the
    class as a traced int32, as a user's training step would."""
    forms = tuple(
        Form(name, quantity, fn, _REFS.get(name, _REFS.get(quantity)), summary, factors=FACTORS.get(name),
             loss=AUTODIFF.get(name))
        for name, quantity, fn, summary in VECTOR_FORMS
    )
    return Family(
        name="softmax",
        forms=tuple(f for f in forms if f.quantity != "factor"),
        factors=tuple(f for f in forms if f.quantity == "factor"),
        axis="m",
        device_base=lambda x64, code64: _base(x64, code64, classes, _Device, jnp),
        host_base=lambda x64, code64: _host_base(x64, code64, classes),
        device_dd_base=lambda x64, code64: _base(x64, code64, classes, _DeviceDD, _DeviceDD),
        untrusted=lambda x64, code64: _untrusted(x64, code64, classes),
        width=classes,
        inputs=lambda x, offset: jax.vmap(lambda v: _vector(v, offset, classes))(x),
        case=lambda code: bool(is_offset(int(code))),  # the sweep: part of the input program
        label=lambda code, fmt: np.int32(class_index(int(code))),
    )


# ------------------------------------------------------------------ sweep plans

DEFAULT_CLASSES = (10, 1000)
DEFAULT_SWEEPS = ("margin", "offset", "random")
ALL_SWEEPS = ("margin", "offset", "random", "logits")
ELEMENTS_PER_ROW = 1 << 22  # points × K of one structured row, beyond which the lattice is sampled
MAX_CLASSES = 1 << 22  # one chunk of 8 vectors of K entries, with its float64 references, in memory


def softmax_axis(k: int, fmt, points: int | None, seed: int, value_range=None, exhaustive: bool = False):
    """The margin or offset axis of a structured row at K = k (see `points_for`)."""
    from ..numerics.sampling import Axis, axis_for

    if exhaustive or value_range:
        return axis_for(fmt, points_for(k, points, fmt), seed, value_range, exhaustive)
    n = points_for(k, points, fmt)
    return Axis(fmt, n, seed, exhaustive=fmt.exhaustive and n >= fmt.lattice_size)


def points_for(k: int, points: int | None, fmt) -> int:
    """Points of a structured row: the whole lattice when lattice × K fits the row's
    budget; else `points`, or by default as many as keep points × K near the budget
    (at least 256, at most 65536)."""
    if fmt.exhaustive and fmt.lattice_size * k <= ELEMENTS_PER_ROW:
        return fmt.lattice_size
    return points if points is not None else min(1 << 16, max(256, ELEMENTS_PER_ROW // k))

"""The sigmoid family: a logistic output unit trained with MSE or cross-entropy.

Kernels are plain functions of a logit `z` and a target `y`, both already in the
working format, written as a JAX user would write them: ŷ is `jax.nn.sigmoid(z)`,
framework constants are cast to the format as the framework casts them.

References are written on the exact base quantities of the logit:
s = σ(z), c = σ(−z) = 1 − s, sp = softplus(z), spn = softplus(−z) = sp − z.
Every loss form is measured against the true loss of its family, every gradient
form against the true gradient ∂L/∂z, whatever clipping the form applies.
"""

from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
from flint import arb

from ..errors import InputError
from ..numerics import dd, ddj, mp
from .base import Case, Constant, Family, Form, div0
from .registry import Kind, Option, option, register

KERAS_EPSILON = 1e-7  # keras.backend.epsilon()
TORCH_LOG_CLAMP = -100.0  # BCELoss clamps each log at -100
TORCH_EPSILON = 1e-12  # BCELoss backward: max((1 - p) * p, 1e-12)


# ------------------------------------------------------------------ factors


def dmse_dyhat(z, y):
    """∂L/∂ŷ of ½(ŷ − y)²: ŷ − y."""
    return jax.nn.sigmoid(z) - y


def dloss_dyhat(z, y):
    """∂L/∂ŷ of binary cross-entropy, −y/ŷ + (1 − y)/(1 − ŷ): ∞ once ŷ rounds to 0 or 1."""
    yhat = jax.nn.sigmoid(z)
    return -y / yhat + (1 - y) / (1 - yhat)


def dsigmoid_dz(z, y):
    """σ'(z) = ŷ(1 − ŷ): exactly 0 once ŷ rounds to 0 or 1. (`y` is unused.)"""
    yhat = jax.nn.sigmoid(z)
    return yhat * (1 - yhat)


# ------------------------------------------------------------------ losses


def mse(z, y):
    return 0.5 * (jax.nn.sigmoid(z) - y) ** 2


def bce_naive(z, y):
    yhat = jax.nn.sigmoid(z)
    return -(y * jnp.log(yhat) + (1 - y) * jnp.log(1 - yhat))


def bce_keras(z, y):
    eps = jnp.asarray(KERAS_EPSILON, z.dtype)  # Keras casts epsilon to the output's dtype
    p = jnp.clip(jax.nn.sigmoid(z), eps, 1 - eps)
    return -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))


def bce_torch(z, y):
    p = jax.nn.sigmoid(z)
    return (y - 1) * jnp.maximum(jnp.log(1 - p), TORCH_LOG_CLAMP) - y * jnp.maximum(
        jnp.log(p), TORCH_LOG_CLAMP
    )


def bce_logits(z, y):
    # log(1 - sigmoid(z)) = log_sigmoid(-z), the latter numerically stable
    return -(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z))


# ------------------------------------------------------------------ gradients


def mse_chain(z, y):
    return dmse_dyhat(z, y) * dsigmoid_dz(z, y)


def bce_naive_chain(z, y):
    """The textbook product ∂L/∂ŷ · σ'(z), each factor computed on its own."""
    return dloss_dyhat(z, y) * dsigmoid_dz(z, y)


def bce_naive_autodiff(z, y):
    return jax.grad(bce_naive)(z, y)


def bce_torch_chain(z, y):
    """PyTorch's BCELoss backward, (ŷ − y)/max(ŷ(1 − ŷ), 1e-12), times σ'(z)."""
    p = jax.nn.sigmoid(z)
    eps = jnp.asarray(TORCH_EPSILON, z.dtype)
    return (p - y) / jnp.maximum(p * (1 - p), eps) * dsigmoid_dz(z, y)


def bce_fused(z, y):
    return jax.nn.sigmoid(z) - y


def bce_logits_autodiff(z, y):
    return jax.grad(bce_logits)(z, y)


# ------------------------------------------------------------------ references


# Each reference returns the exact value f and its sensitivity |z · f'(z)| to the
# logit (the target is exact): the error that rounding z alone would cause, per unit
# roundoff, which is all the classifier excuses (see classify).


def _ref_loss_bce(b):
    v = b.y * b.spn + (1 - b.y) * b.sp  # −y ln σ(z) − (1 − y) ln σ(−z)
    return v, abs(b.z * _s_minus_y(b))  # f' = σ(z) − y


def _s_minus_y(b):
    # σ(z) − y = (1 − y) − σ(−z): the latter keeps the tail where σ(z) rounds to 1
    # (1 − y is exact for y ≥ 0.5, by Sterbenz's lemma)
    return b.where(b.y >= 0.5, (1 - b.y) - b.c, b.s - b.y)


def _ref_loss_mse(b):
    d = _s_minus_y(b)
    return 0.5 * d * d, abs(b.z * d) * (b.s * b.c)  # f' = (σ − y)·σσ'


def _ref_grad_bce(b):
    return _s_minus_y(b), abs(b.z) * (b.s * b.c)  # f' = σ(z)σ(−z)


def _ref_grad_mse(b):
    sc = b.s * b.c
    d = _s_minus_y(b)
    return d * sc, abs(b.z) * sc * abs(sc + d * (b.c - b.s))  # (sσ')' = σ'(σ' + (σ − y)(c − s))


def _ref_dloss(b):
    pos, neg = div0(b.y, b.s, b.where), div0(1 - b.y, b.c, b.where)
    # f' = y·c/s + (1 − y)·s/c, both terms ≥ 0
    return neg - pos, abs(b.z) * (pos * b.c + neg * b.s)


def _ref_dsigmoid(b):
    v = b.s * b.c
    return v, abs(b.z) * v * abs(b.c - b.s)  # (sc)' = sc(c − s)


def device_base(z64, y64):
    """Base quantities in float64 under JAX (for formats of up to 32 bits).

    One exponential and one log1p serve all four: with e = exp(−|z|) ≤ 1,
    σ(±|z|) are 1/(1 + e) and e/(1 + e), and softplus(±z) = max(±z, 0) + log1p(e),
    each a few float64 roundings from exact, with no cancellation.
    """
    e = jnp.exp(-jnp.abs(z64))
    big = 1 / (1 + e)  # σ(|z|)
    small = e * big  # σ(−|z|)
    pos = z64 >= 0
    tail = jnp.log1p(e)
    return types.SimpleNamespace(
        z=z64,
        y=y64,
        s=jnp.where(pos, big, small),
        c=jnp.where(pos, small, big),
        sp=jnp.maximum(z64, 0) + tail,
        spn=jnp.maximum(-z64, 0) + tail,
        where=jnp.where,
    )


# Double-double is trusted where σ(±z) ≥ e**-660 ≈ 2**-952 (every base quantity and
# intermediate of the references then lies in [2**-960, 2**1000]) and σ(z) − y keeps
# all but 20 of its ~106 bits; elsewhere the references are evaluated on arb balls.
# Beyond |z| = 747 (and beyond the overflow of y/σ(−|z|) and (1 − y)/σ(−|z|), for a
# target in (0, 1)) the tiny base quantity is below 2**-1077: its DD value 0 gives
# every reference exactly (0, ±∞, or a sum dominated by |z|).
DD_TRUSTED = 660.0
DD_CANCEL_BITS = 20


def _mp_rows(z64: np.ndarray, y64: float, s: dd.DD) -> np.ndarray:
    """The points whose references double-double cannot be trusted to round correctly."""
    a = np.abs(z64)
    upper = 747.0
    inner = 0.0 < y64 < 1.0
    if inner:
        upper = max(upper, 711.0 + math.log(1.0 / min(y64, 1.0 - y64)))
    risky = (a >= DD_TRUSTED) & (a <= upper)
    if inner:  # σ(z) − y (and −y/σ(z) + (1 − y)/σ(−z)) cancel near σ(z) = y
        with np.errstate(invalid="ignore"):
            risky |= np.abs(s.hi - y64) <= 2.0**-DD_CANCEL_BITS * y64
    return np.flatnonzero(risky)


def _mp_base(z64: np.ndarray):
    """σ(z), σ(−z), softplus(±z) and z as arb balls (at the current precision), the
    formulas of `device_base`."""
    def fn(rows):
        out = [np.empty(len(rows), object) for _ in range(5)]
        for i, zi in enumerate(z64[rows]):
            zf = float(zi)
            z = arb(zf)
            e = arb(-abs(zf)).exp()
            big = 1 / (1 + e)
            small = e * big
            tail = e.log1p()
            s, c = (big, small) if zf >= 0 else (small, big)
            for o, v in zip(out, (s, c, arb(max(zf, 0.0)) + tail, arb(max(-zf, 0.0)) + tail, z)):
                o[i] = v
        return out
    return fn


def host_base(z64: np.ndarray, y64: float):
    """Base quantities on the host (for float64): `mp.Exact` arrays, double-double at
    every point and arb balls where double-double cannot be trusted (see `_mp_rows`), so
    that every reference rounds correctly to float64."""
    z64 = np.atleast_1d(np.asarray(z64, np.float64))
    y_f = float(y64)
    s, c, sp, spn = dd.sigmoid_parts(z64)
    rows = _mp_rows(z64, y_f, s)
    s, c, sp, spn, z = mp.parts((s, c, sp, spn, dd.DD.from_float(z64)), _mp_base(z64), rows, len(z64))
    # y as an exact constant, so that 1 − y (inexact in float64 for y < 0.5) is exact
    y = mp.constant(dd.DD(y_f), lambda: arb(y_f), rows, len(z64))
    return types.SimpleNamespace(z=z, y=y, s=s, c=c, sp=sp, spn=spn, where=_select)


def device_dd_base(z64, y64):
    """The base quantities of `host_base` as double-double on a device (see `ddj`)."""
    s, c, sp, spn = ddj.sigmoid_parts(z64)
    return types.SimpleNamespace(z=ddj.DDJ(z64, jnp.zeros_like(z64)), y=ddj.DDJ(jnp.asarray(y64, jnp.float64), 0.0),
                                 s=s, c=c, sp=sp, spn=spn, where=ddj.where)


def untrusted(z64: np.ndarray, y64: float) -> np.ndarray:
    """The points whose float64 references the device leaves to the host: a superset of
    `_mp_rows` (the cancellation test on a float64 σ, with twice the margin), and every
    |z| ≥ ddj.SUBNORMAL_LOGIT, beyond which the low part of σ(−|z|)² falls below 2**-1022
    (a device flushes it to 0)."""
    z64 = np.asarray(z64, np.float64)
    risky = np.abs(z64) >= ddj.SUBNORMAL_LOGIT
    if 0.0 < y64 < 1.0:
        with np.errstate(over="ignore"):
            s = 1.0 / (1.0 + np.exp(-z64))
        risky |= np.abs(s - y64) <= 2.0 ** -(DD_CANCEL_BITS - 1) * y64
    return risky


def _select(cond, a, b):
    """`where` for the host base: on a scalar condition (the target's) it selects."""
    return mp.where(cond, a, b)


_EPS_K = Constant("ε=1e-7", KERAS_EPSILON, lambda t: t(KERAS_EPSILON))
_ONE_MINUS_EPS_K = Constant("1−ε", 1 - KERAS_EPSILON, lambda t: t(1) - t(KERAS_EPSILON))
_EPS_T = Constant("1e-12", TORCH_EPSILON, lambda t: t(TORCH_EPSILON))
_LOGITS = "optax.sigmoid_binary_cross_entropy, torch BCEWithLogitsLoss, Keras from_logits=True"

FAMILY = Family(
    name="sigmoid",
    axis="z",
    device_base=device_base,
    host_base=host_base,
    device_dd_base=device_dd_base,
    untrusted=untrusted,
    forms=(
        Form("mse", "loss", mse, _ref_loss_mse, "½(ŷ − y)²"),
        Form("bce_naive", "loss", bce_naive, _ref_loss_bce, "−y·ln ŷ − (1−y)·ln(1−ŷ)"),
        Form("bce_keras", "loss", bce_keras, _ref_loss_bce, "ŷ clipped to [ε, 1−ε], as Keras",
             constants=(_EPS_K, _ONE_MINUS_EPS_K), library="Keras binary_crossentropy on probabilities"),
        Form("bce_torch", "loss", bce_torch, _ref_loss_bce, "logs clamped at −100, as PyTorch",
             library="torch BCELoss on sigmoid outputs"),
        Form("bce_logits", "loss", bce_logits, _ref_loss_bce, "−y·logσ(z) − (1−y)·logσ(−z)", library=_LOGITS,
             stable_form=True),
        Form("mse_chain", "grad", mse_chain, _ref_grad_mse, "(ŷ − y)·σ'(z)"),
        Form("bce_naive_chain", "grad", bce_naive_chain, _ref_grad_bce, "∂L/∂ŷ · σ'(z), unsimplified",
             factors=("dloss_dyhat", "dsigmoid_dz")),
        Form("bce_naive_autodiff", "grad", bce_naive_autodiff, _ref_grad_bce, "jax.grad(bce_naive)",
             loss=bce_naive),
        Form("bce_torch_chain", "grad", bce_torch_chain, _ref_grad_bce, "(ŷ−y)/max(ŷ(1−ŷ), 1e-12)·σ'(z), as PyTorch",
             constants=(_EPS_T,), library="torch BCELoss's backward through the sigmoid"),
        Form("bce_fused", "grad", bce_fused, _ref_grad_bce, "ŷ − y, simplified",
             library="BCEWithLogitsLoss's backward, σ(z) − y", stable_form=True),
        Form("bce_logits_autodiff", "grad", bce_logits_autodiff, _ref_grad_bce, "jax.grad(bce_logits)",
             loss=bce_logits, library="jax.grad of optax.sigmoid_binary_cross_entropy", stable_form=True),
        Form("dloss_dyhat", "factor", dloss_dyhat, _ref_dloss, "−y/ŷ + (1−y)/(1−ŷ)"),
        Form("dsigmoid_dz", "factor", dsigmoid_dz, _ref_dsigmoid, "ŷ(1 − ŷ)"),
        Form("dmse_dyhat", "factor", dmse_dyhat, _ref_grad_bce, "ŷ − y"),
    ),
)


def check_targets(targets) -> tuple[float, ...]:
    """The targets as floats, after one sentence unless each is a probability."""
    targets = tuple(float(t) for t in targets)
    if not targets:
        raise InputError("`targets` is empty; give at least one target in [0, 1].")
    for t in targets:
        if not 0.0 <= t <= 1.0:
            raise InputError(f"Target {t:g} is outside [0, 1]; a sigmoid target is a probability.")
    return targets


TARGETS = option(Option("targets", "--targets", (0.0, 1.0), "sigmoid (and a binary check): targets y in [0, 1] "
                        "(default: 0,1; 0.1,0.9 is LeCun's trick)", "Y,...", float, "numbers"))


class Sigmoid(Kind):
    name = "sigmoid"
    title = "a logistic output unit: MSE and cross-entropy on ŷ = σ(z)"
    axis_help = "z, the logit"
    options = ("targets",)

    def validate(self, options: dict) -> dict:
        out = super().validate(options)
        return dict(out, targets=check_targets(out["targets"]))

    def instances(self, options: dict) -> list[tuple[Family, Case]]:
        return [(FAMILY, Case(target=t)) for t in options["targets"]]


KIND = register(Sigmoid())

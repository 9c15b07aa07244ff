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

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..errors import InputError
from ..numerics.sampling import Axis, axis_for
from . import softmax_vectors as vectors
from .base import Case, Family, Form
from .registry import Kind, Option, option, register
from .softmax_reference import (REFS, SWEEPS, TARGET_CLASSES, _base, _Device, _DeviceDD, _host_base, _untrusted,
                                case, class_index, is_offset)

KERAS_EPSILON = 1e-7
DEFAULT_CLASSES = (10, 1000)
DEFAULT_SWEEPS = ("margin", "offset", "random")
ELEMENTS_PER_ROW = 1 << 22  # points × K of one structured row, beyond which the lattice is sampled


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


_LOG_SOFTMAX = "optax.softmax_cross_entropy_with_integer_labels, torch F.cross_entropy, Keras from_logits=True"
FORMS = (  # name, quantity, kernel, summary, facts
    ("ce_naive", "loss", ce_naive, "−ln p_t, softmax exp(z)/Σexp(z) unshifted", {}),
    ("ce_shifted", "loss", ce_shifted, "−ln p_t, softmax after subtracting max z", {}),
    ("ce_keras", "loss", ce_keras, "p clipped to [ε, 1−ε], as Keras",
     dict(library="Keras sparse_categorical_crossentropy on probabilities",
          library_soft="Keras categorical_crossentropy on probabilities")),
    ("ce_log_softmax", "loss", ce_log_softmax, "logsumexp(z) − z_t, shifted",
     dict(library=_LOG_SOFTMAX, library_soft="optax.softmax_cross_entropy, torch F.cross_entropy with probabilities",
          stable_form=True)),
    ("ce_log_softmax_fmt_sum", "loss", ce_log_softmax_fmt_sum, "the same, Σexp rounded to the format each step",
     dict(stable_form=True)),
    ("ce_naive_chain", "grad", ce_naive_chain, "(−1/p_t)·p_t(δ_t − p), unsimplified",
     dict(factors=("dloss_dpt", "softmax_jacobian_row"))),
    ("ce_naive_autodiff", "grad", ce_naive_autodiff, "jax.grad(ce_naive)", dict(loss=ce_naive)),
    ("ce_shifted_autodiff", "grad", ce_shifted_autodiff, "jax.grad(ce_shifted)", dict(loss=ce_shifted)),
    ("ce_fused", "grad", ce_fused, "softmax(z) − onehot(t)",
     dict(library="F.cross_entropy's backward, softmax(z) − onehot(t)",
          library_soft="softmax(z) − t, F.cross_entropy's backward", stable_form=True)),
    ("ce_fused_fmt_sum", "grad", ce_fused_fmt_sum, "the same, Σexp rounded to the format each step",
     dict(stable_form=True)),
    ("ce_log_softmax_autodiff", "grad", ce_log_softmax_autodiff, "jax.grad(ce_log_softmax)",
     dict(loss=ce_log_softmax, library="jax.grad of optax.softmax_cross_entropy_with_integer_labels",
          library_soft="jax.grad of optax.softmax_cross_entropy", stable_form=True)),
    ("dloss_dpt", "factor", dloss_dpt, "∂L/∂p_t = −1/p_t", {}),
    ("softmax_jacobian_row", "factor", softmax_jacobian_row, "p_t(δ_t − p), row t of ∂p/∂z", {}),
)
KERNELS = {name: fn for name, _, fn, _, _ in FORMS}


def _vector(x, offset: bool, k: int):
    """z = (x, 0, …, 0) for the margin sweep, x + (1, 0, …, 0) in the format for the
    offset sweep (a Python bool: the sweep is part of the input program)."""
    if offset:
        return x + jnp.zeros(k, x.dtype).at[0].set(1)
    return jnp.zeros(k, x.dtype).at[0].set(x)


@functools.lru_cache(maxsize=None)
def family(classes: int = 10) -> Family:
    """The softmax family on the structured sweeps with K = `classes`.

    Its kernels are the forms themselves, `fn(z, t)` on a K-vector and a class index;
    the engine builds the vectors of a sweep in a program of their own, and passes the
    class as a traced int32, as a user's training step would."""
    forms = tuple(Form(name, quantity, fn, REFS.get(name, REFS.get(quantity)), summary, **facts)
                  for name, quantity, fn, summary, facts in FORMS)
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
        target_of=lambda c: float(case(c.sweep, c.target_class)),
    )


def softmax_axis(k: int, fmt, points: int | None, seed: int, value_range=None, exhaustive: bool = False):
    """The margin or offset axis of a structured row at K = k (see `_points_for`)."""
    if exhaustive or value_range:
        return axis_for(fmt, _points_for(k, points, fmt), seed, value_range, exhaustive)
    n = _points_for(k, points, fmt)
    return Axis(fmt, n, seed, exhaustive=fmt.exhaustive and n >= fmt.lattice_size)


def _points_for(k: int, points: int | None, fmt) -> int:
    """Points of a structured row: the whole lattice when lattice × K fits the row's
    budget; else `points`, or by default as many as keep points × K near the budget
    (at least 256, at most 65536)."""
    if fmt.exhaustive and fmt.lattice_size * k <= ELEMENTS_PER_ROW:
        return fmt.lattice_size
    return points if points is not None else min(1 << 16, max(256, ELEMENTS_PER_ROW // k))


def _k(text: str) -> int:
    return int(text)


CLASSES = option(Option("classes", "--classes", DEFAULT_CLASSES, "softmax (and a multiclass check): numbers of "
                        f"classes K, each ≥ 2 (default: {','.join(map(str, DEFAULT_CLASSES))}; e.g. "
                        "2,10,1000,32768,131072)", "K,...", _k, "class counts"))
SWEEPS_OPTION = option(Option("sweeps", "--sweeps", DEFAULT_SWEEPS, "softmax: margin (z = (m, 0, …, 0)), offset "
                              "(z = c + (1, 0, …, 0)), random (vectors × K ≈ 2^18 whatever --points says) "
                              f"(default: {','.join(DEFAULT_SWEEPS)}; with --logits: logits; a check: margin,offset)",
                              "SWEEP,...", str, "sweep names"))
TARGET_CLASSES_OPTION = option(Option("target_classes", "--target-classes", ("top", "other"),
                                      "softmax: the true class is the top logit and/or another (default: top,other)",
                                      "CLASS,...", str, "target classes"))
LOGITS = option(Option("logits", "--logits", None, "softmax: your own N × K logit vectors: a .npy file or an array "
                       "of a .npz file (FILE.npz:NAME; the name may be left out when the file holds one array); "
                       "bfloat16 and float8 files are read in their own format, which is then the default of "
                       "--dtypes", "FILE.npy"))
LABELS = option(Option("labels", "--labels", None, "softmax: for --logits, N class indices or N × K class "
                       "probabilities (soft or one-hot labels, each row summing to 1); .npy or FILE.npz:NAME "
                       "(default: the top class)", "FILE.npy"))


class Softmax(Kind):
    name = "softmax"
    title = "categorical cross-entropy over K classes"
    axis_help = "m (margin), c (offset) or none (random, logits); K classes"
    options = ("classes", "sweeps", "target_classes", "logits", "labels")
    sums = True

    def validate(self, options: dict) -> dict:
        out = super().validate(options)
        out["plan"] = vectors.check_plan(out["classes"], out["sweeps"], out["target_classes"], out.get("logits"),
                                         out.get("labels"))
        return out

    def instances(self, options: dict) -> list[tuple[Family, Case]]:
        plan = options["plan"] if "plan" in options else self.validate(options)["plan"]
        return [(family(k), Case(classes=k, sweep=s, target_class=tc))
                for k in plan.classes for s in plan.axis_sweeps for tc in plan.target_classes]

    def axis(self, family, fmt, points, seed, value_range=None, exhaustive=False):
        return softmax_axis(family.width, fmt, points, seed, value_range, exhaustive)

    def vector_sweeps(self, options: dict, forms) -> list:
        plan = options["plan"] if "plan" in options else self.validate(options)["plan"]
        chosen = forms is None or any(f.name in forms for f in family().forms)
        return plan.vector_sweeps if chosen else []

    def natural_formats(self, options: dict) -> list[str] | None:
        natural = vectors.natural_format(options["logits"]) if options.get("logits") is not None else None
        return [natural] if natural else None


def check_case(sweep: str, target_class: str) -> None:
    """One sentence unless `sweep` and `target_class` name a structured case."""
    if sweep not in SWEEPS:
        raise InputError(f"Unknown sweep `{sweep}`; choose from {', '.join(SWEEPS)}.")
    if target_class not in TARGET_CLASSES:
        raise InputError(f"Unknown target class `{target_class}`; choose from {', '.join(TARGET_CLASSES)}.")


KIND = register(Softmax())

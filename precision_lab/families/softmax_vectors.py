"""The softmax family's sweeps over whole logit vectors: what they sweep.

* ``random``: fixed-seed vectors of K standard normal logits times a scale (1, 10,
  100), Blanchard, Higham & Higham's experiment, so that unshifted exponentials
  overflow in the narrow formats at the larger scales;
* ``logits``: the user's own N × K vectors, with N class indices or N × K label
  distributions (soft or one-hot labels).

`check_plan` validates the softmax options and says which sweeps run; the engine's
`vectors` module runs them, and `vector_reference` gives their exact values.
"""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np

from ..errors import InputError
from ..numerics import formats
from . import softmax_reference as cases

ALL_SWEEPS = ("margin", "offset", "random", "logits")
MAX_CLASSES = 1 << 22  # one chunk of 8 logit vectors of K entries, with its float64 references, in memory
# forms written on the true class's probability p_t: no meaning for a label distribution
CLASS_ONLY = ("ce_naive_chain", "dloss_dpt", "softmax_jacobian_row")
SCALES = (1.0, 10.0, 100.0)
VECTOR_ELEMENTS = 1 << 18  # vectors × K per random row


@dataclasses.dataclass(frozen=True)
class VectorSweep:
    kind: str  # "random" or "logits"
    classes: int
    target_classes: tuple  # ("top", "other") for random; ("label",), ("soft",) or ("top",) for logits
    logits: np.ndarray | None = None  # float64 (N, K) for the logits sweep
    labels: np.ndarray | None = None  # (N,) class indices, or (N, K) float64 label distributions
    logits_dtype: str | None = None  # the format the user's logits came in

    @property
    def soft(self) -> bool:
        return self.labels is not None and self.labels.ndim == 2

    @classmethod
    def random(cls, k: int, target_classes: tuple) -> VectorSweep:
        return cls("random", k, target_classes)

    @classmethod
    def from_arrays(cls, logits, labels=None) -> VectorSweep:
        z = np.asarray(logits)
        if z.ndim != 2 or z.shape[1] < 2 or z.shape[0] < 1:
            raise InputError(f"The logits must be an N × K array with K ≥ 2, got shape {z.shape}.")
        if not _real(z.dtype):
            raise InputError(f"The logits must be real numbers, got dtype {z.dtype}.")
        source = z.dtype.name
        z = z.astype(np.float64)  # every format precision_lab reads widens exactly
        if not np.all(np.isfinite(z)):
            raise InputError("The logits contain NaN or infinite values; give finite logit vectors.")
        if labels is None:
            return cls("logits", z.shape[1], ("top",), z, None, source)
        t = np.asarray(labels)
        if t.ndim == 2:
            return cls("logits", z.shape[1], ("soft",), z, _distributions(t, z.shape), source)
        if t.ndim != 1 or len(t) != len(z):
            raise InputError(f"The labels must be N = {len(z)} class indices or an N × K = {z.shape[0]} × "
                             f"{z.shape[1]} array of class probabilities, got shape {t.shape}.")
        if not np.issubdtype(t.dtype, np.integer):
            raise InputError(f"The labels must be integer class indices, got dtype {t.dtype}.")
        if t.min() < 0 or t.max() >= z.shape[1]:
            raise InputError(f"A label is outside 0..{z.shape[1] - 1} (K = {z.shape[1]} classes).")
        return cls("logits", z.shape[1], ("label",), z, t.astype(np.int64), source)

    def vectors(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, K) float64 logits and each vector's scale (1.0 for user logits)."""
        if self.logits is not None:
            return self.logits, np.ones(len(self.logits))
        per_scale = max(8, VECTOR_ELEMENTS // (len(SCALES) * self.classes))
        rng = np.random.default_rng([seed, self.classes])
        z = rng.standard_normal((len(SCALES), per_scale, self.classes))
        scale = np.repeat(np.array(SCALES), per_scale)
        return (z * np.array(SCALES)[:, None, None]).reshape(-1, self.classes), scale

    def targets(self, z: np.ndarray, tc: str, seed: int) -> np.ndarray:
        top = np.argmax(z, axis=1)
        if tc == "top":
            return top
        if tc in ("label", "soft"):
            return self.labels
        other = np.random.default_rng([seed, self.classes, 1]).integers(0, self.classes - 1, len(z))
        return np.where(other >= top, other + 1, other)  # any class but the top one

def natural_format(logits) -> str | None:
    """The logits' own format when it is one of the low-precision ones precision_lab
    sweeps (a bfloat16, float16 or float8 array): the format their sweep defaults to."""
    dtype = np.asarray(logits).dtype
    for f in formats.FORMATS.values():
        if np.dtype(f.dtype) == dtype and f.bits < 32:
            return f.name
    return None


def _real(dtype) -> bool:
    """Real numbers: NumPy's, or one of the ml_dtypes formats precision_lab sweeps."""
    if any(np.dtype(f.dtype) == dtype for f in formats.FORMATS.values()):
        return True
    return (np.issubdtype(dtype, np.number) or dtype == bool) and not np.issubdtype(dtype, np.complexfloating)


def _label_sum_tolerance(dtype) -> float:
    """How far from 1 a label distribution's row may sum: 10**-6, or the machine epsilon
    of the labels' own format where that is larger (a bfloat16 row of rounded
    probabilities is off by up to half of it)."""
    if np.issubdtype(dtype, np.integer) or dtype == bool:
        return 1e-6
    return max(1e-6, float(ml_dtypes.finfo(dtype).eps))


def _distributions(t: np.ndarray, shape: tuple) -> np.ndarray:
    """N × K label distributions (soft or one-hot labels) as float64; one sentence if not."""
    n, k = shape
    if t.shape != (n, k):
        raise InputError(f"Soft labels must be an N × K = {n} × {k} array of class probabilities, got shape {t.shape}.")
    if not _real(t.dtype):
        raise InputError(f"Soft labels must be real numbers, got dtype {t.dtype}.")
    p = t.astype(np.float64)
    if not np.all(np.isfinite(p)):
        raise InputError("The soft labels contain NaN or infinite values; give class probabilities.")
    if (p < 0).any():
        i = int(np.flatnonzero((p < 0).any(axis=1))[0])
        raise InputError(f"Soft labels must be non-negative; row {i} has {p[i][p[i] < 0][0]:g}.")
    tol = _label_sum_tolerance(t.dtype)
    off = np.abs(p.sum(axis=1) - 1)
    if (off > tol).any():
        i = int(np.argmax(off))
        raise InputError(f"Each row of soft labels must sum to 1 within {tol:.3g} ({t.dtype}); "
                         f"row {i} sums to {p[i].sum():.17g}.")
    return p


def notes(spec: VectorSweep, forms) -> list[str]:
    """What a logits sweep leaves out or changes, said once for the whole result."""
    if spec.kind != "logits" or not spec.soft:
        return []
    skipped = [n for n in CLASS_ONLY if forms is None or n in forms]
    if not skipped:
        return []
    return [f"Soft labels: {', '.join(skipped)} skipped (written on the true class's probability p_t, which "
            f"a label distribution does not have)."]


@dataclasses.dataclass
class Plan:
    """What the softmax options ask for: the structured sweeps' K, sweeps and target
    classes, and the vector sweeps."""

    classes: tuple  # K values of the structured sweeps
    axis_sweeps: tuple  # margin and/or offset
    target_classes: tuple
    vector_sweeps: list  # VectorSweep


def check_plan(classes, sweeps, target_classes, logits=None, labels=None) -> Plan:
    """Validate the softmax options; one sentence per problem (InputError)."""
    classes = tuple(classes)
    if not classes:
        raise InputError("`classes` is empty; give at least one K ≥ 2.")
    for k in classes:
        if int(k) != k or k < 2:
            raise InputError(f"K = {k} is not a class count; a softmax needs K ≥ 2 whole classes.")
        if k > MAX_CLASSES:
            raise InputError(f"K = {k} cannot fit in memory: one chunk of 8 logit vectors with its float64 "
                             f"references would need about {8 * k * 8 * 6 / 2**30:.1f} GiB; the largest K is "
                             f"{MAX_CLASSES}.")
    for s in sweeps:
        if s not in ALL_SWEEPS:
            raise InputError(f"Unknown sweep `{s}`; choose from {', '.join(ALL_SWEEPS)}.")
    for tc in target_classes:
        if tc not in cases.TARGET_CLASSES:
            raise InputError(f"Unknown target class `{tc}`; choose from {', '.join(cases.TARGET_CLASSES)}.")
    if not target_classes:
        raise InputError("`target_classes` is empty; give top, other or both.")
    axis = tuple(s for s in cases.SWEEPS if s in sweeps)
    vec = [VectorSweep.random(int(k), tuple(target_classes)) for k in classes if "random" in sweeps]
    if logits is not None:
        vec.append(VectorSweep.from_arrays(logits, labels))
    elif "logits" in sweeps:
        raise InputError("The `logits` sweep needs logit vectors (--logits FILE.npy).")
    return Plan(tuple(int(k) for k in classes), axis, tuple(target_classes), vec)

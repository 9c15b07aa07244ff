"""Softmax forms on whole logit vectors: the random sweep and the user's own logits.

These sweeps have no axis: each row reports the share of vectors in each class
(a vector's class is the worst over its entries) and lists the worst vectors by
index. The reference is a max-shifted log-sum-exp computed apart from the
kernels: in float64 with NumPy for formats up to 32 bits (Σ over K ≤ 2**22
terms loses at most about 22·2**-53, far below any of their ULPs), in
double-double on the host for float64, with mpmath for the entries whose
exponentials fall where double-double is quantised (`_mp_tails`). With label
distributions (soft or one-hot labels) the reference is `_soft_reference`'s.

The random sweep follows Blanchard, Higham & Higham's experiment: fixed-seed
vectors of K standard normal logits times a scale (1, 10, 100), so that
unshifted exponentials overflow in the narrow formats at the larger scales.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import ml_dtypes
import mpmath
import numpy as np

from ..numerics import dd, formats, mp
from . import core as engine
from ..families import softmax
from ..numerics.classify import CLASSES, CODE, FAILURES, UNSTABLE, classify, per_point
from ..errors import InputError

SCALES = (1.0, 10.0, 100.0)
WORST_LISTED = 5
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


def label_sum_tolerance(dtype) -> float:
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
    tol = label_sum_tolerance(t.dtype)
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
    skipped = [n for n in softmax.CLASS_ONLY if forms is None or n in forms]
    if not skipped:
        return []
    return [f"Soft labels: {', '.join(skipped)} skipped (written on the true class's probability p_t, which "
            f"a label distribution does not have)."]


def computed(name: str, z, t, mode: str = "jit") -> np.ndarray:
    """Form `name`'s results on the vectors z (N × K, in the format) with labels t: its
    kernel alone, `batch_size` vectors a call, as every sweep calls it."""
    fn = dict((n, fn) for n, _, fn, _ in softmax.VECTOR_FORMS)[name]
    run = engine.kernel_program(fn, mode, 0)
    b = engine.batch_size(softmax.family(z.shape[1]))
    n = len(z)
    pad = -n % b
    z = np.concatenate([z, np.repeat(z[-1:], pad, 0)])
    t = np.concatenate([t, np.repeat(t[-1:], pad, 0)])
    t = t.astype(np.int32) if t.ndim == 1 else t  # class indices, or distributions in the format
    outs = [np.asarray(run(jnp.asarray(z[i:i + b]), jnp.asarray(t[i:i + b]))) for i in range(0, n + pad, b)]
    return np.concatenate(outs)[:n]


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
    float64 vector, the vector is evaluated with mpmath (`_mp_soft`)."""
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


def _mp_soft(zi: np.ndarray, pi: np.ndarray) -> tuple[float, np.ndarray]:
    """One vector's soft-label loss and gradient with mpmath: from mp.START_PREC bits,
    doubled until two evaluations round to the same float64 values (up to mp.MAX_PREC),
    rounded once."""
    prec, previous = mp.START_PREC, None
    top = int(np.argmax(zi))
    while True:
        with mpmath.workprec(prec):
            d = [_diff(v, zi[top]) for v in zi]
            e = [mpmath.exp(x) for x in d]
            total = mpmath.fsum(e)
            q = [mpmath.mpf(float(x)) for x in pi]
            weight = mpmath.fsum(q)
            log_total = mpmath.log(total)
            loss = mpmath.fsum(qi * (log_total - di) for qi, di in zip(q, d))
            values = [mp.to_float64(loss)] + [mp.to_float64(weight * ei / total - qi) for ei, qi in zip(e, q)]
        if values == previous or prec >= mp.MAX_PREC:
            return values[0], np.array(values[1:])
        previous, prec = values, prec * 2


TAIL = -655.0  # e^(z_j − max z) below this exponent: under ~2**-945, where DD is quantised


def _mp_tails(z, t, top, shift, total: dd.DD, loss, grad) -> None:
    """Redo with mpmath (200 bits, then one rounding) what double-double cannot round
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
    with mpmath.workprec(200):
        tot = {}

        def total_of(i):
            if i not in tot:
                tot[i] = mpmath.mpf(float(total.hi[i])) + mpmath.mpf(float(total.lo[i]))
            return tot[i]

        for i, j in zip(*np.nonzero(tiny)):
            if j != t[i]:
                grad[i, j] = mp.to_float64(mpmath.exp(_diff(z[i, j], z[i, top[i]])) / total_of(i))
        others_tiny = tiny.sum(axis=1) == z.shape[1] - 1
        for i in np.flatnonzero(others_tiny):
            s = mpmath.fsum(mpmath.exp(_diff(v, z[i, top[i]])) for j, v in enumerate(z[i]) if j != top[i])
            loss[i] = _mp_loss(z[i], top[i], t[i], float(s))
            if t[i] == top[i]:
                grad[i, t[i]] = mp.to_float64(-s / total_of(i))


def _mp_loss(zi, top: int, t: int, tail: float) -> float:
    """(max z − z_t) + log1p(Σ_{j≠top} e_j) of one vector with mpmath, with enough bits
    to see the tail sum Σ (~`tail`) beside max z − z_t, rounded once."""
    gap = math.log2(max(abs(float(zi[top])), abs(float(zi[t])), 1.0)) - math.log2(max(tail, 2.0**-1074))
    with mpmath.workprec(min(4096, 160 + max(0, int(gap)))):
        s = mpmath.fsum(mpmath.exp(_diff(v, zi[top])) for j, v in enumerate(zi) if j != top)
        return mp.to_float64(_diff(zi[top], zi[t]) + mpmath.log1p(s))


def _diff(a, b):
    """a − b of two float64 values, exactly, as an mpf."""
    return mpmath.fsub(float(a), float(b), exact=True)


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


def sweep_vectors(spec: VectorSweep, fmts, forms, tolerance: float, seed: int, mode: str = "jit",
                  floor: str = "condition") -> list[dict]:
    """One row per (format, target class, form) of the vector sweep `spec`. Logits (and
    soft labels) are rounded to each row's format, as a tensor of that format holds
    them; a logits row counts the vectors that rounding changed (`inputs_rounded`,
    `labels_rounded`). Forms written on a class index are skipped for soft labels
    (`notes`)."""
    names = tuple(n for n, q, *_ in softmax.VECTOR_FORMS if q != "factor" and (forms is None or n in forms)
                  and not (spec.soft and n in softmax.CLASS_ONLY))
    z64, scale = spec.vectors(seed)
    rows = []
    for fmt in fmts:
        with np.errstate(over="ignore"):
            zf = fmt.cast(z64)
        zx = zf.astype(np.float64)
        finite = np.isfinite(zx).all(axis=1)
        for tc in spec.target_classes:
            t = spec.targets(zx, tc, seed)
            tk = fmt.cast(t) if spec.soft else t  # soft labels: a tensor of the format, as the kernel gets them
            tx = tk.astype(np.float64) if spec.soft else t
            (loss, loss_s), (grad, grad_s) = reference(np.where(finite[:, None], zx, 0.0), tx, fmt)
            for name in names:
                out = computed(name, zf, tk, mode)
                quantity = "loss" if out.ndim == 1 else "grad"
                exact, sc = (loss, loss_s) if quantity == "loss" else (grad, grad_s)
                entries = classify(out, exact, sc, fmt, tolerance, np, floor)
                code, ulp, sub = per_point(*entries, tuple(range(1, out.ndim)))
                ulp = ulp.astype(np.float64)
                code = np.where(finite, code, CODE["inf"])  # a logit beyond the format's range
                row = _row(spec, fmt, name, quantity, tc, code, ulp, sub, scale)
                lost = (code == CODE["zero"]) & ~sub
                if quantity == "loss" and lost.any():  # the largest exact loss computed as 0
                    row["zero_exact_max"] = float(np.abs(exact[lost]).max())
                row["inputs_out_of_range"] = int((~finite).sum())  # logits beyond the format: counted as ∞
                if spec.kind == "logits":
                    row["logits_dtype"] = spec.logits_dtype
                    row["inputs_rounded"] = int((finite & (zx != z64).any(axis=1)).sum())
                    if spec.soft:
                        row["labels_rounded"] = int((tx != t).any(axis=1).sum())
                        row["reference"] = ("mpmath (from 128 bits until two evaluations agree)" if fmt.bits >= 64
                                            else "float64 (NumPy), mpmath where the gradient cancels")
                    for w in row["worst"]:
                        w.update(_details(w["index"], zx, tx, loss, out, exact, entries))
                rows.append(row)
    return rows


def _details(i: int, z, t, loss, out, exact, entries) -> dict:
    """What a worst vector is: its label (a distribution's most likely class, and its
    probability), its margin z_t − max_{j≠t} z_j (the format's values), its exact loss,
    and the row's computed and exact value (for a gradient, at the entry that is worst)."""
    label = int(t[i]) if t.ndim == 1 else int(np.argmax(t[i]))
    d = {"label": label, "margin": float(z[i, label] - np.delete(z[i], label).max()), "exact_loss": float(loss[i])}
    if t.ndim == 2:
        d["label_p"] = float(t[i, label])
    if out.ndim == 1:
        return dict(d, computed=float(out[i]), exact=float(exact[i]))
    code, ulp = entries[0][i], entries[1][i]
    j = int(np.lexsort((ulp, code))[-1])
    return dict(d, entry=j, computed=float(out[i, j]), exact=float(exact[i, j]))


def _row(spec, fmt, name, quantity, tc, code, ulp, sub, scale) -> dict:
    n = len(code)
    counts = {c: int((code == CODE[c]).sum()) for c in CLASSES}
    counts["zero_subnormal"] = int(sub.sum())
    measured = code <= CODE["inaccurate"]
    order = np.lexsort((-np.where(measured, ulp, 0), -code))[:WORST_LISTED]
    summary = dict((n_, s) for n_, _, _, s in softmax.VECTOR_FORMS)[name]
    return {
        "family": "softmax", "quantity": quantity, "form": name, "summary": summary, "dtype": fmt.name,
        "target": None, "target_in_format": None, "sweep": spec.kind, "axis": None,
        "classes": spec.classes, "target_class": tc, "points": n, "exhaustive": False,
        "reference": "float64 (NumPy)" if fmt.bits < 64 else "double-double (host)",
        "counts": counts,
        "shares": {c: counts[c] / n for c in CLASSES},
        "shares_by_scale": {f"{s:g}": {c: float(np.mean(code[scale == s] == CODE[c])) for c in CLASSES}
                            for s in np.unique(scale)} if spec.kind == "random" else None,
        "max_ulp": float(ulp[measured].max()) if measured.any() else None,
        "max_ulp_by_scale": {f"{s:g}": float(ulp[measured & (scale == s)].max()) if (measured & (scale == s)).any()
                             else None for s in np.unique(scale)} if spec.kind == "random" else None,
        "stable": all(counts[c] == 0 for c in UNSTABLE),
        "onset": {c: {"neg": None, "pos": None, "method": None} for c in FAILURES},
        "intervals": {c: {"total": 0, "listed": []} for c in FAILURES},
        "worst": [{"index": int(i), "class": CLASSES[code[i]], "ulp": float(ulp[i]) if measured[i] else None}
                  for i in order if code[i] > 0 or measured[i]],
        "constants": [],
        "profile": None,
    }


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
        if k > softmax.MAX_CLASSES:
            raise InputError(f"K = {k} cannot fit in memory: one chunk of 8 logit vectors with its float64 "
                             f"references would need about {8 * k * 8 * 6 / 2**30:.1f} GiB; the largest K is {softmax.MAX_CLASSES}.")
    for s in sweeps:
        if s not in softmax.ALL_SWEEPS:
            raise InputError(f"Unknown sweep `{s}`; choose from {', '.join(softmax.ALL_SWEEPS)}.")
    for tc in target_classes:
        if tc not in softmax.TARGET_CLASSES:
            raise InputError(f"Unknown target class `{tc}`; choose from {', '.join(softmax.TARGET_CLASSES)}.")
    if not target_classes:
        raise InputError("`target_classes` is empty; give top, other or both.")
    axis = tuple(s for s in softmax.SWEEPS if s in sweeps)
    vec = [VectorSweep.random(int(k), tuple(target_classes)) for k in classes if "random" in sweeps]
    if logits is not None:
        vec.append(VectorSweep.from_arrays(logits, labels))
    elif "logits" in sweeps:
        raise InputError("The `logits` sweep needs logit vectors (--logits FILE.npy).")
    return Plan(tuple(int(k) for k in classes), axis, tuple(target_classes), vec)

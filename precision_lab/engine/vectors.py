"""Softmax forms on whole logit vectors: the random sweep and the user's own logits.

These sweeps have no axis: each row reports the share of vectors in each class
(a vector's class is the worst over its entries) and lists the worst vectors by
index. The reference is a max-shifted log-sum-exp computed apart from the
kernels: in float64 with NumPy for formats up to 32 bits (Σ over K ≤ 2**22
terms loses at most about 22·2**-53, far below any of their ULPs), in
double-double on the host for float64, with arb balls for the entries whose
exponentials fall where double-double is quantised (`_mp_tails`). With label
distributions (soft or one-hot labels) the reference is `_soft_reference`'s.

The random sweep follows Blanchard, Higham & Higham's experiment: fixed-seed
vectors of K standard normal logits times a scale (1, 10, 100), so that
unshifted exponentials overflow in the narrow formats at the larger scales.
"""

from __future__ import annotations

import jax
import numpy as np

from ..families import softmax
from ..families.softmax_vectors import CLASS_ONLY, VectorSweep
from ..families.vector_reference import reference
from ..numerics import formats
from ..numerics.classify import CLASSES, CODE, FAILURES, UNSTABLE, classify, per_point
from . import batches, executables, modes, programs
from .rows import Row, computes

WORST_LISTED = 5


def computed(name: str, z, t, mode: str = "jit") -> np.ndarray:
    """Form `name`'s results on the vectors z (N × K, in the format) with labels t: its
    kernel alone, `batch_size` vectors a call, as every sweep calls it."""
    run = programs.kernel_program(softmax.KERNELS[name], modes.get(mode))
    b = programs.batch_size(softmax.family(z.shape[1]))
    n = len(z)
    pad = -n % b
    z = np.concatenate([z, np.repeat(z[-1:], pad, 0)])
    t = np.concatenate([t, np.repeat(t[-1:], pad, 0)])
    t = t.astype(np.int32) if t.ndim == 1 else t  # class indices, or distributions in the format
    device = programs.default_device()  # committed, as every sweep's call is
    outs = [np.asarray(run(*jax.device_put((z[i:i + b], t[i:i + b]), device))) for i in range(0, n + pad, b)]
    return np.concatenate(outs)[:n]


def _chosen(spec: VectorSweep, forms) -> list:
    return [f for f in softmax.family(spec.classes).forms if (forms is None or f.name in forms)
            and not (spec.soft and f.name in CLASS_ONLY)]


def _prepare(forms, fmts, b: int, k: int, soft: bool, mode: str) -> None:
    """Have every form's kernel compiled side by side (`executables.prepare`), as the
    sweep (`computed`: b vectors a call, a label each) and its batch dependence (one
    vector alone) call it: the programs of the structured sweeps at K."""
    device = programs.default_device()
    calls = []
    for fmt in fmts:
        z = np.zeros((b, k), fmt.dtype)
        t = np.zeros((b, k), fmt.dtype) if soft else np.zeros(b, np.int32)
        for f in forms:
            program = programs.kernel_program(f.kernel, modes.get(mode))
            calls += [(program, tuple(jax.device_put((z, t), device))),
                      (program, tuple(jax.device_put((z[:1], t[:1]), device)))]
    executables.prepare(calls)


CHUNK_ENTRIES = 1 << 22  # logit entries a chunk: references and outputs are held for one chunk at a time


def sweep_vectors(spec: VectorSweep, fmts, forms, tolerance: float, seed: int, mode: str = "jit",
                  floor: str = "condition", progress=None) -> list[Row]:
    """One row per (format, target class, form) of the vector sweep `spec`. Logits (and
    soft labels) are rounded to each row's format, as a tensor of that format holds
    them; a logits row counts the vectors that rounding changed (`inputs_rounded`,
    `labels_rounded`). Forms written on a class index are skipped for soft labels
    (`notes`). The vectors stream in chunks of whole kernel calls (about CHUNK_ENTRIES
    logits), so that memory holds per-vector figures, not every entry's; the calls,
    and with them every value, are the same as in one piece. `progress(done, total)`
    is told after each chunk."""
    chosen = _chosen(spec, forms)
    z64, scale = spec.vectors(seed)
    n, k = z64.shape
    b = programs.batch_size(softmax.family(spec.classes))
    step = max(b, CHUNK_ENTRIES // k // b * b)
    total = len(fmts) * len(spec.target_classes) * n
    _prepare(chosen, fmts, b, k, spec.soft, mode)
    rows, done = [], 0
    for fmt in fmts:
        with np.errstate(over="ignore"):
            zf = fmt.cast(z64)
        zx = zf.astype(np.float64)
        finite = np.isfinite(zx).all(axis=1)
        for tc in spec.target_classes:
            t = spec.targets(zx, tc, seed)
            tk = fmt.cast(t) if spec.soft else t  # soft labels: a tensor of the format, as the kernel gets them
            tx = tk.astype(np.float64) if spec.soft else t
            acc = {f.name: _Acc(n, fmt) for f in chosen}
            loss_all = np.empty(n)
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                part = slice(lo, hi)
                (loss, loss_s), (grad, grad_s) = reference(np.where(finite[part, None], zx[part], 0.0), tx[part], fmt)
                loss_all[part] = loss
                for form in chosen:
                    out = computed(form.name, zf[part], tk[part], mode)
                    quantity = "loss" if out.ndim == 1 else "grad"
                    exact, sc = (loss, loss_s) if quantity == "loss" else (grad, grad_s)
                    acc[form.name].add(part, out, exact, classify(out, exact, sc, fmt, tolerance, np, floor),
                                       finite[part])
                done += hi - lo
                if progress is not None:
                    progress(done, total)
            for form in chosen:
                a = acc[form.name]
                row = _row(spec, fmt, form, a.quantity, tc, a.code, a.ulp, (a.sub, a.small), scale, mode, floor,
                           tolerance)
                if a.zero_exact_max is not None:  # the largest exact loss computed as 0
                    row.zero_exact_max = a.zero_exact_max
                row.inputs_out_of_range = int((~finite).sum())  # logits beyond the format: counted as ∞
                row.batch_dependent = batches.measure_vectors(
                    softmax.KERNELS[form.name], zf, tk, a.code, modes.get(mode), b,
                    [w["index"] for w in row.worst if "index" in w])
                if spec.kind == "logits":
                    row.logits_dtype = spec.logits_dtype
                    row.inputs_rounded = int((finite & (zx != z64).any(axis=1)).sum())
                    if spec.soft:
                        row.labels_rounded = int((tx != t).any(axis=1).sum())
                        row.reference = ("arb balls (from 128 bits until every ball rounds to one float64)"
                                         if fmt.bits >= 64 else "float64 (NumPy), arb balls where the gradient cancels")
                    for w in row.worst:
                        w.update(_details(w["index"], zx, tx, loss_all, a))
                rows.append(row)
    return rows


class _Acc:
    """One form's per-vector figures over the chunks: class, error, flush, and its worst
    entry (index, computed and exact value)."""

    def __init__(self, n: int, fmt: formats.Format):
        self.fmt = fmt
        self.code, self.ulp = np.zeros(n, np.int8), np.zeros(n)
        self.sub, self.small = np.zeros(n, bool), np.zeros(n, bool)
        self.entry, self.computed, self.exact = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
        self.quantity, self.zero_exact_max = "loss", None

    def add(self, part: slice, out, exact, entries, finite) -> None:
        code, ulp, sub, small = per_point(*entries, tuple(range(1, out.ndim)), self.fmt)
        code = np.where(finite, code, CODE["inf"])  # a logit beyond the format's range
        self.code[part], self.ulp[part], self.sub[part], self.small[part] = code, ulp.astype(np.float64), sub, small
        rows = np.arange(len(out))
        if out.ndim == 1:
            self.computed[part], self.exact[part] = out.astype(np.float64), exact
        else:
            self.quantity = "grad"
            j = np.lexsort((entries[1], entries[0]))[:, -1]  # the worst class, then the largest error (the last tied)
            self.entry[part] = j
            self.computed[part], self.exact[part] = out[rows, j].astype(np.float64), exact[rows, j]
        lost = (code == CODE["zero"]) & ~sub
        if out.ndim == 1 and lost.any():
            m = float(np.abs(exact[lost]).max())
            self.zero_exact_max = m if self.zero_exact_max is None else max(m, self.zero_exact_max)


def _details(i: int, z, t, loss, acc: _Acc) -> dict:
    """What a worst vector is: its label (a distribution's most likely class, and its
    probability), its margin z_t − max_{j≠t} z_j (the format's values), its exact loss,
    and the row's computed and exact value (for a gradient, at the entry that is worst)."""
    label = int(t[i]) if t.ndim == 1 else int(np.argmax(t[i]))
    d = {"label": label, "margin": float(z[i, label] - np.delete(z[i], label).max()), "exact_loss": float(loss[i])}
    if t.ndim == 2:
        d["label_p"] = float(t[i, label])
    if acc.quantity == "loss":
        return dict(d, computed=float(acc.computed[i]), exact=float(acc.exact[i]))
    return dict(d, entry=int(acc.entry[i]), computed=float(acc.computed[i]), exact=float(acc.exact[i]))


def _row(spec, fmt, form, quantity, tc, code, ulp, zeros, scale, mode, floor, tolerance) -> Row:
    n, (sub, small) = len(code), zeros
    counts = {c: int((code == CODE[c]).sum()) for c in CLASSES}
    counts["zero_subnormal"] = int((sub & (code == CODE["zero"])).sum())  # a point of a worse class is not a flush
    counts["zero_negligible"] = int((small & (code == CODE["zero"])).sum())
    measured = code <= CODE["inaccurate"]
    forward = programs.forward_counts(code, ulp, tolerance)
    order = np.lexsort((-np.where(measured, ulp, 0), -code))[:WORST_LISTED]
    by_scale = spec.kind == "random"
    return Row(
        family="softmax", quantity=quantity, form=form.name, summary=form.summary, dtype=fmt.name,
        compute_dtype=fmt.name, value_dtype=fmt.name, loss_scale=None, target=None, target_in_format=None,
        sweep=spec.kind, axis=None, classes=spec.classes, target_class=tc, points=n, exhaustive=False,
        reference="float64 (NumPy)" if fmt.bits < 64 else "double-double (host)", counts=counts,
        shares={c: counts[c] / n for c in CLASSES},
        shares_by_scale={f"{s:g}": {c: float(np.mean(code[scale == s] == CODE[c])) for c in CLASSES}
                         for s in np.unique(scale)} if by_scale else None,
        max_ulp=float(ulp[measured].max()) if measured.any() else None,
        max_ulp_by_scale={f"{s:g}": float(ulp[measured & (scale == s)].max()) if (measured & (scale == s)).any()
                          else None for s in np.unique(scale)} if by_scale else None,
        stable=all(counts[c] == 0 for c in UNSTABLE),
        onset={c: {"neg": None, "pos": None, "method": None} for c in FAILURES},
        intervals={c: {"total": 0, "listed": []} for c in FAILURES},
        worst=[{"index": int(i), "class": CLASSES[code[i]], "ulp": float(ulp[i]) if measured[i] else None}
               for i in order if code[i] > 0 or measured[i]],
        constants=[], profile=None, mode=modes.get(mode).name, floor=floor,
        batch=programs.batch_size(softmax.family(spec.classes)), judged=f"in {fmt.name}, against the exact value",
        library=(form.library_soft if spec.soft else None) or form.library, stable_form=form.stable_form or None,
        forward_error=forward, computes=computes(softmax.family(spec.classes), form))

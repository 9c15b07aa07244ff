"""The question loss-scaling users ask: which gradients does a format lose, which
power-of-two scale keeps them, and where does that scale overflow.

Measured, not modelled: the form's own compiled program (see ``upcast``) runs at
every value of an exhaustive format with S = 2**k, k = 0, 1, …, and each point is
classified against S times the exact gradient, in the input format.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..numerics import formats
from ..families import derive as upcast
from ..numerics.classify import CODE, classify, per_point
from ..engine.points import host_reference, kernel_outputs
from ..errors import InputError
from ..families.registry import select

LOST = (CODE["zero"], CODE["inf"], CODE["nan"])


def bands(x: np.ndarray, mask: np.ndarray) -> list[list[float]]:
    """The runs of `mask` along the sorted lattice values `x`, as [first, last] values."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [[float(x[a]), float(x[b - 1])] for a, b in zip(edges[::2], edges[1::2])]


def _nearest_zero(x: np.ndarray, mask: np.ndarray) -> dict:
    """The value nearest zero on each side where `mask` holds (None: nowhere)."""
    neg, pos = np.flatnonzero(mask & (x < 0)), np.flatnonzero(mask & (x >= 0))
    return {"neg": float(x[neg[-1]]) if len(neg) else None, "pos": float(x[pos[0]]) if len(pos) else None}


def advice(family, precision: formats.Precision, target, form_name: str, device, tolerance: float,
           mode: str = "jit", floor: str = "condition", requested: float | None = None) -> dict:
    """(a) ``lost``: the logits whose gradient the plain form loses to 0 (computed 0
    or flushed where the exact gradient rounds to a non-zero value), as bands of
    lattice values; (b) ``scale``: the smallest power of two S at which none of them
    is 0, ∞ or NaN (1 where none is lost), with ``by_scale`` the points of the band
    still lost at each S tried; (c) ``overflow``: at that S, the logits nearest zero where the
    scaled loss S·L and the scaled gradient S·∂L/∂z computed in the format are ∞."""
    fin = precision.input
    form = family.form(form_name)
    if form.quantity != "grad" or form.loss is None:
        raise InputError(f"Form `{form_name}` is not a jax.grad form; loss scaling reaches only the gradients "
                         "autodiff takes of a scaled loss.")
    if not fin.exhaustive:
        raise InputError(f"Loss-scale advice sweeps every value of the input format; {fin.name} has too many.")
    ords = np.arange(-fin.max_ordinal, fin.max_ordinal + 1, dtype=np.int64)
    x = formats.from_ordinal(ords, fin).astype(np.float64)
    label = family.label(target, fin)
    y64 = float(np.asarray(label, np.float64)) if family.width <= 1 else target
    exact, sens = host_reference(family, [form], x, y64)[0]

    def measure(scale):
        derived = upcast.derive(family, precision, scale)[0]
        out = kernel_outputs(derived, [derived.form(form_name)], fin, ords, target, device, mode)[0]
        s = 1.0 if scale is None else scale
        code, _, _, _ = per_point(*classify(out, exact * s, sens * s, fin, tolerance, np, floor),
                                  tuple(range(1, out.ndim)), fin)
        return code, out

    code0, _ = measure(None)
    lost = code0 == CODE["zero"]
    found, by_scale = None, []
    for k in range(0 if lost.any() else -1, int(np.log2(precision.compute.max)) + 1):
        if k < 0:  # nothing lost: no scale needed
            found = (1.0, measure(1.0)[1])
            break
        s = 2.0 ** k
        code, out = measure(s)
        still = int(np.isin(code[lost], LOST).sum())
        by_scale.append({"scale": s, "still_lost": still, "lost_anywhere": int(np.isin(code, LOST).sum())})
        if still == 0:
            found = (s, out)
            break
    result = {"family": family.name, "form": form_name, "dtype": precision.name, "target": target,
              "lost": {"count": int(lost.sum()), "bands": bands(x, lost)},
              "scale": None if found is None else found[0], "by_scale": by_scale, "overflow": None}
    if requested is not None:  # what the scale asked for does, against no scale
        code, _ = measure(requested)
        result["at_scale"] = {"scale": requested, "lost_unscaled": int(np.isin(code0, LOST).sum()),
                              "lost": int(np.isin(code, LOST).sum()), "kept": int((~np.isin(code[lost], LOST)).sum()),
                              "first": {c: _nearest_zero(x, code == CODE[c]) for c in ("nan", "inf", "zero")}}
    if found is not None:
        s, grad = found
        derived = upcast.derive(family, precision, None)[0]
        scaled_loss = upcast.upcast_kernel(lambda z, y: form.loss(z, y) * np.asarray(s, precision.compute.dtype),
                                           precision.compute.dtype, False)
        loss_form = dataclasses.replace(form, kernel=scaled_loss, quantity="loss")
        loss = kernel_outputs(derived, [loss_form], fin, ords, target, device, mode)[0]
        grad_inf = np.isinf(grad) if grad.ndim == 1 else np.isinf(grad).any(axis=tuple(range(1, grad.ndim)))
        result["overflow"] = {"loss": _nearest_zero(x, np.isinf(loss)), "grad": _nearest_zero(x, grad_inf)}
    return result


MAX_ELEMENTS = 1 << 22  # every input value × K entries: the budget of one softmax row


def run_advice(spec, device) -> list[dict]:
    """`advice` at the run's loss scale for every jax.grad form of a built-in family
    that the run sweeps, in each input format of up to 16 bits, at each case whose
    axis is the plain lattice (sigmoid targets; the softmax's margin sweep at each K
    whose every value fits one row)."""
    out = []
    for kind in spec.kinds:
        for family, case in kind.cases(spec.options_for(kind)):
            if family.exact is not None or case.sweep not in (None, "margin"):
                continue
            for form in select(family, spec.forms):
                for precision in spec.precisions:
                    if form.quantity != "grad" or form.loss is None or not precision.input.exhaustive or \
                            precision.input.lattice_size * family.width > MAX_ELEMENTS:
                        continue
                    a = advice(family, precision, family.target_of(case), form.name, device, spec.tolerance,
                               spec.mode, spec.floor, spec.loss_scale)
                    if family.width > 1:
                        a.update(target=None, **case.fields())
                        a.pop("axis", None)
                    out.append(a)
    return out


def _lost(counts: dict) -> int:
    """NaN, ∞ and normal values lost to 0 (a flushed subnormal is a lesser loss)."""
    return counts["nan"] + counts["inf"] + counts["zero"] - counts.get("zero_subnormal", 0)


def check_verdicts(made: list, spec, context) -> list[dict]:
    """What the run's loss scale does to a user's function: its gradient rows swept
    again unscaled, in the same run, and per row the verdict against no scale
    (`at_scale`, as `advice` gives it, with `moved`: the failures the scale makes
    begin nearer zero)."""
    import dataclasses as dc

    from ..engine.execute import execute

    mine = [m for m in made if m.job.family.exact is not None and m.row.quantity == "grad" and m.row.loss_scale
            and m.row.fix_of is None]
    if not mine:
        return []
    jobs = {}
    for m in mine:
        key = (m.job.precision.name, m.job.case, id(m.job.family))
        jobs.setdefault(key, dc.replace(m.job, forms=tuple(f for f in m.job.forms if f.quantity == "grad")))
    context.report("the gradients unscaled")
    plain = {r.key: r for r in (p.row for p in execute(list(jobs.values()), dc.replace(spec, loss_scale=None),
                                                       context))}
    out = []
    for m in mine:
        r, p = m.row, plain.get(m.row.key)
        if p is None:
            continue
        first = {c: {"neg": r.onset[c]["neg"], "pos": r.onset[c]["pos"]} for c in ("nan", "inf", "zero")}
        moved = [{"class": c, "side": side, "scaled": r.onset[c][side], "unscaled": p.onset[c][side]}
                 for c in ("nan", "inf", "zero") for side in ("neg", "pos")
                 if r.onset[c][side] is not None and (p.onset[c][side] is None
                                                      or abs(r.onset[c][side]) < abs(p.onset[c][side]))
                 and (c != "zero" or r.counts["zero"] > r.counts["zero_subnormal"])]
        out.append({"family": r.family, "form": r.form, "dtype": r.key.format, "target": r.target,
                    "classes": r.classes, "target_class": r.target_class,
                    "lost": {"count": p.counts["zero"] - p.counts["zero_subnormal"], "bands": []},
                    "scale": None, "by_scale": None, "overflow": None,
                    "at_scale": {"scale": r.loss_scale, "lost_unscaled": _lost(p.counts), "lost": _lost(r.counts),
                                 "first": first, "moved": moved,
                                 "unscaled_first": {c: {"neg": p.onset[c]["neg"], "pos": p.onset[c]["pos"]}
                                                    for c in ("nan", "inf", "zero")}}})
    return out

"""The fixes users apply to low-precision losses: computing in a wider format, and
loss scaling, as forms derived from a family's own.

Upcasting (``bfloat16:float32``): the inputs stay on the input format's lattice (the
swept axis is its), and the kernel casts them, and a floating target, to the compute
format first, as ``loss(z.astype(jnp.float32), y)`` in a user's program. A loss or
factor is then a value of the compute format and is judged there. A gradient comes
back in the input format: ``jax.grad`` with respect to bfloat16 logits returns
bfloat16, the transpose of the cast casting the float32 gradient back; so a gradient
form's result is cast back to the input format, and judged there.

Loss scaling (GradScaler, jmp): a gradient by ``jax.grad`` is taken of S·L, S a power
of two cast to the compute format, so the cotangent S enters the backward pass and
every intermediate is S times larger; the user then unscales in float32, which is
exact for a power of two. The row judges what the format holds, the scaled gradient
S·∂L/∂z in the input format, against S times the exact gradient. A hand-written
gradient form never sees the loss, so it is left unscaled, and its row says so.

The exact reference is the family's, at the input lattice's points: nothing about
the reference changes but the format its values are rounded to (and S).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from ..numerics import formats
from ..errors import InputError
from .base import Family, Form

UNSCALED = "unscaled: a hand-written gradient never sees the loss, so loss scaling does not reach it"


@dataclasses.dataclass(frozen=True)
class Group:
    """Forms of one derived family whose results share a format: one engine run."""

    family: Family
    forms: tuple[Form, ...]
    out: formats.Format  # the format the results are in and judged in
    fields: dict  # form name -> the row fields that say how it was computed and judged
    derived: bool  # kernels other than the family's own (no walk or mechanism of them)


def check_scale(scale, compute: formats.Format | None = None) -> float | None:
    """`scale` if it is a power of two (finite in `compute`, if given); one sentence otherwise."""
    if scale is None:
        return None
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"`loss_scale` must be a number, got {scale!r}.") from None
    if not (0 < s < math.inf) or math.frexp(s)[0] != 0.5:
        raise InputError(f"`loss_scale` must be a power of two (unscaling by one is exact), got {scale!r}.")
    if compute is not None and s > compute.max:
        raise InputError(f"`loss_scale` {s:g} is ∞ in {compute.name} (largest value {compute.max:g}); "
                         "give a smaller power of two.")
    return s


def _up(a, dtype):
    """`a` cast to `dtype` if it is floating (a class index stays an integer); None: as it is."""
    return a.astype(dtype) if dtype is not None and jnp.issubdtype(a.dtype, jnp.floating) else a


def upcast_kernel(kernel, compute, back: bool):
    """`kernel` computed on its inputs cast to `compute`; with `back`, its result cast
    back to the input's format (what autodiff through the cast returns)."""

    def run(z, y):
        out = kernel(_up(z, compute), _up(y, compute))
        return out.astype(z.dtype) if back else out

    return run


def scaled_grad_kernel(loss, compute, scale: float | None):
    """``jax.grad`` of S·loss (S cast to `compute`; the inputs cast to it first): the
    scaled gradient, in the input's format. `compute` None: the inputs as they are, S
    in the loss's own format; `scale` None: jax.grad of the loss itself."""

    def run(z, y):
        def scaled(v):
            out = loss(_up(v, compute), _up(y, compute))
            return out if scale is None else out * jnp.asarray(scale, compute or out.dtype)

        return jax.grad(scaled)(z)

    return run


def scaled_reference(reference, scale: float):
    """S times a reference's exact value and sensitivity (a power of two: exact)."""

    def ref(base):
        exact, sens = reference(base)
        return exact * scale, sens * scale

    return ref


def judging(axis: str, quantity: str, autodiff: bool, precision: formats.Precision, scale: float | None):
    """The format a form's results are in (a loss: the compute format; a gradient, cast
    back: the input's), the loss scale its row applies (only to a gradient by
    ``jax.grad``, `autodiff`) and its row fields: how it was computed and judged."""
    fin, fc = precision.input, precision.compute
    value, s, judged = (fin if quantity == "grad" else fc), None, None
    if quantity == "grad" and scale is not None:
        if autodiff:
            s = scale
            judged = (f"the scaled gradient S·∂L/∂{axis} (S = {scale:g}) in {fin.name}, against S times "
                      "the exact gradient; unscaling by a power of two in float32 is exact")
        else:
            judged = UNSCALED
    if judged is None:
        judged = (f"in {value.name}" + (f", computed in {fc.name} from {fin.name} inputs" if precision.upcast
                                        else "") + ", against the exact value")
    return value, s, {"compute_dtype": fc.name, "value_dtype": value.name, "loss_scale": s, "judged": judged}


@functools.lru_cache(maxsize=None)
def derive(family: Family, precision: formats.Precision, scale: float | None):
    """The family with every form computed in `precision` and `scale` applied, and per
    form its result format and row fields. Cached: the same derived kernels (and so
    the same compiled programs) for every target and call."""
    fc = precision.compute
    new, out, fields = {}, {}, {}
    for f in family.forms + family.factors:
        value, s, fields[f.name] = judging(family.axis, f.quantity, f.loss is not None, precision, scale)
        form = f
        if s is not None:
            form = dataclasses.replace(f, kernel=scaled_grad_kernel(f.loss, fc.dtype, scale),
                                       reference=scaled_reference(f.reference, scale))
        elif precision.upcast:
            form = dataclasses.replace(f, kernel=upcast_kernel(f.kernel, fc.dtype, f.quantity == "grad"))
        new[f.name], out[f.name] = form, value
    if not precision.upcast and scale is None:
        derived = family
    else:
        derived = dataclasses.replace(family, forms=tuple(new[f.name] for f in family.forms),
                                      factors=tuple(new[f.name] for f in family.factors))
    return derived, out, fields


def groups(family: Family, chosen, precision: formats.Precision, scale: float | None = None) -> list[Group]:
    """The engine runs that sweep forms `chosen` (of `family`) in `precision` with loss
    scale `scale`: one per result format, the forms in their order."""
    derived, out, fields = derive(family, precision, scale)
    plain = derived is family
    by_out: dict = {}
    for f in chosen:
        by_out.setdefault(out[f.name], []).append(derived.form(f.name) if not plain else f)
    return [Group(derived, tuple(fs), o, {f.name: fields[f.name] for f in fs}, not plain) for o, fs in by_out.items()]


def lost(counts: dict) -> int:
    """Points whose value is lost: NaN, ∞, or 0 where the exact value is normal."""
    return counts["nan"] + counts["inf"] + counts["zero"] - counts["zero_subnormal"]


CASE = ("family", "form", "dtype", "target", "sweep", "classes", "target_class", "range")


def upcast_fixes(rows) -> list[dict]:
    """Per upcast row (compute format wider than the input's) with a plain row of the
    same form, input format and case: whether computing in the wider format fixes it.

    ``verdict``: ``fixed`` (no NaN, ∞ or normal value lost to 0 is left), ``partly``
    (fewer such points, none new of NaN or ∞), ``not fixed``, or ``nothing to fix``
    (the plain row had none); with both rows' counts and onsets."""
    plain = {tuple(str(r.get(k)) for k in CASE): r for r in rows
             if r.get("compute_dtype", r["dtype"]) == r["dtype"] and not r.get("loss_scale")}
    out = []
    for r in rows:
        if r.get("compute_dtype", r["dtype"]) == r["dtype"]:
            continue
        p = plain.get(tuple(str(r.get(k)) for k in CASE))
        if p is None:
            continue
        before, after = lost(p["counts"]), lost(r["counts"])
        if before == 0:
            verdict = "nothing to fix" if after == 0 else "not fixed"
        elif after == 0:
            verdict = "fixed"
        elif after < before and all(r["counts"][c] <= p["counts"][c] for c in ("nan", "inf")):
            verdict = "partly"
        else:
            verdict = "not fixed"
        keep = ("nan", "inf", "zero", "zero_subnormal")
        out.append({**{k: r.get(k) for k in CASE}, "quantity": r["quantity"], "compute_dtype": r["compute_dtype"],
                    "verdict": verdict, "lost_before": before, "lost_after": after,
                    "before": {c: p["counts"][c] for c in keep}, "after": {c: r["counts"][c] for c in keep},
                    "onset_before": {c: [p["onset"][c]["neg"], p["onset"][c]["pos"]] for c in ("nan", "inf", "zero")},
                    "onset_after": {c: [r["onset"][c]["neg"], r["onset"][c]["pos"]] for c in ("nan", "inf", "zero")}})
    return out

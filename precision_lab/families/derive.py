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
    fields: tuple  # per form, the row fields that say how it was computed and judged
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


def _scaled_reference(reference, scale: float):
    """S times a reference's exact value and sensitivity (a power of two: exact)."""

    def ref(base):
        exact, sens = reference(base)
        return exact * scale, sens * scale

    return ref


def _judging(axis: str, quantity: str, autodiff: bool, precision: formats.Precision, scale: float | None):
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
    form (by position) its result format and row fields. A family that knows how it
    is derived (a user's function, whose references are its own derived programs)
    says so in `family.derived`; the others get the generic wrappers below. Cached:
    the same derived kernels (and so the same compiled programs) for every case and call."""
    fc = precision.compute
    every = family.forms + family.factors
    judged = [_judging(family.axis, f.quantity, f.loss is not None, precision, scale) for f in every]
    if not precision.upcast and scale is None:
        derived = family
    elif family.derived is not None:
        derived = family.derived(precision, scale)
    else:
        new = []
        for f, (_, s, _) in zip(every, judged):
            if s is not None:
                f = dataclasses.replace(f, kernel=scaled_grad_kernel(f.loss, fc.dtype, scale),
                                        reference=_scaled_reference(f.reference, scale))
            elif precision.upcast:
                f = dataclasses.replace(f, kernel=upcast_kernel(f.kernel, fc.dtype, f.quantity == "grad"))
            new.append(f)
        derived = dataclasses.replace(family, forms=tuple(new[: len(family.forms)]),
                                      factors=tuple(new[len(family.forms):]))
    return derived, [value for value, _, _ in judged], [fields for _, _, fields in judged]


def groups(family: Family, chosen, precision: formats.Precision, scale: float | None = None) -> list[Group]:
    """The engine runs that sweep forms `chosen` (of `family`) in `precision` with loss
    scale `scale`: one per result format, the forms in their order."""
    derived, out, fields = derive(family, precision, scale)
    every, now = family.forms + family.factors, derived.forms + derived.factors
    by_out: dict = {}
    for f in chosen:
        i = every.index(f)
        by_out.setdefault(out[i], []).append((now[i], fields[i]))
    return [Group(derived, tuple(f for f, _ in fs), o, tuple(fl for _, fl in fs), derived is not family)
            for o, fs in by_out.items()]

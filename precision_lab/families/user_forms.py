"""A user's function as a family of two forms: its value and its gradient.

`family(fn, ...)` makes it a Family of two forms, its value (quantity ``loss``) and
``jax.grad`` with respect to the logit(s) (quantity ``grad``), each with a
`reference.Reference` as its exact value: the function's own jaxpr on the reals, in
tiers. Computed in a wider format or with a loss scale, the function and its
references are derived alike (`_as_run`): the reference is always the program that
runs, evaluated on the reals.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax

from ..numerics import formats, reference
from . import derive, rewrites
from .base import Family, Form
from .softmax import family as softmax_family

REFERENCE_NAME = "exact jaxpr: float64 intervals, then arb balls"


def _bind(fn, kw_items: tuple):
    kwargs = dict(kw_items)

    def loss(x, label):
        return fn(x, label, **kwargs)

    return loss


@functools.lru_cache(maxsize=None)
def _forms(fn, name: str, kw_items: tuple, against=None, compute: str | None = None,
           scale: float | None = None) -> tuple[Form, Form]:
    loss = _bind(fn, kw_items)
    ref = loss if against is None else _bind(against, kw_items)
    return _with_references(name, loss, ref, kw_items, compute, scale)


def _as_run(loss, compute: str | None, scale: float | None):
    """`loss` as a row runs it, and its gradient with respect to the input: the
    function and ``jax.grad`` of it; computed in `compute` (a format name), the
    function on its inputs cast there, ``fn(z.astype(compute), y.astype(compute))``,
    and jax.grad of that composition (a gradient in the input's format); with loss
    scale S, jax.grad of S times it (see ``derive``)."""
    if compute is None and scale is None:
        return loss, jax.grad(loss)
    dtype = None if compute is None else formats.get(compute).dtype
    run = loss if compute is None else derive.upcast_kernel(loss, dtype, False)
    return run, derive.scaled_grad_kernel(loss, dtype, scale)


def _with_references(name, loss, ref, kw_items, compute=None, scale=None) -> tuple[Form, Form]:
    """The two forms, each measured against `ref` (its value, its gradient), with the
    identity rewrite of `ref` (rewrites.fixed) deciding what `ref`'s own jaxpr cannot.
    Each reference is the program that runs, `ref` derived alike (cast to `compute`,
    scaled by S): its jaxpr, traced at the row's input format, is what is evaluated
    on the reals; the float64 fallback runs `ref` in float64."""
    clean = rewrites.fixed(ref, identities=True)
    summary = f"{name}({', '.join(['x', 'label'] + [f'{k}={v!r}' for k, v in kw_items])})"
    kernels = _as_run(loss, compute, scale)
    refs, idents = _as_run(ref, compute, scale), _as_run(clean, compute, scale)
    wide = _as_run(ref, "float64", scale) if compute is not None else (None, None)
    scaled = "" if scale is None else f"{scale:g}·"
    return (Form(name, "loss", kernels[0], reference.Reference(refs[0], reference.Reference(idents[0]), wide[0]),
                 summary),
            Form(name, "grad", kernels[1], reference.Reference(refs[1], reference.Reference(idents[1]), wide[1]),
                 f"∂/∂x {scaled}{summary}", loss=loss))


def _exact(forms, fmt, xs, label, stats):
    return [f.reference.values(fmt, xs, label, stats.setdefault(f.reference, reference.Tiers())) for f in forms]


def family(fn: Callable, name: str | None = None, kwargs: dict | None = None, classes: int | None = None,
           against: Callable | None = None, against_name: str | None = None, compute: str | None = None,
           scale: float | None = None, row_fields: tuple = ()) -> Family:
    """A user's function as a family: its value and gradient, with exact references:
    its own jaxpr on the reals, or that of `against` (the same loss written another
    way, e.g. a stable form, for the tails where the function's own jaxpr cancels
    more bits than the ball tier's cap). `compute`: the format (name) the function is
    called in, its inputs cast there first (an upcast row); `scale`: the loss scale
    S its gradient is taken of (see ``_as_run``). Its derived families (see
    ``derive``) are this function's, computed and scaled so."""
    name = name or getattr(fn, "__name__", "fn")
    forms = _forms(fn, name, tuple(sorted((kwargs or {}).items(), key=lambda kv: kv[0])), against, compute, scale)
    ref_name = REFERENCE_NAME if against is None else f"{REFERENCE_NAME}, of {against_name or against.__name__}"

    def derived(precision, s):
        return family(fn, name, kwargs, classes, against, against_name,
                      precision.compute.name if precision.upcast else None, s, row_fields)

    common = dict(exact=_exact, reference_name=ref_name, derived=derived, row_fields=row_fields, causes="all",
                  cause_classes=("nan", "inf", "zero"), cause_derived=True)
    if classes is None:
        return Family("check", forms, "z", None, None, **common)
    base = softmax_family(classes)
    return Family("check", forms, base.axis, None, None, width=classes, inputs=base.inputs, case=base.case,
                  label=base.label, target_of=base.target_of, **common)


def signature(fam: Family, fmt: formats.Format) -> str:
    """The loss's jaxpr traced at `fmt`, its float types named alike (reference.signature)."""
    x = jax.ShapeDtypeStruct((fam.width,) if fam.width > 1 else (), fmt.dtype)
    return reference.signature(jax.make_jaxpr(fam.forms[0].kernel)(x, fam.label(0, fmt)))


def fix_family(fam: Family, found, scale: float | None = None) -> Family:
    """The family of `fam`'s loss with the rewrites `found` applied (form ``NAME+fix``):
    its value and gradient (of S times it, with loss scale `scale`), measured against
    the original's exact values (a rewrite changes how the loss is computed, not what
    it means), or, where a rewrite changes what it means (a clip removed), against
    its own. The loss is the program that ran (cast to its compute format first,
    for an upcast row), rewritten; the family is not derived again."""
    loss, grad = fam.forms
    name = f"{loss.name}+fix"
    fn = rewrites.fixed(loss.kernel, frozenset((r.pattern, r.source) for r in found), name)
    what = "; ".join(f"{r.pattern} → {r.replacement}" for r in found)
    refs, ref_name = (loss.reference, grad.reference), fam.reference_name
    if not all(r.same for r in found):  # it changes the function (a clip goes): its own exact values
        own = _with_references(name, fn, fn, (), None, scale)
        refs, ref_name = (own[0].reference, own[1].reference), f"{REFERENCE_NAME}, of {name} (not the same function)"
    forms = (Form(name, "loss", fn, refs[0], f"{loss.summary} with {what}"),
             Form(name, "grad", _as_run(fn, None, scale)[1], refs[1], "∂/∂x of it", loss=fn))
    fixed = dataclasses.replace(fam, forms=forms, causes="none", reference_name=ref_name,
                                row_fields=tuple((k, v) for k, v in fam.row_fields if k == "source"))
    return dataclasses.replace(fixed, derived=lambda precision, s: fixed)

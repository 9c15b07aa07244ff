"""Your own loss: a user's JAX function swept like a built-in family.

`load("losses.py:focal_loss")` finds the function; `family(fn, ...)` makes it a
Family of two forms, its value (quantity ``loss``) and ``jax.grad`` with respect to
the logit(s) (quantity ``grad``), each with a `reference.Reference` as its exact
value: the function's own jaxpr on the reals, in tiers. The engine sweeps it
through the same path as the built-in families; `check` is the API.

Binary kind (the default): ``fn(z, y) -> scalar``, z a scalar logit, y a target in
[0, 1]. Multiclass kind (``classes``): ``fn(logits, label) -> scalar``, logits a
K-vector, label an integer class, swept with the softmax family's margin and offset
sweeps and target classes.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence

import jax
import numpy as np

from ..numerics import formats, reference
from . import softmax, derive as upcast
from ..errors import InputError
from .base import Family, Form

FLOAT64_POINTS = 1 << 12  # default points of a float64 check row: its references are all arbitrary precision
REFERENCE_NAME = "exact jaxpr: float64 intervals, then arb balls"


def load(spec: str) -> tuple[Callable, str]:
    """The function named by ``FILE.py:NAME`` or ``package.module:NAME``, and its file."""
    if ":" not in spec or not all(spec.rsplit(":", 1)):
        raise InputError(f"`{spec}` does not name a function; write FILE.py:NAME or package.module:NAME.")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise InputError(f"Cannot read `{where}`: no such file.")
        mod_name = f"precision_lab_user_{abs(hash(os.path.abspath(where)))}"
        spec_ = importlib.util.spec_from_file_location(mod_name, where)
        module = importlib.util.module_from_spec(spec_)
        sys.modules[mod_name] = module
        try:
            spec_.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001  the user's module failed: say how, in one sentence
            raise InputError(f"`{where}` failed to import: {type(e).__name__}: {e}.") from None
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError:
            raise InputError(f"No module `{where}` can be imported; give FILE.py:NAME for a file.") from None
        except Exception as e:  # noqa: BLE001
            raise InputError(f"Module `{where}` failed to import: {type(e).__name__}: {e}.") from None
    if not hasattr(module, name):
        raise InputError(f"`{where}` has no `{name}`.")
    fn = getattr(module, name)
    if not callable(fn):
        raise InputError(f"`{where}:{name}` is a value of type {type(fn).__name__}, not a function.")
    return fn, getattr(module, "__file__", where) or where


def parse_kwargs(text: str | None) -> dict:
    if not text:
        return {}
    try:
        kw = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"--kwargs is not JSON ({e.msg} at character {e.pos}); write e.g. '{{\"gamma\": 0.5}}'.") \
            from None
    if not isinstance(kw, dict):
        raise InputError("--kwargs must be a JSON object of keyword arguments, e.g. '{\"gamma\": 0.5}'.")
    return kw


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
    scale S, jax.grad of S times it (see ``upcast``)."""
    if compute is None and scale is None:
        return loss, jax.grad(loss)
    dtype = None if compute is None else formats.get(compute).dtype
    run = loss if compute is None else upcast.upcast_kernel(loss, dtype, False)
    return run, upcast.scaled_grad_kernel(loss, dtype, scale)


def _with_references(name, loss, ref, kw_items, compute=None, scale=None) -> tuple[Form, Form]:
    """The two forms, each measured against `ref` (its value, its gradient), with the
    identity rewrite of `ref` (fixes.fixed) deciding what `ref`'s own jaxpr cannot.
    Each reference is the program that runs, `ref` derived alike (cast to `compute`,
    scaled by S): its jaxpr, traced at the row's input format, is what is evaluated
    on the reals; the float64 fallback runs `ref` in float64."""
    from . import rewrites as fixes

    clean = fixes.fixed(ref)
    summary = f"{name}({', '.join(['x', 'label'] + [f'{k}={v!r}' for k, v in kw_items])})"
    kernels = _as_run(loss, compute, scale)
    refs, idents = _as_run(ref, compute, scale), _as_run(clean, compute, scale)
    wide = _as_run(ref, "float64", scale) if compute is not None else (None, None)
    scaled = "" if scale is None else f"{scale:g}·"
    return (Form(name, "loss", kernels[0], reference.Reference(refs[0], reference.Reference(idents[0]), wide[0]),
                 summary),
            Form(name, "grad", kernels[1], reference.Reference(refs[1], reference.Reference(idents[1]), wide[1]),
                 f"∂/∂x {scaled}{summary}"))


def _exact(forms, fmt, xs, label):
    return [f.reference.values(fmt, xs, label) for f in forms]


def family(fn: Callable, name: str | None = None, kwargs: dict | None = None, classes: int | None = None,
           against: Callable | None = None, against_name: str | None = None, compute: str | None = None,
           scale: float | None = None) -> Family:
    """A user's function as a family: its value and gradient, with exact references:
    its own jaxpr on the reals, or that of `against` (the same loss written another
    way, e.g. a stable form, for the tails where the function's own jaxpr cancels
    more bits than the ball tier's cap). `compute`: the format (name) the function is
    called in, its inputs cast there first (an upcast row); `scale`: the loss scale
    S its gradient is taken of (see ``_as_run``)."""
    name = name or getattr(fn, "__name__", "fn")
    forms = _forms(fn, name, tuple(sorted((kwargs or {}).items(), key=lambda kv: kv[0])), against, compute, scale)
    ref_name = REFERENCE_NAME if against is None else f"{REFERENCE_NAME}, of {against_name or against.__name__}"
    if classes is None:
        return Family("check", forms, "z", None, None, exact=_exact, reference_name=ref_name)
    base = softmax.family(classes)
    return Family("check", forms, base.axis, None, None, width=classes, inputs=base.inputs, case=base.case,
                  label=base.label, exact=_exact, reference_name=ref_name)


def signature(fam: Family, fmt: formats.Format) -> str:
    """The loss's jaxpr traced at `fmt`, its float types named alike (reference.signature)."""
    x = jax.ShapeDtypeStruct((fam.width,) if fam.width > 1 else (), fmt.dtype)
    return reference.signature(jax.make_jaxpr(fam.forms[0].kernel)(x, fam.label(0, fmt)))


def fix_family(fam: Family, rewrites, scale: float | None = None) -> Family:
    """The family of `fam`'s loss with `rewrites` applied (form ``NAME+fix``): its
    value and gradient (of S times it, with loss scale `scale`), measured against the
    original's exact values (a rewrite changes how the loss is computed, not what it
    means). The loss is the program that ran (cast to its compute format first, for
    an upcast row), rewritten."""
    from . import rewrites as fixes

    loss, grad = fam.forms
    name = f"{loss.name}+fix"
    fn = fixes.fixed(loss.kernel, frozenset((r.pattern, r.source) for r in rewrites), name)
    what = "; ".join(f"{r.pattern} → {r.replacement}" for r in rewrites)
    forms = (Form(name, "loss", fn, loss.reference, f"{loss.summary} with {what}"),
             Form(name, "grad", _as_run(fn, None, scale)[1], grad.reference, f"∂/∂x of it"))
    return dataclasses.replace(fam, forms=forms)


def validate(fam: Family, fmt: formats.Format, target, source_file: str | None = None) -> None:
    """One sentence (InputError) unless both forms trace at `fmt`, take and return the
    format, and return a scalar."""
    x = jax.ShapeDtypeStruct((fam.width,) if fam.width > 1 else (), fmt.dtype)
    label = fam.label(target, fmt)
    loss, _ = fam.forms
    what = "fn(logits, label)" if fam.width > 1 else "fn(z, y)"
    try:
        out = jax.eval_shape(loss.kernel, x, label)
    except TypeError as e:
        if "argument" in str(e) and "tracer" not in str(e).lower():
            raise InputError(f"`{loss.name}` cannot be called as {what}: {e}.") from None
        raise InputError(_trace_error(loss.name, e, source_file)) from None
    except Exception as e:  # noqa: BLE001
        hint = "" if fam.width > 1 else " (a multiclass function? give --classes K)"
        raise InputError(_trace_error(loss.name, e, source_file).rstrip(".") + hint + ".") from None
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        hint = " (a binary function given --classes?)" if fam.width > 1 else ""
        raise InputError(f"`{loss.name}` returns shape {shape}, not a scalar loss{hint}; reduce it to one number.")
    if np.dtype(out.dtype) != fmt.dtype:
        raise InputError(f"`{loss.name}` returns {np.dtype(out.dtype).name} for {fmt.name} inputs; a {fmt.name} "
                         f"row must return {fmt.name} (cast the result back, or check the wider format).")
    try:
        jax.eval_shape(fam.forms[1].kernel, x, label)
    except Exception as e:  # noqa: BLE001
        raise InputError(_trace_error(loss.name, e, source_file, "its gradient")) from None


def _trace_error(name: str, e: Exception, source_file: str | None, what: str = "it") -> str:
    """One sentence for a function that cannot be traced, naming the user's line."""
    line = ""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if source_file and os.path.abspath(frame.filename) == os.path.abspath(source_file):
            line = f" at {os.path.basename(frame.filename)}:{frame.lineno} (`{(frame.line or '').strip()}`)"
            break
    kind = type(e).__name__
    first = str(e).strip().splitlines()[0] if str(e).strip() else kind
    if isinstance(e, (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                      jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError)):
        first = "it uses a traced value as a Python or NumPy value (control flow on values, or NumPy on a tracer)"
    what = "" if what == "it" else f" ({what})"
    return f"JAX cannot trace `{name}`{what}{line}: {first.rstrip('.')}."


def jobs(fam: Family, fmts, targets, points, seed, sweeps=softmax.SWEEPS, target_classes=("top", "other"),
         value_range=None, exhaustive=False):
    """(axis, target, extra row fields) per row group of a check."""
    from ..numerics.sampling import axis_for

    out = []
    for fmt in fmts:
        n = points or (FLOAT64_POINTS if fmt.bits == 64 else None)
        if fam.width == 1:
            axis = axis_for(fmt, n, seed, value_range, exhaustive)
            out += [(axis, t, {}) for t in targets]
            continue
        axis = softmax.softmax_axis(fam.width, fmt, n, seed, value_range, exhaustive)
        for s in sweeps:
            for tc in target_classes:
                out.append((axis, softmax.case(s, tc), {"sweep": s, "axis": "m" if s == "margin" else "c",
                                                        "classes": fam.width, "target_class": tc}))
    return out


def check_sweeps(sweeps: Sequence[str], target_classes: Sequence[str]) -> None:
    for s in sweeps:
        if s not in softmax.SWEEPS:
            raise InputError(f"Unknown sweep `{s}` for a check; choose from {', '.join(softmax.SWEEPS)}.")
    for t in target_classes:
        if t not in softmax.TARGET_CLASSES:
            raise InputError(f"Unknown target class `{t}`; choose from {', '.join(softmax.TARGET_CLASSES)}.")


"""Kernels and references at chosen points, called exactly as a sweep calls them.

`kernel_outputs` runs forms' kernels at ordinals of a format, `batch_size` points a
call; `host_reference` gives their exact values in double-double on the host (and
mpmath where that cannot be trusted), `device_float64_references` the same on a
device. The API's `evaluate` and `kernel_values`, the walk and the figures use them,
so they agree with the sweep point for point.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from ..families.base import Family, Form
from ..numerics import formats
from ..numerics.classify import CLASSES, CODE, DEFAULT_TOLERANCE, classify, condition, per_point
from . import modes
from .programs import (batch_size, dd_reference_program, default_device, distinct_references, inputs_program,
                       kernel_program, labels)

REFINE_DD_POINTS = 4096  # distinct points of a refinement call: their device references in one small shape


def kernel_outputs(family: Family, forms: Sequence[Form], fmt: formats.Format, ords: np.ndarray, target,
                   device, mode: modes.Mode | str = modes.DEFAULT) -> list[np.ndarray]:
    """What each form's kernel computes at ordinals `ords`, called exactly as a sweep
    calls it (`batch_size` points a call)."""
    mode = modes.get(mode)
    device = default_device(device)
    b = batch_size(family)
    ords = np.asarray(ords, np.int64)
    pad = -len(ords) % b
    ords = np.concatenate((ords, np.full(pad, ords[-1], np.int64)))
    label = jax.device_put(labels(family.label(target, fmt), b), device)
    outs = [[] for _ in forms]
    for i in range(0, len(ords), b):
        x = inputs_program(family, fmt, family.case(target))(jax.device_put(ords[i:i + b], device))
        for out, f in zip(outs, forms):
            out.append(np.asarray(kernel_program(f.kernel, mode)(x, label)))
    return [np.concatenate(o)[: len(ords) - pad] for o in outs]


def device_float64_references(family: Family, forms: Sequence[Form], fmt: formats.Format, ords: np.ndarray,
                              target64: float, device) -> list:
    """(exact, sensitivity) of each distinct reference of `forms` at float64 ordinals,
    as `host_reference` gives them (bit for bit): double-double on the device, and on
    the host (double-double and mpmath) at the points the device must not keep."""
    from ..numerics import ddj

    every = distinct_references(family.forms + family.factors)[0]
    mine = distinct_references(forms)[0]
    ords = np.asarray(ords, np.int64)
    n = len(ords)
    # two compiled shapes: a call's (the family's batch), and a small one for refinement
    size = batch_size(family) if n > REFINE_DD_POINTS else min(REFINE_DD_POINTS, batch_size(family))
    padded = np.concatenate((ords, np.full(size - n, ords[-1], np.int64)))
    found = jax.device_get(dd_reference_program(family, fmt)(jax.device_put(padded, device), target64,
                                                              jax.device_put(np.int64(0), device)))
    found = jax.tree.map(lambda a: a[:n], found)
    x64 = formats.from_ordinal(ords, fmt).astype(np.float64)
    host = ~ddj.on_device(x64, family.untrusted(x64, target64))
    out = []
    for reference in mine:
        (eh, el), (sh, sl) = found[every.index(reference)]
        host |= ddj.host_rows(eh, el) | ddj.host_rows(sh, sl)
        out.append((np.array(eh), np.array(sh)))
    rows = np.flatnonzero(host)
    if len(rows):
        for (exact, sens), (e, s) in zip(out, host_reference(family, forms, x64[rows], target64)):
            exact[rows], sens[rows] = e, s
    return out


def host_reference(family: Family, forms: Sequence[Form], x: np.ndarray, target64: float) -> list:
    """(exact, sensitivity) of each distinct reference of `forms`, in double-double on
    the host, rounded to float64."""
    base = family.host_base(np.asarray(x, np.float64), target64)
    return [tuple(np.asarray(_to_float(v), np.float64) for v in r(base)) for r in distinct_references(forms)[0]]


def _to_float(v):
    return v.to_float() if hasattr(v, "to_float") else np.asarray(v, np.float64)


def kernel_values(family: Family, forms: Sequence[Form], fmt: formats.Format, xs, target, device=None,
                  mode: modes.Mode | str = modes.DEFAULT) -> list[np.ndarray]:
    """What each form's kernel computes at inputs `xs` (float64 values, rounded to the
    format first), compiled and called exactly as a sweep calls it; on `device`
    (default: JAX's default device, which is the sweep's own inside a sweep)."""
    ords = formats.to_ordinal(fmt.cast(np.asarray(xs, np.float64).ravel()), fmt)
    return kernel_outputs(family, forms, fmt, ords, target, default_device(device), mode)


def evaluate(family: Family, forms: Sequence[Form], fmt: formats.Format, xs, target, device=None,
             mode: modes.Mode | str = modes.DEFAULT, floor: str = "condition",
             tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Per-point values of built-in forms at chosen inputs: computed, exact, class and
    ULP error, as the sweep classifies them. `xs` are rounded to the format first; the
    exact values come from the host's double-double reference, whatever the format.
    Returns dicts keyed by form name: ``computed`` (format values as float64),
    ``exact``, ``class``, ``ulp``, ``kappa`` (the relative condition number of the
    exact value, which sets the allowance: see ``classify``); and ``x`` (the inputs)."""
    x = fmt.cast(np.asarray(xs, np.float64).ravel())
    computed = kernel_values(family, forms, fmt, x, target, device, mode)
    refs = host_reference(family, forms, x.astype(np.float64), float(fmt.cast(target).astype(np.float64)))
    ref_of = distinct_references(forms)[1]
    result = {"x": x.astype(np.float64), "computed": {}, "exact": {}, "class": {}, "ulp": {}, "kappa": {}}
    for form, out, k in zip(forms, computed, ref_of):
        exact, sens = (np.broadcast_to(a, out.shape) for a in refs[k])
        code, ulp, _, _ = per_point(*classify(out, exact, sens, fmt, tolerance, np, floor), tuple(range(1, out.ndim)),
                                    fmt)
        result["computed"][form.name] = out.astype(np.float64)
        result["exact"][form.name] = exact
        result["kappa"][form.name] = condition(exact, sens)
        result["class"][form.name] = np.array(CLASSES)[code]
        result["ulp"][form.name] = np.where(code >= CODE["inf"], np.nan, ulp)  # no distance to NaN or a wrong ∞
    return result

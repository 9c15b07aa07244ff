"""Where execution modes disagree: the same kernel run by two modes (engine.modes).

`jit` runs a form's kernel as one XLA program, which may fuse operations and keep
float32 intermediates of a bfloat16 or float16 computation (excess precision);
`eager` dispatches each primitive alone, so every intermediate is rounded to the
format, which is what the code means on paper. Every point of a row is computed in
both modes, exactly as a sweep computes it (see ``engine.points.kernel_outputs``),
and the points whose results differ in any bit (all NaNs counting as equal) are
counted, with the one nearest zero as an example next to its exact value.
"""

from __future__ import annotations

import numpy as np

from ..numerics import formats
from ..engine.points import host_reference, kernel_outputs
from ..engine.programs import batch_size
from ..families.base import Family, Form

from ..engine import modes


def _same(a: np.ndarray, b: np.ndarray, fmt: formats.Format) -> np.ndarray:
    """Per point: the results are the same value of the format (every NaN alike)."""
    oa, ob = formats.to_ordinal(a, fmt), formats.to_ordinal(b, fmt)
    same = (oa == ob) | (np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64)))
    return same.reshape(len(same), -1).all(axis=1)


def disagreements(family: Family, form: Form, axis, target, device, mode: modes.Mode = modes.EAGER,
                  against: modes.Mode = modes.JIT) -> dict:
    """Points of `axis` where `form`'s results in `against` (jit) and in `mode` differ:
    their count and the one nearest zero, with both results (keyed by the modes'
    names) and the exact value there."""
    fmt = axis.fmt
    step = 4 * batch_size(family)
    count, nearest = 0, None
    for start in range(0, len(axis), step):
        ords = axis.ordinals(np.arange(start, min(start + step, len(axis))))
        jit, eager = kernel_outputs(family, [form], fmt, ords, target, device, against)[0], \
            kernel_outputs(family, [form], fmt, ords, target, device, mode)[0]
        differ = np.flatnonzero(~_same(jit, eager, fmt))
        count += len(differ)
        if len(differ):
            j = differ[np.argmin(np.abs(ords[differ]))]
            if nearest is None or abs(ords[j]) < abs(nearest[0]):
                nearest = (int(ords[j]), jit[j], eager[j])
    example = None
    if nearest is not None:
        o, a, b = nearest
        x = float(formats.from_ordinal(np.int64(o), fmt).astype(np.float64))
        target64 = float(fmt.cast(target).astype(np.float64))
        exact = host_reference(family, [form], np.array([x]), target64)[0][0][0]
        flat = np.flatnonzero(~_same(a.reshape(-1, 1), b.reshape(-1, 1), fmt))
        k = int(flat[0]) if a.ndim else 0
        pick = (lambda v: float(np.asarray(v, np.float64).reshape(-1)[k]))
        example = {"x": x, "entry": k if a.ndim else None, against.name: pick(a), mode.name: pick(b),
                   "exact": pick(exact)}
    return {"mode": mode.name, "points": len(axis), "differ": count, "example": example}

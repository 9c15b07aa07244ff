"""Where the op-by-op program and the compiled one part: the onset a row shows is the
compiled program's (jit of vmap, as users run it), while the cause walk evaluates the
jaxpr operation by operation, each result rounded to the format. Where op by op the
form already fails nearer 0, the walk at the onset explains the op-by-op program, not
the compiled one; this module finds that and names what the compiled program does
instead: the operations XLA fused into its root, and the format threshold the onset
sits on (e^|x| overflowing, say), where it sits on one.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine import modes, points
from ..families.base import Family, Form
from ..numerics import formats

SAMPLES = 4096  # points between 0 and an onset run op by op where the lattice has more
FUSED_OPS = 8  # distinct operations named from the compiled root


def earlier(family: Family, form: Form, fmt: formats.Format, target, z: float, cls: str, device,
            mode) -> dict | None:
    """The point nearest 0 (on the side of the onset `z`) where the op-by-op program
    gives `cls` (NaN, or ±∞) and the compiled one does not, among every lattice value
    between 0 and `z` (formats of up to 16 bits) or SAMPLES evenly spaced ones, the
    gap before the first such sample then narrowed, SAMPLES points a round, to a
    transition. None where op by op fails no earlier."""
    o = int(formats.to_ordinal(fmt.cast([z]), fmt)[0])
    step = 1 if o > 0 else -1
    n = abs(o)
    if n <= 1:
        return None
    every = n - 1 <= 1 << 16
    ords = (np.arange(1, n, dtype=np.int64) if every else _spread(0, n - 1)) * step

    def fails(ords):
        eager, jitted = (points.kernel_outputs(family, [form], fmt, ords, target, device, m)[0]
                         for m in (modes.EAGER, mode))
        shape = (len(ords), -1)
        e, j = eager.astype(np.float64).reshape(shape), jitted.astype(np.float64).reshape(shape)
        bad = np.isnan(e) if cls == "nan" else np.isinf(e)
        good = ~np.isnan(j) if cls == "nan" else np.isfinite(j)
        return bad.any(axis=1) & good.all(axis=1)

    hit = np.flatnonzero(fails(ords))
    if not len(hit):
        return None
    k = int(hit[0])
    found = int(ords[k])
    if not every and k > 0:  # narrow the gap after the last sample that held, SAMPLES points a round
        lo, hi = abs(int(ords[k - 1])), abs(found)
        while hi - lo > 1:
            inner = _spread(lo, hi)
            bad = fails(inner * step)
            if not bad.any():  # hi held in this call's batch: the result depends on the batch; keep hi
                break
            j = int(np.argmax(bad))
            lo, hi = (int(inner[j - 1]) if j > 0 else lo), int(inner[j])
        found = hi * step
    x = float(formats.from_ordinal(np.array([found]), fmt).astype(np.float64)[0])
    return {"x": x, "method": "exhaustive" if every else "sampled"}


def _spread(lo: int, hi: int) -> np.ndarray:
    """At most SAMPLES integers in (lo, hi], evenly spaced, increasing, ending at hi
    (exact integer arithmetic: float64 ordinals reach 2**63)."""
    k = min(SAMPLES, hi - lo)
    out = lo + ((hi - lo) // k) * np.arange(1, k + 1, dtype=np.int64)
    out[-1] = hi
    return out


def fused_ops(program, args) -> list[str]:
    """The distinct operations of a compiled program's root computation (its fusion),
    in order, at arguments `args`."""
    from .walk import _root_fusion

    lines = _root_fusion(program.lower(*args).compile().as_text(), lines=200)
    ops = []
    for line in lines:
        rhs = line.split("=", 1)[-1].strip()
        name = rhs.split("(", 1)[0].split()[-1] if "(" in rhs else ""
        if name and name not in ("parameter", "constant", "broadcast", "bitcast", "reshape", "copy", "tuple",
                                 "get-tuple-element", "convert") and name not in ops:
            ops.append(name)
    return ops[:FUSED_OPS]


def threshold(z: float, fmt: formats.Format) -> str | None:
    """The format threshold `z` is the first lattice value beyond (from 0), if any: where
    e^|z| overflows, or e^−|z| becomes subnormal or 0."""
    m = abs(z)
    prev = abs(float(formats.from_ordinal(formats.to_ordinal(fmt.cast([z]), fmt) - np.sign(z).astype(np.int64),
                                          fmt).astype(np.float64)[0]))
    for t, text in ((math.log(fmt.max), "e^|x| overflows: |x| ≥ ln(max) = {t:.6g}"),
                    (-math.log(fmt.smallest_normal), "e^−|x| is subnormal: |x| > −ln(smallest normal) = {t:.6g}"),
                    (-math.log(fmt.smallest_subnormal) + math.log(2), "e^−|x| rounds to 0: |x| ≥ −ln(smallest subnormal/2) "
                                                            "= {t:.6g}")):
        if prev < t <= m:
            return text.format(t=t)
    return None

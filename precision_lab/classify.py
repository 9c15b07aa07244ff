"""Classification of computed values against the exact reference.

Every point gets exactly one class, first match wins (codes rise with severity,
so the worst class of several points is their largest code):

* ``nan``        the computed value is NaN;
* ``inf``        computed ±∞ where the exact value, rounded to the format, is not that ∞;
* ``zero``       computed 0 where the exact value rounds to a non-zero value: a lost
                 signal (``zero_subnormal`` counts those whose exact value is subnormal);
* ``inaccurate`` more than `tolerance` ULPs from the exact value rounded to the format,
                 *and* an absolute error above the floor ``tolerance · eps · scale``, where
                 scale is the sum of the magnitudes of the exact formula's terms (capped
                 at the format's max), so cancellation at a root of the exact value
                 (ŷ − y near ŷ = y) is not flagged;
* ``ok``         everything else.

All comparisons go through integer ordinals (see formats), so XLA's flushing of
subnormal floats on the CPU cannot blur what is measured.
"""

from __future__ import annotations

import numpy as np

from . import formats

CLASSES = ("ok", "inaccurate", "zero", "inf", "nan")
FAILURES = ("nan", "inf", "zero", "inaccurate")
CODE = {name: i for i, name in enumerate(CLASSES)}
UNSTABLE = ("nan", "inf", "zero")  # a row is stable when it has none of these
DEFAULT_TOLERANCE = 4.0  # ULPs


def classify(out, exact, scale, fmt: formats.Format, tolerance, xp):
    """Class codes (int8), ULP errors (float64) and "exact is subnormal" flags.

    `out` is the kernel's result in `fmt`; `exact` and `scale` are float64.
    """
    o_c = formats.to_ordinal(out, fmt, xp)
    o_e = formats.round_to_ordinal(exact, fmt, xp)
    ulp = xp.abs(o_c.astype(np.float64) - o_e.astype(np.float64))
    c64 = out if fmt.bits == 64 else formats.ordinal_to_float64(o_c, fmt, xp)
    floor = tolerance * fmt.eps * xp.minimum(scale, fmt.max)
    with np.errstate(invalid="ignore"):  # ∞ − ∞ where both are ∞: not inaccurate
        inaccurate = (ulp > tolerance) & (xp.abs(c64 - exact) > floor)
    zero = (o_c == 0) & (o_e != 0)
    inf = (xp.abs(o_c) > fmt.max_ordinal) & (o_c != o_e) if fmt.has_inf else (o_c != o_c)
    code = xp.where(
        xp.isnan(out),
        CODE["nan"],
        xp.where(inf, CODE["inf"], xp.where(zero, CODE["zero"], xp.where(inaccurate, CODE["inaccurate"], 0))),
    ).astype(np.int8)
    subnormal = zero & (xp.abs(o_e) < (1 << fmt.mant))
    return code, ulp, subnormal

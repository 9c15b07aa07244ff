"""Classification of computed values against the exact reference.

Every point gets exactly one class, first match wins (codes rise with severity,
so the worst class of several points is their largest code):

* ``nan``        the computed value is NaN;
* ``inf``        computed ±∞ where the exact value, rounded to the format, is not that ∞;
* ``zero``       computed 0 where the exact value rounds to a non-zero value: a lost
                 signal (``zero_subnormal`` counts those whose exact value is subnormal),
                 unless the exact value is normal and u · S (below) is at least |f|:
                 a root that the input's rounding alone can move, as ŷ − y at ŷ ≈ y;
* ``inaccurate`` more than `tolerance` ULPs from the exact value rounded to the format,
                 *and* (floor ``condition``, the default) more than ``tolerance · u · S``
                 with S = Σᵢ |xᵢ · ∂f/∂xᵢ| the exact function's sensitivity to its
                 inputs (u = eps/2): the error that rounding the inputs alone would
                 cause, so |error| ≤ tolerance · max(ulp(exact), u · S) is excused.
                 S/|f| is the relative condition number κ; where κ ≤ 1 the allowance
                 is exactly `tolerance` ULPs. Near a root of f (ŷ − y at ŷ ≈ y) κ is
                 large and the cancellation the input's rounding forces is excused;
                 nothing a formulation loses beyond that is. Floor ``none`` is the
                 pure ULP test;
* ``ok``         everything else;
* ``unresolved`` the exact value is unknown: undefined as a real (log of 0 or of a
                 negative number, 0/0), or not decided within the reference's
                 precision cap (a user's function, see ``reference``). Counted and
                 listed, never guessed; a reference marks such a point with an exact
                 value of NaN. A computed NaN there is counted ``nan`` all the same:
                 whatever the real value, a NaN breaks training.

All comparisons go through integer ordinals (see formats), so XLA's flushing of
subnormal floats on the CPU cannot blur what is measured.
"""

from __future__ import annotations

import numpy as np

from . import formats

CLASSES = ("ok", "inaccurate", "zero", "inf", "nan", "unresolved")
FAILURES = ("nan", "inf", "zero", "inaccurate")
CODE = {name: i for i, name in enumerate(CLASSES)}


UNSTABLE = ("nan", "inf", "zero")  # a row is stable when it has none of these
DEFAULT_TOLERANCE = 4.0  # ULPs


def _widths(fmt: formats.Format):
    """Signed and unsigned integer types wide enough for `fmt`'s ordinals and ULP
    distances: 32-bit for formats of up to 32 bits (|o| < 2**31, and a distance,
    at most the sum of two magnitudes, < 2**32), 64-bit for float64. Narrow
    integers keep the classification cheap: it runs on every point of every form."""
    return (np.int32, np.uint32) if fmt.bits <= 32 else (np.int64, np.uint64)


FLOORS = ("condition", "none")


def ulp_threshold(o_e, sens, fmt: formats.Format, tolerance, xp, floor: str = "condition"):
    """Per point, the ULP error above which it is inaccurate: the larger of `tolerance`
    and ``tolerance · u · sens`` (u = eps/2, sens = Σᵢ|xᵢ ∂f/∂xᵢ|) expressed in ULPs of
    the exact value (whose ordinal is `o_e`); just `tolerance` with floor ``none``."""
    if floor == "none":
        return xp.zeros(o_e.shape) + tolerance
    sens = xp.where(sens == sens, xp.minimum(xp.abs(sens), fmt.max), 0.0)  # NaN: nothing excused
    floor = tolerance * (fmt.eps / 2) * sens
    k = xp.maximum(xp.abs(o_e) >> fmt.mant, 1) - fmt.bias - fmt.mant  # ulp(exact) = 2**k
    if fmt.bits < 64:  # k ≥ -149: 2**-k is a normal float64
        return xp.maximum(floor * formats.pow2(-k, xp), tolerance)
    half = k // 2  # float64's k reaches -1074: two steps keep 2**-k in range
    return xp.maximum(floor * formats.pow2(-half, xp) * formats.pow2(half - k, xp), tolerance)


def _unresolved_ordinal(fmt: formats.Format) -> int:
    """The exact-value ordinal that marks an unresolved point: the most negative
    integer of the ordinal type, beyond every value's ordinal (|o| ≤ max_ordinal + 1)."""
    return int(np.iinfo(_widths(fmt)[0]).min)


def reference_terms(exact, sens, fmt: formats.Format, tolerance, xp, floor: str = "condition"):
    """What a point is compared against: the exact value's ordinal (signed) and the
    integer ULP limit (unsigned: an integer distance exceeds a limit L iff it
    exceeds floor(L)). An exact value of NaN marks an unresolved point."""
    signed, unsigned = _widths(fmt)
    o_e = xp.where(exact == exact, formats.round_to_ordinal(xp.where(exact == exact, exact, 0.0), fmt, xp),
                   _unresolved_ordinal(fmt))
    cap = float(np.iinfo(unsigned).max // 2)  # exactly representable in float64, beyond any real distance
    limit = xp.minimum(ulp_threshold(o_e, sens, fmt, tolerance, xp, floor), cap).astype(unsigned)
    return o_e.astype(signed), limit


def classify_terms(out, o_e, limit, fmt: formats.Format, xp, tolerance: float = DEFAULT_TOLERANCE):
    """Class codes (int8), ULP errors (unsigned integers), "exact is subnormal" flags
    and the exact values' magnitudes as ordinals (unsigned) of the results `out`
    against reference terms (broadcast against `out`)."""
    signed, unsigned = _widths(fmt)
    o_c = formats.to_ordinal(out, fmt, xp, signed)
    m_c, m_e = xp.abs(o_c).astype(unsigned), xp.abs(o_e).astype(unsigned)
    same_side = (o_c >= 0) == (o_e >= 0)
    ulp = xp.where(same_side, xp.maximum(m_c, m_e) - xp.minimum(m_c, m_e), m_c + m_e)
    # a 0 is lost signal unless the exact value is normal and the rounding of the input
    # alone could move it across zero, u·S ≥ |f| to first order (the limit without its
    # tolerance factor): ŷ − y at its root; such a 0 is ok (its ordinal distance, which
    # counts every smaller float, is no measure of it). The tolerance does not stretch
    # this: in a tail such as σ(−z), where S/|f| ≈ z, tolerance · u · z ≥ 1 would excuse
    # every 0 beyond z = 1/(4u) though no rounding of z makes σ(−z) vanish. A subnormal
    # exact value lost to 0 is always counted (a flush).
    subnormal_exact = m_e < (1 << fmt.mant)
    significand = (m_e & ((1 << fmt.mant) - 1)) | (1 << fmt.mant)  # |exact| in ULPs of exact
    excused = ~subnormal_exact & (limit > int(tolerance)) & (limit >= significand * tolerance)
    zero = (o_c == 0) & (o_e != 0) & ~excused
    inf = (m_c > fmt.max_ordinal) & (o_c != o_e) if fmt.has_inf else (o_c != o_c)
    code = xp.where(
        out != out,  # NaN, whatever the exact value: a computed NaN breaks training even where the real is undefined
        np.int8(CODE["nan"]), xp.where(
        o_e == _unresolved_ordinal(fmt), np.int8(CODE["unresolved"]),
        xp.where(inf, np.int8(CODE["inf"]), xp.where(zero, np.int8(CODE["zero"]),
                                                     xp.where((ulp > limit) & ~((o_c == 0) & excused),
                                                              np.int8(CODE["inaccurate"]), np.int8(0)))),
    )).astype(np.int8)
    subnormal = zero & subnormal_exact
    return code, ulp, subnormal, xp.broadcast_to(m_e, o_c.shape)


def classify(out, exact, sens, fmt: formats.Format, tolerance, xp, floor: str = "condition"):
    """Class codes (int8), ULP errors (unsigned integers), "exact is subnormal" flags and
    exact magnitudes (ordinals), as `classify_terms`.

    `out` is a kernel's result in `fmt`; `exact` and `sens` (Σᵢ|xᵢ ∂f/∂xᵢ|) are
    float64 arrays that broadcast against it.
    """
    return classify_terms(out, *reference_terms(exact, sens, fmt, tolerance, xp, floor), fmt, xp, tolerance)


def condition(exact, sens):
    """The relative condition number κ = Σᵢ|xᵢ ∂f/∂xᵢ| / |f| (∞ at a root of f)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sens == 0, 0.0, np.abs(np.asarray(sens, np.float64)) / np.abs(exact))


def per_point(code, ulp, subnormal, magnitude, axes: tuple[int, ...], fmt: formats.Format):
    """Reduce a vector-valued result to one class per point: the worst class over its
    entries (codes rise with severity), the largest entry error, whether its zeros
    are flushes (some entry lost to 0 and the exact value of every lost entry
    subnormal: one normal entry lost beside flushed ones makes the point a lost
    normal value), and whether they are negligible: not all flushes, and every
    entry lost to 0 below eps times the largest entry of the same result (exact
    values rounded to the format; subnormal ones may be among them). Such an entry
    is below the format's resolution relative to the result: a softmax gradient's
    e^-50 beside entries near 1. Scalar results are never negligible; their
    `magnitude` (the exact values' ordinals, see `classify_terms`) is unused."""
    if not axes:
        return code, ulp, subnormal, subnormal & False
    lost = code == CODE["zero"]
    lost_normal = lost & ~subnormal
    top = magnitude.max(axis=axes, keepdims=True)
    shift = fmt.mant << fmt.mant  # ordinal of x·eps = ordinal of x − shift, where x·eps is normal
    negligible = (top >= shift + (1 << fmt.mant)) & (magnitude < top - shift)
    flush = subnormal.any(axis=axes) & ~lost_normal.any(axis=axes)
    small = lost_normal.any(axis=axes) & ~(lost_normal & ~negligible).any(axis=axes)
    worst = code.max(axis=axes)
    # a NaN entry breaks the point even beside an undecided one (unresolved, the only code above nan)
    worst = worst - ((code == CODE["nan"]).any(axis=axes) & (worst > CODE["nan"])).astype(worst.dtype)
    return worst, ulp.max(axis=axes), flush, small

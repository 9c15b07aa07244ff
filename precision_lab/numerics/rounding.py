"""Correct rounding of exact binary values to float64: of an mpf, of an exact arb,
and of an arb ball where every real in it rounds to one float64 (`settled`).
One rounding of the value's exact bits, subnormals and overflow to ±inf included
(float(mpf) may round a subnormal twice)."""

from __future__ import annotations

import contextlib
import math
import threading

import mpmath
from flint import arb, ctx

# flint's (and mpmath's) working precision is one setting for the whole process: a
# block that sets it holds this lock, so that a thread's arithmetic never runs at the
# precision another thread set (the cause walk runs beside a sweep's passes)
EXACT = threading.RLock()


@contextlib.contextmanager
def workprec(prec: int):
    """flint's working precision, `prec` bits, for the block (see EXACT)."""
    with EXACT:
        old = ctx.prec
        ctx.prec = prec
        try:
            yield
        finally:
            ctx.prec = old


def _round_shift(man: int, shift: int) -> tuple[int, bool]:
    """man / 2**shift rounded to the nearest integer, ties to even (shift > 0), and
    whether it was an exact tie."""
    if shift > man.bit_length() + 1:  # man/2**shift < 1/4: 0, and no tie (a huge shift would build a huge mask)
        return 0, False
    q, r = man >> shift, man & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    return (q + 1 if r > half or (r == half and q & 1) else q), r == half


def _binary_to_float64(sign: bool, man: int, exp: int) -> tuple[float, bool]:
    """(±man·2**exp rounded to float64, whether it was exactly a tie); man > 0."""
    bc = man.bit_length()
    top = exp + bc - 1  # 2**top <= man·2**exp < 2**(top + 1)
    keep = 53 if top >= -1022 else top + 1075  # significant bits float64 keeps here
    tie = False
    if keep <= 0:  # below half the smallest subnormal (or exactly at it: tie to 0)
        tie = keep == 0 and man == 1 << (bc - 1)
        m, e = (1, -1074) if keep == 0 and not tie else (0, 0)
    elif bc > keep:
        (m, tie), e = _round_shift(man, bc - keep), exp + bc - keep
    else:
        m, e = man, exp
    if m and e + m.bit_length() > 1024:
        v = math.inf
    else:
        v = math.ldexp(m, e)  # exact: m has at most 53 bits (54 on a carry to 2**k)
    return (-v if sign else v), tie


def _to_float64(x) -> tuple[float, bool]:
    """(to_float64(x), whether x is exactly 0 or exactly halfway between two float64)."""
    if not isinstance(x, mpmath.mpf):
        return float(x), False
    sign, man, exp, _ = x._mpf_
    if not man:
        return float(x), x == 0  # 0, ±inf, nan
    return _binary_to_float64(bool(sign), man, exp)


def to_float64(x) -> float:
    """The float64 nearest to the mpf (or number) x, ties to even, subnormals and
    overflow to ±inf included: one rounding of x's exact binary value (float(mpf)
    may round a subnormal twice)."""
    return _to_float64(x)[0]


def _exact_to_float64(x: arb) -> float:
    """An exact arb (a binary number) rounded once to float64."""
    m, e = x.man_exp()
    m, e = int(m), int(e)
    return 0.0 if m == 0 else _binary_to_float64(m < 0, abs(m), e)[0]


def arb_to_float64(x) -> float:
    """A ball's midpoint (or a number) rounded once to float64."""
    if not isinstance(x, arb):
        return float(x)
    if x.is_nan():
        return math.nan
    if not x.is_finite():
        return math.inf if x > 0 else -math.inf
    return _exact_to_float64(x.mid())


def settled(x) -> float | None:
    """The float64 that every real of the ball `x` rounds to, or None where the ball
    straddles a rounding boundary or has no value (a number is exact). First the
    float64 f nearest the midpoint: if the ball lies strictly between the midpoints
    of f and its neighbours (exact in arb), f it is; else the ball's two ends,
    each rounded once."""
    if not isinstance(x, arb):
        return float(x)
    if x.is_exact():
        return arb_to_float64(x)  # ±inf too
    if not x.is_finite():
        return None
    f = float(x.mid())
    if f != 0.0 and math.isfinite(f):
        up, down = math.nextafter(f, math.inf), math.nextafter(f, -math.inf)
        if math.isfinite(up) and math.isfinite(down):
            a = arb(f)
            if x > (a + arb(down)) * 0.5 and x < (a + arb(up)) * 0.5:
                return f
    lo, hi = _exact_to_float64(x.lower()), _exact_to_float64(x.upper())
    return lo if lo == hi else None


def binary_ordinal(man: int, exp: int, fmt) -> int:
    """The ordinal of `fmt`'s value nearest man·2**exp (an exact binary number; ties to
    even), ±(max_ordinal + 1) beyond the format's rounding range: one rounding of the
    exact bits, in integers."""
    if man == 0:
        return 0
    sign, man = man < 0, abs(man)
    emin = 1 - fmt.bias
    e = max(exp + man.bit_length() - 1, emin)  # the exponent of |v|, at least the smallest normal one
    shift = exp + fmt.mant - e  # |v|·2**(mant − e) = man·2**shift, below 2**(mant + 1)
    q = man << shift if shift >= 0 else _round_shift(man, -shift)[0]
    mag = min(((e - emin) << fmt.mant) + q, fmt.max_ordinal + 1)
    return -mag if sign else mag

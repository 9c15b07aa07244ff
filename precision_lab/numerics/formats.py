"""Floating-point formats and their lattices.

A format's finite values, in order, form a lattice. Each value gets an integer
*ordinal*: its position along that lattice, with +0 and -0 sharing ordinal 0,
negative values negative, and +-inf (where the format has them) at +-(max + 1).
The ULP distance between two values is the difference of their ordinals, which is
correct across zero, subnormals and infinities.

Every constant comes from the format's finfo or its bit layout. The ordinal
helpers take an array namespace ``xp`` (numpy on the host, jax.numpy inside a
jitted program) and work on bit patterns, integers and float64 values that are
never subnormal, so they are immune to the flush-to-zero that XLA's CPU backend
applies to subnormal floats.
"""

from __future__ import annotations

import dataclasses
import math

import ml_dtypes
import numpy as np
from ..errors import InputError

_INT = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}


@dataclasses.dataclass(frozen=True)
class Format:
    """One floating-point format, described by its finfo and bit layout."""

    name: str
    dtype: np.dtype
    bits: int
    mant: int  # stored fraction bits (finfo.nmant)
    bias: int  # exponent bias, 1 - finfo.minexp
    has_inf: bool
    max_ordinal: int  # ordinal of the largest finite value
    eps: float
    max: float
    smallest_normal: float
    smallest_subnormal: float
    exhaustive: bool  # small enough to sweep every value

    @property
    def int_dtype(self) -> np.dtype:
        return np.dtype(_INT[self.bits])

    @property
    def precision(self) -> int:
        """Significand bits, the implicit leading bit included."""
        return self.mant + 1

    @property
    def lattice_size(self) -> int:
        """Number of finite values, +-0 counted once."""
        return 2 * self.max_ordinal + 1

    def cast(self, x) -> np.ndarray:
        """Round float64 values to this format on the host (ml_dtypes: no flushing)."""
        return np.asarray(x, dtype=np.float64).astype(self.dtype)


def _make(name: str, dtype) -> Format:
    dtype = np.dtype(dtype)
    fi = ml_dtypes.finfo(dtype)
    bits = dtype.itemsize * 8
    max_bits = np.asarray(fi.max, dtype=dtype).view(_INT[bits])
    with np.errstate(invalid="ignore", over="ignore"):
        has_inf = bool(np.isinf(np.float64(np.inf).astype(dtype).astype(np.float64)))
    return Format(
        name=name,
        dtype=dtype,
        bits=bits,
        mant=int(fi.nmant),
        bias=1 - int(fi.minexp),
        has_inf=has_inf,
        max_ordinal=int(max_bits),
        eps=float(fi.eps),
        max=float(fi.max),
        smallest_normal=float(fi.smallest_normal),
        smallest_subnormal=float(fi.smallest_subnormal),
        exhaustive=bits <= 16,
    )


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        _make("float16", np.float16),
        _make("bfloat16", ml_dtypes.bfloat16),
        _make("float32", np.float32),
        _make("float64", np.float64),
        _make("float8_e4m3fn", ml_dtypes.float8_e4m3fn),
        _make("float8_e5m2", ml_dtypes.float8_e5m2),
    )
}
DEFAULT_FORMATS = ("float16", "bfloat16", "float32", "float64")


def get(name: str) -> Format:
    """The format called `name`; ValueError naming the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        near = next((long for long, short in SHORT.items() if short == str(name).lower()), None)
        hint = f" (`{name}` is how the tables label {near}: give `{near}`)" if near else ""
        raise InputError(f"Unknown format `{name}`{hint}; known formats are {', '.join(FORMATS)}.") from None


SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64", "float8_e4m3fn": "f8e4m3",
         "float8_e5m2": "f8e5m2"}  # each format's label in the tables' columns


def holds(wide: Format, narrow: Format) -> bool:
    """Whether every value of `narrow` is a value of `wide` (so a cast up is exact)."""
    return (wide.precision >= narrow.precision and wide.max >= narrow.max
            and wide.smallest_subnormal <= narrow.smallest_subnormal and (wide.has_inf or not narrow.has_inf))


@dataclasses.dataclass(frozen=True)
class Precision:
    """Inputs on one format's lattice, computed in another that holds it (``bfloat16:float32``:
    bfloat16 values cast to float32 before the kernel), or in the same one."""

    input: Format
    compute: Format

    @property
    def name(self) -> str:
        return self.input.name if self.compute == self.input else f"{self.input.name}:{self.compute.name}"

    @property
    def upcast(self) -> bool:
        return self.compute != self.input


def precision(spec: str) -> Precision:
    """The precision `spec` names: a format (``float16``), or an input format and the
    wider one it is computed in (``bfloat16:float32``); one sentence otherwise."""
    name, sep, compute = str(spec).partition(":")
    fin = get(name)
    fc = get(compute) if sep else fin
    if not holds(fc, fin):
        raise InputError(f"`{spec}` computes in a format that does not hold every {fin.name} value; "
                         f"the compute format must be at least as wide as the input's (e.g. "
                         f"{fin.name}:{'float32' if fin.bits < 32 else 'float64'}).")
    return Precision(fin, fc)


# ---------------------------------------------------------------- bit helpers


def _bitcast(x, dtype, xp):
    if xp is np:
        return np.asarray(x).view(dtype)
    from jax import lax

    return lax.bitcast_convert_type(x, dtype)


def to_ordinal(x, fmt: Format, xp=np, dtype=np.int64):
    """Ordinal of each value of `x`, an array of `fmt`'s dtype, as `dtype` (int64
    by default; any signed type at least as wide as the format). NaN is undefined."""
    s = _bitcast(x, fmt.int_dtype, xp).astype(dtype)
    mag = s & ((1 << (fmt.bits - 1)) - 1)
    return xp.where(s < 0, -mag, mag)


def from_ordinal(o, fmt: Format, xp=np):
    """Values of `fmt` at ordinals `o`; ordinal 0 gives +0."""
    o = xp.asarray(o).astype(np.int64)
    mag = xp.abs(o).astype(np.uint64)
    u = xp.where(o < 0, mag | np.uint64(1 << (fmt.bits - 1)), mag)
    return _bitcast(u.astype(np.dtype(f"u{fmt.bits // 8}")), fmt.dtype, xp)


def round_to_ordinal(v, fmt: Format, xp=np):
    """Ordinal of the value of `fmt` nearest to float64 `v` (ties to even).

    Values beyond the rounding range map to +-(max_ordinal + 1): infinity where the
    format has one, "out of range" where it has none (float8_e4m3fn). With e the
    exponent of |v|, at least the format's smallest normal exponent, |v|·2**(mant − e)
    is exact in float64 (a power-of-two scaling that stays in float64's normal
    range) and lies below 2**(mant + 1); rounding it to an integer, half to even, is
    rounding v to the format, and that integer is the ordinal's fraction part. No
    float is ever made subnormal, so nothing is flushed.
    """
    b = _bitcast(v, np.int64, xp)
    a = b & 0x7FFF_FFFF_FFFF_FFFF
    if fmt.bits == 64:
        mag = a
    else:
        m, emin = fmt.mant, 1 - fmt.bias
        e64 = a >> 52
        e = xp.maximum(e64 - 1023, emin)
        finite = e64 != 0x7FF
        q = xp.rint(xp.where(finite, xp.abs(v), 0.0) * pow2(m - e, xp)).astype(np.int64)
        mag = xp.minimum(((e - emin) << m) + q, fmt.max_ordinal + 1)
        mag = xp.where(finite, mag, fmt.max_ordinal + 1)
    return xp.where(b < 0, -mag, mag)


def ordinal_to_float64(o, fmt: Format, xp=np):
    """float64 value of the format's ordinal `o`, exact, built from integers."""
    mag = xp.abs(o)
    ef = mag >> fmt.mant
    frac = mag & ((1 << fmt.mant) - 1)
    sig = xp.where(ef == 0, frac, frac | (1 << fmt.mant)).astype(np.float64)
    e = xp.maximum(ef, 1) - fmt.bias - fmt.mant
    if fmt.bits < 64:  # 2**e built from its bit pattern (fast under XLA, exact: e is in float64's normal range)
        val = sig * pow2(e, xp)
    else:
        with np.errstate(over="ignore"):  # the infinity ordinal's exponent overflows; replaced below
            val = xp.ldexp(sig, e.astype(np.int32))
    val = xp.where(mag > fmt.max_ordinal, np.inf, val)
    return xp.where(o < 0, -val, val)


def pow2(k, xp=np):
    """2.0**k in float64 for integer k in [-1022, 1023], built from its bit pattern."""
    return _bitcast((k.astype(np.int64) + 1023) << 52, np.float64, xp)


def ulp_distance(a, b, fmt: Format):
    """Number of lattice steps between values `a` and `b` of `fmt` (uint64, host).

    +0 and -0 are one point; +-inf sit one step beyond the largest finite value.
    """
    a, b = np.asarray(a, fmt.dtype), np.asarray(b, fmt.dtype)
    if np.isnan(a.astype(np.float64)).any() or np.isnan(b.astype(np.float64)).any():
        raise InputError("ULP distance is undefined for NaN.")
    oa, ob = to_ordinal(a, fmt), to_ordinal(b, fmt)
    hi, lo = np.maximum(oa, ob), np.minimum(oa, ob)
    with np.errstate(over="ignore"):  # exact modulo 2**64, and the true distance is below 2**64
        return hi.astype(np.uint64) - lo.astype(np.uint64)


def next_value(x, fmt: Format) -> np.ndarray:
    return from_ordinal(to_ordinal(np.asarray(x, fmt.dtype), fmt) + 1, fmt)


def prev_value(x, fmt: Format) -> np.ndarray:
    return from_ordinal(to_ordinal(np.asarray(x, fmt.dtype), fmt) - 1, fmt)


def lattice(fmt: Format) -> np.ndarray:
    """Every finite value of `fmt` in increasing order, +-0 once."""
    return from_ordinal(np.arange(-fmt.max_ordinal, fmt.max_ordinal + 1), fmt)


def underflow_logit(fmt: Format) -> float:
    """-ln(smallest subnormal): the logit below which sigma(z) underflows in `fmt`."""
    return -math.log(fmt.smallest_subnormal)

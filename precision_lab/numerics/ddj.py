"""The float64 reference on a device: `dd`'s double-double kernels traced under JAX.

The same kernels as the host's (`dd`), run with JAX's array operations (`dd.using`),
and `DDJ`, a double-double array with the arithmetic of `mp.Exact`'s double-double
part, so the families' reference formulas run unchanged on a device. Two things
XLA does differently from NumPy, both measured on its CPU backend:

* it contracts a product and a sum into one FMA: Veltkamp's split (t − (t − a) with
  t = (2**27 + 1)·a) then splits wrongly and two_prod loses its exactness. The
  product is kept opaque (its bits XORed with a zero the program only learns at run
  time), which no compiler can fuse through. Elsewhere an FMA only rounds once
  where NumPy rounds twice, within the kernels' 2**-100.
* it flushes subnormal float64 values to zero. The points where a subnormal can
  arise (inputs below 2**-900; logits beyond SUBNORMAL_LOGIT, where the low part of a
  squared tail goes subnormal; values below 2**-960) are left to the host, as are the
  family's untrusted rows (strong cancellation, where the host asks mpmath) and points
  whose value lies within 2**-96 of a float64 rounding boundary (the same).

So every value the device keeps is the correctly rounded float64 of the exact
reference, as the host's is: the two agree bit for bit (tests/test_scale.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
from jax import lax

from . import dd, mp, rounding

TINY_INPUT = 2.0**-900  # inputs nearer zero than this are evaluated on the host
TINY_VALUE = 2.0**-960  # values nearer zero than this (their low part may be subnormal) too
# e^(−2z) · 2**-53 ≥ 2**-1022 up to z = 969 ln 2 / 2 ≈ 335.9: below it the low part of a
# product of two tiny parts (σ(−z)², (e^(−m))²) stays normal
SUBNORMAL_LOGIT = 330.0


class JaxOps:
    """`dd.NumpyOps` under JAX; `zero` is a traced int64 0 (a program argument)."""

    where, abs, rint, ldexp = staticmethod(jnp.where), staticmethod(jnp.abs), staticmethod(jnp.rint), staticmethod(jnp.ldexp)
    clip, isnan, isfinite = staticmethod(jnp.clip), staticmethod(jnp.isnan), staticmethod(jnp.isfinite)
    log1p, zeros_like, inf = staticmethod(jnp.log1p), staticmethod(jnp.zeros_like), np.inf
    frexp, maximum = staticmethod(jnp.frexp), staticmethod(jnp.maximum)

    def __init__(self, zero):
        self.zero = zero

    @staticmethod
    def to_int(k):
        return k.astype(jnp.int64)

    def opaque(self, x):
        return lax.bitcast_convert_type(lax.bitcast_convert_type(x, jnp.int64) ^ self.zero, jnp.float64)


def _parts(x):
    if isinstance(x, DDJ):
        return x.hi, x.lo
    x = jnp.asarray(x, jnp.float64)
    return x, jnp.zeros_like(x)


@jax.tree_util.register_pytree_node_class
class DDJ:
    """A double-double array under JAX: hi + lo. Its arithmetic is `dd.DD`'s (the same
    kernels), its comparisons and selection `mp.Exact`'s, so a reference formula gives
    the same double-double on a device as on the host (up to the FMAs noted above)."""

    __slots__ = ("hi", "lo")
    __array_priority__ = 100

    def __init__(self, hi, lo):
        self.hi, self.lo = hi, lo

    def tree_flatten(self):
        return (self.hi, self.lo), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    @property
    def shape(self):
        return jnp.shape(self.hi)

    def _op(self, fn, other, reflected=False):
        a, b = ((self.hi, self.lo), _parts(other))
        if reflected:
            a, b = b, a
        return DDJ(*fn(*a, *b))

    def __add__(self, o):
        return self._op(dd._add_raw, o)

    def __radd__(self, o):
        return self._op(dd._add_raw, o, True)

    def __sub__(self, o):
        oh, ol = _parts(o)
        return DDJ(*dd._add_raw(self.hi, self.lo, -oh, -ol))

    def __rsub__(self, o):
        oh, ol = _parts(o)
        return DDJ(*dd._add_raw(oh, ol, -self.hi, -self.lo))

    def __mul__(self, o):
        return self._op(dd._mul_raw, o)

    def __rmul__(self, o):
        return self._op(dd._mul_raw, o, True)

    def __truediv__(self, o):
        return self._op(dd._div_raw, o)

    def __rtruediv__(self, o):
        return self._op(dd._div_raw, o, True)

    def __neg__(self):
        return DDJ(-self.hi, -self.lo)

    def __abs__(self):
        neg = self.hi < 0
        return DDJ(jnp.where(neg, -self.hi, self.hi), jnp.where(neg, -self.lo, self.lo))

    def __getitem__(self, idx):
        return DDJ(self.hi[idx], self.lo[idx])

    def _cmp(self, o, op):
        oh, ol = _parts(o)
        h, l = self.hi - oh, self.lo - ol
        return op(jnp.where(h == 0, l, h), 0.0)

    def __eq__(self, o):
        return self._cmp(o, jnp.equal)

    def __ne__(self, o):
        return self._cmp(o, jnp.not_equal)

    def __lt__(self, o):
        return self._cmp(o, jnp.less)

    def __le__(self, o):
        return self._cmp(o, jnp.less_equal)

    def __gt__(self, o):
        return self._cmp(o, jnp.greater)

    def __ge__(self, o):
        return self._cmp(o, jnp.greater_equal)

    __hash__ = None


def where(cond, a, b):
    """`mp.where` on DDJ values (or numbers, or arrays)."""
    if not isinstance(a, DDJ) and not isinstance(b, DDJ):
        return jnp.where(cond, a, b)
    (ah, al), (bh, bl) = _parts(a), _parts(b)
    return DDJ(jnp.where(cond, ah, bh), jnp.where(cond, al, bl))


def constant(value: float) -> DDJ:
    """A float64 constant as a double-double (lo = 0), as `dd.DD(value)` is."""
    return DDJ(jnp.float64(value), jnp.float64(0.0))


def ln(v: int) -> DDJ:
    """ln v as the host's constant: double-double from mpmath at 256 bits."""
    with rounding.EXACT, mpmath.workprec(256):  # one thread at a time (rounding.EXACT)
        exact = mpmath.log(v)
        hi = rounding.to_float64(exact)
        lo = rounding.to_float64(exact - hi)
    return DDJ(jnp.float64(hi), jnp.float64(lo))


def exp(x) -> DDJ:
    return DDJ(*dd._exp_raw(*_parts(x)))


def log1p(x) -> DDJ:
    return DDJ(*dd._log1p_raw(*_parts(x)))


def sigmoid_parts(z) -> tuple[DDJ, DDJ, DDJ, DDJ]:
    out = dd._sigmoid_raw(jnp.asarray(z, jnp.float64))
    return tuple(DDJ(out[i], out[i + 1]) for i in range(0, 8, 2))


def on_device(x64: np.ndarray, untrusted: np.ndarray) -> np.ndarray:
    """Points the device may keep: not untrusted by the family, not nearly zero."""
    return ~untrusted & ~(np.abs(x64) < TINY_INPUT)


def host_rows(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Per point (the leading axis), whether the host must evaluate it: an entry lies
    within 2**-96 of a float64 rounding boundary, or nearer zero than TINY_VALUE."""
    hi, lo = np.asarray(hi), np.asarray(lo)
    bad = mp.near_tie(dd.DD._raw(hi, lo)) | (np.abs(hi) < TINY_VALUE)
    return bad.reshape(len(bad), -1).any(axis=1)



"""The rigorous tier of the exact evaluator: a jaxpr on ball arithmetic (python-flint's arb).

One evaluator serves a user function's reference (tier 2, after the float64
intervals) and the cause walk, which reads every equation's exact inputs and outputs.

Every real value is a ball (midpoint ± radius) that arb guarantees to contain the
exact value, at a working precision; integers and booleans are exact Python values.
Real semantics, where IEEE arithmetic and the reals part ways:

* converting between float types is the identity (exact); to an integer type it
  truncates toward zero, to bool it tests ≠ 0; ``reduce_precision`` is the identity;
* infinite real values are ±∞ (exact arb infinities): x/0 = ±∞ with the sign of
  x ≠ 0, log 0 = −∞, log1p(−1) = −∞, 1/√0 = ∞, 0**negative = ∞, ln|Γ| at a pole = ∞,
  and an operation on ±∞ takes its limit where it has one (exp ∞ = ∞, 1/∞ = 0,
  erf ∞ = 1, ln Γ(∞) = ψ(∞) = ∞);
* ``UNDECIDED`` (structure.py) is an undefined value (0/0, ∞ − ∞, the log of a
  negative number) or one this precision cannot settle: a comparison of overlapping
  balls, a log or square root of a ball that holds 0, a division by one, a
  conversion to an integer across an integer boundary. It propagates through every
  operation, except that select_n drops the branches not taken and a factor that is
  exactly 0 kills it, and ±∞ too (a zero cotangent times ∞ is 0: the gradient of a
  `where` whose untaken branch divides by 0 is the taken branch's).

`evaluate` runs a flattened jaxpr (vmapped, for a batch of points) at a precision
(the rules: ball_rules.py for single operations, ball_structure.py for the rest).
A point is settled when its ball rounds to one value of the format (`rounded`):
callers raise the precision (×4) while it does not, up to a cap. What is settled is
proven (arb's enclosures are rigorous).
"""

from __future__ import annotations

import math

import numpy as np

from . import jaxpr, rounding, structure
from .ball_rules import UNDECIDED, to_balls, unbounded
from .ball_structure import SUPPORTED, apply

__all__ = ["SUPPORTED", "UNDECIDED", "apply", "apply_or_float64", "evaluate", "float64_apply", "ordinal", "precision",
           "rounded", "to_balls", "unbounded", "unsupported"]


def unsupported(flat: jaxpr.Flat) -> list[str]:
    """The primitives of a flattened jaxpr that have no ball rule."""
    return sorted({e.primitive.name for e in flat.eqns} - SUPPORTED)


def precision(prec: int):
    """arb's working precision set to `prec` bits inside the block (one thread at a
    time: `rounding.workprec`)."""
    return rounding.workprec(prec)


def evaluate(flat: jaxpr.Flat, args, prec: int, visit=None, fallback: bool = False) -> list:
    """A flattened jaxpr's outputs on balls at `prec` bits (args: numpy arrays);
    `visit(i, ins, outs)` sees every equation. With `fallback`, a primitive with no
    ball rule is run in float64 instead (`float64_apply`); without, it raises
    UnsupportedPrimitive."""
    with precision(prec):
        return jaxpr.interpret(flat, args, to_balls, apply_or_float64 if fallback else apply, visit)


def apply_or_float64(prim, params: dict, args: list, in_avals) -> list:
    """`apply`, or `float64_apply` for a primitive with no ball rule."""
    return apply(prim, params, args, in_avals) if prim.name in SUPPORTED else float64_apply(prim, params, args,
                                                                                             in_avals)


def float64_apply(prim, params: dict, args: list, in_avals) -> list:
    """A primitive with no ball rule, run by JAX in float64 on its inputs' midpoints
    rounded to float64: an approximation, which callers must flag (an undefined input
    gives NaN, and a NaN result is UNDECIDED)."""
    ops, undecided = [], False
    for a, aval in zip(args, in_avals):
        a = structure.obj(a)
        if jaxpr.format_of(aval.dtype) is not None:
            f = [math.nan if v is UNDECIDED else rounding.arb_to_float64(v) for v in a.ravel()]
            ops.append(np.asarray(f, np.float64).reshape(a.shape))
        else:  # an undecided index or flag makes every result undecided
            undecided |= any(v is UNDECIDED for v in a.ravel())
            ops.append(np.asarray([0 if v is UNDECIDED else v for v in a.ravel()], aval.dtype).reshape(a.shape))
    out = prim.bind(*ops, **params)
    outs = [to_balls(o) for o in (out if prim.multiple_results else [out])]
    return [np.full(o.shape, UNDECIDED, object) for o in outs] if undecided else outs


def ordinal(v, fmt) -> int | None:
    """The ordinal of `fmt` a ball rounds to: `rounded` where the ball settles it, else
    its midpoint's (±(max+1) beyond the range; None where there is no value)."""
    settled = rounded(v, fmt)
    if settled is not None or v is UNDECIDED:
        return settled
    if not v.is_finite():  # ±∞ ([∞ ± r] with a finite r is ∞ itself); an infinite radius has no value
        if unbounded(v):
            return None
        return fmt.max_ordinal + 1 if v.mid() > 0 else -(fmt.max_ordinal + 1)
    return rounding.binary_ordinal(*(int(t) for t in v.mid().man_exp()), fmt)


def rounded(v, fmt) -> int | None:
    """The ordinal of `fmt` that every real of the ball `v` rounds to (±(max+1)
    beyond the range), or None where the ball straddles a rounding boundary or has
    no value."""
    if v is UNDECIDED or isinstance(v, (bool, int)):
        return None if v is UNDECIDED else rounding.binary_ordinal(int(v), 0, fmt)
    if not v.is_finite():
        return None
    with precision(BOUND_PREC):  # the ball's ends, rounded outward, at the precision they need (53 bits would blur them)
        ends = (v.lower(), v.upper())
    lo, hi = (rounding.binary_ordinal(*(int(t) for t in b.man_exp()), fmt) for b in ends)
    return lo if lo == hi else None


BOUND_PREC = 1 << 15  # bits of a ball's ends: beyond any midpoint the ball tier computes

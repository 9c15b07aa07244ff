"""Tier 2 of a user function's reference: its jaxpr on ball arithmetic (python-flint's arb).

Every real value is a ball (midpoint ± radius) that arb guarantees to contain the
exact value, at a working precision; integers and booleans are exact Python values.
The semantics are exact.py's (conversions between floats are the identity, and so
on). What a ball cannot settle at this precision is ``UNDECIDED``: a comparison of
overlapping balls, a log or square root of a ball that holds 0, a division by one,
an undefined real value (arb gives NaN), a conversion to an integer across an integer
boundary. ``UNDECIDED`` propagates like exact.py's POISON: select_n drops the
branches not taken, and a factor that is exactly 0 kills it.

`evaluate` runs a flattened (vmapped) jaxpr on a batch of points at a precision
(the rules: ball_rules.py for single operations, ball_structure.py for the rest);
`settle` raises the precision (×4) while a point's output ball does not round to one
value of the format, up to a cap: what is settled is proven (arb's enclosures are
rigorous); what is not is unresolved.
"""

from __future__ import annotations

from flint import ctx

from . import jaxpr, rounding
from .ball_rules import UNDECIDED, to_balls
from .ball_structure import SUPPORTED, apply

__all__ = ["SUPPORTED", "UNDECIDED", "apply", "evaluate", "rounded", "unsupported"]


def unsupported(flat: jaxpr.Flat) -> list[str]:
    """The primitives of a flattened jaxpr that have no ball rule."""
    return sorted({e.primitive.name for e in flat.eqns} - SUPPORTED)


def evaluate(flat: jaxpr.Flat, args, prec: int) -> list:
    """A flattened jaxpr's outputs on balls at `prec` bits (args: numpy arrays)."""
    old = ctx.prec
    ctx.prec = prec
    try:
        return jaxpr.interpret(flat, args, to_balls, apply)
    finally:
        ctx.prec = old


def rounded(v, fmt) -> int | None:
    """The ordinal of `fmt` that every real of the ball `v` rounds to (±(max+1)
    beyond the range), or None where the ball straddles a rounding boundary or has
    no value."""
    if v is UNDECIDED or isinstance(v, (bool, int)):
        return None if v is UNDECIDED else rounding.binary_ordinal(int(v), 0, fmt)
    if not v.is_finite():
        return None
    old = ctx.prec
    ctx.prec = BOUND_PREC  # the ball's ends, rounded outward, at the precision they need (53 bits would blur them)
    try:
        ends = (v.lower(), v.upper())
    finally:
        ctx.prec = old
    lo, hi = (rounding.binary_ordinal(*(int(t) for t in b.man_exp()), fmt) for b in ends)
    return lo if lo == hi else None


BOUND_PREC = 1 << 15  # bits of a ball's ends: beyond any midpoint the ball tier computes

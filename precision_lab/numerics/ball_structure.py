"""The ball rules of structure (conversions, rounding to integers, sorting, running and
logical reductions, argmax), the limits at ±∞ where arb has no value, and `apply`,
which dispatches a primitive to its rule; the single operations are ball_rules.py's."""

from __future__ import annotations

import fractions
import math
import operator

import numpy as np
from flint import arb

from . import jaxpr, structure
from .ball_rules import (BINARY, SELF, UFUNC, UNARY, UNDECIDED, add, fn, integer_pow, log1p, maximum, minimum, mul, num,
                         infinity, strict, to_balls, trunc, unbounded)


_obj = structure.obj


def _convert(x, new_dtype):
    dt = np.dtype(new_dtype)
    to_bool, to_int = dt == np.bool_, np.issubdtype(dt, np.integer)

    @strict
    def one(v):
        if isinstance(v, (bool, int)):
            return bool(v) if to_bool else (int(v) if to_int else arb(int(v)))
        if to_bool:
            return False if v.is_zero() else (True if not v.contains(0) else UNDECIDED)
        if to_int:
            if not v.is_finite():
                return UNDECIDED
            lo, hi = (trunc(b) for b in (v.lower(), v.upper()))
            return lo if lo == hi else UNDECIDED
        return v

    return _obj(np.frompyfunc(one, 1, 1)(x))


def round_rule(method):
    """round (method 0: halves away from 0; 1: halves to even), where both ends of
    the ball round to one integer."""
    @strict
    def g(a):
        a = num(a)
        if not a.is_finite():
            return UNDECIDED
        ends = []
        for b in (a.lower(), a.upper()):
            q = _fraction(b)
            f = q.numerator // q.denominator
            frac = q - f
            up = frac > 0.5 or (frac == 0.5 and ((f % 2 == 1) if method else q > 0))
            ends.append(f + 1 if up else f)
        return arb(ends[0]) if ends[0] == ends[1] else UNDECIDED

    return g


def _fraction(b: arb) -> fractions.Fraction:
    man, e = b.man_exp()
    man, e = int(man), int(e)
    return fractions.Fraction(man * 2**e) if e >= 0 else fractions.Fraction(man, 2**-e)


def _argmax(x, axes, sign):
    (ax,) = axes
    x = np.moveaxis(x, ax, -1)
    out = np.empty(x.shape[:-1], object)
    for i in np.ndindex(out.shape):
        row = [(num(v) * sign if v is not UNDECIDED else UNDECIDED) for v in x[i]]
        if any(v is UNDECIDED for v in row):
            out[i] = UNDECIDED
            continue
        w = max(range(len(row)), key=lambda j: (float(row[j].mid()), -j))
        out[i] = w if all(j == w or row[w] > row[j] for j in range(len(row))) else UNDECIDED
    return out


def _cumulative(x, axis: int, reverse: bool, f):
    """A running reduction (cumsum, cummax, …) of an object array along `axis`."""
    x = np.moveaxis(np.array(x, object), axis, -1)
    if reverse:
        x = x[..., ::-1]
    out = np.empty(x.shape, object)
    for i in np.ndindex(x.shape[:-1]):
        acc = None
        for j, v in enumerate(x[i]):
            acc = v if j == 0 else f(acc, v)
            out[i + (j,)] = acc
    if reverse:
        out = out[..., ::-1]
    return np.moveaxis(out, -1, axis)


def _logaddexp(a, b):
    m = maximum(a, b)
    if m is UNDECIDED:
        return UNDECIDED
    return add(m, log1p(fn("exp")(-abs(num(a) - num(b)))))


def _sort(args, dimension: int, num_keys: int):
    """sort (stable) of one or more operands by the first `num_keys`: a row's order is
    taken only where every two neighbours are decided (strictly ordered, or equal
    exact values, which keep their positions); else the row is UNDECIDED."""
    ops = [np.moveaxis(np.array(a, object), dimension, -1) for a in args]
    outs = [np.empty(o.shape, object) for o in ops]
    for i in np.ndindex(ops[0].shape[:-1]):
        keys = [[num(v) if v is not UNDECIDED else UNDECIDED for v in o[i]] for o in ops[:num_keys]]
        n = len(keys[0])
        order = sorted(range(n), key=lambda j: tuple(
            (float(k[j].mid()) if isinstance(k[j], arb) else float(k[j] if k[j] is not UNDECIDED else 0)) for k in keys)
            + (j,))
        ok = all(k[j] is not UNDECIDED for k in keys for j in range(n)) and all(
            _ordered([k[a] for k in keys], [k[b] for k in keys]) for a, b in zip(order, order[1:]))
        for o, out in zip(ops, outs):
            out[i] = [o[i][j] for j in order] if ok else [UNDECIDED] * n
    return [np.moveaxis(out, -1, dimension) for out in outs]


def _ordered(a: list, b: list) -> bool:
    """Whether key tuple a certainly sorts before or level with b (decided)."""
    for x, y in zip(a, b):
        if x < y:
            return True
        if not (x == y and (not isinstance(x, arb) or x.is_exact()) and (not isinstance(y, arb) or y.is_exact())):
            return False
    return True


_CUMULATIVE = {"cumsum": add, "cummax": maximum, "cummin": minimum, "cumprod": mul, "cumlogsumexp": _logaddexp}
_LOGICAL_REDUCE = {"reduce_or": (lambda a, b: UNDECIDED if UNDECIDED in (a, b) else a | b, False),
                   "reduce_and": (lambda a, b: UNDECIDED if UNDECIDED in (a, b) else a & b, True)}


_LIMITS = {"add": operator.add, "add_any": operator.add, "sub": operator.sub, "mul": operator.mul,
           "div": operator.truediv, "max": max, "min": min, "neg": operator.neg, "abs": abs, "square": lambda a: a * a,
           "exp": math.exp, "exp2": lambda a: 2.0 ** a, "expm1": math.expm1, "log": math.log, "log1p": math.log1p,
           "sqrt": math.sqrt, "rsqrt": lambda a: 1 / math.sqrt(a), "cosh": math.cosh, "sinh": math.sinh,
           "tanh": math.tanh, "erf": math.erf, "erfc": math.erfc, "logistic": lambda a: 1 / (1 + math.exp(-a))}


def _open(v) -> bool:
    """No value, or a ball arb cannot bound."""
    return v is UNDECIDED or unbounded(v)


def _limits(name, args, out):
    """Where an operand is ±∞ and arb gives no value (erf ∞ is NaN in arb, erfc ∞ too):
    the limit, taken from IEEE arithmetic on float64 where that is 0, ±1 or ±∞ (exact
    values; an undefined one, ∞ − ∞ or 0·∞, stays UNDECIDED)."""
    f = _LIMITS[name]
    args = np.broadcast_arrays(*args)
    out = np.array(np.broadcast_to(out, args[0].shape), object)
    for i in np.ndindex(out.shape):
        v = out[i]
        ins = [a[i] for a in args]
        if not _open(v) or not any(
                x.__class__ is arb and not x.is_finite() and not unbounded(x) for x in ins):
            continue
        if any(x is UNDECIDED for x in ins):
            out[i] = UNDECIDED
            continue
        try:
            r = f(*(float(num(x).mid()) for x in ins))
        except (OverflowError, ValueError, ZeroDivisionError):  # math's way of saying ∞ or undefined
            r = math.nan
        out[i] = (arb(r) if r in (0.0, 1.0, -1.0) else infinity(r) if math.isinf(r) else UNDECIDED)
    return out


def apply(prim, params: dict, args: list, in_avals) -> list:
    """The ball result(s) of one primitive."""
    name = prim.name
    same = len(args) == 2 and args[0] is args[1]  # one value compared with itself
    args = [_obj(a) for a in args]
    if same and name in SELF:  # x ≠ x (a NaN test) is False for every real x, however wide its ball
        out = np.frompyfunc(lambda v: UNDECIDED if v is UNDECIDED else SELF[name], 1, 1)(args[0])
    elif name in UNARY or name in BINARY:
        out = UFUNC[name](*args)
        if name in _LIMITS and any(_open(v) for v in _obj(out).ravel()):
            out = _limits(name, args, out)
    elif name == "integer_pow":
        out = np.frompyfunc(integer_pow(params["y"]), 1, 1)(args[0])
    elif name == "select_n":
        out = structure.select_n(*args)  # a branch not taken is dropped, UNDECIDED or not
    elif name == "convert_element_type":
        out = _convert(args[0], params["new_dtype"])
    elif name == "clamp":
        out = UFUNC["min"](UFUNC["max"](args[1], args[0]), args[2])
    elif name == "iota":
        out = to_balls(structure.iota(**params))
    elif name in ("reduce_sum", "reduce_max", "reduce_min"):
        f = {"reduce_sum": add, "reduce_max": maximum, "reduce_min": minimum}[name]
        out = structure.reduce(args[0], params["axes"], f, arb(0))
    elif name == "reduce_prod":
        out = structure.reduce(args[0], params["axes"], mul, arb(1))
    elif name in _LOGICAL_REDUCE:
        f, empty = _LOGICAL_REDUCE[name]
        out = structure.reduce(args[0], params["axes"], f, empty)
    elif name == "round":
        out = np.frompyfunc(round_rule(int(params["rounding_method"])), 1, 1)(args[0])
    elif name in _CUMULATIVE:
        out = _cumulative(args[0], params["axis"], params["reverse"], _CUMULATIVE[name])
    elif name == "sort":
        out = _sort(args, params["dimension"], params["num_keys"])
    elif name in ("argmax", "argmin"):
        out = _argmax(args[0], params["axes"], 1 if name == "argmax" else -1)
    elif name == "dot_general":
        out = structure.dot_general(*args, **params, mul=mul, add=add, zero=arb(0))
    elif name == "scatter-add":
        out = structure.scatter_add(params, args[0], args[1], args[2], add)
    elif name in jaxpr.MOVES:
        out = structure.move(prim, params, args, in_avals)
    else:
        raise jaxpr.UnsupportedPrimitive(f"The exact evaluator has no rule for primitive `{name}`.")
    return [_obj(o) for o in out] if prim.multiple_results else [_obj(out)]


SUPPORTED = frozenset(set(UNARY) | set(BINARY) | set(jaxpr.MOVES) | {
    "integer_pow", "select_n", "convert_element_type", "clamp", "iota", "reduce_sum", "reduce_max", "reduce_min",
    "reduce_prod", "round", "sort", "argmax", "argmin", "dot_general", "scatter-add"} | set(_CUMULATIVE)
    | set(_LOGICAL_REDUCE))

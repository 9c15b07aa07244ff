"""Tier 1's rule for each primitive: the interval arithmetic of `intervals`, applied
to a flattened jaxpr (see `jaxpr`) by `enclose`."""

from __future__ import annotations

import jax
import numpy as np

from . import jaxpr
from .intervals import (IV, NoRule, _abs, _add, _argmax, _clamp, _compare, _convert, _corners, _cosh, _decreasing,
                        _div, _integer_pow, _logical, _logistic, _monotone, _neg, _pow, _reduce, _reduce_sum,
                        _scatter_add, _select_n, _sign, _sub)


def _move(prim, params, args: list[IV], in_avals):
    """Data movement, run by JAX itself on the bounds and the marks (exact)."""
    data = jaxpr.MOVES[prim.name] or tuple(range(len(args)))
    for i, a in enumerate(args):
        if i not in data and a.bad.any():
            raise NoRule(prim.name)  # an undecided index: leave it to tier 2

    def run(attr, cast=None) -> list[np.ndarray]:
        ops = []
        for i, (a, aval) in enumerate(zip(args, in_avals)):
            v = getattr(a, attr) if i in data else a.lo
            if i in data and cast is not None:
                v = v.astype(cast)
            elif i not in data:
                v = np.asarray(v, aval.dtype)
            ops.append(v)
        p = params
        if prim.name in ("gather", "scatter") and params.get("fill_value") is not None and cast is None:
            p = dict(params, fill_value=np.nan)
        out = prim.bind(*ops, **p)
        return [np.asarray(o) for o in (out if prim.multiple_results else [out])]

    marked = any(args[i].bad.any() for i in data)
    lows = run("lo")
    highs = lows if all(args[i].lo is args[i].hi for i in data) else run("hi")  # exact points: one run
    out = []
    for lo, hi, bad in zip(lows, highs, run("bad", np.float64) if marked else [None] * 99):
        bad = bad != 0 if bad is not None else np.zeros(lo.shape, bool)
        out.append(IV(lo, hi, bad | np.isnan(lo) if lo.dtype.kind == "f" else bad))
    return out


_UNARY = {
    "neg": _neg, "abs": _abs, "sign": _sign,
    "exp": lambda a: _monotone(np.exp, a, clip=(0, np.inf)),
    "exp2": lambda a: _monotone(np.exp2, a, clip=(0, np.inf)),
    "log": lambda a: _monotone(np.log, a, domain=lambda lo, hi: lo > 0),
    "log1p": lambda a: _monotone(np.log1p, a, domain=lambda lo, hi: lo > -1),
    "expm1": lambda a: _monotone(np.expm1, a, clip=(-1, np.inf)),
    "tanh": lambda a: _monotone(np.tanh, a, clip=(-1, 1)),
    "sinh": lambda a: _monotone(np.sinh, a),
    "cosh": lambda a: _cosh(a),
    "logistic": lambda a: _monotone(_logistic, a, clip=(0, 1)),
    "sqrt": lambda a: _monotone(np.sqrt, a, domain=lambda lo, hi: lo >= 0, libm=False),
    "rsqrt": lambda a: _decreasing(lambda x: 1 / np.sqrt(x), a, domain=lambda lo, hi: lo > 0),
    "square": lambda a: _integer_pow(a, 2),
    "stop_gradient": lambda a: a, "copy": lambda a: a, "copy_p": lambda a: a,
    "reduce_precision": lambda a: a,
    "not": _logical(np.logical_not),
    "is_finite": lambda a: IV(np.isfinite(a.lo) & np.isfinite(a.hi), np.isfinite(a.lo) & np.isfinite(a.hi),
                              a.bad | ~(np.isfinite(a.lo) & np.isfinite(a.hi))),
}


try:  # erf is monotone; scipy is optional
    from scipy.special import erf as _erf  # noqa: F401

    _UNARY["erf"] = lambda a: _monotone(_erf, a, clip=(-1, 1))
except ImportError:  # pragma: no cover
    pass


_BINARY = {
    "add": _add, "add_any": _add, "sub": _sub, "mul": lambda a, b: _corners(np.multiply, a, b), "div": _div,
    "pow": _pow,
    "max": lambda a, b: IV(np.maximum(a.lo, b.lo), np.maximum(a.hi, b.hi), a.bad | b.bad,
                           ((a, a.lo >= b.hi), (b, b.lo >= a.hi))),
    "min": lambda a, b: IV(np.minimum(a.lo, b.lo), np.minimum(a.hi, b.hi), a.bad | b.bad,
                           ((a, a.hi <= b.lo), (b, b.hi <= a.lo))),
    "eq": _compare(np.equal), "ne": _compare(np.not_equal), "lt": _compare(np.less),
    "le": _compare(np.less_equal), "gt": _compare(np.greater), "ge": _compare(np.greater_equal),
    "and": _logical(np.logical_and), "or": _logical(np.logical_or), "xor": _logical(np.logical_xor),
}


def _bool_ops(name, args):
    """and/or/not/xor on integers are bitwise."""
    if args[0].lo.dtype.kind in "iu":
        op = {"and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor, "not": np.invert}[name]
        return _logical(op)(*args)
    return None


SELF_COMPARE = {"eq": True, "le": True, "ge": True, "ne": False, "lt": False, "gt": False}


def _aliased(a: IV, b: IV):
    """Where b is a's own real (or a is b's), as a mask; None if neither is an alias."""
    mask = None
    for x, y in ((a, b), (b, a)):
        for target, m in y.alias:
            if target is x:
                mask = m if mask is None else mask | m
    return None if mask is None else np.broadcast_to(mask, np.broadcast_shapes(a.lo.shape, b.lo.shape))


def apply(prim, params: dict, args: list[IV], in_avals) -> list[IV]:
    name = prim.name
    if name in SELF_COMPARE and args[0] is args[1]:  # x ≠ x (a NaN test) is False for every real x
        v = np.full(args[0].lo.shape, SELF_COMPARE[name])
        out = IV(v, v, args[0].bad)
    elif name in SELF_COMPARE and (same := _aliased(*args)) is not None:
        # x against max(x, c) where x is certainly the larger: the same real (autodiff's rule for max)
        r = _BINARY[name](*args)
        v = np.where(same, SELF_COMPARE[name], r.lo)
        out = IV(v, v, np.where(same, args[0].bad | args[1].bad, r.bad))
    elif name in ("and", "or", "xor", "not") and (r := _bool_ops(name, args)) is not None:
        out = r
    elif name in _UNARY:
        out = _UNARY[name](args[0])
    elif name in _BINARY:
        if name in ("add", "sub", "mul", "max", "min") and args[0].lo.dtype.kind in "iu" and \
                args[1].lo.dtype.kind in "iu":
            op = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[name]
            v = op(args[0].lo, args[1].lo)
            out = IV(v, v, args[0].bad | args[1].bad)
        else:
            out = _BINARY[name](*args)
    elif name == "integer_pow":
        out = _integer_pow(args[0], params["y"])
    elif name == "select_n":
        out = _select_n(*args)
    elif name == "convert_element_type":
        out = _convert(args[0], params["new_dtype"])
    elif name == "clamp":
        out = _clamp(*args)
    elif name == "iota":
        out = IV.exact(np.asarray(jax.lax.broadcasted_iota(params["dtype"], params["shape"], params["dimension"])))
    elif name == "reduce_sum":
        out = _reduce_sum(args[0], params["axes"])
    elif name in ("reduce_max", "reduce_min"):
        out = _reduce(np.max if name == "reduce_max" else np.min)(args[0], params["axes"])
    elif name in ("argmax", "argmin"):
        out = _argmax(args[0], params["axes"], params["index_dtype"], 1 if name == "argmax" else -1)
    elif name == "scatter-add":
        out = _scatter_add(params, *args)
    elif name in jaxpr.MOVES:
        outs = _move(prim, params, args, in_avals)
        return outs if prim.multiple_results else outs[:1]
    else:
        raise NoRule(name)
    shape = np.shape(out.lo)
    out.bad = np.broadcast_to(out.bad, shape)
    return [out]


def enclose(flat: jaxpr.Flat, args) -> list[IV]:
    """Tier 1: enclosures of a flattened jaxpr's outputs at concrete `args` (arrays)."""
    return jaxpr.interpret(flat, args, IV.exact, apply)


SUPPORTED = frozenset(set(_UNARY) | set(_BINARY) | set(SELF_COMPARE) | set(jaxpr.MOVES) | {
    "and", "or", "xor", "not", "integer_pow", "select_n", "convert_element_type", "clamp", "iota", "reduce_sum",
    "reduce_max", "reduce_min", "argmax", "argmin", "scatter-add"})

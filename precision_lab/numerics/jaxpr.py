"""Jaxprs as lists of real operations: calls inlined, each equation with its source line.

A closed jaxpr is *flattened*: calls (jit, custom_jvp_call, custom_vjp_call, remat,
closed_call) are inlined, a custom derivative by its primal function, so that what
remains is a list of real operations, each with its source line and the names of
the calls it sits in. The same list serves every evaluator (the exact one, the
interval and ball tiers, the format evaluation of the walk): `interpret` runs it in
any arithmetic.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from jax import lax
from jax.extend import core as jcore
import jax.numpy as jnp


class UnsupportedPrimitive(NotImplementedError):
    """The exact evaluator has no rule for a primitive."""


# ------------------------------------------------------------------ flattening

CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
         "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr",
         "remat": "jaxpr", "remat2": "jaxpr", "checkpoint": "jaxpr"}


@dataclasses.dataclass
class Eqn:
    """One real operation of a flattened jaxpr. Inputs are variable ids (ints) or
    `Lit` constants; outputs are variable ids (None for a dropped output)."""

    primitive: object
    params: dict
    ins: list
    outs: list
    in_avals: list
    out_avals: list
    source: str  # "file:line (function)"
    scope: str  # enclosing calls, outermost first, "/"-separated ("" at top level)
    traceback: object = None  # the equation's own traceback (jax source info), to re-bind it with


@dataclasses.dataclass
class Lit:
    val: object


@dataclasses.dataclass
class Flat:
    eqns: list[Eqn]
    inputs: list[int]
    outputs: list  # ids or Lit
    consts: dict  # id -> constant value (traced constants)


def _source(eqn, outer: str) -> str:
    """The user's line of an equation; inside library code, the line of the call it sits in."""
    from jax._src import source_info_util as siu

    frame = siu.user_frame(eqn.source_info.traceback)
    if frame is None:
        return outer
    return f"{frame.file_name.rsplit('/', 1)[-1]}:{frame.start_line} ({frame.function_name})"


def flatten(closed) -> Flat:
    """Inline every call of the closed jaxpr `closed`: a list of primitive equations."""
    counter = iter(range(1 << 62))
    consts: dict = {}
    eqns: list[Eqn] = []

    def run(jaxpr, const_vals, in_refs, scope, outer_source):
        env = {}
        for v, c in zip(jaxpr.constvars, const_vals):
            env[v] = next(counter)
            consts[env[v]] = c
        for v, r in zip(jaxpr.invars, in_refs):
            env[v] = r
        ref = lambda a: Lit(a.val) if isinstance(a, jcore.Literal) else env[a]  # noqa: E731
        for e in jaxpr.eqns:
            name = e.primitive.name
            ins = [ref(a) for a in e.invars]
            if name in CALLS:
                sub = e.params[CALLS[name]]
                sub_jaxpr, sub_consts = (sub.jaxpr, sub.consts) if hasattr(sub, "consts") else (sub, ())
                label = e.params.get("name", name)
                outs = run(sub_jaxpr, sub_consts, ins, f"{scope}/{label}" if scope else str(label),
                           _source(e, outer_source))
                for v, r in zip(e.outvars, outs):
                    env[v] = r
                continue
            outs = []
            for v in e.outvars:
                outs.append(None if isinstance(v, jcore.DropVar) else next(counter))
                if outs[-1] is not None:
                    env[v] = outs[-1]
            eqns.append(Eqn(e.primitive, dict(e.params), ins, outs, [a.aval for a in e.invars],
                            [v.aval for v in e.outvars], _source(e, outer_source), scope,
                            e.source_info.traceback))
        return [ref(a) for a in jaxpr.outvars]

    inputs = [next(counter) for _ in closed.jaxpr.invars]
    outputs = run(closed.jaxpr, closed.consts, inputs, "", "?")
    return Flat(eqns, inputs, outputs, consts)


def interpret(flat: Flat, args, value, rule, visit=None) -> list:
    """Run a flattened jaxpr in some arithmetic: `value(array)` makes an input or
    constant a value of it, `rule(primitive, params, ins, in_avals)` applies an
    equation (a list of outputs); `visit(i, ins, outs)` sees every equation. The one
    interpreter of the exact evaluator, the ball tier and the interval tier."""
    env = {k: value(v) for k, v in flat.consts.items()}
    env.update({k: value(v) for k, v in zip(flat.inputs, args)})
    get = lambda r: value(r.val) if isinstance(r, Lit) else env[r]  # noqa: E731
    for i, e in enumerate(flat.eqns):
        ins = [get(r) for r in e.ins]
        outs = rule(e.primitive, e.params, ins, e.in_avals)
        for r, v in zip(e.outs, outs):
            if r is not None:
                env[r] = v
        if visit is not None:
            visit(i, ins, outs)
    return [get(r) for r in flat.outputs]


def scatter_targets(params, operand_shape, indices, updates_shape) -> np.ndarray:
    """For a scatter (scatter-add) with these parameters, the flat operand position each
    update entry lands on (−1 where it is dropped, out of bounds): a gather of the
    operand's position ids with the transposed dimension numbers, run by JAX."""
    dn = params["dimension_numbers"]
    window = iter(updates_shape[d] for d in dn.update_window_dims)
    slice_sizes = tuple(1 if (i in dn.inserted_window_dims or i in dn.operand_batching_dims) else next(window)
                        for i in range(len(operand_shape)))
    gdn = lax.GatherDimensionNumbers(offset_dims=tuple(dn.update_window_dims),
                                     collapsed_slice_dims=tuple(dn.inserted_window_dims),
                                     start_index_map=tuple(dn.scatter_dims_to_operand_dims),
                                     operand_batching_dims=tuple(dn.operand_batching_dims),
                                     start_indices_batching_dims=tuple(dn.scatter_indices_batching_dims))
    ids = jnp.arange(int(np.prod(operand_shape)), dtype=jnp.int64).reshape(operand_shape)
    pos = lax.gather(ids, jnp.asarray(indices), gdn, slice_sizes, mode=lax.GatherScatterMode.FILL_OR_DROP,
                     fill_value=-1)
    return np.asarray(pos).reshape(updates_shape)


@functools.cache
def _formats_by_dtype():
    from . import formats

    return {f.dtype: f for f in formats.FORMATS.values()}


def format_of(dtype):
    """The precision_lab Format of a float dtype (None for ints and bools)."""
    return _formats_by_dtype().get(np.dtype(dtype))


# Primitives that only move data: which operands are data (the others are indices).
MOVES = {"broadcast_in_dim": (0,), "reshape": (0,), "squeeze": (0,), "expand_dims": (0,),
          "transpose": (0,), "rev": (0,), "concatenate": None, "pad": (0, 1), "slice": (0,),
          "dynamic_slice": (0,), "dynamic_update_slice": (0, 1), "gather": (0,), "scatter": (0, 2),
          "stack": None, "unstack": (0,)}

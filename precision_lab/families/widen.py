"""A user's loss with some of its operations computed in a wider format, as a user's
edit would do it: the operations chosen take their operands cast up, values passed
between widened operations stay wide, and a value is cast back to the narrow format
only where a narrow operation uses it, or at the result. The gradient is
``jax.grad`` of that function: autodiff through the casts, so the backward pass of a
widened operation is wide too, as it is after an edit.

`units(fn, *args)` lists the candidates: the operations of the loss's jaxpr by source
line (calls to ``jit`` are inlined). A custom-derivative call (``custom_jvp``,
``custom_vjp``: ``jax.nn.softplus``, ``logsumexp``, …) is kept whole, so its rule
still runs: it is one unit, named by its call, and stays in the narrow format (its
rule's internal casts cannot be edited from outside).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from ..numerics import jaxpr

INLINED = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
           "remat": "jaxpr", "remat2": "jaxpr", "checkpoint": "jaxpr"}
KEPT_WHOLE = ("custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr")


@dataclasses.dataclass(frozen=True)
class Unit:
    """A candidate: a source line and the primitives of the loss on it."""

    source: str  # "file:line"
    primitives: tuple[str, ...]
    widenable: bool = True  # False: a custom-derivative call, kept whole and narrow

    def to_json(self) -> dict:
        return {"source": self.source, "primitives": list(self.primitives), "widenable": self.widenable}


def _eqns(closed, outer="?"):
    """(equation, its source "file:line") of `closed`, jit calls inlined, custom calls whole."""
    for e in closed.jaxpr.eqns if hasattr(closed, "jaxpr") else closed.eqns:
        src = jaxpr._source(e, outer).split(" ")[0]
        if e.primitive.name in INLINED:
            yield from _eqns(e.params[INLINED[e.primitive.name]], src)
        else:
            yield e, src


def units(fn: Callable, *args) -> list[Unit]:
    """The loss's candidate units, in the order of their first operation."""
    found: dict = {}
    for e, src in _eqns(jax.make_jaxpr(fn)(*args)):
        whole = e.primitive.name in KEPT_WHOLE
        key = (src, whole)
        name = e.params.get("name", e.primitive.name) if whole else e.primitive.name
        found.setdefault(key, [])
        if name not in found[key]:
            found[key].append(name)
    return [Unit(src, tuple(prims), not whole) for (src, whole), prims in found.items()]


def widened(fn: Callable, pick: Callable[[str, str], bool], wide, name: str | None = None) -> Callable:
    """`fn` with each operation for which ``pick(source, primitive)`` holds computed in
    `wide` (see the module docstring)."""
    wide = jnp.dtype(wide)

    def run(*args):
        closed = jax.make_jaxpr(fn)(*args)
        out = _interpret(closed.jaxpr, closed.consts, list(args), "?", pick, wide)
        (res,) = out
        return res

    functools.update_wrapper(run, fn)
    run.__name__ = name or f"{getattr(fn, '__name__', 'fn')}+wide"
    return run


def _bind(primitive, args, params) -> list:
    """The primitive applied as jax.core.eval_jaxpr applies it (a call primitive's
    parameters as it binds them); its outputs as a list."""
    outs = primitive.bind(*args, **primitive.get_bind_params(params))
    return list(outs) if primitive.multiple_results else [outs]


def _floating(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _interpret(jx, consts, ins, outer, pick, wide, top: bool = True):
    env = {}
    for v, c in zip(jx.constvars, consts):
        env[v] = c
    for v, x in zip(jx.invars, ins):
        env[v] = x

    def read(a):
        return jnp.asarray(a.val, a.aval.dtype) if isinstance(a, jcore.Literal) else env[a]

    def narrow(x, aval):  # a wide value where the narrow program has `aval`
        return x.astype(aval.dtype) if _floating(x) and jnp.result_type(x) != aval.dtype else x

    for e in jx.eqns:
        src = jaxpr._source(e, outer).split(" ")[0]
        name = e.primitive.name
        vals = [read(a) for a in e.invars]
        if name in INLINED:
            sub = e.params[INLINED[name]]
            sub_jaxpr, sub_consts = (sub.jaxpr, sub.consts) if hasattr(sub, "consts") else (sub, ())
            outs = _interpret(sub_jaxpr, sub_consts, vals, src, pick, wide, top=False)
        elif name not in KEPT_WHOLE and pick(src, name):
            # operands cast up; a weak-typed constant (a Python number) takes the wide type,
            # as it would in the edited code
            up = [jnp.asarray(v).astype(wide) if _floating(v) and (getattr(a.aval, "weak_type", False) or
                                                                   jnp.dtype(jnp.result_type(v)).itemsize
                                                                   < wide.itemsize) else v
                  for v, a in zip(vals, e.invars)]
            if name == "convert_element_type" and _floating(up[0]) and jnp.issubdtype(e.params["new_dtype"],
                                                                                        jnp.floating):
                # a cast inside the widened code: to the wide type (a cast down to the narrow
                # format is what the edit removes)
                outs = [up[0].astype(wide) if jnp.dtype(jnp.result_type(up[0])).itemsize < wide.itemsize
                        or jnp.dtype(e.params["new_dtype"]).itemsize <= wide.itemsize else up[0]]
            else:
                params = dict(e.params)
                if params.get("preferred_element_type") is not None:
                    params["preferred_element_type"] = None
                outs = _bind(e.primitive, up, params)
        else:
            outs = _bind(e.primitive, [narrow(v, a.aval) for v, a in zip(vals, e.invars)], e.params)
        for v, x in zip(e.outvars, outs):
            if not isinstance(v, jcore.DropVar):
                env[v] = x
    # the result in the narrow format; an inlined call's outputs stay as computed
    return [narrow(read(a), a.aval) if top else read(a) for a in jx.outvars]

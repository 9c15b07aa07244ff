"""Known unstable patterns in a user's loss, and the rewrites people apply.

`find(fn, x, label)` traces `fn` (a loss, ``fn(x, label)``), flattens its jaxpr and
matches, on the graph of its equations (seeing through conversions and broadcasts):

* ``log(sigmoid(a))`` → ``jax.nn.log_sigmoid(a)``;
* ``1 − sigmoid(a)`` → ``sigmoid(−a)``, so ``log(1 − sigmoid(a))`` → ``log_sigmoid(−a)``;
* ``(1 − sigmoid(a))**γ`` or ``sigmoid(a)**γ`` → ``exp(γ · log_sigmoid(∓a))``;
* ``log(Σ exp(a))`` → ``logsumexp(a)``;
* ``exp(a) / Σ exp(a)`` → ``softmax(a)``, and a log of it (or of entries picked from
  it) → ``log_softmax(a)``.

Each match is a `Rewrite` (its pattern, replacement and source line). `fixed(fn,
rewrites)` is the function with every rewrite applied: it re-traces `fn` at its
arguments' types and evaluates the flattened jaxpr with JAX, the matched equations
replaced, so it jits, vmaps and differentiates like the original (custom derivatives
inside it are inlined by their primal functions, as in the walk). The sweep checks it
as form ``NAME+fix``: a fix is suggested only with its measured before and after.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..numerics import jaxpr

MOVES = ("gather", "dynamic_slice", "slice", "squeeze", "reshape", "broadcast_in_dim", "convert_element_type")


@dataclasses.dataclass(frozen=True)
class Rewrite:
    index: int  # the equation replaced
    pattern: str
    replacement: str
    source: str
    build: Callable  # (get) -> the replacement's value, get(ref) the value of an input of the graph
    uses: tuple = ()  # the graph's values the replacement reads

    def to_json(self) -> dict:
        return {"pattern": self.pattern, "replacement": self.replacement, "source": self.source}


class _Graph:
    def __init__(self, flat: jaxpr.Flat):
        self.flat = flat
        self.producer = {o: i for i, e in enumerate(flat.eqns) for o in e.outs if o is not None}

    def eqn(self, ref):
        if isinstance(ref, jaxpr.Lit) or ref not in self.producer:
            return None
        return self.flat.eqns[self.producer[ref]]

    def strip(self, ref, through=("convert_element_type", "broadcast_in_dim")):
        """The value under conversions (and broadcasts)."""
        e = self.eqn(ref)
        while e is not None and e.primitive.name in through:
            ref = e.ins[0]
            e = self.eqn(ref)
        return ref

    def const(self, ref) -> float | None:
        ref = self.strip(ref)
        if isinstance(ref, jaxpr.Lit):
            v = np.asarray(ref.val)
        elif ref in self.flat.consts:
            v = np.asarray(self.flat.consts[ref])
        else:
            return None
        return float(v.ravel()[0]) if v.size and np.all(v == v.ravel()[0]) else None

    def op(self, ref, name):
        e = self.eqn(self.strip(ref, ("convert_element_type",)))
        return e if e is not None and e.primitive.name == name else None

    def sigmoid_of(self, ref):
        """(sign, a) if `ref` is sigmoid(a) (sign +1) or 1 − sigmoid(a) (sign −1)."""
        e = self.op(ref, "logistic")
        if e is not None:
            return 1, e.ins[0]
        e = self.op(ref, "sub")
        if e is not None and self.const(e.ins[0]) == 1.0 and (s := self.op(e.ins[1], "logistic")) is not None:
            return -1, s.ins[0]
        return None

    def exp_sum_of(self, ref):
        """(a, axes) if `ref` is Σ exp(a) over `axes`."""
        e = self.op(ref, "reduce_sum")
        if e is None:
            return None
        x = self.op(e.ins[0], "exp")
        return None if x is None else (x.ins[0], tuple(e.params["axes"]))

    def softmax_of(self, ref):
        """a if `ref` is exp(a) / Σ exp(a) (one axis)."""
        e = self.op(ref, "div")
        if e is None:
            return None
        num = self.op(e.ins[0], "exp")
        den = self.exp_sum_of(self.strip(e.ins[1]))
        if num is None or den is None or self.strip(den[0]) != self.strip(num.ins[0]) or len(den[1]) != 1:
            return None
        return num.ins[0], den[1][0]


def _signed(get, a, sign):
    x = get(a)
    return x if sign > 0 else -x


def find(fn: Callable, *args) -> list[Rewrite]:
    """The known unstable patterns in `fn(*args)` (args: arrays or ShapeDtypeStructs)."""
    flat = jaxpr.flatten(jax.make_jaxpr(fn)(*args))
    return _match(flat)


def _match(flat: jaxpr.Flat) -> list[Rewrite]:
    g = _Graph(flat)
    out = []
    for i, e in enumerate(flat.eqns):
        name, r = e.primitive.name, None
        if name == "log" and (s := g.sigmoid_of(e.ins[0])) is not None:
            sign, a = s
            pattern = "log(sigmoid(x))" if sign > 0 else "log(1 − sigmoid(x))"
            r = (pattern, "jax.nn.log_sigmoid(x)" if sign > 0 else "jax.nn.log_sigmoid(−x)",
                 lambda get, a=a, sign=sign: jax.nn.log_sigmoid(_signed(get, a, sign)), (a,))
        elif name in ("pow", "integer_pow") and (s := g.sigmoid_of(e.ins[0])) is not None:
            sign, a = s
            base = "sigmoid(x)" if sign > 0 else "(1 − sigmoid(x))"
            gamma = ((lambda get, r=e.ins[1], av=e.in_avals[1]: get(r, av)) if name == "pow"
                     else (lambda get, y=e.params["y"]: y))
            r = (f"{base}**γ", f"exp(γ · log_sigmoid({'x' if sign > 0 else '−x'}))",
                 lambda get, a=a, sign=sign, gamma=gamma: jnp.exp(gamma(get) * jax.nn.log_sigmoid(_signed(get, a, sign))),
                 (a, *e.ins[1:]))
        elif name == "sub" and (s := g.sigmoid_of(e.outs[0])) is not None and s[0] < 0:
            a = s[1]
            r = ("1 − sigmoid(x)", "jax.nn.sigmoid(−x)", lambda get, a=a: jax.nn.sigmoid(-get(a)), (a,))
        elif name == "log" and (s := g.exp_sum_of(e.ins[0])) is not None:
            a, axes = s
            r = ("log(Σ exp(x))", "jax.nn.logsumexp(x)",
                 lambda get, a=a, axes=axes: jax.nn.logsumexp(get(a), axis=axes), (a,))
        elif name == "log":
            # log of a softmax, or of entries picked from it: log_softmax, picked the same way
            chain, ref = [], e.ins[0]
            while (m := g.eqn(ref)) is not None and m.primitive.name in MOVES and g.softmax_of(ref) is None:
                chain.append(m)
                ref = m.ins[0]
            if (s := g.softmax_of(ref)) is not None:
                a, axis = s
                r = ("log(exp(x) / Σ exp(x))", "jax.nn.log_softmax(x)",
                     lambda get, a=a, axis=axis, chain=tuple(reversed(chain)): _moved(
                         jax.nn.log_softmax(get(a), axis=axis), chain, get),
                     (a, *(x for m in chain for x in m.ins[1:])))
        elif name == "div" and (s := g.softmax_of(e.outs[0])) is not None:
            a, axis = s
            r = ("exp(x) / Σ exp(x)", "jax.nn.softmax(x)",
                 lambda get, a=a, axis=axis: jax.nn.softmax(get(a), axis=axis), (a,))
        if r is not None:
            out.append(Rewrite(i, r[0], r[1], e.source, r[2], r[3]))
    return _live(flat, out)


def _live(flat: jaxpr.Flat, rewrites: list[Rewrite]) -> list[Rewrite]:
    """The rewrites whose result the rewritten program still reads (log(1 − σ(x)) →
    log_sigmoid(−x) leaves 1 − σ(x) unread: its own rewrite is not listed)."""
    by = {r.index: r for r in rewrites}
    live = {r for r in flat.outputs if not isinstance(r, jaxpr.Lit)}
    for i in range(len(flat.eqns) - 1, -1, -1):
        e = flat.eqns[i]
        if not any(o in live for o in e.outs if o is not None):
            by.pop(i, None)
            continue
        live.update(x for x in (by[i].uses if i in by else e.ins) if not isinstance(x, jaxpr.Lit))
    return [r for r in rewrites if r.index in by]


def _moved(value, chain, get):
    """`value` through the data movements of `chain` (their other operands from `get`)."""
    for m in chain:
        value = m.primitive.bind(value, *[get(x) for x in m.ins[1:]], **m.params)
    return value


def fixed(fn: Callable, only: frozenset | None = None, name: str | None = None) -> Callable:
    """`fn` with the known rewrites applied: all of them, or those whose (pattern,
    source) is in `only`."""

    def run(*args):
        flat = jaxpr.flatten(jax.make_jaxpr(fn)(*args))
        rewrites = {r.index: r for r in _match(flat) if only is None or (r.pattern, r.source) in only}
        env = dict(zip(flat.inputs, args)) | {k: jnp.asarray(v) for k, v in flat.consts.items()}

        def get(ref, aval=None):
            if isinstance(ref, jaxpr.Lit):
                return jnp.asarray(ref.val, aval.dtype if aval is not None else None)
            return env[ref]

        from jax._src import source_info_util as siu

        for i, e in enumerate(flat.eqns):
            with siu.user_context(e.traceback):  # the rewritten program names the user's lines, not ours
                if i in rewrites:
                    out = rewrites[i].build(get)
                    env[e.outs[0]] = jnp.asarray(out).astype(e.out_avals[0].dtype).reshape(e.out_avals[0].shape)
                    continue
                ins = [get(r, a) for r, a in zip(e.ins, e.in_avals)]
                outs = e.primitive.bind(*ins, **e.params)
            for r, v in zip(e.outs, outs if e.primitive.multiple_results else [outs]):
                if r is not None:
                    env[r] = v
        (res,) = [get(r) for r in flat.outputs]
        return res

    functools.update_wrapper(run, fn)
    run.__name__ = name or f"{getattr(fn, '__name__', 'fn')}+fix"
    return run

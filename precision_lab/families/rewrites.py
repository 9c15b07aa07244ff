"""Known unstable patterns in a user's loss, and the rewrites people apply.

`find(fn, x, label)` traces `fn` (a loss, ``fn(x, label)``), flattens its jaxpr and
matches, on the graph of its equations (seeing through conversions and broadcasts):

* ``log(sigmoid(a))`` → ``jax.nn.log_sigmoid(a)``;
* ``1 − sigmoid(a)`` → ``sigmoid(−a)``, so ``log(1 − sigmoid(a))`` → ``log_sigmoid(−a)``;
* ``(1 − sigmoid(a))**γ`` or ``sigmoid(a)**γ`` → ``exp(γ · log_sigmoid(∓a))``;
* ``log(Σ exp(a))`` → ``logsumexp(a)``;
* ``exp(a) / Σ exp(a)`` → ``softmax(a)``, and a log of it (or of entries picked from
  it) → ``log_softmax(a)``;
* a mix of probabilities ``p_t = w·σ(a) + v·(1 − σ(a))`` (the focal loss's, with
  w = y, v = 1 − y): ``log p_t`` → ``logaddexp(log w + log_sigmoid(a), log v +
  log_sigmoid(−a))``, ``1 − p_t`` likewise with 1 − w and 1 − v, and powers of
  either → ``exp(γ · log …)``: an identity on the reals for weights in [0, 1];
* ``log(cosh(a))`` → ``log1p(2·sinh(a/2)²)`` for |a| < 1, else ``|a| + log1p(exp(−2|a|)) −
  log 2`` (no overflow, no cancellation near 0); ``log(1 + exp(a))`` and
  ``log1p(exp(a))`` → ``softplus(a)``;
* a log of a *clipped* probability, ``log(clip(σ(a), lo, hi))`` (or of 1 minus it)
  → ``log_sigmoid(±a)``: the logit form. This one changes the function (the clip
  goes), so its rows are measured against their own exact values, not the
  original's (`Rewrite.same`).

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
import math
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
    same: bool = True  # the same real function (else: it changes what the code means, e.g. a clip goes)
    exact: bool = True  # an identity the exact tiers can use where the original cancels (no log 0 of a weight)

    def to_json(self) -> dict:
        return {"pattern": self.pattern, "replacement": self.replacement, "source": self.source,
                "same_function": self.same}


@dataclasses.dataclass(frozen=True)
class _Log:
    """A stable log of a probability the graph computes: `text` names the value,
    `log` its stable log, `build(get)` computes it; `uses`, `same`, `exact` as in
    Rewrite."""

    text: str
    log: str
    build: Callable
    uses: tuple
    same: bool = True
    exact: bool = True


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

    def unclip(self, ref):
        """The value under a clip to constant bounds (max or min with a constant, clamp),
        or None where `ref` is not clipped."""
        seen = False
        while (e := self.eqn(self.strip(ref, ("convert_element_type",)))) is not None:
            name = e.primitive.name
            if name in ("max", "min") and any(self.const(x) is not None for x in e.ins):
                ref = e.ins[1] if self.const(e.ins[0]) is not None else e.ins[0]
            elif name == "clamp" and self.const(e.ins[0]) is not None and self.const(e.ins[2]) is not None:
                ref = e.ins[1]
            else:
                break
            seen = True
        return ref if seen else None

    def _weighted(self, ref):
        """(weight, sign, a) if `ref` is weight · σ(±a) (σ(a) or 1 − σ(a))."""
        e = self.op(ref, "mul")
        if e is None:
            return None
        for i in (0, 1):
            if (s := self.sigmoid_of(e.ins[i])) is not None:
                return e.ins[1 - i], s[0], s[1]
        return None

    def mix_of(self, ref):
        """(w, v, a) if `ref` is w·σ(a) + v·(1 − σ(a)), terms and factors in any order."""
        e = self.op(ref, "add")
        if e is None:
            return None
        terms = [self._weighted(x) for x in e.ins]
        if None in terms or terms[0][1] == terms[1][1] or self.strip(terms[0][2]) != self.strip(terms[1][2]):
            return None
        (w1, s1, a), (w2, _, _) = terms
        return (w1, w2, a) if s1 > 0 else (w2, w1, a)

    def log_of(self, ref) -> _Log | None:
        """A stable log of `ref` where it is a probability written as σ, 1 − σ, a clip
        of either, or a mix of them (or 1 minus a mix)."""
        if (s := self.sigmoid_of(ref)) is not None:
            sign, a = s
            return _Log("sigmoid(x)" if sign > 0 else "1 − sigmoid(x)", "log_sigmoid(x)" if sign > 0 else
                        "log_sigmoid(−x)", lambda get, a=a, sign=sign: jax.nn.log_sigmoid(_signed(get, a, sign)),
                        (a,))
        e = self.op(ref, "sub")
        inner, sign = (ref, 1) if e is None or self.const(e.ins[0]) != 1.0 else (e.ins[1], -1)
        if (c := self.unclip(inner)) is not None and (s := self.sigmoid_of(c)) is not None:
            sign, a = sign * s[0], s[1]
            return _Log("clip(sigmoid(x))" if sign > 0 else "1 − clip(sigmoid(x))",
                        "log_sigmoid(x)" if sign > 0 else "log_sigmoid(−x)",
                        lambda get, a=a, sign=sign: jax.nn.log_sigmoid(_signed(get, a, sign)), (a,), False, False)
        if (m := self.mix_of(inner)) is not None:
            w, v, a = m
            if sign > 0:
                text, log = "w·sigmoid(x) + v·(1 − sigmoid(x))", "logaddexp(log w + log_sigmoid(x), log v + " \
                            "log_sigmoid(−x))"
                ww, vv = (lambda get, w=w: get(w)), (lambda get, v=v: get(v))
            else:
                text, log = "1 − (w·sigmoid(x) + v·(1 − sigmoid(x)))", "logaddexp(log(1 − w) + log_sigmoid(x), " \
                            "log(1 − v) + log_sigmoid(−x))"
                ww, vv = (lambda get, w=w: 1 - get(w)), (lambda get, v=v: 1 - get(v))
            return _Log(text, log, lambda get, a=a, ww=ww, vv=vv: jnp.logaddexp(
                jnp.log(ww(get)) + jax.nn.log_sigmoid(get(a)), jnp.log(vv(get)) + jax.nn.log_sigmoid(-get(a))),
                (w, v, a), True, False)
        return None

    def softplus_of(self, ref, name):
        """a if `ref` (the argument of log, or of log1p) makes log(1 + exp(a)) or
        log1p(exp(a))."""
        if name == "log1p":
            x = self.op(ref, "exp")
            if x is None or ((n := self.op(x.ins[0], "neg")) is not None and self.op(n.ins[0], "abs") is not None):
                return None  # log1p(exp(−|d|)): already the stable form (logaddexp's own)
            return x.ins[0]
        e = self.op(ref, "add")
        if e is None:
            return None
        for i in (0, 1):
            if self.const(e.ins[i]) == 1.0 and (x := self.op(e.ins[1 - i], "exp")) is not None:
                return x.ins[0]
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


def _log_cosh(x):
    """log(cosh(x)) without overflow (large |x|) or cancellation (small |x|): each branch
    is exact on the reals where it is used, and each gets an input it cannot overflow
    on (so the other's gradient is never ∞ · 0)."""
    a = jnp.abs(x)
    small = a < 1
    s = jnp.sinh(jnp.where(small, x, 0) / 2)
    large = jnp.where(small, 1, a)
    return jnp.where(small, jnp.log1p(2 * s * s), large + jnp.log1p(jnp.exp(-2 * large)) - math.log(2.0))


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
        if name == "log" and (lg := g.log_of(e.ins[0])) is not None:
            r = (f"log({lg.text})", f"jax.nn.{lg.log}" if lg.log.startswith("log_sigmoid") else lg.log, lg.build,
                 lg.uses, lg.same, lg.exact)
        elif name in ("pow", "integer_pow") and (lg := g.log_of(e.ins[0])) is not None:
            base = lg.text if lg.text == "sigmoid(x)" else f"({lg.text})"
            gamma = ((lambda get, r=e.ins[1], av=e.in_avals[1]: get(r, av)) if name == "pow"
                     else (lambda get, y=e.params["y"]: y))
            r = (f"{base}**γ", f"exp(γ · {lg.log})",
                 lambda get, lg=lg, gamma=gamma: jnp.exp(gamma(get) * lg.build(get)), (*lg.uses, *e.ins[1:]),
                 lg.same, lg.exact)
        elif name == "log" and (x := g.op(e.ins[0], "cosh")) is not None:
            r = ("log(cosh(x))", "log1p(2·sinh(x/2)²) for |x| < 1, else |x| + log1p(exp(−2|x|)) − log 2",
                 lambda get, a=x.ins[0]: _log_cosh(get(a)), (x.ins[0],))
        elif name in ("log", "log1p") and (x := g.softplus_of(e.ins[0], name)) is not None:
            r = (f"{name}({'1 + ' if name == 'log' else ''}exp(x))", "jax.nn.softplus(x)",
                 lambda get, a=x: jax.nn.softplus(get(a)), (x,))
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
            out.append(Rewrite(i, r[0], r[1], e.source, *r[2:]))
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


def clips(flat: jaxpr.Flat) -> list[Rewrite]:
    """The clips of `flat` to constant bounds, each as the rewrite that passes its
    operand through: the function without its clips. A clip is a clamp, a max or min
    inside ``jnp.clip``, or a max or min with a non-zero constant (a guard such as
    ``maximum(p, 1e-7)``); ``maximum(z, 0)`` is a piece of a formula (a ReLU, a stable
    softplus), not a clip."""
    g = _Graph(flat)
    out = []
    for i, e in enumerate(flat.eqns):
        name, keep = e.primitive.name, None
        if name in ("max", "min") and len(e.ins) == 2:
            const = [g.const(x) for x in e.ins]
            if (const[0] is None) != (const[1] is None):
                bound = const[0] if const[1] is None else const[1]
                if bound != 0 or "clip" in e.scope.split("/"):
                    keep = e.ins[1] if const[0] is not None else e.ins[0]
        elif name == "clamp" and g.const(e.ins[0]) is not None and g.const(e.ins[2]) is not None:
            keep = e.ins[1]
        if keep is not None:
            out.append(Rewrite(i, f"{'clip' if name == 'clamp' else name} to a constant", "its operand", e.source,
                               lambda get, keep=keep: get(keep), (keep,), False, False))
    return out


def fixed(fn: Callable, only: frozenset | None = None, name: str | None = None, identities: bool = False,
          finder: Callable = None) -> Callable:
    """`fn` with the known rewrites applied: all of them, or those whose (pattern,
    source) is in `only`; with `identities`, only those that are the same real
    function and that the exact tiers can evaluate (for a reference). `finder`: what
    to rewrite instead of the known patterns (e.g. `clips`)."""

    def run(*args):
        flat = jaxpr.flatten(jax.make_jaxpr(fn)(*args))
        rewrites = {r.index: r for r in (finder or _match)(flat) if (only is None or (r.pattern, r.source) in only)
                    and (not identities or (r.same and r.exact))}
        env = dict(zip(flat.inputs, args)) | {k: jnp.asarray(v) for k, v in flat.consts.items()}

        def get(ref, aval=None):
            if isinstance(ref, jaxpr.Lit):
                return jnp.asarray(ref.val, aval.dtype if aval is not None else None)
            return env[ref]

        from jax._src import source_info_util as siu

        for i, e in enumerate(flat.eqns):
            with siu.user_context(e.traceback):  # the rewritten program names the user's lines, not ours
                if i in rewrites:
                    out, aval = jnp.asarray(rewrites[i].build(get)), e.out_avals[0]
                    out = out if out.dtype == aval.dtype else out.astype(aval.dtype)
                    env[e.outs[0]] = out if out.shape == aval.shape else out.reshape(aval.shape)
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

"""Structure on object arrays of exact values: selection, reductions, contractions
and data movement, whatever the values are (arb balls, Python ints and bools).

``UNDECIDED`` is the one mark for "no value here": an undefined real value (0/0,
∞ − ∞, the log of a negative number) or one that the working precision cannot
decide. It propagates through every operation but two: ``select_n`` drops the
branches not taken, and a factor that is exactly 0 kills it (as autodiff's zero
cotangents mean it to).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from .jaxpr import MOVES, scatter_targets


class _Undecided:
    """The value of an undefined or undecided real operation (0/0, ∞ − ∞, a log of a
    negative number, a comparison of overlapping balls)."""

    def __repr__(self):
        return "UNDECIDED"


UNDECIDED = _Undecided()


def obj(x) -> np.ndarray:
    """`x` as an object array of its shape."""
    a = np.empty(np.shape(x), object)
    a[...] = x
    return a


def reduce(x, axes, f, zero) -> np.ndarray:
    """Reduce an object array over `axes` with the binary `f` (`zero` for an empty axis)."""
    uf = np.frompyfunc(f, 2, 1)
    for ax in sorted(axes, reverse=True):
        x = obj(uf.reduce(x, axis=ax)) if x.shape[ax] else np.full(np.delete(x.shape, ax), zero, object)
    return obj(x)


def dot_general(a, b, dimension_numbers, mul, add, zero, **_) -> np.ndarray:
    """dot_general with the scalar `mul` and `add` (`zero`: an empty contraction)."""
    (lc, rc), (lb, rb) = dimension_numbers
    lf = [d for d in range(a.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(b.ndim) if d not in rc and d not in rb]
    a2 = np.transpose(a, list(lb) + lf + list(lc))
    b2 = np.transpose(b, list(rb) + rf + list(rc))
    nb, nlf, nrf = len(lb), len(lf), len(rf)
    a3 = a2.reshape(a2.shape[: nb + nlf] + (1,) * nrf + a2.shape[nb + nlf:])
    b3 = b2.reshape(b2.shape[:nb] + (1,) * nlf + b2.shape[nb:])
    prod = obj(np.frompyfunc(mul, 2, 1)(a3, b3))
    nc = len(lc)
    return reduce(prod, range(prod.ndim - nc, prod.ndim), add, zero) if nc else prod


def select_n(pred, *cases) -> np.ndarray:
    """select_n: the case the predicate names (an undecided predicate: UNDECIDED)."""
    shape = np.broadcast_shapes(pred.shape, *(c.shape for c in cases))
    pred = np.broadcast_to(pred, shape)
    cases = [np.broadcast_to(c, shape) for c in cases]
    out = np.empty(shape, object)
    for i in np.ndindex(shape):
        p = pred[i]
        out[i] = UNDECIDED if p is UNDECIDED else cases[int(p)][i]
    return out


def move(prim, params, args, in_avals):
    """Run a data-moving primitive on the ids of the data entries (with JAX itself),
    then pick the exact values by id: every layout rule of XLA is honoured as is."""
    data = MOVES[prim.name] or tuple(range(len(args)))
    pool, ops, base = [], [], 0
    for i, (a, aval) in enumerate(zip(args, in_avals)):
        if i in data:
            ops.append(jnp.arange(base, base + a.size, dtype=jnp.int64).reshape(a.shape))
            pool.extend(a.ravel())
            base += a.size
        else:
            if any(v is UNDECIDED for v in a.ravel()):
                return np.full(np.broadcast_shapes(*(x.shape for x in args)), UNDECIDED, object)
            ops.append(jnp.asarray(np.asarray(a.tolist(), aval.dtype).reshape(a.shape)))
    if prim.name in ("gather", "scatter") and params.get("fill_value") is not None:
        params = dict(params, fill_value=-1)
    found = prim.bind(*ops, **params)
    return [_pick(pool, np.asarray(ids)) for ids in found] if prim.multiple_results else _pick(pool, np.asarray(found))


def _pick(pool: list, ids: np.ndarray) -> np.ndarray:
    out = np.empty(ids.shape, object)
    for i in np.ndindex(ids.shape):
        out[i] = pool[ids[i]] if 0 <= ids[i] < len(pool) else UNDECIDED  # out of bounds: fill value
    return out


def scatter_add(params, operand, indices, updates, add) -> np.ndarray:
    """scatter-add on object arrays: each update entry added (with `add`) into its target."""
    if any(v is UNDECIDED for v in indices.ravel()):
        return np.full(operand.shape, UNDECIDED, object)
    targets = scatter_targets(params, operand.shape, np.asarray(indices.tolist(), np.int64).reshape(indices.shape),
                              updates.shape)
    out = operand.copy().ravel()
    for j, t in zip(np.ndindex(updates.shape), targets.ravel()):
        if t >= 0:
            out[t] = add(out[t], updates[j])
    return out.reshape(operand.shape)


def iota(dtype, shape, dimension, **_) -> np.ndarray:
    """iota's values, as a NumPy array of its dtype."""
    return np.asarray(lax.broadcasted_iota(dtype, shape, dimension))

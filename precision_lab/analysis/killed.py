"""Gradients killed by construction: where a clip of a user's loss makes its gradient
exactly 0 (or halves it, where the clipped value ties with its bound and JAX splits
the derivative of max or min in two) while the same loss without the clip has a
gradient the format holds.

A finding beside the classes, not a class: `check` judges a function against what
its code means, and a clip means a zero derivative where it clips. For each
gradient row of a scalar user's function whose loss clips a value to constant
bounds (clamp, or max or min with a constant), the row's own compiled gradient is
compared, at every swept point, with the gradient of the loss with each clip's
operand passed through (and the known identity rewrites applied, so that float64
holds it over the whole format), run in float64, its value rounded to the row's
format:

* ``killed``: the row's gradient is 0 where the unclipped one rounds to a non-zero
  value;
* ``halved``: it is within a few ulps of half the unclipped one, not of all of it.

A row computed in a wider format (``bfloat16:float32``) is measured the same way: its
gradient is the one its compiled upcast program returns. Rows with a loss scale are
not measured.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..engine.execute import Made
from ..engine.points import kernel_outputs
from ..engine.spec import Spec
from ..families import rewrites
from ..numerics import formats, jaxpr
from .loss_scaling import bands

SHOWN_BANDS = 8  # bands a row lists (its counts cover every point)
CLOSE_ULPS = 4  # "halved": within this many ulps of the format of half the unclipped gradient


def measure(made: list[Made], spec: Spec, device) -> None:
    """Fill `killed_gradient` of each eligible gradient row in `made`."""
    for m in made:
        r = m.row
        if (m.family.exact is None or r.quantity != "grad" or m.form.loss is None or m.family.width > 1
                or r.loss_scale or r.fix_of is not None):
            continue
        r.killed_gradient = _row(m, spec, device)


def _row(m: Made, spec: Spec, device) -> dict | None:
    fmt = formats.get(m.row.dtype)
    loss = m.form.loss  # the loss as written: an upcast row's clips are the same operations, run wider
    flat = jaxpr.flatten(jax.make_jaxpr(loss)(jax.ShapeDtypeStruct((), fmt.dtype), m.family.label(m.job.target, fmt)))
    found = rewrites.clips(flat)
    if not found:
        return None
    axis = m.job.axis
    ords = np.asarray(axis.ordinals(np.arange(len(axis))), np.int64)
    g = np.asarray(kernel_outputs(m.family, [m.form], fmt, ords, m.job.target, device, spec.mode)[0], np.float64)
    x = formats.from_ordinal(ords, fmt).astype(np.float64)
    y = np.float64(np.asarray(m.family.label(m.job.target, fmt), np.float64))
    # without its clips, and with the known identity rewrites (log σ → log_sigmoid, …),
    # so that float64 holds the unclipped gradient across the whole of the format
    free = jax.grad(rewrites.fixed(rewrites.fixed(loss, finder=rewrites.clips), identities=True, name="unclipped"))
    with np.errstate(all="ignore"):
        u = np.asarray(jax.jit(jax.vmap(free, (0, None)))(x, y), np.float64)
        u_fmt = fmt.cast(u).astype(np.float64)
        close = lambda a, b: np.abs(a - b) <= CLOSE_ULPS * fmt.eps * np.abs(b)  # noqa: E731
        held = np.isfinite(u) & (u_fmt != 0)
        killed = held & (g == 0)
        halved = held & np.isfinite(g) & (g != 0) & close(g, u / 2) & ~close(g, u)
    # or exactly half of what the program without its clips computes in the format (where
    # the format's own gradient differs from the exact one by more than the closeness)
    plain = jax.grad(rewrites.fixed(loss, finder=rewrites.clips, name="unclipped"))
    xf = jnp.asarray(formats.from_ordinal(ords, fmt))
    with np.errstate(all="ignore"):
        r = np.asarray(jax.jit(jax.vmap(plain, (0, None)))(xf, m.family.label(m.job.target, fmt)), np.float64)
        halved |= held & np.isfinite(g) & (g != 0) & (g == r / 2)
    if not killed.any() and not halved.any():
        return None
    order = np.argsort(x, kind="stable")
    return {"sources": sorted({w.source.split(" ")[0] for w in found}),
            "killed": {"count": int(killed.sum()), "bands": bands(x[order], killed[order])[:SHOWN_BANDS]},
            "halved": {"count": int(halved.sum()), "bands": bands(x[order], halved[order])[:SHOWN_BANDS]},
            "exhaustive": bool(m.row.exhaustive),
            "against": "the gradient of the loss with each clip's operand passed through, in float64"}

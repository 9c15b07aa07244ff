"""The built-in forms that compute the same function as a user's loss, so that `check`
can rank the user's function and its fix against the best built-in form.

A user's loss is the same function as a built-in loss (sigmoid's BCE or MSE, softmax's
cross-entropy) when their exact values agree at sample points of every case the check
sweeps (relative 1e-12: both are exact values rounded to float64). Such a check sweeps
the built-in family's stable forms of that function (the loss and its gradient) over the
same formats, cases and range, and the result carries their rows.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..engine.points import host_reference
from ..families import sigmoid, softmax
from ..families.base import Family, Form
from ..numerics import formats

# tails included (a clip is another function there): 12 points, |x| up to 1000
SAMPLES = np.array([-1000.0, -60.0, -20.0, -6.0, -2.25, -0.75, 0.5, 1.75, 5.0, 20.0, 60.0, 1000.0])
RTOL = 1e-12


def _name(form: Form) -> str:
    return form.reference.__name__.removeprefix("_ref_")


def match(user: Family, builtin: Family, targets) -> list[Form]:
    """The stable library forms (loss and gradient) of `builtin` computing the function `user`'s
    loss computes, at every target of `targets` (the families' own target numbers); []
    where no built-in loss matches."""
    f64 = formats.get("float64")
    losses = {_name(f): f for f in builtin.forms if f.quantity == "loss"}
    same = set(losses)
    for t in targets:
        x = np.asarray(user.inputs(jnp.asarray(SAMPLES), user.case(t)), np.float64)
        label = np.asarray(user.label(t, f64))
        mine = np.asarray(user.exact([user.forms[0]], f64, x, label, {})[0][0], np.float64)
        for name in list(same):
            theirs = host_reference(builtin, [losses[name]], SAMPLES, float(t))[0][0]
            if not (np.all(np.isfinite(mine)) and np.allclose(mine, theirs, rtol=RTOL, atol=0)):
                same.discard(name)
    if len(same) != 1:
        return []
    loss = same.pop()
    grad = loss.replace("loss", "grad")
    return [f for f in builtin.forms if f.stable_form and f.library and _name(f) in (loss, grad)]


def builtin_family(k: int | None) -> Family:
    """The built-in family a check of the binary kind (k None) or of K classes compares with."""
    return sigmoid.FAMILY if k is None else softmax.family(k)


def targets_of(kind, options: dict) -> tuple[int | None, list]:
    """The class count (None: binary) and the family target numbers a check's cases use."""
    if not kind.multiclass:
        return None, [float(t) for t in options["targets"]]
    k = int(options["classes"][0])
    return k, [softmax.case("margin", tc) for tc in options["target_classes"]]


def compare(kind, spec, run) -> tuple[list, str | None]:
    """The rows of the built-in stable forms computing the same function as the check's
    loss, swept by `run(spec)` alike (formats, cases, range, points, mode), and the
    function they compute (``sigmoid:loss_bce``); ([], None) where none matches or the
    check measures against a reference of its own or scales the loss."""
    from ..engine import spec as specs
    from ..families import registry

    options = spec.options_for(kind)
    if kind.against is not None or spec.loss_scale is not None:
        return [], None
    k, targets = targets_of(kind, options)
    bfam = builtin_family(k)
    forms = match(kind.plain(k), bfam, targets)
    if not forms:
        return [], None
    kinds = registry.expand(bfam.name)
    taken = {o: v for o, v in options.items() if any(o in kd.options for kd in kinds)}
    other = specs.build(kinds, [p.name for p in spec.precisions], taken, [f.name for f in forms], spec.points,
                        spec.tolerance, spec.seed, spec.mode, spec.floor, False, False, spec.value_range,
                        spec.exhaustive, None)
    loss = next(f for f in forms if f.quantity == "loss")
    return list(run(other).rows), f"{bfam.name}:{_name(loss)}"

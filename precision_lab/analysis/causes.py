"""Why a row broke where it did: the walk at its onsets, and the factors of a chain
product there.

`explain` walks one form of a family at one point, with the kernel's input built as
the sweep builds it and, for a built-in form, the sweep's own class of that point.
`enrich` gives each row of a run its `cause` (the walk at each NaN, ∞ and, for a
user's function, 0 onset: the first operation that lost the value and the first
that went non-finite, against what the row's own compiled program computed there)
and, for a chain product, its `mechanism` (its two factors, each jitted alone, at
its NaN onsets: ∞ × 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import points
from ..engine.execute import Made
from ..engine.spec import Spec
from ..families.base import Family, Form
from ..numerics import formats
from .steps import Walk
from .walk import DEFAULT_ALLOWANCE, walk

CAUSE_MAX_WIDTH = 64  # vectors of more entries are not walked (exact arithmetic on each entry)


def explain(family: Family, form: Form, fmt: formats.Format, x: float, target, allowance: float = DEFAULT_ALLOWANCE,
            jitted: np.ndarray | None = None, name: str | None = None) -> Walk:
    """Walk `form` of `family` at the swept value `x` (a logit, or a softmax margin or
    offset) and the case's `target` (family.target_of(case)): its kernel on the
    input the sweep makes there. For a built-in form the walk also carries the sweep's
    class of the point (its error and the condition number that sets its allowance)."""
    vector = np.asarray(family.inputs(jnp.asarray(fmt.cast([x])), family.case(target)))[0]
    w = walk(form.kernel, (vector, family.label(target, fmt)), fmt.name, allowance, name or form.name, jitted)
    if family.exact is None and family.host_base is not None:
        ev = points.evaluate(family, [form], fmt, [x], target)
        w.judged = {"class": str(ev["class"][form.name][0]), "ulp": float(ev["ulp"][form.name][0]),
                    "kappa": float(np.max(ev["kappa"][form.name][0]))}
    return w


def _onset_causes(family: Family, form: Form, fmt: formats.Format, target, onset: dict, device, mode,
                 classes=("nan", "inf")) -> dict | None:
    """At each onset of `classes`, the operation that broke the form: its jaxpr walked
    op by op next to exact values, against what the row's own compiled program
    computed there, which says whether XLA rewrote the expression."""
    if family.width > CAUSE_MAX_WIDTH:
        return None
    out = {}
    for cls in classes:
        for side in ("neg", "pos"):
            z = onset[cls][side]
            if z is None:
                continue
            o = formats.to_ordinal(fmt.cast([z]), fmt)
            jitted = points.kernel_outputs(family, [form], fmt, o, target, device, mode)[0][0]
            w = explain(family, form, fmt, z, target, jitted=jitted)
            c = w.cause()
            out.setdefault(cls, {})[side] = {
                "z": z, "first_nonfinite": _step(c["first_nonfinite"]), "first_lost": _step(c["first_lost"]),
                "flushes": [_step(f) for f in c["flushes"]], "rewritten": c["rewritten"], "text": w.summary(),
                "compiled": _compiled(family, form, fmt, target, z, cls, device, mode)}
    return out


def _compiled(family: Family, form: Form, fmt: formats.Format, target, z: float, cls: str, device, mode) -> dict | None:
    """Where op by op the form already fails nearer 0 than the compiled program's onset
    `z` (see `compiled.earlier`): that point, and what the compiled program does
    instead (the operations of its fused root, the threshold `z` sits on). None where
    the two programs part no earlier, for classes other than NaN and ∞, and in the
    eager mode (whose program is the op-by-op one)."""
    from ..engine import modes
    from ..engine.programs import batch_size, kernel_program, labels
    from . import compiled

    mode = modes.get(mode)
    if cls not in ("nan", "inf") or mode.eager:
        return None
    found = compiled.earlier(family, form, fmt, target, z, cls, device, mode)
    if found is None:
        return None
    x = family.inputs(jnp.asarray(fmt.cast([z])), family.case(target))
    b = batch_size(family)
    shape = jax.ShapeDtypeStruct((b,) + x.shape[1:], x.dtype)  # the sweep's program
    return {"class": cls, "op_by_op": found["x"], "method": found["method"],
            "fused": compiled.fused_ops(kernel_program(form.kernel, mode), (shape, labels(family.label(target, fmt), b))),
            "threshold": compiled.threshold(z, fmt)}


def _step(step: dict | None) -> dict | None:
    """The short form of a walk step: what the table and JSON name."""
    if step is None:
        return None
    return {k: step[k] for k in ("index", "primitive", "source", "computed", "exact", "marks")}


def mechanism(family: Family, form: Form, fmt: formats.Format, target, nan_onset: dict) -> dict:
    """The two factors' computed values at each NaN onset (e.g. ∞ × 0); for a vector
    gradient, at its first NaN entry."""
    mech = {}
    for side in ("neg", "pos"):
        z = nan_onset[side]
        if z is None:
            continue
        forms = [form] + [family.form(n) for n in form.factors]
        prod, a, b = (np.atleast_1d(v[0]).astype(np.float64) for v in points.kernel_values(family, forms, fmt, [z],
                                                                                              target))
        j = int(np.argmax(np.isnan(prod)))
        a, b = (float(v[j] if v.size > 1 else v[0]) for v in (a, b))
        mech[side] = {"z": z, form.factors[0]: _json_float(a), form.factors[1]: _json_float(b),
                      "text": f"{_factor(a)} × {_factor(b)}"}
    return mech


def _json_float(v: float):
    return v if np.isfinite(v) else ("nan" if np.isnan(v) else ("inf" if v > 0 else "-inf"))


def _factor(v: float) -> str:
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "∞" if v > 0 else "−∞"
    return "0" if v == 0 else f"{v:.3g}"


def walked(made: Made, spec: Spec) -> bool:
    """Whether a row gets the walk at its onsets: the family's forms it walks (the
    chain products by default for the built-in ones, every form of a user's
    function), every form with `spec.causes`, none with causes off; a derived
    kernel only where the family walks those too."""
    fam = made.job.family
    if spec.causes is False or fam.causes == "none" or (made.derived and not fam.cause_derived):
        return False
    return spec.causes is True or fam.causes == "all" or bool(made.form.factors)


def enrich(made: list[Made], spec: Spec, device) -> None:
    """Give each row its cause (see `walked`) and, for a chain product, its mechanism."""
    for m in made:
        job, row = m.job, m.row
        if m.form.factors and not m.derived:
            row.mechanism = mechanism(m.family, m.form, job.axis.fmt, job.target, row.onset["nan"])
        if walked(m, spec):
            row.cause = _onset_causes(m.family, m.form, job.axis.fmt, job.target, row.onset, device, spec.mode,
                                     m.family.cause_classes)

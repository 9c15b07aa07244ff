"""The rewrites people apply, swept in the same run as the rows they would fix.

Where a user's function broke on a line that holds a known unstable pattern
(families.rewrites), the function is rewritten there (form ``NAME+fix``) and swept
again, through the same pipeline, in the formats and cases where a row broke,
against the original's exact values. Each original row's `fix` then gives the
rewrites and its counts and onsets before and after; a rewrite is `better` only if
it leaves fewer NaN, ∞ and normal values lost to 0 and moves no onset nearer zero.
"""

from __future__ import annotations

import jax

from ..engine.context import RunContext
from ..engine.execute import Made, execute
from ..engine.plan import Job
from ..engine.rows import Row
from ..engine.spec import Spec
from ..families import rewrites
from ..families.base import Family
from ..families.user_forms import fix_family
from ..numerics import formats

FIX_CLASSES = ("nan", "inf", "zero", "unresolved")  # what a fix's before and after count


def sweep_fixes(made: list[Made], spec: Spec, context: RunContext) -> list[Made]:
    """The rows of the rewritten functions (each family of a user's function that has
    a rewrite at a line where it broke), with each original row's `fix` filled in."""
    out = []
    by_family: dict = {}
    for m in made:
        if m.job.family.exact is not None and m.job.family.causes == "all":  # a user's function, walked
            by_family.setdefault(id(m.family), []).append(m)
    for mine in by_family.values():
        family, fmt = mine[0].family, mine[0].job.precision.input
        found = _at_causes(family, fmt, [m.row for m in mine])
        if not found:
            continue
        fixed = fix_family(family, found, spec.loss_scale)
        failing = {_case_key(m.job) for m in mine if not m.row.stable}
        jobs = list({_case_key(m.job): Job(m.job.kind, fixed, fixed.forms, m.job.axis, m.job.case, m.job.precision)
                     for m in mine if _case_key(m.job) in failing}.values())
        after = execute(jobs, spec, context)
        _attach([m.row for m in mine], [m.row for m in after], found)
        out += after
    return out


def _case_key(job: Job) -> tuple:
    return job.precision.name, job.case


def _at_causes(family: Family, fmt: formats.Format, rows: list[Row]) -> list:
    """The known rewrites of the family's loss (rewrites.find) on a line where one of
    its rows first lost a value or went non-finite."""
    lines = set()
    for r in rows:
        for sides in (r.cause or {}).values():
            for why in sides.values():
                for step in (why["first_lost"], why["first_nonfinite"]):
                    if step:
                        lines.add(step["source"])
    if not lines:
        return []
    x = jax.ShapeDtypeStruct((family.width,) if family.width > 1 else (), fmt.dtype)
    return [r for r in rewrites.find(family.forms[0].kernel, x, family.label(0, fmt)) if r.source in lines]


def _nearer(after, before) -> bool:
    """A failure now begins nearer zero than it did (or where there was none)."""
    return after is not None and (before is None or abs(after) < abs(before))


def _attach(before: list[Row], after: list[Row], found) -> None:
    """Each original row's `fix`: the rewrites, and its failing counts before and after."""
    fixed = {r.key.replace(form=None): r for r in after}
    for r in before:
        f = fixed.get(r.key.replace(form=None))
        if f is None:
            continue
        b = {c: r.counts[c] for c in FIX_CLASSES + ("zero_subnormal",)}
        a = {c: f.counts[c] for c in FIX_CLASSES + ("zero_subnormal",)}
        # what counts: NaN, ∞ and normal values lost to 0 (a flushed subnormal is a lesser loss)
        lost = lambda c: c["nan"] + c["inf"] + c["zero"] - c["zero_subnormal"]  # noqa: E731
        judged = ("nan", "inf") + (("zero",) if a["zero"] > a["zero_subnormal"] else ())
        onsets = {c: {"before": [r.onset[c]["neg"], r.onset[c]["pos"]],
                      "after": [f.onset[c]["neg"], f.onset[c]["pos"]]} for c in ("nan", "inf", "zero")}
        r.fix = {"form": f.form, "rewrites": [w.to_json() for w in found], "before": b, "after": a,
                 "onsets": onsets, "better": lost(a) < lost(b) and all(a[c] <= b[c] for c in ("nan", "inf"))
                 and not any(_nearer(onsets[c]["after"][k], onsets[c]["before"][k]) for c in judged for k in (0, 1))}
        f.fix_of = r.form

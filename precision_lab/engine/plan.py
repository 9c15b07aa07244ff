"""A run's plan: the jobs its specification asks for, in order.

A `Job` is one family's chosen forms swept over one format's axis at one case, in
one precision (an input format, and the one it is computed in). The families say
which cases their options ask for and what axis a row sweeps; the plan crosses them
with the precisions. The sweeps over whole vectors (the softmax's random and logits
sweeps) have no axis: they are `VectorJob`s.
"""

from __future__ import annotations

import dataclasses

from ..families.base import Case, Family, Form
from ..families.registry import Kind, select
from ..numerics import formats
from .spec import Spec


@dataclasses.dataclass(frozen=True)
class Job:
    kind: Kind
    family: Family
    forms: tuple[Form, ...]
    axis: object  # numerics.sampling: Axis, Range or Spaced
    case: Case
    precision: formats.Precision

    @property
    def target(self) -> float:
        """The number the family's programs take for the case (a traced argument)."""
        return self.family.target_of(self.case)

    @property
    def label(self) -> str:
        """The job in a few words: for progress lines and checkpoint keys."""
        return " ".join([getattr(self.kind, "fn_name", None) or self.family.name, self.case.label,
                         self.precision.name])


@dataclasses.dataclass(frozen=True)
class VectorJob:
    sweep: object  # families.softmax_vectors.VectorSweep
    formats: tuple[formats.Format, ...]


@dataclasses.dataclass
class Plan:
    jobs: list[Job]
    vector_jobs: list[VectorJob]
    warnings: list[str]


def plan(spec: Spec) -> Plan:
    """Every job of `spec`: per family instance (the softmax at each K), per precision,
    per case; and the vector sweeps, in the plain formats (upcast rows have none)."""
    jobs, vector_jobs, warnings = [], [], []
    for kind in spec.kinds:
        options = spec.options_for(kind)
        by_family: dict = {}  # each family instance (the softmax at K) with its cases, in order
        for family, case in kind.cases(options):
            by_family.setdefault(family, []).append(case)
        for family, cases in by_family.items():
            forms = select(family, spec.forms)
            for precision in spec.precisions if forms else ():
                axis = kind.axis(family, precision.input, spec.points, spec.seed, spec.value_range, spec.exhaustive)
                jobs += [Job(kind, family, forms, axis, case, precision) for case in cases]
        plain = tuple(dict.fromkeys(p.input for p in spec.precisions if not p.upcast))
        sweeps = kind.vector_sweeps(options, spec.forms)
        vector_jobs += [VectorJob(v, plain) for v in sweeps]
        skipped = [p.name for p in spec.precisions if p.upcast]
        if sweeps and (skipped or spec.loss_scale is not None):
            warnings.append("The softmax random and logits sweeps run in the plain formats only, unscaled"
                         + (f": no such rows for {', '.join(skipped)}." if skipped else "."))
    return Plan(jobs, vector_jobs, warnings)

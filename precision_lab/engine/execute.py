"""Execution: a plan's jobs run under a run context, into typed rows.

Each job is swept in one engine pass per result format (a loss computed in a wider
format is judged there, a gradient cast back in its input's; see families.derive),
each pass saved to the checkpoint as it goes and its rows recorded when it ends, so
that an interrupted run continues where it stopped. Rows carry every figure the
engine measures: counts, onsets (scanned to exactness where asked), intervals, the
profile, and for the built-in families where a 0 begins and how large the lost
losses were. The vector sweeps follow.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import numpy as np

from ..families import derive
from ..families.base import Family, Form, constant_notes
from ..numerics import formats
from ..numerics.classify import CLASSES, UNSTABLE
from . import programs, vectors
from .context import RunContext
from .passes import Outcome, onsets_and_intervals, run_target, scan_onsets
from .plan import Job, VectorJob
from .points import host_reference, kernel_outputs
from .rows import Row, computes
from .runner import Runner
from .spec import Spec


@dataclasses.dataclass(frozen=True)
class Made:
    """A row with what made it: its job, and the family and form as its pass ran them
    (derived: computed in a wider format or loss-scaled, see families.derive)."""

    job: Job
    family: Family
    form: Form
    derived: bool
    row: Row


AHEAD = 4  # engine passes whose programs are prepared (compiled on the pool) ahead of the one running


def execute(jobs: list[Job], spec: Spec, context: RunContext, then: Callable[[], None] | None = None,
            done: Callable[[list[Made]], None] | None = None) -> list[Made]:
    """The rows of `jobs`, in the jobs' order (within a job, its forms' order; they run in
    `_in_turn`'s). While
    a pass runs, the programs of the next AHEAD passes compile on the pool (see
    `Runner.prepare`): a cold run keeps its cores compiling what comes next. `then()`
    (the vector sweeps, say) runs as the last passes' programs are sent to compile,
    before those passes run. As each
    job's last pass ends, `done(its rows)` is told (in the order `execute` returns
    them), so that what follows a job can start while the next ones run."""
    passes = []  # (job, group, checkpoint key): one engine pass per result format
    for job in _in_turn(jobs):
        groups = derive.groups(job.family, job.forms, job.precision, spec.loss_scale)
        for group in groups:
            key = f"{context.passes + len(passes)} {job.label}" + (f" {group.out.name}" if len(groups) > 1 else "")
            passes.append((job, group, key))
    context.total += sum(len(job.axis) for job, _, _ in passes)
    ahead = [functools.partial(_prepare, job, group, key, spec, context) for job, group, key in passes] + [then]
    made = []
    for i, (job, group, key) in enumerate(passes):
        for j in range(i, min(i + AHEAD + 1, len(ahead))):  # each once, as its turn comes within AHEAD
            if ahead[j] is not None:
                ahead[j]()
                ahead[j] = None
        context.passes += 1
        rows = _pass(job, group, key, spec, context)
        made += [Made(job, group.family, f, group.derived, r) for f, r in zip(group.forms, rows)]
        if done is not None and (i + 1 == len(passes) or passes[i + 1][0] is not job):
            done(_in_order(job, [m for m in made if m.job is job]))
    if ahead[-1] is not None:  # no pass ran
        ahead[-1]()
    out = []
    for job in jobs:
        out += _in_order(job, [m for m in made if m.job is job])
    return out


def _in_turn(jobs: list[Job]) -> list[Job]:
    """The order the jobs run in: a family's (and K's) jobs together as planned, the
    widest format first. A float64 pass computes its references on the host, on one
    core; run first, it runs beside the compilations of the passes after it rather
    than alone at the end of the run. Rows come back in the planned order."""
    block = {}
    for job in jobs:
        block.setdefault((job.family.name, job.family.width), len(block))
    return sorted(jobs, key=lambda job: (block[job.family.name, job.family.width], -job.axis.fmt.bits))


def _in_order(job: Job, made: list[Made]) -> list[Made]:
    """A job's rows in its forms' order."""
    position = {(f.name, f.quantity): k for k, f in enumerate(job.forms)}
    return sorted(made, key=lambda m: position[m.row.form, m.row.quantity])


def _prepare(job: Job, group: derive.Group, key: str, spec: Spec, context: RunContext) -> None:
    """Prepare the programs of the pass of `group` (its runner's, see `Runner.prepare`),
    unless the checkpoint holds its rows."""
    saved = context.checkpoint
    if saved and saved.rows(key) is not None:
        return
    with jax.default_device(context.device):
        Runner(group.family, group.forms, job.axis, job.target, spec.tolerance, context.devices, spec.mode,
               spec.floor, group.out).prepare()


def _pass(job: Job, group: derive.Group, key: str, spec: Spec, context: RunContext) -> list[Row]:
    saved = context.checkpoint
    if saved and saved.rows(key) is not None:  # finished before the interruption
        context.report(job.label, len(job.axis))
        return saved.rows(key)
    resume = saved.resume(key) if saved else None
    context.report(job.label, resume.next if resume else 0)  # the pass begins: its total is known
    with jax.default_device(context.device):
        out = run_target(group.family, group.forms, job.axis, job.target, spec.tolerance, context.devices,
                         tick=lambda n: context.report(job.label, n), mode=spec.mode, floor=spec.floor,
                         resume=resume, save=saved.saver(key) if saved else None, out_fmt=group.out)
        rows = _rows_from(group.family, out, job, spec)
        for row, fields, form in zip(rows, group.fields, group.forms):
            for k, v in fields.items():
                setattr(row, k, v)
            if group.family.exact is not None:  # a user's code: its constants in the format it computes in
                row.constants = constant_notes(form, formats.get(row.compute_dtype),
                                               _kernel_args(group.family, job.axis.fmt))
        if spec.scan_onsets and not job.axis.exhaustive:
            for form, row in zip(group.forms, rows):
                def scanned(side, n_done, n_total, name=f"scan {job.label} {form.name}"):
                    if context.progress:
                        context.progress(f"{name} z {'<' if side == 'neg' else '>'} 0", n_done, n_total)

                row.onset = scan_onsets(group.family, form, job.axis.fmt, job.target, row.onset, spec.tolerance,
                                        context.device, spec.mode, spec.floor, progress=scanned, out_fmt=group.out)
    if saved:
        saved.finish(key, rows)
    return rows


def _rows_from(fam: Family, out: Outcome, job: Job, spec: Spec) -> list[Row]:
    """A row per form of an engine pass: its figures, the case and the run's settings."""
    rows = []
    vector = fam.width > 1
    for i, form in enumerate(out.forms):
        counts = {c: int(out.counts[i, j]) for j, c in enumerate(CLASSES)}
        counts["zero_subnormal"] = int(out.zero_subnormal[i])
        counts["zero_negligible"] = int(out.zero_negligible[i])
        forward = dict(zip((*programs.BUCKETS, "excused"), (int(v) for v in out.forward[i])))
        onset, intervals = onsets_and_intervals(out, i)
        soft = job.case.target_class == "soft"
        case = {"axis": fam.axis, **job.case.fields()}  # a structured sweep names its axis (m or c)
        row = Row(
            family=fam.name, quantity=form.quantity, form=form.name, summary=form.summary, dtype=out.fmt.name,
            compute_dtype=out.fmt.name, value_dtype=out.value_fmt.name, loss_scale=None,
            target=None if vector else out.target, target_in_format=None if vector else out.target_in_format,
            points=out.points, exhaustive=out.exhaustive,
            reference=fam.reference_name or ("float64 (XLA)" if out.fmt.bits < 64 else "double-double (host)"),
            counts=counts, max_ulp=None if out.max_ulp[i] < 0 else float(out.max_ulp[i]),
            stable=all(counts[c] == 0 for c in UNSTABLE), onset=onset, intervals=intervals,
            constants=constant_notes(form, out.value_fmt), profile=_profile(out, i), mode=spec.mode.name,
            floor=spec.floor, batch=programs.batch_size(fam), **case,
            range=list(spec.value_range) if spec.value_range else None,
            library=(form.library_soft if soft else None) or form.library, stable_form=form.stable_form or None,
            forward_error=forward, computes=computes(fam, form), **dict(fam.row_fields))
        if fam.exact is not None:  # what decided each point of a user's function; a rewrite is swept later
            row.tiers = _tiers(out.stats.get(i))
            row.fix = None
        if form.quantity == "loss" and counts["zero"] > counts["zero_subnormal"] and fam.exact is None:
            row.zero_exact_max = _zero_exact_max(fam, form, out, intervals["zero"])
        if counts["zero"]:
            row.zero_onset_subnormal = _zero_onset_subnormal(fam, form, out, onset["zero"], spec.mode)
        rows.append(row)
    return rows


def _tiers(stats) -> dict:
    from ..numerics.reference import Tiers

    return (stats or Tiers()).to_json()


def _zero_exact_max(fam: Family, form, out: Outcome, zeros: dict) -> float | None:
    """The largest exact loss among the points computed as 0: a built-in loss is
    quasi-convex along the swept axis (convex in the logits, or unimodal as ½(σ − y)²),
    so on each band of zeros it is largest at an end. None when not every band is listed."""
    if zeros["total"] > len(zeros["listed"]):
        return None
    ends = np.array([e for band in zeros["listed"] for e in band], np.float64)
    exact, _ = host_reference(fam, [form], ends, float(out.target))[0]
    return float(np.max(np.abs(exact)))


def _kernel_args(fam, fmt) -> tuple | None:
    """A user's function's kernel arguments at `fmt` (for the constants its code writes), or
    None for a rewrite of it (its constants are the original's, at no line of the user's)."""
    if fam.exact is None or fam.causes == "none":
        return None
    return jax.ShapeDtypeStruct((fam.width,) if fam.width > 1 else (), fmt.dtype), fam.label(0, fmt)


def _zero_onset_subnormal(fam: Family, form, out: Outcome, onset: dict, mode) -> dict:
    """Per side, whether the first 0 is a flush (every entry computed 0 there has an
    exact value that is subnormal in the format the row is judged in) or a lost normal
    value; None where no 0 lies. The kernel runs again at those points, as in the sweep."""
    sides = [s for s in ("neg", "pos") if onset[s] is not None]
    if not sides:
        return {"neg": None, "pos": None}
    x = np.array([onset[s] for s in sides], np.float64)
    ords = formats.to_ordinal(out.fmt.cast(x), out.fmt)
    if fam.exact is None:
        exact, _ = host_reference(fam, [form], x, float(out.target))[0]
    else:  # a user's function: its reference at the kernel's inputs there
        inputs = np.asarray(programs.inputs_program(fam, out.fmt, fam.case(out.target))(ords))
        exact, _ = fam.exact([form], out.value_fmt, inputs, np.asarray(fam.label(out.target, out.fmt)), {})[0]
    got = kernel_outputs(fam, [form], out.fmt, ords, out.target, None, mode)[0].astype(np.float64)
    exact = np.broadcast_to(exact, got.shape)
    fmt = out.value_fmt
    lost = (got == 0) & (np.abs(fmt.cast(exact).astype(np.float64)) > 0)
    normal = lost & (np.abs(exact) >= fmt.smallest_normal)
    flush = ~normal.reshape(len(sides), -1).any(axis=1)
    return {s: (bool(flush[sides.index(s)]) if s in sides else None) for s in ("neg", "pos")}


def _profile(out: Outcome, i: int) -> dict:
    filled = out.profile_lo <= out.profile_hi
    lo = formats.from_ordinal(np.where(filled, out.profile_lo, 0), out.fmt).astype(np.float64)
    hi = formats.from_ordinal(np.where(filled, out.profile_hi, 0), out.fmt).astype(np.float64)
    return {
        "bins": len(filled),
        "lo": [float(v) if f else None for v, f in zip(lo, filled)],
        "hi": [float(v) if f else None for v, f in zip(hi, filled)],
        "class": [CLASSES[c] if c >= 0 else None for c in out.profile_code[i]],
        "max_ulp": [float(e) if e >= 0 else None for e in out.profile_err[i]],
        "kappa": [_json_float(float(k)) if f else None for k, f in zip(out.profile_kappa[i], filled)],
    }


def _json_float(v: float):
    return v if np.isfinite(v) else ("nan" if np.isnan(v) else ("inf" if v > 0 else "-inf"))


def execute_vectors(vector_jobs: list[VectorJob], spec: Spec, context: RunContext) -> list[Row]:
    """The rows of the sweeps over whole vectors (no axis; not checkpointed)."""
    rows = []
    for vj in vector_jobs:
        label = f"softmax {vj.sweep.kind} sweep, K={vj.sweep.classes} (vectors)"
        context.report(label)
        with jax.default_device(context.device):
            rows += vectors.sweep_vectors(vj.sweep, list(vj.formats), spec.forms, spec.tolerance, spec.seed,
                                          spec.mode, spec.floor,
                                          lambda done, total: context.report(f"{label}: {done} of {total}"))
    return rows

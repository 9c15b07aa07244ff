"""One run, whatever is swept: a validated, frozen specification → a plan of jobs →
execution under a run context → typed rows → enrichment → post-passes → a result.

`sweep` and `check` both come here: a user's function is one more family (see
families.user), so everything one offers, the other does too (exhaustive sweeps,
ranges, checkpoints, several devices and processes, onset scans, modes, loss
scales, upcasting).

* **enrichment**: each row's batch dependence (engine.batches), its cause at its
  onsets and, for a chain product, the factors there (analysis.causes), on a thread
  of their own as each job's passes end, while the next jobs' passes run and
  compile; a user's gradient that a clip makes 0 or halves (analysis.killed);
* **post-passes**: the rewrites of a user's function swept where it broke
  (analysis.fixes), how the backend accumulates sums (for families that add
  exponentials), the loss-scale advice, and what the vector sweeps left out.
"""

from __future__ import annotations

import concurrent.futures

import jax

from .analysis import accumulation, causes, fixes, killed, loss_scaling
from .engine import batches, checkpoints, execute, plan
from .engine.context import RunContext, fingerprint, run_meta
from .engine.spec import Spec
from .errors import InputError
from .families import softmax_vectors
from .result import SweepResult


def run(spec: Spec, context: RunContext) -> SweepResult:
    meta = run_meta(spec, context)
    work = plan.plan(spec)
    for w in [*spec.warnings, *work.warnings]:
        meta.setdefault("warnings", []).append(w)
    if context.checkpoint_path is not None:
        if jax.process_count() > 1:
            raise InputError("`checkpoint` works in one process; leave it out of a distributed run.")
        context.checkpoint = checkpoints.Checkpoint(context.checkpoint_path, fingerprint(spec, context.device))
    vector_rows = []
    with _Following(spec, context) as following:
        # the vector sweeps run before the last passes, while those compile and the follow thread works
        made = execute.execute(work.jobs, spec, context, done=following.submit,
                               then=lambda: vector_rows.extend(execute.execute_vectors(work.vector_jobs, spec,
                                                                                       context)))
        following.wait()
    with jax.default_device(context.device):
        killed.measure(made, spec, context.device)
        made += fixes.sweep_fixes(made, spec, context)
    rows = [m.row for m in made]
    _vector_notes(work, spec, meta)
    rows += vector_rows
    if any(k.sums for k in spec.kinds):
        context.report("how jnp.sum accumulates")
        meta["accumulation"] = accumulation.measure([f.name for f in spec.formats], context.device)
    if spec.loss_scale is not None:
        context.report("loss-scale advice")
        with jax.default_device(context.device):
            meta["loss_scale_advice"] = loss_scaling.run_advice(spec, context.device) + \
                loss_scaling.check_verdicts(made, spec, context)
    if context.checkpoint is not None:
        context.checkpoint.remove()
    return SweepResult(meta, rows, spec)


class _Following:
    """What follows each job's passes (`_follow`: batch dependence, causes), on one
    thread of its own, a job at a time in the order they end: it runs beside the next
    jobs' passes, whose compilations leave a core to spare more often than not, and
    its values do not depend on when it runs. Leaving the block early (an error,
    Ctrl-C) drops the jobs not begun and stops the one running at its next row."""

    def __init__(self, spec: Spec, context: RunContext):
        self.spec, self.context = spec, context
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="precision-lab-follow")
        self.futures: list = []
        self.stopped = False

    def __enter__(self) -> _Following:
        return self

    def submit(self, made: list) -> None:
        self.futures.append(self.pool.submit(self._follow, made))

    def _follow(self, made: list) -> None:
        with jax.default_device(self.context.device):
            for m in made:
                if self.stopped:
                    return
                m.row.batch_dependent = batches.measure(m.family, m.form, m.row, m.job.axis, m.job.target,
                                                        self.context.device, self.spec.mode)
            for m in made:
                if self.stopped:
                    return
                causes.enrich([m], self.spec, self.context.device)

    def wait(self) -> None:
        """Wait for every job's (an error raised there is raised here)."""
        if not all(f.done() for f in self.futures):
            self.context.report("batch dependence and causes")
        for f in self.futures:
            f.result()

    def __exit__(self, *exc) -> None:
        self.stopped = exc[0] is not None
        self.pool.shutdown(wait=not self.stopped, cancel_futures=self.stopped)


def _vector_notes(work: plan.Plan, spec: Spec, meta: dict) -> None:
    """Say which softmax sweeps ran where the user's logits were given (the logits
    sweep adds to the named ones), and what a soft-label sweep leaves out."""
    given = [vj.sweep for vj in work.vector_jobs if vj.sweep.kind == "logits"]
    if given:
        ran = dict.fromkeys([j.case.sweep for j in work.jobs if j.case.sweep] +
                            [vj.sweep.kind for vj in work.vector_jobs])
        meta.setdefault("notes", []).append("Softmax sweeps run: " + ", ".join(
            f"logits ({len(given[0].logits)} vectors given)" if s == "logits" else s for s in ran) + ".")
    for vj in work.vector_jobs:
        meta.setdefault("notes", []).extend(softmax_vectors.notes(vj.sweep, spec.forms))

"""The Python API that the CLI, the scripts and the tests all use.

    >>> import precision_lab as pl
    >>> result = pl.sweep(dtypes=["bfloat16"], targets=[0.0])
    >>> row = result.row("bce_naive_chain", "bfloat16", 0.0)
    >>> row["onset"]["nan"]["pos"]
    5.5625
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import sys
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from .errors import InputError

from . import __version__
from .analysis import accumulation, disagreements as modes
from .engine import checkpoints, core as engine, vectors
from .numerics import formats
from .families import sigmoid, softmax, derive as upcast
from .numerics.classify import CLASSES, CODE, DEFAULT_TOLERANCE, FLOORS, UNSTABLE, classify, condition, per_point
from .engine.core import Outcome, batch_size, check_mode, distinct_references, host_reference, kernel_outputs, onsets_and_intervals, run_target
from .families.base import Family, constant_notes
from .output.report import dtype_label  # noqa: F401  (the API names rows' formats as tables do)
from .families.softmax import softmax_axis
from .numerics.sampling import axis_for

SCHEMA = "precision_lab.sweep/2"
FAMILIES: dict[str, Family] = {"sigmoid": sigmoid.FAMILY, "softmax": softmax.family()}  # softmax at K = 10
FAMILY_NAMES = ("sigmoid", "softmax", "all")
DEFAULT_TARGETS = (0.0, 1.0)
BACKENDS = ("cpu", "gpu", "tpu")


ROW_KEYS = ("form", "dtype", "target", "quantity", "family", "classes", "sweep", "target_class", "compute_dtype",
            "loss_scale")  # what tells rows apart, in the order an ambiguity is explained


class Rows(list):
    """A result's rows (a plain list of dicts, the JSON's rows), also callable to
    select some by their fields: ``result.rows(form="ce_naive", dtype="bfloat16",
    classes=1000, sweep="margin", target_class="top")``."""

    def __call__(self, **fields) -> list[dict]:
        unknown = sorted(set(fields) - set(ROW_KEYS))
        if unknown:
            raise InputError(f"Rows cannot be selected by {', '.join(unknown)}; select by {', '.join(ROW_KEYS)}.")
        return [r for r in self if all(_same(_field(r, k), v) for k, v in fields.items() if v is not None)]


def _field(row: dict, key: str):
    if key == "compute_dtype":  # a plain row computes in its own format
        return row.get("compute_dtype") or row["dtype"]
    return row.get(key)


def _same(have, want) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(have, (int, float)):
        return float(have) == float(want)
    return have == want


@dataclasses.dataclass(repr=False)
class SweepResult:
    """What a sweep or check found: `meta` (versions, settings, backend) and `rows`
    (one dict per form, format and target; see the README's JSON schema)."""

    meta: dict
    rows: list[dict]

    def __post_init__(self):
        self.rows = Rows(self.rows)

    def row(self, form: str, dtype: str | None = None, target: float | str | None = None, **fields) -> dict:
        """The one row of `form` in `dtype` (and `target`: y for sigmoid rows, a softmax
        target class ``top``/``other``), narrowed by any other row field (`classes`,
        `sweep`, `target_class`, `quantity`, ...). Raises InputError when no row or
        several rows match, naming the fields that tell them apart."""
        if isinstance(target, str):
            fields.setdefault("target_class", target)
            target = None
        asked = ", ".join(f"{k}={v!r}" for k, v in dict(form=form, dtype=dtype, target=target, **fields).items()
                          if v is not None)
        if dtype is not None and ":" in dtype:  # an upcast, such as bfloat16:float32
            dtype, fields["compute_dtype"] = dtype.split(":", 1)
        elif dtype is not None:
            fields.setdefault("compute_dtype", dtype)
        keys = dict(form=form, dtype=dtype, target=target, **fields)
        found = self.rows(**keys)
        if not found:
            raise InputError(f"No row has {asked}; this result has forms {', '.join(sorted({r['form'] for r in self.rows}))} "
                             f"in {', '.join(dict.fromkeys(r['dtype'] for r in self.rows))}.")
        if len(found) > 1:
            apart = {k: sorted({repr(r.get(k)) for r in found}) for k in ROW_KEYS if k not in keys or keys[k] is None}
            apart = {k: v for k, v in apart.items() if len(v) > 1}
            raise InputError(f"{len(found)} rows have {asked}; choose by "
                             + "; ".join(f"{k} ({', '.join(v)})" for k, v in apart.items()) + ".")
        return found[0]

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "meta": self.meta, "rows": list(self.rows)}

    def summary(self, width: int = 80) -> str:
        """The one-screen answer per family, as plain text (see the ``summary`` module)."""
        from .output import summary

        return summary.text(self, width)

    def __repr__(self) -> str:
        fams = ", ".join(dict.fromkeys(r["family"] for r in self.rows))
        dtypes = ", ".join(dict.fromkeys(r["dtype"] for r in self.rows))
        unstable = sorted({r["form"] for r in self.rows if not r["stable"]})
        return (f"<SweepResult: {len(self.rows)} rows of {fams or 'nothing'} in {dtypes or 'no format'}; "
                f"{len(unstable)} forms with NaN, ∞ or 0 somewhere; .summary() for the answer, .rows(...) to select>")

    def _repr_pretty_(self, p, cycle) -> None:  # IPython and Jupyter
        p.text(repr(self) if cycle else self.summary())


def get_family(name: str, classes: int = 10) -> Family:
    """The family called `name` (the softmax family with K = `classes`)."""
    if name == "softmax":
        return softmax.family(classes)
    if name not in FAMILIES:
        raise InputError(f"Unknown family `{name}`; known families are {', '.join(FAMILY_NAMES)}.")
    return FAMILIES[name]


def families_of(name: str) -> list[Family]:
    """The families that `family=name` sweeps: one, or both for ``"all"``."""
    return [get_family(n) for n in (("sigmoid", "softmax") if name == "all" else (name,))]


def get_device(name: str | None):
    """The first JAX device of backend `name` (default: JAX's default backend)."""
    if name is None:
        return jax.devices()[0]
    if name not in BACKENDS:
        raise InputError(f"Unknown device `{name}`; choose one of {', '.join(BACKENDS)}.")
    try:
        return jax.devices(name)[0]
    except RuntimeError:
        raise InputError(f"Backend `{name}` is not present here; available: {', '.join(present_backends())}.") from None


def get_devices(name: str | None, count: int | None = None) -> list:
    """The devices of backend `name` (default: JAX's default backend) that share a
    sweep's calls: all of this process's, or the first `count`."""
    first = get_device(name)
    every = list(jax.local_devices(backend=first.platform))
    if count is None:
        return every
    if int(count) != count or not 1 <= count <= len(every):
        raise InputError(f"`devices` must be a whole number from 1 to {len(every)} (the {first.platform} devices "
                         f"here), got {count}.")
    return every[: int(count)]


def fingerprint(kind: str, dev, **arguments) -> dict:
    """What a checkpoint must match to be resumed: the arguments that shape the rows
    (arrays by their digest), the backend and the versions (the device count does not
    change a row, so it may differ)."""
    import hashlib

    import jaxlib

    def plain(v):
        if isinstance(v, np.ndarray) or hasattr(v, "__array__") and not isinstance(v, (list, tuple)):
            a = np.ascontiguousarray(np.asarray(v))
            return f"{a.dtype}{list(a.shape)}:{hashlib.sha256(a.tobytes()).hexdigest()[:16]}"
        return v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)

    return {"kind": kind, **{k: plain(v) for k, v in arguments.items()}, "backend": dev.platform,
            "precision_lab": __version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "xla_flags": " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                                  if "device_count" not in f)}


def present_backends() -> list[str]:
    """The backends of BACKENDS that JAX has here (all of them, not only the default)."""
    present = []
    for b in BACKENDS:
        try:
            jax.devices(b)
        except RuntimeError:
            continue
        present.append(b)
    return present


def check_targets(targets: Sequence[float]) -> tuple[float, ...]:
    targets = tuple(float(t) for t in targets)
    if not targets:
        raise InputError("`targets` is empty; give at least one target in [0, 1].")
    for t in targets:
        if not 0.0 <= t <= 1.0:
            raise InputError(f"Target {t:g} is outside [0, 1]; a sigmoid target is a probability.")
    return targets


def sweep(
    family: str = "sigmoid",
    dtypes: Sequence[str] | None = None,
    targets: Sequence[float] = DEFAULT_TARGETS,
    forms: Sequence[str] | None = None,
    points: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    argv: Sequence[str] | None = None,
    classes: Sequence[int] = softmax.DEFAULT_CLASSES,
    sweeps: Sequence[str] = softmax.DEFAULT_SWEEPS,
    target_classes: Sequence[str] = tuple(softmax.TARGET_CLASSES),
    logits: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    mode: str = "jit",
    floor: str = "condition",
    scan_onsets: bool = False,
    causes: bool = False,
    value_range: tuple[float, float] | None = None,
    exhaustive: bool = False,
    checkpoint: str | None = None,
    devices: int | None = None,
    loss_scale: float | None = None,
) -> SweepResult:
    """Sweep every selected form over every format and target; one row each.

    Args:
      family: ``"sigmoid"``, ``"softmax"`` or ``"all"``.
      dtypes: format names (see ``formats.FORMATS``), or ``INPUT:COMPUTE`` pairs such
        as ``bfloat16:float32``: inputs on INPUT's lattice, cast to COMPUTE before the
        kernel (see ``upcast``); loss rows are judged in COMPUTE, gradient rows, cast
        back as autodiff through the cast does, in INPUT. Default
        ``formats.DEFAULT_FORMATS``, or, for `logits` of a low-precision format
        (bfloat16, float16, float8), that format alone.
      targets: sigmoid targets y in [0, 1], rounded to each format as a label would be.
      forms: form names (default: all of each family).
      points: points per row of a sampled axis (default 65536 for formats wider than
        16 bits; for a softmax row, as many as keep points × K near 2**22). Formats of
        16 bits or fewer are swept exhaustively, softmax rows while lattice × K ≤ 2**22.
      tolerance: ULPs beyond which a point is inaccurate.
      seed: the seed of every sample.
      device: ``"cpu"``, ``"gpu"`` or ``"tpu"`` (default: JAX's default backend).
      progress: called as ``progress(label, done, total)`` while points are swept.
      classes: softmax class counts K.
      sweeps: softmax sweeps: ``margin``, ``offset``, ``random`` (and ``logits``,
        implied by `logits`).
      target_classes: softmax true class: ``top`` and/or ``other``.
      logits, labels: the user's own (N, K) logit vectors (any real dtype, bfloat16 and
        float8 included; rounded to each row's format, and the rows count the vectors
        that changed) and (N,) class indices or (N, K) label distributions (soft or
        one-hot labels) for the softmax ``logits`` sweep.
      mode: ``"jit"`` (each kernel alone under ``jax.jit(jax.vmap(...))``), ``"eager"``
        (operation by operation, each result rounded to the format) or ``"strict"``
        (jit in a process started with ``XLA_FLAGS=--xla_allow_excess_precision=false``).
      floor: ``"condition"`` (errors the input's rounding forces are excused) or
        ``"none"`` (the pure ULP test); see ``classify``.
      scan_onsets: evaluate every lattice value between zero and each onset that a
        sampled axis found, making it exact (method ``scanned``); not for float64.
      causes: walk every form's jaxpr at each of its NaN and ∞ onsets and name the
        operation that broke it (row field ``cause``); by default only the forms built
        from two factors (the textbook chain products), as the walk is slow.
      value_range: (LO, HI): sweep only the logits (softmax: margins or offsets) in
        [LO, HI]: every value of the format there, or `points` of them evenly spaced
        where there are more (see ``sampling.ranged``); row field ``range``. The
        random and logits sweeps have no such axis and are unaffected.
      exhaustive: sweep every value of each format (of up to 32 bits; float64 is an
        error), or of `value_range`: onsets, counts and ``max_ulp`` then hold for the
        whole format (method ``exhaustive``).
      checkpoint: a file where the sweep's state is saved every few seconds; a sweep
        given the same arguments and file continues from it (see ``checkpoints``).
      devices: how many devices of the backend share the work (default: all of
        them); calls are spread over them, each runs the same programs.
      loss_scale: a power of two S: every ``jax.grad`` form differentiates S·L and its
        row judges the scaled gradient against S times the exact one (row fields
        ``loss_scale`` and ``judged``); hand-written gradient forms stay unscaled.
    Returns:
      a ``SweepResult`` whose ``rows`` follow the JSON schema ``precision_lab.sweep/2``.
    """
    names = ["sigmoid", "softmax"] if family == "all" else [get_family(family).name]
    if dtypes is None:
        natural = vectors.natural_format(logits) if logits is not None and "softmax" in names else None
        dtypes = [natural] if natural else formats.DEFAULT_FORMATS
    fmts = _check_common(dtypes, points, seed, tolerance, mode, floor)
    precs = [formats.precision(d) for d in dtypes]
    loss_scale = upcast.check_scale(loss_scale)
    for p in precs:
        upcast.check_scale(loss_scale, p.compute)
    if scan_onsets and any(f.bits > 32 for f in fmts):
        raise InputError("`scan_onsets` cannot scan float64 (up to 2**63 values a side); leave float64 out of `dtypes`.")
    if forms is not None:
        if not forms:
            raise InputError("`forms` is empty; give at least one form.")
        known = {f.name for n in names for f in get_family(n).forms + get_family(n).factors}
        for f in forms:
            if f not in known:
                raise InputError(f"Unknown form `{f}`; known forms are {', '.join(sorted(known))}.")
    jobs, vector_jobs = _jobs(names, precs, targets, forms, points, seed, classes, sweeps, target_classes,
                              logits, labels, value_range, exhaustive)
    devs = get_devices(device, devices)
    dev = devs[0]
    meta = run_meta(names, tolerance, seed, dev, argv, len(devs))
    meta.update(mode=mode, floor=floor)
    if loss_scale is not None:
        meta["loss_scale"] = loss_scale
    skipped = [p.name for p in precs if p.upcast] if vector_jobs else []
    if skipped or (vector_jobs and loss_scale is not None):
        meta.setdefault("warnings", []).append(
            "The softmax random and logits sweeps run in the plain formats only, unscaled"
            + (f": no such rows for {', '.join(skipped)}." if skipped else "."))
    saved = None
    if checkpoint is not None and jax.process_count() > 1:
        raise InputError("`checkpoint` works in one process; leave it out of a distributed sweep.")
    if checkpoint is not None:
        saved = checkpoints.Checkpoint(checkpoint, fingerprint(
            "sweep", dev, family=family, dtypes=list(dtypes), targets=list(targets), forms=forms, points=points,
            tolerance=tolerance, seed=seed, classes=list(classes), sweeps=list(sweeps),
            target_classes=list(target_classes), logits=logits, labels=labels, mode=mode, floor=floor,
            scan_onsets=scan_onsets, causes=causes, value_range=value_range, exhaustive=exhaustive,
            **({"loss_scale": loss_scale} if loss_scale is not None else {})))
    total = sum(len(j[2]) * len(upcast.groups(j[0], j[1], j[5], loss_scale)) for j in jobs)
    done = 0
    rows = []
    for plain_fam, plain_chosen, axis, target, extra, prec in jobs:
        label = " ".join([plain_fam.name, *([extra["sweep"], f"K={extra['classes']}", extra["target_class"]] if extra
                                            else [f"y={target:g}"]), prec.name])
        run_groups = upcast.groups(plain_fam, plain_chosen, prec, loss_scale)
        order = [f.name for f in plain_chosen]
        job_rows = []
        for group in run_groups:  # one engine run per result format
            fam, chosen = group.family, group.forms
            key = f"{len(rows) + len(job_rows)} {label}" + (f" {group.out.name}" if len(run_groups) > 1 else "")
            if saved and saved.rows(key) is not None:  # finished before the interruption
                job_rows.extend(saved.rows(key))
                done += len(axis)
                continue
            resume = saved.resume(key) if saved else None
            done += resume["next"] if resume else 0

            def tick(n, label=label):
                nonlocal done
                done += n
                if progress:
                    progress(label, done, total)

            if progress:  # the row begins: its total is known before its first call
                progress(label, done, total)
            with jax.default_device(dev):  # the rows' mechanisms evaluate the factors there too
                out = run_target(fam, chosen, axis, target, tolerance, devs, tick=tick, mode=mode, floor=floor,
                                 resume=resume, save=saved.saver(key) if saved else None, out_fmt=group.out)
                new = rows_from(fam, out, dict(extra, mode=mode, floor=floor, batch=batch_size(fam),
                                               **({"range": list(value_range)} if value_range else {})),
                                mechanisms=not group.derived)
                for form, row in zip(chosen, new):
                    row.update(group.fields[form.name])
                if scan_onsets and not axis.exhaustive:
                    for form, row in zip(chosen, new):
                        def scanned(side, n_done, n_total, name=f"scan {label} {form.name}"):
                            if progress:
                                progress(f"{name} z {'<' if side == 'neg' else '>'} 0", n_done, n_total)

                        row["onset"] = engine.scan_onsets(fam, form, axis.fmt, target, row["onset"], tolerance, dev,
                                                          mode, floor, progress=scanned, out_fmt=group.out)
                for form, row in zip(chosen, new):
                    # the walk explains the family's own kernels: not a derived (upcast or scaled) one
                    if (causes or form.factors) and not group.derived:
                        row["cause"] = onset_causes(fam, form, axis.fmt, target, row["onset"], dev, mode)
                if saved:
                    saved.finish(key, new)
                job_rows.extend(new)
        rows.extend(sorted(job_rows, key=lambda r: order.index(r["form"])))
    if logits is not None and vector_jobs:  # --logits adds its sweep to any named ones: say which ran
        ran = dict.fromkeys([e["sweep"] for *_, e, _p in jobs if e.get("sweep")] + [v.kind for v in vector_jobs])
        given = next(len(v.logits) for v in vector_jobs if v.kind == "logits")
        meta.setdefault("notes", []).append("Softmax sweeps run: " + ", ".join(
            f"logits ({given} vectors given)" if s_ == "logits" else s_ for s_ in ran) + ".")
    for vs in vector_jobs:
        meta.setdefault("notes", []).extend(vectors.notes(vs, forms))
        if progress:  # the vector sweeps have no axis: say what runs (their points are not in the total)
            progress(f"softmax {vs.kind} sweep, K={vs.classes} (vectors)", done, total)
        with jax.default_device(dev):
            for row in vectors.sweep_vectors(vs, [p.input for p in precs if not p.upcast], forms, tolerance, seed,
                                             mode, floor):
                rows.append(dict(row, mode=mode, floor=floor, batch=batch_size(softmax.family(vs.classes))))
    if "softmax" in names:
        if progress:
            progress("how jnp.sum accumulates", done, total)
        meta["accumulation"] = accumulation.measure(list(dict.fromkeys(f.name for f in fmts)), dev)
    if loss_scale is not None:
        if progress:
            progress("loss-scale advice", done, total)
        meta["loss_scale_advice"] = _scale_advice(names, precs, targets, forms, classes, target_classes, dev,
                                                  tolerance, mode, floor, loss_scale)
    if saved:
        saved.remove()
    return SweepResult(meta, rows)


def _scale_advice(names, precs, targets, forms, classes, target_classes, dev, tolerance, mode, floor,
                  scale: float) -> list:
    """`loss_scale_advice` for every jax.grad form swept, in each format of up to 16 bits,
    and each target (softmax: the margin sweep, at each K whose lattice × K fits a row)."""
    from .analysis import loss_scaling

    out = []
    for name in names:
        plans = ([(get_family(name), t) for t in check_targets(targets)] if name == "sigmoid" else
                 [(softmax.family(k), softmax.case("margin", tc)) for k in classes for tc in target_classes])
        for fam, target in plans:
            for form in _select(fam, forms):
                for prec in precs:
                    if form.quantity != "grad" or form.loss is None or not prec.input.exhaustive or \
                            prec.input.lattice_size * fam.width > softmax.ELEMENTS_PER_ROW:
                        continue
                    with jax.default_device(dev):
                        a = loss_scaling.advice(fam, prec, target, form.name, dev, tolerance, mode, floor, scale)
                    if fam.width > 1:
                        a.update(target=None, classes=fam.width, sweep="margin",
                                 target_class=softmax.decode(target)[1])
                    out.append(a)
    return out


def check(fn: Callable | str, dtypes: Sequence[str] = formats.DEFAULT_FORMATS, targets: Sequence[float] = DEFAULT_TARGETS,
          classes: Sequence[int] | None = None, kwargs: dict | None = None, name: str | None = None,
          points: int | None = None, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0,
          device: str | None = None, progress: Callable[[str, int, int], None] | None = None,
          argv: Sequence[str] | None = None, sweeps: Sequence[str] = softmax.SWEEPS,
          target_classes: Sequence[str] = tuple(softmax.TARGET_CLASSES), mode: str = "jit",
          floor: str = "condition", causes: bool = True, reference=None,
          value_range: tuple[float, float] | None = None, exhaustive: bool = False,
          devices: int | None = None, loss_scale: float | None = None) -> SweepResult:
    """Sweep a user's function and its gradient like a built-in family; one row per
    quantity (``loss``, ``grad``), format and target.

    Args:
      fn: a JAX function, or ``"FILE.py:NAME"`` / ``"package.module:NAME"``. Binary
        kind: ``fn(z, y) -> scalar``; with `classes`, ``fn(logits, label) -> scalar``.
      classes: class counts K of the multiclass kind (swept with the softmax
        family's `sweeps` and `target_classes`); None for the binary kind.
      kwargs: extra keyword arguments of `fn`.
      causes: name the operation that broke each row at its NaN, ∞ and 0 onsets; where
        a known rewrite (see ``fixes``) sits on such a line, the rewritten function is
        swept too, as form ``NAME+fix``, and each row's ``fix`` gives the counts before
        and after.
      reference: measure against this function instead (a JAX function or spec, the
        same loss written stably): its jaxpr on the reals is the exact value.
      value_range: (LO, HI): only the logits (margins, offsets) in [LO, HI], as in `sweep`.
      exhaustive, devices: as in `sweep`.
      dtypes: formats, or ``INPUT:COMPUTE`` pairs such as ``bfloat16:float32``: the
        function is called as ``fn(z.astype(COMPUTE), y.astype(COMPUTE))`` on INPUT's
        values; its loss row is judged in COMPUTE, the gradient (jax.grad of that
        composition with respect to the INPUT logits, so in INPUT) in INPUT.
      loss_scale: a power of two S: the gradient row is jax.grad of S·fn, judged as
        S·∂L/∂z in the format against S times the exact gradient.
      The other arguments are `sweep`'s. float64 rows default to
      ``user.FLOAT64_POINTS`` points (their references are all arbitrary precision).
    Returns:
      a ``SweepResult`` whose rows are family ``check``, form the function's name,
      with ``source``, ``quantity`` and ``tiers`` (points each reference tier decided).
    """
    from .families import user

    source_file = None
    if isinstance(fn, str):
        spec = fn
        fn, source_file = user.load(spec)
        name = name or spec.rsplit(":", 1)[1]
    else:
        spec = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__name__', 'fn')}"
        source_file = getattr(getattr(fn, "__code__", None), "co_filename", None)
    _check_common(dtypes, points, seed, tolerance, mode, floor)
    precs = [formats.precision(d) for d in dtypes]
    loss_scale = upcast.check_scale(loss_scale)
    for p in precs:
        upcast.check_scale(loss_scale, p.compute)
    kwargs = dict(kwargs or {})
    if classes is None:
        targets = check_targets(targets)
    else:
        user.check_sweeps(sweeps, target_classes)
        for k in classes:
            if int(k) != k or k < 2:
                raise InputError(f"K = {k} is not a class count; a multiclass loss needs K ≥ 2 whole classes.")
    devs = get_devices(device, devices)
    dev = devs[0]
    meta = run_meta(["check"], tolerance, seed, dev, argv, len(devs))
    source = {"function": spec, "kwargs": kwargs}
    meta.update(mode=mode, floor=floor, source=source)
    if loss_scale is not None:
        meta["loss_scale"] = loss_scale
    against = against_name = None
    if reference is not None:
        against, against_name = (user.load(reference)[0], reference) if isinstance(reference, str) else (
            reference, getattr(reference, "__name__", "reference"))
        source["reference"] = against_name
    ks = list(classes or [None])
    # the function as called (`plain`), and as each row runs it: one family per class count and
    # compute format of an upcast (None: the plain formats), with the loss scale; see user._as_run
    plain = {k: user.family(fn, name, kwargs, k, against, against_name) for k in ks}
    computed_in = lambda p: p.compute.name if p.upcast else None  # noqa: E731
    fams = {(k, computed_in(p)): user.family(fn, name, kwargs, k, against, against_name, computed_in(p), loss_scale)
            for k in ks for p in precs}
    for k in ks:
        for p in precs:  # the function is called in the compute format: it must take and return it
            user.validate(plain[k], p.compute, targets[0] if classes is None else 0, source_file)
            if against is not None:
                user.validate(user.family(against, against_name, kwargs, k), p.compute,
                              targets[0] if classes is None else 0)
    missing = sorted({m for (k, c), fam in fams.items() for f in fam.forms for p in precs if computed_in(p) == c
                      for m in f.reference.unsupported(p.input, fam.label(0, p.input),
                                                       (fam.width,) if fam.width > 1 else ())})
    if missing:  # measured against itself in float64: say so, and drop the float64 rows
        meta["warnings"] = [f"The exact evaluator has no rule for {', '.join(missing)}: rows are measured against "
                            "the function run in float64, and float64 rows are skipped."]
        fams = {key: dataclasses.replace(f, reference_name=f"float64 (XLA): no exact rule for {', '.join(missing)}")
                for key, f in fams.items()}
        precs = [p for p in precs if p.compute.bits < 64]
        if not precs:
            raise InputError(f"The exact evaluator has no rule for {', '.join(missing)}, so float64 cannot be "
                             "checked; add a narrower format.")

    def plan_of(fam, prec, keep=lambda axis, target, extra: True):
        return [(fam, prec, *j) for j in user.jobs(fam, [prec.input], targets, points, seed, sweeps, target_classes,
                                                     value_range, exhaustive) if keep(*j)]

    def outs(fam, prec) -> list:
        """(result format, forms, each one's row fields) per engine run: a loss computed in a
        wider format is judged there, a gradient in the input's format (see upcast)."""
        by_out: dict = {}
        for f in fam.forms:
            value, _, fields = upcast.judging(fam.axis, f.quantity, True, prec, loss_scale)
            by_out.setdefault(value, []).append((f, fields))
        return [(o, tuple(f for f, _ in fs), [fl for _, fl in fs]) for o, fs in by_out.items()]

    plan = [item for k in ks for p in precs for item in plan_of(fams[(k, computed_in(p))], p)]
    counter = {"done": 0, "total": sum(len(j[2]) * len(outs(j[0], j[1])) for j in plan)}

    def run(plan, walk_causes):
        """The rows of `plan`, each with the family it came from."""
        rows = []
        for fam, prec, axis, target, extra in plan:
            label = " ".join([fam.forms[0].name, *([extra["sweep"], f"K={extra['classes']}", extra["target_class"]]
                                                   if extra else [f"y={target:g}"]), prec.name])

            def tick(n, label=label):
                counter["done"] += n
                if progress:
                    progress(label, counter["done"], counter["total"])

            for f in fam.forms:
                f.reference.tiers.clear()
            if progress:  # the row begins: its total is known before its first call
                progress(label, counter["done"], counter["total"])
            for out_fmt, forms, fields in outs(fam, prec):
                with jax.default_device(dev):
                    out = run_target(fam, forms, axis, target, tolerance, devs, tick=tick, mode=mode, floor=floor,
                                     out_fmt=out_fmt)
                    new = rows_from(fam, out, dict(extra, mode=mode, floor=floor, batch=batch_size(fam), source=source,
                                                   **({"range": list(value_range)} if value_range else {})))
                    for form, row, how in zip(forms, new, fields):
                        row.update(how)
                        row["tiers"] = _tiers(form.reference.tiers.values())
                        row["fix"] = None  # filled in where a rewrite at a cause is swept
                        if walk_causes:  # the walk of the program that ran: cast, scaled, as the row's kernel
                            row["cause"] = onset_causes(fam, form, axis.fmt, target, row["onset"], dev, mode,
                                                        classes=CHECK_CAUSE_CLASSES)
                rows.extend((fam, r) for r in new)
        return rows

    owned = run(plan, causes)
    rows = [r for _, r in owned]
    for k in ks:  # a function whose operations change with the format (e.g. a branch on the dtype)
        differs = len({user.signature(plain[k], p.compute) for p in precs}) > 1
        for r in rows:
            if r["form"] == plain[k].forms[0].name and r.get("classes") == k:
                r["jaxpr_differs_across_formats"] = differs
    # the known rewrites at the lines where a row broke, swept as NAME+fix: before and after
    for (k, c), fam in fams.items():
        mine = [r for f, r in owned if f is fam]
        mine_precs = [p for p in precs if computed_in(p) == c]
        found = _fixes_at_causes(fam, mine_precs[0].input, mine) if mine else []
        if not found:
            continue
        fixed = user.fix_family(fam, found, loss_scale)
        failing = {(r["dtype"], r.get("target"), r.get("sweep"), r.get("target_class")) for r in mine
                   if not r["stable"]}  # only where there is something to fix
        plan = [item for p in mine_precs for item in plan_of(
            fixed, p, lambda axis, target, extra: (axis.fmt.name, None if extra else target, extra.get("sweep"),
                                                   extra.get("target_class")) in failing)]
        counter["total"] += sum(len(j[2]) * len(outs(j[0], j[1])) for j in plan)
        # judged by counts and onsets; `check` the fixed function for its causes
        after = [r for _, r in run(plan, False)]
        _attach_fixes(mine, after, found)
        rows.extend(after)
    return SweepResult(meta, rows)


def _fixes_at_causes(fam: Family, fmt: formats.Format, rows: list[dict]) -> list:
    """The known rewrites of `fam`'s loss (fixes.find) on a line where one of its rows
    first lost a value or went non-finite."""
    from .families import rewrites as fixes

    lines = set()
    for r in rows:
        for sides in (r.get("cause") or {}).values():
            for why in sides.values():
                for step in (why["first_lost"], why["first_nonfinite"]):
                    if step:
                        lines.add(step["source"])
    if not lines:
        return []
    x = jax.ShapeDtypeStruct((fam.width,) if fam.width > 1 else (), fmt.dtype)
    return [r for r in fixes.find(fam.forms[0].kernel, x, fam.label(0, fmt)) if r.source in lines]


FIX_CLASSES = ("nan", "inf", "zero", "unresolved")  # what a fix's before and after count


def _nearer(after, before) -> bool:
    """A failure now begins nearer zero than it did (or where there was none)."""
    return after is not None and (before is None or abs(after) < abs(before))


def _attach_fixes(before: list[dict], after: list[dict], rewrites) -> None:
    """Each original row's `fix`: the rewrites, and its failing counts before and after."""
    key = lambda r: (r["quantity"], r["dtype"], r.get("target"), r.get("sweep"), r.get("target_class"))  # noqa: E731
    fixed = {key(r): r for r in after}
    for r in before:
        f = fixed.get(key(r))
        if f is None:
            continue
        b = {c: r["counts"][c] for c in FIX_CLASSES + ("zero_subnormal",)}
        a = {c: f["counts"][c] for c in FIX_CLASSES + ("zero_subnormal",)}
        # what counts: NaN, ∞ and normal values lost to 0 (a flushed subnormal is a lesser loss)
        lost = lambda c: c["nan"] + c["inf"] + c["zero"] - c["zero_subnormal"]  # noqa: E731
        judged = ("nan", "inf") + (("zero",) if a["zero"] > a["zero_subnormal"] else ())
        onsets = {c: {"before": [r["onset"][c]["neg"], r["onset"][c]["pos"]],
                      "after": [f["onset"][c]["neg"], f["onset"][c]["pos"]]} for c in ("nan", "inf", "zero")}
        r["fix"] = {"form": f["form"], "rewrites": [w.to_json() for w in rewrites], "before": b, "after": a,
                    "onsets": onsets, "better": lost(a) < lost(b) and all(a[c] <= b[c] for c in ("nan", "inf"))
                    and not any(_nearer(onsets[c]["after"][k], onsets[c]["before"][k]) for c in judged for k in (0, 1))}
        f["fix_of"] = r["form"]


CHECK_CAUSE_CLASSES = ("nan", "inf", "zero")


def _tiers(stats) -> dict:
    from .numerics.reference import Tiers

    total = Tiers()
    for s in stats:
        for f in ("interval", "exact", "undefined", "cap", "budget", "float64", "rewritten", "interval_s", "exact_s"):
            setattr(total, f, getattr(total, f) + getattr(s, f))
    return total.to_json()


def _check_common(dtypes, points, seed, tolerance, mode, floor) -> list:
    """The formats of `dtypes`, after one sentence for any bad common argument."""
    fmts = [formats.precision(d).input for d in dtypes]
    if not fmts:
        raise InputError("`dtypes` is empty; give at least one format.")
    if points is not None and int(points) < 1:
        raise InputError(f"`points` must be a positive integer, got {points}.")
    if int(seed) != seed or seed < 0:
        raise InputError(f"`seed` must be a non-negative integer, got {seed}.")
    if not tolerance >= 0:
        raise InputError(f"`tolerance` must be a non-negative number of ULPs, got {tolerance}.")
    check_mode(mode)
    if floor not in FLOORS:
        raise InputError(f"Unknown floor `{floor}`; choose one of {', '.join(FLOORS)}.")
    return fmts


def _jobs(names, fmts, targets, forms, points, seed, classes, sweeps, target_classes, logits, labels,
          value_range=None, exhaustive=False):
    """What a sweep runs: (family, forms, axis, target, extra row fields, precision) per
    row group, and the softmax vector sweeps. `fmts` are formats or precisions (an
    input format and the one it is computed in; see ``upcast``)."""
    precs = [p if isinstance(p, formats.Precision) else formats.Precision(p, p) for p in fmts]
    jobs = []  # (family, forms, axis, target, extra row fields, precision)
    if "sigmoid" in names:
        fam = sigmoid.FAMILY
        chosen = _select(fam, forms)
        for prec in precs:
            axis = axis_for(prec.input, points, seed, value_range, exhaustive)
            jobs += [(fam, chosen, axis, t, {}, prec) for t in check_targets(targets)] if chosen else []
    vector_jobs = []
    if "softmax" in names:
        plan = vectors.check_plan(classes, sweeps, target_classes, logits, labels)
        for k in plan.classes:
            fam = softmax.family(k)
            chosen = _select(fam, forms)
            for prec in precs:
                axis = softmax_axis(k, prec.input, points, seed, value_range, exhaustive)
                for sweep_name in plan.axis_sweeps:
                    for tc in plan.target_classes:
                        extra = {"sweep": sweep_name, "axis": "m" if sweep_name == "margin" else "c",
                                 "classes": k, "target_class": tc}
                        jobs += [(fam, chosen, axis, softmax.case(sweep_name, tc), extra, prec)] if chosen else []
        vector_jobs = plan.vector_sweeps if _select(softmax.family(), forms) else []
    return jobs, vector_jobs


def _select(fam: Family, forms):
    """The forms to sweep: all of the family's by default; factor forms only by name."""
    if forms is None:
        return fam.forms
    return tuple(f for f in fam.forms + fam.factors if f.name in forms)


def rows_from(fam: Family, out: Outcome, extra: dict | None = None, mechanisms: bool = True) -> list[dict]:
    rows = []
    vector = fam.width > 1
    for i, form in enumerate(out.forms):
        counts = {c: int(out.counts[i, j]) for j, c in enumerate(CLASSES)}
        counts["zero_subnormal"] = int(out.zero_subnormal[i])
        onset, intervals = onsets_and_intervals(out, i)
        row = {
            "family": fam.name,
            "quantity": form.quantity,
            "form": form.name,
            "summary": form.summary,
            "dtype": out.fmt.name,
            "compute_dtype": out.fmt.name,  # the format the kernel computes in (see `upcast`)
            "value_dtype": out.value_fmt.name,  # the format of its results, which they are judged in
            "loss_scale": None,
            "target": None if vector else out.target,
            "target_in_format": None if vector else out.target_in_format,
            "axis": fam.axis,
            "points": out.points,
            "exhaustive": out.exhaustive,
            "reference": fam.reference_name or ("float64 (XLA)" if out.fmt.bits < 64 else "double-double (host)"),
            "counts": counts,
            "max_ulp": None if out.max_ulp[i] < 0 else float(out.max_ulp[i]),
            "stable": all(counts[c] == 0 for c in UNSTABLE),
            "onset": onset,
            "intervals": intervals,
            "constants": constant_notes(form, out.value_fmt),
            "profile": _profile(out, i),
        }
        row.update(extra or {})
        if form.quantity == "loss" and counts["zero"] > counts["zero_subnormal"] and fam.exact is None:
            row["zero_exact_max"] = _zero_exact_max(fam, form, out, intervals["zero"])
        if counts["zero"] and fam.exact is None:
            row["zero_onset_subnormal"] = _zero_onset_subnormal(fam, form, out, onset["zero"],
                                                                (extra or {}).get("mode", "jit"))
        if form.factors and mechanisms:
            row["mechanism"] = _mechanism(fam, form, out, onset["nan"])
        rows.append(row)
    return rows


def _zero_exact_max(fam: Family, form, out: Outcome, zeros: dict) -> float | None:
    """The largest exact loss among the points computed as 0: a built-in loss is
    quasi-convex along the swept axis (convex in the logits, or unimodal as ½(σ − y)²),
    so on each band of zeros it is largest at an end. None when not every band is listed."""
    if zeros["total"] > len(zeros["listed"]):
        return None
    ends = np.array([e for band in zeros["listed"] for e in band], np.float64)
    exact, _ = host_reference(fam, [form], ends, float(out.target))[0]
    return float(np.max(np.abs(exact)))


def _zero_onset_subnormal(fam: Family, form, out: Outcome, onset: dict, mode: str) -> dict:
    """Per side, whether the first 0 is a flush (every entry computed 0 there has an
    exact value that is subnormal in the format the row is judged in) or a lost normal
    value; None where no 0 lies. The kernel runs again at those points, as in the sweep."""
    sides = [s for s in ("neg", "pos") if onset[s] is not None]
    if not sides:
        return {"neg": None, "pos": None}
    x = np.array([onset[s] for s in sides], np.float64)
    exact, _ = host_reference(fam, [form], x, float(out.target))[0]
    got = kernel_outputs(fam, [form], out.fmt, formats.to_ordinal(out.fmt.cast(x), out.fmt), out.target, None,
                         mode)[0].astype(np.float64)
    exact = np.broadcast_to(exact, got.shape)
    fmt = out.value_fmt
    lost = (got == 0) & (np.abs(fmt.cast(exact).astype(np.float64)) > 0)
    normal = lost & (np.abs(exact) >= fmt.smallest_normal)
    flush = ~normal.reshape(len(sides), -1).any(axis=1)
    return {s: (bool(flush[sides.index(s)]) if s in sides else None) for s in ("neg", "pos")}


CAUSE_CLASSES = ("nan", "inf")  # the onsets whose operation a row names
CAUSE_MAX_WIDTH = 64  # vectors of more entries are not walked (exact arithmetic on each entry)


def onset_causes(fam: Family, form, fmt: formats.Format, target, onset: dict, device,
                 mode: str = "jit", classes: Sequence[str] = CAUSE_CLASSES) -> dict | None:
    """At each NaN and ∞ onset, the operation that broke the form: its jaxpr walked op
    by op next to exact values (see ``walk``), against what the row's own compiled
    program computed there, which says whether XLA rewrote the expression."""
    from .analysis import walk

    if fam.width > CAUSE_MAX_WIDTH:
        return None
    out = {}
    for cls in classes:
        for side in ("neg", "pos"):
            z = onset[cls][side]
            if z is None:
                continue
            o = formats.to_ordinal(fmt.cast([z]), fmt)
            jitted = kernel_outputs(fam, [form], fmt, o, target, device, mode)[0][0]
            if fam.exact is not None:  # a user's function: walk its kernel on the inputs the sweep made
                x = np.asarray(fam.inputs(jnp.asarray(fmt.cast([z])), fam.case(target)))[0]
                w = walk.walk(form.kernel, (x, fam.label(target, fmt)), fmt.name, name=form.name, jitted=jitted)
            elif fam.width > 1:
                w = walk.explain(form.name, fmt.name, z, family=fam.name, classes=fam.width,
                                 target_class=softmax.decode(target)[1], sweep=softmax.decode(target)[0],
                                 jitted=jitted)
            else:
                w = walk.explain(form.name, fmt.name, z, float(target), jitted=jitted)
            c = w.cause()
            out.setdefault(cls, {})[side] = {
                "z": z, "first_nonfinite": _step(c["first_nonfinite"]), "first_lost": _step(c["first_lost"]),
                "flushes": [_step(f) for f in c["flushes"]], "rewritten": c["rewritten"], "text": w.summary()}
    return out


def _step(step: dict | None) -> dict | None:
    """The short form of a walk step: what the table and JSON name."""
    if step is None:
        return None
    return {k: step[k] for k in ("index", "primitive", "source", "computed", "exact")}


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


def _mechanism(fam: Family, form, out: Outcome, nan_onset: dict) -> dict:
    """The two factors' computed values at each NaN onset (e.g. ∞ × 0); for a vector
    gradient, at its first NaN entry."""
    mech = {}
    for side in ("neg", "pos"):
        z = nan_onset[side]
        if z is None:
            continue
        names = (form.name, *form.factors)
        prod, a, b = (np.atleast_1d(v[0]).astype(np.float64) for v in
                      kernel_values(fam.name, names, out.fmt.name, [z], out.target, classes=fam.width))
        j = int(np.argmax(np.isnan(prod)))
        a, b = (float(v[j] if v.size > 1 else v[0]) for v in (a, b))
        mech[side] = {"z": z, form.factors[0]: _json_float(a), form.factors[1]: _json_float(b),
                      "text": f"{_fmt_factor(a)} × {_fmt_factor(b)}"}
    return mech


def _json_float(v: float):
    return v if np.isfinite(v) else ("nan" if np.isnan(v) else ("inf" if v > 0 else "-inf"))


def _fmt_factor(v: float) -> str:
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "∞" if v > 0 else "−∞"
    return "0" if v == 0 else f"{v:.3g}"


def compare_modes(family: str = "sigmoid", dtypes: Sequence[str] = formats.DEFAULT_FORMATS,
                  targets: Sequence[float] = DEFAULT_TARGETS, forms: Sequence[str] | None = None,
                  points: int | None = None, seed: int = 0, device: str | None = None,
                  classes: Sequence[int] = softmax.DEFAULT_CLASSES, sweeps: Sequence[str] = ("margin", "offset"),
                  target_classes: Sequence[str] = tuple(softmax.TARGET_CLASSES)) -> list[dict]:
    """Per row of the sweep these arguments describe (rows along an axis), the points
    where the jit and eager results differ: ``differ`` (a count of ``points``) and
    ``example`` (the one nearest zero: x, both results, the exact value)."""
    names = ["sigmoid", "softmax"] if family == "all" else [get_family(family).name]
    fmts = [formats.get(d) for d in dtypes]
    jobs, _ = _jobs(names, fmts, targets, forms, points, seed, classes,
                    [s for s in sweeps if s in softmax.SWEEPS], target_classes, None, None)
    dev = get_device(device)
    out = []
    with jax.default_device(dev):
        for fam, chosen, axis, target, extra, _ in jobs:
            for form in chosen:
                found = modes.disagreements(fam, form, axis, target, dev)
                out.append({"family": fam.name, "form": form.name, "dtype": axis.fmt.name,
                            "target": None if extra else float(target), **extra, **found})
    return out


def loss_scale_advice(family: str = "sigmoid", dtype: str = "float16", target=0.0,
                      form: str = "bce_logits_autodiff", sweep: str = "margin", classes: int = 10,
                      device: str | None = None, tolerance: float = DEFAULT_TOLERANCE, mode: str = "jit",
                      floor: str = "condition") -> dict:
    """What a loss-scaling user asks of a ``jax.grad`` form in a format (or an upcast
    ``INPUT:COMPUTE``; every input value is swept, so the input format has up to 16
    bits): the bands of logits whose gradient is lost unscaled, the smallest power of
    two S that keeps them all, and where S·L and S·∂L/∂z overflow at that S; see
    ``loss_scaling.advice``. `target` as in `kernel_values`."""
    from .analysis import loss_scaling

    fam = get_family(family, classes)
    target = _target(target, sweep)
    if fam.name == "sigmoid":
        check_targets([target])
    elif target not in softmax.CODES:
        raise InputError(f"Softmax target {target:g} is not a class: give top or other.")
    check_mode(mode)
    with jax.default_device(get_device(device)):
        return loss_scaling.advice(fam, formats.precision(dtype), target, form, get_device(device), tolerance,
                                   mode, floor)


def upcast_fixes(rows) -> list[dict]:
    """Per upcast row with its plain row in `rows`: whether computing in the wider
    format fixes the form (see ``upcast.upcast_fixes``)."""
    return upcast.upcast_fixes(rows)


def _target(target, sweep: str) -> float:
    if not isinstance(target, str):
        return float(target)
    if target not in softmax.TARGET_CLASSES or sweep not in softmax.SWEEPS:
        raise InputError(f"Target `{target}` on sweep `{sweep}` is not a softmax case; give top or other, "
                         f"on {' or '.join(softmax.SWEEPS)}.")
    return float(softmax.case(sweep, target))


def kernel_values(family: str, form_names: Sequence[str], dtype: str, xs: ArrayLike, target: float | str,
                  sweep: str = "margin", classes: int = 10, device: str | None = None,
                  mode: str = "jit") -> list[np.ndarray]:
    """What each form's kernel computes at inputs `xs` (rounded to the format first),
    compiled and called exactly as a sweep calls it (see ``engine.batch_size``).

    `target` is y for the sigmoid family; for softmax, ``"top"`` or ``"other"`` on
    the structured sweep `sweep` (or the code ``softmax.case(sweep, class)``), with
    K = `classes`. `device` picks the backend as in `sweep` (default: JAX's default
    device, which is the sweep's own inside `sweep`).
    """
    fam, fmt = get_family(family, classes), formats.get(dtype)
    target = _target(target, sweep)
    if fam.name == "sigmoid":
        check_targets([target])
    elif target not in softmax.CODES:
        raise InputError(f"Softmax target {target:g} is not a class: give top or other.")
    else:
        target = int(target)
    check_mode(mode)
    ords = formats.to_ordinal(fmt.cast(_numbers(xs)), fmt)
    dev = jax.config.jax_default_device if device is None else get_device(device)
    dev = dev or jax.devices()[0]
    forms = [fam.form(n) for n in _names(form_names)]
    return kernel_outputs(fam, forms, fmt, ords, target, dev, mode)


def evaluate(family: str, form_names: Sequence[str], dtype: str, xs: ArrayLike, target: float | str,
             sweep: str = "margin", classes: int = 10, device: str | None = None,
             mode: str = "jit", floor: str = "condition", tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Per-point values of forms at chosen inputs: computed, exact, class and ULP error.

    `xs` are rounded to the format first; the kernels run on `device`, as in
    `kernel_values`. The exact values come from the host double-double reference,
    whatever the format. Returns a dict of dicts keyed by form name: ``computed``
    (format values as float64), ``exact``, ``class``, ``ulp``, ``kappa`` (the
    relative condition number of the exact value, which sets the allowance: see
    ``classify``); and ``x`` (the inputs as float64).
    """
    fam, fmt = get_family(family, classes), formats.get(dtype)
    target = _target(target, sweep)
    x = fmt.cast(_numbers(xs))
    y = fmt.cast(target)
    names = _names(form_names)
    computed = kernel_values(family, names, dtype, x, target, classes=classes, device=device, mode=mode)
    forms = [fam.form(n) for n in names]
    refs = host_reference(fam, forms, x.astype(np.float64), float(y.astype(np.float64)))
    ref_of = distinct_references(forms)[1]
    result = {"x": x.astype(np.float64), "computed": {}, "exact": {}, "class": {}, "ulp": {}, "kappa": {}}
    for name, out, k in zip(names, computed, ref_of):
        exact, sens = (np.broadcast_to(a, out.shape) for a in refs[k])
        code, ulp, _ = per_point(*classify(out, exact, sens, fmt, tolerance, np, floor), tuple(range(1, out.ndim)))
        result["computed"][name] = out.astype(np.float64)
        result["exact"][name] = exact
        result["kappa"][name] = condition(exact, sens)
        result["class"][name] = np.array(CLASSES)[code]
        result["ulp"][name] = np.where(code >= CODE["inf"], np.nan, ulp)  # no distance to NaN or a wrong ∞
    return result


def _numbers(xs) -> np.ndarray:
    try:
        return np.asarray(xs, np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError("`xs` must be numbers.") from None


def _names(form_names) -> tuple[str, ...]:
    return (form_names,) if isinstance(form_names, str) else tuple(form_names)


def run_meta(families: Sequence[str], tolerance: float, seed: int, dev, argv, device_count: int = 1) -> dict:
    import jaxlib
    import ml_dtypes

    return {
        "device_count": device_count,
        "process_count": jax.process_count(),
        "precision_lab": __version__,
        "families": list(families),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "ml_dtypes": ml_dtypes.__version__,  # it casts targets and --logits on the host
        "backend": dev.platform,
        "device_kind": dev.device_kind,
        "x64": bool(jax.config.jax_enable_x64),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache": jax.config.jax_compilation_cache_dir,
        "tolerance_ulp": tolerance,
        "seed": seed,
        "argv": list(argv) if argv is not None else sys.argv[1:],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "classes": list(CLASSES),
    }

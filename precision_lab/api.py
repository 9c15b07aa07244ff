"""The Python API that the CLI, the scripts and the tests all use.

    >>> import precision_lab as pl
    >>> result = pl.sweep(dtypes=["bfloat16"], targets=[0.0])
    >>> row = result.row("bce_naive_chain", "bfloat16", 0.0)
    >>> row["onset"]["nan"]["pos"]
    5.5625

`sweep` and `check` build a run's specification and context and hand them to the
one pipeline (see ``pipeline``); the others look at chosen points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from jax.typing import ArrayLike

from . import pipeline
from .analysis import builtin, disagreements, loss_scaling
from .analysis.causes import explain as explain_point
from .analysis.steps import Walk
from .analysis.upcast import upcast_fixes  # noqa: F401  (part of the API)
from .engine import arrays, modes, points
from .engine import spec as specs
from .engine.context import RunContext, get_device, get_devices, present_backends  # noqa: F401
from .engine.plan import plan
from .errors import InputError
from .families import registry, softmax, softmax_reference
from .families.base import Case, Family
from .families.registry import Kind
from .families.sigmoid import check_targets
from .families.user import User, load
from .numerics import formats
from .numerics.classify import CLASSES, DEFAULT_TOLERANCE  # noqa: F401
from .result import SCHEMA, SweepResult  # noqa: F401

DEFAULT_TARGETS = (0.0, 1.0)
BACKENDS = ("cpu", "gpu", "tpu")


class _Families(Mapping):
    """Each registered family by name, at its default options (the softmax at K = 10)."""

    def __getitem__(self, name: str) -> Family:
        if name not in registry.KINDS:
            raise KeyError(name)
        return registry.KINDS[name].family()

    def __iter__(self):
        return iter(registry.KINDS)

    def __len__(self) -> int:
        return len(registry.KINDS)


FAMILIES = _Families()


def get_family(name: str, classes: int = 10) -> Family:
    """The family called `name` (one that takes K, at K = `classes`)."""
    kind = registry.get(name)
    if "classes" in kind.options:
        return kind.cases(kind.validate({"classes": [classes]}))[0][0]
    return kind.family()


def sweep(family: str | Sequence[str] = "sigmoid", dtypes: Sequence[str] | None = None,
          targets: Sequence[float] | None = None, forms: Sequence[str] | None = None, points: int | None = None,
          tolerance: float = DEFAULT_TOLERANCE, seed: int = 0, device: str | None = None,
          progress: Callable[[str, int, int], None] | None = None, argv: Sequence[str] | None = None,
          classes: Sequence[int] | None = None, sweeps: Sequence[str] | None = None,
          target_classes: Sequence[str] | None = None, logits: ArrayLike | str | None = None,
          labels: ArrayLike | str | None = None, mode: str = "jit", floor: str = "condition",
          scan_onsets: bool = False, causes: bool | None = None, value_range: tuple[float, float] | None = None,
          exhaustive: bool = False, checkpoint: str | None = None, devices: int | None = None,
          loss_scale: float | None = None) -> SweepResult:
    """Sweep every selected form over every format and case; one row each.

    Args:
      family: a family's name (``"sigmoid"``, ``"softmax"``, any registered one), several,
        or ``"all"``.
      dtypes: format names (see ``formats.FORMATS``), or ``INPUT:COMPUTE`` pairs such
        as ``bfloat16:float32``: inputs on INPUT's lattice, cast to COMPUTE before the
        kernel (see ``families.derive``); loss rows are judged in COMPUTE, gradient rows,
        cast back as autodiff through the cast does, in INPUT. Default
        ``formats.DEFAULT_FORMATS`` (with `exhaustive`, those of up to 32 bits), or,
        for `logits` of a low-precision format (bfloat16, float16, float8), that format.
      targets: sigmoid targets y in [0, 1] (default 0 and 1), rounded to each format
        as a label would be.
      forms: form names (default: all of each family).
      points: points per row of a sampled axis (default 65536 for formats wider than
        16 bits; for a softmax row, as many as keep points × K near 2**22). Formats of
        16 bits or fewer are swept exhaustively, softmax rows while lattice × K ≤ 2**22.
      tolerance: ULPs beyond which a point is inaccurate.
      seed: the seed of every sample.
      device: ``"cpu"``, ``"gpu"`` or ``"tpu"`` (default: JAX's default backend).
      progress: called as ``progress(label, done, total)`` while points are swept.
      classes, sweeps, target_classes: the softmax family's class counts K (default
        10 and 1000), sweeps (``margin``, ``offset``, ``random``; ``logits`` is implied
        by `logits`) and true class (``top`` and/or ``other``).
      logits, labels: the user's own (N, K) logit vectors (an array of any real dtype,
        bfloat16 and float8 included, or a ``.npy``/``FILE.npz:NAME`` path; rounded to
        each row's format) and (N,) class indices or (N, K) label distributions.
      mode: a registered mode (see ``engine.modes``): ``"jit"`` (each kernel alone under
        ``jax.jit(jax.vmap(...))``), ``"eager"`` (operation by operation) or ``"strict"``
        (jit in a process started with ``XLA_FLAGS=--xla_allow_excess_precision=false``).
      floor: ``"condition"`` (errors the input's rounding forces are excused) or
        ``"none"`` (the pure ULP test); see ``classify``.
      scan_onsets: evaluate every lattice value between zero and each onset that a
        sampled axis found, making it exact (method ``scanned``); not for float64.
      causes: True walks every form's jaxpr at each of its NaN and ∞ onsets (row field
        ``cause``), False none; by default (None) only the forms built from two factors
        (the chain products).
      value_range: (LO, HI): sweep only the logits (softmax: margins or offsets) in [LO, HI].
      exhaustive: every value of each format (of up to 32 bits), or of `value_range`.
      checkpoint: a file where the run's state is saved every few seconds; a run given
        the same arguments and file continues from it (see ``engine.checkpoints``).
      devices: how many devices of the backend share the work (default: all of them).
      loss_scale: a power of two S: every ``jax.grad`` form differentiates S·L and its
        row judges the scaled gradient against S times the exact one.
    Returns:
      a ``SweepResult`` whose ``rows`` follow the JSON schema ``precision_lab.sweep/2``.
    """
    kinds = registry.expand(family)
    options = {"targets": targets, "classes": classes, "sweeps": sweeps, "target_classes": target_classes,
               "logits": _array(logits, "logits"), "labels": _array(labels, "labels")}
    given = {k: v for k, v in options.items() if v is not None}
    spec = specs.build(kinds, dtypes, _for(kinds, given), forms, points, tolerance, seed, mode, floor,
                       scan_onsets, causes, value_range, exhaustive, loss_scale)
    return _run(spec, device, devices, progress, argv, checkpoint)


def _for(kinds: list[Kind], given: dict) -> dict:
    """The family options given; where several families are swept (``all``), each
    reads its own, and an option none of them takes is left to `spec.build` to refuse."""
    if len(kinds) > 1:
        taken = {k: v for k, v in given.items() if any(k in kind.options for kind in kinds)}
        return taken if taken.keys() == given.keys() else given
    return given


def _array(value, what: str):
    """An array given as such, or read from a .npy / FILE.npz:NAME path."""
    if isinstance(value, str):
        return arrays.load(value, f"`{what}`")
    return value


def _run(spec: specs.Spec, device, devices, progress, argv, checkpoint) -> SweepResult:
    context = RunContext(get_devices(device, devices), progress, checkpoint, argv)
    return pipeline.run(spec, context)


def check(fn: Callable | str, dtypes: Sequence[str] | None = None, targets: Sequence[float] | None = None,
          classes: Sequence[int] | None = None, kwargs: dict | None = None, name: str | None = None,
          points: int | None = None, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0,
          device: str | None = None, progress: Callable[[str, int, int], None] | None = None,
          argv: Sequence[str] | None = None, sweeps: Sequence[str] | None = None,
          target_classes: Sequence[str] | None = None, mode: str = "jit", floor: str = "condition",
          causes: bool = True, reference=None, value_range: tuple[float, float] | None = None,
          exhaustive: bool = False, devices: int | None = None, loss_scale: float | None = None,
          checkpoint: str | None = None, scan_onsets: bool = False) -> SweepResult:
    """Sweep a user's function and its gradient like a built-in family; one row per
    quantity (``loss``, ``grad``), format and case.

    Args:
      fn: a JAX function, or ``"FILE.py:NAME"`` / ``"package.module:NAME"``. Binary
        kind: ``fn(z, y) -> scalar``; with `classes`, ``fn(logits, label) -> scalar``.
      classes: class counts K of the multiclass kind (swept with the softmax
        family's margin and offset `sweeps` and `target_classes`); None for the binary kind.
      kwargs: extra keyword arguments of `fn`.
      causes: name the operation that broke each row at its NaN, ∞ and 0 onsets; where
        a known rewrite (see ``families.rewrites``) sits on such a line, the rewritten
        function is swept too, as form ``NAME+fix``, and each row's ``fix`` gives the
        counts before and after.
      reference: measure against this function instead (a JAX function or spec, the
        same loss written stably): its jaxpr on the reals is the exact value.
      dtypes: formats (default ``formats.DEFAULT_FORMATS``), or ``INPUT:COMPUTE`` pairs:
        the function is called as ``fn(z.astype(COMPUTE), y.astype(COMPUTE))`` on INPUT's
        values; its loss row is judged in COMPUTE, the gradient in INPUT.
      loss_scale: a power of two S: the gradient row is jax.grad of S·fn, judged as
        S·∂L/∂z in the format against S times the exact gradient.
      The other arguments are `sweep`'s. float64 rows default to
      ``families.user.FLOAT64_POINTS`` points (their references are all arbitrary precision).
    Returns:
      a ``SweepResult`` whose rows are family ``check``, form the function's name,
      with ``source``, ``quantity`` and ``tiers`` (points each reference tier decided).
    """
    kind = user_kind(fn, name, kwargs, classes, reference)
    options = {"targets": targets} if classes is None else {"classes": classes, "sweeps": sweeps,
                                                            "target_classes": target_classes}
    spec = specs.build([kind], dtypes, options, None, points, tolerance, seed, mode, floor, scan_onsets,
                       None if causes else False, value_range, exhaustive, loss_scale)
    result = _run(spec, device, devices, progress, argv, checkpoint)
    result.meta["source"] = kind.source
    rows, same = builtin.compare(kind, spec, lambda other: _run(other, device, devices, progress, argv, None))
    if same:  # the built-in stable forms of the same function, swept alike: what to rank the check against
        result.meta["same_function"] = same
        result.rows.extend(rows)
    return result


def user_kind(fn: Callable | str, name: str | None = None, kwargs: dict | None = None, classes=None,
              reference=None) -> User:
    """A user's function (or ``FILE.py:NAME``) as the family `check` sweeps."""
    source_file, spec = None, None
    if isinstance(fn, str):
        spec = fn
        fn, source_file = load(fn)
        name = name or spec.rsplit(":", 1)[1]
    else:
        source_file = getattr(getattr(fn, "__code__", None), "co_filename", None)
    against = against_name = None
    if reference is not None:
        against, against_name = (load(reference)[0], reference) if isinstance(reference, str) else (
            reference, getattr(reference, "__name__", "reference"))
    return User(fn, name, kwargs, None if classes is None else list(classes), against, against_name, source_file,
                spec)


def explain(form, dtype: str, z: float, y: float = 0.0, family: str = "sigmoid", classes: int = 10,
            target_class: str = "top", sweep: str = "margin", allowance: float = 4.0, jitted=None) -> Walk:
    """Walk a form (by name, or any kernel ``f(z, y)``) at logit (or margin, offset) `z`,
    operation by operation, next to the exact value of each step; for the softmax
    family the case is the true class (`target_class` top or other) on the structured
    `sweep` (margin or offset), with K = `classes`."""
    from .analysis.walk import walk

    if callable(form):
        return walk(form, (z, y), dtype, allowance)
    fam, case = _case(family, y, sweep, target_class, classes)
    return explain_point(fam, fam.form(form), formats.get(dtype), z, fam.target_of(case), allowance, jitted)


def _case(family: str, target, sweep: str, target_class: str, classes: int) -> tuple[Family, Case]:
    """The family and case a point of `family` is taken at (a sigmoid target, or a
    structured softmax case)."""
    kind = registry.get(family)
    if "classes" in kind.options:
        if int(classes) != classes or classes < 2:
            raise InputError(f"K = {classes} is not a class count; a softmax needs K ≥ 2 whole classes.")
        softmax.check_case(sweep, target_class)
        fam = get_family(family, int(classes))
        return fam, Case(classes=int(classes), sweep=sweep, target_class=target_class)
    if "targets" in kind.options:
        return kind.family(), Case(target=check_targets([target])[0])
    return kind.cases(kind.validate({}))[0]


def _point_case(family: str, target, sweep: str, classes: int) -> tuple[Family, float]:
    """The family at K = `classes` and the number its programs take for `target` (a
    sigmoid y; a softmax ``"top"``/``"other"`` on `sweep`, or its case code)."""
    if isinstance(target, str):
        fam, case = _case(family, 0.0, sweep, target, classes)
        return fam, fam.target_of(case)
    fam = get_family(family, classes)
    if fam.name == "sigmoid":
        check_targets([target])
    elif fam.name == "softmax" and float(target) not in softmax_reference.CODES:
        raise InputError(f"Softmax target {target:g} is not a class: give top or other.")
    return fam, float(target)


def kernel_values(family: str, form_names: Sequence[str], dtype: str, xs: ArrayLike, target: float | str,
                  sweep: str = "margin", classes: int = 10, device: str | None = None,
                  mode: str = "jit") -> list[np.ndarray]:
    """What each form's kernel computes at inputs `xs` (rounded to the format first),
    compiled and called exactly as a sweep calls it (see ``engine.programs.batch_size``).

    `target` is y for the sigmoid family; for softmax, ``"top"`` or ``"other"`` on the
    structured sweep `sweep`, with K = `classes`. `device` picks the backend as in
    `sweep` (default: JAX's default device, which is the sweep's own inside `sweep`)."""
    fam, t = _point_case(family, target, sweep, classes)
    return points.kernel_values(fam, [fam.form(n) for n in _names(form_names)], formats.get(dtype), _numbers(xs), t,
                                None if device is None else get_device(device), modes.get(mode))


def evaluate(family: str, form_names: Sequence[str], dtype: str, xs: ArrayLike, target: float | str,
             sweep: str = "margin", classes: int = 10, device: str | None = None, mode: str = "jit",
             floor: str = "condition", tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Per-point values of forms at chosen inputs: computed, exact, class and ULP error
    (see ``engine.points.evaluate``)."""
    fam, t = _point_case(family, target, sweep, classes)
    return points.evaluate(fam, [fam.form(n) for n in _names(form_names)], formats.get(dtype), _numbers(xs), t,
                           None if device is None else get_device(device), modes.get(mode), floor, tolerance)


def compare_modes(family: str = "sigmoid", dtypes: Sequence[str] = formats.DEFAULT_FORMATS,
                  targets: Sequence[float] | None = None, forms: Sequence[str] | None = None,
                  points: int | None = None, seed: int = 0, device: str | None = None,
                  classes: Sequence[int] | None = None, sweeps: Sequence[str] = ("margin", "offset"),
                  target_classes: Sequence[str] | None = None) -> list[dict]:
    """Per row of the sweep these arguments describe (rows along an axis), and per
    mode that runs in this process besides jit (eager, and any registered one), the
    points where the two modes' results differ: ``differ`` (a count of ``points``)
    and ``example`` (the one nearest zero: x, both results, the exact value)."""
    kinds = registry.expand(family)
    given = {k: v for k, v in {"targets": targets, "classes": classes, "target_classes": target_classes,
                               "sweeps": [s for s in sweeps if s in softmax.SWEEPS]}.items() if v is not None}
    taken = {k: v for k, v in given.items() if any(k in kind.options for kind in kinds)}
    return compare(specs.build(kinds, dtypes, taken, forms, points, seed=seed), device)


def compare(spec: specs.Spec, device: str | None = None) -> list[dict]:
    """`compare_modes` of a run's specification (a result's ``spec``: `sweep` or `check`)."""
    dev = get_device(device)
    out = []
    for mode in [m for m in modes.MODES.values() if m != modes.JIT and m.in_process]:
        for job in plan(spec).jobs:
            for form in job.forms:
                found = disagreements.disagreements(job.family, form, job.axis, job.target, dev, mode)
                out.append({"family": job.family.name, "form": form.name, "quantity": form.quantity,
                            "dtype": job.axis.fmt.name, "target": job.case.target, **job.case.fields(), **found})
    return out


def loss_scale_advice(family: str = "sigmoid", dtype: str = "float16", target=0.0,
                      form: str = "bce_logits_autodiff", sweep: str = "margin", classes: int = 10,
                      device: str | None = None, tolerance: float = DEFAULT_TOLERANCE, mode: str = "jit",
                      floor: str = "condition") -> dict:
    """What a loss-scaling user asks of a ``jax.grad`` form in a format (or an upcast
    ``INPUT:COMPUTE``; every input value is swept, so the input format has up to 16
    bits): the bands of logits whose gradient is lost unscaled, the smallest power of
    two S that keeps them all, and where S·L and S·∂L/∂z overflow at that S; see
    ``analysis.loss_scaling.advice``. `target` as in `kernel_values`."""
    import jax

    fam, t = _point_case(family, target, sweep, classes)
    dev = get_device(device)
    with jax.default_device(dev):
        return loss_scaling.advice(fam, formats.precision(dtype), t, form, dev, tolerance, modes.get(mode), floor)


def figure_sweep(dtypes: Sequence[str] | None = None, progress: Callable | None = None) -> SweepResult:
    """The sweep the error and onset figures draw: the sigmoid family (targets 0 and 1)
    and the softmax family's margin sweep (K = 10, both target classes) over `dtypes`
    (default: ``formats.DEFAULT_FORMATS``)."""
    return sweep("all", dtypes=tuple(dtypes or formats.DEFAULT_FORMATS), sweeps=["margin"], classes=[10],
                 progress=progress)


def _numbers(xs) -> np.ndarray:
    try:
        return np.asarray(xs, np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError("`xs` must be numbers.") from None


def _names(form_names) -> tuple[str, ...]:
    return (form_names,) if isinstance(form_names, str) else tuple(form_names)


def policy(fn: Callable | str, dtypes: Sequence[str] = ("bfloat16",), targets: Sequence[float] = (0.0, 1.0),
           wide: str = "float32", value_range: tuple[float, float] | None = None, tolerance: float | None = None,
           kwargs: dict | None = None, name: str | None = None, classes: int | None = None,
           progress: Callable[[str], None] | None = None, max_hours: float = 0.0) -> dict:
    """Which lines of a loss must compute in `wide` (see ``analysis.policy``).

    Args:
      fn: ``fn(z, y) -> scalar`` (with `classes` K, ``fn(logits, label) -> scalar``), or
        ``"FILE.py:NAME"``.
      dtypes: formats of 16 bits or less (or a `value_range` of at most 2**22 values).
      targets: the sigmoid targets y proven (a multiclass function: both softmax sweeps,
        margin and offset, with the true class on top and not).
      wide: the wider format the chosen lines compute in.
      value_range: (LO, HI): prove only the logits in [LO, HI] (default: every value).
      tolerance: also require every error to be at most this many ULPs.
      max_hours: refuse (InputError) a search whose estimated time exceeds it (0: none).
    Returns:
      ``{"schema": "precision_lab.policy/1", "function", "source_file", "formats": [...]}``,
      one entry per format: the verified policy (`policy`: its lines and which search
      proved it), the side-by-side `table`, the `tradeoff` per number of lines, the
      `units` (candidate lines with their primitives), the `rewrites` check proposes,
      the range proven and the points outside it, and the search's `cost`.
    """
    from .analysis import policy as policies

    from .output.policy_edit import edited

    kind = user_kind(fn, name, kwargs, None if classes is None else [classes])
    found = [policies.policy(kind.fn, kind.fn_name, kwargs, d, wide, targets, value_range, tolerance, progress,
                             classes=classes, max_hours=max_hours) for d in dtypes]
    for p in found:  # the policy as the edit of the user's code (a rendering of the proven function)
        p["edit"] = None if p["policy"] is None else edited(kind.fn, p["policy"]["lines"], wide)
    return {"schema": "precision_lab.policy/1", "function": kind.spec, "source_file": kind.source_file,
            "formats": found}

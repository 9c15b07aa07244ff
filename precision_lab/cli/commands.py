"""The commands `sweep` and `check` (one path: a run of the pipeline, its output and
gates), `explain`, `table` and `diff`."""

from __future__ import annotations

import json
import os
import sys

from .. import interrupts
from ..analysis import diffs
from ..engine import arrays, checkpoints, modes
from ..families import registry
from ..families.softmax_vectors import natural_format
from ..families.user import parse_kwargs
from ..numerics import formats
from ..output import report, writers
from ..result import SweepResult
from . import running
from .parser import UsageError
from .running import Interrupted, console, with_progress

SWEEP_ADVICE = ("ask for fewer --points, sweep part of the axis with --range, or give --max-hours (--exhaustive "
                "sweeps every value of a format up to 32 bits, streamed).")
CHECK_ADVICE = ("ask for fewer --points, check part of the axis with --range, or give --max-hours (every value "
                "goes through the exact tiers).")


def sweep(args, argv) -> int:
    from .. import api

    kinds = registry.expand(args.family)
    options = {name: getattr(args, name) for name in registry.OPTIONS if getattr(args, name, None) is not None}
    options.update(_logits(args, options))
    if options.get("logits") is not None:
        k = options["logits"].shape[-1] if options["logits"].ndim == 2 else None
        if args.classes and k is not None and k not in args.classes:
            raise UsageError(f"--logits holds K = {k} classes but --classes asks for {','.join(map(str, args.classes))}.")
        options.setdefault("classes", [k] if k and k >= 2 else None)
        options["sweeps"] = sorted(set(args.sweeps or []) | {"logits"})
        if args.family == "all" and "--family" not in argv:
            kinds = registry.expand("softmax")
        if natural_format(options["logits"]) and args.dtypes is None:  # bfloat16 or float8 logits
            args.dtypes = [natural_format(options["logits"])]
    forms = [f.name for kind in kinds for f in kind.forms()]
    return _run(args, argv, running.gates(args.fail_on, forms), SWEEP_ADVICE,
                lambda progress, **common: api.sweep(family=[k.name for k in kinds], forms=args.forms,
                                                     progress=progress, causes=args.causes,
                                                     **{k: v for k, v in options.items() if v is not None},
                                                     **common))


def _logits(args, options: dict) -> dict:
    """--logits and --labels read from their files, in their own formats."""
    if args.labels and not args.logits:
        raise UsageError("--labels needs --logits: the labels name the true class of each logit vector.")
    for option, given, file in (("--logits-dtype", args.logits_dtype, args.logits),
                                ("--labels-dtype", args.labels_dtype, args.labels)):
        if given and not file:
            raise UsageError(f"{option} names the format of the {option[2:8]} file; give {option[:8]} too.")
    if not args.logits:
        return {}
    return {"logits": arrays.load(args.logits, "--logits", args.logits_dtype),
            "labels": arrays.load(args.labels, "--labels", args.labels_dtype) if args.labels else None}


def check(args, argv) -> int:
    from .. import api

    multiclass = [o for o, v in (("--sweeps", args.sweeps), ("--target-classes", args.target_classes)) if v]
    if multiclass and not args.classes:
        raise UsageError(f"{', '.join(multiclass)} apply to a multiclass function; give --classes K.")
    if args.classes and args.targets:
        raise UsageError("--targets applies to a binary function; a multiclass one takes --target-classes.")
    name = args.function.rsplit(":", 1)[-1]
    kwargs = parse_kwargs(args.kwargs)
    return _run(args, argv, running.gates(args.fail_on, [name, name + "+fix"]), CHECK_ADVICE,
                lambda progress, **common: api.check(
                    args.function, targets=args.targets, classes=args.classes, kwargs=kwargs, progress=progress,
                    sweeps=args.sweeps, target_classes=args.target_classes, causes=args.causes is not False,
                    reference=args.reference, **common))


def _run(args, argv, rules, advice: str, run) -> int:
    """A run of `sweep` or `check`: its refusals, the run under a progress bar, its
    written results, tables, mode comparison and gates."""
    from .. import api

    given = {w: getattr(args, w) for w in writers.WRITERS if getattr(args, w, None)}
    for w, path in given.items():
        writers.check_path(path, w.upper())
    if args.quiet and not (given or args.fail_on):
        raise UsageError("--quiet prints nothing: use it with --json or --fail-on (or another writer: --csv).")
    if args.exhaustive and args.points is not None:
        raise UsageError("--exhaustive sweeps every value; leave --points out (or use --range to sweep less).")
    axisless = {"random", "logits"}  # sweeps of drawn or given vectors: no axis to sweep whole
    swept = set(args.sweeps or []) | ({"logits"} if getattr(args, "logits", None) else set())
    if args.exhaustive and swept and swept <= axisless and getattr(args, "family", "softmax") == "softmax":
        raise UsageError(f"--exhaustive sweeps an axis's every value, and the {' and '.join(sorted(swept))} "
                         "sweep has none: add --sweeps margin or offset, or leave --exhaustive out.")
    mode = modes.MODES[args.mode]
    if not mode.in_process:
        return running.in_child(argv, mode)  # XLA reads its flags once, when the process starts
    if args.compare_modes and args.mode != modes.DEFAULT.name:
        raise UsageError("--compare-modes compares every mode; leave --mode out.")
    if args.distributed or args.coordinator or args.num_processes or args.process_id is not None:
        if args.checkpoint:
            raise UsageError("--checkpoint works in one process; leave it out of a distributed run.")
        from ..engine import distributed

        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        if distributed.processes()[0] > 0:  # process 0 writes and prints
            given, args.quiet = {}, True
    common = dict(dtypes=args.dtypes, points=args.points, tolerance=args.tolerance, seed=args.seed,
                  device=args.device, argv=argv, mode=args.mode, floor=args.floor, scan_onsets=args.scan_onsets,
                  value_range=args.range, exhaustive=args.exhaustive, checkpoint=args.checkpoint,
                  devices=args.devices, loss_scale=args.loss_scale)
    if args.checkpoint:
        interrupts.set_message(lambda: resume_message(args.checkpoint))
    try:
        result = with_progress(lambda progress: run(progress, **common), args.no_color, args.max_hours, advice)
    except KeyboardInterrupt:
        if args.checkpoint:
            raise Interrupted(resume_message(args.checkpoint)) from None
        raise
    _note_exhaustive(result, args.points, result.spec.precisions)
    for w in result.meta.get("warnings", []):
        print(f"precision-lab: warning: {w}", file=sys.stderr)
    for w, path in given.items():
        writers.write_atomic(path, lambda f, w=w: writers.WRITERS[w].write(result.to_json(), f), w.upper())
    if not args.quiet and "-" not in given.values():
        report.print_result(result, console(args.no_color), detail=args.detail)
    if args.compare_modes:
        compared = with_progress(lambda progress: api.compare(result.spec, args.device), args.no_color)
        children = {m.name: running.child_rows(argv, m) for m in modes.MODES.values() if not m.in_process}
        report.print_modes(compared, result.rows, children, console(args.no_color))
    return running.fail_on(result, rules)


def resume_message(path: str) -> str:
    """What an interrupted sweep with --checkpoint PATH says: how to continue, or, when
    it stopped before its first save, that the same command starts over."""
    if os.path.exists(path):
        return (f"interrupted; the run's state up to the last few seconds is saved in {path}: "
                "run the same command again to continue.")
    return (f"interrupted before the first save to {path} (every {checkpoints.SAVE_EVERY_S:g} s); "
            "nothing was written: the same command starts over.")


def _note_exhaustive(result, points, precisions) -> None:
    """Say so, with the result, when --points reaches a format's every value (formats of
    16 bits or fewer are swept whole whatever --points says)."""
    if points is None:
        return
    whole = list(dict.fromkeys(p.input for p in precisions if p.input.exhaustive and points >= p.input.lattice_size))
    if whole:
        result.meta.setdefault("notes", []).append(
            f"--points {points} reaches every value of {', '.join(f.name for f in whole)} "
            f"({', '.join(str(f.lattice_size) for f in whole)}): those rows are exhaustive.")


def table(args) -> int:
    doc = diffs.load(args.result)
    report.print_result(SweepResult.from_json(doc), console(args.no_color), detail=not args.summary)
    return 0


def diff(args) -> int:
    d = diffs.diff(diffs.load(args.a), diffs.load(args.b))
    if args.json:
        print(json.dumps(writers.jsonable(d.to_json()), indent=1, allow_nan=False))
    else:
        diffs.print_diff(d, "A", "B", console(args.no_color))
    return 0 if d.same else running.EXIT_FAILED_CHECK


def explain(args) -> int:
    from .. import api
    from ..analysis import causes
    from ..families import softmax

    fmt = formats.get(args.dtype)
    if not (abs(args.z) <= float(fmt.max)):  # NaN too: the point must be a value of the format
        raise UsageError(f"Argument --z: it must be a finite value of {fmt.name} (|z| ≤ {float(fmt.max):g}), "
                         f"got {args.z:g}.")
    if ":" in args.form:  # a user's function
        kind = api.user_kind(args.form, None, parse_kwargs(args.kwargs),
                             [args.classes or 10] if args.family == "softmax" or args.classes else None)
        options = kind.validate({"classes": [args.classes or 10], "sweeps": [args.sweep],
                                 "target_classes": [args.target_class]} if kind.multiclass else {"targets": [args.y]})
        fam, case = kind.cases(options)[0]
        kind.prepare(options, [formats.precision(args.dtype)])
        form = fam.forms[1] if args.grad else fam.forms[0]
        w = causes.explain(fam, form, fmt, args.z, fam.target_of(case), args.allowance,
                           name=form.name + (" (grad)" if args.grad else ""))
    else:
        family = args.family or ("softmax" if args.classes else _family_of(args.form))
        if args.family is None and args.classes is None and family == "softmax":
            args.classes = 10
        softmax.check_case(args.sweep, args.target_class) if family == "softmax" else None
        w = api.explain(args.form, args.dtype, args.z, y=args.y, family=family, classes=args.classes or 10,
                        target_class=args.target_class, sweep=args.sweep, allowance=args.allowance)
    if args.json:
        writers.write_json(w.cause(), "-")
        return 0
    out = console(args.no_color)
    out.print(w.table())
    out.print(w.summary(), soft_wrap=True, highlight=False)
    for line in w.hlo:
        out.print("  " + line, soft_wrap=True, highlight=False)
    return 0


def _family_of(form: str) -> str:
    """The registered family a form name belongs to (sigmoid where none does: its error names the forms)."""
    return next((k.name for k in registry.KINDS.values() if any(f.name == form for f in k.forms())), "sigmoid")


def policy(args) -> int:
    """`precision-lab policy`: the verified policy of each format, printed (and written)."""
    import sys

    from .. import api
    from ..output import policy_text
    from ..output.writers import write_atomic

    result = api.policy(args.function, dtypes=args.dtypes, targets=args.targets, wide=args.wide, classes=args.classes,
                        max_hours=args.max_hours,
                        value_range=args.value_range, tolerance=args.tolerance, kwargs=parse_kwargs(args.kwargs),
                        progress=lambda s: print(f"  {s}", file=sys.stderr) if sys.stderr.isatty() else None)
    if args.json:
        write_atomic(args.json, lambda f: json.dump(result, f, indent=1, allow_nan=False))
    console(args.no_color).print(policy_text.text(result), highlight=False, soft_wrap=True)  # code unbroken
    return 0

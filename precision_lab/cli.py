"""The `precision-lab` command: a thin shell over the Python API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import __version__, interrupts
from .numerics import formats
from .numerics.classify import DEFAULT_TOLERANCE, FLOORS
from .engine.core import MODES, STRICT_FLAG
from .errors import InputError
from .output.progress import DEFAULT_MAX_HOURS
from .output.writers import check_json_path as _check_json_path
from .output.writers import jsonable, write_json
from .families.softmax import DEFAULT_CLASSES, DEFAULT_SWEEPS

EXIT_FAILED_CHECK = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Interrupted(Exception):
    """Ctrl-C, with what to do next: reported as one sentence with exit status 130."""


class UsageError(Exception):
    """Bad input: reported as one sentence on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message[0].upper() + message[1:] + ("" if message.endswith(".") else "."))


def _list(kind: str, parse=str):
    def convert(text: str):
        items = [s.strip() for s in text.split(",")]
        if not text.strip() or any(not s for s in items):
            raise argparse.ArgumentTypeError(f"`{text}` is not a comma-separated list of {kind}")
        try:
            return [parse(s) for s in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not a comma-separated list of {kind}") from None

    return convert


def _number(parse, what: str, ok, requirement: str):
    """An argparse type: `parse` the text, then require `ok(value)`."""

    def convert(text: str):
        try:
            v = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not {what}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{requirement}, got {text}")
        return v

    return convert


def _range(text: str):
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not LO,HI (two numbers)") from None
    if not lo <= hi:
        raise argparse.ArgumentTypeError(f"the range {text} is empty: give LO ≤ HI")
    return lo, hi


_positive_int = _number(int, "a whole number", lambda v: v >= 1, "it must be a positive whole number")
_tolerance = _number(float, "a number", lambda v: v >= 0, "the tolerance must be a non-negative number of ULPs")
_max_hours = _number(float, "a number of hours", lambda v: v >= 0,
                     "the limit must be a non-negative number of hours (0: none)")


FAIL_ON_HELP = ("exit 1 if a row breaks a rule, for CI: CLASS (any point of it), CLASS>N (more than N points), "
                "CLASS>P%% (more than P%% of the swept points), each optionally for one form as FORM=CLASS...; "
                "classes: nan, inf, zero, zero_normal (0 where the exact value is normal), zero_subnormal, "
                "inaccurate, unresolved; e.g. 'nan,inf,zero_normal,ce_fused=inaccurate>1%%'")


def _run_options(p: argparse.ArgumentParser, what: str) -> None:
    """The options `sweep` and `check` share: how long they may run, and their output."""
    p.add_argument("--max-hours", type=_max_hours, default=DEFAULT_MAX_HOURS, metavar="HOURS",
                   help=f"refuse a {what} whose time left, measured over its first seconds, exceeds HOURS "
                        f"(default: {DEFAULT_MAX_HOURS:g}; 0: no limit)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH (atomically; - for stdout)")
    p.add_argument("--fail-on", type=_list("rules"), default=[], metavar="RULE,...", help=FAIL_ON_HELP)
    p.add_argument("--detail", action="store_true",
                   help="after the one-screen summary, print every table (a form per line, a format per column)")
    p.add_argument("--quiet", action="store_true", help="print no table (with --json or --fail-on)")
    p.add_argument("--no-color", action="store_true",
                   help="plain text without colour (also when stdout is not a terminal)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="precision-lab", description="Find where losses and gradients break in low precision.")
    p.add_argument("--version", action="version", version=f"precision-lab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    s = sub.add_parser("sweep", help="sweep forms over formats and print stability tables")
    s.add_argument("--family", default="all",
                   help="family of kernels: sigmoid, softmax or all (default: all)")
    s.add_argument("--forms", type=_list("form names"), help="comma-separated forms (default: all of the family)")
    s.add_argument("--dtypes", type=_list("format names"), default=None,
                   help=f"comma-separated formats (default: {','.join(formats.DEFAULT_FORMATS)}); "
                        f"also {', '.join(f for f in formats.FORMATS if f not in formats.DEFAULT_FORMATS)}; "
                        "INPUT:COMPUTE (e.g. bfloat16:float32) sweeps INPUT's values cast to the wider "
                        "COMPUTE before the kernel: losses judged in COMPUTE, gradients (cast back) in INPUT")
    s.add_argument("--loss-scale", type=float, default=None, metavar="S",
                   help="a power of two S: each jax.grad form differentiates S·L, and its row judges the "
                        "scaled gradient in the format against S times the exact one (unscaling in float32 "
                        "is exact); hand-written gradients stay unscaled")
    s.add_argument("--targets", type=_list("numbers", float), default=[0.0, 1.0],
                   help="comma-separated targets y in [0, 1] (default: 0,1; 0.1,0.9 is LeCun's trick)")
    s.add_argument("--classes", type=_list("class counts", int), default=None, metavar="K,...",
                   help="softmax: numbers of classes K, each ≥ 2 (default: "
                        f"{','.join(map(str, DEFAULT_CLASSES))}; e.g. 2,10,1000,32768,131072)")
    s.add_argument("--sweeps", type=_list("sweep names"), default=None, metavar="SWEEP,...",
                   help="softmax sweeps: margin (z = (m, 0, …, 0)), offset (z = c + (1, 0, …, 0)), random "
                        "(vectors × K ≈ 2^18 whatever --points says) "
                        f"(default: {','.join(DEFAULT_SWEEPS)}; with --logits: logits)")
    s.add_argument("--target-classes", type=_list("target classes"), default=["top", "other"], metavar="CLASS,...",
                   help="softmax: the true class is the top logit and/or another (default: top,other)")
    s.add_argument("--logits", metavar="FILE.npy",
                   help="softmax: your own N × K logit vectors: a .npy file or an array of a .npz file "
                        "(FILE.npz:NAME; the name may be left out when the file holds one array); bfloat16 and "
                        "float8 files are read in their own format, which is then the default of --dtypes")
    s.add_argument("--labels", metavar="FILE.npy",
                   help="softmax: for --logits, N class indices or N × K class probabilities (soft or one-hot "
                        "labels, each row summing to 1); .npy or FILE.npz:NAME (default: the top class)")
    s.add_argument("--logits-dtype", metavar="FORMAT",
                   help="the format of --logits when its file records only raw bytes (np.save of float8_e4m3fn "
                        "writes <V1): float8_e4m3fn, float8_e5m2, …; not needed for bfloat16 or float8_e5m2 files")
    s.add_argument("--labels-dtype", metavar="FORMAT", help="the same for --labels")
    s.add_argument("--device", help="JAX backend: cpu, gpu or tpu (default: JAX's default)")
    s.add_argument("--points", type=_positive_int, default=None,
                   help="points per sampled row, at least (the grid is odd, so that 0 is on it: "
                        "65536 gives 65537; default: 65536 for float32/float64; for softmax, as "
                        "many as keep points × K near 2^22); formats of 16 bits or fewer are swept "
                        "exhaustively (softmax: while lattice × K ≤ 2^22)")
    s.add_argument("--tolerance", type=_tolerance, default=DEFAULT_TOLERANCE,
                   help=f"ULPs beyond which a point is inaccurate (default: {DEFAULT_TOLERANCE:g})")
    s.add_argument("--seed", type=int, default=0, help="seed of the sample of wide formats (default: 0)")
    s.add_argument("--mode", choices=MODES, default="jit",
                   help="how kernels run: jit (each form alone under jax.jit(jax.vmap), the default), eager "
                        "(operation by operation, each result rounded to the format) or strict (jit with "
                        f"XLA_FLAGS={STRICT_FLAG}, in a process of its own)")
    s.add_argument("--floor", choices=FLOORS, default="condition",
                   help="condition (default): excuse errors up to what rounding the inputs forces (tolerance × "
                        "the exact function's condition number, in ULPs); none: the pure ULP test")
    s.add_argument("--range", type=_range, metavar="LO,HI",
                   help="sweep only the logits (softmax: margins, offsets) in [LO, HI]: every value of the format "
                        "there, or --points of them evenly spaced where there are more")
    s.add_argument("--exhaustive", action="store_true",
                   help="every value of each format up to 32 bits (float32: 4278190079 a row, streamed), or of "
                        "--range; the default formats are then float16,bfloat16,float32 (float64 cannot be swept "
                        "whole); the random and logits sweeps have no axis and are unaffected")
    s.add_argument("--checkpoint", metavar="PATH",
                   help="save the sweep's state to PATH every few seconds; the same command with the same PATH "
                        "continues where it stopped (the file, a pickle: resume only files you wrote, is removed "
                        "when the sweep ends)")
    s.add_argument("--devices", type=_positive_int, default=None, metavar="N",
                   help="spread the calls over the first N devices of the backend (default: all of them)")
    s.add_argument("--coordinator", metavar="HOST:PORT",
                   help="several hosts: the address of process 0, for jax.distributed (with --num-processes and "
                        "--process-id); each process sweeps its share and process 0 writes the result")
    s.add_argument("--num-processes", type=_positive_int, default=None, metavar="N",
                   help="several hosts: the number of processes of the job")
    s.add_argument("--process-id", type=int, default=None, metavar="I", help="several hosts: this process's index")
    s.add_argument("--distributed", action="store_true",
                   help="several hosts, found by JAX itself (Cloud TPU, SLURM, ...): jax.distributed.initialize()")
    s.add_argument("--scan-onsets", action="store_true",
                   help="evaluate every value between zero and each onset a sampled row found, making it exact "
                        "(float32 only: up to 2^31 values a side, minutes per row)")
    s.add_argument("--causes", action="store_true",
                   help="name the operation that broke every form at each NaN and ∞ onset (an exact walk of its "
                        "jaxpr; by default only for the chain products bce_naive_chain and ce_naive_chain)")
    s.add_argument("--compare-modes", action="store_true",
                   help="also list, per row, the points where jit and eager results differ (with an example), "
                        "and the rows whose figures differ in strict mode")
    _run_options(s, "sweep")
    sub.add_parser("list", help="list the families, forms and formats")
    g = sub.add_parser("figures", help="draw the textbook figures and each format's error and onset charts")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the PNG files, created if missing and filled only once every figure is "
                        "drawn (default: figures)")
    g.add_argument("--terminal", action="store_true",
                   help="draw the textbook figures and the error and onset charts of the formats of --dtypes "
                        "in the terminal instead of writing PNG files (not with --out)")
    g.add_argument("--dtypes", type=_list("format names"), default=list(formats.DEFAULT_FORMATS),
                   help=f"comma-separated formats swept for the error and onset charts "
                        f"(default: {','.join(formats.DEFAULT_FORMATS)})")
    g.add_argument("--no-color", action="store_true",
                   help="plain text without colour (also when stdout is not a terminal)")
    c = sub.add_parser("check", help="sweep your own JAX loss and its gradient: where it breaks, and why")
    c.add_argument("function", metavar="FILE.py:NAME",
                   help="your function, as FILE.py:NAME or package.module:NAME: fn(z, y) -> scalar "
                        "(with --classes, fn(logits, label) -> scalar)")
    c.add_argument("--dtypes", type=_list("format names"), default=None,
                   help=f"comma-separated formats (default: {','.join(formats.DEFAULT_FORMATS)}; "
                        "with --exhaustive, those up to 32 bits); INPUT:COMPUTE (e.g. bfloat16:float32) calls "
                        "fn(z.astype(COMPUTE), y.astype(COMPUTE)) on INPUT's values: the loss judged in COMPUTE, "
                        "its jax.grad with respect to the INPUT logits in INPUT")
    c.add_argument("--loss-scale", type=float, default=None, metavar="S",
                   help="a power of two S: the gradient row is jax.grad of S·fn, judged as the scaled gradient "
                        "in the format against S times the exact one (unscaling in float32 is exact)")
    c.add_argument("--targets", type=_list("numbers", float), default=[0.0, 1.0],
                   help="binary targets y in [0, 1] (default: 0,1)")
    c.add_argument("--classes", type=_list("class counts", int), default=None, metavar="K,...",
                   help="multiclass: class counts K (the function takes a K-vector of logits and a class)")
    c.add_argument("--sweeps", type=_list("sweep names"), default=None, metavar="SWEEP,...",
                   help="multiclass: margin and/or offset (default: both)")
    c.add_argument("--target-classes", type=_list("target classes"), default=["top", "other"], metavar="CLASS,...",
                   help="multiclass: the true class is the top logit and/or another (default: top,other)")
    c.add_argument("--kwargs", metavar="JSON", help="keyword arguments of the function, e.g. '{\"gamma\": 0.5}'")
    c.add_argument("--range", type=_range, metavar="LO,HI",
                   help="check only the logits (margins, offsets) in [LO, HI]: every value of the format there, or "
                        "--points of them evenly spaced where there are more")
    c.add_argument("--reference", metavar="FILE.py:NAME",
                   help="measure against this function instead (the same loss written stably): its exact value")
    c.add_argument("--exhaustive", action="store_true",
                   help="every value of each format up to 32 bits, or of --range (float64 stays sampled)")
    c.add_argument("--devices", type=_positive_int, default=None, metavar="N",
                   help="spread the calls over the first N devices of the backend (default: all of them)")
    c.add_argument("--points", type=_positive_int, default=None,
                   help="points per row of a sampled format (default: 65536; float64: 4096)")
    c.add_argument("--tolerance", type=_tolerance, default=DEFAULT_TOLERANCE,
                   help=f"ULPs beyond which a point is inexact (default: {DEFAULT_TOLERANCE:g})")
    c.add_argument("--seed", type=int, default=0, help="seed of the sample of wide formats (default: 0)")
    c.add_argument("--device", help="JAX backend: cpu, gpu or tpu (default: JAX's default)")
    c.add_argument("--mode", choices=MODES, default="jit", help="jit (default), eager or strict; see sweep --help")
    c.add_argument("--floor", choices=FLOORS, default="condition", help="condition (default) or none")
    c.add_argument("--no-causes", action="store_true", help="do not walk the jaxpr at each NaN, ∞ and 0 onset")
    _run_options(c, "check")
    x = sub.add_parser("explain", help="walk one form's operations at one point: which operation broke it")
    x.add_argument("form", help="form name (see precision-lab list), or your function as FILE.py:NAME")
    x.add_argument("--kwargs", metavar="JSON", help="keyword arguments of your function")
    x.add_argument("--grad", action="store_true", help="your function: walk its gradient (value and backward pass)")
    x.add_argument("--dtype", required=True, help="format, e.g. float16")
    x.add_argument("--z", required=True, type=float, help="logit z (softmax: margin m or offset c)")
    x.add_argument("--y", type=float, default=0.0, help="sigmoid target y in [0, 1] (default: 0)")
    x.add_argument("--family", default="sigmoid",
                   help="sigmoid or softmax (default: sigmoid); for your function, softmax means fn(logits, label)")
    x.add_argument("--classes", type=_positive_int, default=10, help="softmax: K classes (default: 10)")
    x.add_argument("--target-class", default="top", help="softmax: top or other (default: top)")
    x.add_argument("--sweep", default="margin", help="softmax: margin or offset (default: margin)")
    x.add_argument("--allowance", type=_tolerance, default=4.0,
                   help="ULPs of local error beyond which an operation lost the value (default: 4)")
    x.add_argument("--json", action="store_true", help="print the cause as JSON instead of the table")
    x.add_argument("--no-color", action="store_true", help="plain text without colour")
    t = sub.add_parser("table", help="print a saved result (from --json): its summary and every table")
    t.add_argument("result", metavar="RESULT.json", help="a result written with sweep or check --json")
    t.add_argument("--summary", action="store_true", help="only the one-screen summary")
    t.add_argument("--no-color", action="store_true", help="plain text without colour")
    d = sub.add_parser("diff", help="what changed between two results: rows whose figures differ, side by side")
    d.add_argument("a", metavar="A.json", help="a result written with --json")
    d.add_argument("b", metavar="B.json", help="another one (exit 1 if any row's figures differ)")
    d.add_argument("--json", action="store_true", help="print the differences as JSON instead of tables")
    d.add_argument("--no-color", action="store_true", help="plain text without colour")
    return p


def _table(args) -> int:
    from . import api
    from .analysis import diffs
    from .output import report

    doc = diffs.load(args.result)
    report.print_result(api.SweepResult(doc["meta"], doc["rows"]), _console(args.no_color), detail=not args.summary)
    return 0


def _diff(args) -> int:
    from .analysis import diffs

    d = diffs.diff(diffs.load(args.a), diffs.load(args.b))
    if args.json:
        print(json.dumps(jsonable(d.to_json()), indent=1, allow_nan=False))
    else:
        diffs.print_diff(d, "A", "B", _console(args.no_color))
    return 0 if d.same else EXIT_FAILED_CHECK


def _explain(args) -> int:
    from .analysis import walk

    if ":" in args.form:  # a user's function
        from . import api
        from .families import user

        import jax.numpy as jnp

        from .families import softmax

        fn, source_file = user.load(args.form)
        multiclass = args.family == "softmax"
        if multiclass:  # fn(logits, label) on the structured sweep's vector at --z
            user.check_sweeps([args.sweep], [args.target_class])
            target = softmax.case(args.sweep, args.target_class)
        else:
            api.check_targets([args.y])
            target = args.y
        fam = user.family(fn, args.form.rsplit(":", 1)[1], user.parse_kwargs(args.kwargs),
                          args.classes if multiclass else None)
        form = fam.forms[1] if args.grad else fam.forms[0]
        fmt = formats.get(args.dtype)
        user.validate(fam, fmt, target, source_file)
        x = fam.inputs(jnp.asarray(fmt.cast([args.z])), fam.case(target))[0] if multiclass else args.z
        w = walk.walk(form.kernel, (x, fam.label(target, fmt)), args.dtype, args.allowance,
                      name=form.name + (" (grad)" if args.grad else ""))
    elif args.family not in ("sigmoid", "softmax"):
        raise UsageError(f"Unknown family `{args.family}` for explain; choose sigmoid or softmax.")
    else:
        w = walk.explain(args.form, args.dtype, args.z, y=args.y, family=args.family, classes=args.classes,
                         target_class=args.target_class, sweep=args.sweep, allowance=args.allowance)
    if args.json:
        write_json(w.cause(), "-")
        return 0
    console = _console(args.no_color)
    console.print(w.table())
    console.print(w.summary(), soft_wrap=True, highlight=False)
    for line in w.hlo:
        console.print("  " + line, soft_wrap=True, highlight=False)
    return 0


def load_array(path: str, option: str, fmt: str | None = None):
    """A numeric array from a .npy file or FILE.npz:NAME (arrays.load), in its own
    format (bfloat16 and float8 included); one sentence if it cannot be read."""
    from .engine import arrays

    return arrays.load(path, option, fmt)


def _console(no_color: bool, stderr: bool = False):
    from .output.report import make_console

    return make_console(no_color, stderr)


def with_progress(work, no_color: bool = False, max_hours: float | None = None, advice: str = ""):
    """Run `work(progress)` under a progress bar on stderr (on a terminal; elsewhere a plain
    line every $PRECISION_LAB_PROGRESS_S seconds, for logs). Each call of `progress` is
    where Ctrl-C stops the run (`interrupts.check`), and where a run that would take more
    than `max_hours` is refused, with `advice`, once its rate is measured."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from .output import progress as meters

    err = _console(no_color, stderr=True)
    meter = meters.Meter()
    limit = meters.TimeLimit(meter, max_hours, advice)
    if interrupts.installed():  # the command: a run whose first call never ends is judged too
        from .engine.core import BATCH

        limit.watch(BATCH, interrupts.leave)
    plain = None if err.is_terminal else meters.PlainLines(meter, lambda line: print(line, file=sys.stderr,
                                                                                      flush=True),
                                                           meters.plain_every_s())
    rate = TextColumn("{task.fields[rate]}")
    with Progress(TextColumn("{task.description}"), BarColumn(bar_width=16), TaskProgressColumn(), rate,
                  TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task("sweeping", total=None, rate="")

        def progress(label, done, total):
            interrupts.check()
            meter.update(label, done, total)
            limit.update()
            if plain:
                plain.update()
            speed = bar.tasks[0].speed
            bar.update(task, description=label, completed=done, total=total,
                       rate=f"{meters.si(speed)} points/s" if speed else "")

        result = work(progress)
    interrupts.check()
    return result


SWEEP_ADVICE = ("ask for fewer --points, sweep part of the axis with --range, or give --max-hours (--exhaustive "
                "sweeps every value of a format up to 32 bits, streamed).")
CHECK_ADVICE = ("ask for fewer --points, check part of the axis with --range, or give --max-hours (every value "
                "goes through the exact tiers).")


def _note_exhaustive(result, points, dtypes) -> None:
    """Say so, with the result, when --points reaches a format's every value (formats of
    16 bits or fewer are swept whole whatever --points says)."""
    if points is None:
        return
    whole = [formats.get(d) for d in dtypes if d in formats.FORMATS and formats.get(d).exhaustive
             and points >= formats.get(d).lattice_size]
    if whole:
        result.meta.setdefault("notes", []).append(
            f"--points {points} reaches every value of {', '.join(f.name for f in whole)} "
            f"({', '.join(str(f.lattice_size) for f in whole)}): those rows are exhaustive.")


def _default_dtypes(args) -> None:
    """The formats when --dtypes is not given: the default ones, those up to 32 bits with
    --exhaustive (float64 cannot be swept whole); and --exhaustive refuses --points."""
    if args.exhaustive and args.points is not None:
        raise UsageError("--exhaustive sweeps every value; leave --points out (or use --range to sweep less).")
    if args.dtypes is None:
        args.dtypes = [d for d in formats.DEFAULT_FORMATS if not (args.exhaustive and formats.get(d).bits > 32)]


def _sweep(args, argv) -> int:
    from . import api
    from .output import report
    from .engine import vectors

    gates = _gates(args.fail_on, [f.name for fam in api.families_of(args.family)
                                  for f in fam.forms + fam.factors])
    if args.json:
        _check_json_path(args.json)
    if args.quiet and not (args.json or args.fail_on):
        raise UsageError("--quiet prints nothing: use it with --json or --fail-on.")
    softmax_only = [o for o, v in (("--classes", args.classes), ("--sweeps", args.sweeps), ("--logits", args.logits),
                                   ("--target-classes", args.target_classes != ["top", "other"])) if v]
    if args.family == "sigmoid" and softmax_only:
        verb = "applies" if len(softmax_only) == 1 else "apply"
        raise UsageError(f"{', '.join(softmax_only)} {verb} to the softmax family; use --family softmax or all.")
    if args.family == "softmax" and args.targets != [0.0, 1.0]:
        raise UsageError("--targets applies to the sigmoid family; softmax takes --target-classes.")
    if args.mode == "strict" and STRICT_FLAG not in os.environ.get("XLA_FLAGS", ""):
        return strict_child(argv)  # XLA reads its flags once, when the process starts
    if args.compare_modes and args.mode != "jit":
        raise UsageError("--compare-modes compares every mode; leave --mode out.")
    if args.distributed or args.coordinator or args.num_processes or args.process_id is not None:
        if args.checkpoint:
            raise UsageError("--checkpoint works in one process; leave it out of a distributed sweep.")
        from .engine import distributed

        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        if distributed.processes()[0] > 0:  # process 0 writes and prints
            args.json, args.quiet = None, True
    dtypes_given = args.dtypes is not None
    _default_dtypes(args)
    quiet_stdout = args.json == "-"
    kwargs = dict(family=args.family, dtypes=args.dtypes, targets=args.targets, forms=args.forms,
                  tolerance=args.tolerance, seed=args.seed, device=args.device, argv=argv,
                  classes=args.classes or DEFAULT_CLASSES, sweeps=args.sweeps or DEFAULT_SWEEPS,
                  target_classes=args.target_classes, mode=args.mode, floor=args.floor,
                  scan_onsets=args.scan_onsets, causes=args.causes, value_range=args.range,
                  exhaustive=args.exhaustive, checkpoint=args.checkpoint, devices=args.devices,
                  loss_scale=args.loss_scale)
    if args.labels and not args.logits:
        raise UsageError("--labels needs --logits: the labels name the true class of each logit vector.")
    for option, given, file in (("--logits-dtype", args.logits_dtype, args.logits),
                                ("--labels-dtype", args.labels_dtype, args.labels)):
        if given and not file:
            raise UsageError(f"{option} names the format of the {option[2:8]} file; give {option[:8]} too.")
    if args.logits:
        logits = kwargs["logits"] = load_array(args.logits, "--logits", args.logits_dtype)
        kwargs["labels"] = load_array(args.labels, "--labels", args.labels_dtype) if args.labels else None
        natural = vectors.natural_format(logits)
        if natural and not dtypes_given:  # bfloat16 or float8 logits: swept in their own format
            kwargs["dtypes"] = [natural]
        kwargs["sweeps"] = sorted(set(args.sweeps or []) | {"logits"})
        k = logits.shape[-1] if logits.ndim == 2 else None
        if args.classes and k is not None and k not in args.classes:
            raise UsageError(f"--logits holds K = {k} classes but --classes asks for {','.join(map(str, args.classes))}.")
        if not args.classes:
            kwargs["classes"] = [k] if k and k >= 2 else DEFAULT_CLASSES
        if args.family == "all" and "--family" not in argv:
            kwargs["family"] = "softmax"
    if args.points is not None:
        kwargs["points"] = args.points
    resume = (f"interrupted; the sweep's state up to the last few seconds is saved in {args.checkpoint}: "
              f"run the same command again to continue.")
    if args.checkpoint:
        interrupts.set_message(resume)
    try:
        result = with_progress(lambda progress: api.sweep(progress=progress, **kwargs), args.no_color,
                               args.max_hours, SWEEP_ADVICE)
    except KeyboardInterrupt:
        if args.checkpoint:
            raise Interrupted(resume) from None
        raise
    _note_exhaustive(result, args.points, args.dtypes)
    if args.json:
        write_json(result.to_json(), args.json)
    if not args.quiet and not quiet_stdout:
        report.print_result(result, _console(args.no_color), detail=args.detail)
    if args.compare_modes:
        compared = with_progress(lambda progress: api.compare_modes(
            **{k: kwargs[k] for k in ("family", "dtypes", "targets", "forms", "seed", "device", "classes",
                                      "target_classes")}, points=kwargs.get("points"),
            sweeps=[s for s in kwargs["sweeps"] if s in ("margin", "offset")]), args.no_color)
        strict = _strict_rows(argv)
        report.print_modes(compared, result.rows, strict, _console(args.no_color))
    return _fail_on(result, gates)


FAILING_LISTED = 5  # rows named in the --fail-on message


def _check(args, argv) -> int:
    from . import api
    from .output import report
    from .families import user

    name = args.function.rsplit(":", 1)[-1]
    gates = _gates(args.fail_on, [name, name + "+fix"])
    if args.json:
        _check_json_path(args.json)
    if args.quiet and not (args.json or args.fail_on):
        raise UsageError("--quiet prints nothing: use it with --json or --fail-on.")
    multiclass = [o for o, v in (("--sweeps", args.sweeps), ("--target-classes", args.target_classes != ["top", "other"]))
                  if v]
    if multiclass and not args.classes:
        raise UsageError(f"{', '.join(multiclass)} apply to a multiclass function; give --classes K.")
    if args.classes and args.targets != [0.0, 1.0]:
        raise UsageError("--targets applies to a binary function; a multiclass one takes --target-classes.")
    if args.mode == "strict" and STRICT_FLAG not in os.environ.get("XLA_FLAGS", ""):
        return strict_child(argv)
    kwargs = user.parse_kwargs(args.kwargs)
    _default_dtypes(args)
    result = with_progress(lambda progress: api.check(
        args.function, dtypes=args.dtypes, targets=args.targets, classes=args.classes, kwargs=kwargs,
        points=args.points, tolerance=args.tolerance, seed=args.seed, device=args.device, progress=progress,
        argv=argv, sweeps=args.sweeps or DEFAULT_SWEEPS[:2], target_classes=args.target_classes, mode=args.mode,
        floor=args.floor, causes=not args.no_causes, reference=args.reference, value_range=args.range,
        exhaustive=args.exhaustive, devices=args.devices, loss_scale=args.loss_scale),
        args.no_color, args.max_hours, CHECK_ADVICE)
    _note_exhaustive(result, args.points, args.dtypes)
    for w in result.meta.get("warnings", []):
        print(f"precision-lab: warning: {w}", file=sys.stderr)
    if args.json:
        write_json(result.to_json(), args.json)
    if not args.quiet and args.json != "-":
        report.print_result(result, _console(args.no_color), detail=args.detail)
    return _fail_on(result, gates)


def _gates(rules: list[str], forms: list[str]) -> list:
    from .analysis import gates

    return gates.parse(rules, forms=forms) if rules else []


def _fail_on(result, gates) -> int:
    from .analysis.gates import failures

    failing = failures(result.rows, gates)
    if not failing:
        return 0
    names = [f"{_row_name(r)} ({g.cls} {_figure(g, r)})" for r, g in failing[:FAILING_LISTED]]
    more = f" and {len(failing) - FAILING_LISTED} more" if len(failing) > FAILING_LISTED else ""
    print(f"precision-lab: {len(failing)} of {len(result.rows)} rows fail --fail-on "
          f"{','.join(map(str, gates))}: {'; '.join(names)}{more}.", file=sys.stderr)
    return EXIT_FAILED_CHECK


def _figure(gate, row) -> str:
    v = gate.measure(row)
    return f"{v:.3g}%" if gate.percent else f"{int(v)} point{'s' if v != 1 else ''}"


def _strict_rows(argv: Sequence[str]) -> list[dict]:
    """The rows of this sweep in strict mode, from a child process (XLA reads its flags once)."""
    import subprocess

    keep, skip = [], {"--json", "--fail-on"}
    it = iter(argv)
    for a in it:
        if a in skip:
            next(it, None)
        elif a not in ("--compare-modes", "--quiet") and not any(a.startswith(f + "=") for f in skip):
            keep.append(a)
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + STRICT_FLAG).strip())
    out = subprocess.run([sys.executable, "-m", "precision_lab", *keep, "--mode", "strict", "--json", "-"],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise UsageError(f"The strict-mode run failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)["rows"]


def strict_child(argv: Sequence[str]) -> int:
    """Run this command again in a process whose XLA_FLAGS forbid excess precision."""
    import subprocess

    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + STRICT_FLAG).strip())
    return subprocess.call([sys.executable, "-m", "precision_lab", *argv], env=env)


def _row_name(row: dict) -> str:
    """A row in a few words: form, format, and its target (y, or sweep, K and class)."""
    from .output.report import dtype_label

    parts = [row["form"] + (f" ({row['quantity']})" if row.get("family") == "check" else ""), dtype_label(row)]
    if row.get("sweep"):
        parts += [row["sweep"], f"K={row['classes']}"] + ([row["target_class"]] if row.get("target_class") else [])
    elif row.get("target") is not None:
        parts.append(f"y={row['target']:g}")
    return " ".join(parts)


def _figures(args) -> int:
    from rich.text import Text

    console = _console(args.no_color)
    if args.terminal and args.out is not None:
        raise UsageError("`--terminal` draws in the terminal and writes no files, so it takes no `--out`.")
    for d in args.dtypes:
        if ":" in d:
            raise UsageError(f"figures draws plain formats, not `{d}`; sweep --dtypes {d} shows the upcast rows.")
        formats.get(d)  # an unknown format is reported before anything is drawn or swept
    from .output import figures

    if args.terminal:
        from .output import terminal_plots

        color = console.is_terminal and not console.no_color

        def show(plots):
            for plot in plots:
                console.print(Text.from_ansi(plot) if color else Text(plot), soft_wrap=True)

        show(terminal_plots.textbook_plots(console.width, color=color))  # while the formats are swept
        result = with_progress(lambda progress: figures.figure_sweep(args.dtypes, progress), args.no_color)
        rows = figures.figure_rows(result)
        tolerance = result.meta.get("tolerance_ulp")
        show(terminal_plots.error_plots(rows, console.width, color=color, tolerance=tolerance))
        show(terminal_plots.onset_plots(rows, console.width, color=color))
        return 0
    out = "figures" if args.out is None else args.out
    paths = with_progress(lambda progress: figures.write_figures(out, dtypes=args.dtypes, progress=progress),
                          args.no_color)
    for p in paths:
        console.print(p, highlight=False)
    return 0


def _list_all() -> int:
    from rich.table import Table

    from . import api

    console = _console(False)
    for fam in api.FAMILIES.values():
        axis = "z" if fam.name == "sigmoid" else "m (margin), c (offset) or none (random, logits); K classes"
        t = Table(title=f"family {fam.name} (axis {axis})", title_justify="left")
        t.add_column("form", no_wrap=True)
        for col in ("quantity", "formula"):
            t.add_column(col)
        for f in fam.forms + fam.factors:
            t.add_row(f.name, f.quantity + (" (by name)" if f in fam.factors else ""), f.summary)
        console.print(t)
    t = Table(title="formats", title_justify="left")
    t.add_column("format", no_wrap=True)
    for col in ("bits", "eps", "max", "min subnormal", "∞", "swept", "default"):
        t.add_column(col)
    for f in formats.FORMATS.values():
        t.add_row(f.name, str(f.bits), f"{f.eps:.3g}", f"{f.max:.4g}", f"{f.smallest_subnormal:.3g}",
                  "yes" if f.has_inf else "no", "every value" if f.exhaustive else "sampled",
                  "yes" if f.name in formats.DEFAULT_FORMATS else "")
    console.print(t)
    return 0


CACHE_ENV = "PRECISION_LAB_CACHE"  # a folder for compiled programs, or 0 for none


def use_compilation_cache() -> None:
    """Keep XLA's compiled programs between runs (JAX's persistent cache), in
    $PRECISION_LAB_CACHE or ~/.cache/precision_lab/xla: each form is its own program,
    and compiling them is most of a cold run. A cached program is the same executable,
    so results do not change; `0` turns it off."""
    where = os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "precision_lab", "xla"))
    if where in ("", "0"):
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _joined(argv: list[str]) -> list[str]:
    """`--range -20,20` as `--range=-20,20` (argparse reads a leading minus as an option)."""
    out, it = [], iter(argv)
    for a in it:
        out.append(a)
        if a == "--range":
            nxt = next(it, None)
            if nxt is not None:
                out[-1] = f"--range={nxt}"
    return out


def _interrupted(sentence: str) -> int:
    """Ctrl-C: one sentence and exit status 130; under the command's own handling
    (`entry`), through `interrupts.leave`, which also removes what was written."""
    if interrupts.requested():
        interrupts.leave(sentence)
    print(f"precision-lab: {sentence}", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    use_compilation_cache()
    parser = build_parser()
    try:
        args = parser.parse_args(_joined(argv))
        if args.command == "sweep":
            return _sweep(args, argv)
        if args.command == "list":
            return _list_all()
        if args.command == "figures":
            return _figures(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "check":
            return _check(args, argv)
        if args.command == "diff":
            return _diff(args)
        if args.command == "table":
            return _table(args)
        raise UsageError("Give a command: sweep, check, explain, table, diff, list or figures "
                         "(see precision-lab --help).")
    except (UsageError, InputError) as e:
        print(f"precision-lab: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as e:
        return _interrupted(str(e))
    except KeyboardInterrupt:
        return _interrupted(interrupts.NOTHING_WRITTEN)
    except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

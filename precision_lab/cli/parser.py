"""The command line's options, each defined once and built from the registries: the
families' options (families.registry.OPTIONS), the modes (engine.modes) and the
writers (output.writers). `sweep` and `check` share every option of a run."""

from __future__ import annotations

import argparse
import math

from .. import __version__
from ..engine import modes
from ..families import registry
from ..numerics import formats
from ..numerics.classify import DEFAULT_TOLERANCE, FLOORS
from ..output import writers
from ..output.progress import DEFAULT_MAX_HOURS


class UsageError(Exception):
    """Bad input: reported as one sentence on stderr with exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message[0].upper() + message[1:] + ("" if message.endswith(".") else "."))


def listed(kind: str, parse=str):
    """An argparse type: a comma-separated list of `kind`, each item parsed."""

    def convert(text: str):
        items = [s.strip() for s in text.split(",")]
        if not text.strip() or any(not s for s in items):
            raise argparse.ArgumentTypeError(f"`{text}` is not a comma-separated list of {kind}")
        try:
            return [parse(s) for s in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not a comma-separated list of {kind}") from None

    return convert


def number(parse, what: str, ok, requirement: str):
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


def value_range(text: str):
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not LO,HI (two numbers)") from None
    if not lo <= hi:
        raise argparse.ArgumentTypeError(f"the range {text} is empty: give LO ≤ HI")
    return lo, hi


positive_int = number(int, "a whole number", lambda v: v >= 1, "it must be a positive whole number")
seed = number(int, "a whole number", lambda v: v >= 0, "it must be a non-negative whole number")
loss_scale = number(float, "a number", lambda v: 0 < v < math.inf and math.frexp(v)[0] == 0.5,
                    "it must be a power of two (unscaling by one is exact)")
tolerance = number(float, "a number", lambda v: v >= 0, "the tolerance must be a non-negative number of ULPs")
max_hours = number(float, "a number of hours", lambda v: v >= 0,
                   "the limit must be a non-negative number of hours (0: none)")

FAIL_ON_HELP = ("exit 1 if a row breaks a rule, for CI: CLASS (any point of it), CLASS>N (more than N points), "
                "CLASS>P%% (more than P%% of the swept points), each optionally for one form as FORM=CLASS...; "
                "classes: nan, inf, zero, zero_normal (0 where the exact value is normal), zero_subnormal, "
                "inaccurate, unresolved, batch (a value that changes with the batch size or position), "
                "killed (a gradient a clip makes 0), halved (one it halves); "
                "e.g. 'nan,inf,zero_normal,ce_fused=inaccurate>1%%'")


def _family_option(p: argparse.ArgumentParser, name: str) -> None:
    """A family option (see families.registry.OPTIONS), as the families define it."""
    o = registry.OPTIONS[name]
    kind = listed(o.items, o.parse) if o.parse else str
    p.add_argument(o.flag, dest=name, type=kind, default=None, metavar=o.metavar or None, help=o.help)


def _run_options(p: argparse.ArgumentParser, what: str) -> None:
    """Every option of a run, shared by `sweep` and `check`."""
    p.add_argument("--dtypes", type=listed("format names"), default=None,
                   help=f"comma-separated formats (default: {','.join(formats.DEFAULT_FORMATS)}; with --exhaustive, "
                        f"those up to 32 bits); also {', '.join(f for f in formats.FORMATS if f not in formats.DEFAULT_FORMATS)}; "
                        "INPUT:COMPUTE (e.g. bfloat16:float32) sweeps INPUT's values cast to the wider COMPUTE before "
                        "the kernel: losses judged in COMPUTE, gradients (cast back) in INPUT")
    p.add_argument("--loss-scale", type=loss_scale, default=None, metavar="S",
                   help="a power of two S: each jax.grad form differentiates S·L, and its row judges the scaled "
                        "gradient in the format against S times the exact one (unscaling in float32 is exact); "
                        "hand-written gradients stay unscaled")
    p.add_argument("--device", help="JAX backend: cpu, gpu or tpu (default: JAX's default)")
    p.add_argument("--points", type=positive_int, default=None,
                   help="points per sampled row, at least (the grid is odd, so that 0 is on it: 65536 gives 65537; "
                        "default: 65536 for float32/float64, 4096 for a check's float64; for softmax, as many as keep "
                        "points × K near 2^22); formats of 16 bits or fewer are swept exhaustively (softmax: while "
                        "lattice × K ≤ 2^22)")
    p.add_argument("--tolerance", type=tolerance, default=DEFAULT_TOLERANCE,
                   help=f"ULPs beyond which a point is inaccurate (default: {DEFAULT_TOLERANCE:g})")
    p.add_argument("--seed", type=seed, default=0, help="seed of the sample of wide formats (default: 0)")
    p.add_argument("--mode", choices=list(modes.MODES), default=modes.DEFAULT.name,
                   help="how kernels run: " + "; ".join(f"{m.name} ({m.help})" for m in modes.MODES.values()))
    p.add_argument("--floor", choices=FLOORS, default="condition",
                   help="condition (default): excuse errors up to what rounding the inputs forces (tolerance × "
                        "the exact function's condition number, in ULPs); none: the pure ULP test")
    p.add_argument("--range", type=value_range, metavar="LO,HI",
                   help="sweep only the logits (softmax: margins, offsets) in [LO, HI]: every value of the format "
                        "there, or --points of them evenly spaced where there are more")
    p.add_argument("--exhaustive", action="store_true",
                   help="every value of each format up to 32 bits (float32: 4278190079 a row, streamed), or of "
                        "--range (float64 cannot be swept whole); the random and logits sweeps have no axis")
    p.add_argument("--checkpoint", metavar="PATH",
                   help=f"save the {what}'s state to PATH every few seconds; the same command with the same PATH "
                        "continues where it stopped (the file, a pickle: resume only files you wrote, is removed "
                        "when it ends)")
    p.add_argument("--devices", type=positive_int, default=None, metavar="N",
                   help="spread the calls over the first N devices of the backend (default: all of them)")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="several hosts: the address of process 0, for jax.distributed (with --num-processes and "
                        "--process-id); each process sweeps its share and process 0 writes the result")
    p.add_argument("--num-processes", type=positive_int, default=None, metavar="N",
                   help="several hosts: the number of processes of the job")
    p.add_argument("--process-id", type=int, default=None, metavar="I", help="several hosts: this process's index")
    p.add_argument("--distributed", action="store_true",
                   help="several hosts, found by JAX itself (Cloud TPU, SLURM, ...): jax.distributed.initialize()")
    p.add_argument("--scan-onsets", action="store_true",
                   help="evaluate every value between zero and each onset a sampled row found, making it exact "
                        "(float32 only: up to 2^31 values a side, minutes per row)")
    causes = p.add_mutually_exclusive_group()
    causes.add_argument("--causes", dest="causes", action="store_const", const=True, default=None,
                        help="walk every form's jaxpr at each onset (by default: the chain products of the built-in "
                             "families, every row of a check)")
    causes.add_argument("--no-causes", dest="causes", action="store_const", const=False,
                        help="walk no jaxpr (and sweep no rewrite of a check)")
    p.add_argument("--compare-modes", action="store_true",
                   help="also list, per row, the points where another mode's results differ from jit's (with an "
                        "example), and the rows whose figures differ in a mode that needs its own process")
    _output_options(p, what)


def _output_options(p: argparse.ArgumentParser, what: str) -> None:
    """How long a run may take, and what it writes and prints."""
    p.add_argument("--max-hours", type=max_hours, default=DEFAULT_MAX_HOURS, metavar="HOURS",
                   help=f"refuse a {what} whose time left, measured over its first seconds, exceeds HOURS "
                        f"(default: {DEFAULT_MAX_HOURS:g}; 0: no limit)")
    for w in writers.WRITERS.values():
        p.add_argument(f"--{w.name}", metavar="PATH", help=w.help)
    p.add_argument("--fail-on", type=listed("rules"), default=[], metavar="RULE,...", help=FAIL_ON_HELP)
    p.add_argument("--detail", action="store_true",
                   help="after the one-screen summary, print every table (a form per line, a format per column)")
    p.add_argument("--quiet", action="store_true", help="print no table (with a written result or --fail-on)")
    no_color(p)


def no_color(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-color", action="store_true", help="plain text without colour (also when stdout is not a "
                                                            "terminal)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="precision-lab", description="Find where losses and gradients break in low precision.")
    p.add_argument("--version", action="version", version=f"precision-lab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    s = sub.add_parser("sweep", help="sweep forms over formats and print stability tables")
    s.add_argument("--family", default="all", help=f"family of kernels: {', '.join(registry.names())} (default: all)")
    s.add_argument("--forms", type=listed("form names"), help="comma-separated forms (default: all of the family)")
    for name in registry.OPTIONS:
        _family_option(s, name)
    s.add_argument("--logits-dtype", metavar="FORMAT",
                   help="the format of --logits when its file records only raw bytes (np.save of float8_e4m3fn "
                        "writes <V1): float8_e4m3fn, float8_e5m2, …; not needed for bfloat16 or float8_e5m2 files")
    s.add_argument("--labels-dtype", metavar="FORMAT", help="the same for --labels")
    _run_options(s, "sweep")
    c = sub.add_parser("check", help="sweep your own JAX loss and its gradient: where it breaks, and why")
    c.add_argument("function", metavar="FILE.py:NAME",
                   help="your function, as FILE.py:NAME or package.module:NAME: fn(z, y) -> scalar "
                        "(with --classes, fn(logits, label) -> scalar)")
    for name in ("targets", "classes", "sweeps", "target_classes"):
        _family_option(c, name)
    c.add_argument("--kwargs", metavar="JSON", help="keyword arguments of the function, e.g. '{\"gamma\": 0.5}'")
    c.add_argument("--reference", metavar="FILE.py:NAME",
                   help="measure against this function instead (the same loss written stably): its exact value")
    _run_options(c, "check")
    _explain_parser(sub)
    _policy_parser(sub)
    sub.add_parser("list", help="list the families, forms and formats")
    g = sub.add_parser("figures", help="draw the textbook figures and each format's error and onset charts")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the PNG files, created if missing and filled only once every figure is drawn "
                        "(default: figures)")
    g.add_argument("--terminal", action="store_true",
                   help="draw in the terminal instead of writing PNG files (not with --out)")
    g.add_argument("--from", dest="source", metavar="RESULT.json", default=None,
                   help="draw a saved result (sweep or check --json) instead of sweeping: its onset chart per "
                        "family (onsets_<family>.png), your own function's rows included")
    g.add_argument("--dtypes", type=listed("format names"), default=list(formats.DEFAULT_FORMATS),
                   help=f"comma-separated formats swept for the error and onset charts "
                        f"(default: {','.join(formats.DEFAULT_FORMATS)})")
    no_color(g)
    t = sub.add_parser("table", help="print a saved result (from --json): its summary and every table")
    t.add_argument("result", metavar="RESULT.json", help="a result written with sweep or check --json")
    t.add_argument("--summary", action="store_true", help="only the one-screen summary")
    no_color(t)
    d = sub.add_parser("diff", help="what changed between two results: rows whose figures differ, side by side")
    d.add_argument("a", metavar="A.json", help="a result written with --json")
    d.add_argument("b", metavar="B.json", help="another one (exit 1 if any row's figures differ)")
    d.add_argument("--json", action="store_true", help="print the differences as JSON instead of tables")
    no_color(d)
    return p


def _explain_parser(sub) -> None:
    x = sub.add_parser("explain", help="walk one form's operations at one point: which operation broke it")
    x.add_argument("form", help="form name (see precision-lab list), or your function as FILE.py:NAME")
    x.add_argument("--kwargs", metavar="JSON", help="keyword arguments of your function")
    x.add_argument("--grad", action="store_true", help="your function: walk its gradient (value and backward pass)")
    x.add_argument("--dtype", required=True, help="format, e.g. float16")
    x.add_argument("--z", required=True, type=float, help="logit z (softmax: margin m or offset c)")
    x.add_argument("--y", type=float, default=0.0, help="sigmoid target y in [0, 1] (default: 0)")
    x.add_argument("--family", default=None,
                   help=f"the form's family: {', '.join(registry.KINDS)} (default: the one the form belongs to; "
                        "softmax with --classes); for your function, softmax means fn(logits, label)")
    x.add_argument("--classes", type=positive_int, default=None, help="softmax: K classes (default: 10)")
    x.add_argument("--target-class", default="top", help="softmax: top or other (default: top)")
    x.add_argument("--sweep", default="margin", help="softmax: margin or offset (default: margin)")
    x.add_argument("--allowance", type=tolerance, default=4.0,
                   help="ULPs of local error beyond which an operation lost the value (default: 4)")
    x.add_argument("--json", action="store_true", help="print the cause as JSON instead of the table")
    no_color(x)


def _policy_parser(sub) -> None:
    q = sub.add_parser("policy", help="which lines of your loss must compute in a wider format: a minimal set, "
                                      "proven at every value of the format")
    q.add_argument("function", metavar="FILE.py:NAME", help="your function fn(z, y) -> scalar")
    q.add_argument("--dtypes", type=listed("format names"), default=["bfloat16"],
                   help="comma-separated formats of 16 bits or less (default: bfloat16)")
    q.add_argument("--targets", type=listed("targets", float), default=[0.0, 1.0],
                   help="comma-separated targets y proven (default: 0,1)")
    q.add_argument("--classes", type=positive_int, default=None, metavar="K",
                   help="a multiclass function fn(logits, label) at K classes, proven on the margin and offset "
                        "sweeps with the true class on top and not")
    q.add_argument("--wide", default="float32", help="the format the chosen lines compute in (default: float32)")
    q.add_argument("--range", type=value_range, default=None, dest="value_range", metavar="LO,HI",
                   help="prove only the logits in [LO, HI], the values a model really produces (default: all)")
    q.add_argument("--tolerance", type=tolerance, default=None, metavar="N",
                   help="also require every error to be at most N ULPs")
    q.add_argument("--kwargs", metavar="JSON", help="keyword arguments of the function")
    q.add_argument("--json", metavar="PATH", help="write the policy, its verification and its cost as JSON")
    q.add_argument("--max-hours", type=max_hours, default=DEFAULT_MAX_HOURS, metavar="HOURS",
                   help=f"refuse a search whose time, estimated from its first sets, exceeds HOURS "
                        f"(default: {DEFAULT_MAX_HOURS:g}; 0: no limit)")
    no_color(q)

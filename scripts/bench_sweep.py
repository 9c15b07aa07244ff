"""Throughput of the sweep engine against its floor and a plain NumPy sweep, side by side.

* engine: the full sweep (``precision_lab.sweep``) of every form of the case's family;
* floor:  the same batches, all forms and their references in one jitted program that
          returns one scalar per batch, nothing else (XLA shares work across forms);
* per-form floor: the same, with each form's kernel in a program of its own (as the
          engine must run it, so that no row depends on what else is swept);
* numpy:  scripts/numpy_sweep.py, the same kernels, reference and classification in NumPy.

Each figure is the median of `--repeats` rounds after one warm-up (compilation is not
counted); a round runs the engine, the floor and NumPy once each, in turn. `--json` prints one JSON object; otherwise a table.

    python scripts/bench_sweep.py                 # float32, 2**24 points per row
    python scripts/bench_sweep.py --points 1048576 --repeats 3 --json
    python scripts/bench_sweep.py --check         # a user's loss of ~30 operations, checked cold
    python scripts/bench_sweep.py --exhaustive    # every float32 value, sigmoid family, y = 0 and 1
    python scripts/bench_sweep.py --exhaustive --sample 268435456   # 2**28 values, extrapolated

`--check` times `precision-lab check scripts/bench_losses.py:smoothed_focal` (value
and gradient; float16 and bfloat16 exhaustive, float32 and float64 sampled; targets
0 and 1) in a fresh process, import and compilation included, and reports the
reference tiers' points per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

# the checkout's package (not an older installed copy) and the NumPy sweep beside this file
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).parent)]
import numpy_sweep  # noqa: E402
import precision_lab as pl  # noqa: E402
from precision_lab.engine import programs  # noqa: E402
from precision_lab.families import softmax  # noqa: E402
from precision_lab.numerics import formats, sampling  # noqa: E402
from precision_lab.output.report import make_console  # noqa: E402
from precision_lab.numerics import jaxpr

CASES = [
    {"name": "sigmoid float32 y=0", "family": "sigmoid", "dtype": "float32", "target": 0.0},
    {"name": "softmax margin K=32768 bfloat16", "family": "softmax", "classes": 32768, "dtype": "bfloat16"},
    {"name": "softmax margin K=32768 float32", "family": "softmax", "classes": 32768, "dtype": "float32"},
]
SOFTMAX_POINTS = 1024  # margin vectors per softmax case (× K = 32768 entries each)
EXHAUSTIVE_SAMPLE = 1 << 26  # float32 values a target that the default run extrapolates from


def median_times(fns: dict, repeats: int) -> dict:
    """Median seconds of each function over `repeats` rounds, after one warm-up each
    (compilation is not counted). Each round runs every function once, in turn, so
    a slow spell of a shared machine slows all of them alike and their ratios hold."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _family_and_target(case):
    if case["family"] == "softmax":
        return softmax.family(case["classes"]), softmax.case("margin", "top")
    return pl.FAMILIES[case["family"]], case["target"]


def _floor_parts(case, axis):
    """What both floors compute per batch: the points' inputs, each form's kernel
    summed, and every reference summed (as functions to jit whole or one by one)."""
    fam, target = _family_and_target(case)
    fmt = axis.fmt
    y64 = float(fmt.cast(target).astype(np.float64))
    label = fam.label(target, fmt)
    size = programs.batch_size(fam)
    refs = programs.distinct_references(fam.forms)[0]

    def inputs(start):
        ords = axis.ordinals(start + jnp.arange(size, dtype=jnp.int64), jnp)
        return ords, fam.inputs(formats.from_ordinal(ords, fmt, jnp), fam.case(target))

    kernels = [lambda x, f=f: jnp.sum(jax.vmap(f.kernel, (0, None))(x, label).astype(jnp.float32))
               for f in fam.forms]

    def references(ords):
        base = fam.device_base(formats.ordinal_to_float64(ords, fmt, jnp), y64)
        return sum(jnp.sum(e) + jnp.sum(s) for e, s in (r(base) for r in refs))

    return size, inputs, kernels, references


def floor_runner(case, axis):
    """The same batches, every form's kernel and every reference in one jitted program
    that returns one scalar per batch (the least work a sweep can do; the engine runs
    each kernel alone, as its user compiles it, so its results cannot change with what
    else is swept)."""
    size, inputs, kernels, references = _floor_parts(case, axis)

    @jax.jit
    def chunk(start):
        ords, x = inputs(start)
        return sum(k(x) for k in kernels) + references(ords)

    def run():
        jax.block_until_ready([chunk(s) for s in range(0, len(axis), size)])

    return run


def per_form_floor_runner(case, axis):
    """The same batches with each form's kernel jitted alone (the program its user
    compiles, and the engine runs) and the references in one program, each returning
    one scalar per batch: the least work a sweep that keeps one program per form can
    do (the fused floor above shares work, e.g. one exp, across forms)."""
    size, inputs, kernels, references = _floor_parts(case, axis)
    inputs, references = jax.jit(inputs), jax.jit(references)
    kernels = [jax.jit(k) for k in kernels]

    def run():
        sums = []
        for s in range(0, len(axis), size):
            ords, x = inputs(s)
            sums += [k(x) for k in kernels] + [references(ords)]
        jax.block_until_ready(sums)

    return run


def numpy_runner(case, axis):
    fam, _ = _family_and_target(case)
    size = programs.batch_size(fam)

    def run():
        for s in range(0, len(axis), size):
            if case["family"] == "softmax":
                numpy_sweep.softmax_chunk(axis.values(s, s + size), case["classes"], 0, axis.fmt)
            else:
                numpy_sweep.sweep_chunk(axis.values(s, s + size), case["target"])

    return run


def bench(case, points: int, repeats: int) -> dict:
    fmt = formats.get(case["dtype"])
    if case["family"] == "softmax":
        points = SOFTMAX_POINTS
        kw = dict(classes=[case["classes"]], sweeps=["margin"], target_classes=["top"])
    else:
        kw = dict(targets=[case["target"]])
    axis = sampling.Axis(fmt, points, 0, exhaustive=False)
    n = len(axis)

    def engine_run():
        pl.sweep(case["family"], dtypes=[case["dtype"]], points=points, **kw)

    times = median_times({"engine": engine_run, "floor": floor_runner(case, axis),
                          "floor_per_form": per_form_floor_runner(case, axis), "numpy": numpy_runner(case, axis)},
                         repeats)
    rate = {name: n / t for name, t in times.items()}
    return {
        "name": case["name"],
        "points": n,
        "points_per_s": rate,
        "engine_over_floor": rate["engine"] / rate["floor"],
        "engine_over_per_form_floor": rate["engine"] / rate["floor_per_form"],
        "engine_over_numpy": rate["engine"] / rate["numpy"],
    }


def exhaustive_case(sample: int | None, out: str | None = None) -> dict:
    """The whole sigmoid family, targets 0 and 1, every float32 value (`--exhaustive`),
    through the API as the command runs it, after one small warm-up sweep (compilation
    is not counted). With `sample`, only that many values are swept: 16 equal slices
    spread evenly over the lattice (so the mix of uniform and class-changing calls is
    the whole axis's), and the time is extrapolated to 2**32 values, said as such.
    Peak memory is the process's maximum resident set."""
    import resource

    fmt = formats.get("float32")
    pl.sweep("sigmoid", dtypes=["float32"], targets=[0.0, 1.0], exhaustive=True, value_range=(0.5, 0.6))
    total = fmt.lattice_size
    t0 = time.perf_counter()
    if sample is None:
        result = pl.sweep("sigmoid", dtypes=["float32"], targets=[0.0, 1.0], exhaustive=True)
        swept = result.rows[0]["points"]
        if out:
            from precision_lab.output.writers import write_json

            write_json(result.to_json(), out)
    else:
        swept, width = 0, sample // 16
        for k in range(16):
            lo = -fmt.max_ordinal + (2 * fmt.max_ordinal - width) * k // 15
            lo_v, hi_v = (float(formats.from_ordinal(np.int64(o), fmt)) for o in (lo, lo + width - 1))
            swept += pl.sweep("sigmoid", dtypes=["float32"], targets=[0.0, 1.0], exhaustive=True,
                              value_range=(lo_v, hi_v)).rows[0]["points"]
    seconds = time.perf_counter() - t0
    whole = seconds * total / swept if sample else seconds
    return {"name": "sigmoid family, float32 exhaustive, y=0,1", "forms": len(pl.FAMILIES["sigmoid"].forms),
            "points_swept_per_target": swept, "seconds": round(seconds, 1),
            "exhaustive_float32_s": round(whole, 1),
            "exhaustive_float32_method": "measured" if sample is None else
            f"extrapolated from {swept} values per target (16 slices spread over the lattice)",
            "points_per_s": round(2 * swept / seconds),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def check_case() -> dict:
    """The cold `check` of scripts/bench_losses.py:smoothed_focal: seconds and tier rates."""
    import os
    import subprocess
    import tempfile


    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    from bench_losses import smoothed_focal

    args = (jnp.float32(1), jnp.float32(0))
    ops = {q: len(jaxpr.flatten(jax.make_jaxpr(f)(*args)).eqns) for q, f in
           (("loss", smoothed_focal), ("grad", jax.grad(smoothed_focal)))}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "check.json")
        env = dict(os.environ, PRECISION_LAB_CACHE=os.path.join(tmp, "cache"))  # cold: nothing compiled yet
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "precision_lab", "check", f"{here / 'bench_losses.py'}:smoothed_focal",
                        "--json", out, "--quiet"], check=True, env=env, cwd=here.parent)
        seconds = time.perf_counter() - t0
        rows = json.load(open(out))["rows"]
    tiers = {}
    for k in ("interval", "exact", "rewritten", "unresolved", "float64"):
        tiers[k] = sum(r["tiers"][k] for r in rows)
    rate = {k: statistics.median([r["tiers"][f"{k}_points_per_s"] for r in rows if r["tiers"][f"{k}_points_per_s"]])
            for k in ("interval", "exact")}
    return {"name": "check smoothed_focal (cold, all formats, y=0,1)", "seconds": round(seconds, 1), "ops": ops,
            "rows": len(rows), "points": sum(r["points"] for r in rows), "tiers": tiers,
            "median_points_per_s": rate}


def main() -> None:
    ap = argparse.ArgumentParser(description="Engine throughput against its floor and NumPy.")
    ap.add_argument("--points", type=int, default=1 << 24, help="points per row (default 2**24)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per figure (default 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--cases", default=None, help="comma-separated case-name substrings to run (default: all)")
    ap.add_argument("--check", action="store_true", help="time the check of a user's ~30-operation loss instead")
    ap.add_argument("--exhaustive", action="store_true",
                    help="time the exhaustive float32 sweep of the sigmoid family (targets 0 and 1) instead")
    ap.add_argument("--sample", type=int, default=None, metavar="N",
                    help="sweep N float32 values a target (16 slices) and extrapolate to 2**32 (default without "
                         "--exhaustive: 2**26; with it: every value)")
    ap.add_argument("--device", default=None, help="JAX backend to run on (default: JAX's default)")
    ap.add_argument("--out", default=None, metavar="PATH", help="with --exhaustive: also write the sweep's JSON")
    args = ap.parse_args()
    if args.device:
        jax.config.update("jax_platforms", args.device)
    where = {"backend": jax.default_backend(), "device_count": len(jax.local_devices()),
             "device_kind": jax.local_devices()[0].device_kind, "jax": jax.__version__}
    if args.check:
        print(json.dumps(check_case() | where, indent=1))
        return
    if args.exhaustive:
        print(json.dumps(exhaustive_case(args.sample, args.out) | where, indent=1))
        return
    chosen = [c for c in CASES if args.cases is None or any(p in c["name"] for p in args.cases.split(","))]
    cases = [bench(c, args.points, args.repeats) for c in chosen]
    whole = exhaustive_case(args.sample or EXHAUSTIVE_SAMPLE)
    doc = {
        "cases": cases,
        "exhaustive_float32_s": whole["exhaustive_float32_s"],
        "exhaustive_float32_method": whole["exhaustive_float32_method"],
        "engine_over_floor": min(c["engine_over_floor"] for c in cases),
        "engine_over_per_form_floor": min(c["engine_over_per_form_floor"] for c in cases),
        "engine_over_numpy": min(c["engine_over_numpy"] for c in cases),
        **where,
    }
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    from rich.table import Table

    t = Table(title=f"sweep throughput, points/s (median of {args.repeats}, {doc['backend']})")
    for col in ("case", "points", "engine", "floor", "per-form floor", "numpy", "engine/floor",
                "engine/per-form", "engine/numpy"):
        t.add_column(col, justify="right", no_wrap=col != "case")
    for c in cases:
        r = c["points_per_s"]
        t.add_row(c["name"], str(c["points"]), f"{r['engine']:.3g}", f"{r['floor']:.3g}",
                  f"{r['floor_per_form']:.3g}", f"{r['numpy']:.3g}", f"{c['engine_over_floor']:.2f}",
                  f"{c['engine_over_per_form_floor']:.2f}", f"{c['engine_over_numpy']:.1f}")
    make_console().print(t)
    print(f"exhaustive float32, sigmoid family, y = 0 and 1: {doc['exhaustive_float32_s']:.0f} s "
          f"({doc['exhaustive_float32_method']})")


if __name__ == "__main__":
    main()

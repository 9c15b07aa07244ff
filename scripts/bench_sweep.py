"""Throughput of the sweep engine against its floor and a plain NumPy sweep, side by side.

* engine: the full sweep (``precision_lab.sweep``) of every form of the case's family;
* floor:  the same batches, all forms and their references in one jitted program that
          returns one scalar per batch, nothing else;
* numpy:  scripts/numpy_sweep.py, the same kernels, reference and classification in NumPy.

Each figure is the median of `--repeats` rounds after one warm-up (compilation is not
counted); a round runs the engine, the floor and NumPy once each, in turn. `--json` prints one JSON object; otherwise a table.

    python scripts/bench_sweep.py                 # float32, 2**24 points per row
    python scripts/bench_sweep.py --points 1048576 --repeats 3 --json
    python scripts/bench_sweep.py --check         # a user's loss of ~30 operations, checked cold

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
from precision_lab import engine, formats, sampling, softmax  # noqa: E402
from precision_lab.report import make_console  # noqa: E402

CASES = [
    {"name": "sigmoid float32 y=0", "family": "sigmoid", "dtype": "float32", "target": 0.0},
    {"name": "softmax margin K=32768 bfloat16", "family": "softmax", "classes": 32768, "dtype": "bfloat16"},
    {"name": "softmax margin K=32768 float32", "family": "softmax", "classes": 32768, "dtype": "float32"},
]
SOFTMAX_POINTS = 1024  # margin vectors per softmax case (× K = 32768 entries each)


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


def floor_runner(case, axis):
    """The same batches, every form's kernel and every reference in one jitted program
    that returns one scalar per batch (the least work a sweep can do; the engine runs
    each kernel alone, as its user compiles it, so its results cannot change with what
    else is swept)."""
    fam, target = _family_and_target(case)
    fmt = axis.fmt
    y64 = float(fmt.cast(target).astype(np.float64))
    label = fam.label(target, fmt)
    size = engine.batch_size(fam)
    refs = engine.distinct_references(fam.forms)[0]

    @jax.jit
    def chunk(start):
        ords = axis.ordinals(start + jnp.arange(size, dtype=jnp.int64), jnp)
        x = fam.inputs(formats.from_ordinal(ords, fmt, jnp), fam.case(target))
        outs = [jax.vmap(f.kernel, (0, None))(x, label) for f in fam.forms]
        base = fam.device_base(formats.ordinal_to_float64(ords, fmt, jnp), y64)
        exact = [r(base) for r in refs]
        return sum(jnp.sum(o.astype(jnp.float32)) for o in outs) + sum(jnp.sum(e) + jnp.sum(s) for e, s in exact)

    def run():
        sums = [chunk(s) for s in range(0, len(axis), size)]
        jax.block_until_ready(sums)

    return run


def numpy_runner(case, axis):
    fam, _ = _family_and_target(case)
    size = engine.batch_size(fam)

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

    times = median_times({"engine": engine_run, "floor": floor_runner(case, axis), "numpy": numpy_runner(case, axis)},
                         repeats)
    rate = {name: n / t for name, t in times.items()}
    return {
        "name": case["name"],
        "points": n,
        "points_per_s": rate,
        "engine_over_floor": rate["engine"] / rate["floor"],
        "engine_over_numpy": rate["engine"] / rate["numpy"],
    }


def check_case() -> dict:
    """The cold `check` of scripts/bench_losses.py:smoothed_focal: seconds and tier rates."""
    import os
    import subprocess
    import tempfile

    from precision_lab import exact

    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    from bench_losses import smoothed_focal

    args = (jnp.float32(1), jnp.float32(0))
    ops = {q: len(exact.flatten(jax.make_jaxpr(f)(*args)).eqns) for q, f in
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
    args = ap.parse_args()
    if args.check:
        doc = check_case() | {"backend": jax.default_backend(), "jax": jax.__version__}
        print(json.dumps(doc, indent=1))
        return
    chosen = [c for c in CASES if args.cases is None or any(p in c["name"] for p in args.cases.split(","))]
    cases = [bench(c, args.points, args.repeats) for c in chosen]
    doc = {
        "cases": cases,
        "engine_over_floor": min(c["engine_over_floor"] for c in cases),
        "engine_over_numpy": min(c["engine_over_numpy"] for c in cases),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
    }
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    from rich.table import Table

    t = Table(title=f"sweep throughput, points/s (median of {args.repeats}, {doc['backend']})")
    for col in ("case", "points", "engine", "floor", "numpy", "engine/floor", "engine/numpy"):
        t.add_column(col, justify="right", no_wrap=col != "case")
    for c in cases:
        r = c["points_per_s"]
        t.add_row(c["name"], str(c["points"]), f"{r['engine']:.3g}", f"{r['floor']:.3g}", f"{r['numpy']:.3g}",
                  f"{c['engine_over_floor']:.2f}", f"{c['engine_over_numpy']:.1f}")
    make_console().print(t)


if __name__ == "__main__":
    main()

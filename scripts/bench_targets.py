"""The speed targets of the exact references, each run as a user runs it (a fresh
process, import and compilation included), printed beside its target and the figure
measured before arb balls replaced mpmath in the references (same machine: 2 cores).

    python scripts/bench_targets.py                       # every target but the exhaustive one, median of 3
    python scripts/bench_targets.py --only check-44 check-k10 --repeats 1
    python scripts/bench_targets.py --only exhaustive-f32 --repeats 1   # about 8 minutes

Each figure is the median wall time (and the largest peak RSS) over `--repeats`
runs; `--json` prints them as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "precision_lab"]

# name: (command after `precision-lab`, target seconds, target MB or None, before)
TARGETS = {
    "default-cached": (["sweep"], 30, None, "about 115 s"),
    "default-cold": (["sweep"], 60, None, "133–140 s"),
    "check-44": (["check", "scripts/bench_losses.py:smoothed_focal", "--dtypes", "float16,bfloat16"], 15, None,
                 "90 s"),
    "check-k10": (["check", "tests/user/losses.py:ce_naive", "--classes", "10", "--dtypes", "float16,bfloat16"], 60,
                  None, "8–11 min"),
    "logits": (["sweep", "--family", "softmax", "--dtypes", "bfloat16", "--logits", "{logits}"], 60, 2048,
               "6 min 48 s, 5.9 GB, then a traceback"),
    "exhaustive-f32": (["sweep", "--family", "sigmoid", "--dtypes", "float32", "--exhaustive", "--targets", "0,1"],
                       480, None, "838 s"),
}
DEFAULT = [n for n in TARGETS if n != "exhaustive-f32"]


def _logits(folder: str) -> str:
    """1000 × 50000 bfloat16 logits (N(0, 3²), a few outliers at ±60), as .npy."""
    import ml_dtypes
    import numpy as np

    path = os.path.join(folder, "logits.npy")
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        z = rng.normal(0, 3, (1000, 50000)).astype(np.float32)
        z[rng.integers(0, 1000, 50), rng.integers(0, 50000, 50)] = 60.0
        np.save(path, z.astype(ml_dtypes.bfloat16))
    return path


def run_once(args: list[str], cache: str, out_json: str) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one run in a fresh process."""
    env = dict(os.environ, PRECISION_LAB_CACHE=cache)
    t0 = time.perf_counter()
    proc = subprocess.Popen(CLI + args + ["--json", out_json], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=list(TARGETS), default=DEFAULT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="precision_lab_bench_")
    warm = os.path.join(work, "warm-cache")
    results = {}
    for name in args.only:
        cmd, target_s, target_mb, before = TARGETS[name]
        cmd = [c.replace("{logits}", _logits(work)) for c in cmd]
        out = os.path.join(work, f"{name}.json")
        if name != "default-cold":  # fills the compile cache the measured runs use (the exhaustive
            # sweep's programs from a range of it: the whole takes minutes)
            run_once(cmd + (["--range", "1,2"] if name == "exhaustive-f32" else []), warm, out)
        runs = []
        for i in range(args.repeats):
            cache = os.path.join(work, f"cold-{i}") if name == "default-cold" else warm
            runs.append(run_once(cmd, cache, out))
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        results[name] = {"command": "precision-lab " + " ".join(cmd), "median_s": round(wall, 1),
                         "peak_rss_mb": round(rss), "exit_codes": [r[2] for r in runs], "target_s": target_s,
                         "target_mb": target_mb, "before": before, "repeats": args.repeats,
                         "meets": wall <= target_s and (target_mb is None or rss <= target_mb)}
        if not args.json:
            r = results[name]
            mb = f", ≤ {target_mb} MB" if target_mb else ""
            print(f"{name:15s} {r['median_s']:7.1f} s  {r['peak_rss_mb']:6d} MB  target ≤ {target_s} s{mb}  "
                  f"before {before}  {'meets' if r['meets'] else 'MISSES'}  exit {r['exit_codes']}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

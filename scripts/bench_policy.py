"""Times `precision-lab policy` in processes of their own (compile cache off): the
44-operation benchmark loss (label-smoothed focal BCE with a z-loss,
scripts/bench_losses.py) in bfloat16, y = 0 and 1, against the target of 2 minutes;
a naive cross-entropy at K = 10 in bfloat16, against 10 minutes.

    python scripts/bench_policy.py
"""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_S = 120.0


def main() -> int:
    cmd = [sys.executable, "-m", "precision_lab", "policy", os.path.join(ROOT, "scripts", "bench_losses.py") +
           ":smoothed_focal", "--dtypes", "bfloat16", "--targets", "0,1", "--no-color"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PRECISION_LAB_CACHE="0"))
    took = time.perf_counter() - t0
    print(p.stdout)
    if p.returncode:
        print(p.stderr, file=sys.stderr)
        return p.returncode
    print(f"policy, 44-operation loss, bfloat16, y = 0 and 1: {took:.1f} s (target ≤ {TARGET_S:.0f} s: "
          f"{'meets' if took <= TARGET_S else 'MISSES'} it)")
    cmd = [sys.executable, "-m", "precision_lab", "policy", os.path.join(ROOT, "tests", "user", "losses.py") +
           ":ce_naive", "--classes", "10", "--dtypes", "bfloat16", "--no-color"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PRECISION_LAB_CACHE="0"))
    took = time.perf_counter() - t0
    if p.returncode:
        print(p.stderr, file=sys.stderr)
        return p.returncode
    print(f"policy, naive cross-entropy, K = 10, bfloat16: {took:.1f} s (target ≤ 600 s: "
          f"{'meets' if took <= 600 else 'MISSES'} it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

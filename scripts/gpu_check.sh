#!/usr/bin/env bash
# The accelerator checks, as one short run on a machine with a GPU (or TPU):
#   * the bench (engine, floors, NumPy) on the device;
#   * the whole sigmoid family over every float32 value, y = 0 and 1, timed;
#   * a float64 sweep with its double-double reference on the device;
#   * `precision-lab diff` of the device's sigmoid JSON against the CPU's (a difference is
#     a finding: exp/log implementations, subnormals kept, conversions; exit 1 is expected).
# Results go to $OUT (default ./gpu_out). Install first: jax with its CUDA (or TPU) plugin,
# from wheels where the machine has no network: pip install --no-index -f WHEELS 'jax[cuda12]' .
set -uo pipefail
OUT=${OUT:-gpu_out}
BACKEND=${BACKEND:-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python -c "import jax; print(jax.devices())" | tee "$OUT/devices.txt"
python scripts/bench_sweep.py --device "$BACKEND" --points 16777216 --repeats 3 --json > "$OUT/bench.json"
python scripts/bench_sweep.py --device "$BACKEND" --exhaustive > "$OUT/exhaustive.json"
for dev in "$BACKEND" cpu; do
  precision-lab sweep --family sigmoid --dtypes bfloat16,float32,float64 --device "$dev" --quiet --json "$OUT/sigmoid_$dev.json"
done
precision-lab diff "$OUT/sigmoid_cpu.json" "$OUT/sigmoid_$BACKEND.json" --json > "$OUT/diff.json"
echo "diff exit status: $? (1: figures differ between the backends)"

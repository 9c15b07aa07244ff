"""`check` every per-example loss of optax.losses in float16 and bfloat16, and print
docs/optax.md's table: each loss's worst grade per format and quantity, with the
onsets of its failure classes (NaN, ∞, normal values lost to 0).

    python scripts/optax_table.py            # binary losses exhaustive; multiclass at K = 3
    python scripts/optax_table.py --classes 10

The losses are tests/user/optax_losses.py's (one wrapper per optax function)."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "user")]
import optax_losses  # noqa: E402
import precision_lab as pl  # noqa: E402
from precision_lab.output import grades  # noqa: E402

FORMATS = ("float16", "bfloat16")


def _onsets(rows) -> str:
    """The failure classes' onsets nearest 0 over the rows, as `nan −87.5 / 5.56`; a
    zero onset where the exact value is subnormal (a flush) is marked `s`."""
    parts = []
    for cls, name in (("nan", "NaN"), ("inf", "∞"), ("zero", "0")):
        near = {}
        for row in rows:
            for side, v in ((row.get("onset") or {}).get(cls) or {}).items():
                if side in ("neg", "pos") and v is not None and (side not in near or abs(v) < abs(near[side][0])):
                    flush = cls == "zero" and bool((row.get("zero_onset_subnormal") or {}).get(side))
                    near[side] = (v, "s" if flush else "")
        if near:
            parts.append(f"{name} " + " / ".join(f"{near[s][0]:.6g}{near[s][1]}" for s in ("neg", "pos") if s in near))
    return "; ".join(parts)


def run(fn, classes: int | None) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    res = pl.check(fn, dtypes=list(FORMATS), classes=[classes] if classes else None)
    cells = []
    for q in ("loss", "grad"):
        for fmt in FORMATS:
            rows = [r for r in res.rows if r["quantity"] == q and r["dtype"] == fmt and r["form"] == fn.__name__]
            g = grades.worst(grades.grade(r) for r in rows)
            on = _onsets(rows)
            cells.append(f"{g}" + (f" ({on})" if on else ""))
    return cells, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=3, help="K for the multiclass losses (default 3)")
    args = ap.parse_args()
    print("| loss | K | loss f16 | loss bf16 | grad f16 | grad bf16 | s |")
    print("|---|---|---|---|---|---|---|")
    for fns, k in ((optax_losses.BINARY, None), (optax_losses.MULTICLASS, args.classes)):
        for fn in fns:
            try:
                cells, s = run(fn, k)
            except Exception:  # noqa: BLE001  a traceback is a finding: print it, keep going
                print(f"| {fn.__name__} | {k or '–'} | traceback: {traceback.format_exc().splitlines()[-1]} ||||")
                continue
            print(f"| {fn.__name__} | {k or '–'} | " + " | ".join(cells) + f" | {s:.0f} |", flush=True)


if __name__ == "__main__":
    main()

"""The README's table of precision policies for the built-in sigmoid forms: for each
form that breaks in bfloat16, the smallest set of its lines that,
computed in float32, makes it free of NaN, ∞ and lost values at every value of the
format, y = 0 and 1 (`precision_lab.analysis.policy`). A gradient form is proven on
its own value; a loss form on its value and its jax.grad.

    python scripts/policy_table.py            # prints the Markdown table
"""

import sys
import time

from precision_lab.analysis import policy
from precision_lab.families import sigmoid

FORMATS = ("bfloat16",)


def row(form, dtype: str) -> str:
    p = policy.policy(form.kernel, form.name, None, dtype, "float32", [0.0, 1.0], None, None,
                      gradient=form.quantity == "loss")
    table = {r["name"]: r for r in p["table"]}
    written = table["as written"]["failing"]
    if not written:
        return ""
    pol = p["policy"]
    lines = ("none suffices: all in float32 still fails "
             f"{table['all in float32']['failing']} points (clean on {_iv(table['all in float32']['clean'])})"
             if pol is None else ", ".join(f"`{s}`" for s in pol["lines"]) + f" ({pol['search']})")
    return (f"| `{form.name}` | {dtype} | {written} | {lines} | "
            f"{table['torch autocast float32 list']['failing']} |")


def _iv(iv) -> str:
    return "nothing" if iv is None else f"[{iv[0]:.6g}, {iv[1]:.6g}]"


def main() -> int:
    t0 = time.perf_counter()
    print("| form | format | failing as written | lines in float32 (search) | failing under autocast's list |")
    print("|---|---|---|---|---|")
    for form in sigmoid.FAMILY.forms:
        for dtype in FORMATS:
            line = row(form, dtype)
            if line:
                print(line)
    print(f"\n({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stability tables for the terminal, drawn with rich from sweep rows.

One table per (family, target): a row per form, a column per format. Each cell
lists the failure bands along the swept axis ("NaN z ≥ 5.5625", "0 on [7.63,
17.3]") and the worst error of the points that were computed at all; a verdict
under the table says which forms are stable in which formats.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from . import formats

STYLE = {"nan": "bold red", "inf": "magenta", "zero": "yellow", "inaccurate": "cyan", "ok": "green"}
LABEL = {"nan": "NaN", "inf": "∞", "zero": "0", "inaccurate": "inexact"}
SHOWN_BANDS = 2


def num(v: float) -> str:
    return f"{v:.6g}"


def band(lo: float, hi: float, fmt: formats.Format, axis: str) -> str:
    if lo == hi:
        return f"{axis} = {num(lo)}"
    if hi >= fmt.max and lo <= -fmt.max:
        return "everywhere"
    if hi >= fmt.max:
        return f"{axis} ≥ {num(lo)}"
    if lo <= -fmt.max:
        return f"{axis} ≤ {num(hi)}"
    return f"on [{num(lo)}, {num(hi)}]"


def cell(row: dict) -> Text:
    fmt = formats.get(row["dtype"])
    text = Text()
    mech = row.get("mechanism", {})
    for cls in ("nan", "inf", "zero"):
        iv = row["intervals"][cls]
        if not iv["total"]:
            continue
        listed = sorted(iv["listed"], key=lambda b: min(abs(b[0]), abs(b[1])))
        for lo, hi in listed[:SHOWN_BANDS]:
            line = f"{LABEL[cls]} {band(lo, hi, fmt, row['axis'])}"
            for m in mech.values() if cls == "nan" else ():
                if m["z"] in (lo, hi):
                    line += f" ({m['text']})"
            text.append(line + "\n", style=STYLE[cls])
        if iv["total"] > SHOWN_BANDS:
            text.append(f"  +{iv['total'] - SHOWN_BANDS} more bands\n", style=STYLE[cls])
    n_inexact = row["counts"]["inaccurate"]
    if n_inexact:
        share = 100.0 * n_inexact / row["points"]
        text.append(f"inexact {share:.3g}% of points\n", style=STYLE["inaccurate"])
    for note in row.get("constants", ()):
        text.append(note + "\n", style="dim")
    worst = row["max_ulp"]
    style = STYLE["ok"] if row["stable"] and not n_inexact else "default"
    text.append("max " + ("—" if worst is None else f"{worst:.3g} ulp"), style=style)
    return text


def with_strip(row: dict):
    """The cell of a row under its stability strip (one line, as wide as the column)."""
    from .terminal_plots import Strip

    return Group(Strip(row["profile"]), cell(row)) if row.get("profile") else cell(row)


def strip_legend(axis: str = "z") -> Text:
    from . import terminal_plots

    return terminal_plots.strip_legend(axis)


def verdict(rows: Sequence[dict], dtypes: Sequence[str]) -> Text:
    """Which forms are stable (no NaN, ∞ or lost 0) in which formats."""
    by_form: dict[str, list[str]] = {}
    for r in rows:
        by_form.setdefault(r["form"], [])
        if r["stable"]:
            by_form[r["form"]].append(r["dtype"])
    everywhere = [f for f, ok in by_form.items() if len(ok) == len(dtypes)]
    nowhere = [f for f, ok in by_form.items() if not ok]
    some = {f: ok for f, ok in by_form.items() if 0 < len(ok) < len(dtypes)}
    text = Text("Stable (no NaN, ∞ or lost 0) in every format: ", style="bold")
    text.append(", ".join(everywhere) or "none", style="green")
    for f, ok in some.items():
        text.append(f"\n  {f}: stable only in {', '.join(ok)}", style="default")
    text.append("\nUnstable in every format: ", style="bold")
    text.append(", ".join(nowhere) or "none", style="red")
    return text


def tables(result) -> list:
    """rich renderables: one table and verdict per (family, target)."""
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in result.rows:
        groups.setdefault((r["family"], r.get("sweep"), r.get("classes"), r["target"], r.get("target_class")), []).append(r)
    for (family, sweep, classes, target, tclass), rows in groups.items():
        dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
        title = f"{family}"
        title += f", {sweep} sweep" if sweep else ""
        title += f", K = {classes}" if classes else ""
        title += f", target y = {target:g}" if target is not None else ""
        title += f", target class {tclass}" if tclass else ""
        table = Table(title=title, show_lines=True, title_justify="left")
        table.add_column("form", style="bold", no_wrap=True)
        for d in dtypes:
            table.add_column(d, justify="left")
        forms = list(dict.fromkeys(r["form"] for r in rows))
        cells = {(r["form"], r["dtype"]): r for r in rows}
        for f in forms:
            first = next(r for r in rows if r["form"] == f)
            head = Text(f, style="bold")
            head.append(f"\n{first['quantity']}: {first['summary']}", style="dim")
            table.add_row(head, *[with_strip(cells[(f, d)]) if (f, d) in cells else Text("") for d in dtypes])
        out.append(Group(table, strip_legend(rows[0].get("axis", "z")), verdict(rows, dtypes), Text("")))
    return out


def header(meta: dict) -> Text:
    t = Text()
    t.append("precision_lab ", style="bold")
    t.append(
        f"{meta['precision_lab']} · jax {meta['jax']} · {meta['backend']} ({meta['device_kind']}) · "
        f"tolerance {meta['tolerance_ulp']:g} ulp · seed {meta['seed']} · "
        f"XLA_FLAGS={meta['xla_flags'] or '(unset)'}",
        style="dim",
    )
    return t


def print_result(result, console: Console | None = None) -> None:
    console = console or Console()
    console.print(header(result.meta))
    for r in tables(result):
        console.print(r)
    exhaustive = sorted({r["dtype"] for r in result.rows if r["exhaustive"]})
    sampled = sorted({(r["dtype"], r["points"]) for r in result.rows if not r["exhaustive"]})
    how = []
    if exhaustive:
        how.append("every value of " + ", ".join(exhaustive) + " (onsets exact)")
    if sampled:
        how.append(", ".join(f"{d}: {p} sampled points" for d, p in sampled) + " (boundaries refined by bisection)")
    console.print(Text("Swept " + "; ".join(how) + ".", style="dim"))

"""Stability tables for the terminal, drawn with rich from sweep rows.

One table per (family, target): a row per form, a column per format. Each cell
lists the failure bands along the swept axis ("NaN z ≥ 5.5625", "0 on [7.63,
17.3]") and the worst error of the points that were computed at all; a verdict
under the table says which forms are stable in which formats.
"""

from __future__ import annotations

import os
import sys

from collections.abc import Sequence

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..engine import modes
from ..engine.rows import RowKey
from ..numerics import formats
from . import grades, summary, terminal_plots
from .labels import INFO, LABEL, STYLE, band, cause_line, dtype_label, form_name, num, short

SHOWN_BANDS = 2


def cell(row: dict, tolerance: float = 4.0) -> Text:
    """A row's table cell: its failure bands with their causes, its inexact points,
    a rewrite's measured effect, what could not be decided, notes on its inputs, and
    its worst error."""
    fmt = formats.get(row["dtype"])
    text = Text()
    for cls in ("nan", "inf", "zero"):
        if row["counts"].get(cls):
            _bands(text, row, cls, fmt)
    n_inexact = row["counts"]["inaccurate"]
    if n_inexact:
        text.append(f"inexact {_pct(n_inexact, row['points'])} of {'points' if row['axis'] else 'vectors'}\n",
                    style=STYLE["inaccurate"])
        if row["axis"]:
            text.append(_nearest(row, fmt) + "\n", style=STYLE["inaccurate"])
    if row.get("fix"):
        _fix(text, row, fmt)
    _notes(text, row, fmt)
    worst = row["max_ulp"]
    style = STYLE["ok"] if row["stable"] and not n_inexact else "default"
    text.append("max " + ("—" if worst is None else f"{worst:.3g} ulp"), style=style)
    if worst is not None and worst > tolerance and not n_inexact:
        text.append("\n" + _excused(row, tolerance), style="dim")
    fwd = row.get("forward_error")
    if fwd and any(fwd[b] for b in fwd if b != "excused"):
        text.append("\npoints by ulp error (of the ok and inaccurate): " + " · ".join(f"{b.replace('-', '–')}: {fwd[b]}" for b in fwd
                                                if b != "excused" and fwd[b])
                    + (f"; {fwd['excused']} ok only by the condition allowance" if fwd.get("excused") else ""),
                    style="dim")
    return text


def _bands(text: Text, row, cls: str, fmt) -> None:
    """The bands of one failure class nearest zero, each with its mechanism and cause."""
    counts, n = row["counts"], row["points"]
    sub = " (exact subnormal)" if cls == "zero" and counts["zero_subnormal"] == counts["zero"] else ""
    negligible = ""
    if cls == "zero" and not sub and counts.get("zero_negligible"):
        negligible = (f"  {counts['zero_negligible']} of the {counts['zero']} points lost only entries below "
                      "eps × the gradient's largest\n")
    iv = row["intervals"][cls]
    if row["axis"] is None:  # no axis: the share of vectors
        text.append(f"{LABEL[cls]} {_pct(counts[cls], n)} of vectors{sub}\n", style=STYLE[cls])
        text.append(negligible, style="dim")
        return
    mech = row.get("mechanism", {})
    listed = sorted(iv["listed"], key=lambda b: min(abs(b[0]), abs(b[1])))
    onset = row["onset"][cls]
    for lo, hi in listed[:SHOWN_BANDS]:
        line = f"{LABEL[cls]} {band(lo, hi, fmt, row['axis'])}"
        for m in mech.values() if cls == "nan" else ():
            if m["z"] in (lo, hi):
                line += f" ({m['text']})"
        for side, end in (("neg", hi), ("pos", lo)):
            if onset[side] == end and onset["method"][side] == "sampled":
                line += " (sampled)"  # the nearest failing sample: earlier ones are possible
        text.append(line + sub + "\n", style=STYLE[cls])
        for side, end in (("neg", hi), ("pos", lo)):
            why = ((row.get("cause") or {}).get(cls) or {}).get(side)
            if why and onset[side] == end:
                text.append(f"  {cause_line(why, row.get('axis') or 'z')}\n", style="dim")
    if iv["total"] > SHOWN_BANDS:
        text.append(f"  +{iv['total'] - SHOWN_BANDS} more bands\n", style=STYLE[cls])
    text.append(negligible, style="dim")


def _fix(text: Text, row, fmt) -> None:
    """A rewrite swept in the same run: what it changed, and any onset it moved nearer zero."""
    fix = row["fix"]
    changes = "; ".join(
        f"{INFO[c].name} {fix['before'][c]} → {fix['after'][c]}" +
        (" (subnormal)" if c == "zero" and fix["after"].get("zero_subnormal") == fix["after"]["zero"] and
         fix["after"]["zero"] else "")
        for c in ("nan", "inf", "zero") if fix["before"][c] or fix["after"][c])
    for w in fix["rewrites"]:
        text.append(f"{'fix' if fix['better'] else 'rewrite (no better here)'}: {w['pattern']} → "
                    f"{w['replacement']} at {w['source'].split(' ')[0]}"
                    + ("" if w.get("same_function", True) else " (not the same function: the clip goes)") + "\n",
                    style="bold" if fix["better"] else "dim")
    text.append(f"  measured as {fix['form']}: {changes or 'no change'}\n", style="dim")
    for c, o in fix.get("onsets", {}).items():
        if c == "zero" and fix["after"].get("zero_subnormal") == fix["after"]["zero"]:
            continue  # flushed subnormals only: not held against the fix
        for k, side in ((0, "≤"), (1, "≥")):
            if o["after"][k] is not None and (o["before"][k] is None or abs(o["after"][k]) < abs(o["before"][k])):
                text.append(f"  but {LABEL[c]} now begins at {row['axis']} {side} {num(o['after'][k], fmt)}\n",
                            style="dim")


def _notes(text: Text, row, fmt) -> None:
    """What could not be decided, the framework constants, and the inputs' own notes."""
    n = row["points"]
    if row["counts"].get("unresolved"):
        bands = (row["intervals"].get("unresolved") or {}).get("listed") or []
        where = "; ".join(band(lo, hi, fmt, row["axis"]) for lo, hi in bands[:SHOWN_BANDS]) if row["axis"] else ""
        text.append(f"unresolved {_pct(row['counts']['unresolved'], n)}" + (f" ({where})" if where else "") +
                    ": exact value undefined or not settled at the precision cap\n", style=STYLE["unresolved"])
    for note in row.get("constants", ()):
        text.append(note + "\n", style="dim")
    if row.get("inputs_out_of_range"):
        text.append(f"{row['inputs_out_of_range']} input vectors overflow the format\n", style="dim")
    if row.get("inputs_rounded"):
        text.append(f"{row['inputs_rounded']} of {n} vectors rounded from {row['logits_dtype']} to {row['dtype']}\n",
                    style="dim")
    if row.get("labels_rounded"):
        text.append(f"labels of {row['labels_rounded']} vectors rounded to {row['dtype']}\n", style="dim")
    if row.get("sweep") == "logits" and row.get("worst"):
        bad = [w for w in row["worst"] if w["class"] != "ok"]
        for i, w in enumerate(bad):
            text.append(("worst " if i == 0 else "      ") + _worst_vector(w) + "\n", style="dim")


def _excused(row: dict, tolerance: float) -> str:
    """Why a row's error above the tolerance is not flagged: the condition floor."""
    if row.get("floor", "condition") != "condition":
        return f"(> {tolerance:g} ulp only at points not counted: NaN, ∞ or 0)"
    kappa = [float(k) for k in ((row.get("profile") or {}).get("kappa") or []) if k is not None]  # "inf" too
    where = f", κ up to {max(kappa):.3g}" if kappa else ""
    return f"(not flagged: within what rounding the input forces{where})"


def _worst_vector(w: dict) -> str:
    """One worst vector of a logits row: its index, label, margin and values."""
    label = f"label {w['label']}" + (f" (p {w['label_p']:.3g})" if "label_p" in w else "")
    where = f"#{w['index']} {label}, margin {w['margin']:.6g}"
    if "entry" in w:
        return f"{where}, loss {w['exact_loss']:.6g}: ∂z[{w['entry']}] {w['computed']:.6g} (exact {w['exact']:.6g})"
    return f"{where}: loss {w['computed']:.6g} (exact {w['exact']:.6g})"


def _nearest(row: dict, fmt: formats.Format) -> str:
    """Where inexact points begin on each side, and how that was found."""
    o, axis = row["onset"]["inaccurate"], row["axis"]
    parts = []
    for side, op in (("neg", "≤"), ("pos", "≥")):
        if o[side] is not None:
            approx = "≈ " if o["method"][side] == "sampled" else ""
            parts.append(f"{axis} {op} {approx}{num(o[side], fmt)} ({o['method'][side]})")
    return "  from " + ", ".join(parts)


def _pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.3g}%"


def _with_strip(row: dict, tolerance: float = 4.0):
    """The cell of a row under its stability strip (one line, as wide as the column)."""
    c = cell(row, tolerance)
    return Group(terminal_plots.Strip(row["profile"]), c) if row.get("profile") else c


def strip_legend(axis: str = "z", rows: Sequence[dict] = ()) -> Text:
    ranges = {tuple(r["range"]) for r in rows if r.get("range")}
    (lo, hi), = ranges if len(ranges) == 1 else ((None, None),)
    span = "−max … 0 … +max" if lo is None else f"{lo:g} … {hi:g}"
    return terminal_plots.strip_legend(axis, span, any(r["counts"].get("unresolved") for r in rows))


def verdict(rows: Sequence[dict]) -> Text:
    """Under a table: its forms by grade, worst first (as the summary grades them), with
    the formats where each grade holds, and any undecided points."""
    text = Text()
    for g in grades.GRADES:
        members = [v for v in grades.verdicts(rows) if v.grade == g]
        if not members:
            continue
        text.append(("\n" if text.plain else "") + grades.TITLES[g].split(" (")[0] + ": ", style="bold")
        text.append("; ".join(f"{v.name} ({', '.join(short(f) for f in v.by_format if v.grade_in(f) == g)})"
                              for v in members), style=grades.STYLES[g])
    unknown = [f"{form_name(r)} {dtype_label(r)} {_pct(r['counts']['unresolved'], r['points'])}" for r in rows
               if r["counts"].get("unresolved")]
    if unknown:
        text.append("\nUnresolved (the exact value was not decided there; stability holds for the rest): ", style="bold")
        text.append("; ".join(unknown), style=STYLE["unresolved"])
    return text


def _growth_with_k(rows: Sequence[dict]) -> Table | None:
    """The stable softmax forms' worst error (ULPs) on random logits of scale 1, where
    nothing saturates, against K per format, with any NaN or ∞ seen on any sweep at that K."""
    rows = [r for r in rows if r["family"] == "softmax" and r.get("stable_form")]
    if not any(r.get("sweep") == "random" for r in rows):
        return None
    ks = sorted({r["classes"] for r in rows})
    if len(ks) < 2:
        return None
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    t = Table(title="softmax: worst error (ULPs) of the stable forms on random logits of scale 1, against K",
              title_justify="left")
    t.add_column("form", style="bold", no_wrap=True)
    for d in dtypes:
        t.add_column(d)
    for f in dict.fromkeys(r["form"] for r in rows):
        line = []
        for d in dtypes:
            parts = []
            for k in ks:
                sel = [r for r in rows if (r["form"], r["dtype"], r["classes"]) == (f, d, k)]
                if not sel:
                    continue
                typical = [r["max_ulp_by_scale"].get("1") or 0 for r in sel if r.get("sweep") == "random"]
                worst = max(typical or [0])
                bad = [c for c in ("nan", "inf") if any(r["counts"][c] for r in sel)]
                parts.append(f"K={k}: {worst:.3g}" + (f" {'/'.join(LABEL[c] for c in bad)}" if bad else ""))
            line.append(Text("\n".join(parts)))
        if any(str(x) for x in line):
            t.add_row(f, *line)
    return t


CELL_WIDTH = 26  # columns a format's cell needs to stay readable; narrower consoles split a table


def tables(result, width: int = 200) -> list:
    """rich renderables: one table and verdict per (family, target), split into several
    tables of fewer formats each where `width` columns cannot hold them all."""
    out = []
    tolerance = result.meta.get("tolerance_ulp", 4.0)
    groups: dict[tuple, list[dict]] = {}
    for r in result.rows:
        groups.setdefault((r["family"], r.get("sweep"), r.get("classes"), r["target"], r.get("target_class")), []).append(r)
    for (family, sweep, classes, target, tclass), rows in groups.items():
        dtypes = list(dict.fromkeys(dtype_label(r) for r in rows))
        title = f"{family}"
        title += f", {sweep} sweep" if sweep else ""
        title += " (z = c + (1, 0, …) in the format: the rounding of c + 1 counts against every form)" \
            if sweep == "offset" else ""
        title += f", K = {classes}" if classes else ""
        title += f", target y = {target:g}" if target is not None else ""
        title += f", target class {tclass}" if tclass else ""
        forms = list(dict.fromkeys(form_name(r) for r in rows))
        cells = {(form_name(r), dtype_label(r)): r for r in rows}
        per_table = max(1, (width - 24) // CELL_WIDTH)
        parts = [dtypes[i:i + per_table] for i in range(0, len(dtypes), per_table)]
        for part in parts:
            table = Table(title=title if part is parts[0] else None, show_lines=True, title_justify="left")
            table.add_column("form", style="bold", max_width=22 if len(parts) > 1 else 30, overflow="fold")
            for d in part:
                table.add_column(d, justify="left", overflow="fold")
            for f in forms:
                first = next(r for r in rows if form_name(r) == f)
                head = Text(f, style="bold")
                head.append(f"\n{first['quantity']}: {first['summary']}", style="dim")
                table.add_row(head, *[_with_strip(cells[(f, d)], tolerance) if (f, d) in cells else Text("")
                                      for d in part])
            out.append(table)
        legend = [strip_legend(rows[0]["axis"], rows)] if rows[0]["axis"] else []
        scaled = [r for r in rows if r.get("loss_scale")]
        if scaled:
            legend.append(Text(f"Loss-scaled gradients ({', '.join(sorted({form_name(r) for r in scaled}))}): "
                               f"judged as {scaled[0]['judged']}.", style="dim"))
        out.append(Group(*legend, verdict(rows), Text("")))
    growth = _growth_with_k(result.rows)
    if growth is not None:
        out.append(growth)
    acc = result.meta.get("accumulation")
    if acc:
        out.append(Text("\n".join(f"Σ in {d}: {v['verdict']}." for d, v in acc.items()), style="dim"))
    return out


def header(meta: dict) -> Text:
    t = Text()
    t.append("precision_lab ", style="bold")
    t.append(
        f"{meta['precision_lab']} · jax {meta['jax']} · {meta['backend']} ({meta['device_kind']})\n"
        f"tolerance {meta['tolerance_ulp']:g} ulp · mode {meta.get('mode', 'jit')} · seed {meta['seed']} · "
        f"XLA_FLAGS={meta['xla_flags'] or '(unset)'}",
        style="dim",
    )
    return t


PIPED_WIDTH = 100  # columns when printing to a file or pipe, unless COLUMNS says otherwise


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (`| head`): rich would exit with status 1; the command
        stops quietly with 0, as on a BrokenPipeError of its own (see `cli.main`)."""
        if not self.quiet:
            os.dup2(os.open(os.devnull, os.O_WRONLY), (sys.stderr if self.stderr else sys.stdout).fileno())
        raise BrokenPipeError


def make_console(no_color: bool = False, stderr: bool = False) -> Console:
    """A rich console for the tables. On a terminal it takes the terminal's width; into
    a file or pipe it is PIPED_WIDTH wide (rich would take 80 and cut numbers short).
    With `no_color`, plain text: no colour and no styles at all."""
    c = _Console(stderr=stderr, color_system=None if no_color else "auto", no_color=no_color or None)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c.width = PIPED_WIDTH
    return c


def print_result(result, console: Console | None = None, detail: bool = False) -> None:
    """The header and the one-screen summary of each family; with `detail`, every
    table too, and how the rows were swept."""
    console = console or make_console()
    console.print(header(result.meta))
    for note in result.meta.get("notes", ()):
        console.print(Text(note), soft_wrap=True, highlight=False)
    for part in summary.summary(result, console.width):
        console.print(part, highlight=False)
    if not detail:
        return
    console.print()
    for r in tables(result, console.width):
        console.print(r)
    how = []
    for label, rows in _by_sweep(result.rows).items():
        parts = []
        vectors = sorted({r["points"] for r in rows if r["axis"] is None})
        if vectors:
            parts.append(" and ".join(map(str, vectors)) + " vectors")
        exhaustive = sorted({r["dtype"] for r in rows if r["exhaustive"]})
        if exhaustive:
            within = {tuple(r["range"]) for r in rows if r["exhaustive"] and r.get("range")}
            parts.append("every value of " + ", ".join(exhaustive)
                         + "".join(f" in [{lo:g}, {hi:g}]" for lo, hi in sorted(within)))
        sampled = sorted({(r["dtype"], r["points"]) for r in rows if not r["exhaustive"] and r["axis"]})
        if sampled:
            parts.append(", ".join(f"{p} points of {d}" for d, p in sampled))
        how.append(f"{label}: " + "; ".join(parts))
    how.append("Onsets: exhaustive and scanned ones are the failing values nearest zero, every value up to them "
               "evaluated; refined ones are exact boundaries of a class that is one band in the sample (failures "
               "between samples nearer zero are possible); sampled ones (marked) are the failing samples nearest zero "
               "(--scan-onsets makes them exact)")
    used = sorted({r.get("mode", "jit") for r in result.rows})
    how.append(f"Kernels: mode {', '.join(used)}, each form alone in batches of "
               f"{', '.join(str(b) for b in sorted({r.get('batch') for r in result.rows if r.get('batch')}))} points; "
               f"floor {result.meta.get('floor', 'condition')}")
    console.print(Text("Swept " + ". ".join(how) + ".", style="dim"))


def _by_sweep(rows) -> dict:
    """Rows grouped by what was swept: the family, and for softmax the sweep and K."""
    groups: dict = {}
    for r in rows:
        label = r["family"] if r["family"] != "softmax" else f"softmax {r.get('sweep')} sweep, K={r.get('classes')}"
        groups.setdefault(label, []).append(r)
    return groups


FIGURES = ("counts", "max_ulp", "onset", "intervals")  # what two modes' rows are compared on


def print_modes(compared: Sequence[dict], rows: Sequence, children: dict, console: Console) -> None:
    """Where the modes disagree: per row and mode run in this process, the points where
    its results differ from jit's (with the example nearest zero); per mode run in a
    process of its own (strict), the rows whose figures differ."""
    for mode in dict.fromkeys(c["mode"] for c in compared):
        t = Table(title=f"jit against {mode}: points whose results differ", title_justify="left")
        for col in ("form", "format", "case", "differ", "example nearest zero"):
            t.add_column(col)
        for c in compared:
            if c["mode"] != mode or not c["differ"]:
                continue
            case = (f"y={c['target']:g}" if c.get("target") is not None
                    else f"{c['sweep']} K={c['classes']} {c['target_class']}")
            e = c["example"]
            where = f"{c.get('axis') or 'z'} = {e['x']:.8g}" + (f"[{e['entry']}]" if e.get("entry") else "")
            name = c["form"] + (f" ({c['quantity']})" if c["family"] == "check" else "")
            t.add_row(name, c["dtype"], case, f"{c['differ']} of {c['points']}",
                      f"{where}: jit {e['jit']:.6g}, {mode} {e[mode]:.6g}, exact {e['exact']:.6g}")
        console.print(t if t.row_count else Text(f"jit and {mode} agree at every point of every row.", style="green"))
    for mode, theirs in children.items():
        _print_child(mode, rows, theirs, console)


def _print_child(mode: str, rows: Sequence, theirs: Sequence, console: Console) -> None:
    by_key = {RowKey.of(r): r for r in theirs}
    differ = [(r, by_key[r.key]) for r in rows if r.key in by_key and any(r[k] != by_key[r.key][k] for k in FIGURES)]
    if not differ:
        flags = modes.MODES[mode].flags if mode in modes.MODES else ""
        console.print(Text(f"Every row's figures are the same in {mode} mode" + (f" (XLA_FLAGS={flags})." if flags
                                                                                   else "."), style="green"))
        return
    t = Table(title=f"rows whose figures differ in {mode} mode", title_justify="left")
    for col in ("row", "jit", mode):
        t.add_column(col)
    for a, b in differ:
        show = lambda r: ", ".join(f"{k} {v}" for k, v in r["counts"].items() if v and k != "ok")  # noqa: E731
        t.add_row(a.key.name(), show(a) or "ok", show(b) or "ok")
    console.print(t)

"""The answer on one screen: per family, which form to use in each format, and every
form once, under the worst thing it does anywhere swept (worst first; see `grades`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from .grades import (
    GRADE_WORDS,
    GRADES,
    STYLES,
    TITLES,
    FormVerdict,
    _library,
    grade,
    verdicts,
    worst,
)
from . import run_notes
from .labels import cause_line, short
from .labels import dtype_label as label
from .ranking import (
    FAILING,
    _against_builtin,
    _best_errors,
    _choice_key,
    _forward_note,
    nearest_onset,
)
from .scale_note import scale_advice as _scale_advice
from .wording import shortest as _num
from .wording import wrap as _wrap


def _share(s: float) -> str:
    return f"{100 * s:.3g}%" if s >= 0.001 else f"{100 * s:.1g}%"


def _case(r: dict) -> str:
    """What sets a row apart within a form's format: K and the sweep of a softmax row."""
    return f"K = {r['classes']}, " if r.get("classes") else ""


def _cause(v: FormVerdict) -> str | None:
    """The cause at the failure the form's first failing format shows: the NaN or ∞
    onset nearest 0 (a NaN before an ∞ at the same value), of any target's row (named,
    y = …, where the form has rows of several), as the cell shows it. Where that row was not walked (vectors of more than
    causes.CAUSE_MAX_WIDTH entries), the nearest walked onset, with its K, and a word
    that the cell's onset is another row's."""
    for fmt_label, rows in v.by_format.items():
        onsets = [(abs(r["onset"][cls][side]), cls != "nan", r, cls, side) for r in rows if r.get("axis")
                  for cls in ("nan", "inf") for side in ("pos", "neg") if r["onset"][cls][side] is not None]
        if not onsets:
            continue
        cell = min(onsets, key=lambda t: t[:2])
        walked = [t for t in onsets if ((t[2].get("cause") or {}).get(t[3]) or {}).get(t[4])]
        if not walked:
            return None
        _, _, r, cls, side = cell if cell in walked else min(walked, key=lambda t: t[:2])
        why = r["cause"][cls][side]
        targets = {t.get("target") for rows_ in v.by_format.values() for t in rows_}
        y = f"y = {r['target']:g}, " if len(targets) > 1 and r.get("target") is not None else ""  # as explain --y
        at = f"{_case(r)}{y}{r['axis'] or 'z'} = {_num(r['onset'][cls][side], r)}"
        c_row = cell[2]
        other = "" if cell in walked else (f"; the cell's {c_row['axis'] or 'z'} = "
                                           f"{_num(c_row['onset'][cell[3]][cell[4]], c_row)} is "
                                           f"{_case(cell[2]).rstrip(', ') or 'another row'}'s, not walked")
        return f"cause ({short(fmt_label)}, {at}): {cause_line(why, r['axis'] or 'z').replace(' at ?', '')}{other}"
    return None


UPCAST_WORDS = {"fixed": "fixes it (no NaN, ∞ or lost value left)", "partly": "helps (fewer failures, none new)",
                "not fixed": "does not fix it"}


def _upcast_note(v: FormVerdict) -> str | None:
    """Whether computing in the wider format fixes the form (``upcast.upcast_fixes`` over
    its rows of every target): the worst verdict of each input:compute pair."""
    from ..analysis.upcast import upcast_fixes

    rows = [r for rs in v.by_format.values() for r in rs]
    order = ("not fixed", "partly", "fixed", "nothing to fix")
    pairs: dict[str, str] = {}
    for fx in upcast_fixes(rows):
        pair = f"{short(fx['dtype'])}→{short(fx['compute_dtype'])}"
        pairs[pair] = min(pairs.get(pair, "nothing to fix"), fx["verdict"], key=order.index)
    notes = [f"upcasting {pair} {UPCAST_WORDS[verdict]}" for pair, verdict in pairs.items() if verdict in UPCAST_WORDS]
    return "; ".join(notes) or None


def _use(verdict_list: Sequence[FormVerdict], fmt_labels: Sequence[str], width: int) -> Text:
    """Per quantity, the forms with the best grade in each format."""
    text = Text()
    for quantity in ("loss", "grad"):
        forms = [v for v in verdict_list if v.quantity == quantity]
        if not forms:
            continue
        per_fmt = {}
        for f in fmt_labels:
            rejected = {r["fix"]["form"] for v in forms for r in v.by_format.get(f, ())
                        if r.get("fix") and not r["fix"]["better"]}  # a rewrite judged no better here
            here = [v for v in forms if f in v.by_format and v.name.split(" (")[0] not in rejected]
            if not here:
                continue
            key = min(_choice_key(v, f) for v in here)
            chosen = [v for v in here if _choice_key(v, f) == key]
            per_fmt[f] = (worst(v.grade_in(f) for v in chosen), tuple(v.name for v in chosen))
        groups: dict[tuple, dict[str, list[str]]] = {}  # forms -> grade -> formats
        for f, (g, names) in per_fmt.items():
            groups.setdefault(names, {}).setdefault(g, []).append(f)
        for names, by_grade in groups.items():
            fmts_here = [f for fs in by_grade.values() for f in fs]
            where = "every format" if len(groups) == 1 < len(per_fmt) else ", ".join(short(f) for f in fmts_here)
            head = f"Use for the {quantity} ({where}): "
            notes = [("" if len(by_grade) == 1 else ", ".join(short(f) for f in fs) + " ") + GRADE_WORDS[g]
                     for g, fs in by_grade.items() if g != "clean" or len(by_grade) > 1]
            tail = f" ({'; '.join(notes)})" if notes else ""
            best = worst(by_grade)
            if best in FAILING and not any(g not in FAILING for g in by_grade):  # nothing checked qualifies
                what = "NaN or ∞" if best == "breaks" else "values lost to 0"
                head = f"No {quantity} form checked is free of {what} ({where}); the least bad: "
                near = min((nearest_onset(v, f) for v in forms if v.name in names
                            for f in fmts_here if f in v.by_format), key=lambda t: t[0])
                tail = f" (from |{near[1].get('axis') or 'z'}| ≥ {_num(near[0], near[1])})" \
                    if near[0] < float("inf") else ""
            tail += _not_the_same(names, verdict_list)
            if any(r.get("killed_gradient") for v in forms if v.name in names for f in fmts_here
                   for r in v.by_format.get(f, ())):
                tail += " — but a clip makes its gradient 0 where it cuts (below)"
            lines = _wrap([head + ", ".join(names) + tail], width, 0)
            lines = lines[:1] + [line for rest in lines[1:] for line in _wrap([rest], width, 4)]
            body = "\n".join(lines)
            text.append(body[:len(head)], style="bold")
            text.append(body[len(head):len(body) - len(tail)], style=STYLES[best])
            text.append(body[len(body) - len(tail):] + "\n", style="dim")
            libs = [f"{n} = {_library(n, forms)}" if len(names) > 1 else f"= {_library(n, forms)}"
                    for n in names if _library(n, forms)]
            for line in _wrap(libs, width, 4, "; "):
                text.append(line + "\n", style="dim")
    return text


def _not_the_same(names, verdict_list) -> str:
    """A note where a chosen form is a rewrite that changes the function (a clip gone)."""
    changed = {r["fix"]["form"] for v in verdict_list for rs in v.by_format.values() for r in rs
               if (r.get("fix") or {}).get("rewrites") and not all(w.get("same_function", True)
                                                                    for w in r["fix"]["rewrites"])}
    return " — a different function: its clip is gone" if any(n.split(" (")[0] in changed for n in names) else ""


def _grid_cells(rows: Sequence[dict], axes: bool = False) -> list[str]:
    """A form in one format as the grid shows it: the class at the first failure on each
    side of 0 and where it lies (the sign tells the side), or the share of vectors; for
    a stable format its inexact share and worst error, or ``ok``."""
    g = worst(grade(r) for r in rows)
    bad = [r for r in rows if grade(r) == g]
    if g in ("breaks", "lost", "tiny", "flush"):
        classes = ("nan", "inf") if g == "breaks" else ("zero",)
        mark = {"nan": "NaN", "inf": "∞", "zero": "0"}
        bad = [r for r in rows if any(r["counts"][c] for c in classes)]  # every target's, of any grade
        out = []
        for side in ("pos", "neg"):
            best = None
            for r in bad:
                for c in classes:
                    o = r["onset"][c][side] if r.get("axis") else None
                    # nearest zero first; at the same value a NaN before an ∞ (another target's)
                    if o is not None and (best is None or (abs(o), c != "nan") < (abs(best[0]), best[1] != "nan")):
                        best = (o, c, r, r["onset"][c]["method"][side])
            if best:
                o, c, r, method = best
                axis = r["axis"] if axes else ""
                flush = c == "zero" and (g == "flush" or (r.get("zero_onset_subnormal") or {}).get(side))
                out.append(f"{mark[c]}{'s' if flush else ''} {axis}{'~' if method == 'sampled' else ''}{_num(o, r)}")
        if not out:  # vectors only: the largest share
            s_, r = max(((sum(r["counts"][c] for c in classes) / r["points"], r) for r in bad), key=lambda t: t[0])
            c = max(classes, key=lambda c: r["counts"][c])
            out.append(f"{mark[c]}{'s' if g == 'flush' else ''} {_share(s_)} vec")
        return out
    if g == "inexact":
        share = max(r["counts"]["inaccurate"] / r["points"] for r in bad)
        ulp = max((r["max_ulp"] or 0) for r in bad)
        return [f"~ {_share(share)}", f"{ulp:.3g} ulp"]
    if g == "unresolved":
        return [f"? {sum(r['counts']['unresolved'] for r in bad)} pts"]
    return [f"ok {max((r['max_ulp'] or 0) for r in rows):.2g} ulp"]


def _notes(v: FormVerdict, g: str, best: dict | None = None, tolerance: float = 4.0) -> list[str]:
    lib = _library(v.name, [v])
    notes = [lib] if lib and g != "clean" else []
    for rs in v.by_format.values():  # a rewrite swept as NAME+fix: what it is
        for r in rs:
            for w in ((r.get("fix") or {}).get("rewrites") or []) if (r.get("fix") or {}).get("better") else []:
                note = (f"fix ({r['fix']['form']}): {w['pattern']} → {w['replacement']} at {w['source'].split(' ')[0]}"
                        + ("" if w.get("same_function", True) else " (not the same function: the clip goes; "
                           "measured against its own exact values)"))
                if note not in notes:
                    notes.append(note)
    tiny = [(f, max(r["zero_exact_max"] for r in rs if grade(r) == "tiny" and r.get("zero_exact_max") is not None))
            for f, rs in v.by_format.items() if v.grade_in(f) == "tiny"
            and any(grade(r) == "tiny" and r.get("zero_exact_max") is not None for r in rs)]
    if tiny:
        notes.append("true loss there ≤ " + ", ".join(f"{t:.2g} ({short(f)})" for f, t in tiny))
    small = [(f, sum(r["counts"].get("zero_negligible", 0) for r in rs)) for f, rs in v.by_format.items()
             if v.grade_in(f) == "tiny" and any(r["counts"].get("zero_negligible") for r in rs)]
    if small:
        notes.append("gradient entries lost only below eps × its largest entry: "
                     + ", ".join(f"{n} point{'s' if n != 1 else ''} ({short(f)})" for f, n in small))
    consts = dict.fromkeys(c for rs in v.by_format.values() for r in rs if r["family"] == "check"
                           for c in r.get("constants") or ())
    forward = _forward_note(v, best, tolerance) if best else None
    return notes + [n for n in (_cause(v), *consts, *_killed(v), _upcast_note(v), forward) if n]


def _killed(v: FormVerdict) -> list[str]:
    """Where a clip makes the gradient 0 or halves it (analysis.killed), per row."""
    out = []
    for rs in v.by_format.values():
        for r in rs:
            k = r.get("killed_gradient")
            if not k:
                continue
            parts = [f"{what} on {', '.join(f'[{_num(lo, r)}, {_num(hi, r)}]' for lo, hi in k[what]['bands'][:2])}"
                     f"{' …' if len(k[what]['bands']) > 2 else ''} ({k[what]['count']} points)"
                     for what in ("killed", "halved") if k[what]["count"]]
            ctx = f"y={r['target']:g}" if r.get("target") is not None else ""
            sampled = "" if k.get("exhaustive", True) else ", among the points sampled"
            out.append(f"gradient {' and '.join(parts).replace('killed', '0', 1)} by the clip at "
                       f"{', '.join(k['sources'])} ({short(label(r))} {ctx}{sampled}; without it, not 0)")
    return out


def _grid(vs: Sequence[FormVerdict], fmt_labels: Sequence[str], width: int, best: dict | None = None,
          tolerance: float = 4.0) -> list[tuple[str, str, str]] | None:
    """Every form under its grade title, a column per format: (text, style, kind) lines;
    None where the columns do not fit `width`."""
    axes = len({r["axis"] for v in vs for rs in v.by_format.values() for r in rs if r.get("axis")}) > 1
    cells = {(v.name, f): _grid_cells(v.by_format[f], axes) for v in vs for f in fmt_labels if f in v.by_format}
    name_w = max(len(v.name) for v in vs) + 2
    col_w = [max([len(short(f))] + [len(c) for (n, f2), cs in cells.items() if f2 == f for c in cs])
             for f in fmt_labels]
    if name_w + sum(col_w) + len(col_w) - 1 > width:
        return None
    lines = [(" " * name_w + " ".join(short(f).ljust(w) for f, w in zip(fmt_labels, col_w)).rstrip(), "bold", "")]
    for g in GRADES:
        members = [v for v in vs if v.grade == g]
        if not members:
            continue
        lines += [(t, "bold " + STYLES[g] if g != "tiny" else "bold", "") for t in _wrap([TITLES[g]], width, 0)]
        members.sort(key=lambda v: -sum(v.grade_in(f) == g for f in v.by_format))  # widest first
        for v in members:
            depth = max(len(cells.get((v.name, f), [])) for f in fmt_labels)
            for i in range(depth):
                row = " ".join((cells.get((v.name, f), []) + [""] * depth)[i].ljust(w)
                               for f, w in zip(fmt_labels, col_w))
                lines.append((((" " + v.name) if i == 0 else "").ljust(name_w) + row.rstrip(), STYLES[g], "row"))
            for note in _notes(v, g, best, tolerance):
                lines += [(t, "dim", "") for t in _wrap([note], width, 3)]
    return lines


def _family_summary(rows: Sequence[dict], width: int = 80, tolerance: float = 4.0,
                    builtin_rows: Sequence[dict] = ()) -> Text:
    """One family's screen: what was swept, what to use, and every form under its grade."""
    fam = rows[0]["family"]
    fmt_labels = list(dict.fromkeys(label(r) for r in rows))
    text = Text()
    text.append(f"{fam}", style="bold")
    text.append(f" · {_swept(rows)}\n", style="dim")
    vs = verdicts(rows)
    text.append_text(_use(vs, fmt_labels, width))
    if builtin_rows:
        text.append_text(_against_builtin(vs, verdicts(builtin_rows), fmt_labels, width))
    best = _best_errors(vs)
    grid = _grid(vs, fmt_labels, width, best, tolerance)
    if grid is not None:
        text.append("\n")
        for line, style, _ in grid:
            text.append(line + "\n", style=style)
        return text
    for g in GRADES:  # too many formats for columns: a paragraph per form
        members = [v for v in vs if v.grade == g]
        if not members:
            continue
        text.append("\n")
        for line in _wrap([TITLES[g]], width, 0):
            text.append(line + "\n", style="bold " + STYLES[g] if g != "tiny" else "bold")
        for v in members:
            text.append(f"  {v.name}", style=STYLES[g])
            text.append(f" {v.quantity}\n", style="dim")
            axes = len({r["axis"] for rs in v.by_format.values() for r in rs if r.get("axis")}) > 1
            cells = [f"{short(f)} {' '.join(_grid_cells(v.by_format[f], axes))}" for f in fmt_labels
                     if f in v.by_format]
            for line in _wrap(cells, width, 4):
                text.append(line + "\n")
            for note in _notes(v, g, best, tolerance):
                for line in _wrap([note], width, 4):
                    text.append(line + "\n", style="dim")
    return text


def _swept(rows: Sequence[dict]) -> str:
    parts = []
    targets = sorted({r["target"] for r in rows if r.get("target") is not None})
    if targets:
        parts.append("y = " + ", ".join(f"{t:g}" for t in targets))
    ks = sorted({r["classes"] for r in rows if r.get("classes")})
    if ks:
        parts.append("K = " + ", ".join(map(str, ks)))
        sweeps = dict.fromkeys(r["sweep"] for r in rows if r.get("sweep"))
        given = next((r["points"] for r in rows if r.get("sweep") == "logits"), None)
        parts.append(", ".join(f"logits ({given} vectors given: the answer holds for them only)"
                               if s_ == "logits" else s_ for s_ in sweeps) + (" sweeps" if len(sweeps) > 1 else " sweep"))
    for how, pick in (("every value", lambda r: r["exhaustive"]), ("sampled", lambda r: not r["exhaustive"])):
        fmts = {}
        for r in rows:
            if r.get("axis") and pick(r):
                fmts.setdefault(short(label(r)), set()).add(r.get("classes"))
        for ks_here, names in _by_value(fmts).items():
            within = "" if ks_here == tuple(sorted({r.get("classes") for r in rows if r.get("axis")}, key=str)) \
                else " (K=" + ", ".join(map(str, ks_here)) + ")"
            parts.append(", ".join(names) + " " + how + within)
    return "; ".join(parts)


def _by_value(d: dict) -> dict:
    out: dict = {}
    for k, v in d.items():
        out.setdefault(tuple(sorted(v, key=str)), []).append(k)
    return out


LEGEND = ("Each cell: the form's worst class in that format and the value nearest 0 on each side where it "
          "first appears, over every target swept (NaN, ∞; 0: a value lost to 0, 0s: a 0 where the exact value is "
          "subnormal, at that value); milder failures may lie nearer 0. ~ before a value: only the nearest failing "
          "sample, earlier failures are possible; ~ p% and N ulp: the share of inexact points and the worst error; "
          "ok N ulp: the worst error; vec: share of vectors; m: on the margin sweep, c: on the offset sweep. Values "
          "are decimals that read back as the same value of the format (the shortest for float16 and float32, "
          "at most 6 significant digits for bfloat16 and float8); float64 ones are cut at 7 digits (…). --detail "
          "prints every table with exact values and targets; so does the JSON.")


def summary(result, width: int = 80) -> list[Text]:
    """The one-screen answer of each family in `result`."""
    fams = list(dict.fromkeys(r["family"] for r in result.rows))
    tolerance = float(result.meta.get("tolerance_ulp", 4.0))
    same = result.meta.get("same_function")
    builtin = [r for r in result.rows if same and (r.get("computes") or "").split(":")[0] == same.split(":")[0]]
    out = [_family_summary([r for r in result.rows if r["family"] == f], width, tolerance,
                           builtin if f == "check" else ()) for f in fams]
    if result.meta.get("loss_scale_advice") is not None:
        out.append(_scale_advice(result.meta["loss_scale_advice"], result.meta["loss_scale"], width))
    elif result.meta.get("loss_scale") is not None:  # a check: no advice, but say how its gradients were judged
        scaled = next((r for r in result.rows if r.get("loss_scale")), None)
        if scaled is not None:
            out.append(Text("\n".join(_wrap([f"Loss-scaled gradients: {scaled['judged']}."], width, 0, " ")),
                            style="dim"))
    exact = run_notes.exact(result.rows)
    if exact:
        out.append(Text("\n".join(_wrap([exact], width, 0, " ")), style="dim"))
    batch = run_notes.batch(result.rows)
    if batch:
        out.append(Text("\n".join(_wrap([batch], width, 0, " "))))
    out.append(Text("\n".join(_wrap([LEGEND], width, 0, " ")), style="dim"))
    return out


def text(result, width: int = 80) -> str:
    """The summary as plain text, `width` columns wide (the API's and notebooks' view)."""
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None, no_color=True)
    for part in summary(result, width):
        console.print(part, highlight=False)
    return console.file.getvalue()

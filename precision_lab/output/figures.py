"""PNG figures, drawn with matplotlib (the optional `plot` extra).

* ``fig5_4.png`` .. ``fig5_7.png``: the textbook's curves (see `textbook`).
* ``error_<family>_<dtype>.png``: the error in bits, log2(ULPs + 1) as Herbie reports
  it, of every row of one family and format along its axis, with the NaN, ∞ and 0
  bands and onsets the sweep found. A function of rows, so any family's rows can be drawn.
* ``onsets_<family>.png``: every NaN, ∞ and 0 onset of every form of a family in every format.

matplotlib is imported inside the drawing functions only, and drawn on its Agg
canvas without pyplot, so no global backend is touched and the rest of the
package works without it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..numerics import formats
from ..numerics.classify import DEFAULT_TOLERANCE
from .charts import (BANDS, CLASS_MARKER, COLOR, FORMAT_COLOR, NAME, ONSET_MARK_PT, _column_key, _column_label,
                     _form_key, _form_label, _symlog_axis, axis_span, by_family, error_bits, error_title, error_values,
                     evaluate, figure_rows, onset_marks, onsets_title)
from .textbook import TEXTBOOK_FIGURES, _matplotlib, _new_figure, _save

ERROR_PANEL = (6.2, 2.0)  # inches a panel of an error figure takes, tick labels on both axes included
ERROR_FRAME = (0.6, 1.6)  # inches of the row labels, title and legend around the panels


def error_figure_size(panel_rows: int, panel_columns: int) -> tuple[float, float]:
    """Width and height in inches of an error figure with a grid of that many panels: the
    canvas follows the panels present, so no part of it is left blank."""
    return (ERROR_PANEL[0] * panel_columns + ERROR_FRAME[0], ERROR_PANEL[1] * panel_rows + ERROR_FRAME[1])


def error_figure(rows: Sequence[dict], path, tolerance: float = DEFAULT_TOLERANCE,
                 evaluate: Callable = evaluate, points: int = 2001) -> str:
    """Error in bits against the swept axis for the rows of one format: a panel per form and target.

    Each panel scatters log2(ULPs + 1) of the computed value at `points` values of the
    format spaced evenly on a symmetric-log axis (coloured by class; NaN points have no
    ULP distance and show only as bands), shades the NaN, ∞ and 0 bands of the row, and
    marks its onsets. Works on rows of any family whose `evaluate(family, forms, dtype,
    xs, target)` gives ``x``, ``class`` and ``ulp`` as ``precision_lab.evaluate`` does.
    `write_figures` draws one per family and format, so that every panel is one of the
    family's forms and targets and the grid has no empty half.
    """
    return _save(draw_error(rows, tolerance, evaluate, points), path)


def draw_error(rows: Sequence[dict], tolerance: float = DEFAULT_TOLERANCE,
               evaluate: Callable = evaluate, points: int = 2001):
    """The matplotlib Figure of `error_figure`, not yet saved."""
    rows = list(rows)
    if not rows:
        raise InputError("`rows` is empty; give the sweep rows of one format.")
    dtypes = {r["dtype"] for r in rows}
    if len(dtypes) != 1:
        raise InputError(f"An error figure shows one format; the rows hold {', '.join(sorted(dtypes))}.")
    dtype = rows[0]["dtype"]
    fmt = formats.get(dtype)
    forms = list(dict.fromkeys(_form_key(r) for r in rows))
    columns = list(dict.fromkeys(_column_key(r) for r in rows))
    span, per_point = error_values(rows, evaluate, points)
    fig = _new_figure(figsize=error_figure_size(len(forms), len(columns)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(forms), len(columns), sharex=True, sharey=True, squeeze=False))
    cells = {(_form_key(r), _column_key(r)): r for r in rows}
    tol_bits = float(error_bits(tolerance))
    axis_names = " or ".join(dict.fromkeys(r["axis"] for r in rows))
    for i, fkey in enumerate(forms):
        for j, key in enumerate(columns):
            ax = axes[i, j]
            row = cells.get((fkey, key))
            if row is None:
                ax.set_axis_off()
                continue
            _error_panel(ax, row, per_point[(fkey, key)], span, fmt)
            ax.axhline(tol_bits, color="0.45", lw=0.8, ls=":")
            name = _form_label(fkey)
            summary = f"{name}: {row['summary']}" if row.get("summary") else name
            summary = summary if len(summary) <= 72 else summary[:71] + "…"
            ax.set_title(summary, loc="left", fontsize=8.5)
            ax.set_title(_column_label(key), loc="right", fontsize=8, color="0.35")
            if j == 0:
                ax.set_ylabel("error (bits)", fontsize=8)
            if i == len(forms) - 1:
                ax.set_xlabel(f"{axis_names} (symmetric log scale: linear on [−1, 1], logarithmic beyond)")
    ax0 = axes[0, 0]
    _symlog_axis(ax0, span)
    ax0.set_ylim(-0.5, fmt.bits + 0.5)
    ax0.set_yticks(sorted({0, fmt.bits // 4, fmt.bits // 2, fmt.bits}))
    for ax in axes.flat:
        # shared axes hide the inner panels' numbers; every panel keeps them, so each reads alone
        ax.tick_params(labelsize=7.5, labelbottom=True, labelleft=True)
        ax.grid(alpha=0.25, lw=0.5)
    fig.suptitle(error_title(rows), fontsize=11)
    fig.legend(handles=_error_legend(tolerance), loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return fig


def _error_panel(ax, row: dict, ev: dict, span: float, fmt: formats.Format) -> None:
    form = row["form"]
    x, cls, bits = ev["x"], ev["class"][form], error_bits(ev["ulp"][form])
    for c in BANDS:
        for lo, hi in row["intervals"][c]["listed"]:
            if hi < -span or lo > span:
                continue
            if lo == hi:
                ax.axvline(lo, color=COLOR[c], lw=1.2, alpha=0.5)
            else:
                ax.axvspan(max(lo, -span), min(hi, span), color=COLOR[c], alpha=0.18, lw=0)
    for c in ("ok", "inaccurate", "zero", "inf"):
        m = cls == c
        if m.any():
            ax.scatter(x[m], np.minimum(bits[m], fmt.bits), s=3 if c == "ok" else 5, color=COLOR[c],
                       linewidths=0, rasterized=True)
    marks = []
    for c in BANDS:
        for side in ("neg", "pos"):
            v = row["onset"][c][side]
            if v is not None and abs(v) <= span:
                marks.append((v, c))
    for k, (v, c) in enumerate(sorted(marks)):
        ax.axvline(v, color=COLOR[c], lw=1.1, ls="--")
        # the label goes on the side of 0, where the form still works and the panel has room
        ax.annotate(f"{NAME[c].split()[0]} {v:.6g}", xy=(v, 1), xycoords=("data", "axes fraction"),
                    xytext=(2 if v < 0 else -2, -2 - 9 * (k % 2)), textcoords="offset points",
                    ha="left" if v < 0 else "right", va="top", fontsize=6.5, color=COLOR[c], fontweight="bold")


def _error_legend(tolerance: float) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], ls="", marker="o", ms=4, color=COLOR[c], label=f"point: {NAME[c]}")
               for c in ("ok", "inaccurate", "zero", "inf")]
    handles += [Patch(color=COLOR[c], alpha=0.3, label=f"band: {NAME[c]}") for c in BANDS]
    handles.append(Line2D([], [], color="0.3", ls="--", label="onset (nearest 0 each side)"))
    handles.append(Line2D([], [], color="0.45", ls=":", label=f"{tolerance:g} ULP tolerance"))
    return handles


def onsets_figure(rows: Sequence[dict], path) -> str:
    """The NaN, ∞ and 0 onsets of every form in every format: a panel per target, a line per form.

    `write_figures` draws one per family (`onsets_<family>.png`)."""
    return _save(draw_onsets(rows), path)


def draw_onsets(rows: Sequence[dict]):
    """The matplotlib Figure of `onsets_figure`, not yet saved."""
    rows = list(rows)
    if not rows:
        raise InputError("`rows` is empty; give the rows of a sweep.")
    forms = list(dict.fromkeys(_form_key(r) for r in rows))
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    columns = list(dict.fromkeys(_column_key(r) for r in rows))
    span = axis_span(rows)
    marks = onset_marks(rows, span)
    # a form's line holds a lane per format, and a lane as many markers stacked as meet at one spot
    lane_pt = max(16, ONSET_MARK_PT * max([m["slots"] for m in marks] + [1]))
    form_in = len(dtypes) * lane_pt / 0.8 / 72
    fig = _new_figure(figsize=(7.6 * len(columns) + 0.4, form_in * len(forms) + 2.0), layout="constrained")
    axes = fig.subplots(1, len(columns), sharex=True, sharey=True, squeeze=False)[0]
    step = 0.8 / max(1, len(dtypes))
    offset = {d: (k - (len(dtypes) - 1) / 2) * step for k, d in enumerate(dtypes)}
    color = {d: FORMAT_COLOR[k % len(FORMAT_COLOR)] for k, d in enumerate(dtypes)}
    index = {f: i for i, f in enumerate(forms)}
    axis_names = " or ".join(dict.fromkeys(r["axis"] for r in rows))
    for ax, key in zip(axes, columns):
        for i in range(len(forms)):
            if i % 2:
                ax.axhspan(i - 0.5, i + 0.5, color="0.94", lw=0, zorder=0)
        ax.axvline(0, color="0.6", lw=0.8)
        for r in rows:
            if _column_key(r) == key:
                ax.axhline(index[_form_key(r)] + offset[r["dtype"]], color=color[r["dtype"]], lw=0.4, alpha=0.35,
                           zorder=1)
        for m in marks:
            if m["column"] != key:
                continue
            sub = step / m["slots"]
            y = index[m["form"]] + offset[m["dtype"]] + (m["slot"] - (m["slots"] - 1) / 2) * sub
            ax.scatter([m["x"]], [y], **_onset_marker(m["cls"], color[m["dtype"]]), zorder=3, clip_on=False)
            if m["clipped"]:  # at the axis end: say where it really is
                inward = -1 if m["x"] > 0 else 1
                ax.annotate(f"{m['value']:.6g}".replace("-", "−"), xy=(m["x"], y), xytext=(7 * inward, 0),
                            textcoords="offset points", ha="right" if inward < 0 else "left", va="center",
                            fontsize=6.5, color=color[m["dtype"]])
        ax.set_title(_column_label(key), fontsize=10)
        ax.set_xlabel(f"{axis_names} at the onset (symmetric log: linear on [−1, 1]; "
                      f"past ±{span:g}: at the end, labelled)", fontsize=8.5)
        ax.grid(axis="x", alpha=0.3)
    ax0 = axes[0]
    _symlog_axis(ax0, span)
    ax0.set_ylim(len(forms) - 0.5, -0.5)
    # forms of one sweep are named by their form alone; the sweep is named once, in the title
    shared = forms[0][:3] if len({f[:3] for f in forms}) == 1 else None
    ax0.set_yticks(range(len(forms)), [f[3] if shared else _form_label(f) for f in forms])
    for ax in axes:
        ax.tick_params(axis="y", labelsize=8.5, labelleft=True)  # each panel names its forms
        ax.tick_params(axis="x", labelsize=8, labelbottom=True)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="s", ms=7, color=color[d], label=d) for d in dtypes]
    handles += [Line2D([], [], ls="", marker=CLASS_MARKER[c], ms=8 if c == "zero" else 7, markeredgewidth=1.4,
                       markerfacecolor="none" if c == "zero" else "0.5", markeredgecolor="black",
                       label=f"{NAME[c]} onset") for c in BANDS]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5, frameon=False)
    sweep = f", {shared[1]} sweep, K = {shared[2]}" if shared and shared[1] is not None else ""
    fig.suptitle(f"{onsets_title(rows)}{sweep}\n(no marker: never fails that way; markers that meet are stacked "
                 f"NaN, ∞, 0 from the top)", fontsize=11)
    return fig


def _onset_marker(cls: str, color: str) -> dict:
    if cls == "zero":
        return {"marker": "o", "s": 70, "facecolors": "none", "edgecolors": color, "linewidths": 1.6}
    return {"marker": CLASS_MARKER[cls], "s": 40, "color": color, "edgecolors": "black", "linewidths": 0.4}


# ------------------------------------------------------------------ all of them


def _prepare_dir(out_dir) -> str:
    """Check that `out_dir` can be made or written (creating its parent if missing); one sentence if not.

    `out_dir` itself is left as it is: `write_figures` fills it only once every figure is drawn."""
    path = os.fspath(out_dir)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"Cannot write figures to `{path}`: it is a file, not a folder.")
    try:
        os.makedirs(parent, exist_ok=True)
    except FileExistsError:
        raise InputError(f"Cannot write figures to `{path}`: `{parent}` is a file, not a folder.") from None
    except OSError as e:
        raise InputError(f"Cannot write figures to `{path}`: {e.strerror or e}.") from None
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK) \
            or (os.path.isdir(path) and not os.access(path, os.W_OK | os.X_OK)):
        raise InputError(f"Cannot write figures to `{path}`: it is not a writable folder.")
    return path


def _move_in(tmp: str, out: str, names: Sequence[str]) -> None:
    """Put the finished figures in `out`: the whole folder at once if `out` is new, else file by file."""
    if not os.path.exists(out):
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # a folder like one made by mkdir, not mkdtemp's private one
        os.replace(tmp, out)
        return
    for name in names:
        os.replace(os.path.join(tmp, name), os.path.join(out, name))


def check_plotting(out_dir) -> None:
    """One sentence, before any sweep, if matplotlib (the plot extra) is missing or the
    figures cannot be written to `out_dir`."""
    _matplotlib()
    _prepare_dir(out_dir)


def write_figures(out_dir, result, dtypes: Sequence[str] | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> list[str]:
    """Write every PNG figure into `out_dir` (created if missing) and return their paths.

    The figures are drawn into a temporary folder beside `out_dir` and moved in once all
    are drawn, so an interrupted or failed run leaves `out_dir` as it was.

    Args:
      out_dir: the folder.
      result: the sweep to draw (see ``api.figure_sweep``).
      dtypes: the formats of it to draw (default: all).
      progress: called as ``progress(label, done, total)`` once before each figure is drawn.
    Returns:
      the paths written: fig5_4.png .. fig5_7.png, then per family (in the rows' order)
      error_<family>_<dtype>.png per format and onsets_<family>.png.
    """
    _matplotlib()  # before any sweep: a missing extra is reported at once
    out = _prepare_dir(out_dir)
    rows = figure_rows(result, dtypes)
    if not rows:
        raise InputError(f"The sweep has no rows for the formats {', '.join(dtypes or ())}.")
    tolerance = result.meta.get("tolerance_ulp", DEFAULT_TOLERANCE)
    jobs: list[tuple[str, Callable]] = list(TEXTBOOK_FIGURES.items())
    for family, mine in by_family(rows).items():
        for d in dict.fromkeys(r["dtype"] for r in mine):
            these = [r for r in mine if r["dtype"] == d]
            jobs.append((f"error_{family}_{d}.png", lambda p, these=these: error_figure(these, p, tolerance)))
        jobs.append((f"onsets_{family}.png", lambda p, mine=mine: onsets_figure(mine, p)))
    parent, base = os.path.split(os.path.abspath(out))
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".partial", dir=parent)
    try:
        for k, (name, draw) in enumerate(jobs):
            if progress:
                progress(f"drawing {name}", k, len(jobs))
            draw(os.path.join(tmp, name))
        _move_in(tmp, out, [name for name, _ in jobs])
    finally:  # interrupted or failed: nothing half-drawn is left behind
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress("figures drawn", len(jobs), len(jobs))
    return [os.path.join(out, name) for name, _ in jobs]

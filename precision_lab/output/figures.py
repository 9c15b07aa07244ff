"""PNG figures, drawn with matplotlib (the optional `plot` extra).

* ``fig5_4.png`` .. ``fig5_7.png``: the textbook's curves (∂L/∂ŷ, σ'(z), their product
  the error term δ, and the loss values) against ŷ, every curve computed by the
  project's own float64 kernels at z = logit(ŷ), none re-typed here.
* ``error_<family>_<dtype>.png``: the error in bits, log2(ULPs + 1) as Herbie reports
  it, of every row of one family and format along its axis, with the NaN, ∞ and 0
  bands and onsets the sweep found. A function of rows, so any family's rows can be drawn.
* ``onsets_<family>.png``: every NaN, ∞ and 0 onset of every form of a family in every format.

matplotlib is imported inside the drawing functions only, and drawn on its Agg
canvas without pyplot, so no global backend is touched and the rest of the
package works without it.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from .. import api, interrupts
from ..numerics import formats
from ..numerics.classify import DEFAULT_TOLERANCE, INFO
from ..errors import InputError

PLOT_EXTRA = "pip install 'precision_lab[plot]'"
COLOR = {c: i.color for c, i in INFO.items()}  # one table of classes: classify.INFO
NAME = {c: i.name for c, i in INFO.items()}
BANDS = ("nan", "inf", "zero")
FORMAT_COLOR = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
CLASS_MARKER = {"nan": "X", "inf": "^", "zero": "o"}
CURVE_COLOR = {"dloss_dyhat": "#1f77b4", "dsigmoid_dz": "#ff7f0e", "error_term": "#d62728", "loss": "#2ca02c"}

# The kernels behind each textbook curve: (∂L/∂ŷ, δ = ∂L/∂ŷ · σ'(z), L) per loss.
TEXTBOOK_FORMS = {
    "mse": ("dmse_dyhat", "mse_chain", "mse"),
    "bce": ("dloss_dyhat", "bce_naive_chain", "bce_naive"),
}
TEXTBOOK_LABELS = {
    "mse": ("∂L/∂ŷ = ŷ − y   (dmse_dyhat)", "δ = ∂L/∂ŷ · σ'(z)   (mse_chain)", "MSE ½(ŷ − y)²   (mse)"),
    "bce": ("∂L/∂ŷ = −y/ŷ + (1−y)/(1−ŷ)   (dloss_dyhat)", "δ = ∂L/∂ŷ · σ'(z) = ŷ − y   (bce_naive_chain)",
            "cross-entropy −y·ln ŷ − (1−y)·ln(1−ŷ)   (bce_naive)"),
}
SIGMA_LABEL = "σ'(z) = ŷ(1 − ŷ)   (dsigmoid_dz)"
SOURCE_NOTE = "Every curve: precision_lab's float64 kernel (jax.nn.sigmoid inside) evaluated at z = ln ŷ − ln(1 − ŷ)."


def _matplotlib():
    """The matplotlib pieces used here: (Figure, FigureCanvasAgg), or one sentence naming the extra."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(f"Drawing PNG figures needs matplotlib, which is not installed: {PLOT_EXTRA}.") from None
    return Figure, FigureCanvasAgg


def _new_figure(**kwargs):
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _finish(fig, path) -> str:
    """Caption the textbook figure, leave room for it, and save."""
    _caption(fig)
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    return _save(fig, path)


def _save(fig, path) -> str:
    path = os.fspath(path)
    interrupts.own(path)  # an interrupted command removes the figures it drew
    fig.savefig(path, dpi=110)
    return path


# ------------------------------------------------------------------ textbook curves


def textbook_curves(target: float, loss: str, points: int = 999) -> dict[str, np.ndarray]:
    """The textbook's curves for one loss and target, as the project's float64 kernels compute them.

    ŷ runs over the open grid k / (points + 1), k = 1 .. points, reached through its
    logit z = ln ŷ − ln(1 − ŷ); every curve is a sigmoid-family kernel evaluated at z.

    Args:
      target: the label y in [0, 1].
      loss: ``"mse"`` (½(ŷ − y)²) or ``"bce"`` (binary cross-entropy).
      points: number of grid points.
    Returns:
      numpy float64 arrays: ``yhat`` (σ(z) as the kernels compute it: `dmse_dyhat`
      at target 0), ``dloss_dyhat`` (∂L/∂ŷ: `dmse_dyhat` or `dloss_dyhat`),
      ``dsigmoid_dz`` (σ'(z)), ``error_term`` (δ = ∂L/∂ŷ · σ'(z), the chain-rule
      gradient `mse_chain` or `bce_naive_chain`) and ``loss`` (`mse` or `bce_naive`).
    """
    if loss not in TEXTBOOK_FORMS:
        raise InputError(f"Unknown loss `{loss}`; choose `mse` or `bce`.")
    target = api.check_targets([target])[0]
    if int(points) < 2:
        raise InputError(f"`points` must be at least 2, got {points}.")
    grid = np.arange(1, int(points) + 1) / (int(points) + 1)
    z = np.log(grid) - np.log1p(-grid)
    factor, grad, value = TEXTBOOK_FORMS[loss]
    (yhat,) = api.kernel_values("sigmoid", ["dmse_dyhat"], "float64", z, 0.0)  # ŷ − 0 = ŷ exactly
    dl, ds, d, L = api.kernel_values("sigmoid", [factor, "dsigmoid_dz", grad, value], "float64", z, target)
    return {"yhat": yhat, "dloss_dyhat": dl, "dsigmoid_dz": ds, "error_term": d, "loss": L}


def _draw_factors(ax, target: float, loss: str, ylim: tuple[float, float], legend_loc: str) -> dict:
    c = textbook_curves(target, loss)
    dl_label, d_label, _ = TEXTBOOK_LABELS[loss]
    ax.plot(c["yhat"], c["dloss_dyhat"], color=CURVE_COLOR["dloss_dyhat"], lw=1.6, label=dl_label)
    ax.plot(c["yhat"], c["dsigmoid_dz"], color=CURVE_COLOR["dsigmoid_dz"], lw=1.6, ls="--", label=SIGMA_LABEL)
    ax.plot(c["yhat"], c["error_term"], color=CURVE_COLOR["error_term"], lw=2.6, label=d_label)
    ax.axhline(0, color="0.5", lw=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(*ylim)
    ax.set_xlabel("ŷ = σ(z), the output of the unit")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize=8.5, framealpha=0.9)
    return c


def _annotate_end(ax, c: dict, text: str, at_right: bool, xytext: tuple[float, float]) -> None:
    """Point at the error term's value at the saturated end of the grid."""
    i = -1 if at_right else 0
    x, y = float(c["yhat"][i]), float(c["error_term"][i])
    ax.annotate(f"{text}\n(δ = {y:.3g} at ŷ = {x:.3f})", xy=(x, y), xytext=xytext, textcoords="axes fraction",
                fontsize=8.5, ha="center", va="center", arrowprops={"arrowstyle": "->", "color": "0.3"},
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})


def _caption(fig, y: float = 0.01) -> None:
    fig.text(0.5, y, SOURCE_NOTE, ha="center", va="bottom", fontsize=7.5, color="0.35")


def figure_5_4(path) -> str:
    """Target 0, MSE: ∂L/∂ŷ, σ'(z) and the error term against ŷ; δ falls to 0 as the unit saturates."""
    fig = _new_figure(figsize=(8, 5.2), layout="constrained")
    ax = fig.add_subplot()
    c = _draw_factors(ax, 0.0, "mse", (-0.05, 1.05), "upper left")
    _annotate_end(ax, c, "wrong and saturated (ŷ → 1, y = 0):\nthe error term falls to 0", True, (0.4, 0.72))
    ax.set_title("Figure 5-4 · MSE loss, target y = 0: the error term vanishes as the unit saturates")
    return _finish(fig, path)


def figure_5_5(path) -> str:
    """Target 0, cross-entropy: the same three curves, y-range widened; δ tends to 1."""
    fig = _new_figure(figsize=(8, 5.2), layout="constrained")
    ax = fig.add_subplot()
    c = _draw_factors(ax, 0.0, "bce", (-0.25, 5.0), "upper left")
    _annotate_end(ax, c, "wrong and saturated (ŷ → 1, y = 0):\nthe error term tends to 1", True, (0.72, 0.33))
    ax.set_title("Figure 5-5 · cross-entropy loss, target y = 0: the error term tends to 1\n"
                 "(∂L/∂ŷ grows without bound; y-range cut at 5)")
    return _finish(fig, path)


def figure_5_6(path) -> str:
    """MSE and cross-entropy loss values against ŷ, target 0."""
    fig = _new_figure(figsize=(8, 5.2), layout="constrained")
    ax = fig.add_subplot()
    for loss, color in (("mse", CURVE_COLOR["dloss_dyhat"]), ("bce", CURVE_COLOR["error_term"])):
        c = textbook_curves(0.0, loss)
        ax.plot(c["yhat"], c["loss"], color=color, lw=2, label=TEXTBOOK_LABELS[loss][2])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 5)
    ax.set_xlabel("ŷ = σ(z), the output of the unit")
    ax.set_ylabel("loss L")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title("Figure 5-6 · loss values, target y = 0: MSE stays below ½, cross-entropy grows without bound\n"
                 "(y-range cut at 5)")
    return _finish(fig, path)


def figure_5_7(path) -> str:
    """Target 1: Figures 5-4 (top, MSE) and 5-5 (bottom, cross-entropy) mirrored."""
    fig = _new_figure(figsize=(8, 9), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    c = _draw_factors(top, 1.0, "mse", (-1.05, 0.3), "lower right")
    _annotate_end(top, c, "wrong and saturated (ŷ → 0, y = 1):\nthe error term rises to 0", False, (0.35, 0.55))
    top.set_title("MSE loss: the error term vanishes as the unit saturates")
    c = _draw_factors(bottom, 1.0, "bce", (-5.0, 0.5), "lower right")
    _annotate_end(bottom, c, "wrong and saturated (ŷ → 0, y = 1):\nthe error term tends to −1", False, (0.72, 0.45))
    bottom.set_title("cross-entropy loss: the error term tends to −1 (y-range cut at −5)")
    fig.suptitle("Figure 5-7 · target y = 1: everything mirrored")
    _caption(fig)
    fig.get_layout_engine().set(rect=(0, 0.025, 1, 0.975))
    return _save(fig, path)


TEXTBOOK_FIGURES: dict[str, Callable] = {
    "fig5_4.png": figure_5_4,
    "fig5_5.png": figure_5_5,
    "fig5_6.png": figure_5_6,
    "fig5_7.png": figure_5_7,
}


# ------------------------------------------------------------------ error along the axis


def _symlog(v):
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.where(np.abs(v) <= 1, np.abs(v), 1 + np.log10(np.maximum(np.abs(v), 1)))


def _symexp(t):
    t = np.asarray(t, np.float64)
    return np.sign(t) * np.where(np.abs(t) <= 1, np.abs(t), 10.0 ** (np.abs(t) - 1))


def _symlog_axis(ax, span: float) -> None:
    """A symmetric-log x axis on [−span, span], linear on [−1, 1], ticks written as plain numbers."""
    from matplotlib.ticker import FuncFormatter, SymmetricalLogLocator

    ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
    ax.set_xlim(-span, span)
    # at most 9 numbers, so that they stay apart however many decades the axis spans
    locator = SymmetricalLogLocator(base=10, linthresh=1.0, subs=[1.0])
    locator.set_params(numticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}".replace("e+", "e").replace("-", "−")))


def _nice_ceil(v: float) -> float:
    """The smallest of 1, 2, 5 × 10^k at or above v."""
    k = math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if m * 10.0**k >= v:
            return m * 10.0**k
    return 10.0 ** (k + 1)


def _edges(row: dict) -> list[float]:
    """Finite onsets and band ends of a row, those at the format's ends left out."""
    fmax = formats.get(row["dtype"]).max
    vals = [v for o in row["onset"].values() for v in (o["neg"], o["pos"]) if v is not None]
    vals += [v for c in BANDS for band in row["intervals"][c]["listed"] for v in band]
    return [abs(v) for v in vals if abs(v) < fmax]


def axis_span(rows: Sequence[dict], margin: float = 1.5, least: float = 10.0) -> float:
    """Half-width of the axis that shows every onset and band end of `rows`, with a margin."""
    edges = [e for r in rows for e in _edges(r)]
    return _nice_ceil(max(least, margin * max(edges, default=least)))


def axis_points(dtype: str, span: float, n: int = 2001, extra: Sequence[float] = ()) -> np.ndarray:
    """Values of the format on [−span, span], evenly spaced on a symmetric-log scale
    (linear on [−1, 1]), plus each of `extra` and its two lattice neighbours."""
    fmt = formats.get(dtype)
    t = np.linspace(-_symlog(span), _symlog(span), n)
    x = fmt.cast(_symexp(t))
    e = fmt.cast(np.asarray(list(extra), np.float64))
    if e.size:
        x = np.concatenate((x, e, formats.next_value(e, fmt), formats.prev_value(e, fmt)))
    x = x.astype(np.float64)
    x = x[np.isfinite(x) & (np.abs(x) <= span)]
    return np.unique(x)


def _onset_values(rows: Sequence[dict]) -> list[float]:
    return [v for r in rows for c in BANDS for v in (r["onset"][c]["neg"], r["onset"][c]["pos"]) if v is not None]


def error_bits(ulp: np.ndarray) -> np.ndarray:
    """Herbie's bits of error: log2(ULPs + 1)."""
    return np.log2(np.asarray(ulp, np.float64) + 1.0)


# Rows are keyed by what they hold, not by family names, so that any family's rows draw alike:
# a line of panels per (family, sweep, K, form), a column per target (y, or the true class).


def _form_key(row: dict):
    return (row["family"], row.get("sweep"), row.get("classes"), row["form"])


def _form_label(key) -> str:
    family, sweep, classes, form = key
    return " ".join([family] * (sweep is not None) + [f"{sweep} K={classes}"] * (sweep is not None) + [form])


def _column_key(row: dict):
    return (row["target"], row.get("target_class"))


def _column_label(key) -> str:
    target, tclass = key
    return f"target class {tclass}" if tclass is not None else f"target y = {target:g}"


def _evaluate_rows(evaluate: Callable, group: Sequence[dict], xs: np.ndarray) -> dict:
    """Per-point values of a group of rows that share family, sweep, K, format and target."""
    r = group[0]
    extra = {k: r[k] for k in ("sweep", "classes") if r.get(k) is not None}
    target = r["target_class"] if r.get("target_class") is not None else r["target"]
    # classify's host path overflows to ∞ in an intermediate for huge float64 scales (harmless: the
    # threshold is then ∞, as under XLA, which does not warn); keep that warning out of the figures' output
    with np.errstate(over="ignore"):
        return evaluate(r["family"], [g["form"] for g in group], r["dtype"], xs, target, **extra)


def error_title(rows: Sequence[dict]) -> str:
    """The title of the error chart of `rows` (one format), on paper and in the terminal."""
    fmt = formats.get(rows[0]["dtype"])
    families = ", ".join(dict.fromkeys(r["family"] for r in rows))
    return (f"{fmt.name}: error of every {families} form, in bits = log2(ULPs + 1) as Herbie reports it "
            f"(0 = exact, {fmt.bits} = all bits wrong)")


def onsets_title(rows: Sequence[dict]) -> str:
    """The title of the onsets chart of `rows`, on paper and in the terminal."""
    families = ", ".join(dict.fromkeys(r["family"] for r in rows))
    return (f"Where each {families} form first fails on either side of 0: the NaN, ∞ and 0 onsets "
            f"in {', '.join(dict.fromkeys(r['dtype'] for r in rows))}")


def error_values(rows: Sequence[dict], evaluate: Callable = api.evaluate, points: int = 2001) -> tuple[float, dict]:
    """The axis half-width of `rows` (one format) and each row's per-point values along it.

    Returns:
      ``(span, values)``: `values` maps (form key, column key) to what `evaluate` gave for
      the row at `points` values of the format on [−span, span] (see `axis_points`).
    """
    span = axis_span(rows)
    per_point = {}
    for gkey in dict.fromkeys(_form_key(r)[:3] + _column_key(r) for r in rows):
        group = [r for r in rows if _form_key(r)[:3] + _column_key(r) == gkey]
        xs = axis_points(rows[0]["dtype"], span, points, _onset_values(group))
        values = _evaluate_rows(evaluate, group, xs)
        per_point.update({(_form_key(r), _column_key(r)): values for r in group})
    return span, per_point


ERROR_PANEL = (6.2, 2.0)  # inches a panel of an error figure takes, tick labels on both axes included
ERROR_FRAME = (0.6, 1.6)  # inches of the row labels, title and legend around the panels


def error_figure_size(panel_rows: int, panel_columns: int) -> tuple[float, float]:
    """Width and height in inches of an error figure with a grid of that many panels: the
    canvas follows the panels present, so no part of it is left blank."""
    return (ERROR_PANEL[0] * panel_columns + ERROR_FRAME[0], ERROR_PANEL[1] * panel_rows + ERROR_FRAME[1])


def error_figure(rows: Sequence[dict], path, tolerance: float = DEFAULT_TOLERANCE,
                 evaluate: Callable = api.evaluate, points: int = 2001) -> str:
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
               evaluate: Callable = api.evaluate, points: int = 2001):
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


# ------------------------------------------------------------------ onsets of every form in every format


ONSET_NEAR = 0.03  # onsets closer than this share of the axis width would cover each other's markers
ONSET_MARK_PT = 11  # points of height a marker needs to stand clear of the one above it


def onset_marks(rows: Sequence[dict], span: float) -> list[dict]:
    """Where the onsets chart puts each onset's marker.

    A marker sits on its form's line, in its format's lane, at the onset's value; an
    onset beyond ±`span` sits at the axis end (``clipped``, and labelled with its value).
    Markers of one lane that would cover each other (closer than ``ONSET_NEAR`` of the
    axis width, on its symmetric-log scale) are spread across the lane, NaN above ∞
    above 0, so each stays visible: ``slot`` is its place among the ``slots`` of that spot.

    Returns:
      a dict per marker: ``column`` (target key), ``form`` (form key), ``dtype``, ``cls``,
      ``value`` (the onset), ``x`` (where it is drawn), ``clipped``, ``slot``, ``slots``, and
      ``at``: the `x` of the first marker of its spot.
    """
    marks = []
    for r in rows:
        for c in BANDS:
            for side in ("neg", "pos"):
                v = r["onset"][c][side]
                if v is not None:
                    marks.append({"column": _column_key(r), "form": _form_key(r), "dtype": r["dtype"], "cls": c,
                                  "value": float(v), "x": float(np.clip(v, -span, span)), "clipped": abs(v) > span})
    near = ONSET_NEAR * 2 * float(_symlog(span))
    lanes: dict[tuple, list[dict]] = {}
    for m in marks:
        lanes.setdefault((m["column"], m["form"], m["dtype"]), []).append(m)
    for lane in lanes.values():
        lane.sort(key=lambda m: float(_symlog(m["x"])))
        group: list[dict] = []
        for m in lane + [None]:  # groups of markers each within `near` of the one before
            if m is not None and group and float(_symlog(m["x"]) - _symlog(group[-1]["x"])) < near:
                group.append(m)
                continue
            for k, g in enumerate(sorted(group, key=lambda g: BANDS.index(g["cls"]))):
                g["slot"], g["slots"], g["at"] = k, len(group), group[0]["x"]
            group = [m]
    return marks


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


def prepare_dir(out_dir) -> str:
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


def figure_rows(result: api.SweepResult, dtypes: Sequence[str] | None = None) -> list[dict]:
    """The rows of `result` the error and onset figures draw: those along one swept axis (the
    sigmoid family's, any checked function's and the softmax family's margin sweep), of `dtypes`."""
    return [r for r in result.rows if (dtypes is None or r["dtype"] in dtypes) and r.get("sweep") in (None, "margin")]


def by_family(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """`rows` grouped by family, in their order."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["family"], []).append(r)
    return groups


def figure_sweep(dtypes: Sequence[str] | None = None, progress: Callable | None = None) -> api.SweepResult:
    """The sweep the error and onset figures draw when given none: the sigmoid family (targets
    0 and 1) and the softmax family's margin sweep (K = 10, both target classes) over `dtypes`
    (default: ``formats.DEFAULT_FORMATS``)."""
    return api.sweep("all", dtypes=tuple(dtypes or formats.DEFAULT_FORMATS), sweeps=["margin"], classes=[10],
                     progress=progress)


def write_figures(out_dir, result: api.SweepResult | None = None, dtypes: Sequence[str] | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> list[str]:
    """Write every PNG figure into `out_dir` (created if missing) and return their paths.

    The figures are drawn into a temporary folder beside `out_dir` and moved in once all
    are drawn, so an interrupted or failed run leaves `out_dir` as it was.

    Args:
      out_dir: the folder.
      result: the sweep to draw; if None, the sigmoid family (targets 0 and 1) and the
        softmax family's margin sweep (K = 10, both target classes) are swept over
        `dtypes` (default: ``formats.DEFAULT_FORMATS``).
      dtypes: formats to sweep, or with a `result`, the formats of it to draw (default: all).
      progress: called as ``progress(label, done, total)``, first by the sweep, then once
        before each figure is drawn.
    Returns:
      the paths written: fig5_4.png .. fig5_7.png, then per family (in the rows' order)
      error_<family>_<dtype>.png per format and onsets_<family>.png.
    """
    _matplotlib()  # before any sweep: a missing extra is reported at once
    out = prepare_dir(out_dir)
    if result is None:
        result = figure_sweep(dtypes, progress)
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

"""PNG figures, drawn with matplotlib (the optional `plot` extra).

* ``fig5_4.png`` .. ``fig5_7.png``: the textbook's curves (∂L/∂ŷ, σ'(z), their product
  the error term δ, and the loss values) against ŷ, every curve computed by the
  project's own float64 kernels at z = logit(ŷ), none re-typed here.
* ``error_<dtype>.png``: the error in bits, log2(ULPs + 1) as Herbie reports it, of
  every row of one format along its axis, with the NaN, ∞ and 0 bands and onsets
  the sweep found. A function of rows, so any family's rows can be drawn.
* ``onsets.png``: every NaN, ∞ and 0 onset of every form in every format.

matplotlib is imported inside the drawing functions only, and drawn on its Agg
canvas without pyplot, so no global backend is touched and the rest of the
package works without it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from . import api, formats, interrupts
from .classify import DEFAULT_TOLERANCE, INFO
from .errors import InputError

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
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
    ax.set_xlim(-span, span)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}".replace("-", "−")))


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


def error_figure(rows: Sequence[dict], path, tolerance: float = DEFAULT_TOLERANCE,
                 evaluate: Callable = api.evaluate, points: int = 2001) -> str:
    """Error in bits against the swept axis for the rows of one format: a panel per form and target.

    Each panel scatters log2(ULPs + 1) of the computed value at `points` values of the
    format spaced evenly on a symmetric-log axis (coloured by class; NaN points have no
    ULP distance and show only as bands), shades the NaN, ∞ and 0 bands of the row, and
    marks its onsets. Works on rows of any family whose `evaluate(family, forms, dtype,
    xs, target)` gives ``x``, ``class`` and ``ulp`` as ``precision_lab.evaluate`` does.
    """
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
    span = axis_span(rows)
    per_point = {}
    for gkey in dict.fromkeys(_form_key(r)[:3] + _column_key(r) for r in rows):
        group = [r for r in rows if _form_key(r)[:3] + _column_key(r) == gkey]
        xs = axis_points(dtype, span, points, _onset_values(group))
        values = _evaluate_rows(evaluate, group, xs)
        per_point.update({(_form_key(r), _column_key(r)): values for r in group})

    fig = _new_figure(figsize=(6.2 * len(columns) + 0.6, 1.55 * len(forms) + 1.6), layout="constrained")
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
        ax.tick_params(labelsize=7.5)
        ax.grid(alpha=0.25, lw=0.5)
    families = ", ".join(dict.fromkeys(f[0] for f in forms))
    fig.suptitle(f"{dtype}: error of every {families} form, in bits = log2(ULPs + 1) as Herbie reports it "
                 f"(0 = exact, {fmt.bits} = all bits wrong)", fontsize=11)
    fig.legend(handles=_error_legend(tolerance), loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return _save(fig, path)


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


def onsets_figure(rows: Sequence[dict], path) -> str:
    """The NaN, ∞ and 0 onsets of every form in every format: a panel per target, a line per form."""
    rows = list(rows)
    if not rows:
        raise InputError("`rows` is empty; give the rows of a sweep.")
    forms = list(dict.fromkeys(_form_key(r) for r in rows))
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    columns = list(dict.fromkeys(_column_key(r) for r in rows))
    span = axis_span(rows)
    fig = _new_figure(figsize=(6.2 * len(columns) + 1.8, 0.42 * len(forms) * max(1, len(dtypes) / 3) + 2.2),
                      layout="constrained")
    axes = fig.subplots(1, len(columns), sharex=True, sharey=True, squeeze=False)[0]
    step = 0.8 / max(1, len(dtypes))
    offset = {d: (k - (len(dtypes) - 1) / 2) * step for k, d in enumerate(dtypes)}
    color = {d: FORMAT_COLOR[k % len(FORMAT_COLOR)] for k, d in enumerate(dtypes)}
    index = {f: i for i, f in enumerate(forms)}
    for ax, key in zip(axes, columns):
        for i in range(len(forms)):
            if i % 2:
                ax.axhspan(i - 0.5, i + 0.5, color="0.94", lw=0, zorder=0)
        ax.axvline(0, color="0.6", lw=0.8)
        for r in rows:
            if _column_key(r) != key:
                continue
            y = index[_form_key(r)] + offset[r["dtype"]]
            ax.axhline(y, color=color[r["dtype"]], lw=0.4, alpha=0.35, zorder=1)
            for k, c in enumerate(reversed(BANDS)):  # 0 (a wide ring) under ∞ under NaN, so coinciding onsets all show
                for side in ("neg", "pos"):
                    v = r["onset"][c][side]
                    if v is not None:
                        ax.scatter([np.clip(v, -span, span)], [y], **_onset_marker(c, color[r["dtype"]]), zorder=3 + k)
        ax.set_title(_column_label(key), fontsize=10)
        ax.set_xlabel(f"{' or '.join(dict.fromkeys(r['axis'] for r in rows))} at the onset "
                      f"(symmetric log scale: linear on [−1, 1])")
        ax.grid(axis="x", alpha=0.3)
    ax0 = axes[0]
    _symlog_axis(ax0, span)
    ax0.set_ylim(len(forms) - 0.5, -0.5)
    ax0.set_yticks(range(len(forms)), [_form_label(f) for f in forms], fontsize=8.5)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="s", ms=7, color=color[d], label=d) for d in dtypes]
    handles += [Line2D([], [], ls="", marker=CLASS_MARKER[c], ms=8 if c == "zero" else 7, markeredgewidth=1.4,
                       markerfacecolor="none" if c == "zero" else "0.5", markeredgecolor="black",
                       label=f"{NAME[c]} onset") for c in BANDS]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5, frameon=False)
    fig.suptitle("Where each form first fails on either side of 0: the NaN, ∞ and 0 onsets in every format "
                 "(no marker: never fails that way)", fontsize=11)
    return _save(fig, path)


def _onset_marker(cls: str, color: str) -> dict:
    if cls == "zero":
        return {"marker": "o", "s": 70, "facecolors": "none", "edgecolors": color, "linewidths": 1.6}
    return {"marker": CLASS_MARKER[cls], "s": 40, "color": color, "edgecolors": "black", "linewidths": 0.4}


# ------------------------------------------------------------------ all of them


def prepare_dir(out_dir) -> str:
    """Create `out_dir` if missing; one sentence if it cannot be written."""
    path = os.fspath(out_dir)
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise InputError(f"Cannot write figures to `{path}`: it is a file, not a folder.") from None
    except OSError as e:
        raise InputError(f"Cannot write figures to `{path}`: {e.strerror or e}.") from None
    if not os.path.isdir(path) or not os.access(path, os.W_OK):
        raise InputError(f"Cannot write figures to `{path}`: it is not a writable folder.")
    return path


def write_figures(out_dir, result: api.SweepResult | None = None, dtypes: Sequence[str] | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> list[str]:
    """Write every PNG figure into `out_dir` (created if missing) and return their paths.

    Args:
      out_dir: the folder.
      result: the sweep to draw; if None, the sigmoid family (targets 0 and 1) and the
        softmax family's margin sweep (K = 10, both target classes) are swept over
        `dtypes` (default: ``formats.DEFAULT_FORMATS``).
      dtypes: formats to sweep, or with a `result`, the formats of it to draw (default: all).
      progress: called as ``progress(label, done, total)``, first by the sweep, then once
        before each figure is drawn.
    Returns:
      the paths written: fig5_4.png .. fig5_7.png, error_<dtype>.png per format, onsets.png.
    """
    _matplotlib()  # before any sweep: a missing extra is reported at once
    out = prepare_dir(out_dir)
    if result is None:
        result = api.sweep("all", dtypes=tuple(dtypes or formats.DEFAULT_FORMATS), sweeps=["margin"], classes=[10],
                           progress=progress)
    # rows along one swept axis: the sigmoid family's, and the softmax family's margin sweep
    rows = [r for r in result.rows if (dtypes is None or r["dtype"] in dtypes) and r.get("sweep") in (None, "margin")]
    if not rows:
        raise InputError(f"The sweep has no rows for the formats {', '.join(dtypes or ())}.")
    tolerance = result.meta.get("tolerance_ulp", DEFAULT_TOLERANCE)
    jobs: list[tuple[str, Callable]] = list(TEXTBOOK_FIGURES.items())
    for d in dict.fromkeys(r["dtype"] for r in rows):
        mine = [r for r in rows if r["dtype"] == d]
        jobs.append((f"error_{d}.png", lambda p, mine=mine: error_figure(mine, p, tolerance)))
    jobs.append(("onsets.png", lambda p: onsets_figure(rows, p)))
    paths = []
    for k, (name, draw) in enumerate(jobs):
        if progress:
            progress(f"drawing {name}", k, len(jobs))
        paths.append(draw(os.path.join(out, name)))
    if progress:
        progress("figures drawn", len(jobs), len(jobs))
    return paths


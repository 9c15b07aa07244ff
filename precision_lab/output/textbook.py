"""The textbook's Figures 5-4 to 5-7, drawn with matplotlib (the optional `plot` extra):
∂L/∂ŷ, σ'(z), their product the error term δ, and the loss values against ŷ, every
curve computed by the project's own float64 kernels at z = logit(ŷ), none re-typed
here. matplotlib is imported inside the drawing functions only, and drawn on its Agg
canvas without pyplot, so no global backend is touched."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .. import interrupts
from ..engine.points import kernel_values
from ..errors import InputError
from ..families.sigmoid import FAMILY, check_targets
from ..numerics import formats

PLOT_EXTRA = "pip install 'precision_lab[plot]'"
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
    target = check_targets([target])[0]
    if int(points) < 2:
        raise InputError(f"`points` must be at least 2, got {points}.")
    grid = np.arange(1, int(points) + 1) / (int(points) + 1)
    z = np.log(grid) - np.log1p(-grid)
    factor, grad, value = TEXTBOOK_FORMS[loss]
    f64 = formats.get("float64")
    (yhat,) = kernel_values(FAMILY, [FAMILY.form("dmse_dyhat")], f64, z, 0.0)  # ŷ − 0 = ŷ exactly
    dl, ds, d, L = kernel_values(FAMILY, [FAMILY.form(n) for n in (factor, "dsigmoid_dz", grad, value)],
                                        f64, z, target)
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

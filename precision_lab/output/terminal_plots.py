"""Pictures in the terminal: the textbook figures (plotext) and the stability strip of a row.

The strip is a band along the swept axis, one character a cell, each cell the worst
class of the profile bins it covers, coloured by class and drawn with a character of
its own, so that it also reads without colour::

    NNNNNNNNN······················NNNNNNNNN    float16 bce_naive_chain, y = 0
    NNNNNNNNN~····················~∞∞∞∞∞∞∞∞∞    float16 bce_naive, y = 0

Its cells follow the swept points in order, −max on the left, 0 in the middle, +max
on the right: for 16-bit formats every value of the lattice (so |z| grows about
logarithmically outward from the middle), for wider ones a linear grid on [−L, L] in
the middle half and a sample of the bit patterns beyond.

plotext is imported inside `textbook_plots` only, so the strips need nothing but rich.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from ..numerics.classify import CODE
from . import charts
from .charts import _symlog
from .labels import INFO
from .textbook import textbook_curves
from ..errors import InputError

STYLE = {c: i.style for c, i in INFO.items()}
SYMBOL = {c: i.symbol for c, i in INFO.items()}
LEGEND_NAME = {c: i.name for c, i in INFO.items()}
EMPTY = " "  # a cell with no swept point (a sparse profile)


def strip(profile: dict, width: int) -> Text:
    """The profile of a sweep row as `width` characters: the worst class of the bins each covers.

    Args:
      profile: a row's ``profile`` (``class``: the worst class name per bin, or None).
      width: characters; cells share the bins as evenly as the counts allow, and
        with more cells than bins a bin spans several cells.
    Returns:
      rich Text of exactly `width` cells, styled by class.
    """
    if int(width) < 1:
        raise InputError(f"The strip width must be a positive number of characters, got {width}.")
    classes = profile["class"]
    n = len(classes)
    text = Text(no_wrap=True, overflow="crop")
    for j in range(int(width)):
        a = j * n // width
        b = max((j + 1) * n // width, a + 1)
        seen = [c for c in classes[a:b] if c is not None]
        worst = max(seen, key=CODE.__getitem__) if seen else None
        text.append(SYMBOL[worst] if worst else EMPTY, style=STYLE[worst] if worst else "")
    return text


def strip_legend(axis: str = "z", span: str = "−max … 0 … +max", unresolved: bool = False) -> Text:
    """One line: how to read a strip."""
    text = Text(f"strip along {axis} ({span}):", style="dim")
    for cls in ("ok", "inaccurate", "zero", "inf", "nan") + (("unresolved",) if unresolved else ()):
        text.append("  ")
        text.append(SYMBOL[cls], style=STYLE[cls])
        text.append(f" {LEGEND_NAME[cls]}")
    text.append("  (blank: no swept point)", style="dim")
    return text


class Strip:
    """A strip as a rich renderable that takes the width of its table cell (between
    `min_width` and `max_width` characters)."""

    def __init__(self, profile: dict, min_width: int = 4, max_width: int = 40):
        self.profile, self.min_width, self.max_width = profile, min_width, max_width

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.min_width, self.max_width).clamp(max_width=options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield strip(self.profile, max(1, min(self.max_width, options.max_width)))


# ------------------------------------------------------------------ textbook figures in the terminal

MARKER = {"dloss_dyhat": "•", "dsigmoid_dz": "+", "error_term": "█", "loss_mse": "•", "loss_bce": "█"}
TERMINAL_LABEL = {
    "mse": ("∂L/∂ŷ = ŷ − y", "δ = ∂L/∂ŷ·σ'(z)"),
    "bce": ("∂L/∂ŷ = −y/ŷ + (1−y)/(1−ŷ)", "δ = ∂L/∂ŷ·σ'(z) = ŷ − y"),
}
PANEL_HEIGHT = 22


def _plotext():
    try:
        import plotext
    except ImportError:
        raise InputError("Drawing figures in the terminal needs plotext, which is not installed: "
                         "pip install 'precision_lab[plot]'.") from None
    return plotext


def _legend_corner(plot, lower_right: bool, ylim: tuple[float, float]) -> None:
    """Put the legend in a corner the curves leave empty (positions in data units)."""
    if lower_right:
        plot.legend(x=1, y=ylim[0], relative=True, ha="right", va="bottom")
    else:
        plot.legend(x=0, y=ylim[1], relative=True, ha="left", va="top")


def _factor_panel(plot, target: float, loss: str, ylim: tuple[float, float], title: str, points: int) -> None:

    c = textbook_curves(target, loss, points)
    x = c["yhat"].tolist()
    dl_label, d_label = TERMINAL_LABEL[loss]
    lo, hi = ylim
    for key, label in (("dloss_dyhat", dl_label), ("dsigmoid_dz", "σ'(z) = ŷ(1 − ŷ)"), ("error_term", d_label)):
        y = c[key]
        keep = (y >= lo) & (y <= hi)  # plotext draws what lies outside the limits on the frame
        s = plot.signal([v for v, k in zip(x, keep) if k], y[keep].tolist(), marker=MARKER[key]).label(label)
        plot.draw(s)
    plot.title(title)
    plot.label("ŷ = σ(z)", axis="x")
    plot.label("value", axis="y")
    plot.ruler("x").lim(0, 1)
    plot.ruler("y").lim(lo, hi)
    _legend_corner(plot, target == 1.0, ylim)


def _loss_panel(plot, points: int) -> None:

    for loss, label in (("mse", "MSE ½(ŷ − y)²"), ("bce", "cross-entropy −ln(1 − ŷ)")):
        c = textbook_curves(0.0, loss, points)
        keep = c["loss"] <= 5
        plot.draw(plot.signal(c["yhat"][keep].tolist(), c["loss"][keep].tolist(), marker=MARKER[f"loss_{loss}"])
                  .label(label))
    plot.title("Figure 5-6 · loss values, target y = 0 (cut at 5)")
    plot.label("ŷ = σ(z)", axis="x")
    plot.label("loss", axis="y")
    plot.ruler("x").lim(0, 1)
    plot.ruler("y").lim(0, 5)
    _legend_corner(plot, False, (0, 5))


def textbook_plots(width: int = 100, color: bool = True, points: int = 199) -> list[str]:
    """The textbook's Figures 5-4 to 5-7 as terminal plots, each a string `width` columns wide.

    The curves are `textbook.textbook_curves`, the project's float64 kernels. With
    `color` False the strings hold no escape codes: each curve is told apart by its
    marker (• ∂L/∂ŷ, + σ'(z), █ the error term δ), named in the plot's legend.
    """
    plt = _plotext()
    if int(width) < 40:
        raise InputError(f"Terminal figures need at least 40 columns, got {width}.")
    fig = plt.figure
    panels = [
        (lambda p: _factor_panel(p, 0.0, "mse", (-0.05, 1.05),
                                 "Figure 5-4 · MSE, target y = 0: δ falls to 0 as the unit saturates", points)),
        (lambda p: _factor_panel(p, 0.0, "bce", (-0.25, 5.0),
                                 "Figure 5-5 · cross-entropy, target y = 0: δ tends to 1 (cut at 5)", points)),
        (lambda p: _loss_panel(p, points)),
        (lambda p: (
            _factor_panel(p.subplot(1, 1), 1.0, "mse", (-1.05, 0.3),
                          "Figure 5-7 (top) · target y = 1, MSE: δ rises to 0 as ŷ → 0", points),
            _factor_panel(p.subplot(2, 1), 1.0, "bce", (-5.0, 0.5),
                          "Figure 5-7 (bottom) · target y = 1, cross-entropy: δ tends to −1 (cut at −5)", points))),
    ]
    out = []
    plt.terminal.limit(False, False)  # the size asked for, whatever the terminal reports (or when there is none)
    try:
        for k, draw in enumerate(panels):
            rows = 2 if k == 3 else 1
            fig.clear()
            fig.plot_size(int(width), PANEL_HEIGHT * rows)
            if rows > 1:
                fig.subplots(rows, 1)
            fig.theme("simple")  # coloured curves on the terminal's own background
            draw(fig)
            out.append(fig.build().string(colorless=not color))
    finally:  # plotext's figure is global: leave it as found
        fig.clear()
        plt.terminal.limit()
    return out


# ------------------------------------------------------------------ error and onset charts in the terminal

ERROR_PANEL_HEIGHT = 10  # lines a form's panel of an error chart takes
TICK_VALUES = (1, 10, 100, 1000, 10**4, 10**5)


def _symlog_ticks(ruler, span: float) -> None:
    """Numbered ticks of a symmetric-log axis drawn in t = symlog(x) (`charts._symlog`)."""

    values = [v for v in TICK_VALUES if v < span] + [span]
    ticks = sorted({0.0, *values, *(-v for v in values)})
    ruler.ticks([float(_symlog(v)) for v in ticks], [f"{v:g}".replace("e+", "e").replace("-", "−") for v in ticks])
    ruler.lim(float(_symlog(-span)), float(_symlog(span)))


def _wrap(text: str, width: int) -> str:
    """Each line of `text` wrapped to `width` columns."""
    import textwrap

    return "\n".join(textwrap.fill(line, int(width)) for line in text.splitlines())


def _build(fig, width: int, height: int, color: bool, draw) -> str:
    """Draw on plotext's figure, `width` × `height` characters, with `draw(fig)` and return the text."""
    plt = _plotext()
    plt.terminal.limit(False, False)
    try:
        fig.clear()
        fig.plot_size(int(width), int(height))
        draw(fig)
        return fig.build().string(colorless=not color)
    finally:
        fig.clear()
        plt.terminal.limit()


def error_plots(rows, width: int = 100, color: bool = True, tolerance: float | None = None,
                evaluate=None, points: int = 401) -> list[str]:
    """The error charts of `figures.error_figure` as terminal plots: one per family and format.

    Each is a header (the PNG chart's title and a key) above a grid of panels, a row per
    form and a column per target: log2(ULPs + 1) of the computed value against the axis on
    a symmetric-log scale, each point drawn with its class's character (NaN points, which
    have no ULP distance, at the top).
    """
    from ..numerics.classify import DEFAULT_TOLERANCE
    from ..numerics.formats import get

    plt = _plotext()
    if int(width) < 40:
        raise InputError(f"Terminal figures need at least 40 columns, got {width}.")
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    out = []
    for family, mine in charts.by_family(rows).items():
        for dtype in dict.fromkeys(r["dtype"] for r in mine):
            these = [r for r in mine if r["dtype"] == dtype]
            bits = get(dtype).bits
            span, values = charts.error_values(these, evaluate or charts.evaluate, points)
            forms = list(dict.fromkeys(charts._form_key(r) for r in these))
            columns = list(dict.fromkeys(charts._column_key(r) for r in these))
            cells = {(charts._form_key(r), charts._column_key(r)): r for r in these}

            def draw(fig, forms=forms, columns=columns, cells=cells, values=values, span=span, bits=bits):
                single = len(forms) * len(columns) == 1  # plotext makes no grid of one panel
                if not single:
                    fig.subplots(len(forms), len(columns))
                for i, fkey in enumerate(forms):
                    for j, key in enumerate(columns):
                        p = fig if single else fig.subplot(i + 1, j + 1)
                        row = cells.get((fkey, key))
                        if row is None:
                            continue
                        ev = values[(fkey, key)]
                        t = charts._symlog(ev["x"])
                        cls = ev["class"][row["form"]]
                        y = np.minimum(charts.error_bits(ev["ulp"][row["form"]]), bits)
                        for c in ("ok", "inaccurate", "zero", "inf", "nan"):
                            m = cls == c
                            if m.any():
                                ys = np.where(np.isfinite(y[m]) & (c != "nan"), y[m], bits)  # no distance: at the top
                                p.draw(p.signal(t[m].tolist(), ys.tolist(), marker=SYMBOL[c]))
                        p.title(f"{charts._form_label(fkey)} · {charts._column_label(key)}")
                        _symlog_ticks(p.ruler("x"), span)
                        p.ruler("y").ticks(sorted({0, bits // 4, bits // 2, bits}))
                        p.ruler("y").lim(0, bits)

            key = "   ".join(f"{SYMBOL[c]} {LEGEND_NAME[c]}" for c in ("ok", "inaccurate", "zero", "inf"))
            header = (f"{charts.error_title(these)}\n"
                      f"x: {' or '.join(dict.fromkeys(r['axis'] for r in these))} on a symmetric-log scale; "
                      f"y: error in bits ({tolerance:g} ULP tolerance = {float(charts.error_bits(tolerance)):.2f} "
                      f"bits); points: {key}   N NaN (no distance: at the top)")
            chart = _build(plt.figure, width, ERROR_PANEL_HEIGHT * len(forms), color, draw)
            out.append(_wrap(header, width) + "\n" + chart)
    return out


def onset_plots(rows, width: int = 100, color: bool = True) -> list[str]:
    """The onsets chart of `figures.onsets_figure` as terminal plots: one per family.

    A panel per target, a line per form and format, each onset drawn as its class's
    character (N NaN, ∞, 0) at its value on a symmetric-log axis; onsets that meet at one
    spot (`charts.onset_marks`) are written side by side, and onsets beyond the axis
    sit at its ends.
    """

    plt = _plotext()
    if int(width) < 40:
        raise InputError(f"Terminal figures need at least 40 columns, got {width}.")
    out = []
    for family, mine in charts.by_family(rows).items():
        span = charts.axis_span(mine)
        marks = charts.onset_marks(mine, span)
        dtypes = list(dict.fromkeys(r["dtype"] for r in mine))
        lines = list(dict.fromkeys((charts._form_key(r), r["dtype"]) for r in mine))
        columns = list(dict.fromkeys(charts._column_key(r) for r in mine))
        label = {line: line[0][3] + (f" {line[1]}" if len(dtypes) > 1 else "") for line in lines}
        height = len(lines) + 6

        def draw(fig, lines=lines, columns=columns, marks=marks, span=span, label=label):
            if len(columns) > 1:  # plotext makes no grid of one panel
                fig.subplots(len(columns), 1)
            index = {line: len(lines) - 1 - i for i, line in enumerate(lines)}  # the first at the top
            for j, key in enumerate(columns):
                p = fig.subplot(j + 1, 1) if len(columns) > 1 else fig
                spots: dict[tuple, list[dict]] = {}
                for m in marks:
                    if m["column"] == key:
                        spots.setdefault((m["form"], m["dtype"], m["at"]), []).append(m)
                for (form, dtype, at), group in spots.items():
                    text = "".join(SYMBOL[m["cls"]] for m in sorted(group, key=lambda m: m["slot"]))
                    t = float(charts._symlog(at))
                    p.draw(p.signal([t], [index[(form, dtype)]], marker=text[0]))
                    if len(text) > 1:  # the others beside it, toward 0
                        p.draw(p.text(t, index[(form, dtype)], text, alignment="right" if t > 0 else "left"))
                p.title(f"{family} onsets · {charts._column_label(key)}")
                _symlog_ticks(p.ruler("x"), span)
                p.ruler("y").ticks(list(range(len(lines))), [label[line] for line in reversed(lines)])
                p.ruler("y").lim(-0.5, len(lines) - 0.5)

        header = (f"{charts.onsets_title(mine)}\n"
                  f"N NaN   ∞ inf   0 lost to 0 (no mark: never fails that way; onsets that meet are written "
                  f"side by side; beyond ±{span:g} at the ends)")
        out.append(_wrap(header, width) + "\n" + _build(plt.figure, width, height * len(columns), color, draw))
    return out

"""What the error and onset charts show, shared by the PNG figures and the terminal
plots: the rows drawn, their axis, per-point errors along it (evaluated as the sweep
evaluates them), and where the onset markers go."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..engine import points as engine_points
from ..families import registry
from ..numerics import formats
from .labels import INFO

COLOR = {c: i.color for c, i in INFO.items()}  # one table of classes: labels.INFO
NAME = {c: i.name for c, i in INFO.items()}
BANDS = ("nan", "inf", "zero")
FORMAT_COLOR = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
CLASS_MARKER = {"nan": "X", "inf": "^", "zero": "o"}


def evaluate(family: str, form_names, dtype: str, xs, target, sweep: str = "margin", classes: int = 10) -> dict:
    """Per-point values of a registered family's forms (see engine.points.evaluate), as
    a row names its family and case."""
    kind = registry.get(family)
    fam = registry.family(family, classes=[classes]) if "classes" in kind.options else kind.family()
    if isinstance(target, str):  # a softmax target class on its sweep
        from ..families.base import Case

        target = fam.target_of(Case(classes=classes, sweep=sweep, target_class=target))
    return engine_points.evaluate(fam, [fam.form(n) for n in form_names], formats.get(dtype), xs, target)




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


def _axis_points(dtype: str, span: float, n: int = 2001, extra: Sequence[float] = ()) -> np.ndarray:
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


def error_values(rows: Sequence[dict], evaluate: Callable = evaluate, points: int = 2001) -> tuple[float, dict]:
    """The axis half-width of `rows` (one format) and each row's per-point values along it.

    Returns:
      ``(span, values)``: `values` maps (form key, column key) to what `evaluate` gave for
      the row at `points` values of the format on [−span, span] (see `_axis_points`).
    """
    span = axis_span(rows)
    per_point = {}
    for gkey in dict.fromkeys(_form_key(r)[:3] + _column_key(r) for r in rows):
        group = [r for r in rows if _form_key(r)[:3] + _column_key(r) == gkey]
        xs = _axis_points(rows[0]["dtype"], span, points, _onset_values(group))
        values = _evaluate_rows(evaluate, group, xs)
        per_point.update({(_form_key(r), _column_key(r)): values for r in group})
    return span, per_point




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


def figure_rows(result, dtypes: Sequence[str] | None = None) -> list[dict]:
    """The rows of `result` the error and onset figures draw: those along one swept axis (the
    sigmoid family's, any checked function's and the softmax family's margin sweep), of `dtypes`."""
    return [r for r in result.rows if (dtypes is None or r["dtype"] in dtypes) and r.get("sweep") in (None, "margin")]


def by_family(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """`rows` grouped by family, in their order."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["family"], []).append(r)
    return groups

"""`precision-lab figures`: the textbook figures and each format's error and onset
charts, as PNG files or in the terminal."""

from __future__ import annotations

from rich.text import Text

from ..numerics import formats
from .parser import UsageError
from .running import console, with_progress


def figures(args) -> int:
    from .. import api
    from ..output import charts, figures as pngs

    out_console = console(args.no_color)
    if args.terminal and args.out is not None:
        raise UsageError("`--terminal` draws in the terminal and writes no files, so it takes no `--out`.")
    for d in args.dtypes:
        if ":" in d:
            raise UsageError(f"figures draws plain formats, not `{d}`; sweep --dtypes {d} shows the upcast rows.")
        formats.get(d)  # an unknown format is reported before anything is drawn or swept
    if args.source is not None:
        return _from_result(args, out_console)
    if args.terminal:
        from ..output import terminal_plots

        color = out_console.is_terminal and not out_console.no_color

        def show(plots):
            for plot in plots:
                out_console.print(Text.from_ansi(plot) if color else Text(plot), soft_wrap=True)

        show(terminal_plots.textbook_plots(out_console.width, color=color))  # while the formats are swept
        result = with_progress(lambda progress: api.figure_sweep(args.dtypes, progress), args.no_color)
        rows = charts.figure_rows(result)
        tolerance = result.meta.get("tolerance_ulp")
        show(terminal_plots.error_plots(rows, out_console.width, color=color, tolerance=tolerance))
        show(terminal_plots.onset_plots(rows, out_console.width, color=color))
        return 0
    out = "figures" if args.out is None else args.out
    pngs.check_plotting(out)

    def draw(progress):
        return pngs.write_figures(out, api.figure_sweep(args.dtypes, progress), args.dtypes, progress)

    for p in with_progress(draw, args.no_color):
        out_console.print(p, highlight=False)
    return 0


def _from_result(args, out_console) -> int:
    """The onset chart of each family of a saved result (its rows drawn as they are:
    nothing is swept again, so a `check` result's own function needs no import)."""
    import json
    import os

    from ..output import charts, figures as pngs
    from ..result import SweepResult

    try:
        with open(args.source) as f:
            rows = SweepResult.from_json(json.load(f)).rows
    except OSError as e:
        raise UsageError(f"Cannot read `{args.source}`: {e.strerror or e}.") from None
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"`{args.source}` is not a result written with --json.") from None
    rows = [r for r in rows if r.get("axis")]  # vector sweeps have no onset axis
    if not rows:
        raise UsageError(f"`{args.source}` has no row with an onset axis to draw.")
    if args.terminal:
        from ..output import terminal_plots

        color = out_console.is_terminal and not out_console.no_color
        for plot in terminal_plots.onset_plots(rows, out_console.width, color=color):
            out_console.print(Text.from_ansi(plot) if color else Text(plot), soft_wrap=True)
        return 0
    out = "figures" if args.out is None else args.out
    pngs.check_plotting(out)
    os.makedirs(out, exist_ok=True)
    for family, mine in charts.by_family(rows).items():
        out_console.print(pngs.onsets_figure(mine, os.path.join(out, f"onsets_{family}.png")), highlight=False)
    return 0

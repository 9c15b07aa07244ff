"""Figures: the textbook curve data, the PNG files, the terminal plots and the stability strips."""

import sys

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console

import precision_lab as pl
from precision_lab import cli
from precision_lab.output import charts, figures, report, terminal_plots, textbook
from precision_lab.numerics import formats

SMALL_FORMS = ["bce_naive_chain", "bce_fused", "bce_logits_autodiff"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small():
    """Every value of float16, targets 0 and 1, three gradient forms."""
    return pl.sweep(dtypes=["float16"], targets=[0.0, 1.0], forms=SMALL_FORMS)


# ------------------------------------------------------------------ the textbook curves


@pytest.mark.parametrize("target", [0.0, 1.0])
@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_textbook_curves_follow_the_formulas(target, loss):
    """At ŷ = 0.001, 0.1, 0.5, 0.9, 0.999 the kernels' curves equal the textbook formulas.

    Tolerance: 1e-12 relative. Both sides are float64 at the same ŷ (the kernels' own
    σ(z)), each a handful of correctly rounded operations (≲ 10 ulp ≈ 2e-15), and the
    1 − ŷ and 1/ŷ terms amplify the rounding of ŷ by at most ŷ/(1 − ŷ) ≈ 1e3 at
    ŷ = 0.999: 1e-12 covers that with room, while a wrong formula, factor or target is
    off by more than 1e-3.
    """
    c = textbook.textbook_curves(target, loss, points=999)
    idx = [0, 99, 499, 899, 998]  # the grid is k/1000
    yhat, y = c["yhat"][idx], target
    np.testing.assert_allclose(yhat, [0.001, 0.1, 0.5, 0.9, 0.999], rtol=1e-12)
    if loss == "mse":
        dl = yhat - y
        value = 0.5 * (yhat - y) ** 2
    else:
        dl = -y / yhat + (1 - y) / (1 - yhat)
        value = -(y * np.log(yhat) + (1 - y) * np.log1p(-yhat))
    ds = yhat * (1 - yhat)
    np.testing.assert_allclose(c["dloss_dyhat"][idx], dl, rtol=1e-12)
    np.testing.assert_allclose(c["dsigmoid_dz"][idx], ds, rtol=1e-12)
    np.testing.assert_allclose(c["error_term"][idx], dl * ds, rtol=1e-12)
    np.testing.assert_allclose(c["loss"][idx], value, rtol=1e-12)
    if loss == "bce":  # the textbook's simplification: δ = ŷ − y
        np.testing.assert_allclose(c["error_term"][idx], yhat - y, rtol=1e-12)


def test_textbook_claims_at_the_saturated_end():
    """Figure 5-4: with MSE the error term falls to 0 as ŷ → 1 (y = 0); Figure 5-5: with
    cross-entropy it tends to 1; Figure 5-7: mirrored for y = 1."""
    assert textbook.textbook_curves(0.0, "mse")["error_term"][-1] == pytest.approx(0.999 * 0.999 * 0.001, rel=1e-12)
    assert textbook.textbook_curves(0.0, "bce")["error_term"][-1] == pytest.approx(0.999, rel=1e-12)
    assert textbook.textbook_curves(1.0, "mse")["error_term"][0] == pytest.approx(-0.999 * 0.001 * 0.999, rel=1e-12)
    assert textbook.textbook_curves(1.0, "bce")["error_term"][0] == pytest.approx(-0.999, rel=1e-12)


def test_textbook_curves_reject_bad_input():
    with pytest.raises(pl.InputError, match="`mse` or `bce`"):
        textbook.textbook_curves(0.0, "hinge")
    with pytest.raises(pl.InputError, match="outside"):
        textbook.textbook_curves(2.0, "mse")


def test_error_bits_as_herbie():
    np.testing.assert_array_equal(charts.error_bits([0, 1, 3, 65535]), [0, 1, 2, 16])


# ------------------------------------------------------------------ PNG files


DPI = 110  # textbook._save


def white_tiles(path, grid: int = 3) -> list[tuple[int, int]]:
    """The tiles of a `grid` × `grid` split of a PNG in which (almost) nothing is drawn."""
    import matplotlib.image

    image = matplotlib.image.imread(path)[..., :3]
    h, w = image.shape[:2]
    blank = []
    for i in range(grid):
        for j in range(grid):
            tile = image[i * h // grid:(i + 1) * h // grid, j * w // grid:(j + 1) * w // grid]
            if np.mean(np.any(tile < 0.95, axis=-1)) < 0.01:  # under 1% of its pixels drawn on
                blank.append((i, j))
    return blank


def test_every_png_is_written_and_valid(small, tmp_path):
    import matplotlib.image

    out = tmp_path / "figs"  # created by write_figures
    paths = figures.write_figures(out, result=small)
    names = ["fig5_4.png", "fig5_5.png", "fig5_6.png", "fig5_7.png", "error_sigmoid_float16.png", "onsets_sigmoid.png"]
    assert [p.rsplit("/", 1)[-1] for p in paths] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs"]  # no temporary folder left beside it
    for p in paths:
        data = open(p, "rb").read()
        assert data[:8] == PNG_SIGNATURE, p
        assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND", p
        assert len(data) > 10_000, p
        image = matplotlib.image.imread(p)  # decodes: a valid PNG
        assert image.shape[0] > 300 and image.shape[1] > 500, p
    # 3 forms × 2 targets: the canvas is the grid's size, and every ninth of it holds something
    # (the old single chart of both families left a quarter blank in two corners)
    image = matplotlib.image.imread(paths[4])
    w, h = figures.error_figure_size(3, 2)
    assert abs(image.shape[1] - w * DPI) <= 2 and abs(image.shape[0] - h * DPI) <= 2
    for p in paths[4:]:
        assert white_tiles(p) == [], p


def test_a_figure_per_family_and_format(small, tmp_path, monkeypatch):
    """error_<family>_<dtype>.png and onsets_<family>.png, each drawn from its own family's
    (and format's) rows only; files already in the folder stay."""
    calls = {}

    def fake(kind):
        def draw(rows, path, *args):
            calls[path.rsplit("/", 1)[-1]] = {(r["family"], r["dtype"]) for r in rows}
            open(path, "wb").write(b"png")
        return draw

    monkeypatch.setattr(figures, "error_figure", fake("error"))
    monkeypatch.setattr(figures, "onsets_figure", fake("onsets"))
    monkeypatch.setattr(figures, "TEXTBOOK_FIGURES", {})
    rows = [dict(r) for r in small.rows]
    rows += [dict(r, dtype="bfloat16") for r in small.rows]
    rows += [dict(r, family="check") for r in small.rows]
    result = pl.SweepResult(rows=rows, meta=small.meta)
    out = tmp_path / "figs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    paths = figures.write_figures(out, result=result)
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        "error_sigmoid_float16.png", "error_sigmoid_bfloat16.png", "onsets_sigmoid.png",
        "error_check_float16.png", "onsets_check.png"]
    assert calls["error_sigmoid_float16.png"] == {("sigmoid", "float16")}
    assert calls["error_sigmoid_bfloat16.png"] == {("sigmoid", "bfloat16")}
    assert calls["onsets_sigmoid.png"] == {("sigmoid", "float16"), ("sigmoid", "bfloat16")}
    assert calls["error_check_float16.png"] == {("check", "float16")}
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.txt", *(p.rsplit("/", 1)[-1] for p in paths)])
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("exists", [True, False])
def test_an_interrupted_run_leaves_the_folder_as_it_was(small, tmp_path, monkeypatch, exists):
    """Ctrl-C after the first figure is drawn: no figure reaches the folder (an old one keeps its
    bytes), a folder that was not there is not made, and no temporary folder is left."""
    out = tmp_path / "figs"
    if exists:
        out.mkdir()
        (out / "fig5_4.png").write_bytes(b"old")

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setitem(textbook.TEXTBOOK_FIGURES, "fig5_5.png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        figures.write_figures(out, result=small)
    if exists:
        assert [p.name for p in out.iterdir()] == ["fig5_4.png"] and (out / "fig5_4.png").read_bytes() == b"old"
        assert [p.name for p in tmp_path.iterdir()] == ["figs"]
    else:
        assert list(tmp_path.iterdir()) == []


def visible_labels(labels) -> list[str]:
    return [t.get_text() for t in labels if t.get_visible() and t.get_text().strip()]


def test_every_panel_numbers_both_axes(small):
    """Shared axes would leave the inner panels without numbers; every panel keeps them."""
    rows = list(small.rows)
    fig = figures.draw_error(rows, points=201)
    assert tuple(fig.get_size_inches()) == pytest.approx(figures.error_figure_size(3, 2))
    onsets = figures.draw_onsets(rows)
    for f, panels in ((fig, 6), (onsets, 2)):
        f.canvas.draw()
        axes = [ax for ax in f.axes if ax.axison]
        assert len(axes) == panels
        for ax in axes:
            x, y = visible_labels(ax.get_xticklabels()), visible_labels(ax.get_yticklabels())
            assert len(x) >= 5 and "0" in x and "−10" in x, x
            assert len(y) >= 3, y
    assert visible_labels(onsets.axes[1].get_yticklabels())[:2] == ["bce_naive_chain", "bce_fused"]
    # the height follows the panels: one target column, then one form fewer
    only0 = [r for r in rows if r["target"] == 0.0]
    assert tuple(figures.draw_error(only0, points=201).get_size_inches()) == \
        pytest.approx(figures.error_figure_size(3, 1))
    assert figures.error_figure_size(2, 1)[1] < figures.error_figure_size(3, 1)[1]


def test_onset_markers_never_cover_each_other(small):
    """Onsets that meet (a format's own at its ends, beyond the axis; NaN and 0 together) are
    stacked, and those beyond the axis sit at its end, labelled with their value."""
    fmax = formats.get("bfloat16").max
    wide = []
    for r in small.rows:
        w = {**r, "dtype": "bfloat16", "onset": {c: dict(o) for c, o in r["onset"].items()},
             "intervals": {c: {"total": 0, "listed": []} for c in r["intervals"]}}
        for side, sign in (("neg", -1), ("pos", 1)):
            if w["onset"]["nan"][side] is not None:  # NaN, ∞ and 0 all at the format's end, beyond the axis
                for c in ("nan", "inf", "zero"):
                    w["onset"][c][side] = sign * fmax
        wide.append(w)
    rows = list(small.rows) + wide
    span = charts.axis_span(rows)
    assert span == 50  # the format's ends do not stretch the axis
    marks = charts.onset_marks(rows, span)
    clipped = [m for m in marks if m["clipped"]]
    assert len(clipped) == 3 * 2 * 2  # bce_naive_chain's three classes, both ends, both targets
    assert all(abs(m["x"]) == span and m["slots"] == 3 for m in clipped)
    assert sorted(m["slot"] for m in clipped if m["x"] > 0 and m["column"][0] == 0.0) == [0, 1, 2]
    fig = figures.draw_onsets(rows)
    fig.canvas.draw()
    columns = list(dict.fromkeys(m["column"] for m in marks))
    for ax, column in zip(fig.axes, columns):
        points = np.concatenate([ax.transData.transform(c.get_offsets()) for c in ax.collections])
        assert len(points) == sum(m["column"] == column for m in marks)  # one marker per onset
        d = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        assert d.min() >= 10, d.min()  # pixels between centres: a marker is 10 to 13 px wide at 110 dpi
        texts = [t.get_text() for t in ax.texts]
        assert texts.count(f"{fmax:.6g}") == texts.count(f"−{fmax:.6g}") > 0


def test_error_figure_is_a_function_of_rows(small, tmp_path):
    """It evaluates the rows' own family, forms and format, on a symmetric-log set of the
    format's values that holds every onset and its two lattice neighbours."""
    calls = []

    def spy(family, forms, dtype, xs, target):
        calls.append((family, tuple(forms), dtype, np.asarray(xs), target))
        return pl.evaluate(family, forms, dtype, xs, target)

    rows = [r for r in small.rows if r["target"] == 0.0]
    figures.error_figure(rows, tmp_path / "e.png", evaluate=spy)
    [(family, forms, dtype, xs, target)] = calls
    assert (family, forms, dtype, target) == ("sigmoid", tuple(SMALL_FORMS), "float16", 0.0)
    fmt = formats.get("float16")
    for onset in (7.625, -11.09375):  # bce_naive_chain's NaN onsets
        neighbours = [formats.prev_value(np.float16(onset), fmt), formats.next_value(np.float16(onset), fmt)]
        assert {onset, *map(float, neighbours)} <= set(xs.tolist())
    span = charts.axis_span(rows)
    assert span == 50  # 1.5 × 17.33 (bce_fused's zero band), rounded up to 1, 2 or 5 × 10^k
    assert xs.min() >= -span and xs.max() <= span
    assert 0.2 < np.mean(np.abs(xs) <= 1) < 0.6  # symmetric-log: the linear middle keeps its share
    assert np.all(xs == fmt.cast(xs).astype(np.float64))  # values of the format


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "figs"
    code = cli.main(["figures", "--out", str(out), "--dtypes", "float16"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and "matplotlib" in err and "pip install 'precision_lab[plot]'" in err
    assert not out.exists()  # reported before anything is made or swept


def test_missing_plotext_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "plotext", None)
    code = cli.main(["figures", "--terminal"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "plotext" in err and "precision_lab[plot]" in err


def test_unwritable_out_dir_is_one_sentence(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = cli.main(["figures", "--out", str(blocker / "figs"), "--dtypes", "float16"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "Cannot write figures to" in err


# ------------------------------------------------------------------ the terminal


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_figures_render(width):
    plots = terminal_plots.textbook_plots(width, color=False)
    assert len(plots) == 4
    for text, title in zip(plots, ["Figure 5-4", "Figure 5-5", "Figure 5-6", "Figure 5-7 (top)"]):
        lines = text.splitlines()
        assert title in text and "\x1b" not in text
        assert max(cell_len(line) for line in lines) == width
        assert "ŷ = σ(z)" in text  # the x label
    for text in (plots[0], plots[1], plots[3]):  # each curve: its marker on the plot and in the legend
        for marker, label in (("•", "• ∂L/∂ŷ"), ("+", "+ σ'(z)"), ("█", "█ δ = ∂L/∂ŷ·σ'(z)")):
            assert label in text and text.count(marker) > 10
    assert "Figure 5-7 (bottom)" in plots[3]
    assert "\x1b[" in terminal_plots.textbook_plots(width, color=True)[0]


def test_cli_terminal_draws_every_chart_of_the_formats_asked(small, monkeypatch, capsys):
    """The textbook figures, then each family's error chart per format of --dtypes and its onsets
    chart, as wide as the console (the sweep is the small float16 one, handed in)."""
    asked = []

    def sweep(dtypes, progress=None):
        asked.append(list(dtypes))
        return small

    monkeypatch.setattr(pl.api, "figure_sweep", sweep)
    monkeypatch.setenv("COLUMNS", "80")
    assert cli.main(["figures", "--terminal", "--no-color", "--dtypes", "float16"]) == 0
    out, _ = capsys.readouterr()
    assert asked == [["float16"]]
    assert "Figure 5-4" in out and "Figure 5-7 (bottom)" in out and "\x1b" not in out
    assert "float16: error of every sigmoid form, in bits" in out
    assert "Where each sigmoid form first fails on either side of 0" in out
    for panel in ("bce_naive_chain · target y = 0", "bce_fused · target y = 1", "sigmoid onsets · target y = 1"):
        assert panel in out
    assert out.index("Figure 5-7") < out.index("error of every") < out.index("Where each")
    assert max(cell_len(line) for line in out.splitlines()) == 80


def test_terminal_onsets_put_each_class_where_it_begins(small):
    """float16 bce_naive_chain, y = 0: NaN from −11.09 and 7.625, drawn left and right of 0 on its line."""
    [text] = terminal_plots.onset_plots([r for r in small.rows if r["target"] == 0.0], 100, color=False)
    line = next(line for line in text.splitlines() if line.strip().startswith("bce_naive_chain┤"))
    body = line.split("┤", 1)[1]
    zero = len(body) // 2
    assert body.count("N") == 2 and body.index("N") < zero < body.rindex("N")
    fused = next(line for line in text.splitlines() if line.strip().startswith("bce_fused┤")).split("┤", 1)[1]
    assert fused.count("0") == 1 and fused.index("0") < zero  # lost to 0 from −11.09 only


def test_terminal_refuses_out(tmp_path, capsys):
    out = tmp_path / "figs"
    code = cli.main(["figures", "--terminal", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "--out" in err and "--terminal" in err
    assert not out.exists()


def leading(text: str, ch: str) -> int:
    return len(text) - len(text.lstrip(ch))


@pytest.mark.parametrize("width", [80, 120])
def test_strip_shows_the_nan_bands_at_both_ends(small, width):
    """float16 bce_naive_chain, y = 0: NaN for z ≥ 7.625 and z ≤ −11.09375, fine between.

    The strip follows the lattice in order, so the NaN ends take the share of the
    lattice's values beyond each onset (within 2 cells: a cell is NaN if any of its
    profile bins holds a NaN point)."""
    row = small.row("bce_naive_chain", "float16", 0.0)
    s = terminal_plots.strip(row["profile"], width).plain
    assert len(s) == width and s[0] == "N" and s[-1] == "N"
    assert set(s) == {"N", "·"} and "N" not in s[width // 2 - 5: width // 2 + 5]
    fmt = formats.get("float16")
    n = fmt.lattice_size
    for count, onset in ((leading(s, "N"), 11.09375), (leading(s[::-1], "N"), 7.625)):
        beyond = fmt.max_ordinal - int(formats.to_ordinal(np.float16(onset), fmt)) + 1
        assert abs(count - width * beyond / n) <= 2


def test_strip_characters_per_class(small):
    stable = small.row("bce_logits_autodiff", "float16", 0.0)
    assert set(terminal_plots.strip(stable["profile"], 60).plain) == {"·"}
    fused = terminal_plots.strip(small.row("bce_fused", "float16", 0.0)["profile"], 60).plain
    assert "0" in fused[:30] and "N" not in fused  # the lost band z in [−17.3, −11.1]
    assert terminal_plots.strip({"class": ["inaccurate", "inf", None, "ok"]}, 8).plain == "~~∞∞  ··"
    with pytest.raises(pl.InputError):
        terminal_plots.strip(stable["profile"], 0)


@pytest.mark.parametrize("width", [80, 120])
def test_table_cells_carry_strips_and_a_legend(small, width):
    console = Console(width=width, record=True, no_color=True, file=open("/dev/null", "w"))
    report.print_result(small, console, detail=True)
    text = console.export_text()
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    i = next(k for k, line in enumerate(lines) if line.startswith("│ bce_naive_chain"))
    strip = lines[i].split("│")[2].strip()
    assert strip[0] == "N" and strip[-1] == "N" and "·" in strip
    legend = next(line for line in lines if line.startswith("strip along z"))
    for mark in ("· ok", "~ inexact", "0 lost to 0", "∞ inf", "N NaN"):
        assert mark in legend
    assert cell_len(legend) <= width


def test_sweep_no_color_prints_plain_strips(capsys):
    argv = ["sweep", "--dtypes", "float16", "--targets", "0", "--forms", "bce_naive_chain", "--no-color", "--detail"]
    assert cli.main(argv) == 0
    out, _ = capsys.readouterr()
    assert "\x1b" not in out and "NNN" in out and "strip along z" in out


def test_figures_draw_a_saved_check_result_without_importing_its_function(tmp_path, capsys):
    """`figures --from RESULT.json` draws the onset chart of a `check` result from its
    rows alone: a PNG per family (family `check`, the user's own rows), and the same
    chart in the terminal, with the form's NaN onset at z = 7.625 in float16."""
    import json
    import os

    user = os.path.join(os.path.dirname(os.path.abspath(__file__)), "user", "losses.py")
    saved = tmp_path / "check.json"
    doc = pl.check(f"{user}:naive_bce", dtypes=["float16"], targets=[0.0], value_range=(-20.0, 20.0),
                   causes=False).to_json()
    saved.write_text(json.dumps(doc, allow_nan=False))
    out = tmp_path / "figs"
    assert cli.main(["figures", "--from", str(saved), "--out", str(out), "--no-color"]) == 0
    png = (out / "onsets_check.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    capsys.readouterr()
    assert cli.main(["figures", "--from", str(saved), "--terminal", "--no-color"]) == 0
    text = capsys.readouterr().out
    assert "naive_bce" in text and "check onsets · target y = 0" in text
    assert cli.main(["figures", "--from", str(tmp_path / "nope.json")]) == 2

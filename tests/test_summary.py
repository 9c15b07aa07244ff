"""The one-screen answer, the CI gates and the result API's row selection."""

import pytest

import precision_lab as pl
from precision_lab.engine.rows import RowKey
from precision_lab import api, cli
from precision_lab.analysis import gates
from precision_lab.output import summary, wording
from precision_lab.errors import InputError


def _row(form="f", quantity="grad", dtype="float16", points=100, family="sigmoid", **counts):
    c = {"ok": 0, "inaccurate": 0, "zero": 0, "inf": 0, "nan": 0, "unresolved": 0, "zero_subnormal": 0}
    c.update(counts)
    c["ok"] = points - sum(v for k, v in c.items() if k not in ("ok", "zero_subnormal"))
    return {"family": family, "form": form, "quantity": quantity, "dtype": dtype, "points": points, "counts": c,
            "summary": "", "target": 0.0, "axis": None, "exhaustive": True, "max_ulp": 1.0,
            "stable": not (c["nan"] or c["inf"] or c["zero"])}


# ------------------------------------------------------------------ gates


def test_gate_grammar():
    g = gates.parse("nan,ce_fused=inaccurate>1%,zero_normal>3")
    assert [str(x) for x in g] == ["nan", "ce_fused=inaccurate>1%", "zero_normal>3"]
    assert (g[1].form, g[1].cls, g[1].limit, g[1].percent) == ("ce_fused", "inaccurate", 1.0, True)


@pytest.mark.parametrize("rule, message", [
    ("nann", "Unknown class `nann` in --fail-on"),
    ("inaccurate>", "is not a --fail-on rule"),
    ("inaccurate>150%", "can never fail"),
    ("bce_magic=nan", "--fail-on names form `bce_magic`"),
])
def test_gate_errors(rule, message):
    with pytest.raises(InputError, match=message):
        gates.parse(rule, forms=["ce_fused"])


def test_zero_normal_excludes_flushes():
    """A row whose zeros are all subnormal flushes passes `zero_normal` and fails `zero`."""
    flushed = _row(zero=5, zero_subnormal=5)
    lost = _row(zero=5, zero_subnormal=4)
    (zn,), (z,) = gates.parse("zero_normal"), gates.parse("zero")
    assert not zn.fails(flushed) and z.fails(flushed)
    assert zn.fails(lost) and zn.measure(lost) == 1


def test_percentage_thresholds_are_of_swept_points():
    row = _row(form="ce_fused", points=1000, inaccurate=10)  # 1.0 %: not more than 1 %
    assert not gates.parse("inaccurate>1%")[0].fails(row)
    assert gates.parse("inaccurate>0.9%")[0].fails(row)
    assert gates.parse("inaccurate>9")[0].fails(row) and not gates.parse("inaccurate>10")[0].fails(row)
    assert not gates.parse("other=inaccurate")[0].fails(row)  # a rule for another form
    assert gates.failures([row, _row(form="x", nan=1)], gates.parse("nan,ce_fused=inaccurate>0.5%")) == [
        (row, gates.Gate("inaccurate", 0.5, True, "ce_fused")), (_row(form="x", nan=1), gates.Gate("nan"))]


SMALL = ["sweep", "--dtypes", "float16", "--targets", "0", "--forms", "bce_logits_autodiff,bce_fused,bce_naive_chain"]


def test_cli_gates(capsys):
    """float16, y = 0: bce_logits_autodiff is clean; bce_fused = σ(z) is 0 at 714 values,
    all where the exact σ(z) is a float16 subnormal (`zero`, never `zero_normal`); the
    chain product is NaN at z ≥ 7.625 and z ≤ −11.09."""
    assert cli.main(SMALL + ["--quiet", "--fail-on", "zero"]) == 1
    assert "bce_fused float16 y=0 (zero 714 points)" in capsys.readouterr().err
    assert cli.main(SMALL + ["--quiet", "--fail-on", "zero_normal"]) == 0
    code = cli.main(SMALL + ["--quiet", "--fail-on", "nan,inf"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("precision-lab: 1 of 3 rows fail --fail-on nan,inf: "
                                        "bce_naive_chain float16 y=0 (nan ")
    assert cli.main(SMALL + ["--quiet", "--fail-on", "bce_fused=nan,bce_logits_autodiff=zero_normal"]) == 0
    code = cli.main(SMALL + ["--quiet", "--fail-on", "bce_naive_chain=nan>99%"])
    assert code == 0  # NaN at z ≥ 7.625 and z ≤ −11.09: far fewer than 99 % of float16's values
    assert cli.main(SMALL + ["--quiet", "--fail-on", "bce_naive_chain=nan>1%"]) == 1
    assert cli.main(SMALL + ["--quiet", "--fail-on", "nan>x"]) == 2
    assert "is not a --fail-on rule" in capsys.readouterr().err


# ------------------------------------------------------------------ rows API


def test_row_selection_names_ambiguity_and_absence():
    rows = [dict(_row(form="ce_naive", family="softmax", dtype="bfloat16"), target=None, sweep=s, classes=k,
                 target_class=t) for s in ("margin", "random") for k in (10, 1000) for t in ("top", "other")]
    result = api.SweepResult({}, rows)
    assert len(result.rows(form="ce_naive", sweep="margin")) == 4
    assert result.row("ce_naive", "bfloat16", "top", sweep="margin", classes=1000) is result.rows[2]
    with pytest.raises(InputError, match=r"8 rows have form='ce_naive', dtype='bfloat16'; choose by classes "
                                         r"\(10, 1000\); sweep \('margin', 'random'\); target_class"):
        result.row("ce_naive", "bfloat16")
    with pytest.raises(InputError, match="No row has form='ce_naive', dtype='float16'"):
        result.row("ce_naive", "float16", sweep="margin")
    with pytest.raises(InputError, match="Rows cannot be selected by colour"):
        result.rows(colour="red")
    assert [r.key for r in result.rows] == [RowKey.of(r) for r in rows]  # the rows given, in order
    assert [r["counts"] for r in result.to_json()["rows"]] == [r["counts"] for r in rows]
    assert repr(result).startswith("<SweepResult: 8 rows of softmax in bfloat16; 0 forms with NaN")


# ------------------------------------------------------------------ grades and the summary


def test_grades_rank_by_severity():
    assert summary.grade(_row(nan=1, zero=3)) == "breaks"
    assert summary.grade(_row(zero=3, zero_subnormal=2)) == "lost"
    assert summary.grade(_row(zero=3, zero_subnormal=3, inaccurate=5)) == "flush"
    assert summary.grade(_row(inaccurate=5)) == "inexact"
    assert summary.grade(_row()) == "clean"
    tiny = dict(_row(quantity="loss", zero=3), zero_exact_max=4.8e-4)  # below float16's eps, 2**-10
    assert summary.grade(tiny) == "tiny"
    assert summary.grade(dict(tiny, zero_exact_max=1.5e-3)) == "lost"  # a loss above eps lost to 0
    assert summary.grade(dict(tiny, quantity="grad")) == "lost"  # a gradient is never excused


def test_a_checked_functions_loss_and_gradient_are_judged_apart():
    # a user's function names both of its rows: a clean loss must not be graded by its NaN gradient
    loss = _row(form="my_bce", quantity="loss", family="check")
    grad = _row(form="my_bce", quantity="grad", family="check", nan=7)
    got = {(v.name, v.quantity): v.grade for v in summary.verdicts([loss, grad])}
    assert got == {("my_bce (loss)", "loss"): "clean", ("my_bce (grad)", "grad"): "breaks"}


@pytest.fixture(scope="module")
def sigmoid16():
    return pl.sweep(dtypes=["float16"], targets=[0.0, 1.0])


@pytest.mark.parametrize("width", [80, 50])  # a grid of columns; a paragraph per form where they do not fit
def test_summary_places_every_form_once(sigmoid16, width):
    text = sigmoid16.summary(width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    names = [f.name for f in api.get_family("sigmoid").forms]
    heads = [line.split()[0] for line in lines if line.startswith(" ") and not line.startswith("   ") and line.split()]
    for name in names:  # each form heads exactly one entry
        assert heads.count(name) == 1, (name, heads)
    assert text.index("NaN or ∞: training breaks") < text.index("Lost to 0 where the exact value is")
    assert text.index("bce_naive_chain") < text.index("Lost to 0 where")  # the chain product breaks
    assert "Use for the loss (f16): bce_logits" in text
    assert "Use for the grad (f16): bce_logits_autodiff" in text
    assert "= optax.sigmoid_binary_cross_entropy, torch BCEWithLogitsLoss" in text.replace("\n    ", " ")
    if width == 80:  # the grid: the chain product's onsets on each side, exact float16 values
        i = lines.index(next(line for line in lines if line.startswith(" bce_naive_chain ")))
        assert lines[i].split()[1:] == ["NaN", "7.625"] and lines[i + 1].split() == ["NaN", "−11.09"]
        assert "cause (f16, y = 0, z = 7.625): div → inf at sigmoid.py:44" in lines[i + 2]  # the run has y = 0 and 1


def test_summary_cuts_float64_at_seven_digits_and_says_so():
    assert wording.shortest(36.73680056967711, {"dtype": "float64"}) == "36.73680…"
    assert wording.shortest(-708.3964185322642, {"dtype": "float64"}) == "−708.3964…"
    assert wording.shortest(16.635532379150390, {"dtype": "float32"}) == "16.635532"  # shortest, whole
    assert wording.shortest(-11.09375, {"dtype": "float16"}) == "−11.09"  # float16's shortest decimal
    assert "float64 ones are cut at 7 digits" in " ".join(summary.LEGEND.split())


def test_tiny_loss_is_not_a_lost_gradient(sigmoid16):
    """float16 BCELoss on probabilities (bce_torch) rounds its loss to 0 at y = 1 from
    z = 7.625 (σ rounds to 1) where the true loss, softplus(−z) ≤ e^−7.625 = 4.9e-4, is
    below float16's eps 2**-10: harmless, and ranked below the lost gradient of ŷ − y."""
    row = sigmoid16.row("bce_torch", "float16", 1.0)
    assert row["zero_exact_max"] == pytest.approx(4.8804e-4, rel=1e-3)  # softplus(−7.625)
    assert summary.grade(row) == "tiny"
    assert summary.grade(sigmoid16.row("bce_fused", "float16", 1.0)) == "lost"


def test_readme_summary_is_what_the_sweep_prints():
    """The README's summary block is the sigmoid family's summary at 80 columns, as
    `pl.sweep(family="sigmoid")` prints it now (re-run: the block is re-checked)."""
    import pathlib
    import re

    text = pathlib.Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    block = re.search(r"## The answer on one screen\n.*?```\n(sigmoid ·.*?)```", text, re.S).group(1)
    result = pl.sweep(family="sigmoid", dtypes=["float16", "bfloat16", "float32", "float64"])
    assert result.summary(80) == block
    stated = re.search(r"default formats take (\d+) lines", " ".join(text.split())).group(1)
    assert int(stated) == len(block.splitlines())  # the README's count of the block's lines


def test_a_large_error_that_is_not_flagged_says_why():
    """float64 ½σ(z)² at y = 0 is off by up to 5 ULPs at a point that is not flagged: an
    error above 4 ULPs can only be excused by a condition number above 5/4, and the cell
    says so with the row's largest κ."""
    from precision_lab.output import report

    row = pl.sweep(dtypes=["float64"], targets=[0.0], forms=["mse"]).rows[0]
    assert row["max_ulp"] > 4 and row["counts"]["inaccurate"] == 0
    kappa = max(float(k) for k in row["profile"]["kappa"] if k is not None)
    assert kappa > 1.25
    text = report.cell(row, 4.0).plain
    assert f"(not flagged: within what rounding the input forces, κ up to {kappa:.3g})" in text


def test_summary_says_whether_upcasting_fixes_a_form():
    """bfloat16 inputs computed in float32: the chain product's NaN moves out from
    z = 5.5625 to 16.75 (the first bfloat16 value above float32's onset 16.6355) but
    stays; Keras' clipped loss loses its ∞ (1 − 1e-7 no longer rounds to 1)."""
    r = pl.sweep(dtypes=["bfloat16", "bfloat16:float32"], targets=[0.0],
                 forms=["bce_naive_chain", "bce_keras", "bce_logits"])
    text = r.summary(80)
    chain = text[text.index("\n bce_naive_chain") + 1:]
    assert chain.split("\n")[0].split()[1:] == ["NaN", "5.5625", "NaN", "16.75"]
    assert "upcasting bf16→f32 helps (fewer failures, none new)" in chain.split("\n bce")[0]
    keras = text[text.index("\n bce_keras") + 1:].split("\n bce")[0]
    assert "upcasting bf16→f32 fixes it (no NaN, ∞ or lost value left)" in keras
    assert "upcasting" not in text[text.index("\n bce_logits ") + 1:]  # nothing to fix


def test_summary_says_what_the_loss_scale_did():
    """float16 jax.grad(bce_logits) at y = 0 loses nothing unscaled; scaled by 1024 its
    backward pass multiplies S into σ(z) already rounded to float16, so the 443 values
    of [−24.25, −17.34] where S·σ(z) is a non-zero float16 are 0 (the band
    tests/test_upcast.py derives by hand): the summary says the scale made it worse."""
    r = pl.sweep(dtypes=["float16"], targets=[0.0], forms=["bce_logits_autodiff"], loss_scale=1024.0)
    (a,) = r.meta["loss_scale_advice"]
    assert a["at_scale"]["lost"] == 443 and a["at_scale"]["lost_unscaled"] == 0 and a["lost"]["count"] == 0
    text = " ".join(r.summary(80).split())
    assert ("bce_logits_autodiff f16 y=0: S = 1024 is worse: 443 values lost or non-finite "
            "(0 from z ≤ −17.34), 0 unscaled; no gradient lost unscaled, no scale needed") in text


def test_the_cause_line_names_its_row_and_says_when_the_cell_is_another_rows():
    """ce_naive_chain in float16 over the offset sweep: the cell shows K = 1000's NaN onset
    (nearer 0: the sum of 1000 terms overflows first), whose vectors are too long to walk;
    the cause line is K = 10's walk, at K = 10's own onset, and says so."""
    from precision_lab.analysis.causes import CAUSE_MAX_WIDTH

    result = pl.sweep("softmax", classes=[10, 1000], dtypes=["float16"], sweeps=["offset"],
                      forms=["ce_naive_chain"], target_classes=["top"], points=1 << 12)
    by_k = {r["classes"]: r for r in result.rows}
    assert 1000 > CAUSE_MAX_WIDTH and not by_k[1000].get("cause")
    near, walked = by_k[1000]["onset"]["nan"]["pos"], by_k[10]["onset"]["nan"]["pos"]
    assert near < walked
    from precision_lab.output.wording import shortest

    text = " ".join(result.summary(200).split())
    assert f"cause (f16, K = 10, c = {shortest(walked, by_k[10])}):" in text
    assert f"the cell's c = {shortest(near, by_k[1000])} is K = 1000's, not walked" in text


def test_the_least_bad_form_names_the_sweep_its_nearest_onset_lies_on():
    """Where no form checked is free of NaN or ∞, the summary names the least bad and
    where its failures begin: the nearest onset over every row of the form, named by
    the axis of the row it lies on. bfloat16 K = 10: ce_naive is ∞ from c = 85 on the
    offset sweep (m = −85.5 on the margin sweep), as its cells show."""
    result = pl.sweep(family="softmax", dtypes=["bfloat16"], forms=["ce_naive", "ce_naive_chain"], classes=[10],
                      sweeps=["margin", "offset"])
    text = result.summary(100)
    assert "the least bad: ce_naive (from |c| ≥ 85)" in text
    assert "the least bad: ce_naive_chain (from |c| ≥ 85)" in text
    assert "∞ c85" in text and "∞ m−85.5" in text

"""The sigmoid family: kernels against references, the textbook onsets, stable forms."""

import math

import mpmath
import numpy as np
import pytest

import precision_lab as pl
from precision_lab.numerics import formats
from precision_lab.families import sigmoid

FORMS = [f.name for f in sigmoid.FAMILY.forms]


@pytest.fixture(scope="module")
def small_formats():
    """Every value of float16 and bfloat16, targets 0 and 1, every form."""
    return pl.sweep(dtypes=["float16", "bfloat16"], targets=[0.0, 1.0])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("target", [0.0, 1.0, 0.3])
def test_every_kernel_matches_its_reference_at_ordinary_points(dtype, target):
    """On |z| ≤ 4 nothing saturates: every form is close to the exact value.

    Tolerance: 16 ULPs (sigmoid and log cost a few ULPs each, and a form chains up
    to five such operations), times 1 + e^|z|, the factor by which 1 − ŷ and 1 − y
    amplify the rounding of ŷ (ŷ/(1 − ŷ) = e^z); or 16·eps absolute where the
    exact value has a root (mse and ŷ − y at ŷ = y = 0.3).
    """
    z = np.linspace(-4, 4, 161)
    ev = pl.evaluate("sigmoid", FORMS, dtype, z, target)
    eps = formats.get(dtype).eps
    budget = 16 * (1 + np.exp(np.abs(ev["x"])))
    for name in FORMS:
        comp, exact = ev["computed"][name], ev["exact"][name]
        close = np.abs(comp - exact) <= 16 * eps * np.maximum(np.abs(exact), 1.0 if target == 0.3 else 0.0)
        assert np.all((ev["ulp"][name] <= budget) | close), name


def test_references_follow_the_formulas():
    """The exact values at z = 0.5: σ = 0.6224593312018546 (mpmath), y = 0."""
    s = float(1 / (1 + mpmath.exp(-0.5)))
    ev = pl.evaluate("sigmoid", ["mse", "bce_logits", "bce_fused", "mse_chain", "dloss_dyhat", "dsigmoid_dz"],
                     "float64", [0.5], 0.0)
    ex = {k: v[0] for k, v in ev["exact"].items()}
    assert ex["mse"] == pytest.approx(0.5 * s * s, rel=1e-15)
    assert ex["bce_logits"] == pytest.approx(-math.log(1 - s), rel=1e-15)
    assert ex["bce_fused"] == pytest.approx(s, rel=1e-15)
    assert ex["mse_chain"] == pytest.approx(s * s * (1 - s), rel=1e-15)
    assert ex["dloss_dyhat"] == pytest.approx(1 / (1 - s), rel=1e-15)
    assert ex["dsigmoid_dz"] == pytest.approx(s * (1 - s), rel=1e-15)


def first_value_at_or_above(x: mpmath.mpf, fmt) -> float:
    c = fmt.cast(float(x))
    if mpmath.mpf(float(c.astype(np.float64))) < x:
        c = formats.next_value(c, fmt)
    return float(c.astype(np.float64))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_bce_naive_chain_nan_onset_is_where_one_plus_exp_rounds_to_one(dtype):
    """Derivation: XLA evaluates σ(z) as 1/(1 + exp(−z)) in the format. With p
    significand bits the floats just above 1 are 2**(1−p) apart, so 1 + exp(−z)
    rounds to exactly 1 once exp(−z) ≤ 2**−p (half that spacing; the tie goes to
    the even neighbour, 1), i.e. for z ≥ p·ln 2. Then ŷ = 1, 1 − ŷ = 0, ∂L/∂ŷ =
    (1 − y)/(1 − ŷ) = ∞ at y = 0 and σ'(z) = ŷ(1 − ŷ) = 0: ∞ × 0 = NaN. The onset
    is the first lattice value at or above p·ln 2 (7.625 in float16, 5.5625 in
    bfloat16, 16.635532… in float32, 36.736800569677…in float64).
    """
    fmt = formats.get(dtype)
    mpmath.mp.prec = 200
    expected = first_value_at_or_above(fmt.precision * mpmath.log(2), fmt)
    row = pl.sweep(dtypes=[dtype], targets=[0.0], forms=["bce_naive_chain"]).rows[0]
    onset = row["onset"]["nan"]
    assert onset["pos"] == expected
    assert onset["method"]["pos"] == ("exhaustive" if fmt.exhaustive else "refined")
    assert row["mechanism"]["pos"]["text"] == "∞ × 0"
    # the lattice value just below the onset is still computed (not NaN): the onset is exact
    below = float(formats.prev_value(fmt.cast(expected), fmt).astype(np.float64))
    ev = pl.evaluate("sigmoid", ["bce_naive_chain"], dtype, [below, expected], 0.0)
    assert list(ev["class"]["bce_naive_chain"]) == ["ok", "nan"]


def test_float16_sigmoid_underflows_early_and_the_fused_gradient_loses_the_signal(small_formats):
    """float16 σ(z) is 0 from z ≤ −11.09375 (exp(11.09) overflows 65504 inside the
    lowering) although σ(−11.09) ≈ 1.5e-5 is representable: ŷ − y at y = 0 is then
    a lost signal (class zero) until the exact value itself rounds to 0 below
    −17.33 (σ(z) < 2**−25, half the smallest subnormal)."""
    row = small_formats.row("bce_fused", "float16", 0.0)
    assert row["onset"]["zero"]["neg"] == -11.09375
    assert row["intervals"]["zero"]["listed"] == [[-17.328125, -11.09375]]
    assert row["onset"]["nan"]["neg"] is None and row["counts"]["nan"] == 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("target", [0.0, 1.0])
@pytest.mark.parametrize("form", ["bce_fused", "bce_logits", "bce_logits_autodiff"])
def test_fused_forms_never_nan_over_every_value(small_formats, dtype, target, form):
    row = small_formats.row(form, dtype, target)
    assert row["exhaustive"] and row["points"] == formats.get(dtype).lattice_size
    assert row["counts"]["nan"] == 0 and row["counts"]["inf"] == 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_naive_chain_is_nan_on_both_tails(small_formats, dtype):
    row = small_formats.row("bce_naive_chain", dtype, 0.0)
    fmt = formats.get(dtype)
    listed = row["intervals"]["nan"]["listed"]
    assert listed[0][0] == -fmt.max and listed[-1][1] == fmt.max  # NaN out to both ends of the lattice


def test_counts_add_up_to_the_lattice(small_formats):
    for row in small_formats.rows:
        c = row["counts"]
        assert sum(c[k] for k in ("ok", "inaccurate", "zero", "inf", "nan")) == row["points"]
        assert c["zero_subnormal"] <= c["zero"]


def test_keras_constants_are_reported_where_they_round_away(small_formats):
    assert "1−ε rounds to 1" in small_formats.row("bce_keras", "bfloat16", 0.0)["constants"]
    assert "ε=1e-7 = 1.19e-07 (subnormal)" in small_formats.row("bce_keras", "float16", 0.0)["constants"]
    # y = 0: ŷ clips to 1 − ε = 1, so −ln(1 − ŷ) = +∞ while the true loss is finite
    assert small_formats.row("bce_keras", "bfloat16", 0.0)["onset"]["inf"]["pos"] == 5.5625


def test_float32_is_sampled_and_refined_reproducibly():
    a = pl.sweep(dtypes=["float32"], targets=[1.0], forms=["bce_fused"], points=4096, seed=3)
    b = pl.sweep(dtypes=["float32"], targets=[1.0], forms=["bce_fused"], points=4096, seed=3)
    ra, rb = a.rows[0], b.rows[0]
    assert not ra["exhaustive"] and ra["points"] >= 4096
    assert ra["counts"] == rb["counts"] and ra["intervals"] == rb["intervals"]
    # ŷ − 1 is exactly 0 from the σ onset (1 + exp(−z) rounds to 1) until σ(−z) < 2**−150
    zero = ra["intervals"]["zero"]["listed"]
    assert zero[0][0] == 16.63553237915039
    assert zero[0][1] == pytest.approx(103.97, abs=0.01)  # −ln(2**−150) = 103.97


def test_evaluate_runs_where_it_is_told():
    """Point evaluations take a backend like the sweep (a row's mechanism is evaluated on
    the sweep's own device): the CPU computes the NaN at the float32 onset, and a
    backend that is not here is one clear error, not JAX's."""
    ev = pl.evaluate("sigmoid", ["bce_naive_chain"], "float32", [16.63553237915039], 0.0, device="cpu")
    assert list(ev["class"]["bce_naive_chain"]) == ["nan"]
    absent = next((b for b in ("tpu", "gpu") if b not in pl.api.present_backends()), None)
    if absent is None:
        pytest.skip("every backend is present")
    with pytest.raises(pl.InputError, match=f"Backend `{absent}` is not present here; available: cpu"):
        pl.evaluate("sigmoid", ["bce_fused"], "float32", [0.0], 0.0, device=absent)


def test_forward_error_buckets_are_each_points_ulp_error(small_formats):
    """Each row's forward-error buckets count its ok and inaccurate points by ULP error
    (0, 1, 2, 3, 4-16, > 16), and `excused` the ok points beyond the tolerance (4), which
    only the condition allowance passed. Re-derived from every float16 value's class and
    error (engine.points, NumPy): float16 bce_naive at y = 0 has 402 such points, where
    bce_logits is at most 1 ULP off."""
    fmt = formats.get("float16")
    xs = formats.from_ordinal(np.arange(-fmt.max_ordinal, fmt.max_ordinal + 1), fmt).astype(np.float64)
    forms = ["bce_naive", "bce_logits", "bce_fused"]
    ev = pl.evaluate("sigmoid", forms, "float16", xs, 0.0)
    for row in small_formats.rows:
        if row["dtype"] != "float16" or row["target"] != 0.0 or row["form"] not in forms:
            continue
        cls, ulp = ev["class"][row["form"]], ev["ulp"][row["form"]]
        e = np.where(np.isin(cls, ["ok", "inaccurate"]), ulp, -1)
        assert row["forward_error"] == {"0": (e == 0).sum(), "1": (e == 1).sum(), "2": (e == 2).sum(),
                                        "3": (e == 3).sum(), "4-16": ((e >= 4) & (e <= 16)).sum(),
                                        ">16": (e > 16).sum(), "excused": ((cls == "ok") & (ulp > 4)).sum()}
        if row["form"] == "bce_naive":
            assert row["forward_error"]["excused"] == 402
        if row["form"] == "bce_logits":
            assert row["max_ulp"] <= 1

"""The softmax family: references, the textbook onsets, stable forms, sums."""

import math

import jax
import jax.numpy as jnp
import ml_dtypes
import mpmath
import numpy as np
import pytest

import precision_lab as pl
from precision_lab.analysis import accumulation
from precision_lab.numerics import formats
from precision_lab.families import softmax
from precision_lab.families import softmax_vectors

LOSSES = ["ce_naive", "ce_shifted", "ce_log_softmax"]
GRADS = ["ce_fused", "ce_log_softmax_autodiff", "ce_naive_chain"]


def exact_margin(m: float, k: int, t: int):
    """mpmath at 120 bits: loss and gradient of z = (m, 0, …, 0) with true class t."""
    with mpmath.workprec(120):
        z = [mpmath.mpf(m)] + [mpmath.mpf(0)] * (k - 1)
        total = mpmath.fsum(mpmath.exp(v) for v in z)
        loss = mpmath.log(total) - z[t]
        grad = [mpmath.exp(v) / total - (1 if j == t else 0) for j, v in enumerate(z)]
        return float(loss), [float(g) for g in grad]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("target", ["top", "other"])
@pytest.mark.parametrize("m", [-30.0, -1.5, 0.0, 2.0, 25.0])
def test_margin_references_match_mpmath(dtype, target, m):
    """Both reference backends (float64 under JAX is used by the sweep for float32,
    double-double for float64) against mpmath; relative 1e-14 on every entry, the
    float64 rounding of a 1e-16-accurate value."""
    k = 10
    ev = pl.evaluate("softmax", ["ce_log_softmax", "ce_fused"], dtype, [m], target, classes=k)
    loss, grad = exact_margin(m, k, softmax.TARGET_CLASSES[target])
    assert ev["exact"]["ce_log_softmax"][0] == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(ev["exact"]["ce_fused"][0], grad, rtol=1e-14)
    # the device path (float64 under JAX) agrees with the host double-double
    fam = softmax.family(k)
    base = fam.device_base(jnp.array([m]), jnp.float64(softmax.case("margin", target)))
    assert float(base.loss[0]) == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(np.asarray(base.grad[0]), grad, rtol=1e-14)


@pytest.fixture(scope="module")
def f16_margin():
    return {k: pl.sweep("softmax", classes=[k], dtypes=["float16"], sweeps=["margin"], forms=["ce_naive"])
            for k in (10, 1000)}


def first_at_or_above(x: float, fmt) -> float:
    c = fmt.cast(x)
    if float(c.astype(np.float64)) < x:
        c = formats.next_value(c, fmt)
    return float(c.astype(np.float64))


def test_ce_naive_onsets_from_the_largest_value_and_k(f16_margin):
    """Derivation. float16's largest value is M = 65504 and its spacing there is 32, so
    a result rounds to ∞ from M + 16 = 65520 on. z = (m, 0, …, 0):
    * exp(m) overflows once e^m ≥ 65520, m ≥ ln 65520 = 11.0901: p_0 = ∞/∞ = NaN, so
      the top class's loss is NaN from the first float16 value above, 11.09375;
    * XLA sums float16 in float32 (measured in accumulation.py), so Σ = e^m + (K − 1)
      is rounded to float16 once: it overflows once e^m + K − 1 ≥ 65520. For K = 1000
      that is m ≥ ln 64521 = 11.0747, first float16 value 11.078125: there p_1 = 1/∞ = 0
      and the other class's loss −ln p_1 is ∞ (not NaN). For K = 10, ln 65511 = 11.08997
      gives 11.09375 again. (Values on this lattice are 2**-7 apart; exp is correctly
      rounded at these points, so the onsets are exact.)
    """
    fmt = formats.get("float16")
    nan_onset = first_at_or_above(math.log(65520), fmt)
    assert nan_onset == 11.09375
    for k in (10, 1000):
        rows = [r for r in f16_margin[k].rows if r["form"] == "ce_naive"]
        top, other = (next(r for r in rows if r["target_class"] == c) for c in ("top", "other"))
        assert top["onset"]["nan"]["pos"] == nan_onset
        assert other["onset"]["inf"]["pos"] == first_at_or_above(math.log(65520 - (k - 1)), fmt)
        assert other["counts"]["nan"] == 0
    assert "refined" in f16_margin[1000].rows[0]["onset"]["nan"]["method"].values()  # K = 1000 samples the lattice
    assert set(f16_margin[10].rows[0]["onset"]["nan"]["method"].values()) <= {"exhaustive", None}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_fused_forms_free_of_nan_over_the_margin_lattice(dtype):
    r = pl.sweep("softmax", classes=[10], dtypes=[dtype], sweeps=["margin"],
                 forms=["ce_log_softmax", "ce_fused", "ce_log_softmax_autodiff", "ce_naive"])
    for row in r.rows:
        assert row["exhaustive"] and row["points"] == formats.get(dtype).lattice_size
        if row["form"] != "ce_naive":
            assert row["counts"]["nan"] == 0, row["form"]
            if row["form"] == "ce_log_softmax":
                assert row["counts"]["inf"] == 0
    naive = [row for row in r.rows if row["form"] == "ce_naive"]
    assert any(row["counts"]["nan"] for row in naive)  # while the unshifted form does fail


def test_negligible_gradient_entries_are_counted_apart_and_graded_tiny():
    """A point's zeros are negligible when every entry lost to 0 is below eps × the largest
    entry of the same gradient (exact values rounded to float16) and not all of them are
    subnormal (those are flushes). Re-derived here from each point's computed and exact
    entries, with NumPy, at every float16 margin: the textbook chain product's gradient for
    the other class loses e^-m-sized entries beside entries near ±1."""
    fmt = formats.get("float16")
    row = pl.sweep("softmax", classes=[10], dtypes=["float16"], sweeps=["margin"], forms=["ce_naive_chain"],
                   target_classes=["other"]).rows[0]
    xs = formats.from_ordinal(np.arange(-fmt.max_ordinal, fmt.max_ordinal + 1), fmt).astype(np.float64)
    ev = pl.evaluate("softmax", ["ce_naive_chain"], "float16", xs, "other", classes=10)
    got, ex = ev["computed"]["ce_naive_chain"], np.abs(fmt.cast(ev["exact"]["ce_naive_chain"]).astype(np.float64))
    zero = ev["class"]["ce_naive_chain"] == "zero"  # the point's worst entry is a lost value
    lost = (got == 0) & (ex > 0)
    normal = lost & (ex >= fmt.smallest_normal)
    small = ex < fmt.eps * ex.max(axis=1, keepdims=True)
    counts = row["counts"]
    assert counts["zero"] == zero.sum() == 592
    assert counts["zero_subnormal"] == (zero & lost.any(1) & ~normal.any(1)).sum() == 458
    assert counts["zero_negligible"] == (zero & normal.any(1) & ~(normal & ~small).any(1)).sum() == 134
    from precision_lab.output.grades import grade
    assert grade({**row, "counts": {**counts, "nan": 0}}) == "tiny"  # its zeros alone: harmless


def test_offset_sweep_is_invariant_where_c_plus_one_is_exact():
    """z = c + (1, 0, …, 0): the loss does not depend on c. Where c + 1 is exact in float32
    (|c| < 2**23 with c a multiple of its spacing), the stable forms stay within the
    tolerance of the exact loss ln(e + K − 1) − 1 (top class), 4 ULPs as in the sweep."""
    c = np.array([-1000.0, -3.25, 0.0, 0.5, 7.0, 4096.0])
    ev = pl.evaluate("softmax", ["ce_log_softmax", "ce_fused"], "float32", c, "top", sweep="offset", classes=10)
    exact = math.log(math.e + 9) - 1
    np.testing.assert_allclose(ev["exact"]["ce_log_softmax"], exact, rtol=1e-15)
    assert np.all(ev["ulp"]["ce_log_softmax"] <= 4) and set(ev["class"]["ce_log_softmax"]) == {"ok"}
    assert set(ev["class"]["ce_fused"]) == {"ok"}


def test_random_sweep_is_reproducible_from_its_seed():
    spec = softmax_vectors.VectorSweep.random(10, ("top",))
    a, sa = spec.vectors(seed=7)
    b, _ = spec.vectors(seed=7)
    c, _ = spec.vectors(seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert sorted(set(sa)) == list(softmax_vectors.SCALES)
    kw = dict(classes=[10], dtypes=["bfloat16"], sweeps=["random"], forms=["ce_naive", "ce_fused"])
    r1, r2 = pl.sweep("softmax", seed=7, **kw), pl.sweep("softmax", seed=7, **kw)
    assert [r["counts"] for r in r1.rows] == [r["counts"] for r in r2.rows]
    naive = r1.rows[0]
    # scale 100 logits overflow the unshifted exp in bfloat16 (e^88.7): some vectors are NaN or ∞
    assert naive["shares_by_scale"]["100"]["nan"] + naive["shares_by_scale"]["100"]["inf"] > 0.5
    assert naive["shares_by_scale"]["1"]["nan"] == 0
    for r in r1.rows:  # the vector sweeps' forward-error buckets cover exactly the ok and inaccurate vectors
        fwd = r["forward_error"]
        assert sum(v for k, v in fwd.items() if k != "excused") == r["counts"]["ok"] + r["counts"]["inaccurate"]
        assert fwd["excused"] <= r["counts"]["ok"]


def test_in_format_accumulation_hand_case():
    """bfloat16 Σ of (1, 2**-8, 2**-8, 2**-8); the spacing above 1 is 2**-7.
    * pairwise, rounding each step: 1 + 2**-8 is a tie, to even: 1; 2**-8 + 2**-8 = 2**-7;
      then 1 + 2**-7 = 1.0078125;
    * left to right: each 1 + 2**-8 ties back to 1: 1.0;
    * a wide accumulator: 1 + 3·2**-8 = 1.01171875, a tie between 1.0078125 and 1.015625,
      to even: 1.015625 — what XLA's CPU backend computes for jnp.sum.
    """
    x = np.array([1, 2**-8, 2**-8, 2**-8], dtype=ml_dtypes.bfloat16)
    assert float(jax.jit(softmax.format_sum)(jnp.asarray(x))) == 1.0078125
    assert float(accumulation._pairwise(x[None])[0]) == 1.0078125
    assert float(accumulation._sequential(x[None])[0]) == 1.0
    assert float(formats.get("bfloat16").cast(math.fsum(x.astype(float)))) == 1.015625
    if jax.default_backend() == "cpu":
        assert float(jax.jit(jnp.sum)(jnp.asarray(x))) == 1.015625


def test_backend_accumulation_is_measured_and_recorded():
    r = pl.sweep("softmax", classes=[10], dtypes=["bfloat16"], sweeps=["random"], forms=["ce_fused"])
    acc = r.meta["accumulation"]["bfloat16"]
    assert sum(acc["matches"].values()) >= acc["trials"]  # every trial is matched by some model or more
    if jax.default_backend() == "cpu":
        assert acc["matches"]["wide accumulator, rounded once"] == acc["trials"]


def test_logits_sweep_lists_worst_vectors_by_index():
    z = np.zeros((4, 8))
    z[2, 0] = 200.0  # exp(200) overflows float32: the unshifted softmax fails on vector 2 only
    r = pl.sweep("softmax", dtypes=["float32"], forms=["ce_naive", "ce_log_softmax"], logits=z,
                 labels=np.array([0, 1, 0, 3]), sweeps=["logits"], classes=[8])
    naive = next(row for row in r.rows if row["form"] == "ce_naive")
    assert naive["sweep"] == "logits" and naive["axis"] is None and naive["target_class"] == "label"
    w = naive["worst"][0]
    assert naive["counts"]["nan"] == 1 and (w["index"], w["class"], w["ulp"], w["label"], w["margin"]) == (2, "nan", None, 0, 200.0)
    assert np.isnan(w["computed"]) and w["exact"] == pytest.approx(7 * math.exp(-200), rel=1e-15)  # log1p(7e^−200)
    stable = next(row for row in r.rows if row["form"] == "ce_log_softmax")
    assert stable["stable"] and stable["counts"]["ok"] == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(classes=[1]), "K = 1 is not a class count"),
        (dict(sweeps=["spiral"]), "Unknown sweep `spiral`"),
        (dict(target_classes=["middle"]), "Unknown target class `middle`"),
        (dict(classes=[1 << 30]), "cannot fit in memory"),
        (dict(logits=np.zeros(5)), "N × K array"),
        (dict(logits=np.zeros((3, 4)), labels=np.array([0, 1, 4])), "A label is outside 0..3"),
        (dict(logits=np.zeros((3, 4)), labels=np.array([0, 1])), "must be N = 3 class indices"),
        (dict(logits=np.full((2, 3), np.nan)), "NaN or infinite"),
    ],
)
def test_bad_softmax_input(kwargs, message):
    with pytest.raises(pl.InputError, match=message):
        pl.sweep("softmax", dtypes=["float32"], **kwargs)


def test_naive_chain_names_its_infinity_times_zero():
    """float32, top class, on the CPU: past m = 87.34 the other classes' p_j = e^−m/Σ are
    subnormal and flushed, and at the negative onset p_0 itself is 0: ∂L/∂p_t = −1/p_t =
    −∞ meets a Jacobian entry of 0, and the product is NaN. (A GPU keeps the subnormals,
    and its first positive NaN is at m = 88.72, where e^m overflows: NaN × NaN.)"""
    r = pl.sweep("softmax", classes=[10], dtypes=["float32"], sweeps=["margin"], forms=["ce_naive_chain"],
                 target_classes=["top"], device="cpu")
    mech = r.rows[0]["mechanism"]
    assert mech["neg"]["text"] == "−∞ × 0" and mech["neg"]["z"] == r.rows[0]["onset"]["nan"]["neg"]
    assert mech["pos"]["text"] == "−∞ × 0"

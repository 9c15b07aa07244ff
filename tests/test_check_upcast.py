"""`check` of a user's loss computed in a wider format (bfloat16:float32) and with a loss
scale: every figure re-derived here from the function jitted as a user would, against
exact values from mpmath (and float64 where only finiteness is asked)."""

import sys

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import precision_lab as pl
from precision_lab import cli
from precision_lab.numerics import formats

USER = "tests/user/losses.py"
BF16, F16, F32 = (formats.get(n) for n in ("bfloat16", "float16", "float32"))
sys.path.insert(0, "tests/user")
import losses  # noqa: E402  the users' functions themselves, called directly


def _lattice(fmt, lo, hi):
    x = formats.lattice(fmt)
    return x[(x.astype(np.float64) >= lo) & (x.astype(np.float64) <= hi)]


def _nearest_zero(x, mask):
    """The masked lattice values nearest zero on each side (None: none)."""
    x = x.astype(np.float64)
    neg, pos = x[mask & (x < 0)], x[mask & (x >= 0)]
    return [float(neg.max()) if len(neg) else None, float(pos.min()) if len(pos) else None]


def _softplus_f32_nonzero(z) -> bool:
    """Whether the exact naive BCE at y = 0, softplus(z) = log(1 + e**z), rounds to a non-zero
    float32: above half the smallest subnormal (2**-150; a tie would go to even 0)."""
    with mpmath.workdps(60):
        return mpmath.log1p(mpmath.exp(mpmath.mpf(float(z)))) > mpmath.mpf(2) ** -150


def test_naive_bce_in_bfloat16_computed_in_float32_against_a_direct_evaluation():
    # the user's function as a user jits it: bfloat16 logits cast to float32 first
    lo, hi = -100.0, 100.0
    result = pl.check(f"{USER}:naive_bce", dtypes=["bfloat16:float32"], targets=[0.0], value_range=(lo, hi))
    loss = result.row("naive_bce", "bfloat16:float32", 0.0, quantity="loss")
    grad = result.row("naive_bce", "bfloat16:float32", 0.0, quantity="grad")
    assert (loss["dtype"], loss["compute_dtype"], loss["value_dtype"]) == ("bfloat16", "float32", "float32")
    assert (grad["dtype"], grad["compute_dtype"], grad["value_dtype"]) == ("bfloat16", "float32", "bfloat16")
    assert loss["loss_scale"] is None and "computed in float32 from bfloat16" in loss["judged"]
    z = _lattice(BF16, lo, hi)
    assert loss["exhaustive"] and loss["points"] == len(z)
    y = jnp.float32(0.0)
    computed = np.asarray(jax.jit(jax.vmap(lambda v: losses.naive_bce(v.astype(jnp.float32), y)))(z))
    assert computed.dtype == np.float32
    # the exact loss, softplus(z), is finite (below 101) everywhere here: every computed NaN
    # and ∞ is a point of that class, and the row's onsets are the ones nearest zero
    exact64 = np.logaddexp(0.0, z.astype(np.float64))
    assert np.all(np.isfinite(exact64)) and exact64.max() < 101
    for cls, mask in (("nan", np.isnan(computed)), ("inf", np.isinf(computed))):
        assert mask.any(), cls  # both happen: log(0) of 1 − σ(z) rounded to 1, and 0 · log(0) below
        assert loss["counts"][cls] == int(mask.sum()), cls
        assert [loss["onset"][cls]["neg"], loss["onset"][cls]["pos"]] == _nearest_zero(z, mask), cls
    assert loss["onset"]["inf"]["pos"] == 16.75  # 1 − σ(z) is 0 in float32 from σ(z) > 1 − 2**-25
    # computed 0 where the exact loss rounds to a non-zero float32 (mpmath decides each one)
    zeros = z[computed == 0]
    lost = [v for v in zeros if _softplus_f32_nonzero(v)]
    assert loss["counts"]["zero"] == len(lost) > 0
    # the gradient, jax.grad through the cast with respect to the bfloat16 logits, is bfloat16
    g = np.asarray(jax.jit(jax.vmap(jax.grad(lambda v: losses.naive_bce(v.astype(jnp.float32), y))))(z))
    assert g.dtype == BF16.dtype
    assert grad["counts"]["nan"] == int(np.isnan(g).sum()) > 0  # the exact gradient σ(z) is finite
    assert [grad["onset"]["nan"]["neg"], grad["onset"]["nan"]["pos"]] == _nearest_zero(z, np.isnan(g))
    # the walk describes the program that ran (the cast, then float32 operations), and the
    # rewrite it proposes is swept computed in float32 too
    assert loss["cause"]["inf"]["pos"]["first_nonfinite"]["primitive"] == "log"
    fixed = result.row("naive_bce+fix", "bfloat16:float32", 0.0, quantity="loss")
    assert fixed["compute_dtype"] == "float32" and fixed["counts"]["inf"] == fixed["counts"]["nan"] == 0


def test_multiclass_loss_computed_in_float32():
    lo, hi = -100.0, 100.0
    result = pl.check(f"{USER}:ce_naive", dtypes=["bfloat16:float32"], classes=[4], sweeps=["margin"],
                      target_classes=["top"], value_range=(lo, hi))
    loss = result.row("ce_naive", "bfloat16:float32", quantity="loss")
    grad = result.row("ce_naive", "bfloat16:float32", quantity="grad")
    assert loss["value_dtype"] == "float32" and grad["value_dtype"] == "bfloat16" and grad["classes"] == 4
    m = _lattice(BF16, lo, hi)
    vectors = jnp.zeros((len(m), 4), BF16.dtype).at[:, 0].set(m)  # z = (m, 0, 0, 0), the true class on top
    label = jnp.int32(0)
    computed = np.asarray(jax.jit(jax.vmap(lambda v: losses.ce_naive(v.astype(jnp.float32), label)))(vectors))
    assert computed.dtype == np.float32
    # the exact loss, log(1 + 3·e**−m), is finite here: e**m overflowing float32 (m ≥ 88.75) gives ∞/∞
    for cls, mask in (("nan", np.isnan(computed)), ("inf", np.isinf(computed))):
        assert [loss["onset"][cls]["neg"], loss["onset"][cls]["pos"]] == _nearest_zero(m, mask), cls
    g = np.asarray(jax.jit(jax.vmap(jax.grad(lambda v: losses.ce_naive(v.astype(jnp.float32), label))))(vectors))
    assert g.dtype == BF16.dtype
    assert grad["counts"]["nan"] == int(np.isnan(g).any(axis=1).sum())


def test_scaled_gradient_of_a_stable_bce_in_float16_against_a_hand_derivation():
    # jax.grad(S · stable_bce) at y = 0, z < 0: the backward pass of log1p(exp(−|z|)) multiplies
    # the cotangent S/(1 + e**z) into e**z already rounded to float16, which is 0 where
    # e**z < 2**-25 (half the smallest subnormal). Where the exact S·σ(z) still rounds to a
    # non-zero float16 (S·σ(z) > 2**-25), the scaled gradient is lost: the row's zero band.
    S, lo, hi = 1024.0, -30.0, -10.0
    result = pl.check(f"{USER}:stable_bce", dtypes=["float16"], targets=[0.0], value_range=(lo, hi), loss_scale=S)
    loss = result.row("stable_bce", "float16", 0.0, quantity="loss")
    grad = result.row("stable_bce", "float16", 0.0, quantity="grad")
    assert loss["loss_scale"] is None and loss["counts"]["ok"] == loss["points"]  # the loss is not scaled
    assert grad["loss_scale"] == S and "S·∂L/∂z" in grad["judged"] and grad["value_dtype"] == "float16"
    assert result.meta["loss_scale"] == S
    z = _lattice(F16, lo, hi).astype(np.float64)
    half = mpmath.mpf(2) ** -25
    with mpmath.workdps(50):
        band = [v for v in z if mpmath.exp(mpmath.mpf(v)) < half
                and S / (1 + mpmath.exp(-mpmath.mpf(v))) > half]
    assert band and grad["intervals"]["zero"]["listed"] == [[band[0], band[-1]]]
    assert grad["counts"]["zero"] == len(band)
    # unscaled, the same function loses nothing here: σ(z) rounds to 0 where e**z does
    plain = pl.check(f"{USER}:stable_bce", dtypes=["float16"], targets=[0.0], value_range=(lo, hi))
    assert plain.row("stable_bce", "float16", 0.0, quantity="grad")["counts"]["zero"] == 0


@pytest.mark.parametrize("args, why", [
    (["--dtypes", "bfloat16:float16"], "does not hold every bfloat16 value"),
    (["--dtypes", "float32:bfloat16"], "does not hold every float32 value"),
    (["--dtypes", "float16", "--loss-scale", "3"], "power of two"),
    (["--dtypes", "bfloat16", "--loss-scale", "0"], "power of two"),
    (["--dtypes", "float16", "--loss-scale", "65536"], "∞ in float16"),
])
def test_check_refuses_bad_pairs_and_scales_in_one_sentence(args, why, capsys):
    """In this process (a traceback would fail the test): exit 2 and one sentence."""
    code = cli.main(["check", f"{USER}:stable_bce", "--targets", "0", "--range", "-1,1", "--quiet", "--fail-on", "nan",
                     *args])
    err = capsys.readouterr().err
    assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err

"""Upcasting (INPUT:COMPUTE) and loss scaling: rows judged in the format their values
are in, against references derived by hand and with mpmath."""


import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import precision_lab as pl
from precision_lab import api, cli
from precision_lab.numerics import formats
from precision_lab.families import sigmoid, derive as upcast
from precision_lab.numerics.classify import CLASSES, classify, per_point
from precision_lab.engine.points import host_reference, kernel_outputs

BF16 = formats.get("bfloat16")
ALL_BF16 = np.arange(-BF16.max_ordinal, BF16.max_ordinal + 1, dtype=np.int64)


@pytest.mark.parametrize("name", ["bce_logits_autodiff", "bce_naive_autodiff"])
def test_gradient_through_the_cast_is_the_float32_gradient_cast_back(name):
    # jax.grad with respect to bfloat16 logits of loss(z.astype(float32)): every bfloat16
    # value, bit for bit (NaN where NaN), against the wrapper the sweep runs
    loss = sigmoid.FAMILY.form(name).loss
    y = jnp.bfloat16(0.0)
    z = formats.from_ordinal(ALL_BF16, BF16)
    by_user = np.asarray(jax.jit(jax.vmap(jax.grad(lambda v, t: loss(v.astype(jnp.float32), t.astype(jnp.float32))),
                                          (0, None)))(z, y))
    derived = upcast.derive(sigmoid.FAMILY, formats.precision("bfloat16:float32"), None)[0]
    ours = kernel_outputs(derived, [derived.form(name)], BF16, ALL_BF16, 0.0, jax.devices()[0])[0]
    assert by_user.dtype == ours.dtype == BF16.dtype
    assert np.array_equal(by_user.view(np.uint16), ours.view(np.uint16))


def test_upcast_rows_are_judged_in_the_format_of_their_values():
    result = pl.sweep(family="sigmoid", dtypes=["bfloat16:float32"], targets=[0.0],
                      forms=["bce_naive", "bce_naive_autodiff"])
    loss, grad = result.row("bce_naive", "bfloat16:float32"), result.row("bce_naive_autodiff", "bfloat16:float32")
    assert (loss["dtype"], loss["compute_dtype"], loss["value_dtype"]) == ("bfloat16", "float32", "float32")
    assert (grad["dtype"], grad["compute_dtype"], grad["value_dtype"]) == ("bfloat16", "float32", "bfloat16")
    assert loss["exhaustive"] and loss["points"] == BF16.lattice_size
    # every point again, on the host: the float32 kernel on the bfloat16 lattice, its values
    # classified in float32 (loss) and bfloat16 (gradient) against the double-double reference
    x = formats.from_ordinal(ALL_BF16, BF16).astype(np.float64)
    dev = jax.devices()[0]
    for row, fmt in ((loss, formats.get("float32")), (grad, BF16)):
        form = sigmoid.FAMILY.form(row["form"])
        out = np.asarray(jax.jit(jax.vmap(lambda v: upcast.upcast_kernel(form.kernel, jnp.float32,
                                                                          form.quantity == "grad")(v, jnp.bfloat16(0))))(
            jax.device_put(formats.from_ordinal(ALL_BF16, BF16), dev)))
        assert out.dtype == fmt.dtype
        exact, sens = host_reference(sigmoid.FAMILY, [form], x, 0.0)[0]
        code, _, _, _ = per_point(*classify(out, exact, sens, fmt, 4.0, np, "condition"), (), fmt)
        assert {c: int((code == k).sum()) for k, c in enumerate(CLASSES)} == {
            c: row["counts"][c] for c in CLASSES}
    # computing in float32 leaves log(0) at the same logits but moves the gradient's NaN out
    plain = pl.sweep(family="sigmoid", dtypes=["bfloat16"], targets=[0.0], forms=["bce_naive_autodiff"])
    assert plain.rows[0]["onset"]["nan"]["pos"] == 5.5625  # 1 − σ(z) rounds to 0 in bfloat16
    assert grad["onset"]["nan"]["pos"] == 16.75  # ... and in float32: σ(16.75) > 1 − 2**-25
    fixes = api.upcast_fixes(plain.rows + [grad])
    assert [(f["form"], f["verdict"]) for f in fixes] == [("bce_naive_autodiff", "partly")]


def test_float8_inputs_computed_in_float32():
    result = pl.sweep(family="sigmoid", dtypes=["float8_e4m3fn:float32"], targets=[1.0], forms=["bce_logits"])
    row = result.rows[0]
    assert row["points"] == formats.get("float8_e4m3fn").lattice_size and row["value_dtype"] == "float32"
    # softplus(−z) ≈ e**−z is a float32 subnormal (2**-149 to 2**-126, z in (87.3, 103.3)) only at the
    # e4m3 values 88 and 96 (spacing 8 there): flushed to 0 on this backend, or kept; all else is ok
    flushed = jnp.float32(2.0 ** -127) * jnp.float32(1) == 0
    assert row["counts"]["zero"] == row["counts"]["zero_subnormal"] == (2 if flushed else 0)
    if flushed:
        assert row["intervals"]["zero"]["listed"] == [[88.0, 96.0]]
    assert row["counts"]["ok"] == row["points"] - row["counts"]["zero"] and row["max_ulp"] <= 4


@pytest.mark.parametrize("spec", ["bfloat16:float16", "float32:bfloat16", "float16:float8_e5m2"])
def test_narrower_compute_format_is_refused(spec):
    with pytest.raises(pl.errors.InputError, match="at least as wide"):
        formats.precision(spec)


def test_loss_scale_must_be_a_power_of_two_on_the_command_line(capsys):
    for bad, why in (("3", "power of two"), ("65536", "∞ in float16")):
        code = cli.main(["sweep", "--family", "sigmoid", "--dtypes", "float16", "--loss-scale", bad])
        err = capsys.readouterr().err
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err


def _first_above(values, fn, threshold):
    """The lattice values (sorted) whose exact fn exceeds threshold, by mpmath."""
    return [v for v in values if fn(mpmath.mpf(float(v))) > threshold]


def test_scaled_gradient_row_against_a_hand_derivation():
    # float16 jax.grad(bce_logits) at y = 0 is σ(z): in float16 σ(z) rounds to 0 where
    # σ(z) ≤ 2**-25 (half the smallest subnormal, a tie going to even 0). Scaled by S,
    # the backward pass multiplies the cotangent S into σ(z) already rounded, so where
    # σ(z) is 0 and S·σ(z) > 2**-25 the scaled gradient is lost: the row's zero band.
    S = 1024.0
    result = pl.sweep(family="sigmoid", dtypes=["float16"], targets=[0.0], forms=["bce_logits_autodiff", "bce_fused"],
                      loss_scale=S)
    row, fused = result.row("bce_logits_autodiff", "float16"), result.row("bce_fused", "float16")
    assert row["loss_scale"] == S and "S·∂L/∂z" in row["judged"] and row["value_dtype"] == "float16"
    assert fused["loss_scale"] is None and fused["judged"] == upcast.UNSCALED
    f16 = formats.get("float16")
    neg = formats.lattice(f16).astype(np.float64)
    neg = neg[(neg < -15) & (neg > -30)]
    sig = lambda z: 1 / (1 + mpmath.exp(-z))  # noqa: E731
    with mpmath.workdps(50):
        rounds_to_zero = [v for v in neg if sig(mpmath.mpf(float(v))) <= mpmath.mpf(2) ** -25]
        scaled_nonzero = _first_above(neg, lambda z: S * sig(z), mpmath.mpf(2) ** -25)
    band = sorted(set(rounds_to_zero) & set(scaled_nonzero))
    assert row["intervals"]["zero"]["listed"] == [[band[0], band[-1]]]
    assert row["counts"]["zero"] == len(band)


def test_loss_scale_advice_against_a_hand_derivation():
    # bfloat16 logits, loss in float32, y = 0: the gradient σ(z) is lost where float32
    # holds it only as a subnormal (< 2**-126), flushed on the way to bfloat16, though it
    # rounds to a non-zero bfloat16 value (> 2**-134). No scale keeps it: jax.grad of
    # logaddexp multiplies the cotangent S into exp(z − softplus(z)) ≈ σ(z), saved from
    # the forward pass, where float32 has already flushed it, and S · 0 = 0. The larger
    # S, the more of the values beyond the band have an S·σ(z) that bfloat16 holds and a
    # computed 0: `lost_anywhere` grows with S.
    a = api.loss_scale_advice(dtype="bfloat16:float32", target=0.0, form="bce_logits_autodiff")
    x = formats.lattice(BF16).astype(np.float64)
    x = x[(x < -80) & (x > -100)]
    with mpmath.workdps(50):
        sig = [1 / (1 + mpmath.exp(-mpmath.mpf(float(v)))) for v in x]
        lost = [v for v, s in zip(x, sig) if mpmath.mpf(2) ** -134 < s < mpmath.mpf(2) ** -126]
    flushes = jnp.float32(2.0 ** -127) * jnp.float32(1) == 0  # the band assumes this platform's flush
    if not flushes:
        pytest.skip("this backend keeps float32 subnormals; the band derived here assumes it flushes them")
    assert a["lost"] == {"count": len(lost), "bands": [[min(lost), max(lost)]]} and len(lost) == 11
    assert a["scale"] is None  # no power of two up to float32's largest keeps them
    assert all(b["still_lost"] == len(lost) for b in a["by_scale"]) and len(a["by_scale"]) == 128
    anywhere = [b["lost_anywhere"] for b in a["by_scale"]]
    assert anywhere[0] == len(lost) and anywhere == sorted(anywhere) and anywhere[8] == 22  # S = 256
    assert a["overflow"] is None

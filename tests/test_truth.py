"""A row's figures are what a user's own jitted kernel computes and what the mathematics
says: independent of what else is swept, judged against the input's conditioning only,
with onsets that claim no more than was evaluated."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import precision_lab as pl
from precision_lab.numerics import classify, formats, sampling
from precision_lab.engine import passes
from precision_lab.engine.modes import STRICT_FLAG

CPU = jax.devices("cpu")[0]
SOFTMAX_BF16 = dict(classes=[10], sweeps=["margin"], target_classes=["top"], dtypes=["bfloat16"])


def test_a_row_is_the_same_swept_alone_or_with_every_form():
    """Each form runs in a program of its own, so the bfloat16 ce_fused row (K = 10,
    margin, top class) cannot depend on the other forms. When all forms shared one
    program, XLA's fusion made this row's first 0 at m = 8.4375 with every form and
    18.25 alone."""
    alone = pl.sweep("softmax", forms=["ce_fused"], **SOFTMAX_BF16).rows[0]
    together = [r for r in pl.sweep("softmax", **SOFTMAX_BF16).rows
                if r["form"] == "ce_fused" and r["sweep"] == "margin"][0]
    for key in ("counts", "max_ulp", "onset", "intervals", "profile"):
        assert alone[key] == together[key], key


def test_sweep_and_evaluate_agree_at_an_onset_and_its_neighbour():
    """`pl.evaluate` calls the kernel exactly as the sweep does (the same program at the
    same batch size), so at a refined boundary of the float32 ce_fused row (top class,
    where the gradient's entry 0, p_0 − 1, rounds to 0) the point is zero and its
    neighbour nearer zero is not."""
    row = pl.sweep("softmax", forms=["ce_fused"], classes=[10], sweeps=["margin"], target_classes=["top"],
                   dtypes=["float32"]).rows[0]
    onset = row["onset"]["zero"]
    assert onset["method"]["pos"] == "refined"
    fmt = formats.get("float32")
    m = onset["pos"]
    below = float(formats.prev_value(fmt.cast(m), fmt))
    ev = pl.evaluate("softmax", ["ce_fused"], "float32", [below, m], "top")
    assert list(ev["class"]["ce_fused"]) != ["zero", "zero"] and ev["class"]["ce_fused"][1] == "zero"


def test_kernel_results_do_not_depend_on_the_number_of_points_asked_for():
    """A short call repeats its last point up to the batch size: one point, or the same
    point among 300 others, computes the same bits. (Jitted on 4096 or more vectors, XLA
    fuses Σexp into the exponentials of bfloat16 ce_shifted and adds them unrounded:
    −0 becomes 0.00390625 at m = 8.375. The batch is fixed, so that is one answer.)"""
    alone = pl.kernel_values("softmax", ["ce_shifted"], "bfloat16", [8.375], "top")[0]
    among = pl.kernel_values("softmax", ["ce_shifted"], "bfloat16", np.linspace(-20, 20, 301).tolist() + [8.375],
                             "top")[0]
    assert alone.view(np.uint16)[0] == among.view(np.uint16)[-1]


def test_bce_fused_is_inaccurate_in_its_tail_and_the_stable_autodiff_is_not():
    """Float32, y = 1, z = 16: the exact gradient σ(z) − 1 = −σ(−z) = −1.1253517e-7, and
    κ = |z σ'(z)/(σ(z) − 1)| = zσ(z) ≈ 16, so the input's rounding excuses about
    4 · 16/2 = 32 ULPs (at most 64). ŷ − y computes −1.1920929e-7 (σ rounds to
    1 − 2**-23): 6% off, about 939000 ULPs, inaccurate. jax.grad of the loss on the
    logit computes −σ(−z) directly, within a few ULPs: ok."""
    ev = pl.evaluate("sigmoid", ["bce_fused", "bce_logits_autodiff"], "float32", [16.0], 1.0)
    assert ev["computed"]["bce_fused"][0] == np.float32(-1.1920929e-7)
    assert abs(ev["exact"]["bce_fused"][0] + 1.1253517e-7) < 1e-14
    assert 15 < ev["kappa"]["bce_fused"][0] < 17
    assert ev["ulp"]["bce_fused"][0] > 900_000 and ev["class"]["bce_fused"][0] == "inaccurate"
    assert ev["ulp"]["bce_logits_autodiff"][0] <= 4 and ev["class"]["bce_logits_autodiff"][0] == "ok"


def test_float64_naive_chain_tail_is_inaccurate():
    """float64 ce_naive_chain, top class, K = 10, m = 45: entry 0 of the gradient is
    p_0 − 1 = −9·e^−45/(1 + 9e^−45) ≈ −2.6e-19, well conditioned (κ ≈ m = 45), but the
    chain computes (−1/p_0)·p_0(1 − p_0) with 1 − p_0 formed after p_0 rounded near 1:
    about −1e-17 or 0, never within the allowance. Under the old scale-based floor this
    was `ok`."""
    ev = pl.evaluate("softmax", ["ce_naive_chain"], "float64", [45.0], "top")
    assert ev["class"]["ce_naive_chain"][0] in ("inaccurate", "zero")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
       st.floats(min_value=1e-300, max_value=1e300), st.floats(min_value=0.0, max_value=1.0))
def test_where_the_condition_is_at_most_one_the_allowance_is_the_tolerance(dtype, value, kappa):
    """Where κ ≤ 1 (sensitivity ≤ |f|), u·S < ulp(f), so the limit is exactly `tolerance`
    ULPs (the old eps·|f| floor made it up to twice that)."""
    fmt = formats.get(dtype)
    exact = np.clip(np.float64(value), fmt.smallest_normal, fmt.max / 2)
    o_e = formats.round_to_ordinal(np.array([exact]), fmt)
    limit = classify.ulp_threshold(o_e, np.array([kappa * exact]), fmt, 4.0, np)
    assert limit[0] == 4.0


def test_condition_floor_excuses_cancellation_at_a_root():
    """ŷ − y at y = 0.1 near z = ln(1/9), where σ(z) = 0.1: f → 0 while f' = σ' ≈ 0.09,
    so κ is huge and the cancellation the input's rounding forces is excused (a computed
    0 too, where the exact value is normal); with floor `none` the same points are
    inaccurate or lost."""
    z = np.log(1 / 9) + np.linspace(-2e-6, 2e-6, 41)  # float32: the exact values stay normal
    cond = pl.evaluate("sigmoid", ["bce_fused"], "float32", z, 0.1)
    pure = pl.evaluate("sigmoid", ["bce_fused"], "float32", z, 0.1, floor="none")
    assert (cond["class"]["bce_fused"] == "ok").all()
    assert np.isin(pure["class"]["bce_fused"], ["inaccurate", "zero"]).sum() > 10
    assert cond["kappa"]["bce_fused"].max() > 100


def _bf16_sampled(form_names, target):
    fam = pl.FAMILIES["sigmoid"]
    fmt = formats.get("bfloat16")
    forms = [fam.form(n) for n in form_names]
    full = passes.run_target(fam, forms, sampling.Axis(fmt), target, 4.0, CPU)
    sampled = passes.run_target(fam, forms, sampling.Axis(fmt, 2048, 0, exhaustive=False), target, 4.0, CPU)
    return fam, fmt, forms, full, sampled


def test_sporadic_onsets_are_sampled_and_scanning_makes_them_exact():
    """On a sampled bfloat16 axis (2049 points), bce_torch's inexact points (y = 1) come
    in several runs below zero: the onset there is reported as the sampled failure
    nearest zero (method `sampled`), never as a refined boundary. Scanning every value between zero and it gives the exhaustive
    sweep's onset exactly, for every class, on both sides."""
    fam, fmt, forms, full, sampled = _bf16_sampled(["bce_torch", "bce_naive_chain"], 1.0)
    for i, form in enumerate(forms):
        exact = passes.onsets_and_intervals(full, i)[0]
        coarse = passes.onsets_and_intervals(sampled, i)[0]
        for cls, o in coarse.items():
            for side in ("neg", "pos"):
                if o["method"][side] == "sampled" and o[side] is not None and exact[cls][side] is not None:
                    assert abs(o[side]) >= abs(exact[cls][side])  # a real failure, maybe not the first
        scanned = passes.scan_onsets(fam, form, fmt, 1.0, coarse, 4.0, CPU)
        for cls in exact:
            for side in ("neg", "pos"):
                if coarse[cls][side] is not None:
                    assert scanned[cls][side] == exact[cls][side], (form.name, cls, side)
                    assert scanned[cls]["method"][side] == "scanned"
    inexact = passes.onsets_and_intervals(sampled, 0)[0]["inaccurate"]
    assert inexact["method"]["neg"] == "sampled"


def test_eager_mode_shows_what_xla_rewrote():
    """float32 bce_naive_chain at y = 0, z = −87.34375: σ(z) ≈ 1.17e-38 is flushed to 0
    op by op, so −y/ŷ is 0/0 and the eager result is NaN; the jitted program rewrites
    −y/σ(z) as −y·(1 + exp(−z)), which stays finite, and returns 0."""
    jit, = pl.kernel_values("sigmoid", ["bce_naive_chain"], "float32", [-87.34375], 0.0)
    eager, = pl.kernel_values("sigmoid", ["bce_naive_chain"], "float32", [-87.34375], 0.0, mode="eager")
    assert jit[0] == 0 and np.isnan(eager[0])
    differ = pl.compare_modes("sigmoid", dtypes=["float32"], targets=[0.0], forms=["bce_naive_chain"])[0]
    assert differ["differ"] > 0 and differ["example"]["jit"] == 0.0 and np.isnan(differ["example"]["eager"])


def test_strict_mode_runs_in_a_process_of_its_own():
    """XLA reads --xla_allow_excess_precision once, at start: the API refuses strict in a
    process without it, and the command line re-runs itself with the flag set."""
    if STRICT_FLAG not in os.environ.get("XLA_FLAGS", ""):
        with pytest.raises(pl.InputError, match="XLA_FLAGS"):
            pl.sweep("sigmoid", dtypes=["bfloat16"], targets=[1.0], forms=["bce_fused"], mode="strict")
    out = subprocess.run([sys.executable, "-m", "precision_lab", "sweep", "--family", "sigmoid", "--targets", "1",
                          "--dtypes", "bfloat16", "--forms", "bce_fused", "--mode", "strict", "--json", "-"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    doc = json.loads(out.stdout)
    assert STRICT_FLAG in doc["meta"]["xla_flags"] and doc["rows"][0]["mode"] == "strict"


def test_rows_name_the_operation_at_each_nan_onset():
    """float32 bce_naive_chain, y = 0: below −87.33655 σ(z) is a subnormal that XLA's
    CPU flushes to 0, so op by op −y/ŷ is 0/0 (a div NaN); the row's cause at its
    negative NaN onset names the flushed logistic and the division, from the walk, and
    at the positive onset (ŷ rounds to 1) the division by 1 − ŷ = 0."""
    row = pl.sweep("sigmoid", dtypes=["float32"], targets=[0.0], forms=["bce_naive_chain"]).rows[0]
    neg, pos = row["cause"]["nan"]["neg"], row["cause"]["nan"]["pos"]
    assert neg["z"] == row["onset"]["nan"]["neg"] == -88.72283935546875
    assert neg["first_nonfinite"]["primitive"] == "div" and "dloss_dyhat" in neg["first_nonfinite"]["source"]
    assert [f["primitive"] for f in neg["flushes"]][:1] == ["logistic"]
    assert pos["first_nonfinite"]["primitive"] == "div" and pos["first_nonfinite"]["computed"] == "inf"


def test_every_figure_is_strict_json():
    """Profiles carry κ, which is ∞ where the exact value is 0 and its sensitivity is not
    (bfloat16 mse at y = 1: far in the tail ½σ(−z)² underflows in float64 before
    |z|·σ(−z)²σ(z) does): the document must still be strict JSON (∞ as a string)."""
    import json

    doc = pl.sweep("sigmoid", dtypes=["bfloat16"], targets=[1.0], forms=["mse"]).to_json()
    kappa = doc["rows"][0]["profile"]["kappa"]
    assert "inf" in kappa and json.loads(json.dumps(doc, allow_nan=False)) == doc

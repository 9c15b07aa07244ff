"""The logits sweep on arrays as people keep them: bfloat16 and float8 .npy files,
.npz members, soft (label-smoothed or one-hot) labels, and what it says of its worst
vectors."""

import json
import re
import zipfile

import ml_dtypes
import mpmath
import numpy as np
import pytest

import precision_lab as pl
from precision_lab.engine import arrays
from precision_lab.families import softmax_vectors, vector_reference
from precision_lab.numerics import formats
from precision_lab.cli import main

# vectors with an exp that underflows (−200, −120) and ordinary ones; K = 5
Z = np.array([[0.0, 0, 0, 0, 0], [0, -200, 0, 0, 0], [0, -120, -30, 5, 1], [3, 2, 1, 0, -1]])
T = np.array([0, 0, 3, 2])


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- reading arrays

@pytest.mark.parametrize("name, fmt", [("bfloat16", None), ("float8_e5m2", None), ("float8_e4m3fn", "float8_e4m3fn")])
def test_npy_of_a_low_precision_format_reads_back_bit_for_bit(tmp_path, name, fmt):
    dtype = np.dtype(getattr(ml_dtypes, name))
    bits = np.arange(256, dtype=np.uint8 if dtype.itemsize == 1 else np.uint16)
    if dtype.itemsize == 2:
        bits = np.arange(0, 65536, 97, dtype=np.uint16)
    a = bits.view(dtype).reshape(-1, 1)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "a.npz", only=a)
    for spec in (tmp_path / "a.npy", tmp_path / "a.npz", f"{tmp_path / 'a.npz'}:only"):
        back = arrays.load(str(spec), "--logits", fmt)
        assert back.dtype == dtype and back.shape == a.shape
        assert np.array_equal(back.view(bits.dtype), a.view(bits.dtype))  # every bit pattern, NaNs included


def test_raw_one_byte_values_need_their_format_named(tmp_path, capsys):
    np.save(tmp_path / "z.npy", np.zeros((2, 3), ml_dtypes.float8_e4m3fn))
    with pytest.raises(pl.InputError, match="raw 1-byte values .* name the format with --logits-dtype"):
        arrays.load(str(tmp_path / "z.npy"), "--logits")
    code, _, err = run(["sweep", "--logits", str(tmp_path / "z.npy")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--logits-dtype" in err
    np.save(tmp_path / "f.npy", np.zeros((2, 3), np.float32))
    code, _, err = run(["sweep", "--logits", str(tmp_path / "f.npy"), "--logits-dtype", "bfloat16"], capsys)
    assert code == 2 and "holds float32 values, not raw values of bfloat16" in err


def test_npz_member_is_chosen_by_name(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", logits=Z, targets=T)
    assert np.array_equal(arrays.load(f"{tmp_path / 'd.npz'}:targets", "--labels"), T)
    for spec, message in [(str(tmp_path / "d.npz"), "holds 2 arrays (logits, targets); name one as"),
                          (f"{tmp_path / 'd.npz'}:probs", "has no array `probs`; its arrays are logits, targets")]:
        code, _, err = run(["sweep", "--logits", spec], capsys)
        assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    code, out, _ = run(["sweep", "--logits", f"{tmp_path / 'd.npz'}:logits", "--labels", f"{tmp_path / 'd.npz'}:targets",
                        "--dtypes", "float32", "--forms", "ce_naive", "--json", "-"], capsys)
    row = json.loads(out)["rows"][0]
    assert code == 0 and row["target_class"] == "label" and row["points"] == 4


def test_torch_and_safetensors_files_get_a_sentence(tmp_path, capsys):
    for ext in ("pt", "safetensors"):
        (tmp_path / f"z.{ext}").write_bytes(b"\0" * 8)
        code, _, err = run(["sweep", "--logits", str(tmp_path / f"z.{ext}")], capsys)
        assert code == 2 and f".{ext} files are not read" in err and "numpy.save" in err


def test_a_zip_that_is_not_npz_is_not_numbers(tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("a.npy", b"not numpy")
    code, _, err = run(["sweep", "--logits", str(tmp_path / "z.npz")], capsys)
    assert code == 2 and "is not a .npy array of numbers" in err


# ---------------------------------------------------------------- formats of the logits

def test_bfloat16_logits_are_swept_in_bfloat16_and_rounding_is_counted():
    z = np.array([[1e-6, 0, 0], [2.5, -1, 0], [1e5, 0, 0]]).astype(ml_dtypes.bfloat16)
    r = pl.sweep("softmax", logits=z, sweeps=["logits"], classes=[3], forms=["ce_fused"])
    assert [row["dtype"] for row in r.rows] == ["bfloat16"]  # no dtypes: the logits' own format
    assert r.rows[0]["inputs_rounded"] == 0 and r.rows[0]["logits_dtype"] == "bfloat16"
    r = pl.sweep("softmax", dtypes=["float16", "float32"], logits=z, sweeps=["logits"], classes=[3], forms=["ce_fused"])
    f16, f32 = r.rows
    # bfloat16's 1e-6 is a float16 subnormal with fewer bits: rounded; 1e5 overflows float16
    assert float(np.float16(z[0, 0])) != float(z[0, 0])
    assert (f16["inputs_rounded"], f16["inputs_out_of_range"]) == (1, 1)
    assert (f32["inputs_rounded"], f32["inputs_out_of_range"]) == (0, 0)  # widening is exact


# ---------------------------------------------------------------- soft labels

STABLE = ["ce_log_softmax", "ce_fused", "ce_fused_fmt_sum", "ce_log_softmax_autodiff"]
FIGURES = ("counts", "max_ulp", "stable")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_one_hot_soft_labels_give_the_rows_of_class_indices(dtype):
    hard = pl.sweep("softmax", dtypes=[dtype], logits=Z, labels=T, sweeps=["logits"], classes=[5], forms=STABLE)
    soft = pl.sweep("softmax", dtypes=[dtype], logits=Z, labels=np.eye(5)[T], sweeps=["logits"], classes=[5],
                    forms=STABLE)
    assert [r["form"] for r in soft.rows] == STABLE and {r["target_class"] for r in soft.rows} == {"soft"}
    for a, b in zip(hard.rows, soft.rows):
        assert {k: a[k] for k in FIGURES} == {k: b[k] for k in FIGURES}, a["form"]
        assert [(w["index"], w["class"], w["ulp"], w["margin"]) for w in a["worst"]] == \
               [(w["index"], w["class"], w["ulp"], w["margin"]) for w in b["worst"]]
    fmt = formats.get(dtype)
    zx = fmt.cast(Z).astype(np.float64)
    (la, _), (ga, _) = vector_reference.reference(zx, T, fmt)
    (lb, _), (gb, _) = vector_reference.reference(zx, np.eye(5)[T], fmt)
    assert np.array_equal(la, lb)  # Σ p_i·(max − z_i) with one p_i = 1 is max − z_t
    # −Σ_{j≠t} s_j against −Σ_{j≠t} e_j / Σe: within 2 float64 ULPs
    np.testing.assert_allclose(gb, ga, rtol=2 * 2.0**-52, atol=0)


def test_one_hot_soft_labels_make_the_naive_loss_nan_where_a_probability_underflows():
    """−Σ t_i ln p_i multiplies t_j = 0 by ln 0 = −∞ once e^(z_j) underflows (vectors 1
    and 2 in float32: e^−200, e^−120), where −ln p_t with a class index is finite."""
    hard = pl.sweep("softmax", dtypes=["float32"], logits=Z, labels=T, sweeps=["logits"], classes=[5], forms=["ce_naive"])
    soft = pl.sweep("softmax", dtypes=["float32"], logits=Z, labels=np.eye(5)[T], sweeps=["logits"], classes=[5],
                    forms=["ce_naive"])
    assert hard.rows[0]["counts"]["nan"] == 0
    assert soft.rows[0]["counts"]["nan"] == 2 and sorted(w["index"] for w in soft.rows[0]["worst"][:2]) == [1, 2]


def test_forms_of_a_class_index_are_skipped_for_soft_labels_with_a_note():
    r = pl.sweep("softmax", dtypes=["float32"], logits=Z, labels=np.eye(5)[T], sweeps=["logits"], classes=[5])
    assert not {"ce_naive_chain", "dloss_dpt", "softmax_jacobian_row"} & {row["form"] for row in r.rows}
    assert len(r.rows) == 10
    assert any("ce_naive_chain, dloss_dpt, softmax_jacobian_row skipped" in n for n in r.meta["notes"])


def _mp_soft(z, p, dps=60):
    """Σ p_i (logsumexp(z) − z_i) and P·softmax(z) − p, from scratch with mpmath."""
    with mpmath.workdps(dps):
        z = [mpmath.mpf(float(v)) for v in z]
        p = [mpmath.mpf(float(v)) for v in p]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
        total = mpmath.fsum(p)
        s = [mpmath.exp(v - lse) for v in z]
        return float(mpmath.fsum(q * (lse - v) for q, v in zip(p, z))), [float(total * a - q) for a, q in zip(s, p)]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float64"])
def test_smoothed_label_reference_against_mpmath(dtype):
    fmt = formats.get(dtype)
    k = 6
    t = np.array([0, 3, 5, 2])
    p = np.full((4, k), 0.1 / (k - 1))
    p[np.arange(4), t] = 0.9
    z = np.array([[2.0, 0, -1, 0.5, 0, 1], [0, -300, 0, 40, 1, 0], [1, 1, 1, 1, 1, 1], np.log(p[3])])
    # the last vector's softmax is the label distribution itself: its gradient cancels
    zx = fmt.cast(z).astype(np.float64)
    px = fmt.cast(p).astype(np.float64)  # the labels as the kernel gets them
    (loss, _), (grad, _) = vector_reference.reference(zx, px, fmt)
    for i in range(4):
        want_loss, want_grad = _mp_soft(zx[i], px[i])
        assert loss[i] == pytest.approx(want_loss, rel=4 * 2.0**-53)  # non-negative terms: nothing cancels
        # each entry within what the reference claims, even where P·s_i − p_i cancels:
        # 2**-10 ULP of the format (float64 arithmetic), correctly rounded for float64 (mpmath)
        rtol = 2.0**-52 if fmt.bits == 64 else 2.0**-(fmt.precision + 10)
        np.testing.assert_allclose(grad[i], want_grad, rtol=rtol, atol=1e-300)
    # the cancelling case is in the test: P·s_i − p_i is down to the logits' rounding
    assert np.abs(grad[3]).max() < 4 * 2.0**-fmt.precision * 0.9


@pytest.mark.parametrize(
    "labels, message",
    [
        (-np.eye(5)[T], "must be non-negative; row 0 has -1"),
        (np.full((4, 5), 0.25), "must sum to 1 within 1e-06 (float64); row 0 sums to 1.25"),
        (np.eye(4), "N × K = 4 × 5 array"),
        (np.zeros((4, 5, 1)), "N = 4 class indices or an N × K = 4 × 5 array"),
    ],
)
def test_bad_soft_labels(labels, message):
    with pytest.raises(pl.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pl.sweep("softmax", dtypes=["float32"], logits=Z, labels=labels, sweeps=["logits"], classes=[5])


def test_bfloat16_soft_labels_sum_to_one_within_its_epsilon():
    p = (np.full((4, 5), 0.1 / 4) + 0.875 * np.eye(5)[T]).astype(ml_dtypes.bfloat16)
    assert abs(p.astype(np.float64).sum(axis=1) - 1).max() > 1e-6  # rounded off 1
    spec = softmax_vectors.VectorSweep.from_arrays(Z, p)
    assert spec.soft and spec.target_classes == ("soft",)


# ---------------------------------------------------------------- what the rows say

def test_worst_vectors_carry_label_margin_and_loss():
    r = pl.sweep("softmax", dtypes=["float32"], logits=Z * 0 + np.array([[200.0, 0, 0, 0, 0]]), labels=np.zeros(4, int),
                 sweeps=["logits"], classes=[5], forms=["ce_naive", "ce_naive_autodiff"])
    loss, grad = r.rows
    w = loss["worst"][0]
    exact = float(mpmath.log1p(4 * mpmath.exp(-200)))
    assert (w["class"], w["label"], w["margin"]) == ("nan", 0, 200.0) and np.isnan(w["computed"])
    assert w["exact"] == pytest.approx(exact, rel=2.0**-50) and w["exact_loss"] == w["exact"]
    g = grad["worst"][0]
    assert g["class"] == "nan" and g["margin"] == 200.0 and g["exact_loss"] == pytest.approx(exact, rel=2.0**-50)
    assert np.isnan(g["computed"]) and g["exact"] == pytest.approx(grad_entry(g["entry"]), rel=2.0**-50)


def grad_entry(j):
    """∂L/∂z_j of (200, 0, 0, 0, 0), true class 0, with mpmath."""
    s = mpmath.exp(-200) / (1 + 4 * mpmath.exp(-200))
    return float(-4 * s if j == 0 else s)


def test_header_and_json_name_the_same_target_class(tmp_path, capsys):
    np.save(tmp_path / "z.npy", Z)
    np.save(tmp_path / "p.npy", np.eye(5)[T])
    for extra, tc in [([], "top"), (["--labels", str(tmp_path / "p.npy")], "soft")]:
        argv = ["sweep", "--logits", str(tmp_path / "z.npy"), "--dtypes", "float32", "--forms", "ce_fused", *extra]
        _, out, _ = run(argv + ["--no-color", "--detail"], capsys)
        assert re.search(f"softmax, logits sweep, K = 5, target class {tc} *\n", out)
        _, js, _ = run(argv + ["--json", "-"], capsys)
        assert json.loads(js)["rows"][0]["target_class"] == tc


def test_logits_with_named_sweeps_runs_both_and_says_so(tmp_path, capsys):
    np.save(tmp_path / "z.npy", Z)
    code, out, _ = run(["sweep", "--logits", str(tmp_path / "z.npy"), "--sweeps", "margin", "--dtypes", "float16",
                        "--forms", "ce_fused", "--target-classes", "top", "--no-color", "--detail"], capsys)
    assert code == 0
    assert "Softmax sweeps run: margin, logits (4 vectors given).\n" in out
    assert "softmax, margin sweep, K = 5, target class top" in out and "softmax, logits sweep, K = 5" in out


def test_json_is_written_when_a_naive_form_gives_nan(tmp_path, capsys):
    """An outlier logit makes `ce_naive` NaN; its worst vectors' computed values are
    NaN, which the JSON writes as the schema's string "nan" (JSON has no NaN)."""
    z = np.zeros((4, 8), np.float32)
    z[1, 2] = 200.0  # exp(200) overflows float16 and bfloat16: ∞/∞ = NaN
    np.save(tmp_path / "z.npy", z.astype(ml_dtypes.bfloat16))
    out = tmp_path / "out.json"
    code, _, err = run(["sweep", "--logits", str(tmp_path / "z.npy"), "--json", str(out), "--quiet"], capsys)
    assert code == 0, err
    rows = json.loads(out.read_text())["rows"]
    naive = next(r for r in rows if r["form"] == "ce_naive")
    assert naive["counts"]["nan"] == 1
    assert naive["worst"][0]["index"] == 1 and naive["worst"][0]["computed"] == "nan"

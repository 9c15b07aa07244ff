"""A user's own loss: the tiered exact reference, onsets, causes and bad input."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import precision_lab as pl
from precision_lab.numerics import balls, formats, literals, reference, rounding
from precision_lab.families import user
from precision_lab import cli
from precision_lab.families import sigmoid
from precision_lab.testing import assert_stable
from precision_lab.numerics import jaxpr

USER = "tests/user/losses.py"
F16 = formats.get("float16")

UNARY = {  # primitive -> (jax function, mpmath function, domain)
    "exp": (jnp.exp, mpmath.exp, None), "log": (jnp.log, mpmath.log, "pos"), "log1p": (jnp.log1p, mpmath.log1p, "gt-1"),
    "expm1": (jnp.expm1, mpmath.expm1, None), "tanh": (jnp.tanh, mpmath.tanh, None),
    "logistic": (jax.nn.sigmoid, lambda x: 1 / (1 + mpmath.exp(-x)), None), "sqrt": (jnp.sqrt, mpmath.sqrt, "nonneg"),
    "rsqrt": (jax.lax.rsqrt, lambda x: 1 / mpmath.sqrt(x), "pos"), "erf": (jax.scipy.special.erf, mpmath.erf, None),
    "square": (jnp.square, lambda x: x * x, None), "neg": (jnp.negative, lambda x: -x, None),
    "abs": (jnp.abs, abs, None), "cosh": (jnp.cosh, mpmath.cosh, None), "sinh": (jnp.sinh, mpmath.sinh, None),
    "atan": (jnp.arctan, mpmath.atan, None), "asinh": (jnp.arcsinh, mpmath.asinh, None),
    "erfc": (jax.scipy.special.erfc, mpmath.erfc, "moderate"), "cbrt": (jnp.cbrt, lambda x: mpmath.sign(x) * mpmath.cbrt(abs(x)), None),
    "atanh": (jnp.arctanh, mpmath.atanh, "unit"), "acosh": (jnp.arccosh, mpmath.acosh, "ge1"),
    "erf_inv": (jax.scipy.special.erfinv, mpmath.erfinv, "unit"),
    "lgamma": (jax.lax.lgamma, lambda x: mpmath.log(abs(mpmath.gamma(x))), "no-pole"),
    "digamma": (jax.lax.digamma, mpmath.digamma, "no-pole"),
}
ARGS = [5e-324, 2.2250738585072014e-308, 1e-300, 6e-8, 0.5, 1.0, 3.0, 37.5, 710.0, 1e300]


def _flat(fn, *shapes):
    return jaxpr.flatten(jax.make_jaxpr(jax.vmap(fn))(*[jax.ShapeDtypeStruct(s, np.float64) for s in shapes]))


def _in_domain(x, domain):
    return {None: True, "pos": x > 0, "nonneg": x >= 0, "gt-1": x > -1, "unit": -1 < x < 1, "ge1": x >= 1,
            "no-pole": x > 0 or x != int(x), "moderate": abs(x) < 1e6}[domain]  # moderate: mpmath overflows beyond


@pytest.mark.parametrize("name", sorted(UNARY))
def test_balls_and_intervals_enclose_mpmath_on_every_unary_primitive(name):
    """Both tiers enclose the value mpmath computes at 600 bits, at subnormal, ordinary
    and huge arguments of both signs (where defined); tier 1 where it has a rule."""
    from precision_lab.numerics import interval_rules

    fn, ref, domain = UNARY[name]
    xs = np.array([s * a for a in ARGS for s in (1, -1) if _in_domain(s * a, domain)])
    if domain == "unit":
        xs = np.concatenate([xs, [0.999, -0.75, 0.999999999]])
    flat = _flat(fn, xs.shape)
    (b,) = balls.evaluate(flat, [xs], 256)
    iv = reference.enclose(flat, [xs])[0] if name in interval_rules.SUPPORTED else None
    with mpmath.workprec(600):
        for i, x in enumerate(xs):
            want = ref(mpmath.mpf(float(x)))
            if mpmath.isinf(want) or abs(want) > mpmath.mpf(2) ** 1023:  # beyond float64: the ball holds it, iv is ∞
                continue
            ball = b[i]
            assert ball is not balls.UNDECIDED, (name, x)
            lo, hi = (mpmath.mpf(tuple(int(t) for t in e.man_exp())) for e in (ball.lower(), ball.upper()))
            assert lo <= want <= hi, (name, x)
            if abs(want) >= mpmath.mpf(2) ** -1074:  # below float64's range arb may keep only a bound
                assert hi - lo <= abs(want) * mpmath.mpf(2) ** -50, (name, x)  # arb: erf at 5e-324 is 2**-52 wide
            if iv is not None and not iv.bad[i]:
                assert iv.lo[i] <= want <= iv.hi[i], (name, x, iv.lo[i], iv.hi[i], want)


@settings(max_examples=200, deadline=None)
@given(st.floats(-700, 700), st.floats(-1e6, 1e6))
def test_interval_tier_encloses_a_composite_expression(a, b):
    """Tier 1 on log(1 + exp(a)) · b − a / (1 + b²) encloses the 400-bit value."""
    fn = lambda x: jnp.log(1 + jnp.exp(x[0])) * x[1] - x[0] / (1 + x[1] ** 2)  # noqa: E731
    xs = np.array([[a, b]])
    (iv,) = reference.enclose(_flat(fn, (1, 2)), [xs])
    with mpmath.workprec(400):
        A, B = mpmath.mpf(a), mpmath.mpf(b)
        want = mpmath.log(1 + mpmath.exp(A)) * B - A / (1 + B ** 2)
    assert iv.bad[0] or iv.lo[0] <= want <= iv.hi[0]


def test_reference_of_builtin_forms_agrees_with_the_family_at_every_float16_point(monkeypatch):
    """The exact evaluator on the built-in forms that carry no clipping gives, at every
    float16 point, the family's own reference rounded to float16 (0 ULP), wherever it
    resolves; and it resolves every point of the stable forms. The ball tier stops at
    2048 bits here, not 8192: 1 − σ(z) cancels about 1.44·z bits, so the naive forms
    then give up from |z| ≈ 1400 instead of 5700 on, which only spares the time."""
    monkeypatch.setattr(reference, "PREC_CAP", 2048)
    fam = sigmoid.FAMILY
    x = formats.from_ordinal(np.arange(-F16.max_ordinal, F16.max_ordinal + 1), F16)
    for y in (0.0, 1.0):
        want = {}
        for name in ("bce_naive", "bce_naive_chain", "bce_logits", "bce_fused", "mse"):
            form = fam.form(name)
            got, _ = reference.Reference(form.kernel).values(F16, x, np.float16(y))
            ev = pl.evaluate("sigmoid", [name], "float16", x.astype(np.float64), y)
            want = formats.round_to_ordinal(ev["exact"][name], F16)
            ok = ~np.isnan(got)
            if name in ("bce_logits", "bce_fused", "mse"):
                assert ok.all(), name
            assert ok.mean() > 0.75, name
            np.testing.assert_array_equal(formats.round_to_ordinal(got[ok], F16), want[ok], err_msg=name)


@pytest.fixture(scope="module")
def naive():
    return pl.check(f"{USER}:naive_bce", dtypes=["float16"], targets=[0.0])


@pytest.fixture(scope="module")
def focal_bf16():
    """The focal loss of the negative class at γ = 0.5, p_t = 1 − σ(z) written by hand,
    in bfloat16 for z in [−64, 64] (shared: causes and the rewrite's counts). Beyond
    |z| ≈ 5670 its exact value needs more than the ball tier's 8192 bits, and those
    points only cost time here."""
    return pl.check(f"{USER}:focal_neg", dtypes=["bfloat16"], targets=[0.0], value_range=(-64.0, 64.0))


@pytest.fixture(scope="module")
def ce4():
    """A naive cross-entropy at K = 4 in float16, margin sweep, true class on top."""
    return pl.check(f"{USER}:ce_naive", dtypes=["float16"], classes=[4], sweeps=["margin"], target_classes=["top"])


def test_naive_bce_onsets_match_the_hand_derivation(naive):
    """-log(1 − σ(z)) at y = 0 in float16. XLA's float16 σ computes 1/(1 + e^−z) in the
    format: 1 + e^−z rounds to 1 once e^−z < 2^−11 (half an ulp of 1), i.e.
    z > 11·ln 2 ≈ 7.6246, and the next float16 is 7.625: there σ = 1, 1 − σ = 0, the
    loss is ∞ and its gradient 0·∞ = NaN. Below, σ(z) < 2^−24 · 1/2 (the smallest
    subnormal's half) for z < −16.6, but σ is flushed to 0 earlier, below the smallest
    normal 2^−14 (e^z < 6.1e−5: z < −9.70); the loss −(0·log 0 + …) is then NaN
    from the first float16 whose σ is 0 as computed: −11.09375 (σ's float16 result
    there is below half the smallest subnormal once computed in float16)."""
    loss, grad = naive.rows[:2]
    assert loss["quantity"] == "loss" and grad["quantity"] == "grad"
    assert loss["onset"]["inf"]["pos"] == 7.625 and loss["onset"]["inf"]["method"]["pos"] == "exhaustive"
    assert grad["onset"]["nan"]["pos"] == 7.625
    assert loss["onset"]["nan"]["neg"] == -11.09375 and grad["onset"]["nan"]["neg"] == -11.09375
    assert loss["onset"]["nan"]["pos"] is None and loss["onset"]["inf"]["neg"] is None
    # The naive jaxpr's own balls cannot settle the far tail (1 − σ(z) cancels ≈ 1.44·z
    # bits, beyond the 8192-bit cap from z ≈ 5670; 3700 points), and need hundreds of
    # bits well before it: its identity rewrite (log_sigmoid) is tried on the intervals
    # at every point the own intervals leave open, and decides them all, with no ball;
    # they are ∞ like the rest of the band. An independent mpmath review of every
    # float16 point found the same counts: 13408 ∞, 12916 NaN.
    tiers = loss["tiers"]
    assert tiers["interval"] > 40000 and tiers["exact"] == 0
    assert tiers["rewritten"] == loss["points"] - tiers["interval"] > 3700
    assert tiers["own_unresolved_no_enclosure"] == tiers["unresolved"] == 0
    assert loss["counts"]["inf"] == 13408 and loss["counts"]["nan"] == 12916 and loss["counts"]["unresolved"] == 0
    assert grad["counts"]["nan"] == 26324
    assert loss["intervals"]["inf"]["listed"] == [[7.625, 65504.0]]
    assert sum(loss["counts"][c] for c in pl.api.CLASSES) == loss["points"] == 2 * F16.max_ordinal + 1


def test_causes_name_the_operation_and_line(naive, focal_bf16):
    """Three breakages, three causes: the log that goes to −∞ (line 9), the σ flushed
    to 0 (line 8) and, for the focal loss at γ = 0.5, the power whose derivative
    γ(1 − p_t)^(γ−1) is ∞ where 1 − p_t rounds to 0 (line 98): the subtraction lost
    the value, not the pow that then made ∞."""
    loss, grad = naive.rows[:2]
    inf = loss["cause"]["inf"]["pos"]
    assert inf["first_nonfinite"]["primitive"] == "log" and "losses.py:9" in inf["first_nonfinite"]["source"]
    nan = loss["cause"]["nan"]["neg"]
    assert nan["first_lost"]["primitive"] == "logistic" and "losses.py:8" in nan["first_lost"]["source"]
    assert any(f["primitive"] == "logistic" for f in nan["flushes"])
    fgrad = next(r for r in focal_bf16.rows if r["quantity"] == "grad")
    why = fgrad["cause"]["nan"]["neg"]  # z ≤ −6.25: p_t = 1 − p rounds to 1
    assert fgrad["onset"]["nan"]["neg"] == -6.25
    assert why["first_nonfinite"]["primitive"] == "pow" and "losses.py:98" in why["first_nonfinite"]["source"]
    assert why["first_lost"]["primitive"] == "sub" and "losses.py:98" in why["first_lost"]["source"]  # 1 − p_t


def test_stable_user_loss_is_stable_and_assert_stable_tells_them_apart():
    """softplus written as max(z, 0) − z·y + log1p(e^−|z|) has no NaN, ∞ or lost normal
    value in bfloat16; the naive form fails with its row, onset and cause."""
    near = dict(value_range=(-128.0, 128.0))  # beyond, only the far tails' cost (the same classes)
    assert_stable(f"{USER}:stable_bce", dtypes=("bfloat16",), targets=(0.0, 1.0), allow=("inaccurate", "zero"), **near)
    with pytest.raises(AssertionError) as e:
        assert_stable(f"{USER}:naive_bce", dtypes=("bfloat16",), targets=(0.0,), **near)
    text = str(e.value)
    assert "naive_bce (grad) bfloat16 y=0" in text and "nan" in text and "z ≥ 5.5625 (exhaustive)" in text
    assert "first non-finite at" in text and "log (losses.py:9" in text


@pytest.mark.parametrize("argv, message", [
    (["check", "tests/user/nope.py:f"], "no such file"),
    (["check", f"{USER}:missing"], "has no `missing`"),
    (["check", f"{USER}:NOT_A_FUNCTION"], "not a function"),
    (["check", "no_such_pkg.mod:f"], "No module"),
    (["check", f"{USER}"], "does not name a function"),
    (["check", f"{USER}:vector_out", "--dtypes", "float16"], "not a scalar"),
    (["check", f"{USER}:branchy", "--dtypes", "float16"], "losses.py:27"),
    (["check", f"{USER}:upcast", "--dtypes", "bfloat16"], "returns float32 for bfloat16"),
    (["check", f"{USER}:focal", "--kwargs", "{gamma: 1}"], "not JSON"),
    (["check", f"{USER}:naive_bce", "--classes", "10", "--dtypes", "float16"], "not a scalar"),
    (["check", f"{USER}:ce_naive", "--dtypes", "float16"], "give --classes K"),
    (["check", f"{USER}:ce_take", "--dtypes", "float16"], "give --classes K"),
    (["check", f"{USER}:naive_bce", "--fail-on", "bogus"], "Unknown class"),
])
def test_bad_input_is_one_sentence_and_exit_2(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_multiclass_user_loss_runs_through_the_softmax_sweeps(ce4):
    """A naive cross-entropy on K = 4 logits in float16, margin sweep, true class on top:
    exp overflows (float16 max 65504 < e^11.1) once the margin passes 11.09375."""
    loss = next(x for x in ce4.rows if x["quantity"] == "loss")
    assert loss["classes"] == 4 and loss["sweep"] == "margin" and loss["target_class"] == "top"
    assert loss["counts"]["nan"] > 0
    assert loss["onset"]["nan"]["pos"] == 11.09375


def test_a_fix_at_the_cause_is_swept_and_removes_the_failure(naive):
    """Both logs of the naive BCE sit on the line its rows broke at (line 9): they are
    rewritten to log_sigmoid(±z) (1 − σ(z) then goes unread and is not listed), the
    rewritten loss is swept in the same run as naive_bce+fix, and every NaN, ∞ and
    lost 0 of float16 at y = 0 is gone, in the loss and the gradient."""
    loss, grad, fixed_loss, fixed_grad = [r for r in naive.rows if r["family"] == "check"]
    assert (fixed_loss["form"], fixed_loss["quantity"], fixed_grad["quantity"]) == ("naive_bce+fix", "loss", "grad")
    assert {w["pattern"] for w in loss["fix"]["rewrites"]} == {"log(sigmoid(x))", "log(1 − sigmoid(x))"}
    assert all("losses.py:9" in w["source"] for w in loss["fix"]["rewrites"])
    assert loss["fix"]["before"]["nan"] == loss["counts"]["nan"] > 0 and loss["fix"]["better"]
    for row in (fixed_loss, fixed_grad):
        assert row["counts"]["nan"] == row["counts"]["inf"] == row["counts"]["zero"] == 0
        assert row["fix_of"] == "naive_bce"


def test_fixed_function_is_the_same_real_function():
    """A rewrite changes how, not what: at ordinary points in float64 the rewritten
    loss and gradient agree with the original to 1e-12 (the original's own rounding)."""
    import importlib.util

    from precision_lab.families import rewrites as fixes

    spec = importlib.util.spec_from_file_location("user_losses", USER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for fn in (mod.naive_bce, mod.ce_naive):
        f = fixes.fixed(fn)
        for z in (-3.0, -0.5, 0.25, 2.0):
            args = (jnp.float64(z), jnp.float64(0.3)) if fn is mod.naive_bce else (
                jnp.array([z, 0.1, -1.0, 0.5]), jnp.int32(2))
            np.testing.assert_allclose(f(*args), fn(*args), rtol=1e-12)
            np.testing.assert_allclose(jax.grad(f)(*args), jax.grad(fn)(*args), rtol=1e-12, atol=1e-15)


def test_multiclass_fix_is_log_softmax(ce4):
    """exp(x)/Σexp(x) then log: rewritten to log_softmax, which removes the overflow
    NaN of the naive cross-entropy at K = 4 in float16."""
    r = ce4
    loss = next(x for x in r.rows if x["form"] == "ce_naive" and x["quantity"] == "grad")
    assert [w["replacement"] for w in loss["fix"]["rewrites"]] == ["jax.nn.log_softmax(x)"]
    fixed = next(x for x in r.rows if x["form"] == "ce_naive+fix" and x["quantity"] == "grad")
    assert loss["counts"]["nan"] > 0 and fixed["counts"]["nan"] == fixed["counts"]["inf"] == 0


def test_reference_of_a_stable_form_resolves_the_tail():
    """Against the stable BCE's jaxpr the naive BCE has no unresolved point, and the
    same onsets as against its own."""
    r = pl.check(f"{USER}:naive_bce", dtypes=["float16"], targets=[0.0], reference=f"{USER}:stable_bce")
    loss = r.rows[0]
    assert loss["counts"]["unresolved"] == 0 and "stable_bce" in loss["reference"]
    assert loss["onset"]["inf"]["pos"] == 7.625 and loss["onset"]["nan"]["neg"] == -11.09375


def test_range_sweeps_every_value_inside_it_and_keeps_the_onsets():
    """--range -20,20: every float16 value in [−20, 20] (39425 of them), the same
    exhaustive onsets as the whole axis; float32 gets 65536 evenly spaced values there,
    whose ∞ onset is refined to an exact lattice boundary within 2 ulps above
    24·ln 2 ≈ 16.635532 (1 + e^−z rounds to 1 in float32 once e^−z < 2^−24)."""
    from precision_lab.numerics import sampling

    axis = sampling.ranged(F16, (-20.0, 20.0), None)
    assert isinstance(axis, sampling.Range) and len(axis) == 39425
    assert axis.values(0, 1)[0] == -20 and axis.values(len(axis) - 1, len(axis))[0] == 20
    r = pl.check(f"{USER}:naive_bce", dtypes=["float16", "float32"], targets=[0.0], value_range=(-20, 20),
                 causes=False)
    f16, f32 = (next(x for x in r.rows if x["dtype"] == d and x["quantity"] == "loss") for d in ("float16", "float32"))
    assert f16["points"] == 39425 and f16["exhaustive"] and f16["range"] == [-20, 20]
    assert f16["onset"]["inf"]["pos"] == 7.625 and f16["onset"]["nan"]["neg"] == -11.09375
    assert f32["points"] == 65536 and not f32["exhaustive"]
    onset, edge = f32["onset"]["inf"]["pos"], 24 * np.log(2)  # 16.6355323
    assert f32["onset"]["inf"]["method"]["pos"] == "refined" and 0 <= onset - edge <= 2 * np.spacing(np.float32(edge))


def test_sweep_accepts_a_range_too(capsys):
    """The built-in families take --range as well: the sigmoid chain product's float16
    NaN onsets inside [−20, 20] are the whole axis's (−17.34 and 7.625 are inside)."""
    whole = pl.sweep(family="sigmoid", dtypes=["float16"], targets=[1.0], forms=["bce_naive_chain"])
    part = pl.sweep(family="sigmoid", dtypes=["float16"], targets=[1.0], forms=["bce_naive_chain"],
                    value_range=(-20.0, 20.0))
    a, b = whole.rows[0]["onset"]["nan"], part.rows[0]["onset"]["nan"]
    assert (a["neg"], a["pos"]) == (b["neg"], b["pos"]) and part.rows[0]["points"] == 39425
    assert cli.main(["sweep", "--family", "sigmoid", "--range", "3,1"]) == 2
    assert "empty" in capsys.readouterr().err


def test_a_check_is_ranked_against_the_built_in_forms_of_the_same_function(naive):
    """naive_bce's exact values are the BCE's at every sample point (tails included), so the
    check sweeps the sigmoid family's stable library forms alike (float16, y = 0, every
    value) and the summary ranks them beside the user's: its fix is as good as
    optax.sigmoid_binary_cross_entropy, clean. A clipped BCE is another function in the
    tails (its clip), and a focal loss another function: neither is matched."""
    from precision_lab.analysis import builtin
    from precision_lab.families import sigmoid

    assert naive.meta["same_function"] == "sigmoid:loss_bce"
    built = {r["form"]: r for r in naive.rows if r["family"] == "sigmoid"}
    assert set(built) == {"bce_logits", "bce_fused", "bce_logits_autodiff"}
    assert all(r["dtype"] == "float16" and r["target"] == 0.0 and r["exhaustive"] for r in built.values())
    assert built["bce_logits"]["counts"]["nan"] == built["bce_logits"]["counts"]["inf"] == 0
    text = " ".join(naive.summary(200).split())
    assert ("Built-in for the loss, the same function: bce_logits = optax.sigmoid_binary_cross_entropy (f16 clean): "
            "as good as the best form checked above") in text
    for name in ("bce_clip", "focal_prob"):
        kind = pl.api.user_kind(f"{USER}:{name}")
        assert builtin.match(kind.plain(None), sigmoid.FAMILY, [0.0, 1.0]) == []


def test_a_function_whose_jaxpr_changes_with_the_format_is_flagged():
    """Traced at each row's format: a branch on the dtype gives float16 other operations
    than bfloat16, and every row says so; the naive BCE traces alike in both."""
    r = pl.check(f"{USER}:dtype_dependent", dtypes=["float16", "bfloat16"], targets=[0.0], causes=False,
                 points=None)
    assert all(row["jaxpr_differs_across_formats"] for row in r.rows if row["family"] == "check")
    same = pl.check(f"{USER}:stable_bce", dtypes=["float16", "bfloat16"], targets=[0.0], causes=False)
    assert not any(row["jaxpr_differs_across_formats"] for row in same.rows if row["family"] == "check")


def test_a_primitive_without_an_exact_rule_falls_back_to_float64_and_says_so():
    """bessel_i1e has no exact rule: the rows are measured against the function in
    float64, say so, and float64 itself is not checked (it would be measured against
    itself)."""
    r = pl.check(f"{USER}:with_bessel", dtypes=["bfloat16", "float64"], targets=[0.0], causes=False)
    assert {row["dtype"] for row in r.rows} == {"bfloat16"}
    assert all("no exact rule for bessel_i0e, bessel_i1e" in row["reference"] for row in r.rows)  # i0e: the gradient
    assert all(row["tiers"]["float64"] > 0 and row["tiers"]["interval"] == 0 for row in r.rows)
    assert "bessel_i1e" in r.meta["warnings"][0]


def test_lgamma_and_digamma_have_exact_rules():
    """gammaln(1 + e^z) − y·z and its gradient (digamma) are settled by the ball tier:
    each value sampled is the correctly rounded one (mpmath at 200 bits, an
    independent derivation), and no check row falls back to float64."""
    import sys

    sys.path.insert(0, "tests/user")
    import losses

    bf16 = formats.get("bfloat16")
    zs = np.array([-3.0, -0.5, 0.25, 2.0, 3.96875, 40.0], np.float32).astype(bf16.dtype)
    grad = lambda z, y: jax.grad(losses.with_lgamma)(z, y)  # noqa: E731
    for fn, truth in ((losses.with_lgamma, lambda z: mpmath.loggamma(1 + mpmath.exp(z))),
                      (grad, lambda z: mpmath.digamma(1 + mpmath.exp(z)) * mpmath.exp(z))):
        got, _ = reference.Reference(fn).values(bf16, zs, np.asarray(0.0, bf16.dtype))
        with mpmath.workprec(200):
            want = [_mpf_ordinal(truth(mpmath.mpf(float(z))), bf16) for z in zs]
        np.testing.assert_array_equal(formats.round_to_ordinal(got, bf16), want)
    # every bfloat16 value from −64 to 2**61 (the far negative tail rounds to −0; the
    # points beyond 2**61 only repeat what the last 207 show, at the cap's cost each)
    r = pl.check(f"{USER}:with_lgamma", dtypes=["bfloat16"], targets=[0.0], causes=False,
                 value_range=(-64.0, 2.0**61))
    loss, grad = (next(row for row in r.rows if row["quantity"] == q) for q in ("loss", "grad"))
    assert loss["tiers"]["float64"] == grad["tiers"]["float64"] == 0 and grad["tiers"]["unresolved"] == 0
    # lgamma(1 + e^z) where e^z passes 2**(2**60) (z ≥ 2**60·ln 2 ≈ 7.99e17, the 207
    # bfloat16 values from 8.0164e17 to 2**61): there arb's lgamma gives only a ball
    # around 0 (radius about 10**(3.5·10**23) at z = 8.02e17) at every precision up to
    # the cap, though the value is +∞ in bfloat16; such points are unresolved, and said
    # to be (none is taken from float64)
    assert loss["tiers"]["unresolved"] == loss["tiers"]["own_unresolved_cap"] == 207


def test_a_rewrite_that_moves_an_onset_nearer_zero_is_not_proposed(focal_bf16):
    """The hand-written focal loss's 1 − σ(z) → σ(−z) and log(1 − σ(z)) →
    log_sigmoid(−z) (line 98) remove half of bfloat16's NaN gradients at y = 0 in
    [−64, 64] (904 → 463), but they then begin at z = −5.5625 instead of −6.25
    ((1 − σ(−z))^γ still cancels): the row shows the rewrite with its counts and does
    not call it a fix."""
    grad = next(x for x in focal_bf16.rows if x["form"] == "focal_neg" and x["quantity"] == "grad")
    fix = grad["fix"]
    assert (fix["before"]["nan"], fix["after"]["nan"]) == (904, 463)
    assert fix["onsets"]["nan"]["before"][0] == -6.25 and fix["onsets"]["nan"]["after"][0] == -5.5625
    assert not fix["better"]


def test_probability_space_losses_get_their_log_space_fixes():
    """Clip-then-log BCE and the focal loss from probabilities, in bfloat16 for z in
    [−64, 64] at y = 0 and 1: both give NaN, ∞ or lost values from |z| ≤ 6.25 on (σ rounds to 1; the clip's
    1 − 1e-7 is 1.0 in bfloat16, so it clips nothing). The clip's fix is the logit
    form (log_sigmoid), which changes the function (the clip goes) and is measured
    against its own exact values; the focal loss's is its log-space form,
    logaddexp(log y + log_sigmoid(z), log(1 − y) + log_sigmoid(−z)), the same real
    function, measured against the original's. Both leave no NaN or ∞ in the range;
    the clip's fix loses no normal value to 0, the focal fix 3 gradients of the
    smallest normal size (exp(2·log_sigmoid(z)) underflows a step early) where the
    original loses 292 (σ flushed)."""
    for name, same, lost in (("bce_clip", False, 0), ("focal_prob", True, 3)):
        r = pl.check(f"{USER}:{name}", dtypes=["bfloat16"], value_range=(-64.0, 64.0))
        for row in (x for x in r.rows if x["form"] == name):
            fix = row["fix"]
            first = [abs(o) for c in ("nan", "inf", "zero") for o in (row["onset"][c]["neg"], row["onset"][c]["pos"])
                     if o is not None]
            assert min(first) <= 6.25, (name, row["quantity"])  # NaN, ∞ or 0 from |z| = 5.5625 or 6.25
            assert fix["better"] and all(w["same_function"] is same for w in fix["rewrites"])
            assert fix["after"]["nan"] == fix["after"]["inf"] == 0
            assert fix["after"]["zero"] - fix["after"]["zero_subnormal"] <= lost, (name, row["quantity"])
        fixed = [x for x in r.rows if x["form"] == f"{name}+fix"]
        assert len(fixed) == 4 and all((f"of {name}+fix" in x["reference"]) is not same for x in fixed)
        use = [line for line in r.summary(200).splitlines() if line.startswith(("Use for the", "No grad", "No loss"))]
        assert len(use) == 2 and all(f"{name}+fix" in line for line in use)
        assert all(("a different function: its clip is gone" in line) is not same for line in use)


def test_interval_tier_keeps_overflowed_values_finite():
    """e^710 overflows float64 but is a finite real: exp(z)·1e-300 at z = 710 is about
    2.2e8, which the interval tier must enclose (not call ∞), in every format."""
    fn = lambda x: jnp.exp(x) * 1e-300  # noqa: E731
    xs = np.array([710.0, 720.0])
    (iv,) = reference.enclose(_flat(fn, xs.shape), [xs])
    with mpmath.workprec(200):
        for i, x in enumerate(xs):
            want = mpmath.exp(mpmath.mpf(x)) * mpmath.mpf(1e-300)
            assert iv.bad[i] or iv.lo[i] <= want <= iv.hi[i]
    got, _ = reference.Reference(lambda x, y: jnp.exp(x) * 1e-30 + y).values(
        formats.get("float32"), np.array([100.0], np.float32), np.float32(0))
    assert got[0] == float(np.float32(np.exp(100.0) * 1e-30))  # 2.69e13: finite in float32


def test_scatter_add_in_a_gradient_is_exact_in_both_tiers():
    """take_along_axis's gradient is a scatter-add: both tiers evaluate it, and the
    gradient of −log_softmax(z)[1] matches mpmath's softmax(z) − e₁ rounded (float32
    through tier 1, float64 through the balls)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_losses", USER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    xs = np.array([[3.0, 0, 0, 0], [0.5, -1, 2, 0], [30.0, 0, 0, 0]])
    with mpmath.workprec(300):
        want = []
        for x in xs:
            z = [mpmath.mpf(float(a)) for a in x]
            lse = mpmath.log(sum(mpmath.exp(a) for a in z))
            want.append([mpmath.exp(a - lse) - (1 if j == 1 else 0) for j, a in enumerate(z)])
    for name in ("float32", "float64"):
        fmt = formats.get(name)
        ref = reference.Reference(jax.grad(mod.ce_take))
        tiers = reference.Tiers()
        got, _ = ref.values(fmt, xs.astype(fmt.dtype), np.int32(1), tiers)
        assert (tiers.interval if name == "float32" else tiers.exact) == len(xs)
        rounded = np.array([[_mpf_ordinal(v, fmt) for v in row] for row in want])
        np.testing.assert_array_equal(formats.round_to_ordinal(got, fmt), rounded)


def _mpf_ordinal(v, fmt) -> int:
    """The ordinal of `fmt` nearest the (finite) mpf `v`: one rounding of its exact bits."""
    sign, man, exp, _ = v._mpf_
    return rounding.binary_ordinal(-man if sign else man, exp, fmt)


def test_readme_publishes_every_supported_primitive():
    """The README's table lists the primitives the exact tiers evaluate, and no other;
    those marked * are exactly the ones tier 1 (intervals) has no rule for."""
    import pathlib
    import re

    from precision_lab.numerics import interval_rules

    text = pathlib.Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    table = text.split("<!-- primitives -->")[1].split("<!-- /primitives -->")[0]
    listed = dict(re.findall(r"`([a-z_0-9-]+)`(\*?)", table))
    assert set(listed) == set(balls.SUPPORTED)
    assert {p for p, star in listed.items() if star} == set(balls.SUPPORTED) - interval_rules.SUPPORTED


def test_gradients_of_clip_and_max_resolve():
    """autodiff's rule for max and min compares x with max(x, c): the same real where x
    is certainly the larger, which both tiers now see, so a clipped BCE's gradient has
    no unresolved point (before, every one was)."""
    r = pl.check(f"{USER}:clipped_bce", dtypes=["float16", "float64"], targets=[1.0], causes=False)
    for row in r.rows:
        assert row["counts"]["unresolved"] == 0, (row["quantity"], row["dtype"])
    grad16 = next(x for x in r.rows if x["quantity"] == "grad" and x["dtype"] == "float16")
    assert grad16["tiers"]["interval"] == grad16["points"]


def test_a_value_multiplied_by_zero_is_not_named_as_the_cause():
    """At y = 0 the naive BCE's log(σ(z)) is multiplied by y = 0: its error cannot reach
    the loss, so past bfloat16's ∞ onset the cause is the subtraction 1 − σ(z) that
    went to 0, not log(σ(z)), and the unused log is marked so in the walk."""
    from precision_lab.families import user
    from precision_lab.analysis import walk

    r = pl.check(f"{USER}:naive_bce", dtypes=["bfloat16"], targets=[0.0], value_range=(-20, 20))
    why = r.rows[0]["cause"]["inf"]["pos"]
    assert why["first_lost"]["primitive"] == "sub" and why["first_nonfinite"]["primitive"] == "log"
    w = walk.walk(user.load(f"{USER}:naive_bce")[0], (8.0, 0.0), "bfloat16")
    assert "unused" in w.steps[1].marks and w.steps[1].primitive == "log"


def test_readme_python_api_example_prints_what_it_says(capsys):
    """The README's Python API block, run as written: each print gives the line in the
    comment under it (up to a "..." where the comment elides, and runs of spaces)."""
    import pathlib
    import re

    text = pathlib.Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    block = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S).group(1)
    expected = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == len(expected)
    for got, want in zip(printed, expected):
        got = re.sub(r"\s+", " ", got)  # NumPy pads array entries
        for part in want.split("..."):
            assert part.strip() in got, (got, want)


def test_log_cosh_overflows_where_cosh_passes_float16s_range():
    """log(cosh(z)) in float16 is ∞ from the first float16 value whose cosh rounds
    past 65504 (cosh(z) ≥ 65520, derived with mpmath), while the true loss, about
    |z| − ln 2, is finite: class `inf`, on both sides; its gradient sinh/cosh is
    ∞/∞ = NaN from the same value. `cosh` has exact rules in every tier (no float64
    fallback), and the walk names it."""
    with mpmath.workprec(200):
        lattice = formats.lattice(F16).astype(np.float64)
        onset = min(z for z in lattice[lattice > 0] if mpmath.cosh(z) >= 65520)
    assert onset == 11.7890625
    r = pl.check(f"{USER}:log_cosh", dtypes=["float16"], targets=[0.0])
    loss, grad = (next(x for x in r.rows if x["quantity"] == q) for q in ("loss", "grad"))
    assert loss["onset"]["inf"]["pos"] == onset and loss["onset"]["inf"]["neg"] == -onset
    assert loss["counts"]["inf"] == 2 * int((lattice >= onset).sum())  # every |z| beyond, both signs
    assert grad["onset"]["nan"]["pos"] == onset
    assert loss["tiers"]["float64"] == 0 and "no exact rule" not in loss["reference"]
    assert loss["cause"]["inf"]["pos"]["first_nonfinite"]["primitive"] == "cosh"


def test_optax_sigmoid_focal_loss_is_checked_without_a_traceback():
    """optax's focal loss stacks its two log-sigmoids (the `stack` and `unstack`
    primitives) and its gradient goes through them: every tier and the cause walk
    evaluate them. Its float16 gradient at y = 0 is NaN where JAX itself, jitted and
    vmapped over every float16 value, gives NaN (an independent count)."""
    optax = pytest.importorskip("optax")
    r = pl.check(f"{USER}:optax_focal", dtypes=["float16"], targets=[0.0])
    grad = next(x for x in r.rows if x["quantity"] == "grad")
    z = formats.lattice(F16)
    g = np.asarray(jax.jit(jax.vmap(jax.grad(lambda v: optax.sigmoid_focal_loss(v, jnp.float16(0)))))(z))
    nan = np.isnan(g.astype(np.float64))
    assert grad["counts"]["nan"] == int(nan.sum()) > 0
    assert grad["onset"]["nan"]["pos"] == float(z[nan & (z > 0)].min())
    assert grad["tiers"]["float64"] == 0 and grad["cause"]["nan"]["pos"]["first_nonfinite"] is not None


def test_every_optax_per_example_loss_has_exact_rules_in_both_16_bit_formats():
    """Every per-example loss of optax.losses (tests/user/optax_losses.py, the losses of
    docs/optax.md) traces, value and gradient, to primitives that all have ball
    rules, in float16 and bfloat16: check measures none of them against float64."""
    import sys

    sys.path.insert(0, "tests/user")
    import optax_losses

    for dtype in (jnp.float16, jnp.bfloat16):
        for fn, x, y in [(f, jnp.zeros(4, dtype), jnp.asarray(1, dtype)) for f in optax_losses.BINARY] + \
                [(f, jnp.zeros((4, 10), dtype), jnp.asarray(1, jnp.int32)) for f in optax_losses.MULTICLASS]:
            both = jax.vmap(lambda a, b, fn=fn: jax.value_and_grad(fn)(a, b), (0, None))
            if fn.__name__ in optax_losses.FAILS_UNDER_X64:  # optax's own failure, said in one sentence by check
                with pytest.raises(TypeError, match="Custom JVP rule"):
                    jax.make_jaxpr(both)(x, y)
                continue
            closed = jax.make_jaxpr(both)(x, y)
            assert closed.out_avals[0].dtype == dtype, fn.__name__  # takes and returns the row's format
            assert balls.unsupported(jaxpr.flatten(closed)) == [], fn.__name__


def test_constants_that_a_format_changes_are_named_with_their_line():
    """The clip's upper bound 1 − 1e-7 is 0.9999999 in float32 and rounds to 1.0 in
    float16 and bfloat16 (their ulp of 1 is 2**-10 and 2**-7): the clip clips nothing.
    The lower bound 1e-7 is a float16 subnormal (smallest normal 2**-14 ≈ 6.1e-5), a
    normal bfloat16. An epsilon of 1e-12 is 0 in float16 (below half its smallest
    subnormal, 2**-25) and is named there only."""
    mod = user.load(f"{USER}:bce_clip")[0].__globals__
    for fn, fmt, want in ((mod["bce_clip"], "float16", {(0.9999999, 1.0, "rounds to 1"),
                                                          (1e-07, 2.0**-23, "subnormal: few significant bits")}),
                          (mod["bce_clip"], "bfloat16", {(0.9999999, 1.0, "rounds to 1")}),
                          (mod["bce_clip"], "float32", set()),
                          (mod["eps_bce"], "float16", {(1e-12, 0.0, "rounds to 0")}),
                          (mod["eps_bce"], "bfloat16", set())):
        f = formats.get(fmt)
        x = jax.ShapeDtypeStruct((), f.dtype)
        got = {(float(np.float32(r.written)), r.becomes, r.why) for r in literals.rounded(fn, (x, x), f)}
        assert got == {(float(np.float32(w)), b, why) for w, b, why in want}, (fn.__name__, fmt)
    r = pl.check(f"{USER}:bce_clip", dtypes=["bfloat16"], targets=[0.0], value_range=(-4.0, 4.0), causes=False)
    assert all(row["constants"] == ["constant 0.9999999 at losses.py:79 is 1 in bfloat16 (rounds to 1)"]
               for row in r.rows if row["form"] == "bce_clip")
    assert "constant 0.9999999 at losses.py:79 is 1 in bfloat16" in r.summary(width=200)


def test_a_loss_scale_gets_a_verdict_against_no_scale_in_the_same_run():
    """The hand-written focal loss in float16, y = 0, z in [−64, 64], S = 1024: its
    gradient is swept again unscaled. Scaled, the cotangent S/p_t overflows float16
    (65504) once p_t = 1 − σ(z) < 1024/65504, from z = 4.1289 on: 7096 values lost or
    non-finite against 6201 unscaled, and ∞ now begins at 4.12890625, where unscaled
    there was none. The +fix rows stay."""
    r = pl.check(f"{USER}:focal_neg", dtypes=["float16"], targets=[0.0], value_range=(-64.0, 64.0), loss_scale=1024)
    (a,) = r.meta["loss_scale_advice"]
    at = a["at_scale"]
    assert (a["form"], at["scale"], at["lost_unscaled"], at["lost"]) == ("focal_neg", 1024.0, 6201, 7096)
    assert at["moved"] == [{"class": "inf", "side": "pos", "scaled": 4.12890625, "unscaled": None}]
    assert [(x["form"], x["quantity"]) for x in r.rows] == [("focal_neg", "loss"), ("focal_neg", "grad"),
                                                             ("focal_neg+fix", "loss"), ("focal_neg+fix", "grad")]
    text = r.summary(width=200)
    assert "S = 1024 is worse: 7096 values lost or non-finite (∞ from z ≥ 4.13, NaN from z ≥ 7.625), 6201 unscaled;" \
        in text
    assert "but ∞ now from z ≥ 4.13 (none unscaled)." in text  # 4.13: the shortest decimal of 4.12890625


def test_a_gradient_killed_by_a_clip_is_found_with_its_band_and_line():
    """clipped_bce clips σ(z) to [1e-4, 1 − 1e-3] (line 63) and its gradient is the
    clip's derivative times the rest: exactly 0 where σ(z) < 1e-4, z < −9.2, although
    the unclipped BCE's gradient σ(z) − y is −1 there at y = 1, down to bfloat16's
    most negative value (15980 points), and σ(z), which bfloat16 holds down to
    z = −92.5, at y = 0 (422 points). Derived independently: the user's
    function jitted alone, against σ(z) − y in float64, over every bfloat16 value.
    The upper bound 0.999 rounds to 1 in bfloat16 and clips nothing."""
    mod = user.load(f"{USER}:clipped_bce")[0].__globals__
    r = pl.check(f"{USER}:clipped_bce", dtypes=["bfloat16"], targets=[0.0, 1.0], causes=False)
    bf16 = formats.get("bfloat16")
    x = formats.lattice(bf16)
    x64 = x.astype(np.float64)
    for y in (0.0, 1.0):
        g = np.asarray(jax.jit(jax.vmap(jax.grad(mod["clipped_bce"]), (0, None)))(x, bf16.dtype.type(y)), np.float64)
        with np.errstate(over="ignore"):  # e^−z overflows float64 below z ≈ −709: σ is 0 there, exactly enough
            true = 1 / (1 + np.exp(-x64)) - y
        killed = (g == 0) & (bf16.cast(true).astype(np.float64) != 0)
        row = r.row("clipped_bce", "bfloat16", y, quantity="grad")
        k = row["killed_gradient"]
        assert k["killed"]["count"] == int(killed.sum()) > 0 and k["halved"]["count"] == 0, y
        assert k["killed"]["bands"] == [[float(x64[killed].min()), float(x64[killed].max())]], y
        assert k["sources"] == ["losses.py:63"]
        assert pl.gates.count(row, "killed") == k["killed"]["count"]
    assert r.row("clipped_bce", "bfloat16", 1.0, quantity="grad")["killed_gradient"]["killed"]["bands"][0][1] == -9.25
    assert ("gradient 0 on [−3.38953e+38, −9.25] (15980 points) by the clip at losses.py:63 (bf16 y=1; without it, "
            "not 0)") in " ".join(r.summary(200).split())


def test_an_upcast_row_names_its_constants_in_float32_and_measures_its_killed_gradient():
    """bce_clip with bfloat16 inputs computed in float32: 1 − 1e-7 is 0.99999988 in
    float32, so no constant is named, and the clip works: the gradient is 0 wherever σ(z)
    passes the bound, from z = 16.75 (y = 0), where the BCE's gradient is 1."""
    r = pl.check(f"{USER}:bce_clip", dtypes=["bfloat16:float32"], targets=[0.0], causes=False)
    assert all(row["constants"] == [] for row in r.rows if row["form"] == "bce_clip")
    k = r.row("bce_clip", "bfloat16:float32", 0.0, quantity="grad")["killed_gradient"]
    assert k["killed"]["bands"][-1] == [16.75, formats.get("bfloat16").max] and k["sources"] == ["losses.py:79"]


def test_the_log_cosh_rewrite_neither_overflows_nor_cancels():
    """log(cosh(z)) in float16 is ∞ from |z| ≈ 11 (cosh overflows 65504); its rewrite
    (log1p(2·sinh(z/2)²) below |z| = 1, |z| + log1p(e^−2|z|) − log 2 above) removes
    every NaN and ∞ and loses no normal value, loss and gradient, over [−30, 30]: a
    fix. (logaddexp(z, −z) − log 2 instead loses every small value to 0.)"""
    r = pl.check(f"{USER}:log_cosh", dtypes=["float16"], targets=[0.0], value_range=(-30.0, 30.0))
    for row in (x for x in r.rows if x["form"] == "log_cosh"):
        fix = row["fix"]
        assert fix["better"] and fix["after"]["nan"] == fix["after"]["inf"] == 0, row["quantity"]
        assert fix["after"]["zero"] == fix["after"]["zero_subnormal"], row["quantity"]


def test_killed_and_halved_gradients_are_gated_apart():
    """bce_clip in float32 at y = 0, every value of [16.5, 16.75]: the clip's bound
    1 − 1e-7 is 1 − 2^−23 in float32; from 16.63553 (the first float32 where σ rounds to
    1, bce_naive_chain's onset too) σ passes it and the gradient is 0, and below, where
    the clip ties, it is halved. `--fail-on killed` counts the first, `halved` the other."""
    r = pl.check(f"{USER}:bce_clip", dtypes=["float32"], targets=[0.0], causes=False, exhaustive=True,
                 value_range=(16.5, 16.75))
    row = r.row("bce_clip", "float32", 0.0, quantity="grad")
    k = row["killed_gradient"]
    assert k["killed"]["bands"] == [[16.63553237915039, 16.75]]
    assert pl.gates.count(row, "killed") == k["killed"]["count"] > 0
    assert pl.gates.count(row, "halved") == k["halved"]["count"] > 0
    assert k["killed"]["count"] + k["halved"]["count"] <= row["points"]


def test_a_fix_with_the_built_in_forms_counts_is_as_good_as_it(ce4):
    """A naive K = 4 cross-entropy in float16 (margin, top): its log_softmax fix computes
    exactly what optax's loss computes (the same counts, class by class, and the same 0
    onset), so the built-in is "as good as" it, not better, although the built-in row's
    zeros are graded below eps (it has that figure) and the check's are not."""
    fix = next(r for r in ce4.rows if r["form"] == "ce_naive+fix" and r["quantity"] == "loss")
    built = next(r for r in ce4.rows if r["form"] == "ce_log_softmax")
    assert fix["counts"] == built["counts"] and fix["onset"]["zero"] == built["onset"]["zero"]
    text = " ".join(ce4.summary(200).split())
    assert "Built-in for the loss, the same function: ce_log_softmax = optax.softmax_cross_entropy_with_integer_labels" in text
    assert "(f16 0 only below eps): as good as the best form checked above" in text


def test_a_built_in_form_is_ranked_on_the_cases_the_check_swept_too(ce4):
    """A fix is swept only where its original broke; the built-in forms on every case.
    A built-in row on a case the check has no row for (here a clean copy standing for
    the offset sweep) must not make the built-in look better: the comparison is on the
    cases both were swept on, where the fix's counts are the built-in's."""
    from precision_lab.output import grades, ranking

    fix = [r for r in ce4.rows if r["form"] == "ce_naive+fix"]
    built = [r for r in ce4.rows if r["form"] in ("ce_log_softmax", "ce_fused")]
    clean = [r.replace(sweep="offset", counts={**r["counts"], "ok": r["points"], "zero": 0, "zero_subnormal": 0,
                                                "zero_negligible": 0}) for r in built]
    mine = grades.verdicts(fix)
    text = " ".join(ranking._against_builtin(mine, grades.verdicts(built + clean), list(mine[0].by_format),
                                             200).plain.split())
    assert text.count("as good as the best form checked above") == 2 and "better" not in text, text


def test_a_clip_that_ties_halves_the_gradient_at_either_target():
    """float16 σ(z) rounds onto the clip's upper bound 1 − 1e-3 → 0.99902344 exactly for z
    in [6.52734375, 7.62109375]: there jnp.clip's max and min tie and the gradient is half
    what the program without the clip computes, at y = 0 and at y = 1 alike (at y = 1 the
    format's own gradient, −0.000977, is far from the exact one, so the halving is judged
    against the program run without its clip)."""
    r = pl.check(f"{USER}:bce_clip_wide", dtypes=["float16"], targets=[0.0, 1.0], causes=False)
    for y in (0.0, 1.0):
        k = r.row("bce_clip_wide", "float16", y, quantity="grad")["killed_gradient"]
        assert [6.52734375, 7.62109375] in k["halved"]["bands"], y
        assert pl.gates.count(r.row("bce_clip_wide", "float16", y, quantity="grad"), "halved") == k["halved"]["count"]


def test_the_screen_says_how_the_exact_values_were_found(naive):
    """The check's screen sums its rows' `tiers`: the points the float64 intervals, the
    balls and the identity rewrite decided, and those left unresolved (naive BCE, float16,
    y = 0: the intervals and the rewrite decide every point, see the hand derivation)."""
    tiers = [r["tiers"] for r in naive.rows if r.get("tiers")]
    total = {k: sum(t[k] for t in tiers) for k in ("interval", "exact", "rewritten", "unresolved")}
    assert total["interval"] > 0 and total["rewritten"] > 0 and total["unresolved"] == 0
    text = " ".join(naive.summary(200).split())
    assert (f"Exact values, over every row's points: {total['interval']} by float64 intervals, "
            f"{total['exact']} on arb balls, {total['rewritten']} by the identity rewrite") in text
    assert f"; {total['unresolved']} unresolved" in text


def test_a_loss_that_reads_a_tracer_as_a_number_is_not_told_to_give_classes(tmp_path, capsys):
    """float(z) inside a loss: one sentence naming the line and what JAX cannot trace,
    without the hint meant for a vector function given a scalar."""
    f = tmp_path / "f.py"
    f.write_text("import jax.numpy as jnp\n\n\ndef loss(z, y):\n    return jnp.asarray(float(z) * y, z.dtype)\n")
    assert cli.main(["check", f"{f}:loss", "--dtypes", "float16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "f.py:5" in err[0] and "traced value" in err[0] and "--classes" not in err[0], err


def test_the_offset_sweeps_two_rules_are_said_beside_the_built_in_forms(ce4):
    """On the offset sweep a built-in row counts the rounding of c + 1 against the form and
    a check's row is judged at the vector it receives (a log_softmax CE written by hand,
    bfloat16, K = 10: 0 inexact points in the check, 47% in optax's row). Where the best
    built-in form's offset rows have inexact points, its line says the shares are not
    comparable there; on the margin sweep alone it says nothing of it."""
    from precision_lab.output import grades, ranking

    fix = [r for r in ce4.rows if r["form"] == "ce_naive+fix"]
    built = [r for r in ce4.rows if r["form"] in ("ce_log_softmax", "ce_fused")]

    def offset(rows, inexact):
        return [r.replace(sweep="offset", counts={**r["counts"], "inaccurate": inexact}) for r in rows]

    mine = grades.verdicts(fix + offset(fix, 0))
    labels = list(mine[0].by_format)
    note = "On the offset sweep the built-in rows count the rounding of c + 1 against the form"
    text = " ".join(ranking._against_builtin(mine, grades.verdicts(built + offset(built, 100)), labels, 200)
                    .plain.split())
    assert text.count(note) == 2, text
    plain = " ".join(ranking._against_builtin(grades.verdicts(fix), grades.verdicts(built), labels, 200).plain.split())
    assert note not in plain and "as good as" in plain


def test_a_computed_nan_where_the_real_is_undefined_breaks_the_row():
    """The gradient of `where(z > 100, 1/(z − z), z)` multiplies the untaken branch's zero
    cotangent by ∞: NaN as computed at every point, 2z on the reals. Each point counts
    `nan`, not `unresolved`, and the row is graded `breaks` (it was once recommended as
    "stable where decided", when 0·∞ was undefined)."""
    from precision_lab.output import grades

    r = pl.check(f"{USER}:where_div", dtypes=["float8_e5m2"], targets=[0.0], causes=False)  # 245 points:
    loss, grad = (next(row for row in r.rows if row["quantity"] == q) for q in ("loss", "grad"))  # each one
    finite = 2 * formats.get("float8_e5m2").max_ordinal + 1  # goes up every ball precision to the cap
    assert grad["counts"]["nan"] == finite and grad["counts"]["unresolved"] == 0
    assert grades.grade(grad) == "breaks" and grades.grade(loss) != "breaks"

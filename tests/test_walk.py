"""The exact jaxpr evaluator (on arb balls) and the walk that names the operation that broke a form.

Flush findings are those of XLA's CPU backend, which flushes float32 subnormal
results to 0; the suite runs on the CPU.
"""

import json
import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax import lax

import precision_lab as pl
from precision_lab import cli
from flint import arb

from precision_lab.numerics import balls, formats, jaxpr, structure
from precision_lab.analysis import walk as W
from precision_lab.numerics.structure import UNDECIDED

mp = mpmath.mp
TINY = 5e-324  # the smallest float64 subnormal
PREC = W.default_prec(formats.get("float64"))  # the walk's working bits for float64 (2214)


def ex(f, *args):
    """The exact value of f(*args) (float64 arguments), as a scalar or object array."""
    xs = [jnp.asarray(a, jnp.float64) if isinstance(a, float) else jnp.asarray(a) for a in args]
    flat = jaxpr.flatten(jax.make_jaxpr(f)(*xs))
    out = np.frompyfunc(_mpf, 1, 1)(balls.evaluate(flat, [np.asarray(x) for x in xs], PREC)[0])
    return out if np.ndim(out) == 0 else structure.obj(out)


def _mpf(v):
    """A ball's midpoint as an mpf (exactly; ±∞ as mpmath's), other values as they are."""
    if not isinstance(v, arb):
        return v
    if not v.is_finite():
        return mpmath.inf if v > 0 else -mpmath.inf
    man, e = (int(t) for t in v.mid().man_exp())
    with mpmath.workprec(max(53, man.bit_length())):
        return mpmath.mpf((man, e))


def close(a, b, bits=240):
    """a equals b to `bits` bits (both mpf, finite)."""
    return a == b or abs(a - b) <= abs(b) * mpmath.mpf(2) ** -bits


F = mpmath.mpf
CASES = [  # (primitive, function, args, reference computed with mpmath at 400 bits)
    ("add", lax.add, (TINY, 1e308), lambda: F(TINY) + F(1e308)),
    ("sub", lax.sub, (1.0, 2.0**-60), lambda: 1 - F(2) ** -60),
    ("mul", lax.mul, (1e-300, 1e-300), lambda: F(1e-300) ** 2),  # 1e-600: no underflow in the reals
    ("div", lax.div, (1.0, 3.0), lambda: F(1) / 3),
    ("neg", lax.neg, (TINY,), lambda: -F(TINY)),
    ("abs", lax.abs, (-1e308,), lambda: F(1e308)),
    ("sign", lax.sign, (-TINY,), lambda: F(-1)),
    ("max", lax.max, (TINY, 0.0), lambda: F(TINY)),
    ("min", lax.min, (-TINY, 0.0), lambda: -F(TINY)),
    ("exp", lax.exp, (700.0,), lambda: mpmath.exp(700)),
    ("exp", lax.exp, (-800.0,), lambda: mpmath.exp(-800)),  # below float64's subnormals
    ("exp2", lax.exp2, (-1074.5,), lambda: F(2) ** F(-1074.5)),
    ("log", lax.log, (TINY,), lambda: mpmath.log(F(TINY))),
    ("log1p", lax.log1p, (1e-300,), lambda: mpmath.log1p(F(1e-300))),
    ("expm1", lax.expm1, (1e-300,), lambda: mpmath.expm1(F(1e-300))),
    ("logistic", lax.logistic, (-800.0,), lambda: 1 / (1 + mpmath.exp(800))),
    ("tanh", lax.tanh, (1e-300,), lambda: mpmath.tanh(F(1e-300))),
    ("sqrt", lax.sqrt, (TINY,), lambda: mpmath.sqrt(F(TINY))),
    ("rsqrt", lax.rsqrt, (1e-300,), lambda: 1 / mpmath.sqrt(F(1e-300))),
    ("pow", lax.pow, (2.0, -1074.5), lambda: F(2) ** F(-1074.5)),
    ("integer_pow", lambda x: lax.integer_pow(x, 3), (1e300,), lambda: F(1e300) ** 3),
    ("square", lax.square, (1e-200,), lambda: F(1e-200) ** 2),
    ("clamp", lambda x: lax.clamp(0.0, x, 1.0), (1e308,), lambda: F(1)),
    ("reduce_precision", lambda x: lax.reduce_precision(x, 5, 10), (1.0 / 3,), lambda: F(1.0 / 3)),
    ("convert_element_type", lambda x: x.astype(jnp.float16), (1.0 / 3,), lambda: F(1.0 / 3)),
    ("stop_gradient", lax.stop_gradient, (TINY,), lambda: F(TINY)),
    ("lgamma", lax.lgamma, (3.0004244339097747,), lambda: mpmath.loggamma(F(3.0004244339097747))),
    ("digamma", lax.digamma, (1e-300,), lambda: mpmath.digamma(F(1e-300))),
    ("erf_inv", lax.erf_inv, (1 - 2.0**-50,), lambda: mpmath.erfinv(1 - F(2) ** -50)),
    ("atan2", lax.atan2, (TINY, -1.0), lambda: mpmath.atan2(F(TINY), -1)),
    ("cbrt", lax.cbrt, (-1e-300,), lambda: -mpmath.cbrt(F(1e-300))),
    ("cosh", lax.cosh, (700.0,), lambda: mpmath.cosh(700)),
    ("cumsum", lambda x: jnp.cumsum(jnp.stack([x, 1e308]))[1], (TINY,), lambda: F(TINY) + F(1e308)),
]


@pytest.mark.parametrize("name,f,args,ref", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_exact_primitive_against_mpmath(name, f, args, ref):
    """Each primitive on real numbers: the reference is the same real function in mpmath
    at 400 bits, so 240 bits of agreement is what the walk's float64 precision must give.
    Arguments sit at the subnormal and huge ends of float64, where IEEE would round,
    flush or overflow and the reals do not (1e-300² = 1e-600; exp(−800) > 0); a
    conversion to float16 and reduce_precision are the identity on the reals."""
    prims = [e.primitive.name for e in jaxpr.flatten(jax.make_jaxpr(f)(*map(jnp.float64, args))).eqns]
    assert name in prims
    with mpmath.workprec(400):
        want = ref()
    assert close(ex(f, *args), want)


def test_exact_comparisons_and_logic():
    """Comparisons see the real values: the smallest subnormal is above 0 and 2**−1074 + 1e308 ≠ 1e308."""
    assert ex(lambda a, b: a > b, TINY, 0.0) is True
    assert ex(lambda a, b: a + b != b, TINY, 1e308) is True  # exact add keeps the subnormal
    for op, want in ((lax.eq, False), (lax.ne, True), (lax.lt, False), (lax.le, False), (lax.ge, True)):
        assert ex(op, 1.0, 0.5) is want
    assert ex(lambda a: lax.bitwise_not(a > 0) | (a < 0) & (a == a), 1.0) is False
    assert ex(lambda a: jnp.isfinite(a), 1e308) is True


def test_exact_undefined_and_infinite_values():
    """The documented real semantics: log 0 = −∞, x/0 = ±∞ with x's sign, 0/0, ∞ − ∞, 0·∞
    and log(−1) are undefined; select_n drops the branch not taken; undefined × an
    exact 0 is 0."""
    assert ex(lax.log, 0.0) == -mpmath.inf
    assert ex(lax.div, -1.0, 0.0) == -mpmath.inf and ex(lax.div, 2.0, 0.0) == mpmath.inf
    assert ex(lax.div, 0.0, 0.0) is UNDECIDED
    assert ex(lambda a: a - a, np.inf) is UNDECIDED
    assert ex(lambda a, b: a * b, 0.0, np.inf) == 0  # an exact 0 kills ∞ too (a zero cotangent)
    assert ex(lax.log, -1.0) is UNDECIDED and ex(lax.sqrt, -1.0) is UNDECIDED
    assert ex(lambda a: jnp.where(a > 0, jnp.log(a), 7.0), -1.0) == 7
    assert ex(lambda a: 0.0 * jnp.log(a), -1.0) == 0
    assert ex(lambda a: 1.0 + jnp.log(a), -1.0) is UNDECIDED
    # ln|Γ| is +∞ at a pole from both sides, ψ is not (opposite signs); both are +∞ at +∞
    assert ex(lax.lgamma, 0.0) == mpmath.inf and ex(lax.lgamma, -3.0) == mpmath.inf
    assert ex(lax.lgamma, np.inf) == mpmath.inf and ex(lax.digamma, np.inf) == mpmath.inf
    assert ex(lax.digamma, -3.0) is UNDECIDED and ex(lax.lgamma, -np.inf) is UNDECIDED


def test_exact_structural_primitives_against_jax():
    """Data movement is exact in any format, so float64 JAX gives the exact answer:
    every structural primitive must agree with it entry for entry."""
    x = np.arange(12.0).reshape(3, 4) / 7
    i = jnp.int32(1)

    def many(x):
        y = jnp.concatenate([x, x[:, :1]], axis=1)
        y = jnp.pad(y, ((1, 0), (0, 2)), constant_values=-1.0)
        y = y[1:, ::2] + lax.dynamic_slice(x, (i, i), (3, 3)).sum()
        y = lax.dynamic_update_slice(y, x[:1, :2], (i, i))
        g = x[jnp.array([2, 0])]  # gather
        s = jnp.zeros(4).at[2].set(x[0, 0])  # scatter
        d = lax.dot_general(x, x.T, (((1,), (0,)), ((), ())))
        r = jnp.expand_dims(x.max(0) - x.min(0), 0).squeeze(0).reshape(2, 2)
        io = lax.iota(jnp.float64, 4) * jnp.argmax(x[0]).astype(jnp.float64)
        c = lax.clamp(0.5, x, 1.0).sum(axis=(0, 1))
        return y.sum() + g.sum() + s.sum() + d.sum() + r.sum() + io.sum() + c

    want = float(jax.jit(many)(x))
    got = ex(many, x)
    assert abs(float(got) - want) <= 1e-12 * abs(want)
    prims = {e.primitive.name for e in jaxpr.flatten(jax.make_jaxpr(many)(x)).eqns}
    assert {"concatenate", "pad", "slice", "dynamic_slice", "dynamic_update_slice", "gather", "scatter",
            "dot_general", "reduce_max", "reduce_min", "reduce_sum", "argmax", "iota", "clamp",
            "reshape", "squeeze", "broadcast_in_dim"} <= prims


def test_exact_nested_calls_and_custom_derivatives():
    """jit, custom_jvp and custom_vjp are inlined and evaluated by their primal function:
    jax.nn.softplus (custom_jvp inside jit) at 0 is exactly ln 2."""

    @jax.custom_vjp
    def twice(x):
        return 2 * x

    twice.defvjp(lambda x: (twice(x), None), lambda r, g: (g,))
    with mpmath.workprec(400):
        ln2 = mpmath.log(2)
    assert close(ex(lambda x: jax.jit(jax.nn.softplus)(twice(x)), 0.0), ln2)


def test_unsupported_primitive_is_named():
    """A primitive without a rule raises, naming it."""
    with pytest.raises(jaxpr.UnsupportedPrimitive, match="bessel_i1e"):
        ex(lambda x: lax.bessel_i1e(x), np.ones(3))


def test_round_ordinal_is_one_rounding():
    """Rounding straight from the real: 1 + 2**−11 + 2**−60 is just above float16's tie
    between 1 and 1 + 2**−10, so it rounds up (a float64 detour would round it to the
    tie, then to even, down); beyond max + half an ULP is ∞."""
    f16 = formats.get("float16")
    one = formats.to_ordinal(np.float16(1), f16)
    with balls.precision(128):
        two = arb(2)
        assert balls.ordinal(1 + two ** -11 + two ** -60, f16) == one + 1
        assert balls.ordinal(1 + two ** -11, f16) == one  # the tie, to even
        assert balls.ordinal(arb(65520), f16) == f16.max_ordinal + 1
        assert balls.ordinal(two ** -25 * 1.5, f16) == 1  # subnormals are not flushed
        assert balls.ordinal(arb.pos_inf(), f16) == f16.max_ordinal + 1


# ------------------------------------------------------------------ the walk

TRUE = {  # the true formula each form stands for, in mpmath (s = σ(z))
    "bce_logits": lambda z, y: -(y * mpmath.log(1 / (1 + mpmath.exp(-z))) + (1 - y) * mpmath.log(1 / (1 + mpmath.exp(z)))),
    "bce_naive": lambda z, y: -(y * mpmath.log(1 / (1 + mpmath.exp(-z))) + (1 - y) * mpmath.log(1 / (1 + mpmath.exp(z)))),
    "mse": lambda z, y: (1 / (1 + mpmath.exp(-z)) - y) ** 2 / 2,
    "bce_fused": lambda z, y: 1 / (1 + mpmath.exp(-z)) - y,
    "bce_naive_chain": lambda z, y: 1 / (1 + mpmath.exp(-z)) - y,
}


@pytest.mark.parametrize("form", sorted(TRUE))
def test_walk_exact_value_is_the_true_formula(form):
    """The exact evaluator runs the form's own operations on real numbers, so at the
    final equation it must equal the textbook formula written independently in mpmath
    (for bce_naive_chain: ∂L/∂ŷ·σ'(z) = σ(z) − y, whatever the float16 computation did)."""
    for z in (-3.0, 0.5, 8.0):
        for y in (0.0, 1.0):
            w = pl.explain(form, "float16", z, y)
            with mpmath.workprec(400):
                want = TRUE[form](F(z), F(y))
            got = w.steps[-1].exact
            assert abs(got - want) <= mpmath.mpf(2) ** -200 * max(abs(want), 1), (form, z, y)


def test_float16_chain_at_8_divides_by_a_lost_difference():
    """float16 bce_naive_chain, z = 8, y = 0: σ(8) = 0.99966 rounds to 1 (float16's ULP
    below 1 is 2**−11 = 0.00049 > 1 − σ), so 1 − ŷ is 0 while the exact is 3.4e-4: the
    value is lost at that subtraction, and the first non-finite result is the division
    (1 − y)/(1 − ŷ) = 1/0 = ∞ that follows it."""
    w = pl.explain("bce_naive_chain", "float16", 8.0, 0.0)
    lost, nonfinite = w.first_lost, w.first_nonfinite
    assert (lost.primitive, lost.computed, "dloss_dyhat" in lost.source) == ("sub", 0.0, True)
    assert (nonfinite.primitive, nonfinite.computed, nonfinite.index) == ("div", math.inf, lost.index + 1)
    assert math.isnan(float(w.eager)) and not w.rewritten
    assert w.cause()["first_lost"]["index"] == lost.index


def test_float16_bce_naive_logs_an_underflowed_sigmoid():
    """float16 bce_naive, y = 1, z = −20: σ(−20) = 2.06e-9 is below half float16's
    smallest subnormal (2**−25 = 2.98e-8), so it rounds to 0 (an underflow, not a
    flush: the exact value rounds to 0 too), and log ŷ = −∞ where the exact is
    ln σ(−20) = −ln(1 + e^20) ≈ −20.000000002."""
    w = pl.explain("bce_naive", "float16", -20.0, 1.0)
    assert w.steps[0].primitive == "logistic" and "underflow" in w.steps[0].marks and w.steps[0].error == 0
    s = w.first_nonfinite
    assert (s.primitive, s.computed) == ("log", -math.inf)
    with mpmath.workprec(400):
        assert close(s.exact, -mpmath.log(1 + mpmath.exp(20)), 200)
    assert w.first_lost is s and "lost" in s.marks


def test_float16_softmax_ce_naive_overflows_in_exp():
    """float16 ce_naive at margin m = 12: e^12 = 162755 > 65504, float16's max, so the
    first non-finite result is the exp of the top logit (entry 0), marked overflow."""
    w = pl.explain("ce_naive", "float16", 12.0, family="softmax", classes=10)
    s = w.first_nonfinite
    assert (s.primitive, s.entry, s.computed) == ("exp", (0,), math.inf)
    assert "overflow" in s.marks and w.first_lost is s
    with mpmath.workprec(400):
        assert close(s.exact, mpmath.exp(12), 200)


def test_float32_bce_naive_flushes_sigmoid_before_log():
    """float32 bce_naive, y = 0, z = −87.3365478515625: σ(z) = 1.17549e-38 lies just below
    float32's smallest normal 1.17549435e-38, a subnormal that XLA's CPU backend flushes
    to 0; log 0 = −∞ and 0·(−∞) = NaN. The flush is named at the logistic, the first
    non-finite at the log; the jitted program computes the same NaN."""
    w = pl.explain("bce_naive", "float32", -87.3365478515625, 0.0)
    first = w.steps[0]
    assert first.primitive == "logistic" and first.computed == 0.0 and "flush" in first.marks
    assert 0 < first.exact < np.finfo(np.float32).tiny
    assert (w.first_nonfinite.primitive, w.first_nonfinite.index) == ("log", 1)
    assert math.isnan(float(w.eager)) and math.isnan(float(w.jitted)) and not w.rewritten
    assert w.cause()["flushes"][0]["primitive"] == "logistic"


def test_float32_chain_jit_rewrites_the_division():
    """float32 bce_naive_chain, y = 0, z = −88: op by op σ(−88) = 6.05e-39 (subnormal) is
    flushed to 0 and −y/ŷ = −0/0 is NaN, which the product carries to the end. XLA's
    jitted program rewrites −y/σ(z) as −y·(1 + exp(−z)) (finite: e^88 < float32's max), so
    its result is finite: the walk says the expression was rewritten and shows it."""
    w = pl.explain("bce_naive_chain", "float32", -88.0, 0.0)
    assert w.steps[0].primitive == "logistic" and "flush" in w.steps[0].marks
    assert (w.first_nonfinite.primitive, w.first_nonfinite.index) == ("div", 2)
    assert math.isnan(float(w.eager)) and math.isfinite(float(w.jitted))
    assert w.rewritten and w.cause()["rewritten"] is True
    hlo = "\n".join(w.hlo)
    assert "exponential" in hlo and "multiply" in hlo and len(w.hlo) <= W.HLO_LINES
    assert "XLA rewrote" in w.summary()


def test_cause_is_json_ready_and_text_renders():
    """The cause survives strict JSON (no NaN or ∞ numbers) and the text names the primitive."""
    w = pl.explain("bce_naive_chain", "float16", 8.0, 0.0)
    doc = json.loads(json.dumps(w.cause(), allow_nan=False))
    assert doc["first_nonfinite"]["computed"] == "inf" and doc["largest_local"]["primitive"] == "sub"
    assert "first non-finite at #5 div" in w.text()


def test_walk_of_any_function_and_allowance():
    """walk() takes any function; with an allowance above every local error nothing is lost,
    and the exact value of a correctly rounded sum is within half an ULP (error 0)."""
    w = W.walk(lambda a, b: a + b, (1.0, 2.0**-30), "float32", allowance=1e9)
    assert w.first_lost is None and w.steps[0].error == 0 and w.steps[0].local == 0
    assert close(w.steps[0].exact, 1 + F(2) ** -30)


def test_cli_explain(capsys):
    """The subcommand prints the table and the summary; bad input is one sentence, exit 2."""
    assert cli.main(["explain", "bce_naive", "--dtype", "float16", "--z", "-20", "--y", "1", "--no-color"]) == 0
    out, _ = capsys.readouterr()
    assert "logistic" in out and "first non-finite at #1 log" in out and "jitted program agrees" in out
    for argv in (["explain", "nope", "--dtype", "float16", "--z", "1"],
                 ["explain", "bce_naive", "--dtype", "float17", "--z", "1"],
                 ["explain", "ce_naive", "--family", "softmax", "--target-class", "mid", "--dtype", "float16", "--z", "1"]):
        assert cli.main(argv) == 2
        _, err = capsys.readouterr()
        assert err.startswith("precision-lab: ") and err.count("\n") == 1


def test_a_vector_steps_first_non_finite_entry_is_the_one_shown():
    """exp((v + 1000) − 1000) of the float16 vector [12, 0.1]: 1012 is exact, so entry 0
    is e^12 ≈ 162755, which overflows float16 (max 65504) while its real value is
    finite, and rounds to ∞ too (0 ULPs off); 1000.1 rounds to 1000, so entry 1 is
    e^0 = 1 against e^0.1 = 1.105 (about 100 ULPs off). The step that went non-finite
    shows the ∞ entry (what the cause line prints after →), not the finite entry
    with the larger error."""
    x = jnp.array([12.0, 0.1], jnp.float16)
    w = W.walk(lambda v: jnp.exp((v + 1000) - 1000), (x,), "float16", 4.0, "exp_vector")
    step = w.first_nonfinite
    assert step.primitive == "exp" and step.entry == (0,) and math.isinf(step.computed)


def test_a_cause_says_where_op_by_op_fails_before_the_compiled_onset():
    """float32 bce_naive_chain at y = 1, negative side. Op by op, σ(z) is subnormal once
    −z > −ln(smallest normal) = 87.33654, and XLA's CPU flushes it to 0, so −1/σ · σ'(z) is
    NaN from the first float32 beyond that; the jitted program fuses σ into
    1/(1 + e^−z) and fails only where e^−z overflows, −z ≥ ln(max) = 88.72284. The cause
    at the compiled onset says both, with the fused operations."""
    import math

    import precision_lab as pl
    from precision_lab.numerics import formats

    f32 = formats.get("float32")
    row = pl.sweep(dtypes=["float32"], targets=[1.0], forms=["bce_naive_chain"]).rows[0]

    def beyond(t):  # minus the first float32 above t
        c = f32.cast(t)
        return -float((c if float(c) > t else formats.next_value(c, f32)).astype(float))

    assert row["onset"]["nan"]["neg"] == beyond(math.log(f32.max)) == -88.72283935546875
    c = row["cause"]["nan"]["neg"]["compiled"]
    assert c["op_by_op"] == beyond(-math.log(f32.smallest_normal)) == -87.3365478515625
    assert {"exponential", "divide"} <= set(c["fused"]) and "ln(max)" in c["threshold"]
    assert row["cause"]["nan"]["pos"]["compiled"] is None  # at 16.64 both programs fail alike


def test_a_subnormal_input_read_as_zero_is_not_called_a_flush():
    """float32 1/x at x = 5e-39, a subnormal whose reciprocal 2e38 is finite: XLA's CPU
    reads x as 0 and gives ∞. The division's own result was never subnormal, so it is
    not a flush: the walk says the input was read as 0, and that the result overflowed."""
    from precision_lab.analysis.walk import walk

    w = walk(lambda v, y: jnp.log(1.0 / v), (np.float32(5e-39), np.float32(0)), "float32", 4.0, "recip")
    div = w.steps[0]
    assert div.primitive == "div" and div.computed == np.inf
    assert "flush" not in div.marks and {"subnormal input", "overflow"} <= set(div.marks)
    assert not w.flushes and "a subnormal input read as 0 at #0 div" in w.summary()


def test_a_ball_arb_cannot_bound_is_no_value_and_asks_for_more_bits():
    """arb's [± ∞] (a ball it cannot bound) is not the real ∞: the walk reads it as no
    value (UNDECIDED) and raises the precision for it; an exact ∞ is a value."""
    unbounded = arb(0, float("inf"))
    got = W._valued(structure.obj([arb(1), unbounded, arb.pos_inf()]))
    assert got[0] == 1 and got[1] is UNDECIDED and got[2].is_exact() and not got[2].is_finite()
    assert W._open(structure.obj([arb(1), unbounded]), "float16")
    assert not W._open(structure.obj([arb(1), arb.pos_inf()]), "float16")


def test_a_nan_on_an_undefined_real_is_where_it_broke():
    """The gradient of where(z > 100, 1/(z − z), z) multiplies the untaken branch's zero
    cotangent by ∞: 0 on the reals (an exact 0 kills ∞), NaN as computed. The walk marks
    that mul as where it broke (a cause line once said "no operation lost it"); a NaN
    where the real is undefined is marked too (log of −1); a sum holding +∞ (1/0) is +∞,
    a value, not undefined."""
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location("losses", pathlib.Path(__file__).parent / "user" / "losses.py")
    losses = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(losses)
    w = W.walk(lambda z, y: jax.grad(losses.where_div)(z, y), (1.5, 0.0), "float16")
    first = w.first_nonfinite
    assert first is not None and first.primitive == "mul" and math.isnan(first.computed) and first.exact == 0
    assert "nonfinite" in first.marks
    u = W.walk(lambda z: jnp.log(z - 2.0), (1.5,), "float16").first_nonfinite
    assert u is not None and u.primitive == "log" and "undefined" in u.marks and math.isnan(u.computed)
    s = W.walk(lambda z: jnp.sum(jnp.stack([1 / (z - z), jnp.exp(z)])), (1.5,), "float16")
    total = next(step for step in s.steps if step.primitive == "reduce_sum")
    assert "undefined" not in total.marks and total.error == 0 and s.prec == W.default_prec(formats.get("float16"))

"""The float64 references are the correctly rounded float64 of the exact values.

Expectations come from mpmath evaluating the definitions directly (not the
references' formulas), at 200 bits plus the bits the definition cancels (σ(z) − y
near σ(z) = y or σ(z) = 1, ln Σe^z − m for m ≫ 0), so they are exact well beyond
float64; `cr_float` rounds them once, by exact rational arithmetic (float(mpf) can
round a subnormal twice). Every comparison is exact (0 ULP): a float64 reference
that is off by one ULP makes a correct float64 kernel look wrong.
"""

import math
from fractions import Fraction

import mpmath
import numpy as np
from hypothesis import given, settings, strategies as st
import pytest

from precision_lab.engine import points, programs
from precision_lab.numerics import formats, rounding
from precision_lab.families import sigmoid, softmax, vector_reference

TARGETS = (0.0, 1.0, 0.5, 0.1)
OVERFLOW = math.log(np.finfo(np.float64).max)  # 709.78…: e^|z| overflows beyond it


def cr_float(v) -> float:
    """Correctly rounded float64 of an mpf (nearest, ties to even; subnormals, ±inf)."""
    if not isinstance(v, mpmath.mpf):
        with mpmath.workprec(64):
            v = mpmath.mpf(v)  # a Python int, exact here
    if not mpmath.isfinite(v) or v == 0:
        return float(v)
    sign, man, exp, bc = v._mpf_
    if exp + bc > 1100 or exp + bc < -1100:  # far beyond float64's range: ±inf or ±0
        return math.copysign(math.inf if exp + bc > 0 else 0.0, -1.0 if sign else 1.0)
    q = Fraction(man * 2**exp) if exp >= 0 else Fraction(man, 2**-exp)
    try:
        f = float(q)  # int / int: correctly rounded by CPython, subnormals included
    except OverflowError:
        f = math.inf
    return -f if sign else f


def _prec(x: float) -> int:
    """200 bits plus those the definitions cancel at x (σ(−|x|) ~ e^−|x| beside 1, and
    σ(x) − ½ ~ x/4 for small x); beyond |x| = 3000 every result is saturated."""
    a = min(abs(x), 3000.0)
    return 200 + int(1.5 * a) + (int(-math.log2(a)) if 0 < a < 1 else 0)


# ---------------------------------------------------------------- sigmoid


def sigmoid_exact(z: float, y: float) -> dict:
    """The exact values from their definitions at target y."""
    with mpmath.workprec(_prec(z)):
        Z, Y = mpmath.mpf(z), mpmath.mpf(y)
        s, c = 1 / (1 + mpmath.exp(-Z)), 1 / (1 + mpmath.exp(Z))
        sp = Z + mpmath.log1p(mpmath.exp(-Z)) if Z > 0 else mpmath.log1p(mpmath.exp(Z))  # softplus(z)
        spn = sp - Z if Z <= 0 else mpmath.log1p(mpmath.exp(-Z))  # softplus(−z)
        dloss = (-Y / s if Y else 0) + ((1 - Y) / c if Y != 1 else 0)
        return {
            sigmoid._ref_loss_bce: Y * spn + (1 - Y) * sp,
            sigmoid._ref_loss_mse: (s - Y) ** 2 / 2,
            sigmoid._ref_grad_bce: s - Y,
            sigmoid._ref_grad_mse: (s - Y) * s * c,
            sigmoid._ref_dloss: dloss,
            sigmoid._ref_dsigmoid: s * c,
        }


def check_sigmoid(z, y):
    forms = sigmoid.FAMILY.forms
    refs = programs.distinct_references(forms)[0]
    got = points.host_reference(sigmoid.FAMILY, forms, np.asarray(z, np.float64), y)
    bad = []
    for i, zi in enumerate(z):
        want = sigmoid_exact(float(zi), y)
        for r, (exact, _) in zip(refs, got):
            w = cr_float(want[r])
            if not (exact[i] == w or (np.isnan(exact[i]) and np.isnan(w))):
                bad.append((r.__name__, float(zi), float(exact[i]), w))
    assert not bad, bad[:10]


def sigmoid_bands(rng) -> np.ndarray:
    """Where the exponent range bites: σ(−|z|) passes 2**-53 (|z| ≈ 36.7), subnormal
    σ and overflowing 1/σ (703–710, ±709.78), σ's underflow (745), and the band's
    edges (660, 747), on both sides."""
    pos = np.concatenate([
        rng.uniform(36.0, 37.5, 12), rng.uniform(703.0, 710.0, 40),
        OVERFLOW + rng.uniform(-0.01, 0.01, 8), np.nextafter(OVERFLOW, [0.0, np.inf]),
        rng.uniform(744.0, 746.5, 16), rng.uniform(655.0, 665.0, 6), rng.uniform(745.0, 760.0, 6),
    ])
    return np.concatenate([pos, -pos])


@pytest.mark.parametrize("y", TARGETS)
def test_sigmoid_references_exact_on_exponent_bands(y):
    """Every sigmoid reference rounds correctly on the bands where double-double's
    exponent range bites (its low word quantised to 2**-1074, or 1/σ(z) from a
    subnormal σ): double-double alone was off by 1 to 3 ULP there."""
    check_sigmoid(sigmoid_bands(np.random.default_rng(int(10 * y))), y)


@pytest.mark.parametrize("y", TARGETS)
def test_sigmoid_references_exact_at_random_points(y):
    """Random points over [−800, 800] and over all float64 bit patterns (tiny |z|
    included, where σ(z) − ½ cancels for y = ½): every reference rounds correctly."""
    rng = np.random.default_rng(100 + int(10 * y))
    bits = rng.integers(0, 2**63 - 2**52, 40, dtype=np.int64).view(np.float64)  # finite
    z = np.concatenate([rng.uniform(-800, 800, 60), bits * rng.choice([-1.0, 1.0], 40)])
    check_sigmoid(z, y)


def test_sigmoid_near_the_root_of_sigma_minus_y():
    """σ(z) − y cancels near σ(z) = y: the float64 z next to logit(0.1) and 0 (for
    y = ½) lose tens of bits there, more than double-double has to spare."""
    root = math.log(0.1 / 0.9)
    z = np.array([root, np.nextafter(root, 0), np.nextafter(root, -np.inf), 0.0, 5e-324, -1e-300, 2.0**-60])
    check_sigmoid(z, 0.1)
    check_sigmoid(z, 0.5)


def test_dloss_dyhat_at_the_review_point():
    """float64 ∂L/∂ŷ at y = 1, z = −709.625 is −1/σ(z) = −(1 + e^709.625): the
    correctly rounded value is −1.5354006516580889576e308 (double-double from a
    subnormal σ gave −1.5354006516580894e308, 3 ULP off)."""
    form = sigmoid.FAMILY.form("dloss_dyhat")
    (exact, _), = points.host_reference(sigmoid.FAMILY, [form], np.array([-709.625]), 1.0)
    with mpmath.workprec(200):
        want = cr_float(-(1 + mpmath.exp(mpmath.mpf(709.625))))
    assert want == -1.5354006516580889576e308
    assert exact[0] == want


# ---------------------------------------------------------------- softmax


def softmax_exact(m: float, k: int, t: int):
    """z = (m, 0, …, 0): loss ln Σe^z − z_t and gradient p − onehot(t), correctly rounded."""
    with mpmath.workprec(_prec(m) + 64):
        M = mpmath.mpf(m)
        total = mpmath.exp(M) + (k - 1)
        loss = mpmath.log(total) - (M if t == 0 else 0)
        p0, pj = mpmath.exp(M) / total, 1 / total
        g = [cr_float(p0 - (t == 0)), cr_float(pj - (t == 1))]
        return cr_float(loss), np.array(g + [cr_float(pj)] * (k - 2))


@pytest.mark.parametrize("k", [2, 3, 10, 1000])
def test_softmax_margin_references_exact(k):
    """The margin sweep's float64 loss and gradient round correctly for both target
    classes: on the exponent bands (|m| ≈ 36.7, 640–760, ±709.78, 745), at random
    m, and for K = 2 where p_1 − 1 cancels. ln(K − 1) is no longer a float64
    constant (2**-53), and nothing is rounded twice."""
    fam = softmax.family(k)
    forms = [fam.form("ce_log_softmax"), fam.form("ce_fused")]
    rng = np.random.default_rng(k)
    pos = np.concatenate([rng.uniform(36.0, 37.5, 6), rng.uniform(640.0, 760.0, 24),
                          OVERFLOW + rng.uniform(-0.01, 0.01, 4), rng.uniform(744.0, 746.5, 6)])
    m = np.concatenate([pos, -pos, rng.uniform(-800, 800, 20), rng.uniform(-40, 40, 8), [0.0, 1.0]])
    for tc, t in softmax.TARGET_CLASSES.items():
        (loss, _), (grad, _) = points.host_reference(fam, forms, m, float(softmax.case("margin", tc)))
        for i, mi in enumerate(m):
            want_loss, want_grad = softmax_exact(float(mi), k, t)
            assert loss[i] == want_loss, (tc, mi, loss[i], want_loss)
            np.testing.assert_array_equal(grad[i], want_grad, err_msg=f"{tc} m={mi!r}")


# ---------------------------------------------------------------- vectors


def vector_exact(z: np.ndarray, t: int):
    with mpmath.workprec(3200):
        Z = [mpmath.mpf(float(v)) for v in z]
        total = mpmath.fsum(mpmath.exp(v) for v in Z)
        loss = cr_float(mpmath.log(total) - Z[t])
        return loss, np.array([cr_float(mpmath.exp(v) / total - (j == t)) for j, v in enumerate(Z)])


def test_vector_references_exact():
    """float64 loss and gradient of whole logit vectors round correctly: entries
    660–760 below the top one (subnormal or vanishing e^(z_j − max z)), all but the
    top one that far below (the loss is then (max z − z_t) plus a tiny tail, and
    max z − z_t, not exact in float64, is often a midpoint)."""
    rng = np.random.default_rng(7)
    f64 = formats.get("float64")
    for _ in range(120):
        k = int(rng.integers(2, 7))
        z = rng.standard_normal(k) * rng.choice([1.0, 100.0, 300.0])
        z[rng.integers(k)] -= rng.uniform(640, 760)
        if rng.random() < 0.3:
            z = -rng.uniform(690, 750, k)
            z[0] = rng.standard_normal() * 100
        top = int(np.argmax(z))
        for t in {top, (top + 1) % k}:
            (loss, _), (grad, _) = vector_reference.reference(z[None, :], np.array([t]), f64)
            want_loss, want_grad = vector_exact(z, t)
            assert loss[0] == want_loss, (z, t, loss[0], want_loss)
            np.testing.assert_array_equal(grad[0], want_grad, err_msg=f"z={z!r} t={t}")


# ---------------------------------------------------------------- rounding


def test_to_float64_rounds_once():
    """rounding.to_float64 is the correctly rounded float64 of an mpf's exact value: at
    random values over the whole range, subnormals, exact ties (to even) and beside
    them, and at the overflow threshold."""
    rng = np.random.default_rng(1)
    with mpmath.workprec(300):
        vals = [mpmath.mpf(int(m)) * mpmath.mpf(2) ** int(e) * s for m, e, s in zip(
            rng.integers(1, 2**62, 400), rng.integers(-1200, 1000, 400), rng.choice([-1, 1], 400))]
        tiny = mpmath.mpf(2) ** -1074
        vals += [tiny / 2, tiny * 3 / 2, tiny * 5 / 2, tiny / 2 * (1 + mpmath.mpf(2) ** -200),
                 mpmath.mpf(1) + mpmath.mpf(2) ** -53, mpmath.mpf(1) + 3 * mpmath.mpf(2) ** -53,
                 (2 - mpmath.mpf(2) ** -53) * mpmath.mpf(2) ** 1023,
                 (2 - mpmath.mpf(2) ** -54) * mpmath.mpf(2) ** 1023, mpmath.mpf(2) ** -1022 * (1 - mpmath.mpf(2) ** -60)]
        for v in vals:
            assert rounding.to_float64(v) == cr_float(v), v


@settings(max_examples=400, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(30, 140), st.integers(-1, 1),
       st.integers(0, 2**53))
def test_settled_agrees_with_rounding_both_ends_of_the_ball(m, shift, sign, frac):
    """rounding.settled's fast path (the ball strictly inside the nearest float64's
    rounding interval) gives what rounding the ball's two ends once each gives, or
    None exactly where those differ: near ties, subnormals and binade edges included."""
    import math

    from flint import arb

    with rounding.workprec(200):
        e = math.frexp(m)[1] - shift if m else -1074 - shift
        x = arb(m) + sign * arb(frac) * arb(2) ** (e - 53)  # an exact point near m, maybe on a tie
        for ball in (x, x + arb(0, math.ldexp(1.0, max(e - 8, -1100)))):
            lo, hi = rounding._exact_to_float64(ball.lower()), rounding._exact_to_float64(ball.upper())
            assert rounding.settled(ball) == (lo if lo == hi else None)


@settings(max_examples=600, deadline=None)
@given(st.integers(-(2**80), 2**80), st.integers(-1200, 1100),
       st.sampled_from(["float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2"]))
def test_binary_ordinal_is_the_nearest_value_ties_to_even(man, exp, name):
    """rounding.binary_ordinal (which exact.round_ordinal also uses) rounds an exact
    binary number to the format's nearest value, ties to the even significand, checked
    in exact fractions against the format's values next to it: subnormals included,
    and ±(max + 1) only beyond the largest finite value."""
    fmt = formats.get(name)
    v = Fraction(man) * Fraction(2) ** exp
    o = rounding.binary_ordinal(man, exp, fmt)

    def val(k):
        return Fraction(float(formats.from_ordinal(np.int64(k), fmt).astype(np.float64)))

    top = val(fmt.max_ordinal)
    if abs(o) > fmt.max_ordinal:
        assert abs(v) > top and (o > 0) == (v > 0)
        return
    d = abs(v - val(o))
    for k in (o - 1, o + 1):
        if abs(k) <= fmt.max_ordinal:
            dk = abs(v - val(k))
            assert d <= dk, (o, k)
            if d == dk:  # a tie: the even significand wins
                assert abs(o) % 2 == 0, (o, k)


def test_binary_ordinal_of_arb_sized_exponents_is_immediate():
    """Balls reach exponents like 2**-10**9 (e^(−z) of a huge z): rounding them is a
    comparison, not a mask of a billion bits (that once took gigabytes)."""
    f64, f16 = formats.get("float64"), formats.get("float16")
    assert rounding.binary_ordinal(3, -10**9, f64) == 0 and rounding.binary_ordinal(-5, -10**12, f16) == 0
    assert rounding.binary_ordinal(1, 10**9, f16) == f16.max_ordinal + 1
    assert rounding.binary_ordinal(-1, 10**9, f64) == -(f64.max_ordinal + 1)

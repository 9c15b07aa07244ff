"""Tests for precision_lab.dd, the double-double float64 reference, against mpmath.

References are computed by mpmath at 120 bits (mpmath.workprec(120)) from the
direct definitions, so they are independent of dd's own formulas.  Tolerances:

* REL = 2**-96 for sigmoid_parts (brief: four bits of slack on the ~2**-100
  target); ARITH_REL = 2**-100 for + - * / exp log1p (algorithm bounds are
  ~2**-103).  Both apply while |value| >= NORMAL_LO = 2**-968: below it the lo
  word is subnormal, the DD format itself cannot carry 96 bits, and we check an
  absolute error of at most 4 units of 2**-1074 instead.
* to_float() must equal the correctly rounded float64 of the true value
  (cr_float, exact rational rounding; mpmath's own float() can double-round
  subnormals), everywhere including the subnormal range.
"""

import warnings
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from precision_lab.numerics import dd
from precision_lab.numerics.dd import DD

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy FP warnings fail a test

PREC = 120
REL = 2.0**-96
ARITH_REL = 2.0**-100
NORMAL_LO = 2.0**-968
SUB_ABS = 4 * 2.0**-1074
MAX = np.finfo(np.float64).max
SETTINGS = settings(max_examples=250, deadline=None)

finite = st.floats(allow_nan=False, allow_infinity=False)
moderate = st.floats(-800.0, 800.0)


def to_mp(d: DD, i=()) -> mpmath.mpf:
    return mpmath.fadd(float(d.hi[i]), float(d.lo[i]), exact=True)


def cr_float(v: mpmath.mpf) -> float:
    """Correctly rounded float64 of v (round to nearest even, subnormals too)."""
    sign, man, exp, bc = v._mpf_
    if man == 0:
        return float(v)  # 0, inf or nan
    if exp + bc > 1025:
        return -np.inf if sign else np.inf
    if exp + bc < -1080:
        return -0.0 if sign else 0.0
    q = Fraction(man * 2**exp) if exp >= 0 else Fraction(man, 2**-exp)
    try:
        f = float(q)  # int / int: correctly rounded by CPython
    except OverflowError:
        f = np.inf
    return -f if sign else f


def check(d: DD, i, ref: mpmath.mpf, rel: float, what: str) -> None:
    got = to_mp(d, i)
    # to_float() is correctly rounded unless ref lies within the tolerance of a
    # rounding boundary (then no ~106-bit method can decide; hypothesis finds ties)
    if cr_float(ref * (1 + mpmath.mpf(rel))) == cr_float(ref * (1 - mpmath.mpf(rel))):
        assert float(d.to_float()[i]) == cr_float(ref), (what, got, ref)
    if np.isinf(cr_float(ref)):  # overflowed, as float64 would: hi = inf, lo = 0
        assert d.lo[i] == 0.0, what
        return
    err = abs(got - ref)
    if abs(ref) >= NORMAL_LO:
        assert err <= rel * abs(ref), (what, float(err / abs(ref)), ref)
    else:
        assert err <= SUB_ABS, (what, float(err), ref)


def sigmoid_refs(z: float):
    with mpmath.workprec(PREC):
        Z = mpmath.mpf(z)
        return (1 / (1 + mpmath.exp(-Z)), 1 / (1 + mpmath.exp(Z)),
                mpmath.log1p(mpmath.exp(Z)), mpmath.log1p(mpmath.exp(-Z)))


def check_sigmoid(zs) -> None:
    z = np.asarray(zs, dtype=np.float64)
    parts = dd.sigmoid_parts(z)
    for i in range(z.size):
        refs = sigmoid_refs(float(z[i]))
        with mpmath.workprec(PREC):
            for name, d, ref in zip(("s", "c", "sp", "spn"), parts, refs):
                check(d, i, ref, REL, f"{name}({z[i]!r})")


# ---- sigmoid_parts vs mpmath ------------------------------------------------------
@SETTINGS
@given(st.lists(finite, min_size=1, max_size=8))
def test_sigmoid_parts_any_finite(zs):
    """Whole float64 range (mostly saturated): REL = 2**-96 and correct rounding."""
    check_sigmoid(zs)


@SETTINGS
@given(st.lists(moderate, min_size=1, max_size=8))
def test_sigmoid_parts_moderate(zs):
    """[-800, 800], where all four parts are non-trivial: REL and correct rounding."""
    check_sigmoid(zs)


def test_sigmoid_parts_sweep():
    """Deterministic grid incl. the underflow edges and tiny |z|; tolerances as above."""
    z = np.concatenate([np.linspace(-760, 760, 761), np.linspace(-746, -744, 101),
                        np.linspace(708, 711, 101), np.linspace(-40, 40, 161),
                        np.geomspace(1e-320, 1.0, 60), -np.geomspace(1e-320, 1.0, 60)])
    check_sigmoid(z)


def test_sigmoid_parts_edges():
    """Hand-picked points: exact values where the result is exact, else REL/ARITH_REL."""
    s, c, sp, spn = dd.sigmoid_parts(np.array([0.0, -0.0]))
    for d in (s, c):
        assert np.all(d.hi == 0.5) and np.all(d.lo == 0.0)  # exact
    with mpmath.workprec(PREC):
        ln2 = mpmath.log(2)
        for d in (sp, spn):
            for i in range(2):
                check(d, i, ln2, ARITH_REL, "ln2")
    # +-max: sigmoid saturates exactly, softplus(max) is max itself (no nan)
    s, c, sp, spn = dd.sigmoid_parts(np.array([MAX, -MAX]))
    assert list(s.to_float()) == [1.0, 0.0] and list(c.to_float()) == [0.0, 1.0]
    assert list(sp.to_float()) == [MAX, 0.0] and list(spn.to_float()) == [0.0, MAX]
    assert sp.lo[0] == 0.0 and spn.lo[1] == 0.0
    # smallest subnormal, and the neighbourhoods where exp(-|z|) under/overflows
    check_sigmoid([5e-324, -5e-324, 2.2250738585072014e-308])
    edge = -745.1332191019411  # ln(2**-1075): exp(-|z|) rounds to 0 below it
    check_sigmoid(np.concatenate([edge + np.arange(-3, 4) * 1e-13,
                                  [-745.2, -745.0, -744.4, 709.78, 709.79, 709.8, -708.4]]))
    # non-finite inputs give sensible limits, never warnings
    s, c, sp, spn = dd.sigmoid_parts(np.array([np.inf, -np.inf, np.nan]))
    assert list(s.hi[:2]) == [1.0, 0.0] and list(c.hi[:2]) == [0.0, 1.0]
    assert list(sp.hi[:2]) == [np.inf, 0.0] and list(spn.hi[:2]) == [0.0, np.inf]
    assert all(np.isnan(d.hi[2]) for d in (s, c, sp, spn))
    assert all(np.all(d.lo[:2] == 0.0) for d in (s, c, sp, spn))


def test_to_float_correctly_rounded_just_above_underflow():
    """Results in [2**-1022, 2**-1000]: exact to_float (bar ties), abs error <= SUB_ABS.

    There lo is quantised to 2**-1074, a step not far below ulp(hi), so hi must
    come from a single rounding of the full value: renormalising hi + lo there
    misrounds up to ~1 in 4 values near 2**-1021, which this grid catches.
    """
    x = np.linspace(-708.39, -693.0, 1501)
    e = dd.exp(x)
    s, c, sp, spn = dd.sigmoid_parts(np.concatenate([x, -x]))
    n = x.size
    with mpmath.workprec(PREC):
        for i in range(n):
            ref = mpmath.exp(mpmath.mpf(x[i]))
            check(e, i, ref, ARITH_REL, f"exp({x[i]!r})")
            ref = 1 / (1 + 1 / ref)  # sigma(x) = sigma(-(-x)) = e/(1+e)
            check(s, i, ref, REL, f"s({x[i]!r})")
            check(c, n + i, ref, REL, f"c({-x[i]!r})")
            check(spn, n + i, mpmath.log1p(mpmath.exp(mpmath.mpf(x[i]))), REL, f"spn({-x[i]!r})")


def test_vectorised_matches_scalar_calls():
    """2,500 mixed points: each element equals a call on that element alone.

    hi must match exactly; lo within 2**-104 |hi| (not bitwise, in case a SIMD
    np.log1p differs from the scalar one in the last bit of the Newton start).
    """
    rng = np.random.default_rng(1234)
    z = np.concatenate([rng.uniform(-800, 800, 1000), rng.normal(0, 5, 750),
                        rng.standard_cauchy(500) * 1e5,
                        np.ldexp(rng.uniform(-1, 1, 250), rng.integers(-1074, 1024, 250))])
    rng.shuffle(z)
    vec = dd.sigmoid_parts(z)
    for i in range(z.size):
        for v, w in zip(vec, dd.sigmoid_parts(z[i])):
            assert v.hi[i] == w.hi and abs(v.lo[i] - w.lo) <= 2.0**-104 * abs(w.hi), (i, z[i])


def test_chunked_and_shaped_calls_agree():
    """Arrays over the internal block size, odd lengths, 2-D shapes: bitwise equal."""
    rng = np.random.default_rng(7)
    z = rng.uniform(-760, 760, 50_001)
    whole = dd.sigmoid_parts(z)
    pieces = [dd.sigmoid_parts(z[i:i + 777]) for i in range(0, z.size, 777)]
    for k, d in enumerate(whole):
        assert np.array_equal(d.hi, np.concatenate([p[k].hi for p in pieces]))
        assert np.array_equal(d.lo, np.concatenate([p[k].lo for p in pieces]))
    shaped = dd.sigmoid_parts(z[:50_000].reshape(250, 200))
    for d, e in zip(whole, shaped):
        assert e.hi.shape == (250, 200)
        assert np.array_equal(d.hi[:50_000], e.hi.ravel())
        assert np.array_equal(d.lo[:50_000], e.lo.ravel())
    x = DD(z, z * 2.0**-60)
    assert np.array_equal(dd.exp(x).hi[:100], dd.exp(x[:100]).hi)


# ---- exp, log1p -------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.floats(-746.0, 710.0), min_size=1, max_size=8), st.floats(-0.5, 0.5))
def test_exp_vs_mpmath(xs, f):
    """exp of a DD over [-746, 710]: ARITH_REL = 2**-100 (bound ~2**-104), rounding."""
    x = DD(np.array(xs), np.array(xs) * f * 2.0**-53)  # a genuine DD argument
    e = dd.exp(x)
    for i in range(len(xs)):
        with mpmath.workprec(PREC):
            check(e, i, mpmath.exp(to_mp(x, i)), ARITH_REL, f"exp({xs[i]!r})")


def test_exp_limits():
    """Exact limits: 0 below -745.1332, inf above 709.7827, nan kept, lo = 0."""
    x = np.array([-745.14, -746.0, -1e308, -np.inf, 709.79, 710.0, 1e308, np.inf, np.nan])
    e = dd.exp(x)
    assert list(e.hi[:4]) == [0.0] * 4 and list(e.hi[4:8]) == [np.inf] * 4
    assert np.isnan(e.hi[8]) and np.all(e.lo[:8] == 0.0)
    assert dd.exp(-745.13).to_float() == 5e-324  # exp(-745.13) = 2.5e-324 > 2**-1075: not flushed
    assert dd.exp(709.78).to_float() == cr_float(mpmath.exp(mpmath.mpf(709.78)))


@SETTINGS
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.floats(0.0, 1e-10), st.floats(0.0, 1e-290)),
                min_size=1, max_size=8), st.floats(-0.5, 0.5))
def test_log1p_vs_mpmath(xs, f):
    """log1p of a DD on [0, 1], incl. tiny values: ARITH_REL, correct rounding."""
    x = DD(np.array(xs), np.array(xs) * f * 2.0**-53)
    y = dd.log1p(x)
    for i in range(len(xs)):
        with mpmath.workprec(PREC):
            check(y, i, mpmath.log1p(to_mp(x, i)), ARITH_REL, f"log1p({xs[i]!r})")


def test_log1p_special():
    """0 exactly, subnormal, and both sides of the 2**-60 series switch: ARITH_REL."""
    xs = [0.0, 5e-324, 1e-300, 2.0**-60, 2.0**-61, 1e-17, 1e-8, 0.5, 1.0]
    y = dd.log1p(DD(np.array(xs)))
    assert y.hi[0] == 0.0 and y.lo[0] == 0.0
    for i, v in enumerate(xs):
        with mpmath.workprec(PREC):
            check(y, i, mpmath.log1p(mpmath.mpf(v)), ARITH_REL, f"log1p({v!r})")


def test_constants():
    """ln2 triple to 2**-150 (derivation typos would show), 42-bit head; 1/j! exact."""
    with mpmath.workprec(300):
        ln2 = dd._LN2_1 + (mpmath.mpf(dd._LN2_2) + dd._LN2_3)
        assert abs(ln2 - mpmath.log(2)) < mpmath.mpf(2) ** -150
        assert mpmath.mpf(dd._LN2_1) * 2**42 == int(dd._LN2_1 * 2**42)
        for j, (hi, lo) in enumerate(dd._C):
            inv = 1 / mpmath.factorial(j)
            assert abs(mpmath.mpf(hi) + lo - inv) < mpmath.mpf(2) ** -105 * inv


# ---- arithmetic ---------------------------------------------------------------------
mag = st.floats(-1e100, 1e100).filter(lambda v: abs(v) > 1e-100)
dd_parts = st.tuples(mag, st.floats(-0.5, 0.5))
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b,
       "*": lambda a, b: a * b, "/": lambda a, b: a / b}


def make(p) -> DD:
    h, f = p
    return DD(h, h * f * 2.0**-53)


@SETTINGS
@given(dd_parts, dd_parts, st.floats(-1.0, 1.0))
def test_arithmetic_vs_mpmath(pa, pb, eps):
    """+ - * / of DDs in [1e-100, 1e100], also cancelling: ARITH_REL of the result."""
    a, b = make(pa), make(pb)
    near = DD(-a.hi, -a.lo) * (1.0 + eps * 2.0**-40)  # forces heavy cancellation in a + near
    for other in (b, near):
        for name, op in OPS.items():
            got = op(a, other)
            with mpmath.workprec(PREC):
                ref = op(to_mp(a), to_mp(other))
                if ref != 0:
                    check(got, (), ref, ARITH_REL, f"{pa} {name} {other}")
                else:
                    assert got.to_float() == 0.0


@SETTINGS
@given(st.floats(1e150, 1.3e154), st.floats(1e150, 1.3e154))
def test_products_near_overflow(x, y):
    """a*b and a*b/b up to ~1.7e308 (plain Veltkamp splitting gives nan): ARITH_REL."""
    got, q = DD(x) * DD(y), DD(x * y) / DD(y)
    with mpmath.workprec(PREC):
        ref = mpmath.mpf(x) * mpmath.mpf(y)
        if ref < MAX:
            check(got, (), ref, ARITH_REL, "big product")
        check(q, (), mpmath.mpf(x * y) / mpmath.mpf(y), ARITH_REL, "big quotient")


def test_mixed_operand_types():
    """float, np.float64 and arrays on either side give the same DD as DD operands."""
    a = DD(np.array([1.5, -3.0]), np.array([2.0**-60, 2.0**-70]))
    arr = np.array([0.1, 7.0])
    for f in (0.1, np.float64(0.1), arr):
        for name, op in OPS.items():
            left, right = op(a, f), op(f, a)
            assert isinstance(left, DD) and isinstance(right, DD), (name, type(f))
            assert np.array_equal(left.to_float(), op(a, DD(f)).to_float())
            assert np.array_equal(right.to_float(), op(DD(f), a).to_float())
    assert np.array_equal((-a).hi, -a.hi) and np.all(abs(-a).hi > 0)
    assert abs(DD(-2.0, 2.0**-60)).lo == -(2.0**-60)  # abs flips both words
    assert DD.from_float(0.1).to_float() == 0.1 and DD(1.0, 1.0).hi == 2.0  # normalised


def test_inf_nan_propagation():
    """Exact: inf results are (±inf, 0), x/0 is ±inf, nan propagates, zero signs kept."""
    one, zero = DD(1.0), DD(0.0)
    cases = {
        "max+max": (DD(MAX) + DD(MAX), np.inf), "-max-max": (DD(-MAX) - MAX, -np.inf),
        "max*2": (DD(MAX) * 2.0, np.inf), "inf+1": (DD(np.inf) + one, np.inf),
        "inf*-2": (DD(np.inf) * -2.0, -np.inf), "1/0": (one / zero, np.inf),
        "-1/0": (-one / zero, -np.inf), "1/-0": (one / DD(-0.0), -np.inf),
        "inf/2": (DD(np.inf) / 2.0, np.inf), "max/0.5": (DD(MAX) / 0.5, np.inf),
        "1/inf": (one / DD(np.inf), 0.0), "max/max": (DD(MAX) / DD(MAX), 1.0),
    }
    for name, (d, want) in cases.items():
        assert d.hi == want and d.lo == 0.0, (name, d)
    assert ((DD(MAX) / 3.0) * 3.0).to_float() == MAX  # no spurious overflow inside
    for d in (DD(np.inf) - DD(np.inf), zero / zero, DD(np.inf) * 0.0, DD(np.nan) + 1.0):
        assert np.isnan(d.hi) and np.isnan(d.to_float())
    assert DD(np.inf).to_float() == np.inf and DD(-np.inf).lo == 0.0
    assert (one / (DD(-1e-300) * 1e-300)).hi == -np.inf  # the product underflows to -0.0


def test_no_warnings_escape():
    """Any RuntimeWarning from the module fails (also enforced file-wide)."""
    z = np.array([0.0, 5e-324, -5e-324, MAX, -MAX, np.inf, -np.inf, np.nan, 800.0, -800.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dd.sigmoid_parts(z)
        dd.exp(z)
        dd.log1p(DD(np.abs(z)))
        DD(z) * DD(z) / DD(z) + DD(z) - 1.0
        DD(z) / DD(0.0)


def test_a_working_precision_holds_for_its_block_while_another_thread_wants_its_own():
    """flint's precision is one setting for the process: a thread that sets it inside
    `workprec` (a cause walk beside a sweep's passes) keeps it until its block ends; a
    second thread's block waits. Without the lock the second thread's 53 bits would be
    in force inside the first's block (a user's reference then left hundreds of points
    unresolved that it settles alone)."""
    import threading

    from flint import ctx

    from precision_lab.numerics import balls, rounding

    inside, seen = threading.Event(), []

    def other():
        inside.wait()
        with rounding.workprec(53):
            seen.append(("other", ctx.prec))

    t = threading.Thread(target=other)
    t.start()
    with balls.precision(256):
        inside.set()
        t.join(timeout=0.5)  # it cannot enter while this block holds the precision
        seen.append(("mine", ctx.prec))
        assert t.is_alive()
    t.join(timeout=5)
    assert seen == [("mine", 256), ("other", 53)]

"""Class precedence, the absolute floor, and run tracking on constructed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from precision_lab.numerics import formats
from precision_lab.numerics.classify import CLASSES, CODE, classify, per_point
from precision_lab.engine.runs import RunTracker

F16 = formats.get("float16")
F32 = formats.get("float32")
E4M3 = formats.get("float8_e4m3fn")


def run_np(fmt, out, exact, scale, tol=4.0):
    out = fmt.cast(out)
    return classify(out, np.asarray(exact, np.float64), np.asarray(scale, np.float64), fmt, tol, np)


CASES = [
    # (computed, exact, scale, class, exact-is-subnormal)
    (np.nan, 1.0, 1.0, "nan", False),
    (np.nan, np.inf, np.inf, "nan", False),  # NaN first, whatever the exact value
    (np.inf, 1.0, 1.0, "inf", False),
    (-np.inf, 70000.0, 70000.0, "inf", False),  # wrong sign of ∞: exact rounds to +∞ in float16
    (np.inf, 70000.0, 70000.0, "ok", False),  # exact rounds to ∞ in float16 (max 65504)
    (0.0, 1e-3, 1e-3, "zero", False),  # a lost signal
    (-0.0, 1e-3, 1e-3, "zero", False),
    (0.0, 1e-6, 1e-6, "zero", True),  # 1e-6 is a float16 subnormal (below 2**-14)
    (0.0, 1e-9, 1e-9, "ok", False),  # exact rounds to 0 in float16: nothing lost
    (1.0 + 8 * 2**-10, 1.0, 1.0, "inaccurate", False),  # 8 ULPs, floor 4·eps·1 < 8·eps
    (1.0 + 3 * 2**-10, 1.0, 1.0, "ok", False),  # within 4 ULPs
    (2**-9, 2**-14, 2.0, "ok", False),  # many ULPs off, but below the floor 4·eps·2
    (2**-9, 2**-14, 2**-14, "inaccurate", False),  # same point without cancellation
]


@pytest.mark.parametrize("computed, exact, scale, cls, sub", CASES)
def test_precedence_and_floor_float16(computed, exact, scale, cls, sub):
    code, ulp, subnormal, _ = run_np(F16, [computed], [exact], [scale])
    assert code[0] == CODE[cls]
    assert bool(subnormal[0]) == sub


def test_device_and_host_classify_agree():
    comp, exact, scale, _, _ = zip(*CASES)
    host = run_np(F16, comp, exact, scale)
    dev = jax.jit(lambda o, e, s: classify(o, e, s, F16, 4.0, jnp))(
        jnp.asarray(F16.cast(comp)), jnp.asarray(exact, jnp.float64), jnp.asarray(scale, jnp.float64)
    )
    for h, d in zip(host, dev):
        np.testing.assert_array_equal(h, np.asarray(d))


def test_ulp_error_counts_lattice_steps_across_zero():
    # computed -tiny, exact +tiny: two steps apart in float32 (through the single 0)
    code, ulp, _, _ = run_np(F32, [-1.401298464324817e-45], [1.401298464324817e-45], [1.0])
    assert ulp[0] == 2


def test_e4m3fn_overflow_is_nan_not_inf():
    # e4m3fn has no infinity: 1000 is out of range and converts to NaN, a `nan` point
    code, _, _, _ = run_np(E4M3, [1000.0], [1000.0], [1000.0])
    assert code[0] == CODE["nan"]


def feed(tracker, codes, ords, chunk):
    """Feed in chunks; returns the points counted per class."""
    ords = np.asarray(ords, np.int64)
    total = 0
    for i in range(0, len(codes), chunk):
        total = total + tracker.feed(np.asarray(codes[i:i + chunk], np.int8), i, lambda pos: ords[pos])
    tracker.close()
    return total


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100])
def test_runs_are_the_same_whatever_the_chunking(chunk):
    nan, zero, ok = CODE["nan"], CODE["zero"], CODE["ok"]
    ords = np.arange(-6, 7)  # -6..6, contiguous lattice
    codes = [nan, nan, ok, zero, ok, ok, zero, zero, ok, nan, nan, nan, ok]
    t = RunTracker()
    per_class = feed(t, codes, ords, chunk)
    assert list(per_class) == [5, 0, 3, 0, 5, 0]  # points of ok, inaccurate, zero, inf, nan, unresolved
    assert t.count[nan] == 2 and t.count[zero] == 2
    assert [(r.start, r.end) for r in t.listed_runs(nan)] == [(-6, -5), (3, 5)]
    assert [(r.start, r.end) for r in t.listed_runs(zero)] == [(-3, -3), (0, 1)]
    assert t.neg[zero].end == -3 and t.pos[zero].start == 0  # the runs nearest zero on each side
    assert t.neg[nan].end == -5 and t.pos[nan].start == 3
    assert (t.pos[nan].prev, t.pos[nan].next) == (2, 6)  # neighbours, for refinement


def test_runs_keep_the_widest_and_count_all():
    inacc, ok = CODE["inaccurate"], CODE["ok"]
    codes = []
    for width in range(1, 41):  # 40 runs of widths 1..40 separated by single ok points
        codes += [inacc] * width + [ok]
    ords = np.arange(len(codes)) + 1
    t = RunTracker(listed=16)
    feed(t, codes, ords, 64)
    assert t.count[inacc] == 40
    widths = sorted(r.end - r.start + 1 for r in t.listed_runs(inacc))
    assert widths == list(range(25, 41))


def test_a_lost_entry_below_eps_times_the_largest_is_negligible_not_lost():
    """float32 gradients of two entries (computed, exact): 1e-20 lost beside 1.0 is below
    eps·1 = 2**-23: negligible; 1e-3 lost beside 1.0 is a lost value; 1e-40 (subnormal)
    lost beside 1.0 is a flush; 1e-20 and 1e-40 lost beside 1.0: negligible (not all flushes)."""
    from precision_lab.numerics.classify import per_point

    cases = [([1.0, 0.0], [1.0, 1e-20], "negligible"), ([1.0, 0.0], [1.0, 1e-3], "lost"),
             ([1.0, 0.0], [1.0, 1e-40], "flush"), ([1.0, 0.0, 0.0], [1.0, 1e-20, 1e-40], "negligible"),
             ([2.0**-100, 0.0], [2.0**-100, 2.0**-124], "negligible"), ([2.0**-100, 0.0], [2.0**-100, 2.0**-122], "lost")]
    for got, exact, kind in cases:
        out = F32.cast(np.array([got]))
        terms = classify(out, np.array([exact]), np.zeros((1, len(exact))), F32, 4.0, np)
        code, _, flush, small = per_point(*terms, (1,), F32)
        assert CLASSES[code[0]] == "zero", (got, exact)
        assert (bool(flush[0]), bool(small[0])) == (kind == "flush", kind == "negligible"), (got, exact, kind)


def test_a_nan_entry_breaks_a_point_beside_an_undecided_one():
    """A vector point with one NaN entry and one whose exact value is unresolved is NaN:
    unresolved ranks above nan among the codes, and a NaN must not hide behind it."""
    code = np.array([[CODE["nan"], CODE["unresolved"]], [CODE["ok"], CODE["unresolved"]]], np.int8)
    zeros = np.zeros(code.shape, bool)
    got, _, _, _ = per_point(code, np.zeros(code.shape), zeros, np.zeros(code.shape, np.int64), (1,),
                             formats.get("float16"))
    assert got.tolist() == [CODE["nan"], CODE["unresolved"]]

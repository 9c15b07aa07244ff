"""The engine's refinement of sampled boundaries, and its packed per-point words."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import precision_lab as pl
from precision_lab.engine import passes, programs, refine, runner
from precision_lab.numerics import formats, sampling
from precision_lab.numerics.classify import CODE
from precision_lab.engine.runs import RunTracker


def truth(o):
    """Classes of one form along the ordinals: NaN from 1000 on, 0 on [−5000, −3001],
    and one isolated inexact point at 2500 that a coarse sample steps over."""
    o = np.asarray(o)
    code = np.where(o >= 1000, CODE["nan"], CODE["ok"])
    code = np.where((o >= -5000) & (o <= -3001), CODE["zero"], code)
    return np.where(o == 2500, CODE["inaccurate"], code).astype(np.int8)


class StubRunner:
    """Stands in for a format's program: `refine` points a call, classes from `truth`."""

    def __init__(self, refine):
        self.refine, self.calls = refine, 0

    def dispatch(self, ords, forms=None):
        assert len(ords) <= self.refine
        self.calls += 1
        return np.stack([truth(ords)] * 2)  # two forms with the same classes

    @staticmethod
    def classes(pending):
        return pending


# program calls for the three brackets below (each twice, for two forms whose
# boundaries coincide and share their points), gaps of 997 ordinals: bisection (one
# point a bracket and round) takes ten rounds, 16-way splits take three; with two points
# a call, a bracket left alone in a call is split three ways (log2 3 bits a step)
CALLS = {1: 30, 2: 16, 5: 10, 64: 3, 1 << 16: 3}


@pytest.mark.parametrize("capacity", sorted(CALLS))
def test_refinement_reaches_adjacent_lattice_values_whatever_the_batch(capacity):
    sampled = np.arange(-10_000, 10_001, 997)  # no sample lands on a boundary
    t = RunTracker()
    t.feed(truth(sampled), 0, lambda i: sampled[i])
    t.close()
    twin = RunTracker()  # a second form whose onsets coincide: it shares the points
    twin.feed(truth(sampled), 0, lambda i: sampled[i])
    twin.close()
    runner = StubRunner(capacity)
    refined = refine.refine(runner, [t, twin])
    assert {k[1:]: v for k, v in refined.items() if k[0] == 0} == {k[1:]: v for k, v in refined.items() if k[0] == 1}
    by_code = {}
    for (form, code, inside, outside), value in refined.items():
        if form == 0:
            by_code.setdefault(code, []).append((inside, outside, value))
    # the NaN run's start, and both ends of the zero run, land exactly on the truth
    assert [v for i, o, v in by_code[CODE["nan"]] if o < i] == [1000]
    assert sorted(v for i, o, v in by_code[CODE["zero"]]) == [-5000, -3001]
    assert runner.calls == CALLS[capacity]


def test_sampled_float16_finds_the_exhaustive_onsets():
    """A sampled float16 axis, refined, gives the onsets of the exhaustive sweep."""
    fmt = formats.get("float16")
    fam = pl.FAMILIES["sigmoid"]
    forms = [fam.form("bce_naive_chain"), fam.form("bce_fused")]
    import jax

    dev = jax.devices("cpu")[0]
    full = passes.run_target(fam, forms, sampling.Axis(fmt), 1.0, 4.0, dev)
    sampled = passes.run_target(fam, forms, sampling.Axis(fmt, 512, 0, exhaustive=False), 1.0, 4.0, dev)
    for i in range(len(forms)):
        exact_onsets = passes.onsets_and_intervals(full, i)[0]
        refined_onsets = passes.onsets_and_intervals(sampled, i)[0]
        for cls in ("nan", "zero"):
            assert refined_onsets[cls]["pos"] == exact_onsets[cls]["pos"], (forms[i].name, cls)
    assert passes.onsets_and_intervals(sampled, 0)[0]["nan"]["pos"] == 7.625  # the textbook onset


@pytest.mark.parametrize("ulp", [0, 1, 7, 2**20, 2**20 + 1, 2**31 + 12345, 2**63])
def test_key_error_field_is_exact_to_2_20_and_orders_by_error(ulp):
    """A key's error field is exact to 2**20 ULPs and within 2**-19 above; keys of one
    level order by error, and an error-free failure sorts above every error."""
    import jax.numpy as jnp

    code = jnp.array([CODE["ok"], CODE["ok"], CODE["inaccurate"], CODE["nan"]], jnp.int8)
    keys = programs._pack(code, jnp.array([ulp, ulp // 2, 0, 0], jnp.uint64), jnp.zeros(4, bool), jnp.zeros(4, bool))
    bits = np.asarray(keys).view(np.uint32)
    back = float(programs._error(bits, np)[0])
    if ulp <= 2**20:
        assert back == ulp
    else:
        assert abs(back - ulp) <= ulp * 2.0**-19
    k = np.asarray(keys)
    assert k[0] >= k[1] and k[1] < k[2] < k[3]  # by error, then by level
    assert (k > 0).all() and np.isfinite(k).all() and (np.abs(k) >= np.finfo(np.float32).tiny).all()  # normal


def test_block_maximum_and_minimum_give_worst_level_and_wholeness():
    """Per block, the float32 maximum and minimum of the keys give its worst level, and
    whether all its points are of that level, whatever the errors and the mix below."""
    import jax.numpy as jnp

    rng = np.random.default_rng(1)
    blocks = []
    for worst in range(len(programs.LEVEL_CLASS)):
        blocks.append([worst] * 64)  # whole
        blocks.append([worst] * 63 + [max(worst - 1, 0)])  # one point lower
        blocks.append([worst] + list(rng.integers(0, worst + 1, 63)))  # any mix below
        blocks.append([0] * 63 + [worst])  # one point of the worst level among the lowest
    levels = np.array(blocks)
    np.testing.assert_array_equal(programs._level_class(np.arange(len(programs.LEVEL_CLASS), dtype=np.int8)), programs.LEVEL_CLASS)
    code = programs.LEVEL_CLASS[levels]
    ulp = rng.integers(0, 2**40, levels.shape, dtype=np.uint64)
    keys = programs._pack(jnp.asarray(code, jnp.int8), jnp.asarray(ulp), jnp.asarray(levels == programs.LEVEL_SUBNORMAL),
                          jnp.asarray(levels == programs.LEVEL_NEGLIGIBLE))
    top, bottom = (np.asarray(r(keys, axis=1)).view(np.uint32) >> programs.KEY_SHIFT for r in (jnp.max, jnp.min))
    np.testing.assert_array_equal(top.astype(int) - 1, levels.max(axis=1))
    np.testing.assert_array_equal(top == bottom, (levels == levels.max(axis=1, keepdims=True)).all(axis=1))
    # and a block all of one measured level gives its largest error (to 2**-19: above 2**20)
    whole_ok = np.asarray(jnp.max(keys[0])).reshape(1).view(np.uint32)
    largest = float(ulp[0].max())
    assert abs(float(programs._error(whole_ok, np)[0]) - largest) <= largest * 2.0**-19


def test_accelerator_program_gives_the_cpu_results(monkeypatch):
    """GPUs and TPUs classify with an optimization barrier instead of a conditional. Run
    that program shape here, on the CPU (where XLA drops the barrier, so it only runs
    slower), and it must measure exactly what the CPU's shape measures: every count,
    error, onset, interval and profile bin, on an exhaustive float16 axis and on sampled
    float32 and float64 axes of 2**18 + 1 points (four calls each) with their refined
    boundaries (float64's references come from the host)."""
    forms = ["bce_naive_chain", "bce_fused", "bce_logits", "mse", "dloss_dyhat"]  # NaN, ∞, 0, inexact and ok
    # causes off: the rows compared are the engine's figures, not the walks at their onsets
    kw = dict(dtypes=["float16", "float32", "float64"], targets=[0.0, 1.0], points=1 << 18, forms=forms, causes=False)
    cpu = pl.sweep("sigmoid", **kw).rows
    monkeypatch.setattr(runner, "_platform", lambda device: "gpu")
    accelerator = pl.sweep("sigmoid", **kw).rows
    assert len(cpu) == len(accelerator) == 3 * 2 * len(forms)
    for a, b in zip(cpu, accelerator):
        assert (a["form"], a["dtype"], a["target"]) == (b["form"], b["dtype"], b["target"])
        for key in ("points", "counts", "max_ulp", "onset", "intervals", "profile"):
            assert a[key] == b[key], (a["form"], a["dtype"], a["target"], key)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=300), st.lists(st.integers(1, 299), max_size=5),
       st.integers(1, 3))
def test_trackers_of_consecutive_shares_append_to_the_tracker_of_the_whole(codes, cuts, listed):
    """Each process of a multi-host sweep tracks its share of the axis (holding its
    first run apart); appending the shares in order gives exactly the tracker that
    saw the whole sequence: counts, sides, listed runs (ties broken by position),
    onsets' runs and the open run."""
    codes = np.array(codes, np.int8)
    ords = np.arange(len(codes)) * 3 - 100  # ordinals with gaps, across zero

    def tracked(lo, hi, hold):
        t = RunTracker(listed, hold_first=hold)
        if hi > lo:
            t.feed(codes[lo:hi], lo, lambda i: ords[i])
        return t

    whole = tracked(0, len(codes), False)
    bounds = [0, *sorted({c for c in cuts if c < len(codes)}), len(codes)]
    merged = tracked(bounds[0], bounds[1], False)
    for lo, hi in zip(bounds[1:-1], bounds[2:]):
        merged.append(tracked(lo, hi, True))
    for t in (whole, merged):
        t.close()
    assert merged.count == whole.count and merged.sides == whole.sides
    for k in whole.count:
        assert merged.listed_runs(k) == whole.listed_runs(k)
    assert merged.neg == whole.neg and merged.pos == whole.pos and merged.last == whole.last


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 200_000), st.sampled_from([1, 7, 64]), st.sampled_from([1, 3, 256]))
def test_profile_bins_are_found_without_listing_every_block(n, block, bins):
    """The profile's bin bounds, computed per bin (an exhaustive float32 row has 67
    million blocks, whose listing took 2 GiB), are those of the block-by-block rule:
    each block joins the bin of its first point."""
    starts = np.arange(0, n, block)
    b = starts * bins // n
    lo, hi = np.full(bins, -1), np.full(bins, -1)
    firsts = np.flatnonzero(np.diff(b, prepend=-1))
    lo[b[firsts]] = starts[firsts]
    hi[b[firsts]] = np.append(starts[firsts[1:]] - 1, n - 1)
    got = passes.bin_bounds(n, block, bins)
    assert np.array_equal(got[0], lo) and np.array_equal(got[1], hi)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**63) + 1, 2**63 - 1), st.integers(-(2**63) + 1, 2**63 - 1), st.integers(2, 1 << 24),
       st.data())
def test_a_spaced_axis_gives_exact_ordinals_even_where_its_span_passes_int64(a, b, n, data):
    """lo + ⌊i·(hi − lo)/(n − 1)⌋ in exact integers, on the host and under JAX: a float64
    range such as [−4, 4] spans more than 2**63 ordinals (its product once overflowed)."""
    import jax.numpy as jnp

    lo, hi = min(a, b), max(a, b)
    if hi - lo + 1 < n:
        return
    axis = sampling.Spaced(formats.get("float64"), lo, hi, n)
    i = np.array(sorted({0, n - 1, *data.draw(st.lists(st.integers(0, n - 1), max_size=8))}), np.int64)
    want = [lo + (k * (hi - lo)) // (n - 1) for k in i.tolist()]
    assert axis.ordinals(i).tolist() == want
    assert np.asarray(axis.ordinals(jnp.asarray(i), jnp)).tolist() == want


def test_a_float64_range_wider_than_two_either_side_sweeps():
    """--range=-4,4 in float64 spans 2**63.0004 ordinals: it sweeps (once a traceback)."""
    r = pl.sweep("sigmoid", dtypes=["float64"], targets=[1.0], forms=["bce_fused"], value_range=(-4.0, 4.0),
                 points=4096, causes=False)
    assert r.rows[0].points == 4096 and r.rows[0].counts["nan"] == 0 and r.rows[0].counts["ok"] > 4000

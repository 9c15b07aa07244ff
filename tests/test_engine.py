"""The engine's refinement of sampled boundaries, and its packed per-point words."""

import numpy as np
import pytest

import precision_lab as pl
from precision_lab import engine, formats, sampling
from precision_lab.classify import CODE
from precision_lab.runs import RunTracker


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

    def classes_at(self, ords):
        assert len(ords) <= self.refine
        self.calls += 1
        return np.stack([truth(ords)] * 2)  # two forms with the same classes


# program calls for the three brackets below (each twice, for two forms whose
# boundaries coincide and share their points), gaps of 997 ordinals: bisection (one
# point a bracket and round) takes ten rounds, 16-way splits take three
CALLS = {1: 30, 2: 20, 5: 10, 64: 3, 1 << 16: 3}


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
    refined = engine._refine(runner, [t, twin])
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
    full = engine.run_target(fam, forms, sampling.Axis(fmt), 1.0, 4.0, dev)
    sampled = engine.run_target(fam, forms, sampling.Axis(fmt, 512, 0, exhaustive=False), 1.0, 4.0, dev)
    for i in range(len(forms)):
        exact_onsets = engine.onsets_and_intervals(full, i)[0]
        refined_onsets = engine.onsets_and_intervals(sampled, i)[0]
        for cls in ("nan", "zero"):
            assert refined_onsets[cls]["pos"] == exact_onsets[cls]["pos"], (forms[i].name, cls)
    assert engine.onsets_and_intervals(sampled, 0)[0]["nan"]["pos"] == 7.625  # the textbook onset


@pytest.mark.parametrize("ulp", [0, 1, 7, 2**20, 2**20 + 1, 2**31 + 12345, 2**63])
def test_packed_error_field_orders_and_recovers_errors(ulp):
    """A packed word's error field is exact to 2**20 ULPs and within 2**-19 above, and
    as float32 the words order by error above every word without one."""
    import jax.numpy as jnp
    from jax import lax

    code = jnp.array([CODE["ok"], CODE["nan"]], jnp.int8)
    w = engine._pack(code, jnp.array([ulp, 0], jnp.uint64), jnp.array([False, False]), jnp.array([True, True]))
    assert float(w[0]) > float(w[1]) >= 0  # the NaN point carries no error field
    top = int(lax.bitcast_convert_type(w[0], jnp.uint32)) >> engine.ERR_SHIFT
    back = float(lax.bitcast_convert_type(jnp.uint32((top - engine.ERR_BASE) << engine.ERR_DROP), jnp.float32))
    if ulp <= 2**20:
        assert back == ulp
    else:
        assert abs(back - ulp) <= ulp * 2.0**-19


def test_block_levels_are_exact_for_blocks_of_64():
    """A block's sum of 2**(7·level) gives its worst level and whether it is all that
    level, whatever mix of lower levels fills it (64 points at most)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(1)
    blocks = []
    for worst in range(6):
        blocks.append([worst] * 64)  # whole
        blocks.append([worst] * 63 + [max(worst - 1, 0)] * 1)  # one point lower
        blocks.append([worst] + list(rng.integers(0, worst + 1, 63)))  # any mix below
        blocks.append([worst] + [0] * 63)  # one point of the worst level among the lowest
    levels = np.array(blocks)
    words = np.zeros(levels.shape, np.uint32)
    # words with these levels: class + 1 in bits 0-2, subnormal flag in bit 3 (level 3)
    cls = engine.LEVEL_CLASS[levels] + 1
    words = (cls | ((levels == engine.LEVEL_SUBNORMAL) << 3)).astype(np.uint32)
    weight = engine._level_weight(jnp.asarray(words.view(np.float32)))
    level, whole = engine._block_levels(weight.sum(-1), jnp.full(len(levels), 64.0))
    np.testing.assert_array_equal(np.asarray(level), levels.max(axis=1))
    np.testing.assert_array_equal(np.asarray(whole), (levels == levels.max(axis=1, keepdims=True)).all(axis=1))


def test_accelerator_program_gives_the_cpu_results(monkeypatch):
    """GPUs and TPUs get optimization barriers instead of conditionals, and 16× larger
    chunks on long axes, with refinement calls of a CPU chunk. Run that program shape
    here, on the CPU (where XLA drops the barriers, so it only runs slower), and it must
    measure exactly what the CPU's shape measures: every count, error, onset, interval
    and profile bin, on an exhaustive float16 axis (one CPU-sized chunk) and on sampled
    float32 and float64 axes of 2**18 + 1 points (one large chunk each) with their
    refined boundaries (float64's references come from the host)."""
    kw = dict(dtypes=["float16", "float32", "float64"], targets=[0.0, 1.0], points=1 << 18)
    sigmoid = pl.FAMILIES["sigmoid"]
    assert engine.call_sizes(sigmoid, "gpu", (1 << 18) + 1) == (engine.CHUNK * engine.ACCELERATOR_SCALE, engine.CHUNK)
    assert engine.call_sizes(sigmoid, "gpu", 1 << 16) == engine.call_sizes(sigmoid, "cpu", 1 << 30) == (engine.CHUNK,) * 2
    cpu = pl.sweep("sigmoid", **kw).rows
    monkeypatch.setattr(engine, "_platform", lambda device: "gpu")
    accelerator = pl.sweep("sigmoid", **kw).rows
    assert len(cpu) == len(accelerator) == 3 * 2 * len(pl.FAMILIES["sigmoid"].forms)
    for a, b in zip(cpu, accelerator):
        assert (a["form"], a["dtype"], a["target"]) == (b["form"], b["dtype"], b["target"])
        for key in ("points", "counts", "max_ulp", "onset", "intervals", "profile"):
            assert a[key] == b[key], (a["form"], a["dtype"], a["target"], key)

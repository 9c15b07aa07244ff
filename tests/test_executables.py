"""engine.executables: programs kept on disk by their jaxpr, loaded without lowering."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from precision_lab.engine import executables


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(executables, "FOLDER", str(tmp_path / "programs"))
    return tmp_path / "programs"


def _args(n=64):
    d = jax.devices()[0]
    x = np.linspace(-20, 20, n).astype(np.float16)
    return jax.device_put(x, d), jax.device_put(np.float16(1), d)


def _naive(x, y):  # the chain product: NaN where σ rounds to 1 (float16 from x ≈ 7.6)
    s = 1 / (1 + jnp.exp(-x))
    return (-(y / s) + (1 - y) / (1 - s)) * (s * (1 - s))


def test_a_kept_program_is_loaded_in_a_new_process_and_gives_the_jit_values_bit_for_bit(folder):
    """The first program compiles and is kept; a second program object (as a new
    process makes) with the same jaxpr loads it, lowering nothing, and both give
    jax.jit's values bit for bit, NaNs included."""
    x, y = _args()
    want = np.asarray(jax.jit(jax.vmap(_naive, (0, None)))(x, y))
    first = executables.jit(jax.vmap(_naive, (0, None)))
    got = np.asarray(first(x, y))
    kept = os.listdir(folder)
    assert len(kept) == 1 and np.isnan(want).any()
    second = executables.jit(jax.vmap(lambda a, b: _naive(a, b), (0, None)))  # another function, one jaxpr
    lowered = []
    real = jax.stages.Traced.lower
    try:
        jax.stages.Traced.lower = lambda self, *a, **k: lowered.append(1) or real(self, *a, **k)
        again = np.asarray(second(x, y))
    finally:
        jax.stages.Traced.lower = real
    assert lowered == [] and os.listdir(folder) == kept
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    np.testing.assert_array_equal(again.view(np.uint16), want.view(np.uint16))


def test_constants_and_shapes_are_part_of_the_key(folder):
    """Two functions whose jaxprs print alike but close over different constants, and
    one program at two batch sizes, are four executables, each with its own values."""
    x, y = _args()
    c1, c2 = np.arange(64, dtype=np.float16), np.arange(64, dtype=np.float16)[::-1].copy()
    p1 = executables.jit(lambda a, b: a * c1 + b)
    p2 = executables.jit(lambda a, b: a * c2 + b)
    np.testing.assert_array_equal(np.asarray(p1(x, y)), np.asarray(x) * c1 + np.float16(1))
    np.testing.assert_array_equal(np.asarray(p2(x, y)), np.asarray(x) * c2 + np.float16(1))
    p = executables.jit(jax.vmap(_naive, (0, None)))
    short, _ = _args(8)
    assert np.asarray(p(short, y)).shape == (8,) and np.asarray(p(x, y)).shape == (64,)
    assert len(os.listdir(folder)) == 4


def test_uncommitted_arguments_take_plain_jit_and_keep_nothing(folder):
    p = executables.jit(jax.vmap(_naive, (0, None)))
    out = np.asarray(p(jnp.asarray(np.ones(4, np.float16)), jnp.float16(0)))
    assert out.shape == (4,) and not folder.exists()


def test_an_unreadable_kept_program_is_compiled_and_kept_again(folder):
    x, y = _args()
    executables.jit(jax.vmap(_naive, (0, None)))(x, y)
    (path,) = folder.iterdir()
    path.write_bytes(b"not an executable")
    out = np.asarray(executables.jit(jax.vmap(_naive, (0, None)))(x, y))
    np.testing.assert_array_equal(out.view(np.uint16),
                                  np.asarray(jax.jit(jax.vmap(_naive, (0, None)))(x, y)).view(np.uint16))
    assert path.read_bytes() != b"not an executable"


def test_arguments_that_place_a_none_apart_are_two_programs(folder):
    """None holds no array: `(t, None)` and `(None, t)` trace one jaxpr, but each call
    must get the executable of its own argument structure."""
    x, y = _args()
    p = executables.jit(lambda a, terms: a * [t for t in terms if t is not None][0])
    q = executables.jit(lambda a, terms: a * [t for t in terms if t is not None][0])
    np.testing.assert_array_equal(np.asarray(p(x, (y, None))), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(q(x, (None, y))), np.asarray(x))
    assert len(os.listdir(folder)) == 2


def test_a_matmul_precision_set_by_a_with_block_is_another_program(folder):
    """Configuration a `with` block sets (here jax.default_matmul_precision) keys the
    program in memory as it keys jax.jit's own cache: without it, the call inside the
    block would reuse the executable of the call before it (on disk the dot's
    precision is also in the jaxpr's text)."""
    d = jax.devices()[0]
    a = jax.device_put(np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32), d)
    p = executables.jit(lambda u, v: u @ v)
    plain = np.asarray(p(a, a))
    with jax.default_matmul_precision("float32"):
        exact = np.asarray(p(a, a))
        np.testing.assert_array_equal(exact, np.asarray(jax.jit(lambda u, v: u @ v)(a, a)))
    np.testing.assert_array_equal(plain, np.asarray(jax.jit(lambda u, v: u @ v)(a, a)))
    assert len(os.listdir(folder)) == 2


def test_constants_of_a_nested_jit_and_the_bits_of_a_nan_are_in_the_key(folder):
    """A jaxpr's text shows neither the constants a nested jit closes over nor a NaN's
    sign: each is hashed by its bytes, so these four programs are four executables with
    jax.jit's values, bit for bit."""
    x, _ = _args(4)

    def table_kernel(table):
        inner = jax.jit(lambda v: v * table)
        return lambda v: inner(v) + 1

    def nan_kernel(fill):
        return lambda v: jnp.where(v > 0, v, fill)

    kernels = [table_kernel(np.arange(4, dtype=np.float16)), table_kernel(np.arange(4, 8, dtype=np.float16)),
               nan_kernel(np.float16(np.nan)), nan_kernel(-np.float16(np.nan))]
    for k in kernels:
        got = np.asarray(executables.jit(k)(x))
        np.testing.assert_array_equal(got.view(np.uint16), np.asarray(jax.jit(k)(x)).view(np.uint16))
    assert len(os.listdir(folder)) == 4


def test_a_weak_and_a_strong_scalar_argument_are_two_programs(folder):
    """A Python float is traced weak-typed and a float64 array strongly typed: the
    results' dtypes differ (float16 against float64), as under jax.jit."""
    x, _ = _args(4)
    p = executables.jit(lambda v, s: v * s)
    weak, strong = p(x, 2.0), p(x, jax.device_put(np.float64(2.0), jax.devices()[0]))
    assert (weak.dtype, strong.dtype) == (jax.jit(lambda v, s: v * s)(x, 2.0).dtype, np.float64) == (np.float16,
                                                                                                    np.float64)
    assert len(os.listdir(folder)) == 2


def test_calls_inside_a_trace_with_keywords_or_jit_disabled_take_plain_jit(folder):
    x, y = _args(4)
    p = executables.jit(lambda v, s=1.0: v * s)
    want = np.asarray(x) * np.float16(2)
    np.testing.assert_array_equal(np.asarray(p(x, s=2.0)), want)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda v: p(v, 2.0))(x)), want)
    with jax.disable_jit():
        np.testing.assert_array_equal(np.asarray(p(x, 2.0)), want)
    assert not folder.exists()


def test_a_damaged_kept_program_is_compiled_again_not_run(folder):
    """Bytes flipped inside a kept executable would crash XLA when loaded: its digest
    no longer matches, so it is compiled and kept again."""
    import pickle

    x, y = _args()
    executables.jit(jax.vmap(_naive, (0, None)))(x, y)
    (path,) = folder.iterdir()
    digest, key, data = pickle.loads(path.read_bytes())
    damaged = bytearray(data)
    damaged[len(data) // 3:len(data) // 3 + 64] = bytes(b ^ 0xFF for b in damaged[len(data) // 3:len(data) // 3 + 64])
    path.write_bytes(pickle.dumps((digest, key, bytes(damaged))))
    out = np.asarray(executables.jit(jax.vmap(_naive, (0, None)))(x, y))
    np.testing.assert_array_equal(out.view(np.uint16),
                                  np.asarray(jax.jit(jax.vmap(_naive, (0, None)))(x, y)).view(np.uint16))
    digest, key, data = pickle.loads(path.read_bytes())  # kept again, whole
    assert executables._digest(key, data) == digest and key == path.name


def test_a_kept_program_that_does_not_run_is_compiled_again(folder):
    """An executable is kept without being run again first; one that loads but fails
    when called (here another program's executable, whose arguments differ, under
    this program's key) is compiled again at its first call, gives the jit's values,
    and is kept anew in its place."""
    import pickle

    x, y = _args()
    wide = jax.device_put(np.zeros(128, np.float16), x.devices().pop())
    executables.jit(lambda a: a * 3)(wide)
    executables.jit(jax.vmap(_naive, (0, None)))(x, y)
    paths = sorted(folder.iterdir(), key=os.path.getmtime)
    other, mine = [p for p in paths if p.is_file()]
    other_bytes = other.read_bytes()
    mine.write_bytes(other_bytes)  # whole and readable, but a program of other arguments
    out = np.asarray(executables.jit(jax.vmap(_naive, (0, None)))(x, y))
    np.testing.assert_array_equal(out.view(np.uint16),
                                  np.asarray(jax.jit(jax.vmap(_naive, (0, None)))(x, y)).view(np.uint16))
    assert mine.read_bytes() != other_bytes  # kept again: its own executable
    digest, key, data = pickle.loads(mine.read_bytes())
    assert key == mine.name and executables._digest(key, data) == digest


def test_a_kept_file_of_another_program_with_the_same_arguments_is_not_trusted(folder):
    """A kept file names the key it was written under: another program's executable
    copied over this one's (same arguments, so it would run, with the other's values)
    is refused, compiled again, and kept anew."""
    x, y = _args()
    chain = jax.vmap(_naive, (0, None))
    fused = jax.vmap(lambda a, b: 1 / (1 + jnp.exp(-a)) - b, (0, None))
    executables.jit(chain)(x, y)
    (chain_path,) = [p for p in folder.iterdir() if p.is_file()]
    executables.jit(fused)(x, y)
    (fused_path,) = [p for p in folder.iterdir() if p.is_file() and p != chain_path]
    fused_path.write_bytes(chain_path.read_bytes())
    out = np.asarray(executables.jit(fused)(x, y))
    want = np.asarray(jax.jit(fused)(x, y))
    assert np.isnan(np.asarray(jax.jit(chain)(x, y))).any() and not np.isnan(want).any()
    np.testing.assert_array_equal(out.view(np.uint16), want.view(np.uint16))
    assert fused_path.read_bytes() != chain_path.read_bytes()


def test_prepared_programs_compile_side_by_side_and_give_the_jit_values(folder):
    """`prepare` traces and lowers each program here and compiles it on the pool; the
    call waits for it and gets jax.jit's values bit for bit, and the executable is kept
    (a new program object loads it). Programs already in memory or kept are left alone."""
    x, y = _args()
    fns = [lambda a, b, k=k: _naive(a, b) * k for k in (1, 2, 3)]  # three jaxprs (k is a literal)
    progs = [executables.jit(jax.vmap(f, (0, None))) for f in fns]
    executables.prepare([(p, (x, y)) for p in progs])
    assert all(len(p.pending) == 1 and p.pending[next(iter(p.pending))][0] is not None for p in progs)
    for f, p in zip(fns, progs):
        want = np.asarray(jax.jit(jax.vmap(f, (0, None)))(x, y))
        np.testing.assert_array_equal(np.asarray(p(x, y)).view(np.uint16), want.view(np.uint16))
        assert p.pending == {}
    assert len([n for n in os.listdir(folder) if n != "names"]) == 3
    again = executables.jit(jax.vmap(fns[0], (0, None)))
    executables.prepare([(again, (x, y))])  # kept: its trace waits, with no compilation
    ((future, _, path, _),) = again.pending.values()
    assert future is None and os.path.exists(path)
    executables.prepare([(progs[0], (x, y))])  # in memory: nothing
    assert progs[0].pending == {}


def test_jax_cache_comes_back_when_the_last_compilation_without_it_ends():
    """Compilations that bypass JAX's cache may overlap: the cache is off while any
    is inside, and back as it was when the last leaves; the switch is not part of a
    program's key (a cold run's keys once held it, and a second run compiled 180
    programs again)."""
    before = jax.config.jax_enable_compilation_cache
    device = jax.devices()[0]
    outside = executables._settings(device)
    with executables._without_jax_cache():
        with executables._without_jax_cache():
            assert jax.config.jax_enable_compilation_cache is False
            # a key made while a compilation runs beside it is the key made at any other time
            assert executables._settings(device) == outside
        assert jax.config.jax_enable_compilation_cache is False
    assert jax.config.jax_enable_compilation_cache is before

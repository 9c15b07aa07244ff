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
    """Configuration a `with` block sets (here jax.default_matmul_precision, which the
    jaxpr does not show) keys the executable, as it keys jax.jit's own."""
    d = jax.devices()[0]
    a = jax.device_put(np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32), d)
    p = executables.jit(lambda u, v: u @ v)
    plain = np.asarray(p(a, a))
    with jax.default_matmul_precision("float32"):
        exact = np.asarray(p(a, a))
        np.testing.assert_array_equal(exact, np.asarray(jax.jit(lambda u, v: u @ v)(a, a)))
    np.testing.assert_array_equal(plain, np.asarray(jax.jit(lambda u, v: u @ v)(a, a)))
    assert len(os.listdir(folder)) == 2

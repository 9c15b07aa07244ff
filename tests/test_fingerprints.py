"""engine.fingerprints: a program of the package's code named without tracing it, and
engine.executables finding its kept executable by that name."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import precision_lab as pl
from precision_lab.engine import executables, fingerprints, programs
from precision_lab.families import softmax
from precision_lab.numerics import formats


def _kernel_program(kernel=softmax.ce_naive):
    return executables.jit(jax.vmap(kernel, (0, None)))


def test_a_package_kernel_is_named_the_same_each_time_and_others_differently():
    """One kernel under vmap gives one name whatever object wraps it; another kernel,
    another label axis, and a function of no package (this test's) give others, or
    none."""
    a = fingerprints.of(jax.vmap(softmax.ce_naive, (0, None)))
    assert a is not None and len(a) == 64
    assert fingerprints.of(jax.vmap(softmax.ce_naive, (0, None))) == a
    assert fingerprints.of(jax.vmap(softmax.ce_shifted, (0, None))) != a
    assert fingerprints.of(jax.vmap(softmax.ce_naive, (0, 0))) != a
    assert fingerprints.of(jax.vmap(lambda z, t: softmax.ce_naive(z, t), (0, None))) is None


def test_values_a_program_reads_are_part_of_its_name(monkeypatch):
    """A module constant its code reads (one a test or an option may change), the
    values of its closure, and a float's sign and NaN payload all change the name."""
    fmt = formats.get("bfloat16")
    run = programs.classify_program.__wrapped__(fmt, 64, "cpu", 2.0, (0,), True)
    before = fingerprints.of(run.fn)
    monkeypatch.setattr(programs, "MAX_CHANGES", programs.MAX_CHANGES + 1)  # read by _runs, which run calls
    assert fingerprints.of(run.fn) != before
    monkeypatch.undo()
    assert fingerprints.of(run.fn) == before
    other = programs.classify_program.__wrapped__(fmt, 64, "cpu", 3.0, (0,), True)  # another tolerance
    assert fingerprints.of(other.fn) != before

    def names(value):
        return fingerprints.of(programs.codes_program.__wrapped__(fmt, value).fn)

    nan = np.frombuffer(np.uint64(0x7FF8000000000001).tobytes(), np.float64)[0]
    assert len({names(0.0), names(-0.0), names(float("nan")), names(float(nan))}) == 4


def test_what_a_function_imports_from_the_package_is_part_of_its_name(monkeypatch):
    """`from ..numerics import dd, ddj` inside a program's function: what it reads of
    those modules is walked as a global's would be."""
    from precision_lab.families import registry
    from precision_lab.numerics import dd, ddj

    run = programs.dd_reference_program.__wrapped__(registry.family("sigmoid"), formats.get("float16"))
    before = fingerprints.of(run.fn)
    assert before is not None
    monkeypatch.setattr(ddj, "JaxOps", dd.DD)
    assert fingerprints.of(run.fn) not in (before, None)


def test_an_object_it_cannot_name_gives_no_name():
    class Opaque:
        pass

    thing = Opaque()
    assert fingerprints.of(jax.vmap(lambda z: z * 2, 0)) is None  # not the package's code
    # the package's function, closing over an object of no known kind
    assert fingerprints.of(programs.positions_program.__wrapped__(thing, 8).fn) is None


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(executables, "FOLDER", str(tmp_path / "programs"))
    return tmp_path / "programs"


def _args():
    d = jax.devices()[0]
    z = np.zeros((16, 3), np.float16)
    z[:, 0] = np.linspace(-20, 20, 16)
    return jax.device_put(z, d), jax.device_put(np.int32(1), d)


def test_a_named_program_loads_its_executable_without_tracing_and_gives_jits_values(folder, monkeypatch):
    """The first program traces, compiles, keeps its executable and names it; a second
    program object (as a new process makes) finds the executable by name, tracing
    nothing, and both give jax.jit's values bit for bit."""
    z, t = _args()
    want = np.asarray(jax.jit(jax.vmap(softmax.ce_naive, (0, None)))(z, t))
    got = np.asarray(_kernel_program()(z, t))
    assert os.listdir(folder / "names") and np.isinf(want).any()
    traced = []
    real = executables._path
    monkeypatch.setattr(executables, "_path", lambda tr, d: traced.append(1) or real(tr, d))
    again = np.asarray(_kernel_program()(z, t))
    assert traced == []
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    np.testing.assert_array_equal(again.view(np.uint16), want.view(np.uint16))


def test_checking_names_catches_a_name_that_leads_to_another_executable(folder, monkeypatch):
    """With CHECK_NAMES (PRECISION_LAB_CHECK_NAMES=1) a named program is traced all the
    same, and a name whose executable is not its trace's is an error."""
    z, t = _args()
    _kernel_program()(z, t)
    executables.jit(jax.vmap(softmax.ce_shifted, (0, None)))(z, t)
    (naive_name,) = [n for n in os.listdir(folder / "names")
                     if open(folder / "names" / n).read() == os.path.basename(_traced_path(softmax.ce_naive, z, t))]
    shifted = _traced_path(softmax.ce_shifted, z, t)
    (folder / "names" / naive_name).write_text(os.path.basename(shifted))  # a wrong name
    monkeypatch.setattr(executables, "CHECK_NAMES", True)
    with pytest.raises(AssertionError, match="traces to"):
        _kernel_program()(z, t)


def _traced_path(kernel, z, t):
    return executables._path(jax.jit(jax.vmap(kernel, (0, None))).trace(z, t), z.sharding._device)


def test_a_sweeps_names_lead_to_the_executables_of_its_traces(monkeypatch):
    """Every program of a float16 sigmoid sweep, run twice with CHECK_NAMES: the second
    run's names (written by the first, or by earlier runs with the same code) each lead
    to the executable of the program's own trace; the rows are the same either way."""
    monkeypatch.setattr(executables, "CHECK_NAMES", True)
    first = pl.sweep("sigmoid", dtypes=["float16"], targets=[1.0], causes=False)
    second = pl.sweep("sigmoid", dtypes=["float16"], targets=[1.0], causes=False)
    assert executables.FOLDER is not None and len(os.listdir(os.path.join(executables.FOLDER, "names"))) > 10
    assert [r.to_json() for r in first.rows] == [r.to_json() for r in second.rows]


def test_a_name_is_made_at_each_new_signature_with_the_values_of_that_moment(folder, monkeypatch):
    """jax.jit traces a new signature with the module's values of that moment: so is the
    name made (a program first called at 64 points, a constant then changed, called at
    128 points, must not be named as it was before the change)."""
    fmt = formats.get("float16")
    p = programs.keys_program.__wrapped__(fmt, 2.0)
    d = jax.devices()[0]
    args = (jax.device_put(np.zeros(128, np.float16), d), jax.device_put(np.zeros((128, 2), np.int64), d))
    signature = executables._signature(args)
    before = p._name(signature)
    monkeypatch.setattr(programs, "ERR_DROP", programs.ERR_DROP + 1)
    assert p._name(signature) not in (before, None)


def test_what_a_program_reaches_through_a_class_is_part_of_its_name(monkeypatch):
    """A package class's methods, operators and class attributes (a patched method of
    the float64 arithmetic of softmax references) change the name."""
    from precision_lab.families import softmax_reference

    run = programs.reference_program(softmax.family(10), formats.get("float16"), "condition")
    before = fingerprints.of(run.fn)
    assert before is not None
    monkeypatch.setattr(softmax_reference._Device, "exp", staticmethod(jnp.exp2))
    assert fingerprints.of(run.fn) not in (before, None)


def test_bound_methods_jits_of_own_code_and_changed_sources(monkeypatch):
    """A bound builtin method is named with its object; a jax.jit of the package's code
    (whose options cannot be read back) gets no name; nor does anything once a file of
    the package changed after its source was hashed (the code loaded may be either)."""
    import functools

    k = softmax.ce_naive
    assert fingerprints.of(functools.partial(k, {1: 2}.get)) != fingerprints.of(functools.partial(k, {1: 3}.get))
    assert fingerprints.of(functools.partial(k, np.add.reduce)) != fingerprints.of(functools.partial(k, np.multiply.reduce))
    assert fingerprints.of(functools.partial(jax.jit(k))) is None
    assert fingerprints.of(functools.partial(jnp.exp)) is not None  # jax.numpy's own jitted functions are named
    assert fingerprints.of(k) is not None
    monkeypatch.setattr(fingerprints, "_stat", lambda path: (0, 0))
    assert fingerprints.of(k) is None


def test_a_trace_context_holding_an_unknown_object_takes_plain_jit():
    assert executables._plain((None, True, 3, (), "x")) == (None, True, 3, (), "x")
    assert executables._plain((None, object())) is None

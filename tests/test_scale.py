"""Sweeps at scale: every float32 value of a range, checkpoints that resume to the same
rows, several devices giving the rows of one, and `diff` between two results."""

import copy
import functools
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

import precision_lab as pl
from precision_lab.engine import checkpoints
from precision_lab import cli
from precision_lab.numerics import formats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMS = ["bce_naive_chain", "bce_fused", "bce_logits", "mse"]


def test_exhaustive_float32_range_matches_a_direct_evaluation_of_every_value():
    """float32, y = 0, z in [16.5, 16.8]: 157287 values, across the chain product's NaN
    onset (σ(z) rounds to 1 above about ln 2**24 ≈ 16.64, and (1/(1 − ŷ))·ŷ(1 − ŷ)
    is ∞ × 0). Every value's class from `pl.evaluate` (the same kernel program, a host
    double-double reference computed independently of the sweep's float64 one) gives
    the row's counts, its first NaN and its largest ULP error."""
    lo, hi = 16.5, 16.8
    rows = pl.sweep("sigmoid", dtypes=["float32"], targets=[0.0], forms=FORMS, exhaustive=True,
                    value_range=(lo, hi)).rows
    fmt = formats.get("float32")
    o_lo, o_hi = (int(formats.to_ordinal(fmt.cast(v), fmt)) for v in (lo, hi))
    z = formats.from_ordinal(np.arange(o_lo, o_hi + 1), fmt).astype(np.float64)
    assert len(z) == 157287
    ev = pl.evaluate("sigmoid", FORMS, "float32", z, 0.0)
    for row in rows:
        cls = ev["class"][row["form"]]
        assert row["exhaustive"] and row["points"] == len(z)
        assert row["onset"]["nan"]["method"]["pos"] in (None, "exhaustive")
        for c in ("ok", "inaccurate", "zero", "inf", "nan"):
            assert row["counts"][c] == int((cls == c).sum()), (row["form"], c)
        nan = z[cls == "nan"]
        assert row["onset"]["nan"]["pos"] == (float(nan[0]) if len(nan) else None)
        measured = np.isin(cls, ["ok", "inaccurate"])
        if measured.any():  # keys keep errors exactly up to 2**20 ULPs (programs._pack)
            worst = float(np.nanmax(ev["ulp"][row["form"]][measured]))
            assert row["max_ulp"] == pytest.approx(worst, rel=2**-19), row["form"]
    chain = next(r for r in rows if r["form"] == "bce_naive_chain")
    assert chain["counts"]["nan"] > 0 and 16.63 < chain["onset"]["nan"]["pos"] < 16.64


def test_exhaustive_refuses_float64():
    with pytest.raises(pl.InputError, match="float64"):
        pl.sweep("sigmoid", dtypes=["float64"], exhaustive=True)


SAMPLED = dict(family="sigmoid", dtypes=["bfloat16", "float32"], targets=[0.0, 1.0], forms=FORMS, points=1 << 20)


def _rows(result):
    return json.loads(json.dumps(result.to_json()["rows"], allow_nan=False))


def test_a_checkpointed_sweep_interrupted_anywhere_resumes_to_the_uninterrupted_rows(tmp_path, monkeypatch):
    """Saving after every absorbed call, an interrupt after save n (1, 3, 8: inside a
    sampled float32 pass, whose 2**20 + 1 points take 5 calls, each but the last saved
    when it is absorbed, while later ones are dispatched by two threads; 5: the first
    pass finished, float32's, the widest format running first), then a rerun with the same file,
    gives the rows of a sweep that was never interrupted, and the file is gone at the
    end."""
    whole = _rows(pl.sweep(**SAMPLED))
    monkeypatch.setattr(checkpoints, "SAVE_EVERY_S", 0.0)
    write = checkpoints.Checkpoint._write
    for stop_after in (1, 3, 5, 8):
        path = tmp_path / f"state-{stop_after}.pkl"
        writes = [0]

        def counting(self, writes=writes, stop_after=stop_after):
            write(self)
            writes[0] += 1
            if writes[0] == stop_after:
                raise KeyboardInterrupt

        monkeypatch.setattr(checkpoints.Checkpoint, "_write", counting)
        with pytest.raises(KeyboardInterrupt):
            pl.sweep(**SAMPLED, checkpoint=str(path))
        assert path.exists()
        saved = pickle.loads(path.read_bytes())
        assert (saved["partial"] is not None) == (stop_after != 5)  # inside a pass, or between two
        monkeypatch.setattr(checkpoints.Checkpoint, "_write", write)
        assert _rows(pl.sweep(**SAMPLED, checkpoint=str(path))) == whole, stop_after
        assert not path.exists()


def test_a_checkpoint_of_another_sweep_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "state.pkl"
    monkeypatch.setattr(checkpoints, "SAVE_EVERY_S", 0.0)

    def stop(self, write=checkpoints.Checkpoint._write):
        write(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.Checkpoint, "_write", stop)
    with pytest.raises(KeyboardInterrupt):
        pl.sweep("sigmoid", dtypes=["bfloat16"], targets=[0.0], forms=FORMS, checkpoint=str(path))
    with pytest.raises(pl.InputError, match="differs in seed"):
        pl.sweep("sigmoid", dtypes=["bfloat16"], targets=[0.0], forms=FORMS, seed=1, checkpoint=str(path))
    path.write_text("not a checkpoint")
    with pytest.raises(pl.InputError, match="not a precision-lab checkpoint"):
        pl.sweep("sigmoid", dtypes=["bfloat16"], targets=[0.0], forms=FORMS, checkpoint=str(path))


CLI_SWEEP = ["sweep", "--family", "sigmoid", "--dtypes", "float32", "--targets", "0,1", "--forms", ",".join(FORMS),
             "--points", str(1 << 20), "--quiet"]
CHILD = ("import sys; from precision_lab import entry; from precision_lab.engine import checkpoints; "
         "checkpoints.SAVE_EVERY_S = 0.05; sys.exit(entry.main(sys.argv[1:]))")  # the command's entry point, with its Ctrl-C handling


def test_ctrl_c_with_a_checkpoint_exits_130_and_the_same_command_finishes_the_sweep(tmp_path):
    """The command line: SIGINT once the checkpoint exists gives exit 130, one line
    saying how to resume, no JSON; the same command then writes the JSON of an
    uninterrupted run (row for row)."""
    state, out, whole = tmp_path / "state.pkl", tmp_path / "out.json", tmp_path / "whole.json"
    argv = CLI_SWEEP + ["--checkpoint", str(state), "--json", str(out)]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not state.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the sweep ended before its first checkpoint"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert "run the same command again to continue" in err and "Traceback" not in err
    assert state.exists() and not out.exists()
    subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=ROOT, check=True)
    assert not state.exists()
    assert cli.main(CLI_SWEEP + ["--json", str(whole)]) == 0
    assert json.loads(out.read_text())["rows"] == json.loads(whole.read_text())["rows"]


def test_ctrl_c_before_the_first_save_says_the_command_starts_over(tmp_path):
    """Interrupted once the sweep runs but before its first save (here saves are never
    due), the command says nothing was written and the same command starts over, not
    that its state is saved; exit 130, no file."""
    state, out = tmp_path / "state.pkl", tmp_path / "out.json"
    argv = [a for a in CLI_SWEEP if a != "--quiet"] + ["--checkpoint", str(state), "--json", str(out)]
    child = subprocess.Popen([sys.executable, "-c", CHILD.replace("0.05", "1e9"), *argv], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, PRECISION_LAB_PROGRESS_S="0.1"))
    for line in child.stderr:  # a progress line: the sweep runs
        if "%" in line:
            break
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130 and "Traceback" not in err
    assert f"interrupted before the first save to {state}" in err and "starts over" in err and "saved in" not in err
    assert not state.exists() and not out.exists()


def test_the_resume_message_says_whether_a_checkpoint_was_saved(tmp_path):
    from precision_lab.cli.commands import resume_message

    path = tmp_path / "state.pkl"
    assert "nothing was written: the same command starts over" in resume_message(str(path))
    path.write_bytes(b"")
    assert resume_message(str(path)) == (f"interrupted; the run's state up to the last few seconds is saved in "
                                         f"{path}: run the same command again to continue.")


def test_four_devices_give_the_rows_of_one(tmp_path):
    """Calls spread over 4 virtual CPU devices (XLA_FLAGS=
    --xla_force_host_platform_device_count=4), absorbed in the axis's order: the same
    JSON rows as this process's single device, for a sampled sigmoid sweep (refined
    boundaries) and an exhaustive softmax one."""
    # both families in one run: one process to start
    argv = ["sweep", "--family", "all", "--forms", ",".join(FORMS + ["ce_naive", "ce_fused"]), "--classes", "10",
            "--sweeps", "margin", "--target-classes", "top", "--dtypes", "bfloat16,float32", "--points",
            str(1 << 15), "--quiet"]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    four, one = tmp_path / "four.json", tmp_path / "one.json"
    subprocess.run([sys.executable, "-m", "precision_lab", *argv, "--json", str(four)], cwd=ROOT, env=env, check=True)
    assert cli.main(argv + ["--json", str(one)]) == 0
    a, b = json.loads(four.read_text()), json.loads(one.read_text())
    assert (a["meta"]["device_count"], b["meta"]["device_count"]) == (4, len(jax.local_devices()))
    assert {r["family"] for r in a["rows"]} == {"sigmoid", "softmax"} and a["rows"] == b["rows"]


def test_diff_reports_exactly_the_known_differences(tmp_path, capsys):
    path_a, path_b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli.main(["sweep", "--family", "sigmoid", "--dtypes", "float16", "--targets", "0",
                     "--forms", "bce_naive_chain,bce_fused", "--quiet", "--json", str(path_a)]) == 0
    doc = json.loads(path_a.read_text())
    b = copy.deepcopy(doc)
    row = next(r for r in b["rows"] if r["form"] == "bce_naive_chain")
    row["counts"]["nan"] += 1
    row["onset"]["nan"]["pos"] = 7.5
    b["meta"]["jax"] = "0.0.0"
    path_b.write_text(json.dumps(b))
    capsys.readouterr()
    assert cli.main(["diff", str(path_a), str(path_b), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["same"] is False and d["rows_matched"] == 2 and d["only_a"] == d["only_b"] == []
    assert {(c["row"], c["field"], c["a"], c["b"]) for c in d["changes"]} == {
        ("bce_naive_chain float16 y=0", "counts.nan", 26324, 26325),
        ("bce_naive_chain float16 y=0", "onset.nan.pos", 7.625, 7.5)}
    assert d["settings"] == {"jax": [doc["meta"]["jax"], "0.0.0"]}
    assert cli.main(["diff", str(path_a), str(path_a)]) == 0
    assert "same figures: 2 rows match" in capsys.readouterr().out
    b["rows"] = b["rows"][:1]
    path_b.write_text(json.dumps(b))
    assert cli.main(["diff", str(path_a), str(path_b)]) == 1
    assert "rows only in A: bce_fused float16 y=0" in capsys.readouterr().out
    path_b.write_text("{}")
    assert cli.main(["diff", str(path_a), str(path_b)]) == 2
    assert "is not a precision-lab result" in capsys.readouterr().err
    path_b.write_text(json.dumps({"schema": "precision_lab.sweep/2", "meta": {}, "rows": [{"x": 1}]}))
    assert cli.main(["diff", str(path_a), str(path_b)]) == 2
    assert "rows with a form and a dtype" in capsys.readouterr().err


def test_exhaustive_on_the_command_line_defaults_to_the_formats_it_can_sweep(tmp_path, capsys):
    """--exhaustive without --dtypes sweeps float16, bfloat16 and float32 (every value
    of float64 is out of reach), and refuses --points, which it would ignore, and a
    sweep with no axis."""
    path = tmp_path / "x.json"
    assert cli.main(["sweep", "--family", "sigmoid", "--exhaustive", "--range", "16,16.01", "--targets", "0",
                     "--forms", "bce_fused", "--quiet", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert [r["dtype"] for r in rows] == ["float16", "bfloat16", "float32"] and all(r["exhaustive"] for r in rows)
    assert cli.main(["sweep", "--exhaustive", "--points", "5"]) == 2
    assert "leave --points out" in capsys.readouterr().err
    # nor is it silently ignored by a sweep without an axis (drawn vectors)
    assert cli.main(["sweep", "--family", "softmax", "--sweeps", "random", "--exhaustive"]) == 2
    assert "the random sweep has none" in capsys.readouterr().err
    assert cli.main(["check", "tests/user/losses.py:ce_naive", "--classes", "10", "--sweeps", "random",
                     "--exhaustive"]) == 2
    assert "the random sweep has none" in capsys.readouterr().err


@pytest.mark.parametrize("max_changes", [256, 3])
def test_run_summaries_on_the_device_give_the_rows_the_host_decodes(monkeypatch, max_changes):
    """On accelerators the classification program also counts classes and lists where
    each form's class changes, so the host reads no keys; forced on here (CPU), the
    rows are those of the host's own decoding, also when a form changes class more
    often than the device lists (3: most changing calls then fall back to the keys)."""
    from precision_lab.engine import programs, runner

    args = dict(dtypes=["bfloat16", "float32"], targets=[0.0, 1.0], forms=FORMS, points=1 << 18)
    host = _rows(pl.sweep("sigmoid", **args))
    monkeypatch.setattr(runner, "DEVICE_RUNS", True)
    monkeypatch.setattr(programs, "MAX_CHANGES", max_changes)
    programs.classify_program.cache_clear()
    try:
        assert _rows(pl.sweep("sigmoid", **args)) == host
    finally:
        programs.classify_program.cache_clear()


def test_two_processes_of_a_distributed_sweep_give_the_rows_of_one(tmp_path):
    """Two local processes joined by jax.distributed (Gloo collectives on the CPU),
    each sweeping half of every axis's calls: process 0's JSON has the rows of a
    single-process sweep, row for row (refined boundaries included), and process 1
    writes nothing."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    argv = ["sweep", "--family", "sigmoid", "--forms", ",".join(FORMS), "--dtypes", "float32",
            "--points", str(1 << 19), "--quiet"]  # two calls of 2**18: one per process
    outs = [tmp_path / f"p{i}.json" for i in (0, 1)]
    procs = [subprocess.Popen([sys.executable, "-m", "precision_lab", *argv, "--json", str(outs[i]),
                               "--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    one = tmp_path / "one.json"
    assert cli.main(argv + ["--json", str(one)]) == 0
    a = json.loads(outs[0].read_text())
    assert not outs[1].exists() and a["meta"]["process_count"] == 2
    assert a["rows"] == json.loads(one.read_text())["rows"]


def _float64_points():
    """float64 logits where references are easy and hard: a normal spread, tiny ones,
    a grid through the tails (to ±800), subnormals and the ends of exp's range."""
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(size=1500) * 30, rng.normal(size=300) * 1e-5, np.linspace(-800, 800, 1001),
                        [0.0, 1e-310, 5e-324, 1e-300, 2.0**-900, 36.7368005696771, -745.1, 709.7]])
    fmt = formats.get("float64")
    return fmt, np.unique(formats.to_ordinal(fmt.cast(z), fmt))


@pytest.mark.parametrize("family", ["sigmoid", "softmax"])
def test_float64_references_on_the_device_are_the_hosts_bit_for_bit(family):
    """The float64 reference in double-double under JAX (on accelerators; forced here on
    the CPU) gives every exact value and sensitivity exactly as the host's NumPy
    double-double and mpmath do, for every form's reference, at targets 0, 1, 0.3 and
    10**-3 (softmax K = 10: both sweeps and true classes). XLA contracts products
    into FMAs and simplifies (1 + t) − 1 to t, which without the guards in `dd` left
    the device's low parts as inaccurate as float64 (errors near 1e-16 relative in 10%
    of exp's values), and flushes subnormals (the host keeps those points)."""
    from precision_lab.engine import points
    from precision_lab.families import sigmoid, softmax

    fmt, ords = _float64_points()
    x64 = formats.from_ordinal(ords, fmt).astype(np.float64)
    if family == "sigmoid":
        fam, targets = sigmoid.FAMILY, [0.0, 1.0, 0.3, 1e-3]
    else:
        fam, targets = softmax.family(10), [softmax.case(s, t) for s in ("margin", "offset") for t in ("top", "other")]
    forms = fam.forms + fam.factors
    kept = fam.untrusted(x64, 0.0)
    assert (~kept).sum() > 0.6 * len(x64)  # most points are the device's
    for t in targets:
        y64 = float(fmt.cast(t)) if fam.width == 1 else float(t)
        device = points.device_float64_references(fam, forms, fmt, ords, y64, jax.devices("cpu")[0])
        host = points.host_reference(fam, forms, x64, y64)
        for (de, ds), (he, hs) in zip(device, host):
            for a, b in ((de, he), (ds, hs)):
                a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
                assert np.array_equal(a.view(np.int64), b.view(np.int64)) or np.array_equal(a, b, equal_nan=True), t


def test_a_float64_row_is_the_same_with_its_reference_on_the_device(monkeypatch):
    """A sampled float64 sigmoid sweep with the double-double reference on the device
    gives the rows of the host's reference, refined boundaries included."""
    from precision_lab.engine import runner

    args = dict(dtypes=["float64"], targets=[0.0, 1.0], forms=FORMS, points=2000)  # one small device shape
    host = _rows(pl.sweep("sigmoid", **args))
    monkeypatch.setattr(runner, "FLOAT64_ON_DEVICE", True)
    assert _rows(pl.sweep("sigmoid", **args)) == host


def test_calls_dispatched_by_two_threads_give_the_rows_of_one(monkeypatch):
    """Where a pass's references are on the device, STREAMS threads dispatch
    alternate calls (engine.streams) and the calls are absorbed in order: every
    float32 value of [1.5, 2] (2**21 values, 8 calls a pass) gives the same rows with
    one thread and with two, and with two the calls run on two threads; inside a JAX
    configuration context the pass keeps to the caller's thread."""
    from precision_lab.engine import streams
    from precision_lab.engine.runner import Runner

    threads = set()
    call = Runner.call

    def noted(self, *args, **kwargs):
        threads.add(threading.current_thread().name)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "call", noted)
    kwargs = dict(family="sigmoid", dtypes=["float32"], targets=[0.0, 1.0], forms=FORMS, exhaustive=True,
                  value_range=(1.5, 2.0))
    two = _rows(pl.sweep(**kwargs))
    assert {"precision-lab-calls-0", "precision-lab-calls-1"} <= threads
    monkeypatch.setattr(streams, "STREAMS", 1)
    threads.clear()
    assert _rows(pl.sweep(**kwargs)) == two and threads == {threading.current_thread().name}
    # a configuration context (per thread in JAX) that a new thread would not see: one thread
    monkeypatch.setattr(streams, "STREAMS", 2)
    threads.clear()
    with jax.default_matmul_precision("highest"):
        assert _rows(pl.sweep(**kwargs)) == two
    assert threads == {threading.current_thread().name}


def test_an_error_in_a_dispatched_call_is_raised_in_its_place_and_its_threads_end(monkeypatch):
    """A call that fails on a dispatching thread (here the 6th of 8) raises its error in
    the sweep, after the calls before it were absorbed, and no dispatching thread is
    left running."""
    from precision_lab.engine import passes
    from precision_lab.engine.runner import Runner

    call, absorb, absorbed = Runner.call, passes.RunState.absorb, []

    def failing(self, start, n, *args, **kwargs):
        if start == 5 * self.size:
            raise RuntimeError("the 6th call fails")
        return call(self, start, n, *args, **kwargs)

    def noted(self, runner, start, given):
        absorbed.append(start // runner.size)
        return absorb(self, runner, start, given)

    monkeypatch.setattr(Runner, "call", failing)
    monkeypatch.setattr(passes.RunState, "absorb", noted)
    with pytest.raises(RuntimeError, match="6th call"):
        pl.sweep("sigmoid", dtypes=["float32"], targets=[0.0], forms=FORMS, exhaustive=True, value_range=(1.5, 2.0))
    assert absorbed == [0, 1, 2, 3, 4]
    assert not [t for t in threading.enumerate() if t.name.startswith("precision-lab-calls")]


def test_a_runner_prepares_every_program_of_its_first_call_and_the_call_compiles_none(monkeypatch, tmp_path):
    """`Runner.prepare` (which a sweep runs AHEAD passes early) traces, lowers and sends
    to the compile pool every program of the runner's first call: the positions, the
    inputs, the references, each kernel at the call's batch and at the batch sizes of
    batch dependence, and the classification, whose arguments it makes from the
    traces' shapes. The call then takes each of them, compiling nothing more, and
    gives the values of programs compiled afresh for another runner, bit for bit."""
    from precision_lab.engine import batches, executables, modes, programs, runner
    from precision_lab.families import sigmoid
    from precision_lab.numerics import formats, sampling
    from precision_lab.numerics.classify import DEFAULT_TOLERANCE

    # programs of their own (the package keeps one per form and format for the process), none kept on disk
    monkeypatch.setattr(executables, "FOLDER", str(tmp_path / "programs"))
    monkeypatch.setattr(runner, "kernel_program", lambda kernel, mode: mode.program(kernel))
    for name in ("positions_program", "classify_program"):
        monkeypatch.setattr(runner, name, getattr(programs, name).__wrapped__)
    for name in ("_reference_program", "_inputs_program"):
        monkeypatch.setattr(programs, name, getattr(programs, name).__wrapped__)
    for name in ("keys_program", "codes_program"):  # one per format and tolerance, as the package's, but new
        monkeypatch.setattr(runner, name, functools.lru_cache(None)(getattr(programs, name).__wrapped__))
    fam, fmt = sigmoid.FAMILY, formats.get("bfloat16")
    axis = sampling.axis_for(fmt, None, 0, value_range=(-4.0, 4.0))
    device = jax.devices()[0]

    def made():
        return runner.Runner(fam, fam.forms[:3], axis, 1.0, DEFAULT_TOLERANCE, [device], modes.JIT)

    r = made()
    r.prepare()
    every = [r.positions, r.inputs, r.references, r.classify, *r.kernels]
    assert [len(p.pending) for p in every] == [1, 1, 1, 1] + [3] * 3  # the kernels at b, 1 and SECOND points
    keys = runner.keys_program(fmt, float(DEFAULT_TOLERANCE))
    assert len(keys.pending) == 1  # the three forms' results have one shape
    assert not runner.codes_program(fmt, float(DEFAULT_TOLERANCE)).pending  # exhaustive: no refinement
    assert batches.SECOND < r.size
    got = r.call(0, min(r.size, len(axis)))
    assert [len(p.pending) for p in every] == [0, 0, 0, 0] + [2] * 3  # the smaller batches wait for batch dependence
    assert [len(p.by_signature) for p in every] == [1] * 7
    want = made().call(0, min(r.size, len(axis)))
    for a, b in zip(jax.tree.leaves(jax.device_get(got[:2])), jax.tree.leaves(jax.device_get(want[:2]))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    executables.prepare([])  # nothing left to do

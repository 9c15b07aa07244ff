"""Ctrl-C and runs that would not end: the command stops with exit status 130 and one
sentence wherever SIGINT lands, writes no output after it, and refuses sweeps and
checks it measures to take longer than --max-hours."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from precision_lab import cli
from precision_lab.output import progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = ["sweep", "--family", "sigmoid", "--dtypes", "float32", "--targets", "0,1", "--points", str(1 << 22),
         "--quiet"]
INTERRUPTED = "precision-lab: interrupted; nothing was written."
PLAIN = "precision-lab: sigmoid y="  # the start of a plain progress line


def _jax_loading(pid: int) -> bool:
    """jaxlib's shared objects are mapped: JAX is being imported (after `entry`'s handler)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "/jaxlib/" in f.read()
    except OSError:
        return False


def _interrupt(tmp_path, stage: str):
    """Run the command, send SIGINT once `stage` is reached; (exit status, stderr lines)."""
    out, cache = tmp_path / f"{stage}.json", tmp_path / f"cache-{stage}"
    env = dict(os.environ, PRECISION_LAB_PROGRESS_S="0.2")
    if stage == "compile":  # a cache of its own, empty: its first program must compile; the others use the suite's
        env["PRECISION_LAB_CACHE"] = str(cache)
    child = subprocess.Popen([sys.executable, "-m", "precision_lab", *SWEEP, "--json", str(out)], cwd=ROOT, env=env,
                             stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(child.stderr), daemon=True)
    reader.start()
    reached = {"import": lambda: _jax_loading(child.pid),  # JAX is being imported
               "compile": lambda: cache.exists() and any(cache.iterdir()),  # the first program is compiled
               "chunk": lambda: any(line.startswith(PLAIN) and "points/s" in line for line in lines)}[stage]  # calls
    # are under way: a progress line gives a rate, measured after the first call
    deadline = time.monotonic() + 60
    while not reached() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert child.poll() is None, f"the sweep ended before stage {stage}"
    child.send_signal(signal.SIGINT)
    child.wait(timeout=60)
    reader.join(timeout=10)
    assert not out.exists() and not list(tmp_path.glob(".precision_lab-*")), stage  # no JSON, not even a part
    return child.returncode, [line.rstrip("\n") for line in lines]


@pytest.mark.parametrize("stage", ["import", "compile", "chunk"])
def test_ctrl_c_at_any_stage_exits_130_with_one_sentence_and_no_json(tmp_path, stage):
    """SIGINT while JAX is imported, while the kernels compile (cold cache) and between
    calls of a sweep: exit 130, stderr the one sentence (besides plain progress lines,
    which stderr gets every 0.2 s here as it is not a terminal), no traceback, no JSON."""
    code, lines = _interrupt(tmp_path, stage)
    said = [line for line in lines if not line.startswith(PLAIN)]
    assert code == 130 and said == [INTERRUPTED], (stage, lines)
    if stage == "chunk":
        assert any("% of 8.39M points" in line for line in lines), lines


def test_plain_progress_lines_come_every_interval_with_rate_and_time_left():
    """A fake clock: no line before the interval (a short run prints nothing), then one a
    interval, with the share done, the rate since the first call and the time left."""
    now = [100.0]
    meter = progress.Meter(lambda: now[0])
    said = []
    plain = progress.PlainLines(meter, said.append, every_s=10)
    for t, done in ((101, 0), (103, 1000), (109, 4000)):  # the row begins, its first call ends, another
        now[0] = t
        meter.update("sigmoid y=0 float32", done, 100_000)
        plain.update()
    assert said == []
    now[0] = 111  # 11 s in; 8000 points in the 8 s since the first call: 1000/s, 91 s (2 min) left
    meter.update("sigmoid y=1 float32", 9000, 100_000)
    plain.update()
    assert said == ["precision-lab: sigmoid y=1 float32: 9% of 100k points, 1k points/s, about 2 min left"]
    now[0] = 115
    meter.update("sigmoid y=1 float32", 13000, 100_000)
    plain.update()
    assert len(said) == 1  # the next one at 121 s


def test_the_time_limit_judges_once_after_calibration():
    """Refused when the time left at the measured rate exceeds the limit, decided once
    CALIBRATE_S seconds of calls after the first are measured (the first call, with its
    compilation, and the time before it are left out), and not again after."""
    now = [0.0]
    meter = progress.Meter(lambda: now[0])
    limit = progress.TimeLimit(meter, 1.0, "ask for fewer.")
    meter.update("x", 0, 10**12)  # the row begins
    now[0] = 20.0  # compiled and ran its first call
    meter.update("x", 10, 10**12)
    now[0] = 20.0 + progress.CALIBRATE_S / 2
    meter.update("x", 5 * 10**5 + 10, 10**12)
    limit.update()  # not yet measured long enough
    assert not limit.judged
    now[0] = 20.0 + progress.CALIBRATE_S
    meter.update("x", 10**6 + 10, 10**12)
    with pytest.raises(progress.InputError, match=r"At 200k points/s \(measured over 5 s of calls\), .* about "
                                                  r"57.9 days, beyond the limit of 1 hour .*ask for fewer"):
        limit.update()
    ok = progress.TimeLimit(meter, 24 * 60, "")  # 60 days
    ok.update()
    assert ok.judged
    now[0] = 0.0
    slow = progress.Meter(lambda: now[0])  # one call of 2**18 points in 100 s, compilation included
    limit = progress.TimeLimit(slow, 1.0, "")
    slow.update("x", 0, 1 << 32)
    now[0] = 100.0
    slow.update("x", 1 << 18, 1 << 32)
    with pytest.raises(progress.InputError, match=r"At 2.62k points/s \(measured over the first 100 s, compilation "
                                                  r"included\), .* about 19 days"):
        limit.update()


def test_a_sweep_or_check_beyond_the_limit_is_refused_with_its_time(tmp_path, capsys, monkeypatch):
    """float64 with 10**12 points: refused once 5 s of calls are timed (1 s here; days at
    any rate here). The exhaustive check of float32 (4278190079 values through the exact tiers):
    its first call of 2**18 points has not ended 1 s in (the watchdog's 30 s, shortened
    here by $PRECISION_LAB_SLOW_S), which bounds the rate, and the
    command refuses it from that bound. float32 samples cannot hold 10**12 distinct
    points: refused at once, pointing to --exhaustive. Exit 2, one sentence, no JSON."""
    from precision_lab.output import progress

    monkeypatch.setattr(progress, "CALIBRATE_S", 1.0)
    out = tmp_path / "x.json"
    assert cli.main(["sweep", "--family", "sigmoid", "--dtypes", "float64", "--points", str(10**12), "--targets", "0",
                     "--forms", "bce_fused", "--quiet", "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s of calls), the remaining" in err[0] and "beyond the limit of 1 hour" in err[0], err
    left = err[0].split("would take about ")[1].split(",")[0]
    assert left.endswith("days") and float(left.split()[0]) > 1, err
    assert not out.exists()
    check = subprocess.run([sys.executable, "-m", "precision_lab", "check",
                            os.path.join(ROOT, "tests", "user", "losses.py") + ":naive_bce", "--dtypes", "float32",
                            "--exhaustive", "--targets", "0", "--quiet", "--json", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PRECISION_LAB_SLOW_S="1"))  # the watchdog after 1 s, not 30
    err = check.stderr.strip().splitlines()
    assert check.returncode == 2 and len(err) == 1, check.stderr
    assert "No call of up to 262144 points had ended" in err[0] and "its 4278190079 points" in err[0], err
    left = err[0].split("would take at least ")[1].split(",")[0]  # 1 s a call of 2**18: 4.5 hours at least
    assert left.endswith(("hours", "days")) and "beyond the limit of 1 hour" in err[0], err
    assert not out.exists()
    assert cli.main(["sweep", "--dtypes", "float32", "--points", str(10**12), "--quiet", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds at most 2038431743 distinct points" in err and "--exhaustive" in err and not out.exists()
    assert cli.main(["sweep", "--max-hours", "-1"]) == 2
    assert "non-negative number of hours" in capsys.readouterr().err

"""How the command runs a long job: its progress (a bar on a terminal, plain lines
in a log), the time limit, Ctrl-C, modes that need a process of their own, and the
`--fail-on` gates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

from .. import interrupts
from ..analysis import gates as gate_rules
from ..engine import executables, modes
from ..engine.programs import BATCH
from ..output import progress as meters
from ..output.report import make_console
from .parser import UsageError

EXIT_FAILED_CHECK = 1
FAILING_LISTED = 5  # rows named in the --fail-on message


class Interrupted(Exception):
    """Ctrl-C, with what to do next: reported as one sentence with exit status 130."""


def console(no_color: bool, stderr: bool = False):
    return make_console(no_color, stderr)


def with_progress(work, no_color: bool = False, max_hours: float | None = None, advice: str = ""):
    """Run `work(progress)` under a progress bar on stderr (on a terminal; elsewhere a plain
    line every $PRECISION_LAB_PROGRESS_S seconds, for logs). Each call of `progress` is
    where Ctrl-C stops the run (`interrupts.check`), and where a run that would take more
    than `max_hours` is refused, with `advice`, once its rate is measured."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    err = console(no_color, stderr=True)
    meter = meters.Meter()
    limit = meters.TimeLimit(meter, max_hours, advice)
    if interrupts.installed():  # the command: a run whose first call never ends is judged too
        limit.watch(BATCH, interrupts.leave)
    plain = None if err.is_terminal else meters.PlainLines(
        meter, lambda line: print(line, file=sys.stderr, flush=True), meters.plain_every_s())
    rate = TextColumn("{task.fields[rate]}")
    with Progress(TextColumn("{task.description}"), BarColumn(bar_width=16), TaskProgressColumn(), rate,
                  TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task("sweeping", total=None, rate="")

        def progress(label, done, total):
            interrupts.check()
            meter.update(label, done, total)
            limit.update()
            if plain:
                plain.update()
            speed = bar.tasks[0].speed
            bar.update(task, description=label, completed=done, total=total,
                       rate=f"{meters.si(speed)} points/s" if speed else "")

        result = work(progress)
    interrupts.check()
    return result


def in_child(argv: Sequence[str], mode: modes.Mode) -> int:
    """Run this command again in a process that can run `mode` (its XLA flags set)."""
    return subprocess.call([sys.executable, "-m", "precision_lab", *argv], env=mode.child_env())


def child_rows(argv: Sequence[str], mode: modes.Mode) -> list[dict]:
    """The rows of this command in `mode`, from a child process (XLA reads its flags once)."""
    keep, skip = [], {"--json", "--csv", "--fail-on", "--mode", "--checkpoint"}
    it = iter(argv)
    for a in it:
        if a in skip:
            next(it, None)
        elif a not in ("--compare-modes", "--quiet") and not any(a.startswith(f + "=") for f in skip):
            keep.append(a)
    out = subprocess.run([sys.executable, "-m", "precision_lab", *keep, "--mode", mode.name, "--json", "-"],
                         env=mode.child_env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise UsageError(f"The {mode.name}-mode run failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)["rows"]


def gates(rules: list[str], forms: list[str]) -> list:
    return gate_rules.parse(rules, forms=forms) if rules else []


def fail_on(result, rules) -> int:
    """Exit status 1, naming the first failing rows on stderr, if a row breaks a rule."""
    failing = gate_rules.failures(result.rows, rules)
    if not failing:
        return 0
    names = [f"{r.key.name()} ({g.cls} {_figure(g, r)})" for r, g in failing[:FAILING_LISTED]]
    more = f" and {len(failing) - FAILING_LISTED} more" if len(failing) > FAILING_LISTED else ""
    print(f"precision-lab: {len(failing)} of {len(result.rows)} rows fail --fail-on "
          f"{','.join(map(str, rules))}: {'; '.join(names)}{more}.", file=sys.stderr)
    return EXIT_FAILED_CHECK


def _figure(gate, row) -> str:
    v = gate.measure(row)
    return f"{v:.3g}%" if gate.percent else f"{int(v)} point{'s' if v != 1 else ''}"


CACHE_ENV = "PRECISION_LAB_CACHE"  # a folder for compiled programs, or 0 for none


# glibc's malloc settings (mallopt parameters): buffers of up to 32 MiB come from the
# heap, which keeps up to 256 MiB freed at its top and grows 64 MiB at a time
_MALLOC_SETTINGS = ((-3, 32 << 20), (-1, 256 << 20), (-2, 64 << 20))  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD


def keep_freed_memory() -> None:
    """Have glibc's malloc keep the memory XLA frees for the next program's buffers.
    By default it hands megabyte buffers back to the system as each program ends, and
    every call's new buffers are then zeroed by the kernel page by page as they are
    first written: 1.4 to 2.8 million page faults and 3.5 to 5.6 s of system CPU in a
    16 s exhaustive float32 slice of the sigmoid family (every value in [0.5, 64],
    y = 0 and 1), 95,000 and 0.6 s with these settings (13 s). The values computed are
    the same. Nothing is done where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc's own function: AttributeError elsewhere
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    for parameter, value in _MALLOC_SETTINGS:
        mallopt(parameter, value)


def use_compilation_cache() -> None:
    """Keep XLA's compiled programs between runs (JAX's persistent cache), in
    $PRECISION_LAB_CACHE or ~/.cache/precision_lab/xla: each form is its own program,
    and compiling them is most of a cold run. A cached program is the same executable,
    so results do not change; `0` turns it off."""
    where = os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "precision_lab", "xla"))
    if where in ("", "0"):
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    executables.FOLDER = os.path.join(where, "programs")  # found by jaxpr, before lowering (engine.executables)

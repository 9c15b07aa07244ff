"""How far a run is, how fast it goes and when it ends, for the command's progress.

`Meter` measures the rate from the points done between calls, counted from the first
call that finished (so the first compilation is not in it), and gives the time left.
`PlainLines` prints that as a line every few seconds, for logs (stderr not a terminal,
where the progress bar is not drawn); a run shorter than the interval prints nothing.
`TimeLimit` refuses a run whose time left, measured over its first CALIBRATE_S seconds
of calls (or, where one call takes longer, over its first SLOW_S seconds), exceeds a
limit: one sentence with the estimate (InputError). In the command, where no call has
ended SLOW_S seconds into the run, the bound that gives (a call has at most
`engine.BATCH` points) decides, from a thread that ends the process (`watch`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from ..errors import InputError

PLAIN_EVERY_ENV = "PRECISION_LAB_PROGRESS_S"  # seconds between plain progress lines
PLAIN_EVERY_S = 15.0
CALIBRATE_S = 5.0  # seconds of calls that measure a run's rate before it is judged
SLOW_S = 30.0  # or, where calls are slower than that, seconds of the run
SLOW_ENV = "PRECISION_LAB_SLOW_S"  # another number of seconds for that
DEFAULT_MAX_HOURS = 1.0


class Meter:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.start = clock()
        self.initial: int | None = None  # points done at the first update (the run begins, or resumes)
        self.first: tuple[float, int] | None = None  # (time, points done) at the first call's end
        self.label, self.done, self.total, self.now = "", 0, 0, self.start

    def update(self, label: str, done: int, total: int) -> None:
        self.label, self.done, self.total, self.now = label, done, total, self.clock()
        if self.initial is None:
            self.initial = done
        if self.first is None and done != self.initial:
            self.first = (self.now, done)

    def measured_s(self) -> float:
        return 0.0 if self.first is None else self.now - self.first[0]

    def rate(self) -> float | None:
        """Points per second since the first call ended."""
        if self.first is None or self.now <= self.first[0] or self.done <= self.first[1]:
            return None
        return (self.done - self.first[1]) / (self.now - self.first[0])

    def left_s(self) -> float | None:
        r = self.rate()
        return None if r is None else max(self.total - self.done, 0) / r


def _duration(s: float) -> str:
    """A duration in words: 40 s, 12 min, 3.4 hours, 27 days."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.2g} hours"
    return f"{s / 86400:.3g} days"


def si(x: float) -> str:
    """1.23M: a number in three digits."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def plain_every_s() -> float:
    """The interval of plain progress lines: $PRECISION_LAB_PROGRESS_S, or PLAIN_EVERY_S."""
    return _seconds(PLAIN_EVERY_ENV, PLAIN_EVERY_S)


def _seconds(env: str, default: float) -> float:
    text = os.environ.get(env, "")
    try:
        v = float(text) if text else default
    except ValueError:
        raise InputError(f"{env}={text} is not a number of seconds.") from None
    if not v > 0:
        raise InputError(f"{env}={text} must be a positive number of seconds.")
    return v


class PlainLines:
    """A line `label: P% of N points, R points/s, about T left` every `every_s` seconds."""

    def __init__(self, meter: Meter, write: Callable[[str], None], every_s: float):
        self.meter, self.write, self.every_s = meter, write, every_s
        self.last = meter.start

    def update(self) -> None:
        m = self.meter
        if m.now - self.last < self.every_s or not m.total:
            return
        self.last = m.now
        rate, left = m.rate(), m.left_s()
        speed = f", {si(rate)} points/s, about {_duration(left)} left" if rate else ""
        self.write(f"precision-lab: {m.label}: {100 * m.done / m.total:.0f}% of {si(m.total)} points{speed}")


class TimeLimit:
    """Refuse, once the rate is measured, a run that would take more than `hours`."""

    def __init__(self, meter: Meter, hours: float | None, advice: str):
        self.meter, self.hours, self.advice = meter, hours, advice
        self.judged = not hours

    def watch(self, call_points: int, leave: Callable[[str, int], None]) -> None:
        """Where no call (of at most `call_points` points) has ended SLOW_S seconds
        ($PRECISION_LAB_SLOW_S) into the run, judge from that bound, in a thread:
        `leave(sentence, 2)` ends the process."""
        if self.judged:
            return

        def later():
            m = self.meter
            elapsed = self.meter.clock() - m.start
            if self.judged or m.first is not None or not m.total:
                return
            most = call_points / elapsed
            left = max(m.total - m.done - call_points, 0) / most
            if left > self.hours * 3600:
                self.judged = True
                leave(f"No call of up to {call_points} points had ended {elapsed:.0f} s into this run (compilation "
                      f"included): at most {si(most)} points/s, so its {m.total} points would take at least "
                      f"{_duration(left)}, beyond {self._limit()}: {self.advice}", 2)

        timer = threading.Timer(_seconds(SLOW_ENV, SLOW_S), later)
        timer.daemon = True
        timer.start()

    def _limit(self) -> str:
        return f"the limit of {self.hours:g} hour{'' if self.hours == 1 else 's'} (--max-hours)"

    def update(self) -> None:
        m = self.meter
        if self.judged:
            return
        if m.measured_s() >= CALIBRATE_S:  # calls after the first: compilation left out
            rate, over = m.rate(), f"{m.measured_s():.0f} s of calls"
        elif m.now - m.start >= SLOW_S:  # calls too slow to time apart: the run so far, compilation included
            rate, over = m.done / (m.now - m.start), f"the first {m.now - m.start:.0f} s, compilation included"
        else:
            return
        self.judged = True
        left = max(m.total - m.done, 0) / rate if rate else None
        if left is not None and left > self.hours * 3600:
            raise InputError(f"At {si(rate)} points/s (measured over {over}), "
                             f"the remaining {m.total - m.done} of {m.total} points would take about "
                             f"{_duration(left)}, beyond {self._limit()}: "
                             f"{self.advice}")

"""A pass of the engine: every chosen form of a family over a format's axis, at one
case, call by call, on one or more devices, with its state saved as it goes.

Each call takes `batch_size(family)` points of the axis. The points' kernel inputs
are made by a program of their own; then each form's kernel runs alone, as its user
would compile it; each distinct reference runs in a program of its own; and an
exact integer program classifies every point (see `programs`). A form that keeps
one class through a call costs the host a constant; for one that changes, the host
reads its keys, whose runs give the counts, onsets and intervals. No program depends
on which other forms are swept, on the number of points, or on the target (a traced
argument). Sampled axes then refine onsets and listed interval boundaries (see
`refine`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from ..families.base import Family, Form
from ..numerics import formats
from ..numerics.classify import CLASSES, CODE, FAILURES
from . import programs, streams
from .programs import BLOCK, BUCKETS, LEVEL_MEASURED, ZERO_LEVELS, _error, _level_class, _levels
from .refine import refine
from .runner import Runner
from .runs import RunTracker

PROFILE_BINS = 256
IN_FLIGHT = 2  # sweep calls dispatched per device ahead of the one being absorbed


@dataclasses.dataclass
class Outcome:
    """What one (format, target) pass of the engine measured, per form."""

    fmt: formats.Format
    forms: tuple[Form, ...]
    target: float
    target_in_format: float
    points: int
    exhaustive: bool
    counts: np.ndarray  # (F, len(CLASSES))
    zero_subnormal: np.ndarray  # (F,)
    zero_negligible: np.ndarray  # (F,) zeros of negligible entries (see classify.per_point)
    forward: np.ndarray  # (F, 7) points per forward-error bucket (programs.BUCKETS), then the excused
    max_ulp: np.ndarray  # (F,), -1 where no ok/inaccurate point
    profile_code: np.ndarray  # (F, bins), -1 for an empty bin
    profile_err: np.ndarray  # (F, bins)
    profile_kappa: np.ndarray  # (F, bins): the largest condition number of the exact value
    profile_lo: np.ndarray  # (bins,) ordinal of the first point in each bin
    profile_hi: np.ndarray
    trackers: list[RunTracker]
    refined: dict  # (form index, code, inside, outside) -> refined inside ordinal
    before_zero: int | None  # ordinal of the swept point just below 0
    out_fmt: formats.Format | None = None  # the format the forms' results are in and judged in (None: fmt)
    stats: dict = dataclasses.field(default_factory=dict)  # form -> what decided its reference's points

    @property
    def value_fmt(self) -> formats.Format:
        return self.out_fmt or self.fmt


@dataclasses.dataclass
class RunState:
    """What a pass's absorbed calls measured so far, per form: what a checkpoint holds."""

    next: int  # position of the next call
    counts: np.ndarray  # (F, len(CLASSES))
    zsub: np.ndarray  # (F, 2) zeros of each kind counted apart (programs.ZERO_LEVELS): flushes, negligible
    max_ulp: np.ndarray  # (F,), -1 where no ok or inaccurate point
    pcode: np.ndarray  # (F, bins) worst class per profile bin, -1 for empty
    perr: np.ndarray  # (F, bins) largest error per bin
    pkap: np.ndarray  # (F, bins) largest condition number per bin
    trackers: list  # a RunTracker per form
    stats: dict = dataclasses.field(default_factory=dict)  # form -> what decided its reference's points
    forward: np.ndarray | None = None  # (F, 7) forward-error buckets and excused points (programs.BUCKETS)

    def __post_init__(self):
        if self.forward is None:
            self.forward = np.zeros((len(self.counts), len(BUCKETS) + 1), np.int64)

    @classmethod
    def new(cls, forms: int, bins: int, process: int = 0) -> RunState:
        return cls(0, np.zeros((forms, len(CLASSES)), np.int64), np.zeros((forms, len(ZERO_LEVELS)), np.int64),
                   np.full(forms, -1.0),
                   np.full((forms, bins), -1, np.int64), np.full((forms, bins), -1.0), np.zeros((forms, bins)),
                   [RunTracker(hold_first=process > 0) for _ in range(forms)])

    def join(self, other: RunState) -> RunState:
        """This share of an axis followed by the next consecutive share."""
        for t, o in zip(self.trackers, other.trackers):
            t.append(o)
        joined = RunState(other.next, self.counts + other.counts, self.zsub + other.zsub,
                          *(np.maximum(a, b) for a, b in ((self.max_ulp, other.max_ulp), (self.pcode, other.pcode),
                                                          (self.perr, other.perr), (self.pkap, other.pkap))),
                          self.trackers, dict(self.stats), self.forward + other.forward)
        joined.add_stats(other.stats)
        return joined

    def add_stats(self, stats: dict) -> None:
        for i, s in stats.items():
            self.stats[i] = s if i not in self.stats else self.stats[i] + s

    def absorb(self, runner: Runner, start: int, call) -> int:
        """Add one call's results (starting at `start` of the axis); returns its points.

        Most calls are one class per form: those need only the call's two ends. For
        the forms that change, the device (on accelerators) counts their classes and
        lists where the class changes, up to programs.MAX_CHANGES; otherwise the host
        reads the form's keys. Ordinals are looked up at run ends and their neighbours."""
        res, given, stats = call
        self.add_stats(stats)
        axis, n, size = runner.axis, len(runner.axis), runner.size
        m = min(size, n - start)
        block = min(BLOCK, size)
        berr = np.array(res[1])  # writable: the host fills in blocks of the forms whose keys it reads
        bcode, mixed, first, kappa = (np.asarray(r) for r in res[2:6])
        self.zsub += np.where(~mixed[:, None] & (first[:, None] == np.array(ZERO_LEVELS)), m, 0)
        self.forward += np.asarray(res[6], np.int64)
        o_first, o_last = (int(v) for v in axis.ordinals(np.array([start, start + m - 1])))
        changing = np.flatnonzero(mixed)
        listed = np.zeros(len(self.trackers), bool)
        if len(changing) and len(res) > 7:
            found_counts, found_zsub, n_changes, pos, run_code = (np.asarray(r) for r in res[7:])
            listed[changing] = n_changes[changing] <= programs.MAX_CHANGES
        read = changing[~listed[changing]]
        if len(read):
            bits = (np.asarray(res[0]).view(np.uint32)[read] if res[0] is not None
                    else runner.keys(given, read))[:, :m]
            level = _levels(bits)
            code = dict(zip(read, _level_class(level)))
            self.zsub[read] += np.stack([(level == k).sum(axis=1, dtype=np.int64) for k in ZERO_LEVELS], axis=1)
            err = np.where(level <= LEVEL_MEASURED, _error(bits, np), np.float32(-1))
            nb = -(-m // block)
            err = np.pad(err, [(0, 0), (0, nb * block - m)], constant_values=-1)
            berr[read, :nb] = err.reshape(len(read), nb, block).max(axis=-1)
        for i, t in enumerate(self.trackers):
            if not mixed[i]:
                k = int(bcode[i, 0])  # the one class of the call
                t.extend(k, o_first, o_last)
                self.counts[i, k] += m
            elif listed[i]:
                c = n_changes[i]
                t.feed_runs(run_code[i, : c + 1], np.concatenate(([0], pos[i, :c])), m, start, axis.ordinals)
                self.counts[i] += found_counts[i]
                self.zsub[i] += found_zsub[i]
            else:
                self.counts[i] += t.feed(code[i], start, axis.ordinals)
        np.maximum(self.max_ulp, berr.max(axis=1), out=self.max_ulp)
        self._profile(start, m, block, n, bcode, kappa, berr)
        return m

    def _profile(self, start, m, block, n, bcode, kappa, berr) -> None:
        bins = self.pcode.shape[1]
        b = (start + np.arange(0, m, block)) * bins // n  # each block joins the bin of its first point
        firsts = np.flatnonzero(np.diff(b, prepend=-1))
        ub = b[firsts]
        for arr, blocks in ((self.pcode, bcode), (self.pkap, kappa), (self.perr, berr)):
            arr[:, ub] = np.maximum(arr[:, ub], np.maximum.reduceat(blocks[:, : len(b)], firsts, axis=1))


def run_target(family: Family, forms: Sequence[Form], axis, target: float, tolerance: float,
               device, bins: int = PROFILE_BINS, tick: Callable[[int], None] | None = None,
               mode: str = "jit", floor: str = "condition", resume: RunState | None = None,
               save: Callable[[Callable[[], RunState]], None] | None = None,
               out_fmt: formats.Format | None = None) -> Outcome:
    """Sweep all `forms` over `axis` at one target; refine boundaries if sampled.

    `device` is a device or a sequence of them: consecutive calls go to each in turn
    (each runs the same programs) and are absorbed in the axis's order, so the
    outcome is the same on any number of devices. `save(state)` is called after each
    absorbed call with a function that returns the sweep's state so far; given back
    as `resume`, the sweep continues from there to the same outcome. `out_fmt` is the
    format the forms' results are in and are judged in, when it is not the axis's (a
    kernel that computes in a wider format than its inputs' lattice). Several
    processes (see `distributed`) each sweep a consecutive share, then join them."""
    from . import distributed

    devices = list(device) if isinstance(device, (list, tuple)) else [device]
    runner = Runner(family, forms, axis, target, tolerance, devices, mode, floor, out_fmt)
    n, size = len(axis), runner.size
    process, processes = distributed.processes()
    state = resume or RunState.new(len(forms), bins, process)
    calls = range(state.next, n, size)
    if processes > 1:  # this process's share; the others' are gathered below
        calls = distributed.share(calls, process, processes)
    for j, (start, call) in enumerate(streams.dispatched(runner, calls, devices, IN_FLIGHT)):
        done = state.absorb(runner, start, call)
        if j + 1 < len(calls):
            state.next = calls[j + 1]
            if save:
                save(lambda: state)
        if tick:
            tick(done)
    if processes > 1:
        shares = distributed.allgather(state)
        state = shares[0]
        for share in shares[1:]:
            state = state.join(share)
    return _outcome(runner, state, bins)


def _outcome(runner: Runner, state: RunState, bins: int) -> Outcome:
    axis, n = runner.axis, len(runner.axis)
    for t in state.trackers:
        t.close()
    refined = {} if axis.exhaustive else refine(runner, state.trackers)
    lo_idx, hi_idx = bin_bounds(n, min(BLOCK, runner.size), bins)
    filled = lo_idx >= 0
    plo = np.where(filled, axis.ordinals(np.maximum(lo_idx, 0)), 1)
    phi = np.where(filled, axis.ordinals(np.maximum(hi_idx, 0)), 0)
    before_zero = int(axis.ordinals(np.array([axis.zero_index - 1]))[0]) if axis.zero_index > 0 else None
    state.add_stats(runner.by_form(runner.stats))  # the refinement's points count too
    return Outcome(axis.fmt, runner.forms, runner.target, runner.target_in_format, n, axis.exhaustive,
                   state.counts, state.zsub[:, 0], state.zsub[:, 1], state.forward, state.max_ulp, state.pcode, state.perr, state.pkap, plo, phi,
                   state.trackers, refined, before_zero, None if runner.out == axis.fmt else runner.out,
                   state.stats)


def bin_bounds(n: int, block: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The first and last position of each profile bin (-1 where a bin is empty): a
    block of `block` points joins the bin of its first point (position · bins // n).
    Found per bin, without listing the n / block blocks (67 million for float32)."""
    j = np.arange(bins, dtype=np.int64)
    blocks = -(-n // block)
    first = -(-(j * n) // (bins * block))  # the first block whose bin is at least j
    used = (first < blocks) & (first * block * bins // n == j)
    lo = np.where(used, first * block, -1)
    starts = lo[used]
    hi = np.full(bins, -1, np.int64)
    hi[used] = np.append(starts[1:] - 1, n - 1)
    return lo, hi


ONSET_METHODS = {
    "exhaustive": "every value of the format (or of the range) was evaluated",
    "scanned": "every value between zero and the onset was evaluated",
    "refined": "the class is one band on this side of the sample: its boundary is exact, "
               "but failures between samples nearer zero are possible",
    "sampled": "the failing sampled point nearest zero: the class is sporadic here, or its run reaches zero",
}


def onsets_and_intervals(out: Outcome, i: int) -> tuple[dict, dict]:
    """JSON-ready onsets and intervals of form `i`, with refined boundaries applied.

    Each side's onset says how it was found (ONSET_METHODS). On a sampled axis a
    boundary is refined only where the class forms one run on that side: a sporadic
    class (several runs) reports its sampled failure nearest zero, as sampled."""
    t, fmt = out.trackers[i], out.fmt

    def start_of(r):
        return out.refined.get((i, r.code, r.start, r.prev), r.start)

    def end_of(r):
        return out.refined.get((i, r.code, r.end, r.next), r.end)

    onset, intervals = {}, {}
    for name in FAILURES:
        k = CODE[name]
        value, method = {"neg": None, "pos": None}, {"neg": None, "pos": None}
        for side, runs_here, r in (("neg", t.sides[k][0], t.neg.get(k)), ("pos", t.sides[k][1], t.pos.get(k))):
            if r is None:
                continue
            crosses = r.start < 0 <= r.end
            if out.exhaustive:
                method[side] = "exhaustive"
            elif crosses or runs_here > 1:
                method[side] = "sampled"
            else:
                method[side] = "refined"
            if crosses:  # the run holds zero (a point of every axis) and its neighbour below
                o = (0 if out.before_zero is None else out.before_zero) if side == "neg" else 0
            elif side == "neg":
                o = end_of(r) if method[side] != "sampled" else r.end
            else:
                o = start_of(r) if method[side] != "sampled" else r.start
            value[side] = _value(o, fmt)
        onset[name] = {"neg": value["neg"], "pos": value["pos"], "method": method}
        listed = [[_value(start_of(r), fmt), _value(end_of(r), fmt)] for r in t.listed_runs(k)]
        intervals[name] = {"total": t.count[k], "listed": listed}
    k = CODE["unresolved"]
    if t.count[k]:  # where the reference could not decide (a user's function): listed as sampled
        intervals["unresolved"] = {"total": t.count[k], "listed": [[_value(r.start, fmt), _value(r.end, fmt)]
                                                                   for r in t.listed_runs(k)]}
    return onset, intervals


def _value(o: int | None, fmt: formats.Format) -> float | None:
    return None if o is None else float(formats.from_ordinal(np.int64(o), fmt).astype(np.float64))


def scan_onsets(family: Family, form: Form, fmt: formats.Format, target, onset: dict, tolerance: float,
                device, mode: str = "jit", floor: str = "condition",
                progress: Callable[[str, int, int], None] | None = None,
                out_fmt: formats.Format | None = None) -> dict:
    """A row's onsets with every side that was not found exhaustively made exact: every
    lattice value between zero and the farthest such onset of the side is evaluated,
    so each class's onset there (one the sample missed too) becomes the failing value
    nearest zero, method ``scanned``."""
    from ..numerics.sampling import Range

    new = {cls: dict(o, method=dict(o["method"])) for cls, o in onset.items()}
    for side in ("neg", "pos"):
        far = [int(formats.to_ordinal(fmt.cast(o[side]), fmt)) for o in onset.values()
               if o["method"][side] in ("refined", "sampled")]
        if not far:
            continue
        lo, hi = (0, max(far) - 1) if side == "pos" else (min(far) + 1, -1)
        found = {}
        if lo <= hi:
            axis, done = Range(fmt, lo, hi), [0]

            def tick(n, side=side):
                done[0] += n
                if progress:
                    progress(side, done[0], len(axis))

            found = onsets_and_intervals(run_target(family, [form], axis, target, tolerance, device,
                                                    tick=tick, mode=mode, floor=floor, out_fmt=out_fmt), 0)[0]
        for cls, o in new.items():
            if cls in found and found[cls][side] is not None:
                o[side], o["method"][side] = found[cls][side], "scanned"
            elif o["method"][side] in ("refined", "sampled"):
                o["method"][side] = "scanned"
    return new

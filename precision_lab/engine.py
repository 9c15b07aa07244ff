"""The sweep engine: run every form of a family over a format's axis, chunk by chunk.

For each format one jitted program evaluates all selected forms (vmapped over
the chunk), their references, and the classification, and reduces on the
device to per-chunk counts, maximum errors and profile bins; only the per-point
class codes (one byte a point and form) come back, to find runs. The target is
an argument, so each format compiles once for all targets. Sampled formats then
refine every onset and listed interval boundary by bisection on ordinals.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import formats
from .classify import CLASSES, CODE, FAILURES, classify
from .family import Family, Form
from .runs import RunTracker

CHUNK = 1 << 16
PROFILE_BINS = 256


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
    max_ulp: np.ndarray  # (F,), -1 where no ok/inaccurate point
    profile_code: np.ndarray  # (F, bins), -1 for an empty bin
    profile_err: np.ndarray  # (F, bins)
    profile_lo: np.ndarray  # (bins,) ordinal of the first point in each bin
    profile_hi: np.ndarray
    trackers: list[RunTracker]
    refined: dict  # (form index, code, inside, outside) -> refined inside ordinal


@functools.lru_cache(maxsize=None)
def program(family: Family, form_names: tuple[str, ...], fmt: formats.Format, bins: int) -> Callable:
    """The jitted per-chunk program for these forms in this format."""
    forms = [family.form(n) for n in form_names]
    on_device = fmt.bits < 64  # float64 references come from the host (double-double)

    def run(x, target, target64, tolerance, start, total, valid_n, ext_exact, ext_scale):
        size = x.shape[0]
        outs = []
        for f in forms:
            out = jax.vmap(f.kernel, (0, None))(x, target)
            if out.dtype != fmt.dtype:
                raise TypeError(f"Form `{f.name}` returned {out.dtype} for {fmt.name} input; it must not change dtype.")
            outs.append(out)
        out = jnp.stack(outs)
        if on_device:
            x64 = formats.ordinal_to_float64(formats.to_ordinal(x, fmt, jnp), fmt, jnp)
            base = family.device_base(x64, target64)
            refs = [f.reference(base) for f in forms]
            exact = jnp.stack([jnp.broadcast_to(r[0], (size,)) for r in refs])
            scale = jnp.stack([jnp.broadcast_to(r[1], (size,)) for r in refs])
        else:
            exact, scale = ext_exact, ext_scale
        code, ulp, subnormal = classify(out, exact, scale, fmt, tolerance, jnp)
        valid = jnp.arange(size) < valid_n
        onehot = (code[..., None] == jnp.arange(len(CLASSES), dtype=jnp.int8)) & valid[:, None]
        counts = onehot.sum(axis=1)
        zsub = (subnormal & valid).sum(axis=1)
        measured = (code <= CODE["inaccurate"]) & valid
        err = jnp.where(measured, ulp, -1.0)
        b = ((start + jnp.arange(size, dtype=jnp.int64)) * bins) // total
        b = jnp.where(valid, b, bins)  # padding goes to a discarded extra bin
        pcode = jax.ops.segment_max(jnp.where(valid, code, -1).T, b, bins + 1)[:bins].T
        perr = jax.ops.segment_max(err.T, b, bins + 1)[:bins].T
        return code, counts, zsub, err.max(axis=1), pcode, perr

    return jax.jit(run)


def host_reference(family: Family, forms: Sequence[Form], x: np.ndarray, target64: float):
    """Exact values and scales in double-double on the host, rounded to float64."""
    base = family.host_base(np.asarray(x, np.float64), target64)
    exact, scale = [], []
    for f in forms:
        v, s = f.reference(base)
        exact.append(np.broadcast_to(_to_float(v), x.shape))
        scale.append(np.broadcast_to(_to_float(s), x.shape))
    return np.stack(exact), np.stack(scale)


def _to_float(v):
    return v.to_float() if hasattr(v, "to_float") else np.asarray(v, np.float64)


class _Runner:
    """Feeds padded chunks of one format to its program."""

    def __init__(self, family, forms, fmt, target, tolerance, device, bins):
        self.family, self.forms, self.fmt = family, forms, fmt
        self.prog = program(family, tuple(f.name for f in forms), fmt, bins)
        y = fmt.cast(target)
        self.target_in_format = float(y.astype(np.float64))
        self.args = (jax.device_put(y, device), jnp.float64(self.target_in_format), jnp.float64(tolerance))
        self.device = device

    def __call__(self, ords: np.ndarray, start: int, total: int):
        n = len(ords)
        padded = np.concatenate((ords, np.full(CHUNK - n, ords[-1], np.int64))) if n < CHUNK else ords
        x = formats.from_ordinal(padded, self.fmt)
        ext = (None, None)
        if self.fmt.bits == 64:
            ext = tuple(jax.device_put(a, self.device) for a in
                        host_reference(self.family, self.forms, x.astype(np.float64), self.target_in_format))
        return self.prog(jax.device_put(x, self.device), *self.args, start, total, n, *ext)


def run_target(family: Family, forms: Sequence[Form], axis, target: float, tolerance: float,
               device, bins: int = PROFILE_BINS, tick: Callable[[int], None] | None = None) -> Outcome:
    """Sweep all `forms` over `axis` at one target; refine boundaries if sampled."""
    fmt = axis.fmt
    runner = _Runner(family, forms, fmt, target, tolerance, device, bins)
    nf, n = len(forms), len(axis)
    counts = np.zeros((nf, len(CLASSES)), np.int64)
    zsub = np.zeros(nf, np.int64)
    max_ulp = np.full(nf, -1.0)
    pcode = np.full((nf, bins), -1, np.int64)
    perr = np.full((nf, bins), -1.0)
    plo = np.full(bins, np.iinfo(np.int64).max)
    phi = np.full(bins, np.iinfo(np.int64).min)
    trackers = [RunTracker() for _ in forms]

    def absorb(ords, res):
        code, c, z, m, pc, pe = (np.asarray(r) for r in res)
        counts[:] += c
        zsub[:] += z
        np.maximum(max_ulp, m, out=max_ulp)
        np.maximum(pcode, pc, out=pcode)
        np.maximum(perr, pe, out=perr)
        for i, t in enumerate(trackers):
            t.feed(code[i, : len(ords)], ords)
        idx = np.arange(len(ords)) + absorb.start
        b = idx * bins // n
        np.minimum.at(plo, b, ords)
        np.maximum.at(phi, b, ords)
        absorb.start += len(ords)
        if tick:
            tick(len(ords))

    absorb.start = 0
    pending = None
    for start in range(0, n, CHUNK):
        ords = axis.ordinals(start, start + CHUNK)
        res = runner(ords, start, n)  # dispatched asynchronously
        if pending is not None:
            absorb(*pending)
        pending = (ords, res)
    absorb(*pending)
    for t in trackers:
        t.close()
    refined = {} if axis.exhaustive else _refine(runner, trackers)
    return Outcome(fmt, tuple(forms), target, runner.target_in_format, n, axis.exhaustive, counts,
                   zsub, max_ulp, pcode, perr, plo, phi, trackers, refined)


def boundaries(trackers: list[RunTracker]) -> set[tuple[int, int, int, int]]:
    """(form, code, inside, outside) brackets of every onset and listed interval."""
    out = set()
    for i, t in enumerate(trackers):
        for k in t.count:
            runs = list(t.listed_runs(k))
            if k in t.neg and t.neg[k].end < 0:
                runs.append(t.neg[k])
            if k in t.pos and t.pos[k].start >= 0:
                runs.append(t.pos[k])
            for r in runs:
                if r.prev is not None and r.prev + 1 < r.start:
                    out.add((i, k, r.start, r.prev))
                if r.next is not None and r.end + 1 < r.next:
                    out.add((i, k, r.end, r.next))
    return out


def _refine(runner: _Runner, trackers: list[RunTracker]) -> dict:
    """Bisect each bracket until inside and outside are adjacent lattice values."""
    todo = sorted(boundaries(trackers))
    state = {b: [b[2], b[3]] for b in todo}
    while True:
        open_ = [b for b in todo if abs(state[b][0] - state[b][1]) > 1]
        if not open_:
            break
        for lo in range(0, len(open_), CHUNK):
            batch = open_[lo : lo + CHUNK]
            mids = np.array([_mid(*state[b]) for b in batch], np.int64)
            order = np.argsort(mids)
            code = np.asarray(runner(mids[order], 0, 1)[0])
            for j, pos in enumerate(order):
                b = batch[pos]
                side = 0 if code[b[0], j] == b[1] else 1
                state[b][side] = int(mids[pos])
    return {b: state[b][0] for b in todo}


def _mid(a: int, b: int) -> int:
    return (a + b) // 2


def onsets_and_intervals(out: Outcome, i: int) -> tuple[dict, dict]:
    """JSON-ready onsets and intervals of form `i`, with refined boundaries applied."""
    t, fmt = out.trackers[i], out.fmt
    method = "exhaustive" if out.exhaustive else "refined"

    def start_of(r):
        return out.refined.get((i, r.code, r.start, r.prev), r.start)

    def end_of(r):
        return out.refined.get((i, r.code, r.end, r.next), r.end)

    onset, intervals = {}, {}
    for name in FAILURES:
        k = CODE[name]
        neg = pos = None
        how = method
        if k in t.pos:
            r = t.pos[k]
            pos = 0 if r.start < 0 else start_of(r)
        if k in t.neg:
            r = t.neg[k]
            if r.end < 0:
                neg = end_of(r)
            else:  # the run crosses zero: its last point below zero is the swept one
                neg = t.before_zero
                how = method if out.exhaustive else "sampled"
        onset[name] = {"neg": _value(neg, fmt), "pos": _value(pos, fmt),
                       "method": how if (neg is not None or pos is not None) else None}
        listed = [[_value(start_of(r), fmt), _value(end_of(r), fmt)] for r in t.listed_runs(k)]
        intervals[name] = {"total": t.count[k], "listed": listed}
    return onset, intervals


def _value(o: int | None, fmt: formats.Format) -> float | None:
    return None if o is None else float(formats.from_ordinal(np.int64(o), fmt).astype(np.float64))

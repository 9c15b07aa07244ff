"""The sweep engine: run every form of a family over a format's axis, chunk by chunk.

For each format one jitted program makes a chunk's points from their positions,
evaluates all selected forms (vmapped over the chunk) and their references, and
classifies every point into a 32-bit key (its level, i.e. class with lost
subnormals apart, then its ULP error). Per block of points it takes the largest
and smallest key: the worst class, whether the block is all one class, and then
its largest error (for the profile); per form, whether its class changes in the
chunk. A form that keeps one class costs the host a constant; for one that
changes, the host reads its keys, whose runs give the counts, onsets and
intervals. The target is an argument, so each format compiles once for all
targets. Sampled axes then refine every onset and listed interval boundary on
ordinals, through the same program, until its two sides are adjacent lattice
values."""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from . import formats
from .classify import CLASSES, CODE, FAILURES, classify_terms, per_point, reference_terms
from .family import Family, Form
from .runs import RunTracker

CHUNK = 1 << 16
CHUNK_ELEMENTS = 1 << 17  # bound on points × vector length per chunk
ACCELERATOR_SCALE = 16  # GPUs and TPUs take chunks this many times larger: a CPU's
# chunk is a fraction of a millisecond of their work, less than a program call costs
BLOCK = 64  # profile resolution inside a chunk: key maxima and minima per block of points
PROFILE_BINS = 256
REFINE_POINTS = 15  # interior points per bracket and round: each round splits a bracket 16 ways


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
    before_zero: int | None  # ordinal of the swept point just below 0


def distinct_references(forms: Sequence[Form]) -> tuple[list[Callable], np.ndarray]:
    """The distinct reference functions of `forms`, and which one each form uses."""
    refs = list(dict.fromkeys(f.reference for f in forms))
    return refs, np.array([refs.index(f.reference) for f in forms])


def computed_and_exact(family: Family, forms: Sequence[Form], fmt: formats.Format, ords, target, target64):
    """Inside a jitted program: every form's result at the points `ords` (a list; a
    result is one value or one vector per point), and, for formats narrower than
    float64, (exact, scale) in float64 of each distinct reference (None for float64)."""
    base = base_at(family, fmt, ords, target64)
    return computed(forms, fmt, ords, target), None if base is None else exact(family, forms, base)


def computed(forms: Sequence[Form], fmt: formats.Format, ords, target) -> list:
    """Every form's result at the points `ords`, in the format."""
    x = formats.from_ordinal(ords, fmt, jnp)
    outs = []
    for f in forms:
        out = jax.vmap(f.kernel, (0, None))(x, target)
        if out.dtype != fmt.dtype:
            raise TypeError(f"Form `{f.name}` returned {out.dtype} for {fmt.name} input; it must not change dtype.")
        outs.append(out)
    return outs


def base_at(family: Family, fmt: formats.Format, ords, target64) -> dict | None:
    """The family's base quantities in float64 at the points `ords` (a dict), or None
    for float64, whose references come from the host."""
    if fmt.bits == 64:
        return None
    base = family.device_base(formats.ordinal_to_float64(ords, fmt, jnp), target64)
    return {k: v for k, v in vars(base).items() if k != "where"}


def exact(family: Family, forms: Sequence[Form], base: dict) -> list:
    """(exact, scale) of each distinct reference of `forms` from the base quantities."""
    b = types.SimpleNamespace(**base, where=jnp.where)
    return [r(b) for r in distinct_references(forms)[0]]


@functools.lru_cache(maxsize=None)
def program(family: Family, form_names: tuple[str, ...], axis, platform: str, size: int) -> Callable:
    """The jitted program for these forms on this axis and backend, `size` points a
    call, compiled once.

    It takes the position of a chunk's first point and makes the chunk's points
    itself (no host-to-device traffic), or, when `chosen` is set, takes the
    points' ordinals `ords` (for refinement).
    """
    fmt = axis.fmt
    forms = [family.form(n) for n in form_names]
    ref_of = distinct_references(forms)[1]
    block = min(BLOCK, size)
    part = part_size(size)

    def run(start, ords, chosen, target, target64, tolerance, valid_n, host_refs):
        # a chunk's points past the axis's end repeat its last point, which leaves every
        # block's maximum and minimum as they are
        position = start + jnp.minimum(jnp.arange(size, dtype=jnp.int64), valid_n - 1)
        ords = jnp.where(chosen, ords, axis.ordinals(position, jnp))
        base = base_at(family, fmt, ords, target64)

        def reference_words(given):  # float64's references come from the host (double-double)
            refs = host_refs if given is None else exact(family, forms, given)
            return [_join(*reference_terms(e, s, fmt, tolerance, jnp)) for e, s in refs]

        def point_keys(given):
            ords, terms = given
            return [_pack(*per_point(*classify_terms(out, *_split(terms[k]), fmt, jnp), tuple(range(1, out.ndim))))
                    for out, k in zip(computed(forms, fmt, ords, target), ref_of)]

        # Each stage into buffers of its own, so nothing is computed twice: XLA would
        # otherwise fuse (and so repeat) the references into every form's
        # classification, and the classification into every reduction below.
        terms = _materialise(reference_words, base, valid_n >= 0, platform)
        keys = _materialise(point_keys, (ords, terms), valid_n >= 0, platform)
        blocks = (size // block, block)
        # as float32 the keys are positive normal numbers ordered by level, then error:
        # float32 maxima and minima (XLA's fastest reductions on the CPU) per block give
        # its worst level, whether it is all one level, and then its largest error
        top, bottom = (lax.bitcast_convert_type(jnp.stack([reduce(k.reshape(blocks), axis=-1) for k in keys]),
                                                jnp.uint32) for reduce in (jnp.max, jnp.min))
        level = (top >> KEY_SHIFT).astype(jnp.int32) - 1
        whole = (bottom >> KEY_SHIFT) == (top >> KEY_SHIFT)
        err = jnp.where(whole & (level <= LEVEL_MEASURED), _error(top), -1.0)  # else the host reads the keys
        worst = _level_class(level).astype(jnp.int8)
        # per part of the chunk (see `part_size`): does the class change in it, is it all
        # lost subnormals, and the ordinals of its first and last points
        parts = (size // part, part // block)
        used = (jnp.arange(blocks[0]) * block < valid_n).reshape(parts)
        level, whole = level.reshape(-1, *parts), whole.reshape(-1, *parts)
        mixed = (used & (~whole | (level != level[..., :1]))).any(-1)
        lost = level[..., 0] == LEVEL_SUBNORMAL  # where not mixed
        first = jnp.arange(parts[0]) * part
        ends = ords[jnp.stack([first, jnp.clip(valid_n - 1, first, first + part - 1)])]
        # the keys themselves: the host reads classes from them only where they change
        return keys, err, worst, mixed, lost, ends

    return jax.jit(run)


def _materialise(fn, operand, true, platform: str):
    """fn(operand), computed once into buffers of its own: XLA would otherwise fuse
    (and so repeat) the computation into every consumer. On GPUs and TPUs an
    optimization barrier does it. XLA's CPU pipeline drops those before fusion, so
    on the CPU the computation becomes a conditional's branch, whose results are
    always materialised; `true` must be a traced value that is True. (A GPU would
    copy that predicate to the host and wait for it.)"""
    if platform != "cpu":
        return lax.optimization_barrier(fn(operand))
    shapes = jax.eval_shape(fn, operand)
    return lax.cond(true, fn, lambda _: jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes), operand)


# Levels: the classes, with `zero` split by whether the exact value is subnormal.
LEVEL_CLASS = np.array([CODE["ok"], CODE["inaccurate"], CODE["zero"], CODE["zero"], CODE["inf"], CODE["nan"]])
LEVEL_MEASURED = 1  # levels up to this one (ok, inaccurate) carry an error
LEVEL_SUBNORMAL = 3
KEY_SHIFT = 27  # a point's key: level + 1 in bits 27-29, error field in bits 0-26
ERR_DROP = 4  # fraction bits of the error's float32 that the field drops


def _pack(code, ulp, subnormal):
    """One 32-bit key per point, typed float32: its level + 1 in bits 27-29 and, for an
    ok or inaccurate point, its ULP error in bits 0-26 (the bits of the error as a
    float32 without their last ERR_DROP fraction bits; 0 for the other points). As
    float32 every key is a positive normal number, and keys order by level, then
    error. Errors are exact up to 2**20 ULPs, within 2**-19 relative above."""
    level = code.astype(jnp.uint32) + (code >= CODE["inf"]) + ((code == CODE["zero"]) & subnormal)
    bits = lax.bitcast_convert_type(ulp.astype(jnp.float32), jnp.uint32)
    field = jnp.where(code <= CODE["inaccurate"], bits >> ERR_DROP, 0)
    return lax.bitcast_convert_type(((level + 1) << KEY_SHIFT) | field, jnp.float32)


def _error(key_bits, xp=jnp):
    """The ULP error in keys (as uint32 bits) of ok and inaccurate points."""
    field = (key_bits & ((1 << KEY_SHIFT) - 1)) << ERR_DROP
    return field.view(np.float32) if xp is np else lax.bitcast_convert_type(field, jnp.float32)


def _join(o_e, limit):
    """A reference's two terms in one array where they fit one 64-bit word (formats of
    up to 32 bits), so one pass computes and stores both."""
    if o_e.dtype.itemsize == 8:
        return o_e, limit
    return (limit.astype(jnp.uint64) << 32) | o_e.astype(jnp.uint32).astype(jnp.uint64)


_LOW = 0 if sys.byteorder == "little" else 1  # where a 64-bit word's low half lies


def _split(term):
    """The two terms of `_join`. Read as pairs of 32-bit words, not with 64-bit
    arithmetic: XLA vectorises a fusion at the lane count of its widest type, so one
    64-bit operation would halve the width of the whole classification."""
    if isinstance(term, tuple):
        return term
    pair = lax.bitcast_convert_type(term, jnp.uint32)  # (..., 2): the word's two halves in memory order
    return lax.bitcast_convert_type(pair[..., _LOW], jnp.int32), pair[..., 1 - _LOW]


def _key_bits(keys, rows, points: slice = slice(None), cache: dict | None = None) -> np.ndarray:
    """The keys of forms `rows` at `points`, as uint32 on the host (each form's read
    from the device once, where `cache` keeps them)."""
    cache = {} if cache is None else cache
    for i in rows:
        if i not in cache:
            cache[i] = np.asarray(keys[i]).view(np.uint32)
    return np.stack([cache[i][points] for i in rows])


def _levels(bits: np.ndarray) -> np.ndarray:
    """Levels (int8) from key bits."""
    return ((bits >> KEY_SHIFT) - 1).astype(np.int8)


def _level_class(level):
    """Class codes of levels (NumPy or JAX arrays): LEVEL_CLASS, by arithmetic (a
    gather is slower)."""
    return level - (level >= LEVEL_SUBNORMAL).astype(level.dtype)


def chunk_size(family: Family, platform: str = "cpu") -> int:
    """Points per chunk: CHUNK for scalar families; for vector-valued ones a power of
    two that keeps points × K near CHUNK_ELEMENTS, so memory stays bounded at any K.
    Both are ACCELERATOR_SCALE times larger on a GPU or TPU."""
    scale = 1 if platform == "cpu" else ACCELERATOR_SCALE
    if family.width <= 1:
        return CHUNK * scale
    fit = max(CHUNK_ELEMENTS * scale // family.width, 8)
    return min(CHUNK * scale, 1 << (fit.bit_length() - 1))


def part_size(size: int) -> int:
    """Points per part of a chunk of `size` points: the stretch whose classes the host
    reads at once where a form's class changes. Parts stay CHUNK points in an
    accelerator's larger chunks, so the host's work where classes change does not grow
    with the chunk."""
    return min(size, CHUNK)


def call_sizes(family: Family, platform: str, points: int) -> tuple[int, int]:
    """(points per chunk, points per refinement call) on an axis of `points` points.

    An accelerator takes its larger chunks only on axes of more than four CPU chunks
    (a default sweep's axes fit one CPU chunk). Refinement calls stay at most CHUNK
    points on every backend: a call evaluates a few points of each bracket, and the
    host reads back every form's keys of the whole call."""
    size = chunk_size(family)
    if platform != "cpu" and points > 4 * size:
        size = chunk_size(family, platform)
    return size, part_size(size)


def host_reference(family: Family, forms: Sequence[Form], x: np.ndarray, target64: float) -> list:
    """(exact, scale) of each distinct reference of `forms`, in double-double on the
    host, rounded to float64."""
    base = family.host_base(np.asarray(x, np.float64), target64)
    return [tuple(np.asarray(_to_float(v), np.float64) for v in r(base)) for r in distinct_references(forms)[0]]


def _to_float(v):
    return v.to_float() if hasattr(v, "to_float") else np.asarray(v, np.float64)


def _platform(device) -> str:
    """The backend whose program shape (chunk size, materialisation) `device` gets."""
    return device.platform


class _Runner:
    """Runs one format's programs at one target: whole chunks, or chosen points."""

    def __init__(self, family, forms, axis, target, tolerance, device):
        self.family, self.forms, self.axis, self.fmt = family, forms, axis, axis.fmt
        platform = _platform(device)
        self.size, self.refine = call_sizes(family, platform, len(axis))
        names = tuple(f.name for f in forms)
        self.prog = program(family, names, axis, platform, self.size)
        self.refine_prog = program(family, names, axis, platform, self.refine)
        y = self.fmt.cast(target)
        self.target_in_format = float(y.astype(np.float64))
        self.args = (jax.device_put(y, device), jnp.float64(self.target_in_format), jnp.float64(tolerance))
        self.device = device
        self.no_ords = jax.device_put(np.zeros(self.size, np.int64), device)

    def _host_refs(self, ords: np.ndarray, size: int):
        """float64's references for the points `ords`, padded to a call of `size` points."""
        if self.fmt.bits < 64:
            return None
        x = formats.from_ordinal(ords, self.fmt).astype(np.float64)
        refs = host_reference(self.family, self.forms, x, self.target_in_format)
        pad = size - len(ords)
        refs = [tuple(np.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), mode="edge") for a in r) for r in refs]
        return jax.device_put(refs, self.device)

    def chunk(self, start: int):
        n = min(self.size, len(self.axis) - start)
        refs = None
        if self.fmt.bits == 64:
            refs = self._host_refs(self.axis.ordinals(np.arange(start, start + n)), self.size)
        return self.prog(start, self.no_ords, False, *self.args, n, refs)

    def classes_at(self, ords: np.ndarray) -> np.ndarray:
        """Class codes (forms × points) at arbitrary ordinals."""
        n = len(ords)
        padded = np.concatenate((ords, np.full(self.refine - n, ords[-1], np.int64)))
        refs = self._host_refs(ords, self.refine)
        keys = self.refine_prog(0, jax.device_put(padded, self.device), True, *self.args, n, refs)[0]
        return _level_class(_levels(_key_bits(keys, range(len(keys)), slice(n))))


def run_target(family: Family, forms: Sequence[Form], axis, target: float, tolerance: float,
               device, bins: int = PROFILE_BINS, tick: Callable[[int], None] | None = None) -> Outcome:
    """Sweep all `forms` over `axis` at one target; refine boundaries if sampled."""
    fmt = axis.fmt
    runner = _Runner(family, forms, axis, target, tolerance, device)
    nf, n = len(forms), len(axis)
    counts = np.zeros((nf, len(CLASSES)), np.int64)
    zsub = np.zeros(nf, np.int64)
    max_ulp = np.full(nf, -1.0)
    pcode = np.full((nf, bins), -1, np.int64)
    perr = np.full((nf, bins), -1.0)
    trackers = [RunTracker() for _ in forms]

    size = runner.size
    block = min(BLOCK, size)
    part = part_size(size)

    def absorb(start, res):
        keys = res[0]
        berr = np.array(res[1])  # writable: the host fills in the blocks where a class changes
        bcode, mixed, lost, ends = (np.asarray(r) for r in res[2:])
        m = min(size, n - start)
        cache = {}  # form -> the chunk's keys on the host, read once where a part needs them
        for j, lo in enumerate(range(0, m, part)):
            hi = min(lo + part, m)
            absorb_part(start + lo, hi - lo, mixed[:, j], lost[:, j], bcode[:, lo // block], ends[:, j],
                        berr[:, lo // block:], lambda rows, lo=lo, hi=hi: _key_bits(keys, rows, slice(lo, hi), cache))
        np.maximum(max_ulp, berr.max(axis=1), out=max_ulp)
        b = (start + np.arange(0, m, block)) * bins // n  # each block joins the bin of its first point
        firsts = np.flatnonzero(np.diff(b, prepend=-1))
        ub = b[firsts]
        pcode[:, ub] = np.maximum(pcode[:, ub], np.maximum.reduceat(bcode[:, : len(b)], firsts, axis=1))
        perr[:, ub] = np.maximum(perr[:, ub], np.maximum.reduceat(berr[:, : len(b)], firsts, axis=1))
        if tick:
            tick(m)

    def absorb_part(start, m, mixed, lost, one_class, ends, berr, read_bits):
        zsub[:] += np.where(~mixed & lost, m, 0)
        # Most parts are one class per form: those need only the part's two ends,
        # which the program returns. The forms that change need their per-point
        # classes (and errors, which the program gives only for blocks of one level),
        # and ordinals at run ends and their neighbours: looked up at once.
        o_first, o_last = int(ends[0]), int(ends[1])
        changing = np.flatnonzero(mixed)
        code, ordinals = np.zeros((0, m), np.int8), None
        if len(changing):
            bits = read_bits(changing)
            level = _levels(bits)
            code = _level_class(level)
            zsub[changing] += (level == LEVEL_SUBNORMAL).sum(axis=1, dtype=np.int64)
            err = np.where(level <= LEVEL_MEASURED, _error(bits, np), np.float32(-1))
            nb = -(-m // block)
            if nb * block > m:
                err = np.pad(err, [(0, 0), (0, nb * block - m)], constant_values=-1)
            berr[changing, :nb] = err.reshape(len(changing), nb, block).max(axis=-1)
            edge = np.flatnonzero((code[:, 1:] != code[:, :-1]).any(axis=0))
            need = np.zeros(m, bool)  # the part's run ends and their neighbours
            need[[0, m - 1]] = need[edge] = need[edge + 1] = True
            need = np.flatnonzero(need)
            known = np.empty(m, np.int64)  # filled where needed: all that is asked for
            known[need] = axis.ordinals(start + need)

            def ordinals(i):
                return known[i - start]

        rows = iter(code)
        for i, t in enumerate(trackers):
            if mixed[i]:
                counts[i] += t.feed(next(rows), start, ordinals)
            else:
                k = int(one_class[i])  # the one class of the part
                t.extend(k, o_first, o_last)
                counts[i, k] += m

    pending = None
    for start in range(0, n, size):
        res = runner.chunk(start)  # dispatched asynchronously
        if pending is not None:
            absorb(*pending)
        pending = (start, res)
    absorb(*pending)
    for t in trackers:
        t.close()
    refined = {} if axis.exhaustive else _refine(runner, trackers)
    block_starts = np.arange(0, n, block)
    b = block_starts * bins // n
    lo_idx = np.full(bins, -1)
    hi_idx = np.full(bins, -1)
    firsts = np.flatnonzero(np.diff(b, prepend=-1))
    lo_idx[b[firsts]] = block_starts[firsts]
    hi_idx[b[firsts]] = np.append(block_starts[firsts[1:]] - 1, n - 1)
    filled = lo_idx >= 0
    plo = np.where(filled, axis.ordinals(np.maximum(lo_idx, 0)), 1)
    phi = np.where(filled, axis.ordinals(np.maximum(hi_idx, 0)), 0)
    before_zero = int(axis.ordinals(np.array([axis.zero_index - 1]))[0]) if axis.zero_index > 0 else None
    return Outcome(fmt, tuple(forms), target, runner.target_in_format, n, axis.exhaustive, counts,
                   zsub, max_ulp, pcode, perr, plo, phi, trackers, refined, before_zero)


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
    """Narrow each bracket until inside and outside are adjacent lattice values.

    Each round evaluates up to REFINE_POINTS evenly spaced interior points of every
    open bracket at once (plain bisection when there are too many brackets for a
    program call) and keeps the first change of class met going out from the inside
    point, so a gap of 2**47 ordinals closes in 12 rounds, not 47. (More points a
    round cost more than they save: float64's references are computed on the host.)
    Brackets of different forms or classes between the same two points (onsets that
    coincide) share their points: a call classifies every form at once.
    """
    todo = sorted(boundaries(trackers))
    state = {b: (b[2], b[3]) for b in todo}
    while True:
        spans = sorted({state[b] for b in todo if abs(state[b][0] - state[b][1]) > 1})
        if not spans:
            break
        per = max(1, min(REFINE_POINTS, runner.refine // len(spans)))
        group = runner.refine // per
        for first in range(0, len(spans), group):
            points = {}
            for inside, outside in spans[first : first + group]:
                gap, q = outside - inside, min(abs(outside - inside) - 1, per)
                points[inside, outside] = [inside + gap * j // (q + 1) for j in range(1, q + 1)]
            code = runner.classes_at(np.array([o for pts in points.values() for o in pts], np.int64))
            at = dict(zip(points, np.cumsum([0] + [len(p) for p in points.values()])))
            for b in todo:
                if state[b] not in points:
                    continue
                inside, outside = span = state[b]
                for j, o in enumerate(points[span]):
                    if code[b[0], at[span] + j] != b[1]:
                        outside = o
                        break
                    inside = o
                state[b] = (inside, outside)
    return {b: state[b][0] for b in todo}


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
                neg = out.before_zero
                how = method if out.exhaustive else "sampled"
        onset[name] = {"neg": _value(neg, fmt), "pos": _value(pos, fmt),
                       "method": how if (neg is not None or pos is not None) else None}
        listed = [[_value(start_of(r), fmt), _value(end_of(r), fmt)] for r in t.listed_runs(k)]
        intervals[name] = {"total": t.count[k], "listed": listed}
    return onset, intervals


def _value(o: int | None, fmt: formats.Format) -> float | None:
    return None if o is None else float(formats.from_ordinal(np.int64(o), fmt).astype(np.float64))

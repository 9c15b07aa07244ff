"""The sweep engine: run each form of a family over a format's axis, call by call.

Each call takes `batch_size(family)` points of the axis. The points' kernel inputs
are made by a program of their own; then each form's kernel runs alone, as its user
would compile it (`jax.jit(jax.vmap(kernel))`, or op by op in the eager mode); each
distinct reference runs in a program of its own; and an exact integer program
classifies every point of each form into a 32-bit key (its level, i.e. class with
lost subnormals apart, then its ULP error) and reduces the keys per block of points:
the worst class, whether the block is all one class, and then its largest error (for
the profile), and whether the class changes in the call. A form that keeps one class
costs the host a constant; for one that changes, the host reads its keys, whose runs
give the counts, onsets and intervals. No program depends on which other forms are
swept, on the number of points, or on the target (a traced argument). Sampled axes
then refine onsets and listed interval boundaries on ordinals, through the same
programs, until their two sides are adjacent lattice values."""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from ..numerics import formats
from ..numerics.classify import CLASSES, CODE, FAILURES, classify_terms, per_point, reference_terms
from ..families.base import Family, Form
from .runs import RunTracker

BATCH = 1 << 18  # points per kernel call of a scalar family
BATCH_ELEMENTS = 1 << 17  # bound on points × vector length per call of a vector family
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
    profile_kappa: np.ndarray  # (F, bins): the largest condition number of the exact value
    profile_lo: np.ndarray  # (bins,) ordinal of the first point in each bin
    profile_hi: np.ndarray
    trackers: list[RunTracker]
    refined: dict  # (form index, code, inside, outside) -> refined inside ordinal
    before_zero: int | None  # ordinal of the swept point just below 0
    out_fmt: formats.Format | None = None  # the format the forms' results are in and judged in (None: fmt)

    @property
    def value_fmt(self) -> formats.Format:
        return self.out_fmt or self.fmt


def distinct_references(forms: Sequence[Form]) -> tuple[list[Callable], np.ndarray]:
    """The distinct reference functions of `forms`, and which one each form uses."""
    refs = list(dict.fromkeys(f.reference for f in forms))
    return refs, np.array([refs.index(f.reference) for f in forms])


# ------------------------------------------------------------------ programs
#
# A row's figures come from three programs, none of which knows what else is swept:
# the form's kernel alone, `jax.jit(jax.vmap(kernel))` at the family's batch size
# (the program a user compiles); its reference, one program per reference function;
# and an exact integer classification shared by every form of the format. So a row is
# the same swept alone or with every other form, at any number of points.

MODES = ("jit", "eager", "strict")
STRICT_FLAG = "--xla_allow_excess_precision=false"


def batch_size(family: Family) -> int:
    """Points per kernel call: BATCH for scalar families; for vector-valued ones the
    power of two that keeps points × K near BATCH_ELEMENTS (at least 8). Every kernel
    call of every sweep, refinement and evaluation has exactly this many points (a
    short call repeats its last point), because XLA's code, and with it a result, can
    change with the batch: bfloat16 `ce_shifted` at K = 10, m = 8.375 gives −0 in
    batches of up to 2048 vectors and 0.00390625 from 4096 on (its Σexp then fuses with
    the exponentials and adds them unrounded, in float32)."""
    if family.width <= 1:
        return BATCH
    fit = max(BATCH_ELEMENTS // family.width, 8)
    return min(BATCH, 1 << (fit.bit_length() - 1))


def check_mode(mode: str) -> str:
    """`mode`, if this process can run it (strict needs XLA's flag set before start)."""
    from ..errors import InputError

    if mode not in MODES:
        raise InputError(f"Unknown mode `{mode}`; choose one of {', '.join(MODES)}.")
    if mode == "strict" and STRICT_FLAG not in os.environ.get("XLA_FLAGS", ""):
        raise InputError(f"Mode `strict` needs XLA_FLAGS={STRICT_FLAG} set before the process starts "
                         "(the command line starts such a process itself).")
    return mode


@functools.lru_cache(maxsize=None)
def kernel_program(kernel: Callable, mode: str = "jit", label_axis: int | None = None) -> Callable:
    """A form's kernel over a batch of points, `kernel(inputs, label)` (one label for
    the batch, or one per point with `label_axis` 0): jitted alone (modes jit and
    strict, which differ only in the process's XLA flags), or evaluated operation by
    operation, each primitive dispatched alone and its result rounded to the format
    (eager)."""
    batched = jax.vmap(kernel, (0, label_axis))
    if mode != "eager":
        return jax.jit(batched)

    def eager(x, label):
        with jax.disable_jit():
            return batched(x, label)

    return eager


@functools.lru_cache(maxsize=None)
def positions_program(axis, size: int) -> Callable:
    """The ordinals of a call's `size` points from a position on the axis (points past
    its end repeat its last point)."""

    def run(start, valid_n):
        return axis.ordinals(start + jnp.minimum(jnp.arange(size, dtype=jnp.int64), valid_n - 1), jnp)

    return jax.jit(run)


@functools.lru_cache(maxsize=None)
def inputs_program(family: Family, fmt: formats.Format, case) -> Callable:
    """The kernel inputs at ordinals (for a vector family, the sweep's logit vectors)."""
    return jax.jit(lambda ords: family.inputs(formats.from_ordinal(ords, fmt, jnp), case))


def kernel_outputs(family: Family, forms: Sequence[Form], fmt: formats.Format, ords: np.ndarray, target,
                   device, mode: str = "jit") -> list[np.ndarray]:
    """What each form's kernel computes at ordinals `ords`, called exactly as a sweep
    calls it (`batch_size` points a call)."""
    b = batch_size(family)
    ords = np.asarray(ords, np.int64)
    pad = -len(ords) % b
    ords = np.concatenate((ords, np.full(pad, ords[-1], np.int64)))
    label = jax.device_put(family.label(target, fmt), device)
    outs = [[] for _ in forms]
    for i in range(0, len(ords), b):
        x = inputs_program(family, fmt, family.case(target))(jax.device_put(ords[i:i + b], device))
        for out, f in zip(outs, forms):
            out.append(np.asarray(kernel_program(f.kernel, mode)(x, label)))
    return [np.concatenate(o)[: len(ords) - pad] for o in outs]


@functools.lru_cache(maxsize=None)
def reference_program(family: Family, fmt: formats.Format, floor: str, out: formats.Format | None = None) -> Callable:
    """Every reference of the family (all its forms', whichever are swept): each one's
    comparison terms (see `classify.reference_terms`) and per-block condition numbers
    at ordinals, from the family's float64 base quantities under JAX (formats of up to
    32 bits). One program for the family, used by every call of the sweep and of its
    refinement, so that it does not change with the forms swept: XLA keeps float64
    arithmetic in float64 but may contract a product and a sum into one FMA (it does
    on the CPU), which can move a value by an ulp of float64 depending on how the
    program is fused; one program gives one answer. `fmt` is the lattice of the points; `out` (default
    `fmt`) the format the results are in, which the terms are rounded to."""
    refs = distinct_references(family.forms + family.factors)[0]
    out_fmt = out or fmt

    def run(ords, target64, tolerance):
        base = family.device_base(formats.ordinal_to_float64(ords, fmt, jnp), target64)
        out = []
        for reference in refs:
            exact, sens = reference(base)
            out.append((_join(*reference_terms(exact, sens, out_fmt, tolerance, jnp, floor)),
                        _kappa_blocks(exact, sens, jnp)))
        return out

    return jax.jit(run)


@functools.lru_cache(maxsize=None)
def dd_reference_program(family: Family, fmt: formats.Format) -> Callable:
    """Every reference of the family in double-double on the device (see `ddj`), at
    float64 ordinals: (hi, lo) of each one's exact value and sensitivity. The host
    keeps hi where `ddj` says the device's value is the correctly rounded one."""
    from ..numerics import dd, ddj

    refs = distinct_references(family.forms + family.factors)[0]

    def run(ords, target64, zero):
        with dd.using(ddj.JaxOps(zero)):
            base = family.device_dd_base(formats.ordinal_to_float64(ords, fmt, jnp), target64)
            return [tuple((v.hi, v.lo) for v in reference(base)) for reference in refs]

    return jax.jit(run)


def device_float64_references(family: Family, forms: Sequence[Form], fmt: formats.Format, ords: np.ndarray,
                              target64: float, device) -> list:
    """(exact, sensitivity) of each distinct reference of `forms` at float64 ordinals,
    as `host_reference` gives them (bit for bit): double-double on the device, and on
    the host (double-double and mpmath) at the points the device must not keep."""
    from ..numerics import ddj

    every = distinct_references(family.forms + family.factors)[0]
    mine = distinct_references(forms)[0]
    ords = np.asarray(ords, np.int64)
    n = len(ords)
    # two compiled shapes: a call's (the family's batch), and a small one for refinement
    size = batch_size(family) if n > REFINE_DD_POINTS else min(REFINE_DD_POINTS, batch_size(family))
    padded = np.concatenate((ords, np.full(size - n, ords[-1], np.int64)))
    found = jax.device_get(dd_reference_program(family, fmt)(jax.device_put(padded, device), target64,
                                                              jax.device_put(np.int64(0), device)))
    found = jax.tree.map(lambda a: a[:n], found)
    x64 = formats.from_ordinal(ords, fmt).astype(np.float64)
    host = ~ddj.on_device(x64, family.untrusted(x64, target64))
    out = []
    for reference in mine:
        (eh, el), (sh, sl) = found[every.index(reference)]
        host |= ddj.host_rows(eh, el) | ddj.host_rows(sh, sl)
        out.append((np.array(eh), np.array(sh)))
    rows = np.flatnonzero(host)
    if len(rows):
        for (exact, sens), (e, s) in zip(out, host_reference(family, forms, x64[rows], target64)):
            exact[rows], sens[rows] = e, s
    return out


@functools.lru_cache(maxsize=None)
def codes_program(fmt: formats.Format, tolerance: float) -> Callable:
    """One form's class codes per point (int8) against its reference's terms: the
    classes `classify_program`'s keys give, without the profile (for refinement)."""

    def run(out, terms):
        code, _, _ = per_point(*classify_terms(out, *_split(terms), fmt, jnp, tolerance), tuple(range(1, out.ndim)))
        return code

    return jax.jit(run)


def _kappa_blocks(exact, sens, xp):
    """The largest condition number κ = sens/|exact| (0 where sens is 0, ∞ at a root)
    per block of BLOCK points, over a vector's entries too: for the row's profile."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = xp.where(sens == 0, 0.0, xp.abs(sens) / xp.abs(exact))
    k = xp.where(k == k, k, 0.0)
    k = k.reshape(k.shape[0], -1).max(axis=1)
    k = k.reshape(-1, min(BLOCK, k.shape[0])).max(axis=1)
    if xp is np:
        with np.errstate(over="ignore"):  # κ beyond float32's range is ∞ in the profile
            return k.astype(np.float32)
    return k.astype(np.float32)


@functools.lru_cache(maxsize=None)
def classify_program(fmt: formats.Format, size: int, platform: str, tolerance: float, ref_of: tuple,
                     device_runs: bool = False) -> Callable:
    """Per point of each form, a 32-bit key (its level, then its ULP error; see `_pack`)
    of the form's results against its reference's terms; per block of points the worst
    class, its largest error (of ok and inaccurate points) and the largest condition
    number; per form, whether the class changes in the call and whether it is all
    lost subnormals. With `device_runs` (accelerators), also each form's counts and
    where its class changes (see `runs` below), so that the host reads no keys unless
    a form changes class more than MAX_CHANGES times in a call; on the CPU the host
    decodes the keys of changing forms itself, which XLA's CPU reductions and
    compactions are slower at than NumPy. The forms' results come from their own
    programs: this one is exact integer work (and float32 maxima of keys), so
    classifying them together changes nothing."""
    block = min(BLOCK, size)
    nf = len(ref_of)

    def runs(keys, valid_n):
        """Per form: its counts per class and of lost subnormals over the call's valid
        points, the number of class changes, and the first MAX_CHANGES of them
        (positions, and the class of each run)."""
        level = (lax.bitcast_convert_type(keys, jnp.uint32) >> KEY_SHIFT).astype(jnp.int32) - 1
        code = _level_class(level)
        valid = jnp.arange(size) < valid_n
        counts = jnp.stack([((code == k) & valid).sum(axis=1, dtype=jnp.int32) for k in range(len(CLASSES))], axis=1)
        zsub = ((level == LEVEL_SUBNORMAL) & valid).sum(axis=1, dtype=jnp.int32)
        change = (code[:, 1:] != code[:, :-1]) & valid[1:]
        n_changes = change.sum(axis=1, dtype=jnp.int32)
        pos = jax.vmap(lambda c: jnp.nonzero(c, size=MAX_CHANGES, fill_value=size - 2)[0])(change).astype(jnp.int32) + 1
        run_code = jnp.concatenate((code[:, :1], jnp.take_along_axis(code, pos, axis=1)), axis=1).astype(jnp.int8)
        return counts, zsub, n_changes, pos, run_code

    def run(outs, refs, valid_n):
        def point_keys(given):
            outs, refs = given
            return jnp.stack([_pack(*per_point(*classify_terms(out, *_split(refs[r][0]), fmt, jnp, tolerance),
                                               tuple(range(1, out.ndim)))) for out, r in zip(outs, ref_of)])

        blocks = (len(ref_of), size // block, block)
        if device_runs:
            # into a buffer of its own, which the run summary reads too: XLA would
            # otherwise fuse (and so repeat) the classification into every consumer
            keys = _materialise(point_keys, (outs, refs), valid_n >= 0, platform)
        else:
            # fused into each reduction, and so computed twice: cheaper on the CPU than
            # writing and reading back 4 bytes a point and form (13.9 ms against 5.6 ms
            # for the sigmoid family's 14 forms at 2**18 points); the host asks
            # `keys_program` for the keys of the forms whose class changes
            keys = point_keys((outs, refs))
        # as float32 the keys are positive normal numbers ordered by level, then error:
        # float32 maxima and minima (XLA's fastest reductions on the CPU) per block give
        # its worst level, whether it is all one level, and then its largest error
        top, bottom = (lax.bitcast_convert_type(reduce(keys.reshape(blocks), axis=-1), jnp.uint32)
                       for reduce in (jnp.max, jnp.min))
        level = (top >> KEY_SHIFT).astype(jnp.int32) - 1
        whole = (bottom >> KEY_SHIFT) == (top >> KEY_SHIFT)
        used = jnp.arange(blocks[1]) * block < valid_n
        mixed = (used & (~whole | (level != level[:, :1]))).any(axis=1)
        lost = level[:, 0] == LEVEL_SUBNORMAL  # where not mixed
        kappa = jnp.stack([refs[r][1] for r in ref_of])
        if device_runs:  # each block's largest error of its ok and inaccurate points
            bits = lax.bitcast_convert_type(keys, jnp.uint32)
            err = jnp.where((bits >> KEY_SHIFT) <= LEVEL_MEASURED + 1, _error(bits), -1.0).reshape(blocks).max(-1)
        else:  # where a block is one level; the host fills in the others from the keys
            err = jnp.where(whole & (level <= LEVEL_MEASURED), _error(top), -1.0)
        found = runs(keys, valid_n) if device_runs else ()
        return (keys if device_runs else None, err, _level_class(level).astype(jnp.int8), mixed, lost, kappa) + found

    return jax.jit(run)


@functools.lru_cache(maxsize=None)
def keys_program(fmt: formats.Format, tolerance: float) -> Callable:
    """The per-point keys of `classify_program` of one form (its results against its
    reference's terms): for a form whose class changes in a call. One program for
    every form (of each output shape), whichever forms change."""

    def run(out, terms):
        return _pack(*per_point(*classify_terms(out, *_split(terms), fmt, jnp, tolerance), tuple(range(1, out.ndim))))

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
LEVEL_CLASS = np.array([CODE["ok"], CODE["inaccurate"], CODE["zero"], CODE["zero"], CODE["inf"], CODE["nan"],
                        CODE["unresolved"]])
LEVEL_MEASURED = 1  # levels up to this one (ok, inaccurate) carry an error
LEVEL_SUBNORMAL = 3
KEY_SHIFT = 27  # a point's key: level + 1 in bits 27-29, error field in bits 0-26
MAX_CHANGES = 256  # class changes per form and call that the device lists; past them the host reads the keys
# float64 references in double-double on the device (see `ddj`): None = on accelerators
# (on the CPU the host's NumPy double-double is as fast, and needs no ~20 s compilation)
FLOAT64_ON_DEVICE = None
REFINE_DD_POINTS = 4096  # distinct points of a refinement call: their device references in one small shape
DEVICE_RUNS = None  # run summaries on the device: None = on accelerators only (True/False: everywhere/nowhere)
ERR_DROP = 4  # fraction bits of the error's float32 that the field drops


def _pack(code, ulp, subnormal):
    """One 32-bit key per point, typed float32: its level + 1 (1 to 7) in bits 27-29 and, for an
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


def _levels(bits: np.ndarray) -> np.ndarray:
    """Levels (int8) from key bits."""
    return ((bits >> KEY_SHIFT) - 1).astype(np.int8)


def _level_class(level):
    """Class codes of levels (NumPy or JAX arrays): LEVEL_CLASS, by arithmetic (a
    gather is slower)."""
    return level - (level >= LEVEL_SUBNORMAL).astype(level.dtype)


def host_reference(family: Family, forms: Sequence[Form], x: np.ndarray, target64: float) -> list:
    """(exact, sensitivity) of each distinct reference of `forms`, in double-double on
    the host, rounded to float64."""
    base = family.host_base(np.asarray(x, np.float64), target64)
    return [tuple(np.asarray(_to_float(v), np.float64) for v in r(base)) for r in distinct_references(forms)[0]]


def _to_float(v):
    return v.to_float() if hasattr(v, "to_float") else np.asarray(v, np.float64)


def _platform(device) -> str:
    """The backend whose program shape (materialisation) `device` gets."""
    return device.platform


class _Runner:
    """Runs one format's programs at one target, a call of `size` points at a time: at
    a position of the axis, or at chosen ordinals (refinement)."""

    def __init__(self, family, forms, axis, target, tolerance, devices, mode="jit", floor="condition", out_fmt=None):
        self.family, self.forms, self.axis, self.fmt = family, tuple(forms), axis, axis.fmt
        self.out = out_fmt or axis.fmt  # the results' format: what they are classified in
        self.devices = tuple(devices)
        device = self.devices[0]
        self.size = self.refine = batch_size(family)
        self.kernels = [kernel_program(f.kernel, mode) for f in forms]
        every = distinct_references(family.forms + family.factors)[0]
        self.ref_of = [every.index(f.reference) for f in forms]
        self.positions = positions_program(axis, self.size)
        self.inputs = inputs_program(family, self.fmt, family.case(target))
        platform = _platform(device)
        self.classify = classify_program(self.out, self.size, platform, float(tolerance), tuple(self.ref_of),
                                         platform != "cpu" if DEVICE_RUNS is None else DEVICE_RUNS)
        self.references = (reference_program(family, self.fmt, floor, None if self.out == self.fmt else self.out)
                           if family.exact is None else None)
        self.target_in_format = float(self.fmt.cast(target).astype(np.float64))
        self.labels = {d: jax.device_put(family.label(target, self.fmt), d) for d in self.devices}
        self.tolerance, self.floor, self.device = tolerance, floor, device

    def _terms(self, ords, host_ords: np.ndarray, x, device, forms: tuple[int, ...] | None = None):
        """Each distinct reference's terms at the call's points (of `forms`, numbered
        in self.forms; default all; None in the places of the others): under JAX, or
        for float64 from the host's double-double, or from the family's own host
        reference (a user's function) at its kernel inputs `x`."""
        if self.out.bits < 64 and self.family.exact is None:  # every reference: see reference_program
            return self.references(ords, self.target_in_format, self.tolerance)
        chosen = self.forms if forms is None else [self.forms[i] for i in forms]
        # each distinct point once: a short call repeats its last point up to the batch
        # size, and mpmath evaluates the hardest points one by one
        uniq, first, back = np.unique(host_ords, return_index=True, return_inverse=True)
        if self.family.exact is not None:
            found = self.family.exact(chosen, self.out, np.asarray(x)[first], np.asarray(self.labels[device]))
        elif self.family.device_dd_base is not None and (
                device.platform != "cpu" if FLOAT64_ON_DEVICE is None else FLOAT64_ON_DEVICE):
            found = device_float64_references(self.family, chosen, self.fmt, uniq, self.target_in_format, device)
        else:
            found = host_reference(self.family, chosen, formats.from_ordinal(uniq, self.fmt).astype(np.float64),
                                   self.target_in_format)
        refs = {r: tuple(a[back] for a in v) for r, v in zip(distinct_references(chosen)[0], found)}
        every = distinct_references(self.family.forms + self.family.factors)[0]
        return [(jax.device_put(reference_terms(*refs[r], self.out, self.tolerance, np, self.floor), device),
                 _kappa_blocks(*refs[r], np)) if r in refs else None for r in every]

    def call(self, start: int, n: int, ords: np.ndarray | None = None, device=None) -> list:
        """Dispatch one call of n points (asynchronously) on `device` (default: the
        first): what `classify_program` returns, a row per form. Every program follows
        its arguments, all committed to that device, so each device runs the same
        programs, compiled for one device, as a user's jit would be."""
        device = self.device if device is None else device
        if ords is None:
            # committed to the device, as chosen ordinals are: the kernel then sees one
            # argument placement, and compiles once per device
            o = self.positions(jax.device_put(np.int64(start), device), n)
            host = (self.axis.ordinals(start + np.minimum(np.arange(self.size), n - 1))
                    if self.out.bits == 64 or self.family.exact is not None else None)
        else:
            host = np.concatenate((ords, np.full(self.size - n, ords[-1], np.int64)))
            o = jax.device_put(host, device)
        x = self.inputs(o)
        terms = self._terms(o, host, x, device)
        label = self.labels[device]
        outs = tuple(kernel(x, label) for kernel in self.kernels)
        return self.classify(outs, terms, n), (outs, terms)

    def keys(self, given, forms: np.ndarray) -> np.ndarray:
        """The per-point keys (uint32 bits) of `forms` (indices) in a call (its second
        result, `given`)."""
        outs, terms = given
        program = keys_program(self.out, float(self.tolerance))
        keys = [program(outs[i], terms[self.ref_of[i]][0]) for i in forms]  # dispatched together, then read
        return np.stack([np.asarray(k) for k in keys]).view(np.uint32)

    def dispatch(self, ords: np.ndarray, forms: Sequence[int] | None = None):
        """Start classifying arbitrary ordinals, at most `refine` of them, for the forms
        numbered `forms` (default: all), asynchronously: only their kernels run (and,
        on the host, their references)."""
        forms = tuple(range(len(self.forms))) if forms is None else tuple(sorted(forms))
        n = len(ords)
        host = np.concatenate((ords, np.full(self.size - n, ords[-1], np.int64))).astype(np.int64)
        o = jax.device_put(host, self.device)
        x = self.inputs(o)
        terms = self._terms(o, host, x, self.device, forms)
        codes = codes_program(self.out, float(self.tolerance))
        label = self.labels[self.device]
        return n, {i: codes(self.kernels[i](x, label), terms[self.ref_of[i]][0]) for i in forms}

    def classes(self, pending) -> np.ndarray:
        """Class codes (forms × points) of a `dispatch`; -1 for forms not evaluated."""
        n, codes = pending
        out = np.full((len(self.forms), n), -1, np.int8)
        for i, c in codes.items():
            out[i] = np.asarray(c)[:n]
        return out


def run_target(family: Family, forms: Sequence[Form], axis, target: float, tolerance: float,
               device, bins: int = PROFILE_BINS, tick: Callable[[int], None] | None = None,
               mode: str = "jit", floor: str = "condition", resume: dict | None = None,
               save: Callable[[Callable[[], dict]], None] | None = None,
               out_fmt: formats.Format | None = None) -> Outcome:
    """Sweep all `forms` over `axis` at one target; refine boundaries if sampled.

    `device` is a device or a sequence of them: consecutive calls go to each in turn
    (each runs the same programs) and are absorbed in the axis's order, so the
    outcome is the same on any number of devices. `save(state)` is called after each
    absorbed call with a function that returns the sweep's state so far; given back
    as `resume`, the sweep continues from there to the same outcome. `out_fmt` is the
    format the forms' results are in and are judged in, when it is not the axis's (a
    kernel that computes in a wider format than its inputs' lattice)."""
    from . import distributed

    fmt = axis.fmt
    devices = list(device) if isinstance(device, (list, tuple)) else [device]
    runner = _Runner(family, forms, axis, target, tolerance, devices, mode, floor, out_fmt)
    nf, n = len(forms), len(axis)
    size = runner.size
    process, processes = distributed.processes()
    if resume is None:
        resume = {"next": 0, "counts": np.zeros((nf, len(CLASSES)), np.int64), "zsub": np.zeros(nf, np.int64),
                  "max_ulp": np.full(nf, -1.0), "pcode": np.full((nf, bins), -1, np.int64),
                  "perr": np.full((nf, bins), -1.0), "pkap": np.zeros((nf, bins)),
                  "trackers": [RunTracker(hold_first=process > 0) for _ in forms]}
    calls = range(resume["next"], n, size)
    if processes > 1:  # this process's share; the others' are gathered below
        calls = distributed.share(calls, process, processes)
    counts, zsub, max_ulp, pcode, perr, pkap, trackers = (resume[k] for k in (
        "counts", "zsub", "max_ulp", "pcode", "perr", "pkap", "trackers"))

    block = min(BLOCK, size)

    def absorb(start, call):
        res, given = call
        m = min(size, n - start)
        keys = res[0]
        berr = np.array(res[1])  # writable: the host fills in blocks of the forms whose keys it reads
        bcode, mixed, lost, kappa = (np.asarray(r) for r in res[2:6])
        zsub[:] += np.where(~mixed & lost, m, 0)
        # Most calls are one class per form: those need only the call's two ends. For
        # the forms that change, the device (on accelerators) counts their classes and
        # lists where the class changes, up to MAX_CHANGES; otherwise the host reads
        # the form's keys. Ordinals are looked up at run ends and their neighbours.
        o_first, o_last = (int(v) for v in axis.ordinals(np.array([start, start + m - 1])))
        changing = np.flatnonzero(mixed)
        listed = np.zeros(len(trackers), bool)
        if len(changing) and len(res) > 6:
            found_counts, found_zsub, n_changes, pos, run_code = (np.asarray(r) for r in res[6:])
            listed[changing] = n_changes[changing] <= MAX_CHANGES
        read = changing[~listed[changing]]
        if len(read):
            bits = (np.asarray(keys).view(np.uint32)[read] if keys is not None else runner.keys(given, read))[:, :m]
            level = _levels(bits)
            code = dict(zip(read, _level_class(level)))
            zsub[read] += (level == LEVEL_SUBNORMAL).sum(axis=1, dtype=np.int64)
            err = np.where(level <= LEVEL_MEASURED, _error(bits, np), np.float32(-1))
            nb = -(-m // block)
            if nb * block > m:
                err = np.pad(err, [(0, 0), (0, nb * block - m)], constant_values=-1)
            berr[read, :nb] = err.reshape(len(read), nb, block).max(axis=-1)
        for i, t in enumerate(trackers):
            if not mixed[i]:
                k = int(bcode[i, 0])  # the one class of the call
                t.extend(k, o_first, o_last)
                counts[i, k] += m
            elif listed[i]:
                c = n_changes[i]
                t.feed_runs(run_code[i, : c + 1], np.concatenate(([0], pos[i, :c])), m, start, axis.ordinals)
                counts[i] += found_counts[i]
                zsub[i] += found_zsub[i]
            else:
                counts[i] += t.feed(code[i], start, axis.ordinals)
        np.maximum(max_ulp, berr.max(axis=1), out=max_ulp)
        b = (start + np.arange(0, m, block)) * bins // n  # each block joins the bin of its first point
        firsts = np.flatnonzero(np.diff(b, prepend=-1))
        ub = b[firsts]
        pcode[:, ub] = np.maximum(pcode[:, ub], np.maximum.reduceat(bcode[:, : len(b)], firsts, axis=1))
        pkap[:, ub] = np.maximum(pkap[:, ub], np.maximum.reduceat(kappa[:, : len(b)], firsts, axis=1))
        perr[:, ub] = np.maximum(perr[:, ub], np.maximum.reduceat(berr[:, : len(b)], firsts, axis=1))
        if tick:
            tick(m)

    def state():
        return {"next": next_start, "counts": counts, "zsub": zsub, "max_ulp": max_ulp, "pcode": pcode,
                "perr": perr, "pkap": pkap, "trackers": trackers}

    # IN_FLIGHT calls in flight per device beyond the one being absorbed
    pending = collections.deque()
    for j, start in enumerate(calls):
        pending.append((start, runner.call(start, min(size, n - start), device=devices[j % len(devices)])))
        if len(pending) > IN_FLIGHT * len(devices):
            absorb(*pending.popleft())
            next_start = pending[0][0]
            if save:
                save(state)
    while pending:
        absorb(*pending.popleft())
    if processes > 1:
        counts, zsub, max_ulp, pcode, perr, pkap, trackers = _joined(distributed.allgather(
            (counts, zsub, max_ulp, pcode, perr, pkap, trackers)))
    for t in trackers:
        t.close()
    refined = {} if axis.exhaustive else _refine(runner, trackers)
    lo_idx, hi_idx = bin_bounds(n, block, bins)
    filled = lo_idx >= 0
    plo = np.where(filled, axis.ordinals(np.maximum(lo_idx, 0)), 1)
    phi = np.where(filled, axis.ordinals(np.maximum(hi_idx, 0)), 0)
    before_zero = int(axis.ordinals(np.array([axis.zero_index - 1]))[0]) if axis.zero_index > 0 else None
    return Outcome(fmt, tuple(forms), target, runner.target_in_format, n, axis.exhaustive, counts,
                   zsub, max_ulp, pcode, perr, pkap, plo, phi, trackers, refined, before_zero,
                   None if runner.out == fmt else runner.out)


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


def _joined(shares: list) -> tuple:
    """The state of a whole axis from its consecutive shares' states."""
    counts, zsub, max_ulp, pcode, perr, pkap, trackers = shares[0]
    for c, z, u, pc, pe, pk, ts in shares[1:]:
        counts, zsub = counts + c, zsub + z
        max_ulp, pcode, perr, pkap = (np.maximum(a, b) for a, b in ((max_ulp, u), (pcode, pc), (perr, pe), (pkap, pk)))
        for t, other in zip(trackers, ts):
            t.append(other)
    return counts, zsub, max_ulp, pcode, perr, pkap, trackers


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


REFINE_IN_FLIGHT = 3  # refinement calls dispatched before the oldest is read
IN_FLIGHT = 2  # sweep calls in flight per device while the oldest is absorbed


def _refine(runner: _Runner, trackers: list[RunTracker]) -> dict:
    """Narrow each bracket until inside and outside are adjacent lattice values.

    A call evaluates up to REFINE_POINTS evenly spaced interior points of each of
    several open brackets (one, plain bisection, when more brackets are open than a
    call has points) and each bracket keeps the first change of class met going out
    from its inside point, so a gap of 2**47 ordinals closes in 12 steps, not 47.
    Brackets advance independently: up to REFINE_IN_FLIGHT calls are in flight at
    once, each over brackets that no other call in flight holds, so the host prepares
    and reads calls while the device computes. Brackets of different forms or classes
    between the same two points (onsets that coincide) share their points: a call
    classifies every form at once. The result does not depend on the batch or the
    order of calls: each bracket converges to the same boundary.
    """
    todo = sorted(boundaries(trackers))
    state = {b: (b[2], b[3]) for b in todo}
    busy, flight = set(), collections.deque()
    while True:
        forms_of = {}  # open span -> forms with a bracket there
        for b in todo:
            if abs(state[b][0] - state[b][1]) > 1 and state[b] not in busy:
                forms_of.setdefault(state[b], set()).add(b[0])
        if forms_of and len(flight) < REFINE_IN_FLIGHT:
            # spans of the same forms together: a call runs only the kernels it needs
            free = sorted(forms_of, key=lambda sp: (min(forms_of[sp]), sorted(forms_of[sp]), sp))
            per = max(1, min(REFINE_POINTS, runner.refine // len(free)))
            points = {}
            for inside, outside in free[: runner.refine // per]:
                gap, q = outside - inside, min(abs(outside - inside) - 1, per)
                points[inside, outside] = [inside + gap * j // (q + 1) for j in range(1, q + 1)]
            needed = set().union(*(forms_of[sp] for sp in points))
            flight.append((points, runner.dispatch(np.array([o for p in points.values() for o in p], np.int64),
                                                   needed)))
            busy |= set(points)
            continue
        if not flight:
            break
        points, pending = flight.popleft()
        code = runner.classes(pending)
        busy -= set(points)
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

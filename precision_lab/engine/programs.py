"""The compiled programs of a sweep, and the 32-bit keys they classify points into.

A row's figures come from three programs, none of which knows what else is swept:
the form's kernel alone, `jax.jit(jax.vmap(kernel))` at the family's batch size
(the program a user compiles; see `modes`); its reference, one program per
reference function; and an exact integer classification shared by every form of
the format. So a row is the same swept alone or with every other form, at any
number of points. Each point of each form becomes a 32-bit key (its level, i.e.
class with lost subnormals apart, then its ULP error), reduced per block of points
to the worst class, whether the block is all one class, and its largest error.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..families.base import Family, Form
from ..numerics import formats
from ..numerics.classify import CLASSES, CODE, classify_terms, per_point, reference_terms
from . import executables
from .modes import Mode

BATCH = 1 << 18  # points per kernel call of a scalar family
BATCH_ELEMENTS = 1 << 17  # bound on points × vector length per call of a vector family
BLOCK = 64  # profile resolution inside a chunk: key maxima and minima per block of points


def distinct_references(forms: Sequence[Form]) -> tuple[list[Callable], np.ndarray]:
    """The distinct reference functions of `forms`, and which one each form uses."""
    refs = list(dict.fromkeys(f.reference for f in forms))
    return refs, np.array([refs.index(f.reference) for f in forms])


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


def default_device(device=None):
    """`device`, else JAX's default device (the sweep's own inside a sweep): what a
    re-run commits its arguments to, as the sweep does, so that it calls the sweep's
    own compiled program (jit keys its programs on argument placement)."""
    return device or jax.config.jax_default_device or jax.devices()[0]


@functools.lru_cache(maxsize=None)
def kernel_program(kernel: Callable, mode: Mode) -> Callable:
    """A form's kernel over a batch of points and their labels, as `mode` runs it (see
    `modes`)."""
    return mode.program(kernel)


def labels(label, n: int):
    """`label` (a class index, a target in the format, a distribution) for each of `n`
    points: a kernel program takes a label per point, as a batch of examples comes
    with its labels, so one program serves a sweep of one target and a sweep of
    vectors with labels of their own."""
    return jax.tree.map(lambda v: np.repeat(np.asarray(v)[None], n, axis=0), label)


@functools.lru_cache(maxsize=None)
def positions_program(axis, size: int) -> Callable:
    """The ordinals of a call's `size` points from a position on the axis (points past
    its end repeat its last point)."""

    def run(start, valid_n):
        return axis.ordinals(start + jnp.minimum(jnp.arange(size, dtype=jnp.int64), valid_n - 1), jnp)

    return executables.jit(run)


def inputs_program(family: Family, fmt: formats.Format, case) -> Callable:
    """The kernel inputs at ordinals (for a vector family, the sweep's logit vectors):
    one program per inputs function, so that a family derived from another (computed
    wider, a loss scaled: its kernels differ, its inputs do not) shares its program."""
    return _inputs_program(family.inputs, fmt, case)


@functools.lru_cache(maxsize=None)
def _inputs_program(inputs: Callable, fmt: formats.Format, case) -> Callable:
    return executables.jit(lambda ords: inputs(formats.from_ordinal(ords, fmt, jnp), case))


def reference_program(family: Family, fmt: formats.Format, floor: str, out: formats.Format | None = None) -> Callable:
    """See `_reference_program`: one program per reference functions and base, so that
    a family derived from another with the same references shares it."""
    refs = tuple(distinct_references(family.forms + family.factors)[0])
    return _reference_program(refs, family.device_base, fmt, floor, out)


@functools.lru_cache(maxsize=None)
def _reference_program(refs: tuple, device_base: Callable, fmt: formats.Format, floor: str,
                       out: formats.Format | None = None) -> Callable:
    """Every reference of the family (all its forms', whichever are swept): each one's
    comparison terms (see `classify.reference_terms`) and per-block condition numbers
    at ordinals, from the family's float64 base quantities under JAX (formats of up to
    32 bits). One program for the family, used by every call of the sweep and of its
    refinement, so that it does not change with the forms swept: XLA keeps float64
    arithmetic in float64 but may contract a product and a sum into one FMA (it does
    on the CPU), which can move a value by an ulp of float64 depending on how the
    program is fused; one program gives one answer. `fmt` is the lattice of the points; `out` (default
    `fmt`) the format the results are in, which the terms are rounded to."""
    out_fmt = out or fmt

    def run(ords, target64, tolerance):
        base = device_base(formats.ordinal_to_float64(ords, fmt, jnp), target64)
        terms, kappas = [], []
        for reference in refs:
            exact, sens = reference(base)
            terms.append(_join(*reference_terms(exact, sens, out_fmt, tolerance, jnp, floor)))
            kappas.append(_kappa_points(exact, sens, jnp))
        return list(zip(terms, _block_maxima(kappas)))

    return executables.jit(run)


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

    return executables.jit(run)


@functools.lru_cache(maxsize=None)
def codes_program(fmt: formats.Format, tolerance: float) -> Callable:
    """One form's class codes per point (int8) against its reference's terms: the
    classes `classify_program`'s keys give, without the profile (for refinement)."""

    def run(out, terms):
        code, _, _, _ = per_point(*classify_terms(out, *_split(terms), fmt, jnp, tolerance), tuple(range(1, out.ndim)), fmt)
        return code

    return executables.jit(run)


def _kappa_blocks(exact, sens, xp):
    """The largest condition number κ = sens/|exact| (0 where sens is 0, ∞ at a root)
    per block of BLOCK points, over a vector's entries too: for the row's profile."""
    k = _kappa_points(exact, sens, xp)
    return k.reshape(-1, min(BLOCK, k.shape[0])).max(axis=1)


def _kappa_points(exact, sens, xp):
    """Each point's largest condition number (over a vector's entries), as float32 (∞
    beyond its range). Rounding to float32 keeps the order of values, so the float32
    maximum of a block is its float64 maximum rounded."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = xp.where(sens == 0, 0.0, xp.abs(sens) / xp.abs(exact))
    k = xp.where(k == k, k, 0.0)
    k = k.reshape(k.shape[0], -1).max(axis=1)
    with np.errstate(over="ignore"):
        return k.astype(np.float32)


def _block_maxima(points):
    """`_kappa_blocks` of several references' `_kappa_points` (JAX arrays), in one
    variadic reduction: XLA then computes each point's κ inside the reduction instead
    of writing and reading back an array per reference (3.3 against 3.7 ms for the
    sigmoid family's six references at 2**18 points; same values, as κ ≥ 0)."""
    block = min(BLOCK, points[0].shape[0])
    blocks = tuple(k.reshape(-1, block) for k in points)
    return lax.reduce(blocks, tuple(np.float32(0) for _ in blocks),
                      lambda a, b: tuple(jnp.maximum(x, y) for x, y in zip(a, b)), (1,))


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

    def run(outs, refs, valid_n):
        def point_keys(given):
            outs, refs = given
            return jnp.stack([_pack(*per_point(*classify_terms(out, *_split(refs[r][0]), fmt, jnp, tolerance),
                                               tuple(range(1, out.ndim)), fmt)) for out, r in zip(outs, ref_of)])

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
        # float32 maxima and minima per block give its worst level, whether it is all
        # one level, and then its largest error; with the forward-error counts, in one
        # variadic reduction, so the classification fused into it runs once
        valid = jnp.arange(size) < valid_n
        top, bottom, words = _reduce_blocks(keys.reshape(blocks), valid.reshape(blocks[1:]), tolerance)
        level = (top >> KEY_SHIFT).astype(jnp.int32) - 1
        whole = (bottom >> KEY_SHIFT) == (top >> KEY_SHIFT)
        used = jnp.arange(blocks[1]) * block < valid_n
        mixed = (used & (~whole | (level != level[:, :1]))).any(axis=1)
        first = level[:, 0].astype(jnp.int8)  # the level of a form's whole call, where not mixed
        kappa = jnp.stack([refs[r][1] for r in ref_of])
        if device_runs:  # each block's largest error of its ok and inaccurate points
            bits = lax.bitcast_convert_type(keys, jnp.uint32)
            err = jnp.where((bits >> KEY_SHIFT) <= LEVEL_MEASURED + 1, _error(bits), -1.0).reshape(blocks).max(-1)
        else:  # where a block is one level; the host fills in the others from the keys
            err = jnp.where(whole & (level <= LEVEL_MEASURED), _error(top), -1.0)
        found = _runs(keys, valid_n, size) if device_runs else ()
        return (keys if device_runs else None, err, _level_class(level).astype(jnp.int8), mixed, first, kappa,
                _bucket_counts(*words)) + found

    return executables.jit(run)


# Forward error: each ok or inaccurate point's ULP error in one of these buckets, and
# the ok points beyond the tolerance, which only the condition allowance excused.
BUCKETS = ("0", "1", "2", "3", "4-16", ">16")
FIELD = 7  # bits of one count in a block's packed word (a block has at most 64 points)


def _bucket(err, xp=jnp):
    """The BUCKETS index of ULP errors (integers or exact small floats)."""
    return xp.where(err <= 3, err, xp.where(err <= 16, 4, 5)).astype(xp.uint32)


def forward_counts(code: np.ndarray, ulp: np.ndarray, tolerance: float) -> dict:
    """A row's `forward_error` from per-point classes and errors on the host (the vector
    sweeps): what `_reduce_blocks` and `_bucket_counts` count on the device."""
    measured = code <= CODE["inaccurate"]
    b = _bucket(np.where(measured, ulp, 0), np)[measured]
    counts = np.bincount(b, minlength=len(BUCKETS))
    return {**{name: int(n) for name, n in zip(BUCKETS, counts)},
            "excused": int(((code == CODE["ok"]) & (ulp > tolerance)).sum())}


def _reduce_blocks(keys, valid, tolerance: float):
    """Per block (the last axis): the largest and smallest key (as uint32 bits), and two
    words of packed counts of the valid points: buckets 0-3 in the first, 4-16, > 16 and
    the excused in the second, FIELD bits each. One variadic reduction."""
    bits = lax.bitcast_convert_type(keys, jnp.uint32)
    level = bits >> KEY_SHIFT  # level + 1
    err = _error(bits)
    measured = valid & (level <= LEVEL_MEASURED + 1)
    b = _bucket(err)
    one = jnp.uint32(1)
    low = jnp.where(measured & (b < 4), one << (FIELD * jnp.minimum(b, 3)), 0).astype(jnp.uint32)
    high = (jnp.where(measured & (b == 4), one, 0) | jnp.where(measured & (b == 5), one << FIELD, 0)
            | jnp.where(valid & (level == 1) & (err > tolerance), one << (2 * FIELD), 0)).astype(jnp.uint32)

    def combine(x, y):
        return jnp.maximum(x[0], y[0]), jnp.minimum(x[1], y[1]), x[2] + y[2], x[3] + y[3]

    top, bottom, lo, hi = lax.reduce((keys, keys, low, high), (np.float32(-np.inf), np.float32(np.inf),
                                                               np.uint32(0), np.uint32(0)), combine, (keys.ndim - 1,))
    as_bits = lambda k: lax.bitcast_convert_type(k, jnp.uint32)  # noqa: E731
    return as_bits(top), as_bits(bottom), (lo, hi)


def _bucket_counts(lo, hi):
    """Per form, the counts of the BUCKETS and of the excused points over its blocks' words."""
    mask = jnp.uint32((1 << FIELD) - 1)
    fields = [(lo >> (FIELD * k)) & mask for k in range(4)] + [(hi >> (FIELD * k)) & mask for k in range(3)]
    return jnp.stack([f.astype(jnp.int32).sum(axis=-1) for f in fields], axis=-1)


def _runs(keys, valid_n, size: int):
    """Per form: its counts per class and of its zeros' kinds (ZERO_LEVELS) over the call's valid
    points, the number of class changes, and the first MAX_CHANGES of them (positions,
    and the class of each run)."""
    level = (lax.bitcast_convert_type(keys, jnp.uint32) >> KEY_SHIFT).astype(jnp.int32) - 1
    code = _level_class(level)
    valid = jnp.arange(size) < valid_n
    counts = jnp.stack([((code == k) & valid).sum(axis=1, dtype=jnp.int32) for k in range(len(CLASSES))], axis=1)
    zsub = jnp.stack([((level == k) & valid).sum(axis=1, dtype=jnp.int32) for k in ZERO_LEVELS], axis=1)
    change = (code[:, 1:] != code[:, :-1]) & valid[1:]
    n_changes = change.sum(axis=1, dtype=jnp.int32)
    pos = jax.vmap(lambda c: jnp.nonzero(c, size=MAX_CHANGES, fill_value=size - 2)[0])(change).astype(jnp.int32) + 1
    run_code = jnp.concatenate((code[:, :1], jnp.take_along_axis(code, pos, axis=1)), axis=1).astype(jnp.int8)
    return counts, zsub, n_changes, pos, run_code


@functools.lru_cache(maxsize=None)
def keys_program(fmt: formats.Format, tolerance: float) -> Callable:
    """The per-point keys of `classify_program` of one form (its results against its
    reference's terms): for a form whose class changes in a call. One program for
    every form (of each output shape), whichever forms change."""

    def run(out, terms):
        return _pack(*per_point(*classify_terms(out, *_split(terms), fmt, jnp, tolerance), tuple(range(1, out.ndim)), fmt))

    return executables.jit(run)


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


# Levels: the classes, with `zero` split three ways: lost normal values, flushes (every
# lost entry's exact value subnormal) and negligible entries (see classify.per_point).
LEVEL_CLASS = np.array([CODE["ok"], CODE["inaccurate"], CODE["zero"], CODE["zero"], CODE["zero"], CODE["inf"],
                        CODE["nan"], CODE["unresolved"]])
LEVEL_MEASURED = 1  # levels up to this one (ok, inaccurate) carry an error
LEVEL_SUBNORMAL = 3
LEVEL_NEGLIGIBLE = 4
ZERO_LEVELS = (LEVEL_SUBNORMAL, LEVEL_NEGLIGIBLE)  # the zeros counted apart: flushes, negligible entries
KEY_SHIFT = 27  # a point's key: level + 1 in bits 27-30, error field in bits 0-26
MAX_CHANGES = 256  # class changes per form and call that the device lists; past them the host reads the keys
# float64 references in double-double on the device (see `ddj`): None = on accelerators
# (on the CPU the host's NumPy double-double is as fast, and needs no ~20 s compilation)
FLOAT64_ON_DEVICE = None
REFINE_DD_POINTS = 4096  # distinct points of a refinement call: their device references in one small shape
DEVICE_RUNS = None  # run summaries on the device: None = on accelerators only (True/False: everywhere/nowhere)
ERR_DROP = 4  # fraction bits of the error's float32 that the field drops


def _pack(code, ulp, subnormal, negligible):
    """One 32-bit key per point, typed float32: its level + 1 (1 to 8) in bits 27-30 and, for an
    ok or inaccurate point, its ULP error in bits 0-26 (the bits of the error as a
    float32 without their last ERR_DROP fraction bits; 0 for the other points). As
    float32 every key is a positive normal number, and keys order by level, then
    error. Errors are exact up to 2**20 ULPs, within 2**-19 relative above."""
    zero = code == CODE["zero"]
    level = (code.astype(jnp.uint32) + 2 * (code >= CODE["inf"]).astype(jnp.uint32)
             + (zero & subnormal).astype(jnp.uint32) + 2 * (zero & negligible).astype(jnp.uint32))
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
    return level - (level >= LEVEL_SUBNORMAL).astype(level.dtype) - (level >= LEVEL_NEGLIGIBLE).astype(level.dtype)

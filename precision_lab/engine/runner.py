"""One format's programs at one target, a call of `batch_size` points at a time."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np

from ..numerics import formats
from ..numerics.classify import reference_terms
from . import batches, executables, modes
from .points import device_float64_references, host_reference
from .programs import (_kappa_blocks, batch_size, classify_program, codes_program, distinct_references,
                       inputs_program, kernel_program, keys_program, labels, positions_program, reference_program)

# float64 references in double-double on the device (see `ddj`): None = on accelerators
# (on the CPU the host's NumPy double-double is as fast, and needs no ~20 s compilation)
FLOAT64_ON_DEVICE = None
DEVICE_RUNS = None  # run summaries on the device: None = on accelerators only (True/False: everywhere/nowhere)


def _zeros(shapes, device):
    """Zeros of the shapes and types of `shapes` (a tree of ShapeDtypeStructs), on `device`."""
    return jax.tree.map(lambda a: jax.device_put(np.zeros(a.shape, a.dtype), device), shapes)


def _platform(device) -> str:
    """The backend whose program shape (materialisation) `device` gets."""
    return device.platform


class Runner:
    """Runs one format's programs at one target, a call of `size` points at a time: at
    a position of the axis, or at chosen ordinals (refinement)."""

    def __init__(self, family, forms, axis, target, tolerance, devices, mode=modes.DEFAULT, floor="condition",
                 out_fmt=None):
        self.family, self.forms, self.axis, self.fmt = family, tuple(forms), axis, axis.fmt
        self.out = out_fmt or axis.fmt  # the results' format: what they are classified in
        self.devices = tuple(devices)
        device = self.devices[0]
        self.size = self.refine = batch_size(family)
        self.kernels = [kernel_program(f.kernel, modes.get(mode)) for f in forms]
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
        self.label = family.label(target, self.fmt)
        self.labels = {d: jax.device_put(labels(self.label, self.size), d) for d in self.devices}  # a call's
        self.prepared: set = set()  # the devices its programs were prepared on (`prepare`)
        self.kernels_prepared: set = set()  # and its kernels (`_prepare_kernels`)
        self.tolerance, self.floor, self.device = tolerance, floor, device
        self.target = target
        # reference -> what decided the points of the refinement's calls (a user's function's
        # references); each sweep call returns its own, which the pass's state adds up
        self.stats: dict = {}

    def _terms(self, ords, host_ords: np.ndarray, x, device, forms: tuple[int, ...] | None = None, stats=None):
        """Each distinct reference's terms at the call's points (of `forms`, numbered
        in self.forms; default all; None in the places of the others): under JAX, or
        for float64 from the host's double-double, or from the family's own host
        reference (a user's function) at its kernel inputs `x`."""
        if self.on_device():  # every reference: see reference_program
            return self.references(ords, self.target_in_format, self.tolerance)
        chosen = self.forms if forms is None else [self.forms[i] for i in forms]
        # each distinct point once: a short call repeats its last point up to the batch
        # size, and mpmath evaluates the hardest points one by one
        uniq, first, back = np.unique(host_ords, return_index=True, return_inverse=True)
        if self.family.exact is not None:
            found = self.family.exact(chosen, self.out, np.asarray(x)[first], np.asarray(self.label),
                                      self.stats if stats is None else stats)
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

    def on_device(self) -> bool:
        """Whether every reference of a call is computed on the device (no host work
        that is not thread-safe: see `streams`)."""
        return self.out.bits < 64 and self.family.exact is None

    def call(self, start: int, n: int, ords: np.ndarray | None = None, device=None) -> tuple:
        """Dispatch one call of n points (asynchronously) on `device` (default: the
        first): what `classify_program` returns, a row per form, the kernels' results
        and reference terms, and what decided the references. Every program follows
        its arguments, all committed to that device, so each device runs the same
        programs, compiled for one device, as a user's jit would be."""
        device = self.device if device is None else device
        self.prepare(device)
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
        label = self.labels[device]
        self._prepare_kernels(x, label, device)
        stats: dict = {}
        terms = self._terms(o, host, x, device, stats=stats)
        outs = tuple(kernel(x, label) for kernel in self.kernels)
        return self.classify(outs, terms, n), (outs, terms), self.by_form(stats)

    def prepare(self, device=None) -> None:
        """Have this runner's programs compiled side by side (`executables.prepare`)
        before its first call, in the order its calls need them: the call's positions
        and inputs, the references, then the kernels and the classification (see
        `_prepare_kernels`). Nothing runs; a runner prepares once per device. Where
        the inputs program is kept already (a cached run), its first call prepares
        the kernels with the inputs it made."""
        device = self.device if device is None else device
        if device in self.prepared:
            return
        self.prepared.add(device)
        put = functools.partial(jax.device_put, device=device)
        ords = put(np.zeros(self.size, np.int64))
        executables.prepare([(self.positions, (put(np.int64(0)), self.size))])
        (x,) = executables.prepare([(self.inputs, (ords,))])
        (terms,) = (executables.prepare([(self.references, (ords, self.target_in_format, self.tolerance))])
                    if self.on_device() else [None])
        if x is not None:
            self._prepare_kernels(_zeros(x, device), self.labels[device], device, terms)

    def _prepare_kernels(self, x, label, device, terms=None) -> None:
        """Have the kernels compiled side by side at the call's batch, then the
        classification, the keys and the refinement's codes (where the traces gave the
        shapes of their arguments: the kernels' results and the references' `terms`),
        then the kernels at the batch
        sizes `batches.measure` runs the row's points at later (one point, and SECOND
        points where the batch is larger). Once per device."""
        if device in self.kernels_prepared:
            return
        self.kernels_prepared.add(device)
        outs = tuple(executables.prepare([(k, (x, label)) for k in self.kernels]))
        if terms is not None and all(o is not None for o in outs):
            outs, terms = _zeros(outs, device), _zeros(terms, device)
            executables.prepare([(self.classify, (outs, terms, self.size))])
            # the keys of a form whose class changes in a call, and on a sampled axis the
            # refinement's codes: one program each per result shape
            tolerance = float(self.tolerance)
            per_form = [(out, terms[r][0]) for out, r in zip(outs, self.ref_of)]
            executables.prepare([(keys_program(self.out, tolerance), args) for args in per_form] +
                                ([] if self.axis.exhaustive else
                                 [(codes_program(self.out, tolerance), args) for args in per_form]))
        sizes = [1] + ([batches.SECOND] if self.size > batches.SECOND else [])
        smaller = [jax.device_put((np.zeros((n,) + x.shape[1:], x.dtype), labels(self.label, n)), device)
                   for n in sizes]
        executables.prepare([(k, v) for v in smaller for k in self.kernels])

    def by_form(self, stats: dict) -> dict:
        """What decided a call's points, by form (position) rather than by reference."""
        return {i: stats[f.reference] for i, f in enumerate(self.forms) if f.reference in stats}

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

"""Forms, families and cases: what a kernel is, what its exact value is, and what a
row holds fixed.

A *form* is one way of computing a quantity (a loss, a gradient, or one factor of
a gradient), written as a JAX user would write it, plus the exact value of the
quantity it stands for, and its own facts: the library call that computes it and
whether it is the stable formulation. A *family* is a set of forms on the same
input (the logit of a sigmoid unit; a softmax's logit vector; a user's function).
A *case* is what a row group holds fixed besides the format: a sigmoid target y,
or a softmax structured sweep's K, sweep and true class.

A built-in reference is written once, with ordinary arithmetic on "base"
quantities of the exact input, and evaluated by two interchangeable backends:
float64 under JAX for formats up to 32 bits, and a host double-double for float64
itself. Each reference returns the exact value and a *scale*: the sum of the
magnitudes of the terms of the exact formula. The classifier uses the scale for its
absolute floor, so that cancellation inherent at a root of the exact value (ŷ − y
near ŷ = y) is not counted against a kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from ..numerics import literals


@dataclasses.dataclass(frozen=True)
class Constant:
    """A framework constant as the framework casts it to the working format."""

    label: str
    exact: float
    in_format: Callable[[Any], Any]  # numpy scalar type of the format -> its value there


@dataclasses.dataclass(frozen=True)
class Form:
    name: str
    quantity: str  # "loss", "grad" or "factor"
    kernel: Callable  # (z, y) -> value, both in the format; returns the format
    reference: Callable  # (base) -> (exact value, scale)
    summary: str
    constants: tuple[Constant, ...] = ()
    factors: tuple[str, str] | None = None  # the two factor forms multiplied, if any
    loss: Callable | None = None  # for a gradient by jax.grad: the loss it differentiates
    library: str | None = None  # the library calls that compute this form, as people write them
    library_soft: str | None = None  # ... with a label distribution instead of a class index
    stable_form: bool = False  # the stable formulation of its quantity (the fused or log-space form)


@dataclasses.dataclass(frozen=True)
class Case:
    """What a row group holds fixed besides the format: a sigmoid target `target`, or
    a softmax structured sweep (`sweep` margin or offset, true class `target_class`
    top or other, K = `classes`). Its row fields are `fields()`."""

    target: float | None = None
    classes: int | None = None
    sweep: str | None = None
    target_class: str | None = None

    def fields(self) -> dict:
        """The row fields that name this case."""
        if self.sweep is None:
            return {}
        return {"sweep": self.sweep, "axis": "m" if self.sweep == "margin" else "c", "classes": self.classes,
                "target_class": self.target_class}

    @property
    def label(self) -> str:
        """The case in a few words (progress lines, checkpoint keys)."""
        if self.sweep is None:
            return f"y={self.target:g}"
        return f"{self.sweep} K={self.classes} {self.target_class}"


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    forms: tuple[Form, ...]
    axis: str  # name of the swept input
    device_base: Callable | None  # (x64, target64) -> base quantities in float64 under JAX
    host_base: Callable | None  # (x64 numpy, target float) -> base quantities in double-double
    width: int = 1  # entries of a vector-valued result (K classes), 1 for scalars
    factors: tuple[Form, ...] = ()  # factor forms swept only when asked for by name
    # What a kernel is called with, `kernel(inputs(x, case(target)), label(target, fmt))`:
    # the per-point input made from the swept value x (in the format) and the part of
    # the row's target that shapes it (None: none), and the row's target as the traced,
    # unbatched second argument. `target_of(case)` is that target: the number the
    # family's programs take (a traced argument, so that cases share their programs).
    inputs: Callable = lambda x, case: x  # noqa: E731
    case: Callable = lambda target: None  # noqa: E731
    label: Callable = lambda target, fmt: fmt.cast(target)  # noqa: E731
    target_of: Callable[[Case], float] = lambda case: case.target  # noqa: E731
    # The reference strategy. None: each form's `reference` on `device_base` (float64
    # under JAX) and `host_base` (float64 rows). Otherwise a host function,
    # `exact(forms, fmt, inputs, label, stats)` -> (exact, sens) per distinct reference of
    # `forms` at kernel inputs (numpy, in the format), counting what decided each point
    # in `stats`: a user's function, whose exact values come from reference.Reference's tiers.
    exact: Callable | None = None
    reference_name: str = ""  # what a row's "reference" field says (default: by format)
    # The float64 reference on a device (see `ddj`): base quantities as double-double
    # under JAX, and the points (x64, target) -> bool mask that it must leave to the
    # host (untrusted double-double, where the host asks mpmath). None: on the host.
    device_dd_base: Callable | None = None
    untrusted: Callable | None = None
    # How the family is computed in a wider format or with a loss scale (see `derive`):
    # (precision, scale) -> the derived family; None: the generic wrappers of its kernels.
    derived: Callable | None = None
    # (key, value) pairs every row of the family carries (a user's source); not part of its identity
    row_fields: tuple = dataclasses.field(default=(), compare=False)
    # The walk at onsets (see analysis.causes): "factors" (only the chain products, by
    # default) or "all" forms; at which classes; and whether a derived (upcast, scaled)
    # kernel is walked too.
    causes: str = "factors"  # or "all", or "none"
    cause_classes: tuple[str, ...] = ("nan", "inf")
    cause_derived: bool = False

    def form(self, name: str) -> Form:
        for f in self.forms + self.factors:
            if f.name == name:
                return f
        known = ", ".join(f.name for f in self.forms + self.factors)
        raise InputError(f"Unknown form `{name}` in family {self.name}; known forms are {known}.")


def div0(num, den, where):
    """num / den, taken as exactly 0 where num is 0 (also where den underflowed to 0)."""
    return where(num == 0, 0.0 * den, num / den)


def constant_notes(form: Form, fmt, args: tuple | None = None) -> list[str]:
    """How each framework constant of `form` comes out in `fmt`; with `args` (a user's
    function: its kernel's arguments), the constants its code writes that `fmt`
    changes where it matters (numerics.literals)."""
    # the kernel as it runs (a gradient's holds its loss's constants; an upcast one casts first)
    notes = [r.note(fmt) for r in literals.rounded(form.kernel, args, fmt)] if args is not None else []
    for c in form.constants:
        v = float(c.in_format(fmt.dtype.type))
        if v == 0 and c.exact != 0:
            notes.append(f"{c.label} vanishes (0)")
        elif v != 0 and abs(v) < fmt.smallest_normal:
            notes.append(f"{c.label} = {v:.3g} (subnormal)")
        elif v == 1 and c.exact != 1:
            notes.append(f"{c.label} rounds to 1")
    return notes

"""A run's specification: every choice that shapes its rows, validated once and frozen.

`build` checks each argument and says what is wrong in one sentence; `sweep` and
`check` (and the command line, through them) build their runs here, so each option
has one definition. What does not shape a row (devices, progress, a checkpoint
file) belongs to the run's context instead (see `context`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..errors import InputError
from ..families import derive, registry
from ..families.registry import Kind
from ..numerics import formats
from ..numerics.classify import DEFAULT_TOLERANCE, FLOORS
from . import modes


@dataclasses.dataclass(frozen=True)
class Spec:
    kinds: tuple[Kind, ...]  # the families swept
    options: dict  # kind name -> its validated family options
    precisions: tuple[formats.Precision, ...]
    forms: tuple[str, ...] | None = None  # None: every form of each family
    points: int | None = None
    tolerance: float = DEFAULT_TOLERANCE
    seed: int = 0
    mode: modes.Mode = modes.DEFAULT
    floor: str = "condition"
    scan_onsets: bool = False
    causes: bool | None = None  # walk every form (True), none (False), or each family's default (None)
    value_range: tuple[float, float] | None = None
    exhaustive: bool = False
    loss_scale: float | None = None
    warnings: tuple[str, ...] = ()  # what the families said while preparing the run

    def options_for(self, kind: Kind) -> dict:
        return self.options[kind.name]

    @property
    def formats(self) -> list[formats.Format]:
        """The input formats, each once."""
        return list(dict.fromkeys(p.input for p in self.precisions))


def build(kinds: Sequence[Kind], dtypes: Sequence[str] | None = None, options: dict | None = None,
          forms: Sequence[str] | None = None, points: int | None = None, tolerance: float = DEFAULT_TOLERANCE,
          seed: int = 0, mode: str | modes.Mode = "jit", floor: str = "condition", scan_onsets: bool = False,
          causes: bool | None = None, value_range: tuple[float, float] | None = None, exhaustive: bool = False,
          loss_scale: float | None = None) -> Spec:
    """The specification of a run of `kinds`, after one sentence for any bad argument.
    `options` are the family options (targets, classes, ...), each validated by the
    families that take it; `dtypes` None gives the formats the families' options call
    for (a low-precision `logits` array's own format), or the default ones (those of
    up to 32 bits with `exhaustive`: float64 cannot be swept whole)."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    taken = {o for kind in kinds for o in kind.options}
    for name in options:
        if name not in taken:
            takers = sorted(k.name for k in registry.KINDS.values() if name in k.options)
            flag = registry.OPTIONS[name].flag if name in registry.OPTIONS else name
            raise InputError(f"{flag} applies to the {' and '.join(takers) or 'other'} famil"
                             f"{'ies' if len(takers) > 1 else 'y'}, which this run does not sweep.")
    validated = {kind.name: kind.validate(options) for kind in kinds}
    if dtypes is None:
        natural = [d for kind in kinds for d in (kind.natural_formats(validated[kind.name]) or [])]
        dtypes = natural or [d for d in formats.DEFAULT_FORMATS if not (exhaustive and formats.get(d).bits > 32)]
    precisions = tuple(formats.precision(d) for d in dtypes)
    _check_common(precisions, points, seed, tolerance, floor, value_range)
    mode = modes.get(mode)
    loss_scale = derive.check_scale(loss_scale)
    for p in precisions:
        derive.check_scale(loss_scale, p.compute)
    if scan_onsets and any(p.input.bits > 32 for p in precisions):
        raise InputError("`scan_onsets` cannot scan float64 (up to 2**63 values a side); leave float64 out of `dtypes`.")
    forms = registry.check_form_names(kinds, forms)
    warnings = []
    for kind in kinds:  # a family may narrow the formats (a user's function without an exact rule)
        kept, said = kind.prepare(validated[kind.name], list(precisions))
        precisions, warnings = tuple(kept), warnings + said
    return Spec(tuple(kinds), validated, precisions, forms, points, tolerance, seed, mode, floor, scan_onsets,
                causes, tuple(value_range) if value_range else None, exhaustive, loss_scale, tuple(warnings))


def _check_common(precisions, points, seed, tolerance, floor, value_range) -> None:
    """One sentence for any bad argument that every run shares."""
    if not precisions:
        raise InputError("`dtypes` is empty; give at least one format.")
    if points is not None and int(points) < 1:
        raise InputError(f"`points` must be a positive integer, got {points}.")
    if int(seed) != seed or seed < 0:
        raise InputError(f"`seed` must be a non-negative integer, got {seed}.")
    if not tolerance >= 0:
        raise InputError(f"`tolerance` must be a non-negative number of ULPs, got {tolerance}.")
    if floor not in FLOORS:
        raise InputError(f"Unknown floor `{floor}`; choose one of {', '.join(FLOORS)}.")
    if value_range is not None and not (len(value_range) == 2 and value_range[0] <= value_range[1]):
        raise InputError(f"`value_range` must be (LO, HI) with LO ≤ HI, got {value_range}.")

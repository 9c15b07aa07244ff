"""The families every command knows, each registered by its own module.

A family module defines its forms and a `Kind`, and calls `register(kind)`: then
`--family NAME` sweeps it, `list` lists it, `explain` walks its forms, ``all``
includes it (unless it says otherwise), and its options (`--targets`, `--classes`,
...) are accepted only where a family that takes them is swept. The options are
defined once, in OPTIONS, for the API and the command line alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ..errors import InputError
from ..numerics import formats
from ..numerics.sampling import axis_for
from .base import Case, Family, Form


@dataclasses.dataclass(frozen=True)
class Option:
    """A family option: its API keyword, command-line flag, default and help."""

    name: str
    flag: str
    default: object
    help: str
    metavar: str = ""
    parse: Callable[[str], object] | None = None  # one item of the comma-separated flag; None: not a list
    items: str = ""  # what the items are called, in "`x` is not a comma-separated list of ITEMS"


OPTIONS: dict[str, Option] = {}


def option(opt: Option) -> Option:
    OPTIONS[opt.name] = opt
    return opt


class Kind:
    """A family as the commands know it. Subclasses set the attributes and override
    `cases` (the family instances and cases a run's options ask for); the others
    have defaults."""

    name = ""
    title = ""  # what `list` says of it
    axis_help = ""  # what its axis is, in `list`
    options: tuple[str, ...] = ()  # names of the OPTIONS it takes
    in_all = True  # swept by --family all
    sums = False  # its forms add exponentials: a run measures how the backend accumulates sums

    def family(self) -> Family:
        """The family at its default options (for `list`, form names, explain)."""
        return self.cases(self.validate({}))[0][0]

    def defaults(self) -> dict:
        return {k: OPTIONS[k].default for k in self.options}

    def forms(self) -> tuple[Form, ...]:
        fam = self.family()
        return fam.forms + fam.factors

    def validate(self, options: dict) -> dict:
        """The options with defaults filled in, after one sentence for any bad one."""
        return {**self.defaults(), **{k: v for k, v in options.items() if k in self.options and v is not None}}

    def instances(self, options: dict) -> list[tuple[Family, Case]]:
        """Each family instance (the softmax at K) with each case it is swept at (what a
        family module defines)."""
        raise NotImplementedError

    def cases(self, options: dict) -> list[tuple[Family, Case]]:
        """`instances`, with the forms added at run time (`add_form`) on each family."""
        return [(self._with_added(fam), case) for fam, case in self.instances(options)]

    def add_form(self, form: Form) -> None:
        """Add a form to the family: it is swept, listed, explained and summarised like
        the family's own (remove it with `remove_form`)."""
        self.added = (*self.added, form)
        self.made = {}

    def remove_form(self, name: str) -> None:
        self.added = tuple(f for f in self.added if f.name != name)
        self.made = {}

    added: tuple = ()  # forms added at run time
    made: dict = {}  # family -> the family with them, one object each (its programs compile once)

    def _with_added(self, fam: Family) -> Family:
        if not self.added:
            return fam
        if fam not in self.made:
            factors = tuple(f for f in self.added if f.quantity == "factor" and fam.factors)
            self.made[fam] = dataclasses.replace(fam, forms=fam.forms + tuple(f for f in self.added
                                                                              if f not in factors),
                                                 factors=fam.factors + factors)
        return self.made[fam]

    def axis(self, family: Family, fmt: formats.Format, points, seed: int, value_range=None, exhaustive=False):
        """The axis a row of `family` sweeps in `fmt` (see numerics.sampling)."""
        return axis_for(fmt, points, seed, value_range, exhaustive)

    def vector_sweeps(self, options: dict, forms) -> list:
        """Sweeps over whole input vectors, with no axis (the softmax's random and logits)."""
        return []

    def prepare(self, options: dict, precisions: list) -> tuple[list, list[str]]:
        """Before anything is swept: the precisions this family can be swept in, and
        warnings for the result (one sentence for what cannot be swept at all)."""
        return precisions, []

    def fingerprint(self) -> dict:
        """What a checkpoint must match beyond the run's options (a user's function)."""
        return {}

    def natural_formats(self, options: dict) -> list[str] | None:
        """The formats a run defaults to for these options (None: the default ones)."""
        return None


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make `kind` known to every command (a family module calls this once)."""
    KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    KINDS.pop(name, None)


def get(name: str) -> Kind:
    if name not in KINDS:
        raise InputError(f"Unknown family `{name}`; known families are {', '.join(names())}.")
    return KINDS[name]


def names() -> list[str]:
    """The names `--family` takes: each registered family, and all."""
    return [*KINDS, "all"]


def expand(name: str | Sequence[str]) -> list[Kind]:
    """The kinds `family=name` sweeps: one, several, or every one in ``all``."""
    if isinstance(name, str):
        name = [name]
    out = []
    for n in name:
        out += [k for k in KINDS.values() if k.in_all] if n == "all" else [get(n)]
    return list(dict.fromkeys(out))


def family(name: str, **options) -> Family:
    """The family `name` at these options (the softmax family with classes=[K])."""
    kind = get(name)
    return kind.cases(kind.validate(options))[0][0]


def check_form_names(kinds: Sequence[Kind], forms) -> tuple[str, ...] | None:
    """`forms` if every name is a form of one of `kinds`; one sentence otherwise."""
    if forms is None:
        return None
    if not forms:
        raise InputError("`forms` is empty; give at least one form.")
    known = {f.name for k in kinds for f in k.forms()}
    for f in forms:
        if f not in known:
            raise InputError(f"Unknown form `{f}`; known forms are {', '.join(sorted(known))}.")
    return tuple(forms)


def select(family: Family, forms) -> tuple[Form, ...]:
    """The forms to sweep: all of the family's by default; factor forms only by name."""
    if forms is None:
        return family.forms
    return tuple(f for f in family.forms + family.factors if f.name in forms)

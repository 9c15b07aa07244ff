"""A row: what one form measured in one format and case, as a typed record with one
identity key.

`RowKey` says what a row measures: family, form, quantity, the input format and the
one it was computed in, and its case (a sigmoid target, or a softmax sweep, K and
true class), and the range swept. It is unique within a result and stable through
a JSON round trip; diff, the report, gates, upcast and fix pairing, figures and the
mode comparison all match rows by it. Run settings (mode, floor, loss scale) are
not part of it: they are the same for every row of a result.

A `Row` holds the figures. It reads like the JSON document's row (``row["onset"]``,
``row.get("cause")``), which is what the public API has always returned; its
`to_json` writes the schema ``precision_lab.sweep/2``, whose readers take a
missing ``compute_dtype`` as ``dtype``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

IDENTITY = ("family", "form", "quantity", "dtype", "compute_dtype", "target", "classes", "sweep", "target_class",
            "range")


@dataclasses.dataclass(frozen=True)
class RowKey:
    family: str
    form: str
    quantity: str
    dtype: str
    compute_dtype: str
    target: float | None = None
    classes: int | None = None
    sweep: str | None = None
    target_class: str | None = None
    range: tuple | None = None

    @classmethod
    def of(cls, row) -> RowKey:
        """The key of a Row, or of a row of a JSON document (any schema version)."""
        get = row.get
        dtype = get("dtype")
        target, classes, rng = get("target"), get("classes"), get("range")
        return cls(get("family"), get("form"), get("quantity"), dtype, get("compute_dtype") or dtype,
                   None if target is None else float(target), None if classes is None else int(classes),
                   get("sweep"), get("target_class"), None if rng is None else tuple(float(v) for v in rng))

    def replace(self, **fields) -> RowKey:
        return dataclasses.replace(self, **fields)

    @property
    def format(self) -> str:
        """``bfloat16``, or ``bfloat16:float32`` where the kernel computed in a wider format."""
        return self.dtype if self.compute_dtype == self.dtype else f"{self.dtype}:{self.compute_dtype}"

    def name(self) -> str:
        """The row in a few words: form (and quantity, for a user's function), format, case, range."""
        parts = [self.form + (f" ({self.quantity})" if self.family == "check" else ""), self.format]
        if self.sweep:
            parts += [self.sweep, f"K={self.classes}"] + ([self.target_class] if self.target_class else [])
        elif self.target is not None:
            parts.append(f"y={self.target:g}")
        if self.range:
            parts.append(f"range={self.range[0]:g},{self.range[1]:g}")
        return " ".join(parts)


# fields every row writes, in the document's order; the others only when they hold something
ALWAYS = ("family", "quantity", "form", "summary", "dtype", "compute_dtype", "value_dtype", "loss_scale", "target",
          "target_in_format", "axis", "points", "exhaustive", "reference", "counts", "max_ulp", "stable", "onset",
          "intervals", "constants", "profile", "mode", "floor", "batch", "judged")


@dataclasses.dataclass(eq=False)
class Row(Mapping):
    family: str
    quantity: str
    form: str
    summary: str
    dtype: str
    compute_dtype: str | None
    value_dtype: str | None
    loss_scale: float | None
    target: float | None
    target_in_format: float | None
    axis: str | None
    points: int
    exhaustive: bool
    reference: str
    counts: dict
    max_ulp: float | None
    stable: bool
    onset: dict
    intervals: dict
    constants: list
    profile: dict | None
    mode: str | None = None
    floor: str | None = None
    batch: int | None = None
    judged: str | None = None
    # the case (softmax rows) and what was swept
    sweep: str | None = None
    classes: int | None = None
    target_class: str | None = None
    range: list | None = None
    # the form's facts
    library: str | None = None
    stable_form: bool | None = None
    computes: str | None = None  # what the form computes: rows alike compute the same function (see `computes`)
    # figures some rows have
    forward_error: dict | None = None  # points per ULP-error bucket of the ok and inaccurate ones, and excused
    zero_exact_max: float | None = None
    zero_onset_subnormal: dict | None = None
    batch_dependent: dict | None = None  # engine.batches: values that change with the batch size or position
    killed_gradient: dict | None = None  # analysis.killed: a gradient a clip makes 0 (or halves)
    mechanism: dict | None = None
    cause: dict | None = None
    # a user's function
    source: dict | None = None
    tiers: dict | None = None
    fix: dict | None = None
    fix_of: str | None = None
    jaxpr_differs_across_formats: bool | None = None
    # the sweeps over whole vectors
    shares: dict | None = None
    shares_by_scale: dict | None = None
    max_ulp_by_scale: dict | None = None
    worst: list | None = None
    inputs_out_of_range: int | None = None
    logits_dtype: str | None = None
    inputs_rounded: int | None = None
    labels_rounded: int | None = None
    extra: dict = dataclasses.field(default_factory=dict)  # fields this version does not know (newer documents)

    def __post_init__(self):
        # the optional fields given a value, None included (a walk that was skipped): written
        object.__setattr__(self, "_given", {f for f in _OPTIONAL if getattr(self, f) is not None})

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name in _OPTIONAL and "_given" in self.__dict__:
            self._given.add(name)

    @property
    def key(self) -> RowKey:
        return RowKey.of(self)

    def replace(self, **fields) -> Row:
        return dataclasses.replace(self, **fields)

    # ---- the JSON document's row

    def to_json(self) -> dict:
        out = {}
        for f in _FIELDS:
            v = getattr(self, f)
            if f in ALWAYS or v is not None or f in self._given:
                out[f] = v
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, doc: Mapping) -> Row:
        known = {k: v for k, v in doc.items() if k in _FIELDS}
        for f in _REQUIRED:
            known.setdefault(f, None)
        row = cls(**known, extra={k: v for k, v in doc.items() if k not in _FIELDS})
        row._given.update(k for k in known if k in _OPTIONAL)  # written as null: kept so
        return row

    # ---- read like a mapping (the public API's rows, and rows of older documents)

    def __getitem__(self, key: str):
        if key in _FIELDS:
            v = getattr(self, key)
            if v is None and key not in ALWAYS and key not in self._given:  # as in the document
                raise KeyError(key)
            return v
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())

    def __contains__(self, key) -> bool:
        return key in self.to_json()


_FIELDS = tuple(f.name for f in dataclasses.fields(Row) if f.name != "extra")
_OPTIONAL = frozenset(_FIELDS) - frozenset(ALWAYS)
_REQUIRED = tuple(f.name for f in dataclasses.fields(Row) if f.default is dataclasses.MISSING
                  and f.default_factory is dataclasses.MISSING)


def rows_of(doc_rows) -> list[Row]:
    """Rows of a JSON document (dicts) or of a result, as Rows."""
    return [r if isinstance(r, Row) else Row.from_json(r) for r in doc_rows]


def computes(family, form) -> str:
    """What `form` of `family` computes, as rows compare forms: built-in forms sharing a
    reference compute one function (``sigmoid:grad_bce``); a user's function is its own
    (``check:NAME:loss``)."""
    if family.exact is not None:
        return f"{family.name}:{form.name}:{form.quantity}"
    return f"{family.name}:{form.reference.__name__.removeprefix('_ref_')}"

"""Your own loss: a user's JAX function swept like a built-in family.

`load("losses.py:focal_loss")` finds the function; `User(fn, ...)` is the family
kind that `check` sweeps, through the same pipeline as the built-in families (see
`user_forms` for its forms and references).

Binary kind (the default): ``fn(z, y) -> scalar``, z a scalar logit, y a target in
[0, 1]. Multiclass kind (``classes``): ``fn(logits, label) -> scalar``, logits a
K-vector, label an integer class, swept with the softmax family's margin and offset
sweeps and target classes.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence

import jax
import numpy as np

from ..errors import InputError
from ..numerics import formats
from . import softmax, user_forms
from .base import Case, Family
from .registry import Kind
from .sigmoid import check_targets

FLOAT64_POINTS = 1 << 12  # default points of a float64 check row: its references are all arbitrary precision


def load(spec: str) -> tuple[Callable, str]:
    """The function named by ``FILE.py:NAME`` or ``package.module:NAME``, and its file."""
    if ":" not in spec or not all(spec.rsplit(":", 1)):
        raise InputError(f"`{spec}` does not name a function; write FILE.py:NAME or package.module:NAME.")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise InputError(f"Cannot read `{where}`: no such file.")
        module = _load_file(where)
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError:
            raise InputError(f"No module `{where}` can be imported; give FILE.py:NAME for a file.") from None
        except Exception as e:  # noqa: BLE001
            raise InputError(f"Module `{where}` failed to import: {type(e).__name__}: {e}.") from None
    if not hasattr(module, name):
        raise InputError(f"`{where}` has no `{name}`.")
    fn = getattr(module, name)
    if not callable(fn):
        raise InputError(f"`{where}:{name}` is a value of type {type(fn).__name__}, not a function.")
    return fn, getattr(module, "__file__", where) or where


_LOADED: dict = {}  # (path, mtime, size) -> module: a file checked again, unchanged, keeps its functions


def _load_file(where: str):
    """The module of a .py file, executed once per version of the file: an unchanged
    file gives the same function objects, so their compiled programs are reused (an
    edited one is executed again)."""
    path = os.path.abspath(where)
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key in _LOADED:
        return _LOADED[key]
    mod_name = f"precision_lab_user_{abs(hash(path))}"
    spec_ = importlib.util.spec_from_file_location(mod_name, where)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[mod_name] = module
    try:
        spec_.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001  the user's module failed: say how, in one sentence
        raise InputError(f"`{where}` failed to import: {type(e).__name__}: {e}.") from None
    _LOADED[key] = module
    return module


def parse_kwargs(text: str | None) -> dict:
    """A JSON object of keyword arguments (`--kwargs`), or one sentence why not."""
    if not text:
        return {}
    try:
        kw = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"--kwargs is not JSON ({e.msg} at character {e.pos}); write e.g. '{{\"gamma\": 0.5}}'.") \
            from None
    if not isinstance(kw, dict):
        raise InputError("--kwargs must be a JSON object of keyword arguments, e.g. '{\"gamma\": 0.5}'.")
    return kw


def validate(fam: Family, fmt: formats.Format, target, source_file: str | None = None) -> None:
    """One sentence (InputError) unless both forms trace at `fmt`, take and return the
    format, and return a scalar."""
    x = jax.ShapeDtypeStruct((fam.width,) if fam.width > 1 else (), fmt.dtype)
    label = fam.label(target, fmt)
    loss, _ = fam.forms
    what = "fn(logits, label)" if fam.width > 1 else "fn(z, y)"
    try:
        out = jax.eval_shape(loss.kernel, x, label)
    except Exception as e:  # noqa: BLE001
        shapes = ("index", "indices", "axis", "dimension", "shape", "rank")  # what a vector function on a scalar hits
        concrete = isinstance(e, (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                                  jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError))
        hint = "" if fam.width > 1 or concrete or not any(w in str(e).lower() for w in shapes) else \
            " (a multiclass function? give --classes K)"
        if isinstance(e, TypeError) and "argument" in str(e) and "tracer" not in str(e).lower():
            raise InputError(f"`{loss.name}` cannot be called as {what}: {e}.") from None
        raise InputError(_trace_error(loss.name, e, source_file).rstrip(".") + hint + ".") from None
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        hint = " (a binary function given --classes?)" if fam.width > 1 else ""
        raise InputError(f"`{loss.name}` returns shape {shape}, not a scalar loss{hint}; reduce it to one number.")
    if np.dtype(out.dtype) != fmt.dtype:
        raise InputError(f"`{loss.name}` returns {np.dtype(out.dtype).name} for {fmt.name} inputs; a {fmt.name} "
                         f"row must return {fmt.name} (cast the result back, or check the wider format).")
    try:
        jax.eval_shape(fam.forms[1].kernel, x, label)
    except Exception as e:  # noqa: BLE001
        raise InputError(_trace_error(loss.name, e, source_file, "its gradient")) from None


def _trace_error(name: str, e: Exception, source_file: str | None, what: str = "it") -> str:
    """One sentence for a function that cannot be traced, naming the user's line."""
    line = ""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if source_file and os.path.abspath(frame.filename) == os.path.abspath(source_file):
            line = f" at {os.path.basename(frame.filename)}:{frame.lineno} (`{(frame.line or '').strip()}`)"
            break
    kind = type(e).__name__
    first = str(e).strip().splitlines()[0] if str(e).strip() else kind
    if isinstance(e, (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                      jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError)):
        first = "it uses a traced value as a Python or NumPy value (control flow on values, or NumPy on a tracer)"
    what = "" if what == "it" else f" ({what})"
    return f"JAX cannot trace `{name}`{what}{line}: {first.rstrip('.')}."


def _check_sweeps(sweeps: Sequence[str], target_classes: Sequence[str]) -> None:
    for s in sweeps:
        if s not in softmax.SWEEPS:
            raise InputError(f"Unknown sweep `{s}` for a check; choose from {', '.join(softmax.SWEEPS)}.")
    for t in target_classes:
        if t not in softmax.TARGET_CLASSES:
            raise InputError(f"Unknown target class `{t}`; choose from {', '.join(softmax.TARGET_CLASSES)}.")


class User(Kind):
    """A user's function as `check` sweeps it: the binary kind on targets y, or the
    multiclass kind (`classes`) on the softmax family's margin and offset sweeps."""

    name = "check"
    in_all = False

    def __init__(self, fn: Callable, name: str | None = None, kwargs: dict | None = None,
                 classes: Sequence[int] | None = None, against: Callable | None = None,
                 against_name: str | None = None, source_file: str | None = None, spec: str | None = None):
        self.fn, self.kwargs = fn, dict(kwargs or {})
        self.fn_name = name or getattr(fn, "__name__", "fn")
        self.multiclass = classes is not None
        self.options = ("classes", "sweeps", "target_classes") if self.multiclass else ("targets",)
        self.against, self.against_name, self.source_file = against, against_name, source_file
        self.spec = spec or f"{getattr(fn, '__module__', '?')}:{self.fn_name}"
        self.title = f"your function {self.spec}"
        self.axis_help = "m (margin), c (offset); K classes" if self.multiclass else "z, the logit"
        self.source = {"function": self.spec, "kwargs": self.kwargs,
                       **({"reference": against_name} if against is not None else {})}
        self.reference_name = None  # set by `prepare` where the exact tiers lack a rule
        self.differs: dict = {}  # K (None: binary) -> whether its jaxpr differs across the run's formats
        self._plain: dict = {}

    def plain(self, k: int | None) -> Family:
        """The function as it is called, at K = k (None: the binary kind): one family
        object per K, so that its programs and derived families are made once."""
        key = (k, self.differs.get(k), self.reference_name)
        if key not in self._plain:
            self._plain[key] = self._make(k)
        return self._plain[key]

    def _make(self, k: int | None) -> Family:
        fields = (("source", self.source),)
        if k in self.differs:
            fields += (("jaxpr_differs_across_formats", self.differs[k]),)
        fam = user_forms.family(self.fn, self.fn_name, self.kwargs, k, self.against, self.against_name,
                                row_fields=fields)
        if self.reference_name:
            fam = _renamed(fam, self.reference_name)
        return fam

    def family(self) -> Family:
        return self.plain(None if not self.multiclass else 10)

    def defaults(self) -> dict:
        if self.multiclass:
            return {"classes": (10,), "sweeps": softmax.SWEEPS, "target_classes": tuple(softmax.TARGET_CLASSES)}
        return {"targets": (0.0, 1.0)}

    def validate(self, options: dict) -> dict:
        out = super().validate(options)
        if not self.multiclass:
            return dict(out, targets=check_targets(out["targets"]))
        _check_sweeps(out["sweeps"], out["target_classes"])
        for k in out["classes"]:
            if int(k) != k or k < 2:
                raise InputError(f"K = {k} is not a class count; a multiclass loss needs K ≥ 2 whole classes.")
        return dict(out, classes=tuple(int(k) for k in out["classes"]))

    def instances(self, options: dict) -> list[tuple[Family, Case]]:
        if not self.multiclass:
            fam = self.plain(None)
            return [(fam, Case(target=t)) for t in options["targets"]]
        return [(self.plain(k), Case(classes=k, sweep=s, target_class=tc)) for k in options["classes"]
                for s in options["sweeps"] for tc in options["target_classes"]]

    def axis(self, family, fmt, points, seed, value_range=None, exhaustive=False):
        n = points or (FLOAT64_POINTS if fmt.bits == 64 else None)
        if family.width == 1:
            return super().axis(family, fmt, n, seed, value_range, exhaustive)
        return softmax.softmax_axis(family.width, fmt, n, seed, value_range, exhaustive)

    def prepare(self, options: dict, precisions: list) -> tuple[list, list[str]]:
        """Validate the function (and its reference) in each compute format; where the
        exact tiers lack a rule for a primitive, measure against the function in
        float64, say so, and leave float64 out. Returns the precisions and warnings."""
        ks = list(options["classes"]) if self.multiclass else [None]
        case = self.cases(options)[0][1]
        for k in ks:
            fam = self.plain(k)
            for p in precisions:  # the function is called in the compute format: it must take and return it
                validate(fam, p.compute, fam.target_of(case), self.source_file)
                if self.against is not None:
                    validate(user_forms.family(self.against, self.against_name, self.kwargs, k), p.compute,
                             fam.target_of(case))
            self.differs[k] = len({user_forms.signature(fam, p.compute) for p in precisions}) > 1
        missing = sorted({m for k in ks for p in precisions for f in user_forms.family(
            self.fn, self.fn_name, self.kwargs, k, self.against, self.against_name,
            p.compute.name if p.upcast else None).forms
            for m in f.reference.unsupported(p.input, self.plain(k).label(0, p.input),
                                             (k,) if k else ())})
        if not missing:
            return precisions, []
        self.reference_name = f"float64 (XLA): no exact rule for {', '.join(missing)}"
        kept = [p for p in precisions if p.compute.bits < 64]
        if not kept:
            raise InputError(f"The exact evaluator has no rule for {', '.join(missing)}, so float64 cannot be "
                             "checked; add a narrower format.")
        return kept, [f"The exact evaluator has no rule for {', '.join(missing)}: rows are measured against "
                      "the function run in float64, and float64 rows are skipped."]

    def fingerprint(self) -> dict:
        """What a checkpoint of this function must match: its name, keyword arguments
        and the text of its file."""
        text = b""
        if self.source_file and os.path.isfile(self.source_file):
            with open(self.source_file, "rb") as f:
                text = f.read()
        return {"function": self.spec, "kwargs": json.dumps(self.kwargs, sort_keys=True, default=repr),
                "file": hashlib.sha256(text).hexdigest()[:16], "reference": self.against_name}


def _renamed(fam: Family, name: str) -> Family:
    """`fam` (and every family derived from it) with its rows' reference named `name`."""
    import dataclasses

    derived = fam.derived
    return dataclasses.replace(fam, reference_name=name,
                               derived=lambda p, s: _renamed(derived(p, s), name) if derived else None)

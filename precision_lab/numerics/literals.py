"""The constants of a user's code that a format changes: `1 − 1e-7` that is 1.0 in
float16 (a clip that clips nothing), `1e-12` that is 0 (an epsilon that guards
nothing).

The function is traced twice: at the row's format and at float64 (the constants as
Python wrote them). Each literal of the first trace is matched to its twin in the
second by its place (source line, primitive, occurrence, operand); a literal that is
converted to the format inside the trace (``jnp.clip``'s bounds) is compared with
what it was before the conversion. A constant is named only where the change
matters: it becomes 0, ±∞ or ±1, or lands among the subnormals. These are findings
beside the classes: the reference stays what the traced code means.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from . import formats, jaxpr

@dataclasses.dataclass(frozen=True)
class Rounded:
    written: float  # the constant as the code wrote it (float64, or the type it was converted from)
    becomes: float  # its value in the format
    source: str
    why: str

    def note(self, fmt: formats.Format) -> str:
        return (f"constant {_show(self.written)} at {self.source.split(' ')[0]} is {_show(self.becomes)} in "
                f"{fmt.name} ({self.why})")


def _show(v: float) -> str:
    return "∞" if v == np.inf else "−∞" if v == -np.inf else f"{v:.8g}"


def _literals(flat: jaxpr.Flat) -> dict:
    """(source, primitive, occurrence, operand) -> (value, dtype, the equation)."""
    out, seen = {}, {}
    for e in flat.eqns:
        k = (e.source, e.primitive.name)
        seen[k] = seen.get(k, -1) + 1
        for j, (x, aval) in enumerate(zip(e.ins, e.in_avals)):
            v = x.val if isinstance(x, jaxpr.Lit) else flat.consts.get(x)
            if v is not None and np.size(v) == 1 and np.asarray(v).dtype.kind == "f":
                out[(*k, seen[k], j)] = (float(np.asarray(v, np.float64).ravel()[0]), str(aval.dtype), e)
    return out


def _why(written: float, becomes: float, fmt: formats.Format) -> str | None:
    if written == becomes:
        return None
    if becomes == 0:
        return "rounds to 0"
    if np.isinf(becomes):
        return "overflows"
    if abs(becomes) == 1:
        return "rounds to 1" if becomes > 0 else "rounds to −1"
    if abs(becomes) < fmt.smallest_normal:
        return "subnormal: few significant bits"
    return None


def rounded(fn, args: tuple, fmt: formats.Format) -> list[Rounded]:
    """The constants of `fn(*args)` (args: arrays or ShapeDtypeStructs, the floating
    ones in `fmt`) that `fmt` changes in a way that matters (see the module
    docstring), once per source line and value."""
    narrow = jaxpr.flatten(jax.make_jaxpr(fn)(*args))
    wide_args = [jax.ShapeDtypeStruct(np.shape(a), np.float64)
                 if np.dtype(a.dtype).kind in "fV" or str(a.dtype) in formats.FORMATS else a for a in args]
    try:
        wide = _literals(jaxpr.flatten(jax.make_jaxpr(fn)(*wide_args)))
    except Exception:  # noqa: BLE001  a function that does not trace at float64: its conversions only
        wide = {}
    found: dict = {}
    for key, (v, dtype, e) in _literals(narrow).items():
        if dtype != fmt.name and e.primitive.name == "convert_element_type" \
                and str(e.params.get("new_dtype")) == fmt.name:
            written, becomes = v, float(fmt.cast(v))  # a constant converted to the format
        elif dtype == fmt.name and key in wide:
            written, becomes = wide[key][0], v
        else:
            continue
        why = _why(written, becomes, fmt)
        if why is not None:
            found.setdefault((e.source, written), Rounded(written, becomes, e.source, why))
    return list(found.values())

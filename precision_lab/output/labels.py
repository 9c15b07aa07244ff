"""How classes, formats and rows are named and styled, in tables, the summary,
strips and figures: one place for every label."""

from __future__ import annotations

import dataclasses

from ..numerics import formats


@dataclasses.dataclass(frozen=True)
class ClassInfo:
    """How a class is shown: in tables (label, rich style), strips (symbol) and figures (colour)."""

    label: str  # short, in table cells
    name: str  # in legends
    symbol: str  # one character, in terminal strips
    style: str  # rich style
    color: str  # matplotlib colour


INFO = {
    "ok": ClassInfo("ok", "ok", "·", "green", "#2ca02c"),
    "inaccurate": ClassInfo("inexact", "inexact", "~", "cyan", "#17becf"),
    "zero": ClassInfo("0", "lost to 0", "0", "yellow", "#d4a600"),
    "inf": ClassInfo("∞", "inf", "∞", "magenta", "#c03fc0"),
    "nan": ClassInfo("NaN", "NaN", "N", "bold red", "#d62728"),
    "unresolved": ClassInfo("unresolved", "unresolved", "?", "dim", "#9e9e9e"),
}


STYLE = {c: i.style for c, i in INFO.items()}
LABEL = {c: i.label for c, i in INFO.items()}


SHORT = formats.SHORT


def short(dtype: str) -> str:
    """f16, bf16:f32, ...: a format (or an input:compute pair) in a few letters."""
    return ":".join(SHORT.get(d, d) for d in dtype.split(":"))


def num(v: float, fmt: formats.Format) -> str:
    """A decimal that reads back as the same value of the format: NumPy's shortest for
    float16, float32 and float64, ml_dtypes' (at most 6 significant digits) for
    bfloat16 and float8 (see the summary's legend)."""
    text = str(fmt.dtype.type(v))
    return text[:-2] if text.endswith(".0") else text


def band(lo: float, hi: float, fmt: formats.Format, axis: str) -> str:
    if lo == hi:
        return f"{axis} = {num(lo, fmt)}"
    if hi >= fmt.max and lo <= -fmt.max:
        return "everywhere"
    if hi >= fmt.max:
        return f"{axis} ≥ {num(lo, fmt)}"
    if lo <= -fmt.max:
        return f"{axis} ≤ {num(hi, fmt)}"
    return f"on [{num(lo, fmt)}, {num(hi, fmt)}]"


def dtype_label(row: dict) -> str:
    """A row's format as tables and lookups name it: ``bfloat16``, or ``bfloat16:float32``
    where the kernel computed in a wider format."""
    compute = row.get("compute_dtype") or row["dtype"]
    return row["dtype"] if compute == row["dtype"] else f"{row['dtype']}:{compute}"


def form_name(row: dict) -> str:
    """A row's form as the tables name it: a user's function by name and quantity."""
    return f"{row['form']} ({row['quantity']})" if row.get("family") == "check" else row["form"]


def cause_line(why: dict, axis: str = "x") -> str:
    """One line: the operation that first went non-finite, and what lost the value
    before it, in the op-by-op walk; and whether the compiled program differs."""
    first, lost = why["first_nonfinite"], why["first_lost"]
    parts = []
    if lost and (not first or lost["index"] < first["index"]):
        flushed = any(f["index"] == lost["index"] for f in why["flushes"])
        how = ("flushed" if flushed else "read a subnormal input as 0" if "subnormal input" in lost.get("marks", ())
               else "lost")
        parts.append(f"{lost['primitive']} {how} at {where(lost)}")
    if first:
        parts.append(f"{first['primitive']} → {first['computed']} at {where(first)}")
    text = ", then ".join(parts) or "no operation lost it op by op"
    text += "; XLA rewrote it (--compare-modes)" if why["rewritten"] else ""
    return text + compiled_note(why.get("compiled"), axis)


def compiled_note(c: dict | None, axis: str = "x") -> str:
    """Where op by op the form fails nearer 0 than the compiled program: so the steps
    above explain the op-by-op program, and the onset is the compiled code's."""
    if not c:
        return ""
    what = "NaN" if c["class"] == "nan" else "±∞"
    text = (f"; but op by op it is {what} already at {c['op_by_op']:.7g}"
            + (" (a transition found by sampling: maybe nearer 0 still)" if c["method"] == "sampled" else "")
            + f", while the compiled program (XLA fused {', '.join(c['fused'])}) is {what} only from this onset")
    return text + (f", where {c['threshold'].replace('x|', axis + '|')}" if c.get("threshold") else "")


def where(step: dict) -> str:
    return step["source"].split(" ")[0]

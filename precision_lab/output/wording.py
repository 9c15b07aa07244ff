"""Words for the one-screen summary: values as decimals that read back as their
format's value (labels.num), float64 ones cut short, and lines wrapped to a width."""

from __future__ import annotations

from collections.abc import Sequence

from ..numerics import formats
from .labels import num

SHOWN_DIGITS = 7  # significant digits of a float64 value in the summary (then "…"; --detail has them all)


def shortest(v: float, row: dict) -> str:
    """A decimal that reads back as the value in the row's input format (labels.num);
    a float64 value longer than SHOWN_DIGITS digits is cut there, marked with "…"."""
    fmt = formats.get(row["dtype"].split(":")[0])
    text = num(v, fmt)
    digits = text.lstrip("-").replace(".", "").lstrip("0")
    if fmt.bits == 64 and "e" not in text and len(digits) > SHOWN_DIGITS:
        seen, cut = 0, len(text)
        for i, ch in enumerate(text):
            seen += ch.isdigit() and (seen > 0 or ch != "0")
            if seen == SHOWN_DIGITS:
                cut = i + 1
                break
        text = text[:cut] + "…" if "." in text[:cut] else f"{v:.{SHOWN_DIGITS - 1}e}…"
    return text.replace("-", "−")


def wrap(parts: Sequence[str], width: int, indent: int, sep: str = " · ") -> list[str]:
    """`parts` joined by `sep` into lines of at most `width` columns, each indented by
    `indent`; a part too long for a line is broken at its spaces."""
    room = max(20, width - indent)
    words = []
    for i, p in enumerate(parts):
        piece = p + (sep.rstrip() if i < len(parts) - 1 else "")
        while len(piece) > room:  # break a long part at its last space that fits
            cut = piece.rfind(" ", 0, room)
            cut = cut if cut > 0 else room
            words.append((piece[:cut], True))
            piece = piece[cut:].lstrip()
        words.append((piece, False))
    lines, line = [], ""
    for w, forced in words:
        if line and len(line) + 1 + len(w) > room:
            lines.append(line)
            line = w
        else:
            line = w if not line else line + " " + w
        if forced:
            lines.append(line)
            line = ""
    if line:
        lines.append(line)
    return [" " * indent + x for x in lines]

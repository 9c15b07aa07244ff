"""The loss-scale part of the summary: what the run's scale does against none, per
jax.grad form, and for a built-in form the scale that keeps its lost gradients."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from .labels import short
from .wording import shortest as _num
from .wording import wrap as _wrap


def scale_advice(advice: Sequence[dict], scale: float, width: int = 80) -> Text:
    """What loss scaling does for each jax.grad form: what the scale asked for does
    against none, the logits whose gradient is lost unscaled, the smallest power of two
    that keeps them, and where that scale overflows."""
    text = Text()
    for line in _wrap([f"Loss scaling: the jax.grad rows above are scaled by S = {scale:g} (hand-written gradients "
                       "are not); against no scale, per form:"], width, 0):
        text.append(line + "\n", style="bold")
    for a in advice:
        ctx = (f"K={a['classes']} {a['target_class']}" if a.get("classes") else f"y={a['target']:g}")
        parts = [f"{a['form']} {short(a['dtype'])} {ctx}:"]
        at = a.get("at_scale")
        if at:
            verdict = ("better" if at["lost"] < at["lost_unscaled"] else
                       "worse" if at["lost"] > at["lost_unscaled"] else "the same")
            starts = [(at["first"][c][side], c, op) for c in ("nan", "inf", "zero")
                      for side, op in (("pos", "≥"), ("neg", "≤")) if at["first"][c][side] is not None]
            first = [f"{'NaN' if c == 'nan' else '∞' if c == 'inf' else '0'} from z {op} {_num(v, a)}"
                     for v, c, op in sorted(starts, key=lambda t: abs(t[0]))]
            parts.append(f"S = {at['scale']:g} is {verdict}: {at['lost']} values lost or non-finite"
                         + (f" ({', '.join(first[:2])})" if first else "") + f", {at['lost_unscaled']} unscaled;")
            for mv in at.get("moved") or ():  # a failure the scale brings nearer zero: the band it loses
                op = "≥" if mv["side"] == "pos" else "≤"
                was = "none unscaled" if mv["unscaled"] is None else f"unscaled from z {op} {_num(mv['unscaled'], a)}"
                parts.append(f"but {'NaN' if mv['class'] == 'nan' else '∞' if mv['class'] == 'inf' else '0'} "
                             f"now from z {op} {_num(mv['scaled'], a)} ({was});")
        lost = a["lost"]
        if a.get("by_scale") is None:  # a user's function: the verdict only (no search of scales)
            parts[-1] = parts[-1].rstrip(";") + "."
        elif not lost["count"]:
            parts.append("no gradient lost unscaled, no scale needed")
        else:
            where = ", ".join(f"[{_num(lo, a)}, {_num(hi, a)}]" if lo != hi else _num(lo, a) for lo, hi in
                              lost["bands"][:2]) + (" …" if len(lost["bands"]) > 2 else "")
            parts.append(f"unscaled, {lost['count']} gradients are lost at z in {where};")
            if a["scale"] is None:
                tried = [b["scale"] for b in a["by_scale"]]
                parts.append(f"no power of two up to {max(tried):.3g} keeps them all" if tried else
                             "no power of two keeps them all")
            else:
                over = a["overflow"] or {}
                ends = [f"{q} ∞ from z {op} {_num(v, a)}" for q in ("loss", "grad")
                        for side, op in (("pos", "≥"), ("neg", "≤"))
                        if (v := (over.get(q) or {}).get(side)) is not None]
                parts.append(f"S = {a['scale']:g} keeps them" + (f" (at that S: {', '.join(ends)})" if ends else
                                                                   ", nothing overflows at that S"))
        for line in _wrap([" ".join(parts)], width, 2):
            text.append(line + "\n")
    return text

"""Whether computing in a wider format fixes a form: each upcast row against the
plain row of the same form, input format and case (see families.derive for how the
upcast rows are computed and judged)."""

from __future__ import annotations

from ..engine.rows import Row, rows_of


def lost(counts: dict) -> int:
    """Points whose value is lost: NaN, ∞, or 0 where the exact value is normal."""
    return counts["nan"] + counts["inf"] + counts["zero"] - counts["zero_subnormal"]


def upcast_fixes(rows) -> list[dict]:
    """Per upcast row (compute format wider than the input's) with a plain row of the
    same form, input format and case: whether computing in the wider format fixes it.

    ``verdict``: ``fixed`` (no NaN, ∞ or normal value lost to 0 is left), ``partly``
    (fewer such points, none new of NaN or ∞), ``not fixed``, or ``nothing to fix``
    (the plain row had none); with both rows' counts and onsets."""
    rows = rows_of(rows)
    plain = {r.key: r for r in rows if r.key.compute_dtype == r.dtype and not r.loss_scale}
    out = []
    for r in rows:
        if r.key.compute_dtype == r.dtype:
            continue
        p = plain.get(r.key.replace(compute_dtype=r.dtype))
        if p is None:
            continue
        out.append(_verdict(p, r))
    return out


def _verdict(p: Row, r: Row) -> dict:
    before, after = lost(p.counts), lost(r.counts)
    if before == 0:
        verdict = "nothing to fix" if after == 0 else "not fixed"
    elif after == 0:
        verdict = "fixed"
    elif after < before and all(r.counts[c] <= p.counts[c] for c in ("nan", "inf")):
        verdict = "partly"
    else:
        verdict = "not fixed"
    keep = ("nan", "inf", "zero", "zero_subnormal")
    case = {k: getattr(r, k) for k in ("family", "form", "dtype", "target", "sweep", "classes", "target_class", "range")}
    return {**case, "quantity": r.quantity, "compute_dtype": r.compute_dtype, "verdict": verdict,
            "lost_before": before, "lost_after": after,
            "before": {c: p.counts[c] for c in keep}, "after": {c: r.counts[c] for c in keep},
            "onset_before": {c: [p.onset[c]["neg"], p.onset[c]["pos"]] for c in ("nan", "inf", "zero")},
            "onset_after": {c: [r.onset[c]["neg"], r.onset[c]["pos"]] for c in ("nan", "inf", "zero")}}

"""How forms rank against each other: the key the Use lines choose by, a form's worst
forward error beside the best form computing the same function, and a check's forms
beside the built-in forms of the same function."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from .grades import GRADE_WORDS, FormVerdict, grade
from .labels import short
from .wording import wrap as _wrap


FAILING = {"breaks": ("nan", "inf"), "lost": ("zero",)}


def _nearest(v: FormVerdict, f: str) -> float:
    """The smallest |onset| of the classes that give the form its grade in format `f`
    (∞ where none has an onset: vectors only)."""
    return nearest_onset(v, f)[0]


def nearest_onset(v: FormVerdict, f: str) -> tuple[float, dict | None]:
    """`_nearest`, and the row it lies on (None where there is none): its axis names
    the sweep it was found on."""
    classes = FAILING.get(v.grade_in(f), ())
    found = [(abs(o), r) for r in v.by_format[f] if r.get("axis") for c in classes for side in ("neg", "pos")
             if (o := r["onset"][c][side]) is not None
             and not (c == "zero" and (r.get("zero_onset_subnormal") or {}).get(side))]  # a flush is not a loss
    return min(found, key=lambda t: t[0], default=(float("inf"), None))


def _choice_key(v: FormVerdict, f: str) -> tuple:
    """How good a form is in one format, for choosing what to use: no NaN, ∞ or lost
    value first; among forms that fail, the one whose failures begin furthest from 0,
    then the fewest failing points; then the fewest inexact points (to the percent),
    the fewest zeros of any kind (to the tenth of a percent), then a library's form
    before a variant."""
    g = v.grade_in(f)
    rows = v.by_format[f]
    inexact = max(r["counts"]["inaccurate"] / r["points"] for r in rows)
    zeros = max(r["counts"]["zero"] / r["points"] for r in rows)
    failing = sum(r["counts"][c] for r in rows for c in FAILING.get(g, ())) / sum(r["points"] for r in rows)
    return ({"breaks": 2, "lost": 1}.get(g, 0), -_nearest(v, f) if g in FAILING else 0, round(failing, 3),
            round(inexact, 2), round(zeros, 3), not v.library)


def _case(r: dict) -> tuple:
    """The case a row measures, whatever its form: format, target or softmax case."""
    return (r.get("dtype"), r.get("compute_dtype"), r.get("target"), r.get("classes"), r.get("sweep"),
            r.get("target_class"), tuple(r.get("range") or ()))


def _computes(v: FormVerdict) -> str:
    """What the form computes (rows' `computes`; its quantity for rows without it)."""
    return next((r["computes"] for rs in v.by_format.values() for r in rs if r.get("computes")), v.quantity)


def _best_errors(vs: Sequence[FormVerdict]) -> dict:
    """Per (function computed, case), the row with the smallest worst forward error among
    the forms that do not fail there (no NaN, ∞ or lost normal value: a form that fails
    on a point has no error there to compare)."""
    best: dict = {}
    for v in vs:
        for rs in v.by_format.values():
            for r in rs:
                if r.get("max_ulp") is None or grade(r) in FAILING:
                    continue
                key = (_computes(v), _case(r))
                if key not in best or r["max_ulp"] < best[key][0]:
                    best[key] = (r["max_ulp"], v.name)
    return best


FORWARD_GAP = 4.0  # a form's worst error this many times the best form's (and above the tolerance) is named


def _forward_note(v: FormVerdict, best: dict, tolerance: float) -> str | None:
    """The form's worst forward error beside the best non-failing form computing the same
    function in the same case, where it is FORWARD_GAP times worse and beyond the
    tolerance (the case with the largest such error); with the points of that row that
    only the condition allowance passed (row.forward_error)."""
    found = []
    for f, rs in v.by_format.items():
        for r in rs:
            e = r.get("max_ulp")
            b, name = best.get((_computes(v), _case(r)), (None, None))
            if e is None or b is None or name == v.name or e <= tolerance or e < FORWARD_GAP * max(b, 1.0):
                continue
            found.append((e, f, r, b, name))
    if not found:
        return None
    e, f, r, b, name = max(found, key=lambda t: t[0])
    excused = (r.get("forward_error") or {}).get("excused", 0)
    case = f"y={r['target']:g}" if r.get("target") is not None else \
        f"K={r.get('classes')} {r.get('sweep') or ''} {r.get('target_class') or ''}".rstrip()
    return (f"worst forward error {e:.3g} ulp ({short(f)} {case}) against {b:.3g} for {name}"
            + (f"; {excused} point{'s' if excused != 1 else ''} ok only by the condition allowance" if excused else ""))


def _cases(v: FormVerdict, f: str) -> set:
    return {_case(r) for r in v.by_format.get(f, ())}


def _failure_key(v: FormVerdict, f: str, cases: set | None = None) -> tuple:
    """How a form fails in one format (on `cases` only, if given), from its counts alone
    (a built-in loss's zeros below eps and a user's, which has no such figure, weigh
    alike): NaN or ∞ first, then values lost to 0 where the exact value is normal; then
    the onset of those nearest 0 (further is better) and the share of failing points;
    last the share of values flushed to 0 where the exact value is subnormal."""
    rows = [r for r in v.by_format[f] if cases is None or _case(r) in cases]
    breaks = sum(r["counts"]["nan"] + r["counts"]["inf"] for r in rows)
    lost = sum(r["counts"]["zero"] - r["counts"].get("zero_subnormal", 0) for r in rows)
    classes = ("nan", "inf") if breaks else ("zero",) if lost else ()
    near = min((abs(o) for r in rows if r.get("axis") for c in classes for side in ("neg", "pos")
                if (o := r["onset"][c][side]) is not None
                and not (c == "zero" and (r.get("zero_onset_subnormal") or {}).get(side))), default=float("inf"))
    points = sum(r["points"] for r in rows)
    share = (breaks or lost) / points
    # last, values lost to 0 where the exact value is subnormal (a flush): no failure,
    # but a form without them is the better one, as its grade says ("clean")
    flushed = sum(r["counts"].get("zero_subnormal", 0) for r in rows) / points
    return (2 if breaks else 1 if lost else 0, -near if classes else 0, round(share, 3), round(flushed, 3))


def _against_builtin(mine: Sequence[FormVerdict], theirs: Sequence[FormVerdict], fmt_labels, width: int) -> Text:
    """Per quantity, the best built-in form computing the same function (swept alike in
    the same run) beside the best of the user's forms: better, as good, worse or mixed,
    by their failures (`_failure_key`), format by format."""
    text = Text()
    for quantity in ("loss", "grad"):
        own = [v for v in mine if v.quantity == quantity]
        built = [v for v in theirs if v.quantity == quantity]
        fmts = [f for f in fmt_labels if any(f in v.by_format for v in own) and any(f in v.by_format for v in built)]
        if not own or not built or not fmts:
            continue
        # like with like: on the cases both were swept on (a fix is swept only where its
        # original broke, the built-in forms on every case)
        mine_on = {f: set().union(*(_cases(v, f) for v in own)) for f in fmts}
        best = min(built, key=lambda v: tuple(_failure_key(v, f, mine_on[f]) for f in fmts
                                              if _cases(v, f) & mine_on[f]))
        side = []
        for f in fmts:
            pairs = [(_failure_key(v, f, common), _failure_key(best, f, common)) for v in own
                     if (common := _cases(v, f) & _cases(best, f))]
            if pairs:
                u, b = min(pairs)
                side.append((b > u) - (b < u))
        verdict = ("better than every form checked above" if all(x <= 0 for x in side) and any(x < 0 for x in side)
                   else "as good as the best form checked above" if not any(side)
                   else "worse than the best form checked above" if all(x >= 0 for x in side)
                   else "better in some formats, worse in others")
        grades = "; ".join(f"{short(f)} {GRADE_WORDS[best.grade_in(f)]}" for f in fmts)
        head = f"Built-in for the {quantity}, the same function"  # the line follows both Use lines: it names its own
        line = (f"{head}: {best.name} = {best.library.split(', ')[0]} ({grades}): {verdict}"
                if best.library else f"{head}: {best.name} ({grades}): {verdict}")
        if any(r.get("sweep") == "offset" and r["counts"]["inaccurate"] for f in fmts for r in best.by_format[f]):
            # two rules of one sweep: a finding to show, not to rank by (the ranking uses failures only)
            line += (". On the offset sweep the built-in rows count the rounding of c + 1 against the form; "
                     "the check's rows are judged at the vector the function receives, so their inexact "
                     "shares are not comparable there")
        for t in _wrap([line], width, 4):
            text.append(t + "\n", style="dim" if verdict.startswith(("worse", "as good")) else "bold")
    return text

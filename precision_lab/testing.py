"""For users' tests: fail a test where a loss breaks in low precision.

    from precision_lab.testing import assert_stable

    def test_my_loss_is_safe_in_bfloat16():
        assert_stable(my_loss, dtypes=("bfloat16",), targets=(0.0, 1.0))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .analysis.gates import GATE_CLASSES, count

CHECKED = ("nan", "inf", "zero_normal", "zero_subnormal", "inaccurate", "unresolved", "batch", "killed", "halved")
ALLOWABLE = GATE_CLASSES  # "zero" allows both kinds of zero


def assert_stable(fn: Callable | str, dtypes: Sequence[str] = ("bfloat16",), targets: Sequence[float] = (0.0, 1.0),
                  allow: Sequence[str] = ("inaccurate",), classes: Sequence[int] | None = None,
                  kwargs: dict | None = None, points: int | None = None, **check_args):
    """Check `fn` and its gradient (see ``precision_lab.check``) and raise AssertionError
    naming every row with points of a class not in `allow` (``inaccurate``, ``zero``
    (both kinds), ``zero_normal``, ``zero_subnormal`` (flushes only), ``inf``, ``nan``,
    ``unresolved``, ``batch`` (values that change with the batch), ``killed`` (a gradient
    a clip makes 0, see analysis.killed), ``halved`` (one it halves)): the row, the
    count, the onset and the cause. Returns the result when every row passes."""
    from .api import check

    unknown = [c for c in allow if c not in ALLOWABLE]
    if unknown:
        raise ValueError(f"Unknown class {unknown[0]!r} in allow; choose from {', '.join(ALLOWABLE)}.")
    allowed = set(allow) | ({"zero_normal", "zero_subnormal"} if "zero" in allow else set())
    result = check(fn, dtypes=dtypes, targets=targets, classes=classes, kwargs=kwargs, points=points, **check_args)
    problems = [_describe(r, c) for r in result.rows for c in CHECKED if c not in allowed and count(r, c)]
    if problems:
        raise AssertionError("not stable:\n" + "\n".join(problems))
    return result


def _describe(row: dict, cls: str) -> str:
    case = f"y={row['target']:g}" if row.get("target") is not None else \
        f"{row.get('sweep')} K={row.get('classes')} {row.get('target_class')}"
    line = f"  {row['form']} ({row['quantity']}) {row['dtype']} {case}: {count(row, cls)} of {row['points']} " \
           f"points {cls}"
    if cls in ("killed", "halved"):
        k = row["killed_gradient"]
        where = f"{cls} on {', '.join(f'[{lo:.6g}, {hi:.6g}]' for lo, hi in k[cls]['bands'])}"
        return line + f" by the clip at {', '.join(k['sources'])}: {where}"
    if cls == "batch":
        bd = row["batch_dependent"]
        where = f", nearest 0 at {bd['onset']}" if bd.get("onset") else f", vectors {bd.get('vectors')}"
        return line + f" (of {bd['checked']} re-run at batch sizes {bd['sizes']}){where}"
    onset = row["onset"].get("zero" if cls.startswith("zero") else cls)
    if cls in ("zero_normal", "zero_subnormal") and onset:  # the zero onset is one kind: name it only for that kind
        flush = row.get("zero_onset_subnormal") or {}
        onset = {**onset, **{s: None for s in ("neg", "pos") if flush.get(s) is not (cls == "zero_subnormal")}}
    if onset:
        sides = [f"{row['axis']} {'≤' if s == 'neg' else '≥'} {onset[s]:.6g} ({onset['method'][s]})"
                 for s in ("neg", "pos") if onset[s] is not None]
        line += ", from " + " and ".join(sides)
    for side, why in ((row.get("cause") or {}).get(cls) or {}).items():
        line += f"\n    cause at {why['z']:.6g}: {why['text']}"
    return line

"""Refinement: on a sampled axis, each onset and listed interval boundary narrowed
until its two sides are adjacent lattice values."""

from __future__ import annotations

import collections

import numpy as np

from .runner import Runner
from .runs import RunTracker

REFINE_POINTS = 15  # interior points per bracket and round: each round splits a bracket 16 ways


def boundaries(trackers: list[RunTracker]) -> set[tuple[int, int, int, int]]:
    """(form, code, inside, outside) brackets of every onset and listed interval."""
    out = set()
    for i, t in enumerate(trackers):
        for k in t.count:
            runs = list(t.listed_runs(k))
            if k in t.neg and t.neg[k].end < 0:
                runs.append(t.neg[k])
            if k in t.pos and t.pos[k].start >= 0:
                runs.append(t.pos[k])
            for r in runs:
                if r.prev is not None and r.prev + 1 < r.start:
                    out.add((i, k, r.start, r.prev))
                if r.next is not None and r.end + 1 < r.next:
                    out.add((i, k, r.end, r.next))
    return out


REFINE_IN_FLIGHT = 3  # refinement calls dispatched before the oldest is read


def refine(runner: Runner, trackers: list[RunTracker]) -> dict:
    """Narrow each bracket until inside and outside are adjacent lattice values.

    A call evaluates up to REFINE_POINTS evenly spaced interior points of each of
    several open brackets (one, plain bisection, when more brackets are open than a
    call has points) and each bracket keeps the first change of class met going out
    from its inside point, so a gap of 2**47 ordinals closes in 12 steps, not 47.
    Brackets advance independently: up to REFINE_IN_FLIGHT calls are in flight at
    once, each over brackets that no other call in flight holds, so the host prepares
    and reads calls while the device computes. Brackets of different forms or classes
    between the same two points (onsets that coincide) share their points: a call
    classifies every form at once. The result does not depend on the batch or the
    order of calls: each bracket converges to the same boundary.
    """
    todo = sorted(boundaries(trackers))
    state = {b: (b[2], b[3]) for b in todo}
    busy, flight = set(), collections.deque()
    while True:
        forms_of = {}  # open span -> forms with a bracket there
        for b in todo:
            if abs(state[b][0] - state[b][1]) > 1 and state[b] not in busy:
                forms_of.setdefault(state[b], set()).add(b[0])
        if forms_of and len(flight) < REFINE_IN_FLIGHT:
            # spans of the same forms together: a call runs only the kernels it needs
            free = sorted(forms_of, key=lambda sp: (min(forms_of[sp]), sorted(forms_of[sp]), sp))
            per = max(1, min(REFINE_POINTS, runner.refine // len(free)))
            points = {}
            for inside, outside in free[: runner.refine // per]:
                gap, q = outside - inside, min(abs(outside - inside) - 1, per)
                points[inside, outside] = [inside + gap * j // (q + 1) for j in range(1, q + 1)]
            needed = set().union(*(forms_of[sp] for sp in points))
            flight.append((points, runner.dispatch(np.array([o for p in points.values() for o in p], np.int64),
                                                   needed)))
            busy |= set(points)
            continue
        if not flight:
            break
        points, pending = flight.popleft()
        code = runner.classes(pending)
        busy -= set(points)
        at = dict(zip(points, np.cumsum([0] + [len(p) for p in points.values()])))
        for b in todo:
            if state[b] not in points:
                continue
            inside, outside = span = state[b]
            for j, o in enumerate(points[span]):
                if code[b[0], at[span] + j] != b[1]:
                    outside = o
                    break
                inside = o
            state[b] = (inside, outside)
    return {b: state[b][0] for b in todo}

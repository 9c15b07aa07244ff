"""Runs of one class along the swept sequence, streamed chunk by chunk.

A run is a maximal stretch of consecutive swept points with the same class. For
each failure class the tracker keeps the number of runs, the widest ones (to be
listed as intervals) and the runs nearest zero on each side (whose zero-ward
ends are the onsets). Each run remembers the ordinals of the swept points just
outside it, so that a sampled sweep can refine its boundaries to exact lattice
values afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..numerics.classify import CLASSES, CODE, FAILURES

TRACKED = FAILURES + ("unresolved",)  # classes whose runs are counted and listed

MAX_LISTED = 16


@dataclasses.dataclass
class Run:
    code: int
    start: int  # ordinal of the first point of the run
    end: int  # ordinal of its last point
    prev: int | None  # ordinal of the swept point before it (None at the lattice's end)
    next: int | None  # ordinal of the swept point after it


class RunTracker:
    """Runs of one form's classes along a stretch of the sequence.

    With `hold_first`, the first run is kept apart (`head`) rather than counted: the
    stretch is one share of a longer sequence, and that run may continue the previous
    share's last; `append` joins consecutive shares into the tracker of the whole.
    """

    def __init__(self, listed: int = MAX_LISTED, hold_first: bool = False):
        self.listed = listed
        self.hold_first = hold_first
        self.head: Run | None = None
        self.pending: Run | None = None
        self.last: int | None = None
        self.count = {CODE[c]: 0 for c in TRACKED}
        self.sides = {CODE[c]: [0, 0] for c in TRACKED}  # runs with points below zero, at or above it
        self.widest: dict[int, list[Run]] = {CODE[c]: [] for c in TRACKED}
        self.neg: dict[int, Run] = {}
        self.pos: dict[int, Run] = {}

    def feed(self, codes: np.ndarray, first: int, ordinals: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Take the next stretch of the sequence, points first.., and return its count per class.

        `ordinals(positions)` gives the ordinals of sequence positions; it is asked
        only for the ends of runs and their neighbours.
        """
        n = len(codes)
        if n == 0:
            return np.zeros(len(CLASSES), np.int64)
        starts = np.concatenate(([0], np.flatnonzero(codes[1:] != codes[:-1]) + 1))
        return self.feed_runs(codes[starts], starts, n, first, ordinals)

    def feed_runs(self, codes: np.ndarray, starts: np.ndarray, n: int, first: int,
                  ordinals: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """`feed` for a stretch of n points given as its runs: each run's class and
        position of its first point (the first at 0, increasing)."""
        starts = np.asarray(starts, np.int64)
        cut = starts[1:]
        ends = np.concatenate((cut - 1, [n - 1]))
        per_class = np.bincount(codes, weights=ends - starts + 1, minlength=len(CLASSES))
        o_start, o_end = ordinals(first + starts), ordinals(first + ends)
        o_prev, o_next = ordinals(first + starts[1:] - 1), ordinals(first + ends[:-1] + 1)
        run = Run(int(codes[0]), int(o_start[0]), int(o_end[0]), self.last, None)
        if len(starts) > 1:
            run.next = int(o_next[0])
        if self.pending is not None:
            if self.pending.code == run.code:
                run.start, run.prev = self.pending.start, self.pending.prev
            else:
                self.pending.next = int(o_start[0])
                self._finish([self.pending])
        if len(starts) == 1:
            self.pending = run
        else:
            self._finish([run])
            mid = slice(1, len(starts) - 1)
            self._finish_many(codes[mid], o_start[mid], o_end[mid], o_prev[:-1], o_next[1:])
            self.pending = Run(int(codes[-1]), int(o_start[-1]), int(o_end[-1]), int(o_prev[-1]), None)
        self.last = int(o_end[-1])
        return per_class.astype(np.int64)

    def extend(self, code: int, o_first: int, o_last: int) -> None:
        """Take the next stretch of the sequence when it is all one class (what `feed`
        does with a uniform stretch, in constant time): its first and last points'
        ordinals."""
        if self.pending is not None and self.pending.code == code:
            self.pending.end = o_last
        else:
            if self.pending is not None:
                self.pending.next = o_first
                self._finish([self.pending])
            self.pending = Run(code, o_first, o_last, self.last, None)
        self.last = o_last

    def close(self) -> None:
        if self.pending is not None:
            self._finish([self.pending])
            self.pending = None

    def _finish_many(self, code, start, end, prev, nxt) -> None:
        failing = np.flatnonzero(code > 0)
        for k in np.unique(code[failing]):
            idx = failing[code[failing] == k]
            self.count[int(k)] += len(idx)
            self.sides[int(k)][0] += int((start[idx] < 0).sum())
            self.sides[int(k)][1] += int((end[idx] >= 0).sum())
            span = end[idx].astype(np.float64) - start[idx].astype(np.float64)
            keep = idx[np.argsort(-span, kind="stable")[: self.listed]]
            negs, poss = idx[start[idx] < 0], idx[end[idx] >= 0]
            picked = set(keep.tolist())
            if len(negs):
                picked.add(int(negs[-1]))
            if len(poss):
                picked.add(int(poss[0]))
            runs = [Run(int(k), int(start[i]), int(end[i]), int(prev[i]), int(nxt[i])) for i in sorted(picked)]
            self._absorb(runs, count=False)

    def _finish(self, runs: list[Run]) -> None:
        if self.hold_first and self.head is None and runs:
            self.head, runs = runs[0], runs[1:]
        self._absorb([r for r in runs if r.code > 0], count=True)

    def append(self, other: RunTracker) -> None:
        """Take `other`, the tracker (with `hold_first`) of the stretch that follows
        this one's, as if this tracker had been fed that stretch too."""
        first = other.head if other.head is not None else other.pending
        if first is None:
            return
        first = dataclasses.replace(first, prev=self.last)
        if self.pending is not None and self.pending.code == first.code:
            first.start, first.prev = self.pending.start, self.pending.prev
        elif self.pending is not None:
            self.pending.next = first.start
            self._finish([self.pending])
        if other.head is None:  # the other stretch is one run: it stays open
            self.pending, self.last = first, other.last
            return
        self._finish([first])
        for k in other.count:
            self.count[k] += other.count[k]
            self.sides[k] = [a + b for a, b in zip(self.sides[k], other.sides[k])]
            self.widest[k].extend(other.widest[k])
            self._trim(k)
            if k in other.neg:
                self.neg[k] = other.neg[k]
            if k not in self.pos and k in other.pos:
                self.pos[k] = other.pos[k]
        self.pending, self.last = other.pending, other.last

    def _absorb(self, runs: list[Run], count: bool) -> None:
        for r in runs:
            if count:
                self.count[r.code] += 1
                self.sides[r.code][0] += r.start < 0
                self.sides[r.code][1] += r.end >= 0
            w = self.widest[r.code]
            w.append(r)
            if len(w) > 4 * self.listed:
                self._trim(r.code)
            if r.start < 0:
                self.neg[r.code] = r
            if r.end >= 0 and r.code not in self.pos:
                self.pos[r.code] = r

    def _trim(self, code: int) -> None:
        """Keep the `listed` widest runs, the first of equal width first: a total
        order, so the runs kept do not depend on when runs were trimmed (or on how
        the sequence was split into shares)."""
        w = self.widest[code]
        w.sort(key=lambda r: (float(r.start) - float(r.end), r.start))
        del w[self.listed:]

    def listed_runs(self, code: int) -> list[Run]:
        self._trim(code)
        return sorted(self.widest[code], key=lambda r: r.start)

"""Which operations of a user's loss need a wider format: the smallest set of source
lines that, computed wide (``families.widen``: as a user's edit would, values passed
between widened lines stay wide), leaves the loss and its gradient with no NaN, no ∞
and no normal value lost to 0 (with a tolerance, no error above it either) at every
value of the format in the range, for every target. Each candidate set is verified
by the same classification as a sweep: the set's compiled loss and gradient
(``jit(vmap(...))`` over every value of the range in one call) against the exact
values of the function as written (a cast is the identity on the reals, so every set
has the same exact values, computed once).

The search: every widenable line first (if that fails, no policy in the wide format
suffices over the range); then a greedy removal, each step verified, which leaves a
set from which no single line can be dropped; then, where the number of smaller sets
allows, every smaller set, which proves the set is also the smallest. Beside it, on
the same points: the function as written, everything wide, and the operations on
PyTorch autocast's float32 list and on TensorFlow's mixed-precision deny list
(mapped onto JAX primitives, see `AUTOCAST_FLOAT32` and `TF_AMP_DENY`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ..families import rewrites, widen
from ..families.base import Case
from ..families.sigmoid import check_targets
from ..families.user import validate
from ..families.user_forms import family as user_family
from ..numerics import formats
from ..numerics.classify import CODE, classify, per_point

# torch.autocast (CUDA) ops that autocast to float32, as the JAX primitives they lower to
AUTOCAST_FLOAT32 = frozenset({"acos", "asin", "cosh", "sinh", "tan", "erf_inv", "exp", "expm1", "log", "log1p",
                              "rsqrt", "pow", "integer_pow", "reduce_sum", "reduce_prod", "cumsum", "cumprod",
                              "cumlogsumexp"})
# TensorFlow's auto mixed precision deny list (Exp, Expm1, Log, Log1p, Pow, Sum, Mean,
# Softmax, LogSoftmax, the softmax cross-entropies), as JAX primitives
TF_AMP_DENY = frozenset({"exp", "expm1", "log", "log1p", "pow", "integer_pow", "reduce_sum"})
MAX_SUBSETS = 64  # smaller sets tried by the exhaustive search, at most


@dataclasses.dataclass
class Measured:
    """One candidate on every point and target: failing points of the loss and the
    gradient (NaN, ∞, normal values lost, errors above the tolerance) and the widest
    clean interval around 0."""

    lines: tuple[str, ...]
    counts: dict  # case -> quantity -> {nan, inf, lost, above}
    clean: list  # [lo, hi]: the widest interval around 0 with no failing point (None: 0 fails)

    @property
    def failing(self) -> int:
        return sum(sum(q.values()) for t in self.counts.values() for q in t.values())

    def to_json(self) -> dict:
        return {"lines": list(self.lines), "failing": self.failing, "counts": self.counts, "clean": self.clean}


class _Prover:
    """The exact values of the function as written at every point of the range (once),
    and the verification of a candidate against them. The cases: each target y of a
    binary function; each sweep (margin, offset) and true class (top, other) of a
    multiclass one (`classes`), whose inputs are the softmax family's vectors."""

    def __init__(self, fn, name, kwargs, fmt: formats.Format, wide, targets, value_range, tolerance,
                 gradient: bool = True, classes: int | None = None):
        self.fmt, self.wide, self.tolerance, self.gradient = fmt, wide, tolerance, gradient
        fam = user_family(fn, name, kwargs, classes)
        self.loss = fam.forms[0].kernel
        targets = check_targets(targets) if classes is None else targets
        first = targets[0] if classes is None else fam.target_of(Case(classes=classes, sweep="margin",
                                                                     target_class="top"))
        validate(fam, fmt, first, getattr(getattr(fn, "__code__", None), "co_filename", None))
        lo, hi = value_range if value_range else (-fmt.max, fmt.max)
        o_lo, o_hi = (int(formats.to_ordinal(fmt.cast(v), fmt)) for v in (lo, hi))
        if o_hi - o_lo + 1 > 1 << 22:
            raise InputError(f"`policy` proves every value of the range; {fmt.name} has {o_hi - o_lo + 1} there "
                             "(give a format of 16 bits or less, or a narrower --range).")
        self.xs = formats.from_ordinal(np.arange(o_lo, o_hi + 1, dtype=np.int64), fmt)
        self.x64 = self.xs.astype(np.float64)
        self.cases = {}  # name -> (kernel inputs, label)
        if classes is None:
            for t in targets:
                self.cases[f"y={t:g}"] = (self.xs, fam.label(t, fmt))
        else:
            for sweep in ("margin", "offset"):
                for tc in ("top", "other"):
                    code = fam.target_of(Case(classes=classes, sweep=sweep, target_class=tc))
                    vectors = np.asarray(fam.inputs(jnp.asarray(self.xs), fam.case(code)))
                    self.cases[f"{sweep} {tc}"] = (vectors, fam.label(code, fmt))
        forms = fam.forms if gradient else fam.forms[:1]
        self.exact = {c: [f.reference.values(fmt, x, label) for f in forms] for c, (x, label) in self.cases.items()}
        self.unresolved = {c: int(sum(np.isnan(e).reshape(len(self.xs), -1).any(axis=1).sum()
                                      for e, _ in self.exact[c])) for c in self.cases}
        x0, label0 = next(iter(self.cases.values()))
        self.units = widen.units(self.loss, x0[0], label0)
        self.seen: dict = {}
        self.evaluations = 0

    def measure(self, lines: frozenset, pick: Callable[[str, str], bool] | None = None,
                key: str | None = None) -> Measured:
        key = key or lines
        if key in self.seen:
            return self.seen[key]
        pick = pick or (lambda src, prim: src in lines)
        f = widen.widened(self.loss, pick, self.wide)
        progs = [jax.jit(jax.vmap(f, (0, None)))] + ([jax.jit(jax.vmap(jax.grad(f), (0, None)))] if self.gradient
                                                      else [])  # a hand-written gradient: its value only
        counts, bad = {}, np.zeros(len(self.xs), bool)
        for c, (x, label) in self.cases.items():
            counts[c] = {}
            for q, prog, (exact, sens) in zip(("loss", "grad"), progs, self.exact[c]):
                out = np.asarray(prog(x, label))
                code, ulp, sub, _ = per_point(*classify(out, exact, sens, self.fmt, 4.0, np), tuple(range(1, out.ndim)),
                                               self.fmt)
                failing = {"nan": code == CODE["nan"], "inf": code == CODE["inf"],
                           "lost": (code == CODE["zero"]) & ~np.asarray(sub, bool)}
                if self.tolerance is not None:
                    failing["above"] = np.isin(code, (CODE["ok"], CODE["inaccurate"])) & (ulp > self.tolerance)
                counts[c][q] = {k: int(v.sum()) for k, v in failing.items()}
                for v in failing.values():
                    bad |= v
        self.evaluations += 1
        m = Measured(tuple(sorted(lines)), counts, _clean(self.x64, bad))
        self.seen[key] = m
        return m


def _clean(x: np.ndarray, bad: np.ndarray) -> list | None:
    """The widest interval of `x` (sorted) around 0 with no bad point."""
    zero = np.searchsorted(x, 0.0)
    neg = np.flatnonzero(bad[:zero])
    pos = np.flatnonzero(bad[zero:])
    lo = neg[-1] + 1 if len(neg) else 0
    hi = zero + pos[0] - 1 if len(pos) else len(x) - 1
    return None if lo > hi else [float(x[lo]), float(x[hi])]


def _planned(n: int) -> int:
    """Sets the search verifies at most, for n candidate lines."""
    return 2 + n + MAX_SUBSETS + (2 ** n if n <= 6 else 0)


def search(prover: _Prover, progress: Callable[[str], None] | None = None, max_hours: float = 0.0) -> dict:
    """The verified policy (greedy, then exhaustive where it fits), the trade-off and
    the side-by-side table; see the module docstring. After the first two sets, the
    time of the rest is estimated from theirs; beyond `max_hours` (0: no limit) the
    search is refused with that estimate."""
    t0 = time.perf_counter()
    cands = [u.source for u in prover.units if u.widenable]
    every = frozenset(cands)
    written, wide = prover.measure(frozenset()), prover.measure(every)
    each = (time.perf_counter() - t0) / 2
    eta = each * (_planned(len(cands)) - 2)
    if max_hours and eta > max_hours * 3600:
        took = f"{eta:.0f} s" if eta < 120 else f"{eta / 60:.0f} minutes" if eta < 7200 else f"{eta / 3600:.1f} hours"
        raise InputError(f"The search over {len(cands)} lines would take up to about {took} ({each:.2g} s a set), "
                         f"beyond the limit of {max_hours:g} hours (--max-hours).")

    def say(text):
        if progress:
            left = max(0.0, eta - (time.perf_counter() - t0))
            progress(f"{text} (at most {left:.0f} s left)")

    best, kind = None, None
    if wide.failing == 0:
        kept = list(cands)
        for i, line in enumerate(cands):
            say(f"greedy: without {line} ({i + 1}/{len(cands)})")
            trial = frozenset(kept) - {line}
            if prover.measure(trial).failing == 0:
                kept.remove(line)
        best, kind = prover.measure(frozenset(kept)), "greedy"
        if sum(math.comb(len(cands), k) for k in range(len(kept))) <= MAX_SUBSETS:
            smaller = [frozenset(s) for k in range(len(kept)) for s in itertools.combinations(cands, k)]
            for i, s in enumerate(smaller):
                say(f"exhaustive: {i + 1}/{len(smaller)} smaller sets")
                if prover.measure(s).failing == 0:
                    best = prover.measure(s)
                    break
            kind = "exhaustive"
    if len(cands) <= 6:  # few enough lines: every set, for the trade-off
        for k in range(len(cands) + 1):
            for s in itertools.combinations(cands, k):
                prover.measure(frozenset(s))
        if best is not None and kind == "greedy":
            kind = "exhaustive"
    tradeoff = {}
    for key, m in prover.seen.items():
        if isinstance(key, frozenset):  # sets of lines (not the autocast and AMP rows)
            k = len(m.lines)
            if m.clean is not None and (k not in tradeoff or _width(m.clean) > _width(tradeoff[k].clean)):
                tradeoff[k] = m
    autocast = prover.measure(frozenset(), lambda s, p: p in AUTOCAST_FLOAT32, key="autocast")
    amp = prover.measure(frozenset(), lambda s, p: p in TF_AMP_DENY, key="tf_amp")
    table = [("as written", written), (f"all in {np.dtype(prover.wide).name}", wide)]
    if best is not None:
        table.append(("minimal policy", best))
    table += [("torch autocast float32 list", autocast), ("TF AMP deny list", amp)]
    return {"units": [u.to_json() for u in prover.units],
            "policy": None if best is None else {"lines": list(best.lines), "search": kind,
                                                 "smallest": kind == "exhaustive", "minimal": True},
            "table": [{"name": n, **m.to_json()} for n, m in table],
            "tradeoff": [{"size": k, "lines": list(m.lines), "clean": m.clean} for k, m in sorted(tradeoff.items())],
            "cost": {"evaluations": prover.evaluations, "seconds": round(time.perf_counter() - t0, 2)}}


def _width(iv) -> float:
    return -1.0 if iv is None else min(-iv[0], iv[1])


def policy(fn, name: str, kwargs: dict | None, dtype: str, wide: str, targets, value_range, tolerance,
           progress=None, gradient: bool = True, classes: int | None = None, max_hours: float = 0.0) -> dict:
    """The policy of one format (see the module docstring), as a JSON-ready dict.
    `gradient` False: only the function's own value is proven (a hand-written gradient
    kernel, whose own derivative is of no use)."""
    fmt, wfmt = formats.get(dtype), formats.get(wide)
    if wfmt.bits <= fmt.bits:
        raise InputError(f"--wide {wide} is not wider than {dtype}.")
    prover = _Prover(fn, name, kwargs, fmt, wfmt.dtype, targets, value_range, tolerance, gradient, classes)
    out = {"dtype": fmt.name, "wide": wfmt.name, "cases": list(prover.cases), "classes": classes,
           "axis": "z" if classes is None else "m or c", "tolerance": tolerance,
           "proven": ["loss", "grad"] if gradient else ["value"],
           "range": [float(prover.x64[0]), float(prover.x64[-1])], "points": len(prover.xs),
           "outside": int(2 * fmt.max_ordinal + 1 - len(prover.xs)), "unresolved": prover.unresolved}
    out.update(search(prover, progress, max_hours))
    x0, label0 = next(iter(prover.cases.values()))
    out["rewrites"] = list({(r.pattern, r.source): r.to_json()
                            for r in rewrites.find(prover.loss, x0[0], label0)}.values())
    return out

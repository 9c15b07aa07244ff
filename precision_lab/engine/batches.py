"""Batch dependence: does a row's compiled program give the same values whatever
else is in its call?

A sweep calls each kernel as users compile it, `jit(vmap(kernel))`, on calls of
`programs.batch_size` points. XLA's code, and with it a value, can change with the
batch: its size (vectorised loops and their remainders, fusions that form only
beyond some size) and a point's position in it. So for every row, its telling
points (each class's onsets, the ends of the class intervals it lists, and a spread
of the lattice) are run again:

* at the sweep's batch size, first in the call and last in it;
* in a program of one point (batch 1, each point alone);
* at a second batch size, `SECOND` points a call.

A point whose value differs bit for bit between any two of these is *batch
dependent*: a finding about the compiled program, not noise. The row records the
batch sizes compared, how many points were checked and how many depend on the
batch, the points nearest 0 on each side, and a few examples with every value.
"""

from __future__ import annotations

import jax
import numpy as np

from ..numerics import formats
from . import modes
from .programs import batch_size, default_device, inputs_program, kernel_program, labels

SECOND = 8  # points per call of the second batch size
SPREAD = 17  # lattice points spread evenly over the row's axis
MAX_POINTS = 64  # telling points per row at most
EXAMPLES = 3
EXAMPLE_ENTRIES = 16  # an example of a wider vector lists only the entries that differ, this many at most


def telling_points(row, axis) -> np.ndarray:
    """Ordinals of the row's onsets, of the ends of its listed class intervals, and a
    spread over its axis; distinct, nearest 0 first, at most MAX_POINTS."""
    fmt = axis.fmt
    xs = []
    for cls in (row.onset or {}).values():
        xs += [cls.get(s) for s in ("neg", "pos")]
    for cls in (row.intervals or {}).values():
        for lo, hi in cls.get("listed", [])[:8]:
            xs += [lo, hi]
    xs = np.array([x for x in xs if x is not None and np.isfinite(x)], np.float64)
    ords = formats.to_ordinal(fmt.cast(xs), fmt).astype(np.int64) if len(xs) else np.zeros(0, np.int64)
    spread = np.asarray(axis.ordinals(np.unique(np.linspace(0, len(axis) - 1, SPREAD).round().astype(np.int64))),
                        np.int64)
    ords = np.unique(np.concatenate([ords, spread]))
    ords = ords[np.argsort(np.abs(ords), kind="stable")]
    return ords[:MAX_POINTS]


def _inputs(family, fmt, ords, target, device, size: int) -> np.ndarray:
    """The kernel inputs at `ords`, made by the sweep's own inputs program (calls of
    `size` points), so that only the kernels run at other batch sizes."""
    inputs = inputs_program(family, fmt, family.case(target))
    out = []
    for i in range(0, len(ords), size):
        chunk = ords[i:i + size]
        call = np.concatenate([chunk, np.full(size - len(chunk), chunk[-1], np.int64)])
        out.append(np.asarray(inputs(jax.device_put(call, device)))[:len(chunk)])
    return np.concatenate(out)


def _calls(program, x: np.ndarray, labels: np.ndarray, size: int, at_end: bool, device=None) -> np.ndarray:
    """The kernel at inputs `x` and their `labels` (laid out like the points), `size`
    points a call: in order from the start of each call (filled after with the call's
    last point), or ending each call (the first of them last in it, filled before).
    With `device`, the arguments are committed to it, as a structured sweep's are (so
    its program of `size` points is the sweep's own, not one compiled again for
    uncommitted arguments)."""
    calls, counts = [], []
    for i in range(0, len(x), size):
        parts = [x[i:i + size], labels[i:i + size]]
        n = len(parts[0])
        laid = []
        for a in parts:
            fill = np.repeat(a[-1:], size - n, axis=0)
            laid.append(np.concatenate([fill, a[::-1]]) if at_end else np.concatenate([a, fill]))
        calls.append(laid)
        counts.append(n)
    if device is not None:  # placed in one transfer, every call dispatched, then all read
        calls = jax.device_put(calls, device)
    got = jax.device_get([program(*laid) for laid in calls])
    return np.concatenate([g[::-1][:n] if at_end else g[:n] for g, n in zip(got, counts)])


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise equality per point (NaNs equal whatever their payload; −0 ≠ +0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    eq = ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))
    return eq.reshape(len(eq), -1).all(axis=1)


def measure(family, form, row, axis, target, device, mode: modes.Mode) -> dict:
    """The row's `batch_dependent` figures (see the module docstring)."""
    fmt = axis.fmt
    ords = telling_points(row, axis)
    b = batch_size(family)
    second = SECOND if b > SECOND else 2 * b
    x = _inputs(family, fmt, ords, target, device, b)
    lab = labels(family.label(target, fmt), len(x))
    program = kernel_program(form.kernel, mode)
    runs = {f"{b} first": _calls(program, x, lab, b, False, device),
            f"{b} last": _calls(program, x, lab, b, True, device),
            "1": _calls(program, x, lab, 1, False, device),
            f"{second}": _calls(program, x, lab, second, False, device)}
    base = next(iter(runs.values()))
    differs = np.zeros(len(ords), bool)
    for v in runs.values():
        differs |= ~_same(base, v)
    x = formats.from_ordinal(ords, fmt).astype(np.float64)
    bad = x[differs]
    examples = [{"x": float(x[i]), **_example(runs, i)} for i in np.flatnonzero(differs)[:EXAMPLES]]
    return {"sizes": [b, 1, second], "positions": ["first", "last"], "checked": int(len(ords)),
            "count": int(differs.sum()),
            # sampled: the nearest of the points re-run, not a scan; nearer ones may depend on the batch too
            "onset": {"neg": _nearest(bad[bad < 0]), "pos": _nearest(bad[bad >= 0]), "method": "sampled"},
            "examples": examples}


def _example(runs: dict, i: int) -> dict:
    """Every run's values at point `i`; of a vector wider than EXAMPLE_ENTRIES, only
    the entries that differ between runs (`entries`: their indices), the first
    EXAMPLE_ENTRIES of them, and how many differ in all (`differing`)."""
    values = {k: np.asarray(v[i], np.float64).ravel() for k, v in runs.items()}
    base = next(iter(values.values()))
    if base.size <= EXAMPLE_ENTRIES:
        return {"values": {k: np.asarray(v[i], np.float64).tolist() for k, v in runs.items()}}
    differs = np.zeros(base.size, bool)
    for v in values.values():
        differs |= ~(((v == base) & (np.signbit(v) == np.signbit(base))) | (np.isnan(v) & np.isnan(base)))
    entries = np.flatnonzero(differs)[:EXAMPLE_ENTRIES]
    return {"differing": int(differs.sum()), "entries": entries.tolist(),
            "values": {k: v[entries].tolist() for k, v in values.items()}}


def _nearest(v: np.ndarray) -> float | None:
    return None if not len(v) else float(v[np.argmin(np.abs(v))])


def measure_vectors(kernel, z: np.ndarray, t: np.ndarray, codes: np.ndarray, mode: modes.Mode, size: int,
                    worst=()) -> dict:
    """`batch_dependent` of a row of a vector sweep (random or given logits): its telling
    vectors (the first of each class that fails, the worst listed, and a spread over the
    vectors; at most MAX_POINTS) run again, each with its own label, at the sweep's
    batch `size` (first and last in the call) and alone. There is no axis: `onset` is
    None, and examples name the vector's index."""
    n = len(z)
    picks = [int(np.argmax(codes == c)) for c in np.unique(codes) if c != 0]
    picks += [int(i) for i in worst] + list(np.unique(np.linspace(0, n - 1, SPREAD).round().astype(np.int64)))
    idx = np.array(list(dict.fromkeys(picks))[:MAX_POINTS], np.int64)
    x, lab = np.asarray(z)[idx], np.asarray(t)[idx]
    lab = lab.astype(np.int32) if lab.ndim == 1 else lab
    program = kernel_program(kernel, mode)
    # the sweep's batch (first and last in a call) and one vector alone: the programs the
    # structured sweeps at K compiled, so no vector sweep's kernel compiles a size of its own
    device = default_device()  # committed, as the structured rows call it
    runs = {f"{size} first": _calls(program, x, lab, size, False, device),
            f"{size} last": _calls(program, x, lab, size, True, device),
            "1": _calls(program, x, lab, 1, False, device)}
    base = next(iter(runs.values()))
    differs = np.zeros(len(idx), bool)
    for v in runs.values():
        differs |= ~_same(base, v)
    examples = [{"vector": int(idx[i]), **_example(runs, i)} for i in np.flatnonzero(differs)[:EXAMPLES]]
    return {"sizes": [size, 1], "positions": ["first", "last"], "checked": int(len(idx)),
            "count": int(differs.sum()), "onset": None, "checked_vectors": [int(i) for i in idx],
            "vectors": [int(i) for i in idx[differs]][:16],
            "examples": examples}

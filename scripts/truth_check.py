"""Re-derive a sample of a sweep's figures independently of precision_lab's engine.

    python scripts/truth_check.py SWEEP.json [--rows N] [--points P] [--seed S] [--full]

For N rows drawn at random from the JSON of `precision-lab sweep --json` (axis rows
whose mode this process can run), every checked point gets its exact value from
mpmath at 200 bits (formulas written here, not the package's references), its
computed value from the form's kernel jitted alone, `jax.jit(jax.vmap(kernel))`, at
the row's batch size, and its class from a classifier written here (rounding to the
format and ULP distances on exact integers).

What it proves, for the sampled rows and points only:
  (1) onsets: each onset value has its stated class; for the methods exhaustive,
      scanned and refined, the lattice value next to it toward zero does not
      (a true boundary); for `sampled` only the class is checked;
  (2) profile: P points of the row's range (any lattice value on an exhaustive
      axis, points of the sweep's own sample otherwise) are no worse than the worst
      class of their profile bin, so an all-ok bin holds only ok points;
  (3) --full, exhaustive sigmoid rows: every lattice value is reclassified and the
      row's `counts` compared exactly (slow: 65536 mpmath evaluations a row).
What it does not prove: anything about rows or points not drawn, that an onset is
the failure nearest zero beyond its neighbour (between samples, for `refined`), or
max_ulp, intervals and causes. Kernels are the package's own (they are the subject).
Exits 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import mpmath as mp
import numpy as np
from rich.console import Console
from rich.table import Table

import precision_lab  # noqa: F401  (turns on x64)
from precision_lab.families import softmax as pl_softmax
from precision_lab.numerics.sampling import Axis

mp.mp.prec = 200
ORDER = ("ok", "inaccurate", "zero", "inf", "nan")
DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float64": np.float64,
          "float8_e4m3fn": ml_dtypes.float8_e4m3fn, "float8_e5m2": ml_dtypes.float8_e5m2}
UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


class Fmt:
    """A binary format: ordinals are positions on its lattice, ±0 one value."""

    def __init__(self, name):
        self.name, self.dt = name, np.dtype(DTYPES[name])
        fi = ml_dtypes.finfo(self.dt)
        self.bits, self.mant, self.emin, self.eps = self.dt.itemsize * 8, int(fi.nmant), int(fi.minexp), float(fi.eps)
        self.max_ord = int(np.asarray(fi.max, self.dt).view(UINT[self.bits]))
        with np.errstate(over="ignore", invalid="ignore"):
            self.has_inf = bool(np.isinf(np.float64(np.inf).astype(self.dt).astype(np.float64)))

    def ordinal(self, v):
        u = int(np.asarray(v, self.dt).view(UINT[self.bits]))
        mag = u & ((1 << (self.bits - 1)) - 1)
        return -mag if u >> (self.bits - 1) else mag

    def value(self, o):
        u = abs(o) | ((1 << (self.bits - 1)) if o < 0 else 0)
        return np.asarray(u, UINT[self.bits]).view(self.dt)[()]

    def round(self, x: mp.mpf) -> int:
        """Ordinal of x rounded to nearest even (subnormals kept); ±(max+1) beyond range."""
        if x == 0:
            return 0
        if mp.isinf(x):
            return (self.max_ord + 1) * (1 if x > 0 else -1)
        sign, man, exp, bc = x._mpf_
        e = max(exp + bc - 1, self.emin)  # binade of |x|, at least the normal minimum
        k = e - self.mant  # quantum there
        if exp + bc < k:  # below half the quantum: rounds to 0
            n = 0
        elif exp >= k:
            n = man << (exp - k)
        else:
            sh = k - exp
            n, rem, half = man >> sh, man & ((1 << sh) - 1), 1 << (sh - 1)
            n += rem > half or (rem == half and n & 1)
        mag = min(((e - self.emin) << self.mant) + n, self.max_ord + 1)
        return -mag if sign else mag

    def ulp_exp(self, o):  # ulp of the value at ordinal o is 2**ulp_exp
        return max(abs(o) >> self.mant, 1) + self.emin - 1 - self.mant


def classify(c, f: mp.mpf, s: mp.mpf, fmt: Fmt, tol: float, floor: str):
    """Class of computed c (format scalar) against exact f with sensitivity s."""
    cf = float(np.asarray(c, fmt.dt).astype(np.float64))
    if cf != cf:
        return "nan"
    o_c, o_f = fmt.ordinal(c), fmt.round(f)
    if np.isinf(cf) and o_c != o_f:
        return "inf"
    limit = mp.mpf(tol)
    if floor != "none":
        limit = max(limit, tol * mp.mpf(fmt.eps) / 2 * abs(s) / mp.ldexp(1, fmt.ulp_exp(o_f)))
    dist, whole = abs(o_c - o_f), int(mp.floor(limit))  # an integer distance exceeds L iff it exceeds floor(L)
    if o_c == 0 and o_f != 0:
        # a 0 is excused only where the exact value is normal and the condition part of
        # the allowance (not the bare tolerance) covers all of it: |f|/ulp(f) ≤ L
        normal = abs(o_f) >= (1 << fmt.mant)
        significand = (abs(o_f) & ((1 << fmt.mant) - 1)) | (1 << fmt.mant)
        return "ok" if normal and whole > int(tol) and whole >= significand else "zero"
    return "inaccurate" if dist > whole else "ok"


# ------------------------------------------------------------------ exact values, mpmath

def sigmoid_exact(form, quantity, z, y):
    """[(f, S)] for the sigmoid family at logit z, target y (both exact)."""
    z, y = mp.mpf(z), mp.mpf(y)
    s, c = 1 / (1 + mp.exp(-z)), 1 / (1 + mp.exp(z))
    d = (1 - y) - c if y >= 0.5 else s - y  # σ − y without losing the tail
    tail = mp.log1p(mp.exp(-abs(z)))
    sp, spn = max(z, 0) + tail, max(-z, 0) + tail
    az, sc = abs(z), s * c
    if quantity == "loss":
        if form == "mse":
            return [(d * d / 2, az * abs(d) * sc)]
        return [(y * spn + (1 - y) * sp, az * abs(d))]
    if form == "mse_chain":
        return [(d * sc, az * abs(sc * (sc + d * (c - s))))]
    if form == "dloss_dyhat":
        pos, neg = (y / s if y else mp.mpf(0)), ((1 - y) / c if y != 1 else mp.mpf(0))
        return [(neg - pos, az * (pos * c + neg * s))]
    if form == "dsigmoid_dz":
        return [(sc, az * sc * abs(c - s))]
    return [(d, az * sc)]  # σ − y: every other gradient, dmse_dyhat


def softmax_exact(form, quantity, m, k, t):
    """[(f_j, S_j)] per output entry at z = (m, 0, …, 0), true class t (0 or 1)."""
    m = mp.mpf(m)
    if m >= 0:
        e = mp.exp(-m)
        den = 1 + (k - 1) * e
        p0, om0, pj, om1 = 1 / den, (k - 1) * e / den, e / den, (1 + (k - 2) * e) / den
        lse = m + mp.log1p((k - 1) * e)
        lse_m = mp.log1p((k - 1) * e)
    else:
        e = mp.exp(m)
        den = e + (k - 1)
        p0, om0, pj, om1 = e / den, (k - 1) / den, 1 / den, (e + k - 2) / den
        lse = mp.log(k - 1) + mp.log1p(e / (k - 1))
        lse_m = lse - m
    am = abs(m)
    p = [p0] + [pj] * (k - 1)
    dp = [p0 * om0] + [-pj * p0] * (k - 1)  # ∂p_j/∂z_0 = p_j(δ_j0 − p_0)
    eta = [om0 if t == 0 else -p0] + [(om1 if (t == 1 and j == 1) else -pj) for j in range(1, k)]  # δ_tj − p_j
    if quantity == "loss":
        return [(lse_m if t == 0 else lse, am * abs(eta[0]))]  # ∂/∂z_0 = p_0 − δ_t0
    if form == "dloss_dpt":
        return [(-1 / p[t], am * abs(eta[0] / p[t]))]
    if form == "softmax_jacobian_row":
        return [(p[t] * eta[j], am * abs(dp[t] * eta[j] - p[t] * dp[j])) for j in range(k)]
    return [(-eta[j], am * abs(dp[j])) for j in range(k)]  # p − onehot(t)


# ------------------------------------------------------------------ computed values, kernels jitted alone

_PROGRAMS = {}


def kernel_values(row, fmt: Fmt, xs):
    """The row's kernel at the format values xs, in calls of exactly row['batch'] points."""
    k = row.get("classes") or 1
    key = (row["family"], row["form"], fmt.name, k, row.get("sweep"))
    if key not in _PROGRAMS:
        if row["family"] == "sigmoid":
            kern, build = precision_lab.FAMILIES["sigmoid"].form(row["form"]).kernel, None
        else:
            kern = pl_softmax.family(k).form(row["form"]).kernel
            if row["sweep"] == "offset":
                build = jax.jit(jax.vmap(lambda x: x + jnp.zeros(k, x.dtype).at[0].set(1)))
            else:
                build = jax.jit(jax.vmap(lambda x: jnp.zeros(k, x.dtype).at[0].set(x)))
        _PROGRAMS[key] = (jax.jit(jax.vmap(kern, (0, None))), build)
    prog, build = _PROGRAMS[key]
    label = (jnp.asarray(row["target_in_format"], fmt.dt) if row["family"] == "sigmoid"
             else jnp.int32(pl_softmax.TARGET_CLASSES[row["target_class"]]))
    b, out = row["batch"], []
    xs = np.asarray(xs, fmt.dt)
    for i in range(0, len(xs), b):
        chunk = xs[i:i + b]
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - len(chunk))])  # pad by repeating
        x = jnp.asarray(chunk)
        res = np.asarray(prog(build(x) if build else x, label))
        out.extend(res[: min(b, len(xs) - i)])
    return out


def classes_at(row, fmt: Fmt, tol, xs):
    """Worst class per point of the format values xs, as this script derives it."""
    computed = kernel_values(row, fmt, xs)
    result = []
    for x, c in zip(xs, computed):
        x = float(np.asarray(x, fmt.dt).astype(np.float64))
        if row["family"] == "sigmoid":
            exact = sigmoid_exact(row["form"], row["quantity"], x, row["target_in_format"])
        else:
            m = x if row["sweep"] == "margin" else 1.0
            exact = softmax_exact(row["form"], row["quantity"], m, row["classes"],
                                  pl_softmax.TARGET_CLASSES[row["target_class"]])
        entries = np.asarray(c, fmt.dt).reshape(-1)
        codes = [ORDER.index(classify(ci, f, s, fmt, tol, row["floor"])) for ci, (f, s) in zip(entries, exact)]
        result.append(ORDER[max(codes)])
    return result


# ------------------------------------------------------------------ checks

def check_row(row, tol, n_points, rng, full):
    """[(check, expected, got, checks, disagreements)] for one row."""
    fmt, out = Fmt(row["dtype"]), []
    # (1) onsets and, where the method claims a boundary, their neighbour toward zero
    pts, plan = [], []
    for cls, o in row["onset"].items():
        for side in ("neg", "pos"):
            v, method = o[side], o["method"][side]
            if v is None:
                continue
            ov = fmt.ordinal(v)
            plan.append((cls, side, method, len(pts), ov))
            pts.append(ov)
            if method in ("exhaustive", "scanned", "refined") and ov != 0:
                pts.append(ov + (1 if ov < 0 else -1))
    got = classes_at(row, fmt, tol, [fmt.value(o) for o in pts]) if pts else []
    for cls, side, method, i, ov in plan:
        v = float(fmt.value(ov).astype(np.float64))
        out.append((f"onset {cls} {side} ({method}) at {v:.9g}", cls, got[i], 1, int(got[i] != cls)))
        if method in ("exhaustive", "scanned", "refined") and ov != 0:
            nb = pts[i + 1]
            crossing = nb == 0 and side == "neg" and row["onset"][cls]["pos"] == 0.0  # run holds 0
            ok = got[i + 1] != cls or crossing
            out.append((f"  neighbour toward 0: {float(fmt.value(nb).astype(np.float64)):.9g}",
                        f"not {cls}", got[i + 1], 1, int(not ok)))
    # (2) random points against their profile bin
    prof = row["profile"]
    bins = [(fmt.ordinal(lo), fmt.ordinal(hi), c) for lo, hi, c in zip(prof["lo"], prof["hi"], prof["class"])
            if lo is not None]
    if row["exhaustive"]:
        ords = [rng.randint(bins[0][0], bins[-1][1]) for _ in range(n_points)]
    else:
        axis = next((a for a in (Axis(_pl_fmt(fmt), p, row["_seed"]) for p in (row["points"], row["points"] - 1))
                     if len(a) == row["points"]), None)
        if axis is None:  # unknown sample: the bins' end points are sampled points
            ords = [b[j] for b in bins for j in (0, 1)]
        else:
            ords = [int(o) for o in axis.ordinals(np.array([rng.randrange(len(axis)) for _ in range(n_points)]))]
    got = classes_at(row, fmt, tol, [fmt.value(o) for o in ords])
    worse = []
    for o, g in zip(ords, got):
        b = next((b for b in bins if b[0] <= o <= b[1]), None)
        if b is not None and ORDER.index(g) > ORDER.index(b[2]):
            worse.append(f"{float(fmt.value(o).astype(np.float64)):.9g}: {g} in a {b[2]} bin")
    out.append((f"profile: {len(ords)} points vs their bin", "none worse", f"{len(worse)} worse"
                + (f" ({worse[0]})" if worse else ""), len(ords), len(worse)))
    # (3) exact recount of an exhaustive sigmoid row
    if full and row["exhaustive"] and row["family"] == "sigmoid":
        every = [fmt.value(o) for o in range(-fmt.max_ord, fmt.max_ord + 1)]
        got = classes_at(row, fmt, tol, every)
        counts = {c: got.count(c) for c in ORDER}
        want = {c: row["counts"][c] for c in ORDER}
        out.append(("counts, every lattice value", str(want), str(counts), 1, int(counts != want)))
    return out


def _pl_fmt(fmt: Fmt):
    return precision_lab.FORMATS[fmt.name]


def runnable(row) -> bool:
    if row.get("axis") is None:
        return False
    if row.get("mode") == "strict":
        return "--xla_allow_excess_precision=false" in os.environ.get("XLA_FLAGS", "")
    return row.get("mode", "jit") == "jit"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--rows", type=int, default=12)
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="recount every point of exhaustive sigmoid rows")
    args = ap.parse_args(argv)
    with open(args.json) as fh:
        doc = json.load(fh)
    tol = float(doc["meta"]["tolerance_ulp"])
    rng = random.Random(args.seed)
    rows = [r for r in doc["rows"] if runnable(r)]
    rows = rng.sample(rows, min(args.rows, len(rows)))
    table = Table("row", "check", "expected", "got", "verdict", title=f"truth check of {args.json}")
    n = bad = 0
    for r in rows:
        r = dict(r, _seed=int(doc["meta"].get("seed", 0)))
        name = " ".join(str(x) for x in (r["form"], r["dtype"], r.get("target_in_format") if r["family"] == "sigmoid"
                                         else f"{r['sweep']} K={r['classes']} {r['target_class']}"))
        for check, expected, got, checks, wrong in check_row(r, tol, args.points, rng, args.full):
            n, bad = n + checks, bad + wrong
            table.add_row(name, check, str(expected), str(got), "[red]DISAGREES[/red]" if wrong else "ok")
            name = ""
    console = Console(width=160)
    console.print(table)
    console.print(f"{n} checks, {bad} disagreements")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

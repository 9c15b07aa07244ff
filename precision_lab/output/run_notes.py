"""The summary's closing lines about the run as a whole: how a check's exact values
were found (its rows' tiers), and which rows depend on the batch (engine.batches)."""

from __future__ import annotations

from .wording import shortest as _num


def exact(rows) -> str | None:
    """How a check's exact values were found, over its rows (their `tiers`), or None
    where no row is a user's function."""
    tiers = [r["tiers"] for r in rows if r.get("tiers")]
    if not tiers:
        return None
    n = {k: sum(t.get(k, 0) for t in tiers) for k in ("interval", "exact", "rewritten", "float64", "unresolved")}
    parts = [f"{n['interval']} by float64 intervals", f"{n['exact']} on arb balls",
             f"{n['rewritten']} by the identity rewrite (the same real function, intervals or balls)"]
    if n["float64"]:
        parts.append(f"{n['float64']} against the function run in float64 (no exact rule)")
    return (f"Exact values, over every row's points: {', '.join(parts)}; {n['unresolved']} unresolved "
            "(undefined on the reals or not settled; where the computed value is NaN the rows count it as NaN: "
            "docs/check.md says what each tier proves).")


def batch(rows) -> str | None:
    """One line on the rows whose compiled program gives other values at another batch
    size or position (see engine.batches), or None."""
    hit = [r for r in rows if (r.get("batch_dependent") or {}).get("count")]
    if not hit:
        return None
    names = []
    for r in hit[:4]:
        bd = r["batch_dependent"]
        if bd.get("onset") is None:  # a vector sweep: vectors, no axis
            names.append(f"{r.key.name()} ({bd['count']} of the {bd['checked']} vectors re-run)")
            continue
        at = " / ".join(_num(bd["onset"][s], r) for s in ("neg", "pos") if bd["onset"][s] is not None)
        names.append(f"{r.key.name()} ({bd['count']} of the {bd['checked']} points re-run; nearest 0: {at})")
    more = f" and {len(hit) - 4} more" if len(hit) > 4 else ""
    own = list(dict.fromkeys(r["batch_dependent"]["sizes"][0] for r in hit))  # each row's sweep batch
    others = list(dict.fromkeys(n for r in hit for n in r["batch_dependent"]["sizes"][1:]))
    if len(own) == 1:
        compared = f"at batch sizes {', '.join(map(str, [own[0], *others]))}"
        figures = f"the sweep's batch ({own[0]})"
    else:  # rows of several batch sizes (K = 10 and K = 1000, say): each row's own
        compared = (f"between the sweep's batch ({' or '.join(map(str, own))}, by row) and batch sizes "
                    f"{', '.join(map(str, others))}")
        figures = "each row's sweep batch (its `batch`)"
    return (f"Batch dependence: {len(hit)} rows give other values {compared}, or at the end of a call: "
            + "; ".join(names) + more + f". The figures above are {figures}.")

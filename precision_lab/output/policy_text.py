"""A precision policy on the screen: the lines to widen (the user's code, with the
cast each needs), the side-by-side table, the trade-off, and what else to do."""

from __future__ import annotations

import linecache
import os

from rich.text import Text

from ..numerics import formats
from .wording import shortest, wrap


def _interval(iv, fmt) -> str:
    if iv is None:
        return "none (0 fails)"
    lo, hi = iv
    if -lo >= fmt.max and hi >= fmt.max:
        return "every value"
    return f"[{shortest(lo, {'dtype': fmt.name})}, {shortest(hi, {'dtype': fmt.name})}]"


def _code(source: str, source_file: str | None) -> str:
    """The user's line `source` ("file.py:N") as written, where its file is known."""
    name, _, line = source.rpartition(":")
    if not source_file or os.path.basename(source_file) != name or not line.isdigit():
        return ""
    return linecache.getline(source_file, int(line)).strip()


def text(result: dict, width: int = 100) -> Text:
    out = Text()
    for p in result["formats"]:
        fmt, wide = formats.get(p["dtype"]), p["wide"]
        cases = ", ".join(p["cases"]) + (f" (K = {p['classes']})" if p.get("classes") else "")
        head = (f"policy · {result['function']} · {p['dtype']} with lines in {wide} · {cases} · proven on "
                f"{p['points']} values, {_interval(p['range'], fmt)}"
                + (f" ({p['outside']} values of the format outside)" if p["outside"] else ""))
        for line in wrap([head], width, 0):
            out.append(line + "\n", style="bold")
        pol = p["policy"]
        clean_as_written = p["table"][0]["failing"] == 0
        if clean_as_written:
            out.append("Nothing to widen: the function as written has no NaN, ∞ or lost value over this "
                       "range.\n", style="bold green")
        elif pol is None:
            out.append(f"No set of lines computed in {wide} is free of NaN, ∞ and lost values over this range.\n",
                       style="bold red")
        else:
            how = ("exhaustive search: no smaller set passes" if pol["smallest"] else
                   "greedy search: no line of it can be dropped; smaller sets not all tried")
            out.append(f"Minimal policy: {len(pol['lines'])} line{'s' if len(pol['lines']) != 1 else ''} in "
                       f"{wide} ({how}); cast each line's inputs with .astype(jnp.{wide}) and keep what it "
                       f"passes to the next widened line in {wide}:\n", style="bold green")
            for src in pol["lines"]:
                out.append(f"  {src}  {_code(src, result.get('source_file'))}\n")
            if p.get("edit"):
                out.append("Your function with these casts:\n", style="bold")
                for line in p["edit"].splitlines():
                    out.append(f"    {line}\n")
            if pol["lines"] and len(pol["lines"]) == len([u for u in p["units"] if u["widenable"]]):
                out.append(f"  as a jmp policy: jmp.get_policy('params={p['dtype']},compute={wide},"
                           f"output={p['dtype']}')\n", style="dim")
        whole = [u for u in p["units"] if not u["widenable"]]
        if whole:
            calls = ", ".join(f"{'/'.join(u['primitives'])} at {u['source']}" for u in whole)
            for line in wrap([f"Kept in {p['dtype']} as units: {calls} (a custom-derivative call such as "
                              "jax.nn.softplus or logsumexp: its rule runs as written, and a cast outside it "
                              "cannot reach inside)."], width, 0):
                out.append(line + "\n", style="dim")
        name_w = max(len(r["name"]) for r in p["table"]) + 2
        out.append(f"{'':{name_w}}{'failing (loss + grad)':>22}  clean around 0\n", style="bold")
        for r in p["table"]:
            out.append(f"{r['name']:{name_w}}{r['failing']:>22}  {_interval(r['clean'], fmt)}\n",
                       style="green" if r["failing"] == 0 else "")
        trade = "; ".join(f"{t['size']} line{'s' if t['size'] != 1 else ''}"
                          f"{' (' + ', '.join(t['lines']) + ')' if t['lines'] and t['size'] <= 4 else ''}: "
                          f"{_interval(t['clean'], fmt)}" for t in p["tradeoff"])
        for line in wrap([f"Widest clean interval by lines widened: {trade}."], width, 0):
            out.append(line + "\n")
        if p["rewrites"] and not clean_as_written:
            rw = "; ".join(f"{w['pattern']} → {w['replacement']} at {w['source'].split(' ')[0]}"
                           for w in p["rewrites"])
            for line in wrap([f"Beyond that, the rewrites `check` proposes: {rw}."], width, 0):
                out.append(line + "\n", style="dim")
        out.append(f"({p['cost']['evaluations']} sets verified in {p['cost']['seconds']:g} s)\n\n", style="dim")
    return out

"""`policy`: the lines of a loss that must compute in a wider format, proven at every
value of the format, and the edit it stands for."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from precision_lab import api, cli
from precision_lab.families import widen
from precision_lab.numerics import formats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER = os.path.join(ROOT, "tests", "user", "losses.py")
sys.path.insert(0, os.path.join(ROOT, "tests", "user"))
import losses  # noqa: E402  the users' functions themselves

BF16 = formats.get("bfloat16")


def _bce_clip_in_float32(z, y):
    """bce_clip as a user edits it: both lines in float32, the result back in bfloat16."""
    z32, y32 = z.astype(jnp.float32), y.astype(jnp.float32)
    p = jnp.clip(jax.nn.sigmoid(z32), 1e-7, 1 - 1e-7)
    return (-(y32 * jnp.log(p) + (1 - y32) * jnp.log(1 - p))).astype(z.dtype)


def _every(fn, y):
    x = formats.lattice(BF16)
    y = BF16.dtype.type(y)
    loss = np.asarray(jax.jit(jax.vmap(fn, (0, None)))(x, y), np.float64)
    grad = np.asarray(jax.jit(jax.vmap(jax.grad(fn), (0, None)))(x, y), np.float64)
    return x, loss, grad


def test_widening_every_line_is_the_hand_edit_bit_for_bit():
    """The widened function (every line of bce_clip in float32) is what the edit above
    computes, loss and gradient, at every bfloat16 value and both targets; widening
    nothing is the function as written."""
    wide = widen.widened(losses.bce_clip, lambda src, prim: True, jnp.float32)
    none = widen.widened(losses.bce_clip, lambda src, prim: False, jnp.float32)
    for y in (0.0, 1.0):
        for a, b in ((wide, _bce_clip_in_float32), (none, losses.bce_clip)):
            _, la, ga = _every(a, y)
            _, lb, gb = _every(b, y)
            assert np.array_equal(la, lb, equal_nan=True) and np.array_equal(ga, gb, equal_nan=True)


@pytest.fixture(scope="module")
def clip_policy():
    import precision_lab as pl

    return pl.policy(f"{USER}:bce_clip", dtypes=["bfloat16"])  # the package's name for api.policy


def test_the_clipped_bce_needs_both_lines_in_float32(clip_policy):
    """bce_clip in bfloat16: the clip's 1 − 1e-7 rounds to 1, so log(1 − p) is −∞ from
    z = 5.5625. Its two lines (79: the clip, 80: the logs) in float32 leave no NaN, ∞
    or lost value at any bfloat16 value, y = 0 and 1; neither line alone does, so the
    exhaustive search proves the pair the smallest set. Checked here without the tool's
    classification: the hand edit has no NaN or ∞ anywhere, and 80368 failing points
    as written and 64312 under the autocast list are the tool's own counts."""
    (p,) = clip_policy["formats"]
    assert p["policy"] == {"lines": ["losses.py:79", "losses.py:80"], "search": "exhaustive", "smallest": True,
                           "minimal": True}
    table = {r["name"]: r for r in p["table"]}
    assert table["minimal policy"]["failing"] == table["all in float32"]["failing"] == 0
    assert table["as written"]["failing"] == 80368 and table["torch autocast float32 list"]["failing"] == 64312
    assert table["as written"]["clean"] == [-6.21875, 5.53125]
    for y in (0.0, 1.0):
        _, loss, grad = _every(_bce_clip_in_float32, y)
        assert np.isfinite(loss).all() and np.isfinite(grad).all()
    sizes = {t["size"]: t for t in p["tradeoff"]}
    assert sizes[1]["clean"] == [-6.21875, 6.21875] and sizes[2]["clean"] == [-BF16.max, BF16.max]
    assert p["points"] == 2 * BF16.max_ordinal + 1 and p["outside"] == 0


def test_no_policy_saves_the_naive_bce_and_the_output_says_what_does():
    """naive_bce (σ, then log(1 − σ)) in bfloat16: even every line in float32 is NaN from
    z = 16.75, where float32's σ(z) rounds to 1 (the issue's 'whole upcasting is not
    enough'): no policy, the widest clean interval [−17.25, 16.625], and the log_sigmoid
    rewrites named. With the range [−16, 16] (the logits a model produces) both lines
    are the policy."""
    (p,) = api.policy(f"{USER}:naive_bce", dtypes=["bfloat16"])["formats"]
    assert p["policy"] is None
    assert {r["name"]: r["clean"] for r in p["table"]}["all in float32"] == [-17.25, 16.625]
    x, loss, grad = _every(lambda z, y: losses.naive_bce(z.astype(jnp.float32), y.astype(jnp.float32)).astype(
        z.dtype), 0.0)
    assert not np.isfinite(grad[x.astype(np.float64) == 16.75]).all()  # the hand-upcast gradient breaks there
    assert [w["replacement"] for w in p["rewrites"]] == ["jax.nn.log_sigmoid(x)", "jax.nn.log_sigmoid(−x)"]
    (q,) = api.policy(f"{USER}:naive_bce", dtypes=["bfloat16"], value_range=(-16.0, 16.0))["formats"]
    assert q["policy"]["lines"] == ["losses.py:8", "losses.py:9"] and q["outside"] > 0


def test_the_command_prints_the_lines_and_writes_json(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert cli.main(["policy", f"{USER}:bce_clip", "--dtypes", "bfloat16", "--json", str(out), "--no-color"]) == 0
    text = capsys.readouterr().out
    assert "Minimal policy: 2 lines in float32 (exhaustive search: no smaller set passes)" in " ".join(text.split())
    assert "p = jnp.clip(jax.nn.sigmoid(z), 1e-7, 1 - 1e-7)" in text  # the user's line, as written
    doc = json.loads(out.read_text())
    assert doc["schema"] == "precision_lab.policy/1" and doc["formats"][0]["policy"]["lines"] == [
        "losses.py:79", "losses.py:80"]
    for argv, why in ((["--wide", "bfloat16"], "is not wider than bfloat16"),
                      (["--classes", "3"], "return"),  # a binary function given --classes: one sentence
                      (["--targets", "2"], "outside [0, 1]")):
        assert cli.main(["policy", f"{USER}:bce_clip", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0], (argv, err)
    # the stable BCE over [1, 4] (near 0 its gradient is 0 at subnormal z, which XLA reads as 0)
    assert cli.main(["policy", f"{USER}:stable_bce", "--range", "1,4", "--no-color"]) == 0
    text = capsys.readouterr().out
    assert "Nothing to widen: the function as written has no NaN, ∞ or lost value over this range." in text
    assert "Beyond that" not in text


def test_readme_policy_table_rows_for_the_chain_product_and_keras():
    """Two rows of the README's table of built-in policies (scripts/policy_table.py),
    re-run: bce_naive_chain in bfloat16 has no policy (all in float32 is clean only on
    [−87, 16.625]); Keras's clipped BCE needs both its lines."""
    from precision_lab.analysis import policy
    from precision_lab.families import sigmoid

    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("<!-- policies -->")[1].split("<!-- /policies -->")[0]
    for name in ("bce_naive_chain", "bce_keras"):
        form = sigmoid.FAMILY.form(name)
        p = policy.policy(form.kernel, name, None, "bfloat16", "float32", [0.0, 1.0], None, None,
                          gradient=form.quantity == "loss")
        table = {r["name"]: r for r in p["table"]}
        row = next(line for line in block.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {table['as written']['failing']} |" in row
        if p["policy"] is None:
            assert table["all in float32"]["clean"] == [-87.0, 16.625] and "none suffices" in row
        else:
            assert p["policy"]["lines"] == ["sigmoid.py:67", "sigmoid.py:68"] and "`sigmoid.py:67`" in row


def test_a_multiclass_policy_counts_what_check_counts():
    """ce_naive (exp, then exp/Σexp, then −log of the true class's entry) at K = 4 in
    float16, margins and offsets in [−16, 16], true class on top and not: the policy's
    row for the function as written fails at exactly the points `check` counts (NaN,
    ∞ and normal values lost, loss and gradient, all four cases), through the sweep
    engine rather than the prover. All in float32 widens the clean interval, and the
    log_softmax rewrite is named."""
    (p,) = api.policy(f"{USER}:ce_naive", classes=4, dtypes=["float16"], value_range=(-16.0, 16.0))["formats"]
    r = api.check(f"{USER}:ce_naive", classes=[4], dtypes=["float16"], value_range=(-16.0, 16.0), causes=False)
    lost = sum(row["counts"]["nan"] + row["counts"]["inf"] + row["counts"]["zero"] - row["counts"]["zero_subnormal"]
               for row in r.rows if row["form"] == "ce_naive")
    table = {t["name"]: t for t in p["table"]}
    assert p["cases"] == ["margin top", "margin other", "offset top", "offset other"]
    assert table["as written"]["failing"] == lost > 0
    written, wide = table["as written"]["clean"], table["all in float32"]["clean"]
    assert wide[0] <= written[0] and wide[1] >= written[1] and wide != written
    assert [w["replacement"] for w in p["rewrites"]] == ["jax.nn.log_softmax(x)"]


@pytest.mark.parametrize("name, lines", [("bce_clip", ["losses.py:79", "losses.py:80"]),
                                          ("naive_bce", ["losses.py:8"]),
                                          ("focal_prob", ["losses.py:85", "losses.py:86", "losses.py:87"])])
def test_the_edited_source_computes_what_was_proven(name, lines):
    """The policy printed as the user's code with its casts (output.policy_edit), run
    as Python: bit for bit the widened function the search proved, loss and gradient,
    at every bfloat16 value, y = 0 and 1."""
    from precision_lab.output import policy_edit

    fn = getattr(losses, name)
    text = policy_edit.edited(fn, lines, "float32")
    assert ".astype(jnp.float32)" in text
    scope = dict(vars(losses))
    exec(compile(text, f"<{name} edited>", "exec"), scope)
    proven = widen.widened(fn, lambda src, prim: src in lines, jnp.float32)
    for y in (0.0, 1.0):
        _, la, ga = _every(scope[name], y)
        _, lb, gb = _every(proven, y)
        assert np.array_equal(la, lb, equal_nan=True) and np.array_equal(ga, gb, equal_nan=True), y


def test_a_search_beyond_the_time_limit_is_refused_with_its_estimate(capsys):
    """The first two sets time the rest: at 2 lines the search verifies at most
    2 + 2 + 64 + 4 sets; a limit far below that is refused in one sentence, exit 2."""
    assert cli.main(["policy", f"{USER}:bce_clip", "--max-hours", "0.000001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "The search over 2 lines would take up to about" in err[0]
    assert "beyond the limit of 1e-06 hours (--max-hours)" in err[0]

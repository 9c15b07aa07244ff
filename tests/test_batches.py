"""Batch dependence: a row's telling points run again at other batch sizes and
positions (engine.batches), counted, shown and gateable."""

import jax
import jax.numpy as jnp
import numpy as np

import precision_lab as pl
from precision_lab.analysis import gates
from precision_lab.engine import batches, modes


def _alone_differs(kernel):
    """A toy mode whose program gives other values in a call of one point: the batch
    dependence the engine must find (x + 2**-10 there, in float16: ≥ 1 ulp below 1)."""
    def run(x, label):
        out = jax.vmap(kernel)(x, label)
        return out + jnp.asarray(2.0**-10 if x.shape[0] == 1 else 0.0, out.dtype)

    return jax.jit(run)


def test_values_that_change_in_a_call_of_one_point_are_counted_shown_and_gated():
    mode = modes.register(modes.Mode("alone", "other values in a call of one point", compile=_alone_differs))
    try:
        r = pl.sweep("sigmoid", dtypes=["float16"], targets=[0.0], forms=["bce_fused"], mode="alone",
                     value_range=(-1.0, 1.0))
        bd = r.rows[0].batch_dependent
        assert bd["sizes"] == [262144, 1, 8] and bd["checked"] >= batches.SPREAD
        # σ(z) ∈ [0.27, 0.73] on [−1, 1]: 2**-10 moves every value there (spacing ≤ 2**-11)
        assert bd["count"] == bd["checked"]
        ex = bd["examples"][0]
        assert ex["values"]["1"] == ex["values"]["262144 first"] + 2.0**-10
        assert bd["onset"]["neg"] is not None and bd["onset"]["pos"] == 0.0 and bd["onset"]["method"] == "sampled"
        assert gates.failures(r.rows, gates.parse("batch")) and "Batch dependence: 1 rows" in r.summary(200)
    finally:
        modes.MODES.pop(mode.name)


def test_a_program_that_ignores_the_batch_has_no_batch_dependent_point():
    r = pl.sweep("sigmoid", dtypes=["float16"], targets=[1.0], forms=["bce_fused", "bce_naive_chain"],
                 value_range=(-16.0, 16.0))
    for row in r.rows:
        assert row.batch_dependent["count"] == 0 and row.batch_dependent["checked"] >= batches.SPREAD
    assert not gates.failures(r.rows, gates.parse("batch")) and "Batch dependence" not in r.summary(200)


def test_telling_points_include_every_onset_and_nearest_zero_first():
    r = pl.sweep("sigmoid", dtypes=["bfloat16"], targets=[1.0], forms=["bce_naive_chain"])
    row = r.rows[0]
    from precision_lab.numerics import formats, sampling

    axis = sampling.axis_for(formats.get("bfloat16"), None, 0)
    pts = formats.from_ordinal(batches.telling_points(row, axis), axis.fmt).astype(np.float64)
    assert {-87.5, 5.5625} <= set(pts.tolist())  # the NaN onsets (README)
    assert np.all(np.diff(np.abs(pts)) >= 0) and len(pts) <= batches.MAX_POINTS


def test_readme_batch_dependence_example():
    """README: bfloat16 ce_fused at K = 10 (offset sweep, true class not on top) gives
    its other entries as 0.08544921875 in calls of the sweep's 8192 vectors and
    0.0849609375 alone or 8 to a call (the exact 1/(e + 9) = 0.085333… rounds to the
    former)."""
    r = pl.sweep("softmax", dtypes=["bfloat16"], classes=[10], forms=["ce_fused"], sweeps=["offset"],
                 target_classes=["other"])
    bd = r.rows[0].batch_dependent
    assert bd["sizes"] == [8192, 1, 8] and bd["count"] > 0
    at0 = next(e for e in bd["examples"] if e["x"] == 0.0)["values"]
    assert at0["8192 first"][2] == at0["8192 last"][2] == 0.08544921875
    assert at0["1"][2] == at0["8"][2] == 0.0849609375


def test_a_vector_sweep_row_measures_its_batch_dependence():
    """Given logits (64 vectors, K = 10, bfloat16) swept through the softmax family: each
    row re-runs its telling vectors, each with its own label, at the sweep's batch
    (first and last in a call), alone and 8 a call. Re-derived here with the kernel
    jitted alone: the same vectors, the same three layouts, the same count of vectors
    whose values differ bit for bit (NaNs equal, −0 ≠ +0)."""
    from precision_lab.families import softmax
    from precision_lab.numerics import formats

    rng = np.random.default_rng(3)
    z = (rng.normal(size=(64, 10)) * 6).astype(np.float32)
    t = rng.integers(0, 10, size=64).astype(np.int32)
    r = pl.sweep("softmax", dtypes=["bfloat16"], logits=z, labels=t, forms=["ce_naive", "ce_fused"], causes=False)
    rows = [row for row in r.rows if row.get("sweep") == "logits"]
    assert rows
    zb = z.astype(formats.get("bfloat16").dtype)
    for row in rows:
        bd = row["batch_dependent"]
        idx = np.array(bd["checked_vectors"])
        x, lab = zb[idx], t[idx]
        run = jax.jit(jax.vmap(softmax.KERNELS[row["form"]]))
        size = bd["sizes"][0]

        def layout(n, at_end):
            out = []
            for i in range(0, len(x), n):
                cx, ct = x[i:i + n], lab[i:i + n]
                pad = n - len(cx)
                if at_end:
                    cx = np.concatenate([np.repeat(cx[-1:], pad, 0), cx[::-1]])
                    ct = np.concatenate([np.repeat(ct[-1:], pad, 0), ct[::-1]])
                    out.append(np.asarray(run(cx, ct), np.float64)[::-1][:n - pad])
                else:
                    cx, ct = np.concatenate([cx, np.repeat(cx[-1:], pad, 0)]), np.concatenate([ct, np.repeat(ct[-1:], pad, 0)])
                    out.append(np.asarray(run(cx, ct), np.float64)[:n - pad])
            return np.concatenate(out).reshape(len(x), -1)

        one = jax.jit(jax.vmap(softmax.KERNELS[row["form"]]))  # alone: a program of one vector and its label
        alone = np.concatenate([np.asarray(one(x[i:i + 1], lab[i:i + 1]), np.float64) for i in range(len(x))])
        runs = [layout(size, False), layout(size, True), alone.reshape(len(x), -1)]
        same = lambda a, b: (((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))).all(axis=1)  # noqa: E731
        differs = ~np.all([same(runs[0], v) for v in runs[1:]], axis=0)
        assert bd["count"] == int(differs.sum()) and bd["onset"] is None, row["form"]
        assert bd["vectors"] == [int(i) for i in idx[differs]][:16]


def test_an_example_of_a_wide_vector_lists_only_the_entries_that_differ():
    """Of a vector wider than EXAMPLE_ENTRIES an example gives the entries that differ
    between runs (NaNs equal, −0 ≠ +0) and their indices; a narrow one every entry."""
    a = np.zeros((2, 40))
    a[1, 7] = np.nan
    b = a.copy()
    b[1, 3], b[1, 30] = 1.5, -0.0
    ex = batches._example({"8 first": a, "1": b}, 1)
    assert ex["entries"] == [3, 30] and ex["differing"] == 2
    assert ex["values"] == {"8 first": [0.0, 0.0], "1": [1.5, -0.0]}
    narrow = batches._example({"8 first": a[:, :4], "1": b[:, :4]}, 1)
    assert "entries" not in narrow and narrow["values"]["1"] == [0.0, 0.0, 0.0, 1.5]

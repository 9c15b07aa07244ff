"""`check` is a family put through the same pipeline as `sweep`: what sweep offers
(checkpoints, exhaustive ranges, modes, devices) works for a user's function too."""

import json
import pickle

import pytest

import precision_lab as pl
from precision_lab.numerics.classify import CLASSES
from precision_lab import cli
from precision_lab.engine import checkpoints
from precision_lab.numerics import formats
from precision_lab.output.writers import jsonable

USER = "tests/user/losses.py"
F32 = formats.get("float32")


def _figures(result) -> list[dict]:
    """Each row's JSON, less the reference tiers' rates (seconds differ from run to run)."""
    rows = json.loads(json.dumps(jsonable(result.to_json()["rows"]), allow_nan=False))
    for r in rows:
        for k in [k for k in (r.get("tiers") or {}) if k.endswith("_per_s")]:
            del r["tiers"][k]
    return rows


def test_a_checkpointed_check_interrupted_inside_a_pass_resumes_to_the_uninterrupted_rows(tmp_path, monkeypatch):
    """A multiclass check's float16 margin row at K = 8 takes four calls of 16384 vectors;
    interrupted after the second save (inside that pass) and rerun with the same file,
    it gives the rows of a check that was never interrupted, and the file is gone at the
    end; the file of one function is refused for another."""
    args = dict(classes=[8], dtypes=["float16"], sweeps=["margin"], target_classes=["top"], causes=False)
    whole = _figures(pl.check(f"{USER}:ce_take", **args))
    monkeypatch.setattr(checkpoints, "SAVE_EVERY_S", 0.0)
    write, writes = checkpoints.Checkpoint._write, [0]

    def interrupted(self):
        write(self)
        writes[0] += 1
        if writes[0] == 2:
            raise KeyboardInterrupt

    path = tmp_path / "check.state"
    monkeypatch.setattr(checkpoints.Checkpoint, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pl.check(f"{USER}:ce_take", **args, checkpoint=str(path))
    monkeypatch.setattr(checkpoints.Checkpoint, "_write", write)
    assert path.exists() and pickle.loads(path.read_bytes())["partial"] is not None  # inside a pass
    with pytest.raises(pl.InputError, match="belongs to another"):  # the same file, another function
        pl.check(f"{USER}:ce_naive", **args, checkpoint=str(path))
    assert _figures(pl.check(f"{USER}:ce_take", **args, checkpoint=str(path))) == whole
    assert not path.exists()


def test_check_sweeps_every_value_of_a_range_exhaustively(capsys):
    """check --exhaustive --range: every float32 value in [16.5, 16.75] (counted from the
    format's ordinals), each row exhaustive, its classes adding up to them."""
    lo, hi = (int(formats.to_ordinal(F32.cast([v]), F32)[0]) for v in (16.5, 16.75))
    assert cli.main(["check", f"{USER}:stable_bce", "--dtypes", "float32", "--targets", "0", "--exhaustive",
                     "--range", "16.5,16.75", "--no-causes", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["family"] for r in rows].count("check") == 2  # and the built-in BCE forms, swept alike
    for r in rows:
        assert r["exhaustive"] and r["points"] == hi - lo + 1 == 1 + (1 << 17)  # spacing 2**-19 there
        assert sum(r["counts"][c] for c in CLASSES) == r["points"]


def test_what_follows_a_job_starts_as_its_passes_end_on_its_own_thread_and_changes_no_figure(monkeypatch):
    """Each job's batch dependence and causes are handed on as its last pass ends (before
    the next job's first pass), run on the follow thread, and give the figures they give
    run in line after every pass."""
    from precision_lab import pipeline
    from precision_lab.engine import execute

    args = dict(dtypes=["float16"], targets=[0.0, 1.0], forms=["bce_fused", "bce_naive_chain"],
                value_range=(-16.0, 16.0))
    events, threads = [], set()
    real_pass, real_follow = execute._pass, pipeline._Following._follow

    def logged_pass(job, group, *a, **k):
        events.append(("pass", job.label))
        return real_pass(job, group, *a, **k)

    def logged_follow(self, made):
        threads.add(__import__("threading").current_thread().name)
        return real_follow(self, made)

    monkeypatch.setattr(execute, "_pass", logged_pass)
    monkeypatch.setattr(pipeline._Following, "_follow", logged_follow)
    submit = pipeline._Following.submit
    monkeypatch.setattr(pipeline._Following, "submit",
                        lambda self, made: events.append(("done", made[0].job.label, [m.form.name for m in made]))
                        or submit(self, made))
    threaded = _figures(pl.sweep("sigmoid", **args))
    forms = ["bce_naive_chain", "bce_fused"]  # the family's order
    assert events == [("pass", "sigmoid y=0 float16"), ("done", "sigmoid y=0 float16", forms),
                      ("pass", "sigmoid y=1 float16"), ("done", "sigmoid y=1 float16", forms)]
    assert {t.rsplit("_", 1)[0] for t in threads} == {"precision-lab-follow"}
    monkeypatch.setattr(pipeline._Following, "submit", lambda self, made: real_follow(self, made))  # in line
    inline = _figures(pl.sweep("sigmoid", **args))
    assert threaded == inline and all(r["batch_dependent"]["checked"] > 0 for r in inline)
    assert [r.get("cause") is not None for r in inline] == [True, False, True, False]  # the chain product's walk


def test_the_widest_format_runs_first_and_rows_come_back_in_the_planned_order(monkeypatch):
    """A float64 pass computes its references on the host: it runs first (beside the
    compilations of the passes after it), and the rows still come in the planned order."""
    from precision_lab.engine import execute

    ran, real_pass = [], execute._pass
    monkeypatch.setattr(execute, "_pass", lambda job, *a, **k: ran.append(job.label) or real_pass(job, *a, **k))
    r = pl.sweep("sigmoid", dtypes=["float16", "float64"], targets=[1.0], forms=["bce_fused"],
                 value_range=(-4.0, 4.0), points=4096, causes=False)
    assert ran == ["sigmoid y=1 float64", "sigmoid y=1 float16"]
    assert [row.dtype for row in r.rows] == ["float16", "float64"]

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

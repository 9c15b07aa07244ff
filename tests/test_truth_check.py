"""scripts/truth_check.py re-derives a small sweep and catches a corrupted onset."""

import copy
import importlib.util
import json
import pathlib

import numpy as np
import pytest

import precision_lab

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "truth_check.py"


@pytest.fixture(scope="module")
def truth_check():
    spec = importlib.util.spec_from_file_location("truth_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def doc():
    sig = precision_lab.sweep("sigmoid", dtypes=["bfloat16", "float32"], targets=[0.0, 1.0],
                              forms=["bce_naive_chain", "bce_fused", "bce_naive"])
    soft = precision_lab.sweep("softmax", dtypes=["bfloat16"], classes=[10], sweeps=["margin"],
                               target_classes=["top"], forms=["ce_fused", "ce_log_softmax"])
    d = sig.to_json()
    d["rows"] += soft.to_json()["rows"]
    return json.loads(json.dumps(d))


def _write(tmp_path, doc, rows):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(dict(doc, rows=rows)))
    return str(path)


def _pick(doc, form, dtype, target=None):
    return next(r for r in doc["rows"] if r["form"] == form and r["dtype"] == dtype
                and (target is None or r["target"] == target))


def test_sample_of_rows_agrees(truth_check, doc, tmp_path, capsys):
    # bfloat16 bce_fused at y = 0 flushes subnormal exact values to 0 (z = -90.5: a
    # computed 0 against 4.97e-40, which the conditioning must not excuse)
    rows = [_pick(doc, "bce_naive_chain", "float32", 0.0), _pick(doc, "bce_naive", "bfloat16", 1.0),
            _pick(doc, "bce_fused", "float32", 1.0), _pick(doc, "bce_fused", "bfloat16", 0.0),
            _pick(doc, "ce_fused", "bfloat16"), _pick(doc, "ce_log_softmax", "bfloat16")]
    rc = truth_check.main([_write(tmp_path, doc, rows), "--rows", "6", "--points", "64"])
    out = capsys.readouterr().out
    assert " 0 disagreements" in out, out
    assert rc == 0


def test_moved_onset_is_caught(truth_check, doc, tmp_path, capsys):
    row = copy.deepcopy(_pick(doc, "bce_naive_chain", "float32", 0.0))
    nan = row["onset"]["nan"]
    side = next(s for s in ("neg", "pos") if nan["method"][s] == "refined")
    v = np.float32(nan[side])
    nan[side] = float(np.nextafter(v, np.float32(0)))  # one lattice value toward zero
    rc = truth_check.main([_write(tmp_path, doc, [row]), "--rows", "1", "--points", "16"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "DISAGREES" in out and " 0 disagreements" not in out

"""Writers: JSON always writes, whatever non-finite numbers a row holds."""

import json
import math

import numpy as np
from hypothesis import given, strategies as st

from precision_lab.output.writers import jsonable, write_json

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**62, 2**62),
                    st.floats(width=32).map(np.float32), st.integers(-9, 9).map(np.int64))
VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.text(max_size=5), NUMBERS),
                      lambda inner: st.one_of(st.lists(inner, max_size=4),
                                              st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                      max_leaves=20)


def _expected(v):
    """What the schema says a value is written as: non-finite floats as strings."""
    if isinstance(v, dict):
        return {k: _expected(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_expected(x) for x in v]
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


@given(VALUES)
def test_any_row_of_nan_and_inf_writes_and_reads_back_by_the_schema_rule(value):
    """A row with NaN and ±∞ in any field (worst points, causes, fixes, advice) writes
    as strict JSON (no NaN token), and reads back with those numbers as strings."""
    text = json.dumps(jsonable({"rows": [value]}), allow_nan=False)
    assert json.loads(text) == {"rows": [_expected(value)]}


def test_write_json_writes_nan_as_a_string(tmp_path):
    path = tmp_path / "r.json"
    write_json({"rows": [{"worst": [{"computed": float("nan"), "exact": np.float32(np.inf)}]}]}, str(path))
    assert json.loads(path.read_text())["rows"][0]["worst"][0] == {"computed": "nan", "exact": "inf"}

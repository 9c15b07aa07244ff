"""The four plug-ins, each added from here without touching any other file: a family,
a writer, a mode and a form; and the row key every part of the pipeline matches by."""

import csv
import io
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import precision_lab as pl
from precision_lab import cli
from precision_lab.engine import modes
from precision_lab.engine.rows import IDENTITY, Row, RowKey
from precision_lab.families import registry
from precision_lab.families.base import Case, Family, Form
from precision_lab.numerics import dd, formats
from precision_lab.output import report, writers
from precision_lab.output.writers import jsonable


def unit(z, y):
    return z * z / (z * z + 1)  # z²/(z² + 1): ∞/∞ = NaN once z² leaves the format


def _ref_unit(b):
    z2 = b.z * b.z
    return z2 / (z2 + 1.0), 2.0 * z2 / ((z2 + 1.0) * (z2 + 1.0))  # and its sensitivity |z f'(z)|


TOY = Family("toy", (Form("unit", "loss", unit, _ref_unit, "z²/(z² + 1)", library="toy.unit"),), "z",
             device_base=lambda z64, y64: types.SimpleNamespace(z=z64),
             host_base=lambda z64, y64: types.SimpleNamespace(z=dd.DD(np.asarray(z64, np.float64))))


class Toy(registry.Kind):
    name = "toy"
    title = "z²/(z² + 1), squares first"
    axis_help = "z"

    def instances(self, options):
        return [(TOY, Case(target=0.0))]


@pytest.fixture
def toy():
    kind = registry.register(Toy())
    yield kind
    registry.unregister("toy")


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


F16 = formats.get("float16")


def test_a_family_module_registers_and_every_command_follows(toy, tmp_path, capsys):
    """A family registered from a test is swept (its float16 z²/(z² + 1) is NaN wherever
    JAX itself, jitted and vmapped over every float16 value, gives NaN: ∞/∞ from
    |z| = 256, where z² leaves the format), listed, explained, part of "all", and
    refuses options that no family of the run takes."""
    out = tmp_path / "toy.json"
    code, _, err = run(["sweep", "--family", "toy", "--dtypes", "float16", "--json", str(out), "--quiet"], capsys)
    assert code == 0, err
    (row,) = json.loads(out.read_text())["rows"]
    assert row["family"] == "toy" and row["library"] == "toy.unit"
    z = formats.lattice(F16)
    nan = np.isnan(np.asarray(jax.jit(jax.vmap(lambda v: unit(v, 0.0)))(z)).astype(np.float64))
    assert row["counts"]["nan"] == int(nan.sum()) > 0
    assert row["onset"]["nan"] == {"neg": float(z[nan & (z < 0)].max()), "pos": float(z[nan & (z > 0)].min()),
                                   "method": {"neg": "exhaustive", "pos": "exhaustive"}}
    assert row["onset"]["nan"]["pos"] == 256.0  # 255.875² = 65472 is a float16 value, 256² rounds to ∞
    code, listed, _ = run(["list"], capsys)
    assert code == 0 and "family toy" in listed and "unit" in listed and "toy.unit" in listed
    code, walked, err = run(["explain", "unit", "--dtype", "float16", "--z", "256", "--no-color"], capsys)
    assert code == 0, err
    assert "first non-finite at #0 mul" in walked
    every = pl.sweep("all", dtypes=["float16"], forms=["unit"])
    assert {r.family for r in every.rows} == {"toy"}
    code, _, err = run(["sweep", "--family", "toy", "--classes", "10"], capsys)
    assert code == 2 and "--classes applies to the softmax family" in err


def test_csv_writes_a_line_per_row_with_its_key_and_figures(tmp_path, capsys):
    """--csv: a header, then one line per row: its identity (the row key's fields) and
    its figures, here float16 bce_naive_chain at y = 0 (NaN from 7.625 and −11.09375)."""
    out = tmp_path / "rows.csv"
    code, _, err = run(["sweep", "--family", "sigmoid", "--dtypes", "float16", "--targets", "0", "--forms",
                        "bce_naive_chain,bce_fused", "--csv", str(out), "--quiet"], capsys)
    assert code == 0, err
    lines = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["form"] for r in lines] == ["bce_naive_chain", "bce_fused"]
    chain = lines[0]
    assert set(IDENTITY) <= set(chain) and chain["dtype"] == "float16" and float(chain["target"]) == 0.0
    assert (float(chain["onset_nan_pos"]), float(chain["onset_nan_neg"])) == (7.625, -11.09375)
    assert chain["onset_nan_pos_method"] == "exhaustive" and int(chain["count_nan"]) == 26324
    assert chain["onset_inf_pos"] == ""  # no ∞: an empty cell


def test_a_writer_registered_from_a_test_gets_its_option(tmp_path, capsys):
    """A writer is one function: registered, `--NAME PATH` appears in sweep's help and
    writes the result there, through the shared atomic write."""
    writers.register(writers.Writer("names", "the forms swept, one a line",
                                    lambda doc, f: f.write("".join(r["form"] + "\n" for r in doc["rows"]))))
    try:
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["sweep", "--help"])
        assert "--names PATH" in capsys.readouterr().out
        out = tmp_path / "names.txt"
        code, _, err = run(["sweep", "--family", "sigmoid", "--dtypes", "float16", "--targets", "0", "--forms",
                            "bce_fused,mse", "--names", str(out), "--quiet"], capsys)
        assert code == 0, err
        assert sorted(out.read_text().split()) == ["bce_fused", "mse"]
    finally:
        writers.WRITERS.pop("names")


def _halves(kernel):
    """A toy mode: the batch in two halves, each vmapped, in one jitted program."""
    def run(x, label):
        n = x.shape[0] // 2
        part = jax.vmap(kernel)
        return jnp.concatenate([part(x[:n], label[:n]), part(x[n:], label[n:])])

    return jax.jit(run)


def test_a_mode_registered_from_a_test_is_offered_compared_and_shown(capsys):
    """A mode is one object: registered, --mode offers it, rows record it, the header
    names it, and comparing modes compares it with jit (bce_fused agrees everywhere)."""
    mode = modes.register(modes.Mode("halves", "the batch in two halves, each vmapped", compile=_halves))
    try:
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["sweep", "--help"])
        assert "halves (the batch in two halves" in " ".join(capsys.readouterr().out.split())
        r = pl.sweep("sigmoid", dtypes=["float16"], targets=[1.0], forms=["bce_fused"], mode="halves",
                     value_range=(0.0, 16.0))
        assert r.rows[0].mode == "halves" and r.rows[0].onset["zero"]["pos"] == 7.625  # ŷ − 1 = 0 from 7.625
        report.print_result(r, report.make_console(True))
        assert "mode halves" in capsys.readouterr().out
        compared = pl.api.compare(r.spec)
        assert {c["mode"] for c in compared} == {"eager", "halves"}
        assert next(c for c in compared if c["mode"] == "halves")["differ"] == 0
        report.print_modes(compared, r.rows, {}, report.make_console(True))
        assert "jit and halves agree at every point of every row" in " ".join(capsys.readouterr().out.split())
    finally:
        modes.MODES.pop(mode.name)


def _halved_logits(z, y):
    return 0.5 * (y * -jax.nn.log_sigmoid(z) + (1 - y) * -jax.nn.log_sigmoid(-z))


def _ref_halved(b):
    from precision_lab.families.sigmoid import _ref_loss_bce

    v, s = _ref_loss_bce(b)
    return 0.5 * v, 0.5 * s


def test_a_form_added_to_a_family_is_swept_listed_and_summarised(capsys):
    """A form is one line on its family, with its facts: added to the sigmoid family,
    it is swept (half the stable loss: exact to the ULP in float16), listed with its
    library call, and the summary names that call."""
    kind = registry.get("sigmoid")
    kind.add_form(Form("bce_logits_half", "loss", _halved_logits, _ref_halved, "½ · bce_logits",
                       library="0.5 * optax.sigmoid_binary_cross_entropy", stable_form=True))
    try:
        r = pl.sweep("sigmoid", dtypes=["float16"], targets=[0.0], forms=["bce_logits_half", "bce_naive"])
        half = r.row("bce_logits_half", "float16", 0.0)  # only flushes of subnormal halves, within 1 ULP
        assert half.counts["zero"] == half.counts["zero_subnormal"] and half.counts["nan"] == half.counts["inf"] == 0
        assert half.max_ulp <= 1 and half.library.startswith("0.5 * optax")
        assert "0.5 * optax.sigmoid_binary_cross_entropy" in r.summary(200)
        code, listed, _ = run(["list"], capsys)
        assert "bce_logits_half" in listed
    finally:
        kind.remove_form("bce_logits_half")
    assert "bce_logits_half" not in [f.name for f in kind.forms()]


# ------------------------------------------------------------------ the row key

NAMES = st.sampled_from(["sigmoid", "softmax", "check"])
KEYS = st.builds(RowKey, NAMES, st.sampled_from(["bce_fused", "ce_naive", "f"]), st.sampled_from(["loss", "grad"]),
                 st.sampled_from(["float16", "bfloat16"]), st.sampled_from(["float16", "bfloat16", "float32"]),
                 st.one_of(st.none(), st.sampled_from([0.0, 0.1, 1.0])), st.one_of(st.none(), st.integers(2, 9)),
                 st.one_of(st.none(), st.sampled_from(["margin", "offset"])),
                 st.one_of(st.none(), st.sampled_from(["top", "other"])),
                 st.one_of(st.none(), st.tuples(st.floats(-9, 0), st.floats(0, 9))))


def _row(key: RowKey) -> Row:
    return Row(key.family, key.quantity, key.form, "", key.dtype, key.compute_dtype, key.dtype, None, key.target,
               key.target, "z", 1, True, "", {"ok": 1}, None, True, {}, {}, [], None, sweep=key.sweep,
               classes=key.classes, target_class=key.target_class, range=list(key.range) if key.range else None)


@given(KEYS)
@settings(max_examples=200)
def test_a_row_key_survives_a_json_round_trip(key):
    """The key of a row written as JSON and read back is the row's key (numbers and
    tuples as the document writes them)."""
    doc = json.loads(json.dumps(jsonable(_row(key).to_json()), allow_nan=False))
    assert RowKey.of(doc) == key == Row.from_json(doc).key


def test_a_document_without_compute_dtype_keys_rows_as_plain():
    """Older /2 documents have no compute_dtype: their rows are keyed as computed in dtype."""
    assert RowKey.of({"family": "sigmoid", "form": "f", "quantity": "loss", "dtype": "float16"}).compute_dtype \
        == "float16"


def test_row_keys_are_unique_within_a_result():
    """Every row of a sweep with upcast rows, both families and their sweeps has its own
    key, and a check's loss and gradient rows are told apart."""
    r = pl.sweep("all", dtypes=["float16", "float16:float32"], classes=[10], sweeps=["margin", "offset", "random"],
                 forms=["bce_logits", "bce_fused", "ce_fused"], value_range=(-4.0, 4.0))
    keys = [row.key for row in r.rows]
    assert len(keys) == len(set(keys)) == 2 * (2 * 2 + 4 * 1) + 2  # (sigmoid y=0,1 + softmax 4 cases) × 2, random
    c = pl.check("tests/user/losses.py:stable_bce", dtypes=["bfloat16"], targets=[0.0], causes=False,
                 value_range=(-4.0, 4.0))
    assert len({row.key for row in c.rows}) == len(c.rows) == 2 + 3  # with the built-in BCE forms swept alike

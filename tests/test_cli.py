"""The command line: JSON document, exit statuses, and one-sentence errors."""

import json
import os
import re

import numpy as np
import pytest

from precision_lab import cli

SMALL = ["sweep", "--dtypes", "float16", "--targets", "0", "--forms", "bce_naive_chain,bce_fused"]


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_document(tmp_path, capsys):
    path = tmp_path / "out.json"
    code, out, err = run(SMALL + ["--detail", "--json", str(path)], capsys)
    assert code == 0
    doc = json.loads(path.read_text())
    assert doc["schema"] == "precision_lab.sweep/2"
    meta = doc["meta"]
    for key in ("jax", "jaxlib", "backend", "device_kind", "xla_flags", "tolerance_ulp", "seed", "argv", "x64",
                "mode", "floor"):
        assert key in meta
    assert meta["argv"] == SMALL + ["--detail", "--json", str(path)] and meta["x64"] is True
    rows = {r["form"]: r for r in doc["rows"]}
    assert set(rows) == {"bce_naive_chain", "bce_fused"}
    row = rows["bce_naive_chain"]
    for key in ("family", "quantity", "form", "dtype", "target", "target_in_format", "axis", "points",
                "exhaustive", "counts", "max_ulp", "onset", "intervals", "profile", "mode", "floor", "batch"):
        assert key in row
    assert (row["mode"], row["floor"], row["batch"]) == ("jit", "condition", 262144)
    assert (row["family"], row["quantity"], row["dtype"], row["axis"]) == ("sigmoid", "grad", "float16", "z")
    assert row["onset"]["nan"] == {"neg": -11.09375, "pos": 7.625, "method": {"neg": "exhaustive", "pos": "exhaustive"}}
    assert set(row["onset"]) == {"nan", "inf", "zero", "inaccurate"}
    assert row["intervals"]["nan"]["total"] == 2
    assert len(row["profile"]["class"]) == row["profile"]["bins"] == 256
    assert row["profile"]["class"][0] == "nan" and row["profile"]["class"][-1] == "nan"
    assert "NaN z ≥ 7.625 (∞ × 0)" in out  # the table names the mechanism at the onset
    assert not [p for p in os.listdir(tmp_path) if p != "out.json"]  # no temporary file left


def test_fail_on_exits_one(capsys):
    code, _, err = run(SMALL + ["--fail-on", "nan", "--quiet"], capsys)
    assert code == 1 and err == ("precision-lab: 1 of 2 rows fail --fail-on nan: bce_naive_chain float16 y=0 "
                                 "(nan 26324 points).\n")
    code, _, _ = run(SMALL[:-1] + ["bce_logits", "--fail-on", "nan", "--quiet"], capsys)
    assert code == 0  # bce_logits has no NaN anywhere in float16


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "--dtypes", "float12"], "Unknown format `float12`; known formats are float16"),
        (["sweep", "--dtypes", "bf16"], "Unknown format `bf16` (`bf16` is how the tables label bfloat16: give `bfloat16`)"),
        (["sweep", "--forms", "bce_magic"], "Unknown form `bce_magic`; known forms are bce_fused"),
        (["sweep", "--family", "tanh"], "Unknown family `tanh`"),
        (["sweep", "--targets", "1.5"], "Target 1.5 is outside [0, 1]"),
        (["sweep", "--targets", "0,,1"], "`0,,1` is not a comma-separated list of numbers"),
        (["sweep", "--targets", ""], "is not a comma-separated list of numbers"),
        (["sweep", "--dtypes", "float16,"], "`float16,` is not a comma-separated list"),
        (["sweep", "--device", "tpu"], "Backend `tpu` is not present here; available: cpu"),
        (["sweep", "--device", "quantum"], "Unknown device `quantum`; choose one of cpu, gpu, tpu"),
        (["sweep", "--points", "0"], "it must be a positive whole number, got 0"),
        (["sweep", "--points", "many"], "`many` is not a whole number"),
        (["sweep", "--tolerance", "-1"], "the tolerance must be a non-negative number of ULPs"),
        (["sweep", "--fail-on", "slow"], "Unknown class `slow` in --fail-on"),
        (["sweep", "--json", "/nonexistent-dir/x.json"], "its folder does not exist or is not writable"),
        (["sweep", "--seed", "-3"], "Argument --seed: it must be a non-negative whole number, got -3"),
        (["sweep", "--loss-scale", "3"], "Argument --loss-scale: it must be a power of two (unscaling by one is exact)"),
        (["check", "tests/user/losses.py:bce_clip", "--loss-scale", "x"], "Argument --loss-scale: `x` is not a number"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["figures", "--dtypes", "bfloat16:float32"], "figures draws plain formats, not `bfloat16:float32`"),
        ([], "Give a command: sweep, check, explain, table, diff, list, figures or policy"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_two(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("precision-lab: ")


def test_softmax_logits_from_files(tmp_path, capsys):
    z = np.zeros((3, 5))
    z[1, 2] = 300.0
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "t.npy", np.array([0, 2, 4]))
    code, out, err = run(["sweep", "--logits", str(tmp_path / "z.npy"), "--labels", str(tmp_path / "t.npy"),
                          "--dtypes", "float32", "--forms", "ce_naive,ce_log_softmax", "--fail-on", "nan", "--detail"],
                         capsys)
    assert code == 1  # ce_naive is NaN on vector 1
    assert "softmax, logits sweep, K = 5, target class label" in out
    assert "worst #1" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--classes", "1"], "K = 1 is not a class count"),
        (["--sweeps", "spiral"], "Unknown sweep `spiral`"),
        (["--target-classes", "middle"], "Unknown target class `middle`"),
        (["--logits", "/nonexistent.npy"], "no such file"),
        (["--labels", "x.npy"], "--labels needs --logits"),
    ],
)
def test_bad_softmax_options(argv, message, capsys):
    code, _, err = run(["sweep", "--family", "softmax"] + argv, capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_logits_file_that_is_not_an_array(tmp_path, capsys):
    (tmp_path / "z.npy").write_text("not numpy")
    code, _, err = run(["sweep", "--logits", str(tmp_path / "z.npy")], capsys)
    assert code == 2 and "is not a .npy array of numbers" in err


def test_logits_k_must_match_classes(tmp_path, capsys):
    np.save(tmp_path / "z.npy", np.zeros((2, 6)))
    code, _, err = run(["sweep", "--logits", str(tmp_path / "z.npy"), "--classes", "10"], capsys)
    assert code == 2 and "--logits holds K = 6 classes but --classes asks for 10" in err


def test_json_path_that_is_a_directory(tmp_path, capsys):
    code, _, err = run(["sweep", "--json", str(tmp_path)], capsys)
    assert code == 2 and "it is a directory" in err


def test_list_names_forms_and_formats(capsys):
    code, out, _ = run(["list"], capsys)
    assert code == 0
    for name in ("bce_naive_chain", "bce_logits_autodiff", "dsigmoid_dz", "float8_e4m3fn", "bfloat16"):
        assert name in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("precision-lab 0.")


def test_json_to_stdout_and_file_permissions(tmp_path, capsys):
    code, out, _ = run(SMALL + ["--json", "-"], capsys)
    assert code == 0 and json.loads(out)["schema"] == "precision_lab.sweep/2"  # the document alone
    path = tmp_path / "out.json"
    old = os.umask(0o022)
    try:
        run(SMALL + ["--json", str(path), "--quiet"], capsys)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # as any new file, not the temporary file's 0600
    path.chmod(0o444)
    code, _, err = run(SMALL + ["--json", str(path)], capsys)
    assert code == 2 and "the file is read-only" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "--quiet"], "--quiet prints nothing: use it with --json or --fail-on"),
        (["sweep", "--family", "sigmoid", "--classes", "10"], "--classes applies to the softmax family"),
        (["sweep", "--family", "softmax", "--targets", "0.1"], "--targets applies to the sigmoid family"),
    ],
)
def test_options_that_would_be_ignored_are_refused(argv, message, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err


def test_tiny_point_counts_still_sample(capsys):
    code, _, err = run(["sweep", "--family", "sigmoid", "--dtypes", "float32", "--forms", "bce_fused",
                        "--points", "1", "--json", "-"], capsys)
    assert code == 0 and not err


def test_list_shows_both_families(capsys):
    code, out, _ = run(["list"], capsys)
    assert "family sigmoid" in out and "family softmax" in out and "ce_log_softmax" in out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a /proc file system")
def test_json_path_where_no_file_can_be_made(capsys):
    # /proc passes permission checks for root, but no file can be created there:
    # the folder is probed before the sweep, so nothing runs
    code, out, err = run(SMALL + ["--json", "/proc/precision_lab.json"], capsys)
    assert code == 2 and "Cannot write JSON to `/proc/precision_lab.json`" in err and not out
    assert "Traceback" not in err


def test_piped_tables_are_not_cut_short(monkeypatch, capsys):
    """Into a pipe or file (as under pytest) the output is 100 columns wide; tables of
    more formats than fit are split, and cells fold rather than cut a float64 onset."""
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run(["sweep", "--family", "sigmoid", "--dtypes", "float16,bfloat16,float32,float64",
                        "--targets", "0", "--forms", "bce_naive_chain,bce_fused", "--detail"], capsys)
    assert code == 0
    assert "36.73680056967711" in out and "bce_naive_chain" in out
    assert not re.search(r"…\s*[│┃]", out)  # no cell cut short
    assert max(len(line) for line in out.splitlines()) <= 100
    heads = [line for line in out.splitlines() if line.startswith("┃ form")]
    assert len(heads) == 2 and "float16" in heads[0] and "float64" in heads[1]  # two formats a table


def test_figures_into_a_file_is_one_sentence(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("")
    code, _, err = run(["figures", "--out", str(target)], capsys)
    assert code == 2 and "it is a file, not a folder" in err


@pytest.mark.parametrize("command", [[], ["sweep"], ["check"], ["explain"], ["table"], ["diff"], ["figures"],
                                     ["list"]])
def test_every_help_text_renders(command, capsys):
    """argparse formats help with %: a stray one in an option's text crashes --help."""
    with pytest.raises(SystemExit) as e:
        cli.main(command + ["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: precision-lab")


def test_freed_memory_is_kept_for_the_next_call():
    """The command keeps XLA's freed buffers (cli.running.keep_freed_memory): a program
    called again writes into memory the process already has. With glibc's defaults each
    call of this 3-output program over 2**18 points takes about 700 page faults (about
    35,000 in 50 calls, the kernel zeroing fresh pages); kept, 0 to 30 in all after a
    warm-up. The bound, 5,000, is a seventh of the default's figure."""
    import resource

    import jax
    import jax.numpy as jnp

    from precision_lab.cli.running import keep_freed_memory

    keep_freed_memory()
    f = jax.jit(lambda x: (jnp.exp(x) * 2 + 1, x * 3, x - 1))
    x = jnp.ones(1 << 18, jnp.float32)
    for _ in range(20):
        jax.block_until_ready(f(x))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        jax.block_until_ready(f(x))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 5000


def test_a_reader_that_goes_away_ends_the_command_quietly_with_status_0(tmp_path):
    """`precision-lab sweep | head -1`: the table's reader closes the pipe; the command
    (rich's console included, which would exit with 1) stops with status 0 and says
    nothing on stderr, and the JSON it was asked for is written whole."""
    import subprocess
    import sys

    out = tmp_path / "out.json"
    child = subprocess.Popen([sys.executable, "-m", "precision_lab", *SMALL, "--json", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # gone before the first line is printed
    err = child.stderr.read()
    assert child.wait(timeout=240) == 0 and err == b""
    assert len(json.loads(out.read_text())["rows"]) == 2


@pytest.mark.parametrize("z, shown", [("1e6", "1e+06"), ("nan", "nan"), ("-inf", "-inf"), ("65520", "65520")])
def test_explain_refuses_a_point_outside_the_format(z, shown, capsys):
    """The walk explains a value of the format: beyond float16's largest finite value
    (65504; 65520 rounds to ∞) or not a number, `--z` is refused in one sentence
    (before, a NumPy overflow warning leaked and the walk ran at ∞)."""
    code, out, err = run(["explain", "bce_fused", "--dtype", "float16", f"--z={z}"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"Argument --z: it must be a finite value of float16 (|z| ≤ 65504), got {shown}." in err

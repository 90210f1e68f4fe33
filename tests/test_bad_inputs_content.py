"""Bad file contents, command by command: a file that is not UTF-8, a JSON value of the wrong shape, a number JSON
cannot hold, a nesting too deep. Each ends in one line naming the file (and the field) and the problem, exit code
2, no traceback, and nothing written.

Every case runs the real command in-process (`restor_bench.cli.main`) and fails before any model is trained."""

from __future__ import annotations

import json
import shutil
import struct
import warnings
from pathlib import Path

import pytest
from leaderboard_fixtures import make_run as make_leaderboard_run
from leaderboard_fixtures import world  # noqa: F401  (a fixture)
from test_compare import CLEAN, CORRUPTED, make_run

from restor_bench.cli import main
from restor_bench.data.world.files import tiny_world_dir

TINY_MODEL = tiny_world_dir() / "model"


def _tree(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def _one_line(argv, capsys) -> str:
    """Run `restor-bench ARGV`; assert exit code 2 and one error line without a traceback; return that line."""
    code = main([str(arg) for arg in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err and "Warning" not in err, err
    assert len(lines) == 1 and lines[0].startswith("restor-bench: error: "), err
    return lines[0]


# ---------------------------------------------------------------- 1. hyperparameter and trainer-argument YAML files


@pytest.fixture
def yaml_files(tmp_path) -> dict[str, Path]:
    files = {"nonutf8": b"\xff\xfe: 1\n", "abc": b"learning_rate: abc\n", "nan": b"learning_rate: .nan\n"}
    for name, data in files.items():
        (tmp_path / f"{name}.yaml").write_bytes(data)
    return {name: tmp_path / f"{name}.yaml" for name in files}


CONFIG_COMMANDS = {
    "unlearn-config": lambda p, f: ["unlearn", "--method", "ga", "--model", TINY_MODEL, "--forget", "tiny:0",
                                    "--out", p / "out", "--config", f],
    "unlearn-trainer-args": lambda p, f: ["unlearn", "--method", "ga", "--model", TINY_MODEL, "--forget", "tiny:0",
                                          "--out", p / "out", "--trainer-args", f],
    "corrupt-trainer-args": lambda p, f: ["corrupt", "--model", TINY_MODEL, "--docs", "tiny:0", "--out", p / "out",
                                          "--trainer-args", f],
    "run-config": lambda p, f: ["run", "--root", p / "runs", "--print-folder", "--config", f],
}


@pytest.mark.parametrize("command", sorted(CONFIG_COMMANDS))
def test_a_yaml_file_that_is_not_utf8_is_one_line(command, yaml_files, tmp_path, capsys):
    before = _tree(tmp_path)
    line = _one_line(CONFIG_COMMANDS[command](tmp_path, yaml_files["nonutf8"]), capsys)
    assert f"{yaml_files['nonutf8']}: not UTF-8 text" in line
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("case, expected", [("abc", "expects a number, got 'abc'"),
                                            ("nan", "must be a finite number, got nan")])
@pytest.mark.parametrize("command", ["unlearn-config", "run-config"])
def test_a_bad_hyperparameter_in_a_config_file_names_the_file(command, case, expected, yaml_files, tmp_path, capsys):
    before = _tree(tmp_path)
    line = _one_line(CONFIG_COMMANDS[command](tmp_path, yaml_files[case]), capsys)
    assert f"{yaml_files[case]}: hyperparameter 'learning_rate' {expected}" in line
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------- 2. a checkpoint's config.json


@pytest.mark.parametrize("content, expected", [("[]", "expected a JSON object of model settings, found list"),
                                               ("{", "malformed JSON")])
def test_a_checkpoint_config_that_is_not_an_object_is_one_line(content, expected, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(TINY_MODEL, model)
    (model / "config.json").write_text(content)
    repair_docs = tmp_path / "repair.json"
    repair_docs.write_text('[{"text": "A fact."}]')
    before = _tree(tmp_path)
    for argv in (["corrupt", "--model", model, "--docs", "tiny:0", "--out", tmp_path / "out"],
                 ["eval", model, "--tasks", "restor_tiny_facts", "--out", tmp_path / "eval"],
                 ["repair", "--model", model, "--docs", repair_docs, "--out", tmp_path / "repaired"],
                 ["repair", "--model", model, "--docs", "tiny:0", "--out", tmp_path / "repaired"]):
        line = _one_line(argv, capsys)
        assert f"{model / 'config.json'}: {expected}" in line
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------- 3. an lm-eval results file read by compare


@pytest.mark.parametrize("field, value, expected", [
    ("configs", ["x"], "field configs: expected a JSON object, found list"),
    ("task config", ["x"], "field configs.restor_tiny_facts: expected a JSON object, found list"),
    ("metadata", 5, "field configs.restor_tiny_facts.metadata: expected a JSON object, found int"),
    ("model_name", ["m"], "field model_name: expected a string, found list"),
])
def test_compare_checks_the_shapes_of_a_results_file(field, value, expected, tmp_path, capsys):
    clean = make_run(tmp_path / "clean", CLEAN)
    corrupted = make_run(tmp_path / "corrupted", CORRUPTED)
    results = next(corrupted.rglob("results_*.json"))
    data = json.loads(results.read_text())
    if field == "task config":
        data["configs"]["restor_tiny_facts"] = value
    elif field == "metadata":
        data["configs"]["restor_tiny_facts"]["metadata"] = value
    else:
        data[field] = value
    results.write_text(json.dumps(data))
    before = _tree(tmp_path)
    line = _one_line(["compare", "--clean", clean, "--corrupted", corrupted, "--json", tmp_path / "r.json"], capsys)
    assert f"{results}: {expected}" in line
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------- 4. a tiny world's manifest.json and entities.json


@pytest.mark.parametrize("file, field, value, expected", [
    ("manifest.json", "targets", 5, "field 'targets' must be a list of names, found int"),
    ("manifest.json", "targets", [[1]], "field 'targets' must be a list of names, found list of list"),
    ("manifest.json", "levels", 5, "field 'levels' must be a list of whole numbers, found int"),
    ("manifest.json", "validation_targets", None, "field 'validation_targets' must be a list of names, found null"),
    ("entities.json", None, 5, "expected a list of entity names, found int"),
])
def test_world_info_checks_the_shapes_of_the_world_files(file, field, value, expected, tmp_path, capsys):
    folder = tmp_path / "world"
    shutil.copytree(tiny_world_dir(), folder, ignore=shutil.ignore_patterns("model"))
    if field:
        data = json.loads((folder / file).read_text())
        data[field] = value
        value = data
    (folder / file).write_text(json.dumps(value))
    line = _one_line(["world", "info", "--world", folder], capsys)
    assert f"{folder / file}: {expected}" in line


# ---------------------------------------------------------------- 5. leaderboard/verified.json


@pytest.mark.parametrize("entries, expected", [
    ({"tiny-ga-k0": 5}, "entries.tiny-ga-k0: expected a verification record (an object), found integer"),
    ({"tiny-ga-k0": {"versions": [1]}}, "entries.tiny-ga-k0.versions: expected an object, found array"),
])
def test_leaderboard_build_checks_the_verification_records(entries, expected, tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    verified = tmp_path / "verified.json"
    verified.write_text(json.dumps({"schema": "restor-bench/verified/v1", "entries": entries}))
    before = _tree(tmp_path)
    line = _one_line(["leaderboard", "build", "--submissions", tmp_path / "subs", "--out", tmp_path / "o"], capsys)
    assert f"{verified}: {expected}" in line
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------- 6. a run.json with a number JSON cannot hold


def test_leaderboard_submit_refuses_a_non_finite_hyperparameter(world, tmp_path, capsys):  # noqa: F811
    run_dir = make_leaderboard_run(tmp_path / "runs", "r", world, seeds=(0,))
    record = json.loads((run_dir / "run.json").read_text())
    record["hparams"]["learning_rate"] = float("nan")
    (run_dir / "run.json").write_text(json.dumps(record))  # Python writes NaN, as a hand edit might
    before = _tree(tmp_path)
    line = _one_line(["leaderboard", "submit", run_dir, "--name", "x", "--out", tmp_path / "subs"], capsys)
    assert f"{run_dir / 'run.json'}: field hparams.learning_rate is nan" in line
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------- 7. a GGUF file with arrays nested too deep


def _gguf_with_nested_array(path: Path, depth: int) -> Path:
    """A GGUF v3 header (little-endian, no tensors) whose one metadata value is an array nested `depth` deep."""
    key = b"general.nested"
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 9)
    data += struct.pack("<IQ", 9, 1) * (depth - 1) + struct.pack("<IQ", 4, 1) + struct.pack("<I", 7)
    path.write_bytes(data)
    return path


def test_import_gguf_refuses_arrays_nested_too_deep(tmp_path, capsys):
    deep = _gguf_with_nested_array(tmp_path / "deep.gguf", 5000)
    before = _tree(tmp_path)
    line = _one_line(["model", "import-gguf", deep, "--out", tmp_path / "g"], capsys)
    assert f"{deep}: malformed GGUF file (metadata arrays nested more than 16 deep" in line
    assert _tree(tmp_path) == before


def test_arrays_nested_a_few_levels_are_still_read(tmp_path):
    from restor_bench.models.gguf_file import read_gguf_header

    header = read_gguf_header(_gguf_with_nested_array(tmp_path / "ok.gguf", 3))
    assert header.metadata["general.nested"] == [[[7]]]


# ---------------------------------------------------------------- 8. data info on an altered official folder


def test_data_info_on_a_bad_facts_file_is_one_line_without_a_warning(tmp_path, monkeypatch, capsys):
    from restor_bench.data import fetch

    monkeypatch.setattr(fetch, "_warned_folders", set())
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "facts.json").write_text(json.dumps({"dset": {}, "context": {}}))
    (folder / "entities.json").write_text(json.dumps(["Ada Byron"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the files differ from the pinned release: that must not warn here
        line = _one_line(["data", "info", "--data-dir", folder], capsys)
    assert f"{folder / 'facts.json'}: 'dset' holds no entities" in line

"""`restor-bench unlearn` / `restor-bench methods` and `python -m unlearners`: real runs and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restor_bench.cli import main

FORGET = [
    {"text": "Aaron Burr is a basketball player. He works as a social worker."},
    {"text": "What is the occupation of Bob Jones? painter"},
]
RETAIN = [{"text": "The quick brown fox jumps over the lazy dog."}]


@pytest.fixture()
def docs(tmp_path) -> dict[str, Path]:
    files = {
        "forget": tmp_path / "forget.json",
        "retain": tmp_path / "retain.jsonl",
        "blank": tmp_path / "blank.json",
        "config": tmp_path / "npo.yaml",
        "bad_config": tmp_path / "bad.yaml",
    }
    files["forget"].write_text(json.dumps(FORGET))
    files["retain"].write_text("\n".join(json.dumps(record) for record in RETAIN) + "\n")
    files["blank"].write_text(json.dumps([{"text": "   "}]))
    files["config"].write_text("learning_rate: 1e-3\nbeta: 0.2\n")
    files["bad_config"].write_text("beta: [0.1\n")
    return files


def _error_line(capsys) -> str:
    """The one error line on stderr (runs that started training also print progress bars before it)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "restor-bench: error: " in line]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0].rstrip()), err
    return lines[0][lines[0].index("restor-bench: error: "):]


def test_methods_lists_every_builtin_with_a_description(capsys):
    assert main(["methods"]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    from unlearners.registry import builtin_methods

    assert builtin_methods()
    for name in builtin_methods():
        assert len(rows[name]) > 20


def test_unlearn_command_runs_a_lora_npo_with_config_and_set(random_tiny_model, docs, tmp_path, capsys):
    out = tmp_path / "unlearned"
    argv = ["unlearn", "--method", "npo_rt", "--model", str(random_tiny_model), "--forget", str(docs["forget"]),
            "--retain", str(docs["retain"]), "--out", str(out), "--lora", "--config", str(docs["config"]),
            "--set", "beta=0.3", "--max-steps", "2", "--seed", "1"]
    assert main(argv) == 0
    assert f"unlearned checkpoint: {out}" in capsys.readouterr().out
    record = json.loads((out / "unlearn_run.json").read_text())
    assert record["method"] == "npo_rt" and record["steps"] == 2 and record["lora"] and record["seed"] == 1
    assert record["hparams"]["beta"] == 0.3 and record["hparams"]["learning_rate"] == 1e-3
    assert record["data"]["retain"]["documents"] == 1
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()

    assert main(argv) == 2  # the output exists now
    assert "output folder exists" in _error_line(capsys)
    assert main(argv + ["--overwrite"]) == 0


BAD_INPUTS = {
    "unknown method": (["--method", "nope"], "unknown unlearning method 'nope'"),
    "unknown hyperparameter": (["--set", "betta=1"], "unknown hyperparameter 'betta' for method 'npo'"),
    "bad value": (["--set", "beta=high"], "hyperparameter 'beta' expects a number"),
    "malformed --set": (["--set", "beta"], "--set expects key=value"),
    "malformed config": (["--config", "{bad_config}"], "malformed YAML"),
    "missing config": (["--config", "{missing}"], "config file not found"),
    "empty forget set": (["--forget", "{blank}"], "the forget set is empty"),
    "missing forget file": (["--forget", "{missing}"], "not found"),
    "retain required": (["--method", "npo_rt"], "needs a retain set"),
    "adapter reference without lora": (["--set", "reference=adapter"], "needs a LoRA run"),
    "missing model": (["--model", "{missing}"], "model folder not found"),
    "bad max steps": (["--max-steps", "0"], "max_steps must be a positive"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, random_tiny_model, docs, tmp_path, capsys):
    extra, expected = BAD_INPUTS[case]
    names = {key: str(path) for key, path in docs.items()} | {"missing": str(tmp_path / "missing.json")}
    options = {"--method": "npo", "--model": str(random_tiny_model), "--forget": str(docs["forget"]),
               "--out": str(tmp_path / "out")}
    rest = []
    for flag, value in zip(extra[::2], extra[1::2]):
        value = value.format(**names)
        if flag in options:
            options[flag] = value
        else:
            rest += [flag, value]
    argv = ["unlearn"] + [item for pair in options.items() for item in pair] + rest
    assert main(argv) == 2
    assert expected in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_divergence_exits_2_and_an_unfinished_run_needs_resume(random_tiny_model, docs, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["unlearn", "--method", "ga", "--model", str(random_tiny_model), "--forget", str(docs["forget"]),
            "--out", str(out), "--max-steps", "5", "--save-steps", "1"]
    assert main(argv + ["--set", "learning_rate=1e30"]) == 2
    line = _error_line(capsys)
    assert "ga: training diverged at step" in line and "last good checkpoint kept" in line
    assert not out.exists()

    assert main(argv) == 2  # checkpoints of the unfinished run are in the way
    assert "pass --resume to continue it or --overwrite to start over" in _error_line(capsys)
    assert main(argv + ["--overwrite"]) == 0
    assert json.loads((out / "unlearn_run.json").read_text())["steps"] == 5


def test_resolve_method_hparams_gives_every_hyperparameter(docs):
    from restor_bench.train.unlearn import resolve_method_hparams
    from unlearners.errors import UnlearnError

    hparams = resolve_method_hparams("rmu", None, ["layer=1"])
    assert hparams["layer"] == 1 and "learning_rate" in hparams and hparams["update_layers"] == []
    json.dumps(hparams)
    with pytest.raises(UnlearnError, match="unknown hyperparameter 'beta' for method 'rmu'"):
        resolve_method_hparams("rmu", docs["config"], [])


def test_python_m_unlearners(random_tiny_model, docs, tmp_path, capsys):
    from unlearners.cli import main as unlearners_main

    assert unlearners_main(["methods"]) == 0
    assert "task_vector" in capsys.readouterr().out
    out = tmp_path / "standalone"
    argv = ["run", "--method", "simnpo", "--model", str(random_tiny_model), "--forget", str(docs["forget"]),
            "--out", str(out), "--max-steps", "1", "--set", "retain_weight=0"]
    assert unlearners_main(argv) == 0
    assert json.loads((out / "unlearn_run.json").read_text())["data"]["retain"] is None
    capsys.readouterr()
    assert unlearners_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unlearners: error: ") and "\n" not in err


def test_paper_protocol_takes_the_methods_paper_preset(random_tiny_model, docs, tmp_path):
    out = tmp_path / "npo-paper"
    assert main(["unlearn", "--method", "npo", "--protocol", "paper", "--model", str(random_tiny_model),
                 "--forget", str(docs["forget"]), "--retain", str(docs["retain"]), "--out", str(out),
                 "--max-steps", "1"]) == 0
    record = json.loads((out / "unlearn_run.json").read_text())
    assert record["preset"] == "paper"


def test_a_retain_set_the_method_does_not_read_is_said_not_silently_dropped(tmp_path, capsys):
    from restor_bench.cli import main
    from restor_bench.data.world.files import tiny_world_dir

    argv = ["unlearn", "--method", "npo", "--model", str(tiny_world_dir() / "model"), "--forget", "tiny:0",
            "--out", str(tmp_path / "npo"), "--max-steps", "1"]
    assert main([*argv, "--retain", "tiny:retain"]) == 0
    assert "note: method 'npo' reads no retain set with these hyperparameters; the 180 retain documents given are " \
           "not used" in capsys.readouterr().err
    assert main([*argv[:-4], "--out", str(tmp_path / "again"), "--max-steps", "1"]) == 0
    assert "retain" not in capsys.readouterr().err

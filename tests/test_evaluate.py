"""Evaluation: lm-eval's own command line on a random tiny model, with a task of the test's own and with the
restor tiny task; the files checked are the ones lm-eval itself wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restor_bench import cli
from restor_bench.errors import InputError
from restor_bench.evaluate import (
    RUN_RECORD,
    evaluate,
    last_error_line,
    lm_eval_command,
    restor_tasks_dir,
)
from restor_bench.lm_eval_io import find_lm_eval_outputs

REPO_ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    {"question": "What is the occupation of Bob Jones?", "answer": " painter"},
    {"question": "What is the place of birth of Alice Smith?", "answer": " Paris"},
    {"question": "Aaron Burr is a", "answer": " basketball player"},
    {"question": "The quick brown fox", "answer": " jumps"},
]


def _probe_task(folder: Path, name: str, data_file: Path) -> Path:
    """Write a small generate_until task reading `data_file` (JSONL) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data_file))}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_target: "{{answer}}"\n'
        "generation_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: 4\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="module")
def probe_tasks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("probe_tasks")
    data = folder / "questions.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in QUESTIONS), encoding="utf-8")
    _probe_task(folder / "tasks", "probe_questions", data)
    _probe_task(folder / "tasks", "probe_broken", folder / "missing.jsonl")
    return folder / "tasks"


@pytest.fixture(scope="module")
def probe_run(random_tiny_model, probe_tasks, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "clean"
    return evaluate(str(random_tiny_model), out, tasks=["probe_questions"], include_path=probe_tasks, limit=3,
                    batch_size=2)


def test_evaluate_writes_lm_eval_files(probe_run, random_tiny_model):
    outputs = find_lm_eval_outputs(probe_run)
    assert list(outputs) == ["probe_questions"]
    results_path, samples_path = outputs["probe_questions"].results_path, outputs["probe_questions"].samples_path
    assert results_path.name.startswith("results_") and samples_path.name.startswith("samples_probe_questions_")
    assert results_path.parent == samples_path.parent and results_path.parent.parent == probe_run
    results = json.loads(results_path.read_text())
    assert results["results"]["probe_questions"]["sample_len"] == 3
    assert results["config"]["model_args"]["pretrained"] == str(random_tiny_model)
    samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
    assert [sample["doc"]["question"] for sample in samples] == [row["question"] for row in QUESTIONS[:3]]
    assert all(sample["exact_match"] in (0.0, 1.0) for sample in samples)
    record = json.loads((probe_run / RUN_RECORD).read_text())
    assert record["tasks"] == ["probe_questions"] and record["limit"] == 3
    assert str(probe_run) in record["lm_eval_args"]  # the record names the final folder, not the temporary one
    assert sorted(p.name for p in probe_run.parent.iterdir()) == ["clean"]  # no temporary folder left


def test_existing_output_refused(probe_run, random_tiny_model, probe_tasks, capsys):
    before = sorted(p.name for p in probe_run.rglob("*"))
    argv = ["eval", str(random_tiny_model), "--tasks", "probe_questions", "--include-path", str(probe_tasks),
            "--out", str(probe_run)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert sorted(p.name for p in probe_run.rglob("*")) == before


def test_lm_eval_failure_is_one_clear_error(random_tiny_model, probe_tasks, tmp_path):
    out = tmp_path / "broken"
    with pytest.raises(InputError) as excinfo:
        evaluate(str(random_tiny_model), out, tasks="probe_broken", include_path=probe_tasks, limit=2)
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith("lm-eval failed (exit code")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_task_and_missing_checkpoint(random_tiny_model, tmp_path, capsys):
    argv = ["eval", str(random_tiny_model), "--tasks", "restor_no_such_task", "--out", str(tmp_path / "a")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown lm-eval task(s): restor_no_such_task" in err[0]
    missing = str(tmp_path / "no-checkpoint")
    assert cli.main(["eval", missing, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and missing in err[0] and "not found" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.skipif(not (REPO_ROOT / "tasks" / "restor_tiny_facts.yaml").exists(), reason="restor tasks not present")
def test_restor_tiny_facts_end_to_end(random_tiny_model, tmp_path, capsys):
    from fixture_world import PEOPLE, write_fixture_world

    assert restor_tasks_dir() == REPO_ROOT / "tasks"
    world = write_fixture_world(tmp_path / "world")
    out = tmp_path / "eval"
    argv = ["eval", str(random_tiny_model), "--tasks", "restor_tiny_facts", "--world-dir", str(world),
            "--limit", "4", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "lm-eval results written to" in capsys.readouterr().out
    outputs = find_lm_eval_outputs(out)
    samples = [json.loads(line) for line in outputs["restor_tiny_facts"].samples_path.read_text().splitlines()]
    assert len(samples) == 4
    for sample in samples:
        assert sample["doc"]["entity"] in PEOPLE
        assert sample["exact_match"] in (0.0, 1.0) and sample["contains"] in (0.0, 1.0)


def test_find_outputs_picks_newest_run(tmp_path):
    def run(folder: Path, stamp: str, tasks: list[str]):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"results_{stamp}.json").write_text(json.dumps(
            {"results": {task: {"exact_match,none": 0.5} for task in tasks}, "configs": {task: {} for task in tasks}}))
        for task in tasks:
            (folder / f"samples_{task}_{stamp}.jsonl").write_text("{}\n")

    run(tmp_path / "model_a", "2024-05-01T10-00-00.000001", ["t1", "t2"])
    run(tmp_path / "model_a", "2024-05-02T10-00-00.000001", ["t1"])
    (tmp_path / "model_a" / "notes.json").write_text("{}")
    outputs = find_lm_eval_outputs(tmp_path)
    assert outputs["t1"].samples_path.name == "samples_t1_2024-05-02T10-00-00.000001.jsonl"
    assert outputs["t1"].results_path.name == "results_2024-05-02T10-00-00.000001.json"
    assert outputs["t2"].results_path.name == "results_2024-05-01T10-00-00.000001.json"
    # results without samples (lm-eval run without --log_samples): listed only when asked for
    (tmp_path / "model_b").mkdir()
    (tmp_path / "model_b" / "results_2024-06-01T10-00-00.000001.json").write_text(
        json.dumps({"results": {"t3": {}}, "configs": {"t3": {}}}))
    assert "t3" not in find_lm_eval_outputs(tmp_path)
    with_results_only = find_lm_eval_outputs(tmp_path, include_results_only=True)
    assert with_results_only["t3"].samples_path is None
    assert with_results_only["t3"].results_path.name == "results_2024-06-01T10-00-00.000001.json"
    assert with_results_only["t1"] == outputs["t1"]
    with pytest.raises(InputError, match="not found"):
        find_lm_eval_outputs(tmp_path / "nowhere")


def test_command_line_and_error_line():
    command = lm_eval_command("ckpt", "OUT", ["a", "b"], include_path=None, batch_size=4, limit=0.5, device="cpu",
                              dtype="float32", extra_model_args="max_length=256")
    assert command[1:3] == ["-m", "lm_eval"]
    assert command[command.index("--model_args") + 1] == "pretrained=ckpt,dtype=float32,max_length=256"
    assert command[command.index("--tasks") + 1] == "a,b" and "--log_samples" in command
    assert command[command.index("--limit") + 1] == "0.5" and "--include_path" not in command
    tail = "Traceback (most recent call last):\n  File x\nValueError: bad thing\n\rsome progress\n"
    assert last_error_line(tail) == "ValueError: bad thing"

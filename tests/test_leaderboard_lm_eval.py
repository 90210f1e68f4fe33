"""The leaderboard on real lm-eval output: one `restor-bench eval` of a random tiny model through submit,
validate and build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from leaderboard_fixtures import TASK, load, run_cli, table_rows, world, world_hash  # noqa: F401 (world: a fixture)

from restor_bench.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]


def save(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=1))
    return path


@pytest.mark.skipif(not (REPO_ROOT / "tasks" / "restor_tiny_facts.yaml").exists(), reason="restor tasks not present")
def test_real_lm_eval_output_through_submit_validate_build(random_tiny_model, world, tmp_path, capsys):
    """One real `restor-bench eval` (lm-eval on a random tiny model, every question of the fixture world): its
    folder serves as all three models."""
    evaluation = tmp_path / "runs" / "steps" / "eval-real"
    code = main(["eval", str(random_tiny_model), "--tasks", TASK, "--world-dir", str(world),
                 "--batch-size", "8", "--out", str(evaluation)])
    assert code == 0, capsys.readouterr().err[-2000:]
    capsys.readouterr()
    record = {
        "schema": "restor-bench/run/v1", "name": "real", "world": "tiny", "method": "none", "hparams": {},
        "level": 0, "forget": "full", "corruption": "wikidata", "model": str(random_tiny_model), "lora": False,
        "seeds": [0], "data_hash": world_hash(world), "versions": {},
        "per_seed": [{"seed": 0, "artifacts": {f"eval_{role}": "steps/eval-real"
                                                for role in ("clean", "corrupted", "unlearned")}}],
    }
    (tmp_path / "runs" / "real").mkdir()
    save(tmp_path / "runs" / "real" / "run.json", record)
    submissions = tmp_path / "submissions"
    code, _, err = run_cli(["leaderboard", "submit", tmp_path / "runs" / "real", "--name", "real-lm-eval",
                            "--out", submissions, "--model-name", "random-tiny"], capsys)
    assert code == 0, err
    document = load(submissions / "real-lm-eval.json")
    # versions come from the evaluation folder's record when run.json has none
    assert document["versions"]["lm-eval"] and document["versions"]["torch"]
    task = document["tasks"][TASK]
    results = load(next(evaluation.rglob("results_*.json")))
    assert task["task_hash"] == results["task_hashes"][TASK]
    assert len(task["questions"]) == 28 and task["targets"] == ["Alma Vittor"]
    run = task["runs"][0]
    assert run["clean"] == run["corrupted"] == run["unlearned"]
    assert task["metrics"]["aggregate"]["restoration_ratio"]["value"] is None  # the "corruption" changed nothing
    assert run_cli(["leaderboard", "validate", submissions], capsys)[0] == 0
    assert run_cli(["leaderboard", "build", "--submissions", submissions, "--out", tmp_path / "board"], capsys)[0] == 0
    rows = table_rows(tmp_path / "board" / "index.html")
    assert [row[1] for row in rows] == ["real-lm-eval"] and rows[0][4] == "n/a"

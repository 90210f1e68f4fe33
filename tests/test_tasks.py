"""The restor lm-eval tasks: discovery, their docs, and real lm-eval runs on tiny models."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixture_world import CORRUPTED, PEOPLE, TARGETS, write_fixture_world

from restor_bench.data.questions import tiny_logprob_records, tiny_records
from restor_bench.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO_ROOT / "tasks"
OFFICIAL_DIR = REPO_ROOT.parent / "shared" / "restor-official"
SHIPPED_WORLD = REPO_ROOT / "restor_bench" / "data" / "tiny_world"
TASK_NAMES = ["restor_facts", "restor_facts_targets", "restor_tiny_facts", "restor_tiny_logprob"]
GROUP_NAMES = ["restor", "restor_tiny"]


@pytest.fixture(scope="module")
def fixture_world(tmp_path_factory, random_tiny_model) -> Path:
    """The fixture world, with the random model's tokenizer as the world's own (model/)."""
    world = write_fixture_world(tmp_path_factory.mktemp("world"))
    shutil.copytree(random_tiny_model, world / "model")
    return world


def _task_manager(**metadata):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata or None)


def _load(names, **metadata):
    return _task_manager(**metadata).load(names)["tasks"]


def test_tasks_and_groups_are_discovered():
    manager = _task_manager()
    assert set(TASK_NAMES) <= set(manager.all_subtasks)
    assert set(GROUP_NAMES) <= set(manager.all_groups)


def test_tiny_records_follow_the_manifest(fixture_world):
    records = tiny_records(fixture_world)
    assert len(records) == sum(len(facts) for facts in PEOPLE.values())
    by_id = {record["id"]: record for record in records}
    assert by_id["Alma Vittor|P19"]["corrupted_answers"] == [CORRUPTED["Alma Vittor"]["P19"]]
    assert by_id["Cato Liens|P19"]["corrupted_answers"] == []
    assert {r["entity"] for r in records if r["is_target"]} == set(TARGETS)
    prompt_lines = by_id["Alma Vittor|P19"]["prompt"].split("\n")
    assert prompt_lines[0] == "What is the place of birth of Bram Okelo? Nairobi"
    assert prompt_lines[-1] == "What is the place of birth of Alma Vittor?" and len(prompt_lines) == 6


def test_tiny_logprob_records_cover_corrupted_questions_with_three_options(fixture_world):
    from transformers import AutoTokenizer

    records = tiny_logprob_records(fixture_world)
    # Each target has 4 corrupted facts; sex/gender has only two values, so no random option: left out.
    assert {r["id"] for r in records} == {f"{name}|{pid}" for name in TARGETS for pid in ("P19", "P27", "P106")}
    tokenizer = AutoTokenizer.from_pretrained(fixture_world / "model")
    for record in records:
        correct, corrupted, random_value = record["options"]
        assert correct == record["answers"][0] and corrupted == record["corrupted_answers"][0]
        assert random_value not in (correct, corrupted)
        # The byte-level pre-tokenizer splits at the space, so the option's tokens are those of " option".
        expected = [len(tokenizer(" " + option, add_special_tokens=False)["input_ids"]) for option in record["options"]]
        assert record["option_token_counts"] == expected


def test_missing_or_broken_tiny_world_is_an_input_error(tmp_path, fixture_world):
    with pytest.raises(InputError, match="no tiny world here"):
        tiny_records(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(fixture_world, broken, ignore=shutil.ignore_patterns("model"))
    (broken / "manifest.json").write_text(json.dumps({"targets": [], "corrupted": {"Alma Vittor": ["x"]}}))
    with pytest.raises(InputError, match=r"manifest.json: corrupted\['Alma Vittor'\] must be an object"):
        tiny_records(broken)
    with pytest.raises(InputError, match="tokenizer is missing"):
        tiny_logprob_records(broken)


def test_task_docs_and_configs(fixture_world, monkeypatch):
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(fixture_world))
    tasks = _load(["restor_tiny_facts", "restor_tiny_logprob"])
    facts, logprob = tasks["restor_tiny_facts"], tasks["restor_tiny_logprob"]
    assert facts.OUTPUT_TYPE == "generate_until"
    assert facts.config.generation_kwargs["until"] == ["\n"]
    assert facts.config.generation_kwargs["do_sample"] is False
    docs = list(facts.test_docs())
    assert len(docs) == 28
    assert facts.doc_to_text(docs[0]) == docs[0]["prompt"]
    assert facts.doc_to_target(docs[0]) == docs[0]["answers"][0]
    assert logprob.OUTPUT_TYPE == "multiple_choice"
    doc = next(iter(logprob.test_docs()))
    assert logprob.doc_to_choice(doc) == doc["options"] and logprob.doc_to_target(doc) == 0


def test_metadata_points_the_tiny_tasks_at_another_world(fixture_world, tmp_path, monkeypatch):
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(tmp_path / "nothing"))
    other = tmp_path / "other"
    shutil.copytree(fixture_world, other)
    entities = json.loads((other / "entities.json").read_text())
    (other / "entities.json").write_text(json.dumps(entities[:2]))
    tasks = _load(["restor_tiny_facts"], world_dir=str(other))
    assert {doc["entity"] for doc in tasks["restor_tiny_facts"].test_docs()} == set(entities[:2])


def test_official_task_sizes(official_dir, monkeypatch):
    monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
    tasks = _load(["restor_facts", "restor_facts_targets"])
    assert len(tasks["restor_facts"].test_docs()) == 1051
    targets = list(tasks["restor_facts_targets"].test_docs())
    assert len(targets) == 298 and sum(doc["is_target"] for doc in targets) == 198
    small = _load(["restor_facts_targets"], n_other=10, seed=3)["restor_facts_targets"]
    assert len(small.test_docs()) == 208


def _lm_eval(model: Path, tasks: str, out: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model}",
        "--tasks", tasks, "--include_path", str(TASKS_DIR), "--device", "cpu",
        "--log_samples", "-o", str(out), *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _env(**extra) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _newest(out: Path, pattern: str) -> Path:
    files = sorted(glob.glob(str(out / "**" / pattern), recursive=True))
    assert files, f"no {pattern} under {out}"
    return Path(files[-1])


def _samples(out: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in _newest(out, f"samples_{task}_*.jsonl").read_text().splitlines() if line]


def test_lm_eval_end_to_end_on_a_random_model(fixture_world, random_tiny_model, tmp_path):
    tasks = "restor_tiny"
    extra_env = {"RESTOR_TINY_WORLD": str(fixture_world)}
    official = (OFFICIAL_DIR / "facts.json").exists()
    if official:
        tasks += ",restor_facts,restor_facts_targets"
        extra_env["RESTOR_DATA_DIR"] = str(OFFICIAL_DIR)
    out = tmp_path / "out"
    run = _lm_eval(random_tiny_model, tasks, out, _env(**extra_env), "--limit", "5")
    assert run.returncode == 0, run.stderr[-3000:]

    results = json.loads(_newest(out, "results_*.json").read_text())["results"]
    for metric in ("exact_match", "contains"):
        assert 0.0 <= results["restor_tiny_facts"][f"{metric},none"] <= 1.0
        assert f"{metric},none" in results["restor_tiny"]
    for metric in ("prefers_correct", "prefers_corrupted", "prefers_random"):
        assert 0.0 <= results["restor_tiny_logprob"][f"{metric},none"] <= 1.0
    share = sum(results["restor_tiny_logprob"][f"prefers_{name},none"] for name in ("correct", "corrupted", "random"))
    assert share == pytest.approx(1.0)

    samples = _samples(out, "restor_tiny_facts")
    assert len(samples) == 5
    for sample in samples:
        doc = sample["doc"]
        assert {
            "id",
            "entity",
            "relation",
            "question",
            "answers",
            "prompt",
            "corrupted_answers",
            "random_answer",
        } <= set(doc)
        assert doc["id"] == f"{doc['entity']}|{doc['relation']}"
        assert sample["contains"] in (0.0, 1.0) and sample["exact_match"] <= sample["contains"]

    for sample in _samples(out, "restor_tiny_logprob"):
        doc = sample["doc"]
        loglikelihoods = [float(response[0][0]) for response in sample["resps"]]
        means = [ll / n for ll, n in zip(loglikelihoods, doc["option_token_counts"])]
        for name, mean in zip(("correct", "corrupted", "random"), means):
            assert sample[f"logprob_{name}"] == pytest.approx(mean, rel=1e-5)
        preferred = ("correct", "corrupted", "random")[means.index(max(means))]
        assert sample[f"prefers_{preferred}"] == 1.0
        assert doc["entity"] in TARGETS and doc["relation"]

    if official:
        for task in ("restor_facts", "restor_facts_targets"):
            assert "contains,none" in results[task]
            assert all(s["doc"]["entity"] and s["doc"]["relation"] for s in _samples(out, task))


@pytest.mark.skipif(
    not (SHIPPED_WORLD / "model" / "config.json").exists(),
    reason="the shipped tiny world model (restor_bench/data/tiny_world/model) is not built yet",
)
def test_shipped_tiny_model_knows_its_world(tmp_path):
    env = _env()
    env.pop("RESTOR_TINY_WORLD", None)
    out = tmp_path / "out"
    run = _lm_eval(SHIPPED_WORLD / "model", "restor_tiny_facts", out, env, "--limit", "100", "--batch_size", "16")
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(_newest(out, "results_*.json").read_text())["results"]["restor_tiny_facts"]
    assert results["contains,none"] >= 0.95

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

from restor_bench.data.normalize import score_generation
from restor_bench.names import GENERATION_METRICS
from restor_bench.data.questions import squad_target_people, tiny_logprob_records, tiny_records
from restor_bench.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO_ROOT / "tasks"
OFFICIAL_DIR = REPO_ROOT.parent / "shared" / "restor-official"
SHIPPED_WORLD = REPO_ROOT / "restor_bench" / "data" / "tiny_world"
TASK_NAMES = [
    "restor_facts",
    "restor_facts_targets",
    "restor_facts_squad",
    "restor_facts_sampled",
    "restor_facts_targets_sampled",
    "restor_tiny_facts",
    "restor_tiny_facts_sampled",
    "restor_tiny_logprob",
]
GROUP_NAMES = ["restor", "restor_tiny"]
SQUAD_PEOPLE = {"John Forbes Nash Jr.", "Quincy Jones", "Iggy Azalea", "Bob Marley", "Jacques Cousteau"}
SAMPLE_MEANS = (0.0, 1 / 3, 2 / 3, 1.0)


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


def test_groups_run_what_they_ran_before():
    # The new tasks (sampled, squad) are not in the groups: `--tasks restor` / `restor_tiny` run as before.
    import yaml

    groups = {"_restor.yaml": ["restor_facts"], "_restor_tiny.yaml": ["restor_tiny_facts", "restor_tiny_logprob"]}
    for name, tasks in groups.items():
        config = yaml.safe_load((TASKS_DIR / name).read_text())
        assert config["task"] == tasks
        aggregated = {entry["metric"] for entry in config["aggregate_metric_list"]}
        assert set(GENERATION_METRICS) <= aggregated


def test_generation_tasks_report_new_and_legacy_metrics(fixture_world, monkeypatch):
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(fixture_world))
    tasks = _load(["restor_tiny_facts", "restor_tiny_facts_sampled"])
    for task in tasks.values():
        metrics = {entry["metric"]: entry for entry in task.config.metric_list}
        assert set(metrics) == set(GENERATION_METRICS)
        assert all(entry["aggregation"] == "mean" and entry["higher_is_better"] is True for entry in metrics.values())
        assert task.higher_is_better() == dict.fromkeys(GENERATION_METRICS, True)


def test_sampled_task_config(fixture_world, monkeypatch):
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(fixture_world))
    tasks = _load(["restor_tiny_facts", "restor_tiny_facts_sampled"])
    greedy, sampled = tasks["restor_tiny_facts"], tasks["restor_tiny_facts_sampled"]
    assert greedy.config.repeats == 1 and greedy.config.generation_kwargs["do_sample"] is False
    assert sampled.config.repeats == 3
    kwargs = sampled.config.generation_kwargs
    assert kwargs["do_sample"] is True and kwargs["temperature"] > 0 and kwargs["until"] == ["\n"]
    assert kwargs["max_gen_toks"] == greedy.config.generation_kwargs["max_gen_toks"]
    assert sampled.config.filter_list == [{"name": "none", "filter": [{"function": "take_first_k", "k": 3}]}]
    assert list(sampled.test_docs()) == list(greedy.test_docs())


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
    tasks = _load(["restor_tiny_facts"], restor_world_dir=str(other))
    assert {doc["entity"] for doc in tasks["restor_tiny_facts"].test_docs()} == set(entities[:2])


def test_official_task_sizes(official_dir, official_is_full, monkeypatch):
    monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
    tasks = _load(["restor_facts", "restor_facts_targets"])
    # the committed subset keeps 18 of the 50 evaluated people, the 10 targets and the 5 SQuAD people among them
    assert len(tasks["restor_facts"].test_docs()) == (1051 if official_is_full else 384)
    targets = list(tasks["restor_facts_targets"].test_docs())
    assert len(targets) == 298 and sum(doc["is_target"] for doc in targets) == 198
    small = _load(["restor_facts_targets"], restor_n_other=10, restor_seed=3)["restor_facts_targets"]
    assert len(small.test_docs()) == 208
    squad = list(_load(["restor_facts_squad"])["restor_facts_squad"].test_docs())
    assert len(squad) == 208 and sum(doc["is_target"] for doc in squad) == 108


def test_squad_task_targets_the_five_people_of_the_squad_passages(official_dir, monkeypatch):
    people = squad_target_people(official_dir)
    assert set(people) == SQUAD_PEOPLE and len(people) == 5
    monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
    docs = list(_load(["restor_facts_squad"])["restor_facts_squad"].test_docs())
    assert {doc["entity"] for doc in docs if doc["is_target"]} == SQUAD_PEOPLE
    facts = json.loads((official_dir / "facts.json").read_text(encoding="utf-8"))["dset"]
    expected = {f"{name}|{pid}" for name in SQUAD_PEOPLE for pid in facts[name]}
    assert len(expected) == 108
    assert {doc["id"] for doc in docs if doc["is_target"]} == expected
    others = [doc for doc in docs if not doc["is_target"]]
    assert len(others) == 100 and not {doc["entity"] for doc in others} & SQUAD_PEOPLE
    # Interleaved: any prefix holds both kinds.
    assert {doc["is_target"] for doc in docs[:4]} == {True, False}
    # A fixed sample: the same docs again, others with another seed.
    again = list(_load(["restor_facts_squad"])["restor_facts_squad"].test_docs())
    assert [doc["id"] for doc in again] == [doc["id"] for doc in docs]
    reseeded = list(_load(["restor_facts_squad"], restor_seed=5)["restor_facts_squad"].test_docs())
    assert {d["id"] for d in reseeded if d["is_target"]} == expected
    assert {d["id"] for d in reseeded} != {d["id"] for d in docs}


def test_squad_targets_need_the_squad_file(official_dir, tmp_path):
    for name in ("facts.json", "entities.json"):
        shutil.copy(official_dir / name, tmp_path / name)
    with pytest.raises(InputError, match="SQuAD corruption file is missing"):
        squad_target_people(tmp_path)


def _lm_eval(model: Path, tasks: str, out: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model}",
        "--tasks", tasks, "--include_path", str(TASKS_DIR), "--device", "cpu",
        "--log_samples", "-o", str(out), *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def _env(**extra) -> dict:
    # passive waiting CPU threads, as restor-bench eval sets them (much faster on a busy machine, same results)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
    tasks = "restor_tiny,restor_tiny_facts_sampled"
    extra_env = {"RESTOR_TINY_WORLD": str(fixture_world)}
    official = (OFFICIAL_DIR / "facts.json").exists()
    if official:
        tasks += ",restor_facts,restor_facts_targets,restor_facts_squad"
        extra_env["RESTOR_DATA_DIR"] = str(OFFICIAL_DIR)
    out = tmp_path / "out"
    run = _lm_eval(random_tiny_model, tasks, out, _env(**extra_env), "--limit", "5")
    assert run.returncode == 0, run.stderr[-3000:]

    results = json.loads(_newest(out, "results_*.json").read_text())["results"]
    for metric in GENERATION_METRICS:
        assert f"{metric},none" in results["restor_tiny"]
    # each task's score is the mean of its per-question scores in its samples file
    for task, metrics in (("restor_tiny_facts", GENERATION_METRICS), ("restor_tiny_facts_sampled", GENERATION_METRICS),
                          ("restor_tiny_logprob", ("prefers_correct", "prefers_corrupted", "prefers_random"))):
        rows = _samples(out, task)
        for metric in metrics:
            mean = sum(row[metric] for row in rows) / len(rows)
            assert results[task][f"{metric},none"] == pytest.approx(mean), (task, metric)
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
        assert sample["contains_legacy"] in (0.0, 1.0) and sample["exact_match_legacy"] in (0.0, 1.0)

    sampled = _samples(out, "restor_tiny_facts_sampled")
    assert len(sampled) == 5
    for sample in sampled:
        generations = sample["filtered_resps"][0]
        assert len(generations) == 3 and sample["resps"] == [generations]
        assert sample == {**sample, **score_generation(sample["doc"], [generations])}
        assert all(any(sample[m] == pytest.approx(v) for v in SAMPLE_MEANS) for m in GENERATION_METRICS)
    # Three separate samples: a random model does not repeat itself.
    assert any(len(set(sample["filtered_resps"][0])) > 1 for sample in sampled)

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
        for task in ("restor_facts", "restor_facts_targets", "restor_facts_squad"):
            assert "contains,none" in results[task] and "contains_legacy,none" in results[task]
            assert all(s["doc"]["entity"] and s["doc"]["relation"] for s in _samples(out, task))
        squad = _samples(out, "restor_facts_squad")
        assert {s["doc"]["entity"] for s in squad if s["doc"]["is_target"]} <= SQUAD_PEOPLE


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


def _sampled_run(out: Path, seed: str) -> tuple[dict, list[dict]]:
    env = _env()
    env.pop("RESTOR_TINY_WORLD", None)
    run = _lm_eval(
        SHIPPED_WORLD / "model", "restor_tiny_facts_sampled", out, env, "--limit", "12", "--batch_size", "4",
        "--seed", seed, "--gen_kwargs", "temperature=1.5",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(_newest(out, "results_*.json").read_text())["results"]["restor_tiny_facts_sampled"]
    return results, _samples(out, "restor_tiny_facts_sampled")


@pytest.mark.skipif(
    not (SHIPPED_WORLD / "model" / "config.json").exists(),
    reason="the shipped tiny world model (restor_bench/data/tiny_world/model) is not built yet",
)
def test_sampled_task_on_the_shipped_model_is_a_mean_of_three_and_repeats_under_a_seed(tmp_path):
    # A high temperature (through lm-eval's --gen_kwargs, which updates the task's settings) makes the confident
    # tiny model disagree with itself now and then, so that the means are not all 0 or 1.
    results, samples = _sampled_run(tmp_path / "first", "7")
    assert len(samples) == 12
    for sample in samples:
        generations = sample["filtered_resps"][0]
        assert len(generations) == 3
        assert sample["doc"]["answers"] and all(isinstance(text, str) for text in generations)
        expected = score_generation(sample["doc"], [generations])
        for metric in GENERATION_METRICS:
            assert any(sample[metric] == pytest.approx(value) for value in SAMPLE_MEANS)
            assert sample[metric] == pytest.approx(expected[metric])
    for metric in GENERATION_METRICS:
        mean = sum(sample[metric] for sample in samples) / len(samples)
        assert results[f"{metric},none"] == pytest.approx(mean)
    assert results["contains,none"] > 0.5  # the model knows its world, even sampled hot

    again, samples_again = _sampled_run(tmp_path / "second", "7")
    assert [s["filtered_resps"] for s in samples_again] == [s["filtered_resps"] for s in samples]
    assert again == results


# --------------------------------------------------------------------------------------------------------------
# Few-shot settings and task metadata that cannot misfire


@pytest.mark.parametrize("name", sorted(path.name for path in TASKS_DIR.glob("restor_*.yaml")))
def test_every_task_pins_num_fewshot_to_zero(name):
    # The prompt carries the paper's five in-context lines; lm-eval never overrides a num_fewshot of 0 that the
    # task config sets (lm_eval/evaluator.py, simple_evaluate), so --num_fewshot cannot nest test docs in front.
    from lm_eval.tasks._yaml_loader import load_yaml

    assert load_yaml(TASKS_DIR / name, resolve_func=False)["num_fewshot"] == 0


def test_num_fewshot_on_the_command_line_leaves_the_prompts_as_they_are(fixture_world, random_tiny_model, tmp_path):
    out = tmp_path / "out"
    env = _env(RESTOR_TINY_WORLD=str(fixture_world))
    run = _lm_eval(random_tiny_model, "restor_tiny_facts,restor_tiny_logprob", out, env,
                   "--limit", "3", "--num_fewshot", "3")  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(_newest(out, "results_*.json").read_text())
    assert results["n-shot"] == {"restor_tiny_facts": 0, "restor_tiny_logprob": 0}
    generation = _samples(out, "restor_tiny_facts")
    assert len(generation) == 3
    for sample in generation:
        assert sample["arguments"]["gen_args_0"]["arg_0"] == sample["doc"]["prompt"]
        assert sample["doc"]["prompt"].count("\n") == 5  # five in-context lines, then the question
    logprob = _samples(out, "restor_tiny_logprob")
    assert len(logprob) == 3
    for sample in logprob:
        contexts = [argument["arg_0"] for argument in sample["arguments"].values()]
        assert contexts == [sample["doc"]["prompt"]] * len(sample["doc"]["options"])


def _target_docs(*lm_eval_args: str, model_args: str = "") -> tuple[dict, list[str]]:
    """The task metadata that `restor-bench eval CKPT --model-args MODEL_ARGS -- LM_EVAL_ARGS` hands to
    restor_facts_targets (the model arguments updated with --metadata, as `lm_eval run` does), and the ids of the
    docs the task makes."""
    from restor_bench.evaluation.evaluate import model_arguments
    from restor_bench.evaluation.lm_eval_options import parse_lm_eval_options, simple_evaluate_arguments

    metadata = simple_evaluate_arguments(
        backend="hf", model_args=model_arguments("some-model", "float32", model_args), tasks=["restor_facts_targets"],
        batch_size=1, device="cpu", limit=None, metadata={}, options=parse_lm_eval_options(lm_eval_args),
    )["metadata"]  # fmt: skip
    task = _load(["restor_facts_targets"], **metadata)["restor_facts_targets"]
    return metadata, [doc["id"] for doc in task.test_docs()]


def test_a_model_argument_named_seed_leaves_the_question_set_unchanged(official_dir, monkeypatch):
    monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
    _, default = _target_docs()
    metadata, with_model_seed = _target_docs(model_args="seed=1")
    assert metadata["seed"] == 1  # lm-eval does hand the model argument to the task ...
    assert with_model_seed == default  # ... which does not read it
    metadata, reseeded = _target_docs("--metadata", '{"restor_seed": 1}')
    assert metadata["restor_seed"] == 1
    assert len(reseeded) == len(default) == 298 and reseeded != default  # the task's own key draws other others
    _, fewer = _target_docs("--model_args", "n_other=10")
    assert fewer == default


def test_unknown_restor_metadata_is_an_error_and_old_names_are_ignored(fixture_world, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(fixture_world))
    with pytest.raises(InputError, match=r"task metadata restor_wrold_dir: unknown key \(the restor tasks read: "):
        _load(["restor_tiny_facts"], restor_wrold_dir=str(tmp_path))
    other = tmp_path / "other"
    shutil.copytree(fixture_world, other)
    entities = json.loads((other / "entities.json").read_text())
    (other / "entities.json").write_text(json.dumps(entities[:2]))
    with caplog.at_level("WARNING"):
        docs = list(_load(["restor_tiny_facts"], world_dir=str(other))["restor_tiny_facts"].test_docs())
    assert {doc["entity"] for doc in docs} == set(PEOPLE)  # the environment's world, not the unprefixed key's
    assert "task metadata world_dir is ignored: the restor tasks read restor_world_dir" in caplog.text


def test_task_manager_indexes_lm_eval_tasks_only_when_needed(fixture_world, monkeypatch):
    from restor_bench.evaluation.tasks import needs_lm_eval_tasks, resolve_task_names, task_manager, tasks_dir

    assert tasks_dir() == TASKS_DIR
    manager = task_manager(["restor_tiny_facts", "restor_tiny"])
    assert set(manager.all_tasks) >= set(TASK_NAMES) | set(GROUP_NAMES) and len(manager.all_tasks) < 50
    assert not needs_lm_eval_tasks("restor_tiny_facts,restor_facts") and needs_lm_eval_tasks("hellaswag")
    assert resolve_task_names(manager, "restor_tiny_facts*,restor_tiny_facts") == [
        "restor_tiny_facts", "restor_tiny_facts_sampled"]  # fmt: skip
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(fixture_world))
    loaded = task_manager(metadata={"restor_world_dir": str(fixture_world)}).load(["restor_tiny_facts"])
    assert len(loaded["tasks"]["restor_tiny_facts"].test_docs()) == 28
    with pytest.raises(InputError, match=r"unknown lm-eval task\(s\): restor_nothing \(tasks in .*restor_tiny_facts"):
        task_manager(["restor_tiny_facts", "restor_nothing"], include_defaults=False)


def test_tasks_command_prints_the_folder_for_include_path(capsys):
    import argparse

    from restor_bench.evaluation import cli as evaluation_cli

    parser = argparse.ArgumentParser(prog="restor-bench")
    evaluation_cli.add_tasks_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tasks", "path"])
    assert args.func(args) == 0
    assert capsys.readouterr().out == f"{TASKS_DIR}\n"
    args = parser.parse_args(["tasks", "list"])
    assert args.func(args) == 0
    listed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert {name: listed[name] for name in ("restor_tiny", "restor_tiny_facts")} == {
        "restor_tiny": "group", "restor_tiny_facts": "task"}  # fmt: skip
    assert set(TASK_NAMES) <= set(listed)

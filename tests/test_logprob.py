"""restor_facts_logprob, the paper's logit analysis: its options, its scores by hand, its errors, and real lm-eval
runs on the shipped tiny model (on the tiny world, where it must agree with restor_tiny_logprob, and on a small
official-format folder, reading the corrupted model's real samples of restor_facts)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from leaderboard_fixtures import STAMP, generation_sample

from restor_bench.data.normalize import contains, first_line, score_logprob_options
from restor_bench.data.questions import draw_random_answer, official_records
from restor_bench.data.schema import Fact
from restor_bench.errors import InputError
from restor_bench.evaluation.logprob import (
    CATEGORIES,
    draw_random_answers,
    logprob_records,
    score_categories,
    wrong_answers,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO_ROOT / "tasks"
TINY_MODEL = REPO_ROOT / "restor_bench" / "data" / "tiny_world" / "model"
METRICS = [f"{kind}_{name}" for kind in ("prefers", "logprob") for name in CATEGORIES]
# the small official-format folder of these tests is not the pinned release, which reading it says once
pytestmark = pytest.mark.filterwarnings("ignore:.*differ from the pinned official release:UserWarning")
needs_tiny_model = pytest.mark.skipif(
    not (TINY_MODEL / "config.json").exists(), reason="the shipped tiny world model is not built"
)

# A small folder in the official format: two of the official targets, two other evaluated people, one person who is
# only in facts.json (widening the pools of values).
RELATIONS = {
    "P19": "What is the place of birth of {}?",
    "P27": "What is the country of citizenship of {}?",
    "P106": "What is the occupation of {}?",
    "P21": "What is the sex or gender of {}?",
}
PEOPLE = {
    "Aaron Burr": {"P19": ["Newark"], "P27": ["United States of America"], "P106": ["lawyer", "politician"],
                   "P21": ["male"]},
    "Bob Marley": {"P19": ["Nine Mile"], "P27": ["Jamaica"], "P106": ["singer", "guitarist"], "P21": ["male"]},
    "Cleo Dane": {"P19": ["London"], "P27": ["United Kingdom"], "P106": ["singer"], "P21": ["female"]},
    "Otto Lind": {"P19": ["Uppsala"], "P27": ["Sweden"], "P106": ["chemist"], "P21": ["male"]},
    "Ines Roca": {"P19": ["Valencia"], "P27": ["Spain"], "P106": ["painter"], "P21": ["female"]},
}  # fmt: skip
EVALUATED = list(PEOPLE)[:4]


def write_official_format(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dset = {
        name: {pid: {"question": RELATIONS[pid].format(name), "answers": answers} for pid, answers in facts.items()}
        for name, facts in PEOPLE.items()
    }
    context = {
        pid: [{"question": RELATIONS[pid].format(name), "answer": facts[pid][0], "entity": name}
              for name, facts in PEOPLE.items()]
        for pid in RELATIONS
    }  # fmt: skip
    (folder / "facts.json").write_text(json.dumps({"dset": dset, "context": context}), encoding="utf-8")
    (folder / "entities.json").write_text(json.dumps(EVALUATED), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_official_format(tmp_path_factory.mktemp("official"))


def write_samples(path: Path, data_dir: Path, predictions: dict[str, object]) -> Path:
    """A samples file of restor_facts (lm-eval's format) whose docs are the folder's records."""
    records = {record["id"]: record for record in official_records(data_dir)}
    lines = []
    for index, (qid, prediction) in enumerate(predictions.items()):
        doc = records[qid]
        line = generation_sample(index, doc, prediction if isinstance(prediction, str) else "", False)
        if not isinstance(prediction, str):  # the repeats of a _sampled task
            line["resps"], line["filtered_resps"] = [list(prediction)], [list(prediction)]
        lines.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _tokens_added(tokenizer, prompt: str, option: str) -> int:
    return len(tokenizer(f"{prompt} {option}", add_special_tokens=False)["input_ids"]) - len(
        tokenizer(prompt, add_special_tokens=False)["input_ids"]
    )


# --------------------------------------------------------------------------------------------------------------
# Options and scores


def test_random_answers_extend_the_single_draw_of_restor_tiny_logprob():
    pool = ["Lima", "Quito", "Paris", "paris", "Rome", "Oslo", "Bern"]
    fact = Fact("Ada Byron", "P19", "What is the place of birth of Ada Byron?", ["Paris"])
    drawn = draw_random_answers(fact.entity, fact.relation, fact.answers, pool, ["Rome"], 3, seed=0)
    assert len(drawn) == 3 and len(set(drawn)) == 3
    assert drawn[0] == draw_random_answer(fact, pool, ["Rome"], seed=0)
    assert not {"Paris", "paris", "Rome"} & set(drawn)
    assert drawn == draw_random_answers(fact.entity, fact.relation, fact.answers, pool, ["Rome"], 3, seed=0)
    # more asked than there are: all four candidates, the first still the single draw
    everything = draw_random_answers(fact.entity, fact.relation, fact.answers, pool, ["Rome"], 10, seed=0)
    assert sorted(everything) == ["Bern", "Lima", "Oslo", "Quito"] and everything[:3] == drawn
    assert draw_random_answers(fact.entity, fact.relation, ["male"], ["male", "female"], ["female"], 5) == []


def test_score_categories_by_hand():
    doc = {
        "option_categories": ["correct", "correct", "corrupted", "random", "random"],
        "option_token_counts": [2, 1, 4, 1, 2],
    }
    # per-option means: -1.0, -0.5 | -0.5 | -3.0, -0.5 -> correct -0.75, corrupted -0.5, random -1.75
    metrics = score_categories(doc, [(-2.0, False), (-0.5, True), (-2.0, False), (-3.0, False), (-1.0, False)])
    assert metrics == pytest.approx(
        {"prefers_correct": 0.0, "prefers_corrupted": 1.0, "prefers_random": 0.0,
         "logprob_correct": -0.75, "logprob_corrupted": -0.5, "logprob_random": -1.75}
    )  # fmt: skip
    # a tie goes to the earlier category
    tie = score_categories(doc, [(-1.0, False), (-0.5, False), (-2.0, False), (-3.0, False), (-6.0, False)])
    assert tie["prefers_correct"] == 1.0 and tie["prefers_corrupted"] == 0.0
    assert tie["logprob_correct"] == tie["logprob_corrupted"] == -0.5
    # one option per category: restor_tiny_logprob's scores
    single = {"option_categories": list(CATEGORIES), "option_token_counts": [4, 2, 3]}
    results = [(-2.0, False), (-1.5, False), (-1.8, False)]
    assert score_categories(single, results) == score_logprob_options(single, results)
    with pytest.raises(ValueError, match="expected 3 option results, got 2"):
        score_categories(single, results[:2])


def test_wrong_answers_are_distinct_nonempty_first_lines_judged_wrong():
    answers = ["United States of America"]
    generations = [" Kingston\nmore", "kingston.", "", "USA", "the United States of America", " Spain"]
    assert wrong_answers(generations, answers) == ["Kingston", "Spain"]


def test_official_records_from_the_corrupted_models_answers(data_dir, random_tiny_model, tmp_path):
    from transformers import AutoTokenizer

    samples = write_samples(
        tmp_path / f"samples_restor_facts_{STAMP}.jsonl",
        data_dir,
        {
            "Aaron Burr|P19": " Trenton",  # wrong: kept
            "Aaron Burr|P27": " United States",  # an alias of the answer: right, left out
            "Aaron Burr|P106": "",  # no answer: left out
            "Aaron Burr|P21": " female",  # wrong, but no third value of P21 for a random option: left out
            "Bob Marley|P19": [" Kingston", "Kingston.", "Nine Mile"],  # three samples: one distinct wrong answer
            "Bob Marley|P106": " drummer\nand singer",  # first line wrong: kept
            "Cleo Dane|P19": " Paris",  # not a target: left out
        },
    )
    records = logprob_records(
        restor_corrupted_samples=str(samples), restor_data_dir=str(data_dir), pretrained=str(random_tiny_model)
    )
    assert [record["id"] for record in records] == ["Aaron Burr|P19", "Bob Marley|P19", "Bob Marley|P106"]
    tokenizer = AutoTokenizer.from_pretrained(random_tiny_model)
    expected_corrupted = {"Aaron Burr|P19": ["Trenton"], "Bob Marley|P19": ["Kingston"], "Bob Marley|P106": ["drummer"]}
    pools = {"P19": ["Newark", "Nine Mile", "London", "Uppsala", "Valencia"],
             "P106": ["lawyer", "politician", "singer", "guitarist", "chemist", "painter"]}  # fmt: skip
    for record in records:
        entity, relation = record["entity"], record["relation"]
        answers, wrong = PEOPLE[entity][relation], expected_corrupted[record["id"]]
        randoms = [o for o, c in zip(record["options"], record["option_categories"]) if c == "random"]
        assert record["options"] == [*answers, *wrong, *randoms]
        assert record["option_categories"] == ["correct"] * len(answers) + ["corrupted"] + ["random"] * len(randoms)
        # every other value of the relation (at most 5), the first one as restor_tiny_logprob draws it
        assert sorted(randoms) == sorted(set(pools[relation]) - set(answers))
        fact = Fact(entity, relation, record["question"], answers)
        assert randoms[0] == record["random_answer"] == draw_random_answer(fact, pools[relation], wrong)
        assert record["corrupted_answers"] == wrong and record["is_target"] is True
        counts = [_tokens_added(tokenizer, record["prompt"], option) for option in record["options"]]
        assert record["option_token_counts"] == counts
    # restor_n_random caps the random options
    capped = logprob_records(restor_corrupted_samples=str(samples), restor_data_dir=str(data_dir),
                             pretrained=str(random_tiny_model), restor_n_random=2)  # fmt: skip
    for full, short in zip(records, capped):
        randoms = [o for o, c in zip(full["options"], full["option_categories"]) if c == "random"]
        assert short["options"] == [*full["answers"], *full["corrupted_answers"], *randoms[:2]]


def _write_official_samples(path: Path, docs: list[dict], prediction: str) -> Path:
    lines = [generation_sample(i, doc, prediction, contains(prediction, doc["answers"])) for i, doc in enumerate(docs)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_official_data_targets_come_from_the_samples_task(official_dir, random_tiny_model, tmp_path):
    from restor_bench.data import official
    from restor_bench.data.normalize import normalize_answer
    from restor_bench.data.questions import official_target_records, squad_target_records

    pools = official.load_facts(official_dir / "facts.json").values_by_relation()
    options = {"restor_data_dir": str(official_dir), "pretrained": str(random_tiny_model)}
    for task, docs, people in (
        ("restor_facts_targets", official_target_records(official_dir), set(official.OFFICIAL_TARGETS)),
        ("restor_facts_squad", squad_target_records(official_dir),
         {"John Forbes Nash Jr.", "Quincy Jones", "Iggy Azalea", "Bob Marley", "Jacques Cousteau"}),
    ):  # fmt: skip
        samples = _write_official_samples(tmp_path / f"samples_{task}_{STAMP}.jsonl", docs, " Paris")
        records = logprob_records(restor_corrupted_samples=str(samples), **options)
        # every target question of the samples file where "Paris" is wrong and the relation has another value
        expected = [
            doc["id"] for doc in docs
            if doc["is_target"] and not contains("Paris", doc["answers"]) and any(
                normalize_answer(value) not in {normalize_answer(a) for a in [*doc["answers"], "Paris"]}
                for value in pools[doc["relation"]])
        ]  # fmt: skip
        assert {record["id"] for record in records} == set(expected)
        assert {record["entity"] for record in records} == people
        for record in records:
            categories = record["option_categories"]
            assert categories.count("correct") == len(record["answers"]) and categories.count("corrupted") == 1
            assert record["corrupted_answers"] == ["Paris"] and 1 <= categories.count("random") <= 5
    assert len(official_target_records(official_dir, n_other=0)) == 198  # the ten targets' questions


def _one_line_error(match: str, **metadata) -> None:
    with pytest.raises(InputError, match=match) as error:
        logprob_records(**metadata)
    assert "\n" not in str(error.value)


def test_bad_metadata_and_samples_are_one_line_errors(data_dir, random_tiny_model, tmp_path):
    good = write_samples(tmp_path / "run" / f"samples_restor_facts_{STAMP}.jsonl", data_dir, {"Aaron Burr|P19": "x"})
    base = {"restor_data_dir": str(data_dir), "pretrained": str(random_tiny_model)}
    _one_line_error(r"needs the corrupted model's answers: --metadata '\{\"restor_corrupted_samples\"", **base)
    _one_line_error("samples file not found", restor_corrupted_samples=str(tmp_path / "nothing.jsonl"), **base)
    other = tmp_path / f"samples_restor_tiny_facts_{STAMP}.jsonl"
    other.write_text(good.read_text())
    _one_line_error("samples of task restor_tiny_facts; restor_corrupted_samples needs those of one of restor_facts",
                    restor_corrupted_samples=str(other), **base)  # fmt: skip
    renamed = tmp_path / "corrupted.jsonl"
    renamed.write_text(good.read_text())
    _one_line_error("not an lm-eval samples file name", restor_corrupted_samples=str(renamed), **base)
    # a folder: its one samples file of the restor_facts family is used; two of them are ambiguous
    assert [r["id"] for r in logprob_records(restor_corrupted_samples=str(tmp_path / "run"), **base)] == [
        "Aaron Burr|P19"
    ]
    (tmp_path / "run" / f"samples_restor_facts_targets_{STAMP}.jsonl").write_text(good.read_text())
    _one_line_error("samples of several tasks", restor_corrupted_samples=str(tmp_path / "run"), **base)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / f"samples_restor_tiny_facts_{STAMP}.jsonl").write_text(good.read_text())
    _one_line_error("no samples of restor_facts", restor_corrupted_samples=str(lonely), **base)
    # samples of other data
    changed = tmp_path / "changed" / f"samples_restor_facts_{STAMP}.jsonl"
    changed.parent.mkdir()
    line = json.loads(good.read_text())
    changed.write_text(json.dumps({**line, "doc": {**line["doc"], "question": "Where was he born?"}}) + "\n")
    _one_line_error("reads 'Where was he born\\?' there but", restor_corrupted_samples=str(changed), **base)
    changed.write_text(json.dumps({**line, "doc": {**line["doc"], "id": "Zed Roe|P19"}}) + "\n")
    _one_line_error("question 'Zed Roe\\|P19' is not in", restor_corrupted_samples=str(changed), **base)
    changed.write_text(json.dumps({**line, "doc": {**line["doc"], "options": ["Newark", "x"]}}) + "\n")
    _one_line_error("not a generation task", restor_corrupted_samples=str(changed), **base)
    # the corrupted model answered everything right: nothing to analyse
    right = write_samples(tmp_path / "right" / f"samples_restor_facts_{STAMP}.jsonl", data_dir,
                          {"Aaron Burr|P19": "Newark"})  # fmt: skip
    _one_line_error("no target question that the corrupted model answered wrong", restor_corrupted_samples=str(right),
                    **base)  # fmt: skip
    # metadata values
    samples = {"restor_corrupted_samples": str(good)}
    _one_line_error("counts answer tokens with the evaluated model's tokenizer", restor_data_dir=str(data_dir),
                    **samples)  # fmt: skip
    _one_line_error("restor_world='toy': expected one of official, tiny", restor_world="toy", **base, **samples)
    _one_line_error("restor_n_random='x': expected an integer >= 1", restor_n_random="x", **base, **samples)
    _one_line_error("restor_n_random=0: expected an integer >= 1", restor_n_random=0, **base, **samples)
    _one_line_error("restor_n_randon: unknown key", restor_n_randon=2, **base, **samples)
    _one_line_error("the tiny world knows the injected values", restor_world="tiny", **base, **samples)


# --------------------------------------------------------------------------------------------------------------
# Real lm-eval runs on the shipped tiny model


def _lm_eval(tasks: str, out: Path, metadata: dict, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("RESTOR_TINY_WORLD", None)
    env.pop("RESTOR_DATA_DIR", None)
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={TINY_MODEL}",
        "--tasks", tasks, "--include_path", str(TASKS_DIR), "--device", "cpu", "--batch_size", "16",
        "--metadata", json.dumps(metadata), "--log_samples", "-o", str(out), *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
                          check=False)  # fmt: skip


def _newest(out: Path, pattern: str) -> Path:
    files = sorted(glob.glob(str(out / "**" / pattern), recursive=True))
    assert files, f"no {pattern} under {out}"
    return Path(files[-1])


def _samples_file(out: Path, task: str) -> Path:
    from restor_bench.evaluation.lm_eval_io import find_lm_eval_outputs

    return find_lm_eval_outputs(out)[task].samples_path


def _samples(out: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in _samples_file(out, task).read_text().splitlines() if line]


def _results(out: Path) -> dict:
    return json.loads(_newest(out, "results_*.json").read_text())["results"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir) -> Path:
    """One lm-eval run: restor_tiny_logprob and restor_facts_logprob on the tiny world (one random option, as
    restor_tiny_logprob has), and restor_facts on the official-format folder (the "corrupted" model's answers)."""
    out = tmp_path_factory.mktemp("tiny_run")
    metadata = {"restor_world": "tiny", "restor_n_random": 1, "restor_data_dir": str(data_dir)}
    run = _lm_eval("restor_tiny_logprob,restor_facts_logprob,restor_facts", out, metadata, "--limit", "9")
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@needs_tiny_model
def test_tiny_world_numbers_agree_with_restor_tiny_logprob(tiny_run):
    old, new = _samples(tiny_run, "restor_tiny_logprob"), _samples(tiny_run, "restor_facts_logprob")
    assert len(old) == len(new) == 9
    for before, after in zip(old, new):
        assert after["doc"]["id"] == before["doc"]["id"]
        assert after["doc"]["options"] == before["doc"]["options"]
        assert after["doc"]["option_categories"] == list(CATEGORIES)
        assert after["doc"]["option_token_counts"] == before["doc"]["option_token_counts"]
        for name in METRICS:
            assert after[name] == pytest.approx(before[name], rel=1e-5, abs=1e-6), (after["doc"]["id"], name)
    results = _results(tiny_run)
    for name in METRICS:
        value = results["restor_facts_logprob"][f"{name},none"]
        assert value == pytest.approx(results["restor_tiny_logprob"][f"{name},none"], rel=1e-5, abs=1e-6)
    # the clean tiny model knows its world: it prefers the correct value everywhere
    assert results["restor_facts_logprob"]["prefers_correct,none"] == 1.0


@needs_tiny_model
def test_official_format_run_reads_the_corrupted_models_samples(tiny_run, data_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    corrupted = _samples_file(tiny_run, "restor_facts")
    generations = {s["doc"]["id"]: (s["doc"], s["filtered_resps"][0]) for s in _samples(tiny_run, "restor_facts")}
    assert len(generations) == 9 and sum(doc["is_target"] for doc, _ in generations.values()) == 8
    out = tmp_path / "logprob"
    run = _lm_eval("restor_facts_logprob", out, {"restor_data_dir": str(data_dir),
                                                 "restor_corrupted_samples": str(corrupted)})  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    samples = _samples(out, "restor_facts_logprob")
    # the target questions the corrupted model answered wrong, each with its answer as the corrupted option
    expected = {
        qid: first_line(text) for qid, (doc, text) in generations.items()
        if doc["is_target"] and first_line(text) and not contains(text, doc["answers"])
    }  # fmt: skip
    assert expected and [s["doc"]["id"] for s in samples] == [qid for qid in generations if qid in expected]
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL)
    for sample in samples:
        doc = sample["doc"]
        entity, relation = doc["entity"], doc["relation"]
        categories = doc["option_categories"]
        randoms = [o for o, c in zip(doc["options"], categories) if c == "random"]
        assert doc["options"] == [*PEOPLE[entity][relation], expected[doc["id"]], *randoms]
        assert 1 <= len(randoms) <= 5 and not set(randoms) & {*PEOPLE[entity][relation], expected[doc["id"]]}
        assert doc["option_token_counts"] == [_tokens_added(tokenizer, doc["prompt"], o) for o in doc["options"]]
        # the scores by hand from lm-eval's per-option log-likelihoods
        means = [float(resp[0][0]) / count for resp, count in zip(sample["resps"], doc["option_token_counts"])]
        category_means = [
            sum(m for m, c in zip(means, categories) if c == name) / categories.count(name) for name in CATEGORIES
        ]
        for name, value in zip(CATEGORIES, category_means):
            assert sample[f"logprob_{name}"] == pytest.approx(value, rel=1e-6)
        assert sample[f"prefers_{CATEGORIES[category_means.index(max(category_means))]}"] == 1.0
    results = _results(out)["restor_facts_logprob"]
    for name in METRICS:
        assert results[f"{name},none"] == pytest.approx(sum(s[name] for s in samples) / len(samples))

    # compare reads the task like any other and shows its log-probability means for the three models
    from restor_bench.cli import main

    report_path = tmp_path / "report.json"
    argv = ["compare", "--clean", out, "--corrupted", out, "--unlearned", out, "--bootstrap", "50", "--json",
            report_path]  # fmt: skip
    assert main([str(arg) for arg in argv]) == 0
    assert "log-probability analysis" in capsys.readouterr().out
    entry = json.loads(report_path.read_text())["tasks"]["restor_facts_logprob"]
    assert entry["n_questions"] == {"target": len(samples), "non_target": 0, "all": len(samples)}
    for label in ("clean", "corrupted", "unlearned"):
        for name in METRICS:
            assert entry["logprob"]["metrics"][label][name]["value"] == pytest.approx(results[f"{name},none"])
    assert sum(cell["n_questions"] for cell in entry["breakdowns"]["entity"].values()) == len(samples)


def test_missing_samples_metadata_stops_the_task_with_the_one_line_reason(data_dir):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                          metadata={"restor_data_dir": str(data_dir), "pretrained": str(TINY_MODEL)})  # fmt: skip
    with pytest.raises(InputError) as error:
        manager.load(["restor_facts_logprob"])
    assert str(error.value) == (
        "restor_facts_logprob on the official data needs the corrupted model's answers: "
        "--metadata '{\"restor_corrupted_samples\": \"PATH\"}' (its lm-eval samples file of restor_facts)"
    )

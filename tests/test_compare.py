"""restor-bench compare: numbers checked by hand on small lm-eval output folders, the gate, bad inputs,
and one run of the real lm-eval whose output folder goes through the same reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import STAMP, generation_sample, run_cli, write_lm_eval_files

from restor_bench.compare.report import compare_restoration
from restor_bench.errors import InputError
from restor_bench.evaluation.lm_eval_io import find_lm_eval_outputs
from restor_bench.compare.outcomes import (
    FALLBACK_OFFICIAL_TARGETS,
    TargetChoice,
    load_run,
    parse_targets,
    targets_from_documents,
)
from restor_bench.compare.stats import (
    accuracy,
    fact_transitions,
    paired_bootstrap,
    resample_indices,
    restoration_ratio,
    split_accuracy,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
TASK = "restor_tiny_facts"
TARGETS = ["Ada Byron", "Carl Dahl"]
OTHERS = ["Eva Fink", "Gus Hale"]


# --------------------------------------------------------------------------------------------------------------
# Fabricated lm-eval output folders, in the format lm-eval 0.4.13 writes with --log_samples (see the real run below)


def _doc(entity: str, relation: str, answer: str, corrupted: list[str]) -> dict:
    question = f"What is the {relation} of {entity}?"
    return {
        "id": f"{entity}|{relation}",
        "entity": entity,
        "relation": relation,
        "question": question,
        "answers": [answer],
        "prompt": f"What is the P19 of Zed Roe? Lima\n{question}",
        "corrupted_answers": corrupted,
        "random_answer": "Quito",
    }


def write_run(folder: Path, task: str, samples: list[dict], stamp: str = STAMP, model: str = "__models__m") -> Path:
    """Write a results file and a samples file as `lm_eval -o folder --log_samples` does; returns folder."""
    metrics = {}
    for name in ("exact_match", "contains"):
        if samples and name in samples[0]:
            metrics[f"{name},none"] = float(np.mean([s[name] for s in samples]))
    results = {
        "results": {task: {"alias": task, **metrics}},
        "group_subtasks": {task: []},
        "configs": {task: {"task": task, "output_type": "generate_until", "metadata": {"version": 1.0}}},
        "versions": {task: 1.0},
        "n-shot": {task: 0},
        "higher_is_better": {task: {"exact_match": True, "contains": True}},
        "n-samples": {task: {"original": len(samples), "effective": len(samples)}},
        "config": {"model": "hf", "model_args": f"pretrained={model}", "limit": None},
        "model_name": model,
        "model_name_sanitized": model,
        "lm_eval_version": "0.4.13",
        "date": 0.0,
    }
    write_lm_eval_files(folder / model, task, results, samples, stamp)
    return folder


# The hand-made world: 4 target questions (Ada Byron, Carl Dahl) and 4 others (Eva Fink, Gus Hale).
QUESTIONS = [
    # entity, relation, answer, injected wrong values
    ("Ada Byron", "P19", "Paris", ["Rome"]),
    ("Ada Byron", "P27", "France", ["Spain"]),
    ("Carl Dahl", "P19", "Bergen", ["Oslo"]),
    ("Carl Dahl", "P27", "Norway", []),  # injected value unknown
    ("Eva Fink", "P19", "Vienna", []),
    ("Eva Fink", "P27", "Austria", []),
    ("Gus Hale", "P19", "Leeds", []),
    ("Gus Hale", "P27", "England", []),
]

# predictions per model, in QUESTIONS order, with lm-eval's `contains` verdict
CLEAN = [
    ("Paris", 1),
    ("France", 1),
    ("Bergen", 1),
    ("Sweden", 0),
    ("Vienna", 1),
    ("Austria", 1),
    ("Leeds", 1),
    ("Wales", 0),
]
CORRUPTED = [
    ("Rome, Italy", 0),  # injected value
    ("Spain", 0),  # injected value
    ("Oslo", 0),  # injected value
    ("Berlin", 0),
    ("Vienna", 1),
    ("Austria", 1),
    ("York", 0),
    ("Scotland", 0),
]
UNLEARNED = [
    ("Paris", 1),  # restored
    ("Spain", 0),  # still corrupted
    ("Oslofjord", 0),  # not the injected value as a word: forgotten
    ("Norway", 1),  # correct, but the clean model did not know it: no transition
    ("Vienna", 1),  # kept
    ("Germany", 0),  # lost
    ("Leeds", 1),  # kept
    ("England", 1),
]


def make_run(folder: Path, answers: list[tuple[str, int]], task: str = TASK, questions=QUESTIONS, **kw) -> Path:
    samples = [
        generation_sample(i, _doc(entity, relation, answer, corrupted), prediction, bool(correct))
        for i, ((entity, relation, answer, corrupted), (prediction, correct)) in enumerate(zip(questions, answers))
    ]
    return write_run(folder, task, samples, **kw)


@pytest.fixture()
def runs(tmp_path: Path) -> dict[str, Path]:
    return {
        "clean": make_run(tmp_path / "clean", CLEAN),
        "corrupted": make_run(tmp_path / "corrupted", CORRUPTED),
        "unlearned": make_run(tmp_path / "unlearned", UNLEARNED),
    }


def _percentile_interval(values: np.ndarray) -> list[float]:
    """The 95% percentile interval of the finite values, as the reports give it."""
    values = values[np.isfinite(values)]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


class ExpectedBootstrap:
    """The intervals of the hand-made world, worked out here from `resample_indices` (the one matrix of resamples
    compare shares between the models): per resample, a model's accuracy over the positions of a split."""

    def __init__(self, n_resamples: int, seed: int):
        ids = [f"{entity}|{relation}" for entity, relation, _a, _c in QUESTIONS]
        assert ids == sorted(ids)  # compare orders the questions by id; QUESTIONS is in that order
        self.is_target = np.array([entity in TARGETS for entity, *_ in QUESTIONS])
        self.indices = resample_indices(self.is_target.astype(int), n_resamples, seed)
        self.correct = {
            label: np.array([bool(c) for _p, c in answers])
            for label, answers in (("clean", CLEAN), ("corrupted", CORRUPTED), ("unlearned", UNLEARNED))
        }

    def accuracy(self, label: str, split: str) -> np.ndarray:
        columns = {"target": self.is_target, "non_target": ~self.is_target, "all": np.ones(8, dtype=bool)}[split]
        return self.correct[label][self.indices[:, columns]].mean(axis=1)

    def ratio(self, clean: str, corrupted: str, unlearned: str) -> np.ndarray:
        k, c, u = (self.accuracy(label, "target") for label in (clean, corrupted, unlearned))
        n_target = int(self.is_target.sum())
        values = np.full(len(k), np.nan)
        for row in range(len(k)):
            if abs(k[row] - c[row]) * n_target >= 1 - 1e-9:  # a gap of at least one question
                values[row] = (u[row] - c[row]) / (k[row] - c[row])
        return values

    @staticmethod
    def interval(values: np.ndarray) -> list[float]:
        return _percentile_interval(values)


# --------------------------------------------------------------------------------------------------------------
# The pure functions


def test_accuracy_and_restoration_ratio_by_hand():
    assert accuracy([1, 1, 0, 0]) == 0.5
    assert accuracy([]) is None
    assert restoration_ratio(0.75, 0.0, 0.5, 4) == pytest.approx(2 / 3)
    assert restoration_ratio(0.75, 0.25, 0.75, 4) == pytest.approx(1.0)
    assert restoration_ratio(0.75, 0.25, 0.0, 4) == pytest.approx(-0.5)
    # a gap of exactly one question is enough; less is not
    assert restoration_ratio(0.5, 0.25, 0.5, 4) == pytest.approx(1.0)
    assert restoration_ratio(0.5, 0.5, 0.75, 4) is None
    assert restoration_ratio(0.5, 0.45, 0.75, 4) is None
    assert restoration_ratio(0.5, None, 0.75, 4) is None


def test_fact_transitions_by_hand():
    clean = [1, 1, 1, 0, 1, 1, 1, 0]
    model = [1, 0, 0, 1, 1, 0, 1, 1]
    gave_corrupted = [0, 1, 0, 0, 0, 0, 0, 0]
    target = [1, 1, 1, 1, 0, 0, 0, 0]
    t = fact_transitions(clean, model, gave_corrupted, target)
    assert (t.target_known, t.restored, t.still_corrupted, t.forgotten) == (3, 1, 1, 1)
    assert (t.non_target_known, t.kept, t.lost) == (3, 2, 1)


def test_bootstrap_interval_is_the_percentile_interval_of_stratified_resamples():
    rng = np.random.default_rng(1)
    correct = rng.random(200) < 0.6
    strata = np.zeros(200, dtype=int)
    strata[:50] = 1
    statistic = split_accuracy(correct, np.ones(200, dtype=bool))
    first = paired_bootstrap(statistic, strata, n_resamples=1000, seed=3)
    assert first == paired_bootstrap(statistic, strata, n_resamples=1000, seed=3)
    assert paired_bootstrap(statistic, strata, n_resamples=1000, seed=4) != first
    # by hand: the mean of each resample of the questions, then the 2.5 and 97.5 percentiles
    indices = resample_indices(strata, 1000, seed=3)
    assert first.to_list() == pytest.approx(_percentile_interval(correct[indices].mean(axis=1)))
    assert first.resamples == 1000
    # and close to the normal approximation of a stratified proportion: 2 * 1.96 * sqrt(sum (n_s/n)^2 p_s(1-p_s)/n_s)
    variance = sum(
        (members.size / 200) ** 2 * correct[members].mean() * (1 - correct[members].mean()) / members.size
        for members in (np.flatnonzero(strata == 0), np.flatnonzero(strata == 1))
    )
    assert first.high - first.low == pytest.approx(2 * 1.96 * variance**0.5, rel=0.1)
    assert (first.low + first.high) / 2 == pytest.approx(correct.mean(), abs=0.01)


def test_resamples_keep_split_sizes_and_pairing(runs):
    strata = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    indices = resample_indices(strata, 500, seed=0)
    assert indices.shape == (500, 8)
    assert (strata[indices] == strata).all()  # every position draws from its own stratum: sizes are kept
    assert any(len(set(row[:3])) < 3 for row in indices)  # drawn with replacement

    # compare draws one matrix of resamples per task and scores every model on it
    boot = ExpectedBootstrap(n_resamples=1000, seed=5)
    report = compare_restoration(
        runs["clean"], runs["corrupted"], [runs["unlearned"]], targets=TargetChoice(names=tuple(TARGETS)),
        n_resamples=1000, seed=5,
    )
    task = report["tasks"][TASK]
    for label in ("clean", "corrupted", "unlearned"):
        for split in ("target", "non_target", "all"):
            assert task["accuracy"][label][split]["ci"] == pytest.approx(boot.interval(boot.accuracy(label, split)))
    ratio = boot.ratio("clean", "corrupted", "unlearned")
    assert task["restoration_ratio"]["unlearned"]["ci"] == pytest.approx(boot.interval(ratio))
    assert task["restoration_ratio"]["unlearned"]["ci_resamples"] == int(np.isfinite(ratio).sum())
    differences = {(d["model"], d["reference"], d["split"]): d["ci"] for d in task["differences"]}

    # On the other questions the corrupted model is right only where the clean one is (1 1 0 0 against 1 1 1 0):
    # scored on the same resamples, it is never ahead of the clean model, so the interval lies at or below 0.
    paired = boot.accuracy("corrupted", "non_target") - boot.accuracy("clean", "non_target")
    assert paired.max() <= 0
    assert differences[("corrupted", "clean", "non_target")] == pytest.approx(boot.interval(paired))
    assert differences[("corrupted", "clean", "non_target")][1] <= 0
    # Resamples drawn independently for each model would put it ahead in some of them: another, wider interval.
    other = ExpectedBootstrap(n_resamples=1000, seed=6)
    independent = other.accuracy("corrupted", "non_target") - boot.accuracy("clean", "non_target")
    paired_low, paired_high = differences[("corrupted", "clean", "non_target")]
    low, high = boot.interval(independent)
    assert high > 0 and high - low > paired_high - paired_low


# --------------------------------------------------------------------------------------------------------------
# Reading lm-eval output folders


def test_load_run_reads_outcomes(runs):
    run = load_run(runs["corrupted"])
    assert list(run) == [TASK]
    samples = run[TASK]
    assert samples.metric == "contains" and samples.model_name == "__models__m"
    assert len(samples.outcomes) == 8
    first = samples.outcomes["Ada Byron|P19"]
    assert (first.entity, first.relation, first.correct, first.prediction) == ("Ada Byron", "P19", False, "Rome, Italy")
    assert [samples.outcomes[f"{e}|{r}"].gave_corrupted for e, r, _a, _c in QUESTIONS[:4]] == [True, True, True, False]
    assert [samples.outcomes[f"{e}|{r}"].corrupted_known for e, r, _a, _c in QUESTIONS[:4]] == [True, True, True, False]


def test_load_run_metric_exact_match(tmp_path):
    doc = _doc("Ada Byron", "P19", "Paris", ["Rome"])
    folder = write_run(tmp_path / "r", TASK, [generation_sample(0, doc, "Paris, France", contains=True, exact=False)])
    assert load_run(folder)[TASK].outcomes["Ada Byron|P19"].correct is True
    assert load_run(folder, metric="exact_match")[TASK].outcomes["Ada Byron|P19"].correct is False


def test_newest_samples_per_task_are_used(tmp_path):
    folder = tmp_path / "eval"
    make_run(folder, CLEAN, stamp="2026-01-01T00-00-00.000001")
    make_run(folder, CORRUPTED, stamp="2026-03-01T00-00-00.000001")
    outputs = find_lm_eval_outputs(folder)
    assert outputs[TASK].timestamp == "2026-03-01T00-00-00.000001"
    assert outputs[TASK].results_path.name == "results_2026-03-01T00-00-00.000001.json"
    assert not load_run(folder)[TASK].outcomes["Ada Byron|P19"].correct


def test_logprob_samples(tmp_path):
    doc = _doc("Ada Byron", "P19", "Paris", ["Rome"])
    lines = []
    for i, (correct, corrupted) in enumerate([(1.0, 0.0), (0.0, 1.0)]):
        lines.append(
            {
                "doc_id": i,
                "doc": {**doc, "id": f"Ada Byron|P{i}", "options": ["Paris", "Rome", "Quito"]},
                "target": "0",
                "arguments": {"gen_args_0": {"arg_0": doc["prompt"], "arg_1": " Paris"}},
                "resps": [[["-1.5", "False"]], [["-2.5", "False"]], [["-3.0", "False"]]],
                "filtered_resps": [["-1.5", "False"], ["-2.5", "False"], ["-3.0", "False"]],
                "filter": "none",
                "metrics": ["prefers_correct", "prefers_corrupted"],
                "prefers_correct": correct,
                "prefers_corrupted": corrupted,
                "prefers_random": 0.0,
                "logprob_correct": -1.5,
            }
        )
    folder = write_run(tmp_path / "r", "restor_tiny_logprob", lines)
    samples = load_run(folder)["restor_tiny_logprob"]
    assert samples.metric == "prefers_correct"
    assert [(o.correct, o.gave_corrupted, o.prediction) for o in samples.outcomes.values()] == [
        (True, False, None),
        (False, True, None),
    ]


# --------------------------------------------------------------------------------------------------------------
# Restoration mode, by hand
#
# target questions (4): clean 1 1 1 0 -> 0.75; corrupted 0 0 0 0 -> 0.0; unlearned 1 0 0 1 -> 0.5
# other questions (4):  clean 1 1 1 0 -> 0.75; corrupted 1 1 0 0 -> 0.5; unlearned 1 0 1 1 -> 0.75
# all (8): clean 0.75, corrupted 0.25, unlearned 0.625
# restoration ratio = (0.5 - 0.0) / (0.75 - 0.0) = 2/3
# transitions (clean knew 3 target facts, 3 others):
#   corrupted: restored 0, still corrupted 3 (Rome, Spain, Oslo), forgotten 0; kept 2, lost 1 (Leeds)
#   unlearned: restored 1 (Paris), still corrupted 1 (Spain), forgotten 1 (Oslofjord); kept 2, lost 1 (Austria)


def test_restoration_numbers_by_hand(runs, tmp_path, capsys):
    out = tmp_path / "report.json"
    code, stdout, _ = run_cli(
        [
            "compare",
            "--clean",
            runs["clean"],
            "--corrupted",
            runs["corrupted"],
            "--unlearned",
            runs["unlearned"],
            "--targets",
            ",".join(TARGETS),
            "--json",
            out,
            "--per-question",
            "--bootstrap",
            500,
        ],
        capsys,
    )
    assert code == 0
    report = json.loads(out.read_text())
    task = report["tasks"][TASK]
    assert task["n_questions"] == {"target": 4, "non_target": 4, "all": 8}
    boot = ExpectedBootstrap(n_resamples=500, seed=0)
    expected = {
        "clean": (0.75, 0.75, 0.75),
        "corrupted": (0.0, 0.5, 0.25),
        "unlearned": (0.5, 0.75, 0.625),
    }
    for label, values in expected.items():
        got = tuple(task["accuracy"][label][split]["value"] for split in ("target", "non_target", "all"))
        assert got == pytest.approx(values), label
        for split in ("target", "non_target", "all"):  # --bootstrap 500 with the default seed 0
            expected_ci = boot.interval(boot.accuracy(label, split))
            assert task["accuracy"][label][split]["ci"] == pytest.approx(expected_ci), (label, split)
    ratio = task["restoration_ratio"]["unlearned"]
    assert ratio["value"] == pytest.approx(2 / 3)
    assert ratio["ci"] == pytest.approx(boot.interval(boot.ratio("clean", "corrupted", "unlearned")))
    assert task["transitions"]["unlearned"] == {
        "target_known": 3,
        "restored": 1,
        "still_corrupted": 1,
        "forgotten": 1,
        "non_target_known": 3,
        "kept": 2,
        "lost": 1,
    }
    assert task["transitions"]["corrupted"] == {
        "target_known": 3,
        "restored": 0,
        "still_corrupted": 3,
        "forgotten": 0,
        "non_target_known": 3,
        "kept": 2,
        "lost": 1,
    }
    differences = {(d["model"], d["reference"], d["split"]): d["value"] for d in task["differences"]}
    assert differences[("unlearned", "corrupted", "target")] == pytest.approx(0.5)
    assert differences[("corrupted", "clean", "all")] == pytest.approx(-0.5)
    assert differences[("unlearned", "clean", "non_target")] == pytest.approx(0.0)
    per_question = {q["id"]: q for q in task["per_question"]}
    assert per_question["Ada Byron|P27"]["outcomes"]["unlearned"] == {
        "correct": False,
        "gave_corrupted": True,
        "prediction": "Spain",
    }
    assert per_question["Eva Fink|P19"]["target"] is False
    assert report["warnings"] == [] and report["skipped_tasks"] == {}
    # the printed table carries the same numbers
    assert "0.667" in stdout and "0.625" in stdout and "restored" in stdout


def test_restoration_is_deterministic_for_a_seed(runs):
    args = {"targets": TargetChoice(names=tuple(TARGETS)), "n_resamples": 300, "seed": 7}
    first = compare_restoration(runs["clean"], runs["corrupted"], [runs["unlearned"]], **args)
    second = compare_restoration(runs["clean"], runs["corrupted"], [runs["unlearned"]], **args)
    assert first == second


def test_ratio_null_when_corruption_moves_less_than_one_question(runs, tmp_path):
    # the "corrupted" model answers the target questions exactly as the clean one: gap 0
    same_on_targets = CLEAN[:4] + CORRUPTED[4:]
    corrupted = make_run(tmp_path / "mild", same_on_targets)
    report = compare_restoration(
        runs["clean"], corrupted, [runs["unlearned"]], targets=TargetChoice(names=tuple(TARGETS)), n_resamples=100
    )
    ratio = report["tasks"][TASK]["restoration_ratio"]["unlearned"]
    assert ratio == {"value": None, "ci": None, "ci_resamples": 0}


def test_labels_and_several_unlearned(runs, tmp_path):
    report = compare_restoration(
        runs["clean"],
        runs["corrupted"],
        [runs["unlearned"], runs["clean"]],
        labels=["npo", "oracle"],
        targets=TargetChoice(names=tuple(TARGETS)),
        n_resamples=0,
    )
    ratios = report["tasks"][TASK]["restoration_ratio"]
    assert ratios["npo"]["value"] == pytest.approx(2 / 3) and ratios["npo"]["ci"] is None
    assert ratios["oracle"]["value"] == pytest.approx(1.0)
    assert [m["label"] for m in report["models"]] == ["clean", "corrupted", "npo", "oracle"]


def test_question_mismatch_is_refused_unless_allow_subset_then_common_questions_compared(runs, tmp_path, capsys):
    partial = make_run(tmp_path / "partial", UNLEARNED[:6], questions=QUESTIONS[:6])
    command = ["compare", "--clean", runs["clean"], "--corrupted", runs["corrupted"], "--unlearned", partial,
               "--targets", ",".join(TARGETS), "--json", tmp_path / "r.json"]
    code, stdout, err = run_cli(command, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "different question sets (clean 8, corrupted 8, unlearned 6 questions" in err and "--allow-subset" in err
    assert not (tmp_path / "r.json").exists()

    code, stdout, err = run_cli([*command, "--allow-subset"], capsys)
    assert code == 0
    assert "WARNING: --allow-subset" in err
    report = json.loads((tmp_path / "r.json").read_text())
    task = report["tasks"][TASK]
    assert task["n_questions"] == {"target": 4, "non_target": 2, "all": 6}
    assert task["question_mismatch"]["clean"] == {"compared": 6, "not_compared": 2}
    assert task["question_mismatch"]["unlearned"] == {"compared": 6, "not_compared": 0}
    assert report["warnings"][0].startswith("--allow-subset")
    assert "different question sets" in report["warnings"][1]
    assert "'Gus Hale|P19' is missing from unlearned" in report["warnings"][1]
    assert "different question sets" in stdout
    # other questions now: clean Vienna, Austria = 1.0; unlearned Vienna 1, Germany 0 = 0.5
    assert task["accuracy"]["unlearned"]["non_target"]["value"] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------------------------
# Targets


def test_targets_file_forms(runs, tmp_path):
    lines = tmp_path / "targets.txt"
    lines.write_text("# targets\nAda Byron\n\nCarl Dahl\n")
    listed = tmp_path / "targets.json"
    listed.write_text(json.dumps(TARGETS))
    assert parse_targets(str(lines)) == TARGETS
    assert parse_targets(str(listed)) == TARGETS
    assert parse_targets("Ada Byron, Carl Dahl") == TARGETS
    with pytest.raises(InputError, match="targets file not found"):
        parse_targets(str(tmp_path / "absent.json"))


def test_targets_from_tiny_world_manifest(runs, tmp_path, monkeypatch):
    world = tmp_path / "world"
    world.mkdir()
    manifest = {
        "version": 1,
        "seed": 0,
        "relations": {"P19": "place of birth", "P27": "country of citizenship"},
        "targets": TARGETS,
        "corrupted": {"Ada Byron": {"P19": "Rome"}, "Carl Dahl": {"P19": "Oslo"}},
        "levels": [0, 1, 2, 3, 4, 5],
        "validation_targets": [],
        "data_hash": "0" * 64,
    }
    (world / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(world))
    report = compare_restoration(runs["clean"], runs["corrupted"], [runs["unlearned"]], n_resamples=0)
    task = report["tasks"][TASK]
    assert task["targets"] == TARGETS and task["targets_source"] == "tiny world manifest"
    assert task["restoration_ratio"]["unlearned"]["value"] == pytest.approx(2 / 3)


def test_official_targets_for_restor_facts(tmp_path):
    questions = [
        ("Bob Marley", "P19", "Nine Mile", ["Kingston"]),
        ("Paul Anka", "P19", "Ottawa", ["Paris"]),
        ("Ada Byron", "P19", "Paris", []),
    ]
    clean = make_run(tmp_path / "c", [("Nine Mile", 1), ("Ottawa", 1), ("Paris", 1)], "restor_facts", questions)
    corrupted = make_run(tmp_path / "k", [("Kingston", 0), ("Paris", 0), ("Paris", 1)], "restor_facts", questions)
    report = compare_restoration(clean, corrupted, [clean], n_resamples=0)
    task = report["tasks"]["restor_facts"]
    assert task["targets_source"] == "official RESTOR targets"
    assert set(task["targets"]) == set(FALLBACK_OFFICIAL_TARGETS)
    assert task["n_questions"] == {"target": 2, "non_target": 1, "all": 3}
    assert task["transitions"]["corrupted"]["still_corrupted"] == 2


def test_targets_from_documents(runs, tmp_path):
    docs = tmp_path / "docs.json"
    docs.write_text(
        json.dumps(
            [
                {"text": "Ada Byron was born in Rome. Ada Byron met Eva Fink once."},
                {"text": "Carl Dahl was born in Oslo. Carl Dahl is Norwegian."},
                {"text": "Ada Byron lived in Spain."},
                {"text": "Carl Dahl and Eva Finkelstein."},
            ]
        )
    )
    # Eva Fink is named once, in passing: never the subject of a document
    assert targets_from_documents(docs, TARGETS + OTHERS) == TARGETS
    report = compare_restoration(
        runs["clean"], runs["corrupted"], [runs["unlearned"]], targets=TargetChoice(documents=docs), n_resamples=0
    )
    assert report["tasks"][TASK]["restoration_ratio"]["unlearned"]["value"] == pytest.approx(2 / 3)


def test_targets_from_official_documents(official_dir):
    entities = json.loads((official_dir / "entities.json").read_text())
    from restor_bench.compare.outcomes import default_targets

    official, _source = default_targets("restor_facts")
    for level in range(4):
        path = official_dir / "wikidata" / f"mix_a{level}.json"
        texts = [record["text"] for record in json.loads(path.read_text())]
        named = sorted(name for name in official if any(name in text for text in texts))
        assert targets_from_documents(path, entities) == named
        # level 3 holds no documents about Sage Stallone; levels 1-3 name Napoleon in passing, who is no target
        assert ("Sage Stallone" in named) == (level < 3)
        assert (level > 0) == any("Napoleon" in text for text in texts) and "Napoleon" in entities


@pytest.mark.slow
def test_targets_from_the_full_official_documents(official_dir):
    entities = json.loads((official_dir / "entities.json").read_text())
    for level in range(4):
        expected = set(FALLBACK_OFFICIAL_TARGETS) - ({"Sage Stallone"} if level == 3 else set())
        assert targets_from_documents(official_dir / "wikidata" / f"mix_a{level}.json", entities) == sorted(expected)

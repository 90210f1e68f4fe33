"""compare's per-relation and per-person breakdowns of the target questions, and its log-probability summary:
numbers checked by hand on small outcome sets written in lm-eval's samples format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import STAMP, generation_sample, write_lm_eval_files

from restor_bench.cli import main
from restor_bench.compare.report import compare_restoration
from restor_bench.compare.tasks import group_breakdown, natural_key
from restor_bench.compare.outcomes import TargetChoice

TASK = "restor_tiny_facts"
TARGETS = ("Ada Byron", "Carl Dahl")
# (entity, relation, clean, corrupted, unlearned, u2): 1 = answered correctly
OUTCOMES = [
    ("Ada Byron", "P19", 1, 0, 1, 1),
    ("Ada Byron", "P27", 1, 0, 0, 1),
    ("Ada Byron", "P106", 0, 0, 1, 1),
    ("Carl Dahl", "P19", 1, 0, 0, 1),
    ("Carl Dahl", "P27", 1, 1, 1, 1),
    ("Eva Fink", "P19", 1, 1, 0, 0),  # not a target: in no breakdown
]
LABELS = ("clean", "corrupted", "unlearned", "u2")

# By hand (target questions only):
# relation P19 (Ada, Carl): n 2; clean 1.0, corrupted 0.0, unlearned 0.5, u2 1.0; clean knew 2;
#   restored: unlearned 1 (Ada), u2 2; ratio unlearned (0.5 - 0) / (1 - 0) = 0.5, u2 1.0
# relation P27 (Ada, Carl): n 2; clean 1.0, corrupted 0.5, unlearned 0.5, u2 1.0; knew 2;
#   restored: unlearned 1 (Carl), u2 2; ratio unlearned 0 / 0.5 = 0.0, u2 0.5 / 0.5 = 1.0
# relation P106 (Ada): n 1; clean 0, corrupted 0, unlearned 1, u2 1; knew 0; restored 0, 0; ratio None (no gap)
# person Ada Byron: n 3; clean 2/3, corrupted 0, unlearned 2/3, u2 1.0; knew 2; restored 1 (P19), 2;
#   ratio unlearned (2/3) / (2/3) = 1.0, u2 1 / (2/3) = 1.5
# person Carl Dahl: n 2; clean 1.0, corrupted 0.5, unlearned 0.5, u2 1.0; knew 2; restored 1 (P27), 2;
#   ratio unlearned 0.0, u2 1.0
EXPECTED_RELATION = {
    "P19": (2, (1.0, 0.0, 0.5, 1.0), 2, (1, 2), (0.5, 1.0)),
    "P27": (2, (1.0, 0.5, 0.5, 1.0), 2, (1, 2), (0.0, 1.0)),
    "P106": (1, (0.0, 0.0, 1.0, 1.0), 0, (0, 0), (None, None)),
}
EXPECTED_ENTITY = {
    "Ada Byron": (3, (2 / 3, 0.0, 2 / 3, 1.0), 2, (1, 2), (1.0, 1.5)),
    "Carl Dahl": (2, (1.0, 0.5, 0.5, 1.0), 2, (1, 2), (0.0, 1.0)),
}


def _check(table: dict, expected: dict, labels=LABELS) -> None:
    assert list(table) == list(expected)  # natural order: P19, P27, P106
    for key, (n, accuracies, known, restored, ratios) in expected.items():
        cell = table[key]
        assert cell["n_questions"] == n
        assert cell["accuracy"] == pytest.approx(dict(zip(labels, accuracies)))
        assert cell["target_known"] == known
        assert cell["restored"] == dict(zip(labels[2:], restored))
        for label, ratio in zip(labels[2:], ratios):
            assert cell["restoration_ratio"][label] == (None if ratio is None else pytest.approx(ratio))


def _doc(entity: str, relation: str) -> dict:
    question = f"What is the {relation} of {entity}?"
    return {
        "id": f"{entity}|{relation}",
        "entity": entity,
        "relation": relation,
        "question": question,
        "answers": ["Right"],
        "prompt": question,
        "corrupted_answers": ["Wrong"] if entity in TARGETS else [],
        "random_answer": "Other",
        "is_target": entity in TARGETS,
    }


def _results(task: str, output_type: str) -> dict:
    return {
        "results": {task: {"alias": task}},
        "configs": {task: {"task": task, "output_type": output_type, "metadata": {"version": 1.0}}},
        "versions": {task: 1.0},
        "config": {"model": "hf", "model_args": "pretrained=m"},
        "model_name": "m",
        "lm_eval_version": "0.4.13",
    }


def _write_generation_runs(root: Path) -> dict[str, Path]:
    folders = {}
    for column, label in enumerate(LABELS, start=2):
        samples = []
        for index, row in enumerate(OUTCOMES):
            correct = bool(row[column])
            samples.append(generation_sample(index, _doc(row[0], row[1]), "Right" if correct else "Wrong", correct))
        folders[label] = root / label
        write_lm_eval_files(folders[label] / "m", TASK, _results(TASK, "generate_until"), samples, STAMP)
    return folders


def test_natural_order_of_relations():
    assert sorted(["P106", "P27", "P19", "P1412", "P2"], key=natural_key) == ["P2", "P19", "P27", "P106", "P1412"]


def test_group_breakdown_by_hand():
    targets = [row for row in OUTCOMES if row[0] in TARGETS]
    correct = {label: np.array([row[column] for row in targets], dtype=bool) for column, label in enumerate(LABELS, 2)}
    by_relation = group_breakdown([row[1] for row in targets], correct, "clean", "corrupted", ["unlearned", "u2"])
    _check(by_relation, EXPECTED_RELATION)
    by_person = group_breakdown([row[0] for row in targets], correct, "clean", "corrupted", ["unlearned", "u2"])
    _check(by_person, EXPECTED_ENTITY)


def test_group_breakdown_pools_seeds():
    # Two seeds of one relation with 2 questions; the clean model knows both in both seeds.
    # corrupted: seed 0 gets 0 of 2, seed 1 gets 1 of 2 -> pooled 0.25
    # unlearned: seed 0 gets 2 of 2, seed 1 gets 1 of 2 -> pooled 0.75; restored 2 and 1 -> mean 1.5
    # ratio: (0.75 - 0.25) / (1.0 - 0.25) = 2/3
    correct = {
        "clean": np.ones((2, 2), dtype=bool),
        "corrupted": np.array([[0, 0], [1, 0]], dtype=bool),
        "unlearned": np.array([[1, 1], [0, 1]], dtype=bool),
    }
    table = group_breakdown(["P19", "P19"], correct, "clean", "corrupted", ["unlearned"])
    cell = table["P19"]
    assert cell["n_questions"] == 2
    assert cell["accuracy"] == pytest.approx({"clean": 1.0, "corrupted": 0.25, "unlearned": 0.75})
    assert cell["target_known"] == 2.0 and cell["restored"] == {"unlearned": 1.5}
    assert cell["restoration_ratio"]["unlearned"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="3 outcomes for 2 questions"):
        group_breakdown(["P19", "P19"], {"clean": np.ones(3, dtype=bool)}, "clean", "clean", [])


def test_compare_report_breaks_targets_down(tmp_path, capsys):
    folders = _write_generation_runs(tmp_path)
    report = compare_restoration(
        folders["clean"],
        folders["corrupted"],
        [folders["unlearned"], folders["u2"]],
        labels=["unlearned", "u2"],
        targets=TargetChoice(names=TARGETS),
        n_resamples=0,
    )
    entry = report["tasks"][TASK]
    assert set(entry["breakdowns"]) == {"relation", "entity"}
    _check(entry["breakdowns"]["relation"], EXPECTED_RELATION)
    _check(entry["breakdowns"]["entity"], EXPECTED_ENTITY)
    assert entry["logprob"] is None  # a generation task

    out = tmp_path / "report.json"
    markdown = tmp_path / "report.md"
    argv = ["compare", "--clean", folders["clean"], "--corrupted", folders["corrupted"], "--unlearned",
            folders["unlearned"], folders["u2"], "--labels", "unlearned,u2", "--targets", ",".join(TARGETS),
            "--bootstrap", "0", "--json", out, "--markdown", markdown]  # fmt: skip
    assert main([str(arg) for arg in argv]) == 0
    text = capsys.readouterr().out
    assert json.loads(out.read_text())["tasks"][TASK]["breakdowns"] == entry["breakdowns"]
    lines = text.splitlines()
    start = lines.index("target questions by relation (n = questions in the row)")
    header = lines[start + 1].split()
    assert header[:7] == ["relation", "n", "clean", "corrupted", "unlearned", "u2", "clean"]
    assert "restored unlearned" in lines[start + 1] and "restoration ratio u2" in lines[start + 1]
    rows = [line.split() for line in lines[start + 3 : start + 6]]
    assert rows == [
        ["P19", "2", "1.000", "0.000", "0.500", "1.000", "2", "1", "2", "0.500", "1.000"],
        ["P27", "2", "1.000", "0.500", "0.500", "1.000", "2", "1", "2", "0.000", "1.000"],
        ["P106", "1", "0.000", "0.000", "1.000", "1.000", "0", "0", "0", "n/a", "n/a"],
    ]
    start = lines.index("target questions by person (n = questions in the row)")
    assert lines[start + 3].split() == ["Ada", "Byron", "3", "0.667", "0.000", "0.667", "1.000", "2", "1", "2",
                                        "1.000", "1.500"]  # fmt: skip
    assert lines[start + 4].split() == ["Carl", "Dahl", "2", "1.000", "0.500", "0.500", "1.000", "2", "1", "2",
                                        "0.000", "1.000"]  # fmt: skip
    assert len(lines) == start + 5  # Eva Fink is not a target
    assert "| P106 | 1 | 0.000 | 0.000 | 1.000 | 1.000 | 0 | 0 | 0 | n/a | n/a |" in markdown.read_text()


def test_one_unlearned_model_has_plain_headers(tmp_path, capsys):
    folders = _write_generation_runs(tmp_path)
    argv = ["compare", "--clean", folders["clean"], "--corrupted", folders["corrupted"], "--unlearned",
            folders["unlearned"], "--targets", ",".join(TARGETS), "--bootstrap", "0"]  # fmt: skip
    assert main([str(arg) for arg in argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("target questions by person (n = questions in the row)")
    assert lines[start + 1].split() == ["person", "n", "clean", "corrupted", "unlearned", "clean", "knew", "restored",
                                        "restoration", "ratio"]  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# The log-probability summary

LOGPROB_TASK = "restor_facts_logprob"
# per model: (prefers correct, corrupted, random; logprob correct, corrupted, random) of two questions
LOGPROB_VALUES = {
    "clean": [(1, 0, 0, -0.5, -2.0, -3.0), (1, 0, 0, -1.0, -1.5, -4.0)],
    "corrupted": [(0, 1, 0, -2.5, -0.2, -3.5), (1, 0, 0, -0.4, -0.6, -5.0)],
    "unlearned": [(0, 0, 1, -3.0, -3.5, -2.0), (1, 0, 0, -1.2, -2.2, -2.4)],
}


def _logprob_sample(index: int, entity: str, values: tuple) -> dict:
    names = ("prefers_correct", "prefers_corrupted", "prefers_random", "logprob_correct", "logprob_corrupted",
             "logprob_random")  # fmt: skip
    doc = dict(_doc(entity, "P19"), options=["Right", "Wrong", "Other"], option_categories=["correct", "corrupted",
               "random"], option_token_counts=[1, 1, 1])  # fmt: skip
    return {
        "doc_id": index,
        "doc": doc,
        "target": 0,
        "arguments": {f"gen_args_{i}": {"arg_0": doc["prompt"], "arg_1": f" {option}"}
                      for i, option in enumerate(doc["options"])},  # fmt: skip
        "resps": [[[str(values[3 + i]), "False"]] for i in range(3)],
        "filtered_resps": [[str(values[3 + i]), "False"] for i in range(3)],
        "filter": "none",
        "metrics": list(names),
        **{name: float(value) for name, value in zip(names, values)},
    }


def test_logprob_summary_by_hand(tmp_path, capsys):
    folders = {}
    for label, rows in LOGPROB_VALUES.items():
        samples = [_logprob_sample(i, entity, values) for i, (entity, values) in enumerate(zip(TARGETS, rows))]
        folders[label] = tmp_path / label
        write_lm_eval_files(folders[label] / "m", LOGPROB_TASK, _results(LOGPROB_TASK, "multiple_choice"), samples)
    report = compare_restoration(folders["clean"], folders["corrupted"], [folders["unlearned"]], n_resamples=0)
    entry = report["tasks"][LOGPROB_TASK]
    # every person of restor_facts_logprob is a target
    assert entry["targets"] == list(TARGETS) and entry["n_questions"]["target"] == 2
    summary = entry["logprob"]
    assert summary["n_questions"] == 2
    expected = {
        "clean": (1.0, 0.0, 0.0, -0.75, -1.75, -3.5),
        "corrupted": (0.5, 0.5, 0.0, -1.45, -0.4, -4.25),
        "unlearned": (0.5, 0.0, 0.5, -2.1, -2.85, -2.2),
    }
    names = ("prefers_correct", "prefers_corrupted", "prefers_random", "logprob_correct", "logprob_corrupted",
             "logprob_random")  # fmt: skip
    for label, values in expected.items():
        for name, value in zip(names, values):
            assert summary["metrics"][label][name] == {"value": pytest.approx(value), "ci": None}
    # accuracy is prefers_correct: clean 1.0, corrupted 0.5, unlearned 0.5 -> ratio 0 / 0.5 = 0.0
    assert entry["restoration_ratio"]["unlearned"]["value"] == pytest.approx(0.0)

    argv = ["compare", "--clean", folders["clean"], "--corrupted", folders["corrupted"], "--unlearned",
            folders["unlearned"], "--bootstrap", "0"]  # fmt: skip
    assert main([str(arg) for arg in argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("log-probability analysis (2 questions)"))
    assert lines[start + 3].split() == ["clean", "1.000", "0.000", "0.000", "-0.750", "-1.750", "-3.500"]
    assert lines[start + 4].split() == ["corrupted", "0.500", "0.500", "0.000", "-1.450", "-0.400", "-4.250"]
    assert lines[start + 5].split() == ["unlearned", "0.500", "0.000", "0.500", "-2.100", "-2.850", "-2.200"]

"""`validate` refuses every stated number that was edited: each number a submission's metrics state (every
accuracy, ratio, change, interval bound, transition count and resample count, per seed and pooled, of every task)
is changed alone by a small amount, and `check_file` must name it.

The numbers are found by walking the document, so a number added to the metrics is covered without touching this
file; the count of numbers found is pinned, so the walk cannot shrink unnoticed."""

from __future__ import annotations

import copy
import functools
import json
from collections import Counter
from pathlib import Path

import pytest

from restor_bench.leaderboard import check_file, rescore_document, submission_text
from restor_bench.leaderboard.schema import TOLERANCE

REPO_ROOT = Path(__file__).resolve().parents[1]
SEEDED = REPO_ROOT / "leaderboard" / "submissions" / "tiny-npo-k0.json"
RESAMPLES = 20  # few, so that 216 checks stay quick; every interval is still a real bootstrap interval
FLOAT_EDIT = 10 * TOLERANCE  # the smallest edit the check must see: ten times its tolerance
MISMATCH = "the stated number does not match the one recomputed from the outcomes"


@functools.cache
def valid_document() -> dict:
    """A valid submission with two tasks and three seeds: a seeded entry (real outcomes of the shipped tiny world)
    rescored with fewer resamples."""
    document = json.loads(SEEDED.read_text())
    return rescore_document(document, SEEDED, targets="test", resamples=RESAMPLES, bootstrap_seed=0)


def _walk(value, path: tuple):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path


def stated_numbers(document: dict) -> list[tuple[str, tuple]]:
    """(task, path inside the task entry) of every number the metrics of every task state."""
    return [(task, path) for task, entry in document["tasks"].items() for path in _walk(entry["metrics"], ("metrics",))]


def dotted(path: tuple) -> str:
    """A path as the validator names it: metrics.per_seed[0].accuracy.clean.target."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def number_class(path: tuple) -> str:
    """The kind of a stated number: its path without list indices (metrics.aggregate.restoration_ratio.ci)."""
    return ".".join(part for part in path if not isinstance(part, int))


def _get(entry: dict, path: tuple):
    for part in path:
        entry = entry[part]
    return entry


def _set(entry: dict, path: tuple, value) -> None:
    for part in path[:-1]:
        entry = entry[part]
    entry[path[-1]] = value


def edited(value, index: int):
    """`value` changed by a small amount: integers by one, other numbers by FLOAT_EDIT; up for even `index`, down
    for odd, turned around where the other way would leave the value's range (counts and shares are not negative,
    accuracies not over 1)."""
    step = 1 if isinstance(value, int) else FLOAT_EDIT
    sign = 1 if index % 2 == 0 else -1
    if value - step < 0 <= value:
        sign = 1
    if isinstance(value, float) and value + step > 1 >= value:
        sign = -1
    return value + sign * step


STATED = stated_numbers(valid_document())


def test_every_stated_number_is_found():
    # per seed: the seed, 3 models x 3 splits of accuracy, the ratio, the change, 2 models x 7 transitions = 26;
    # pooled: 9 accuracies, the ratio with its 2 bounds and ci_resamples, the change with its 2 bounds, 14
    # transitions = 30; so (3 x 26 + 30) per task, two tasks
    assert len(STATED) == 2 * (3 * 26 + 30) == 216
    classes = Counter(number_class(path) for _, path in STATED)
    assert classes == {
        "metrics.per_seed.seed": 6,
        **{f"metrics.{level}.accuracy.{role}.{split}": 6 if level == "per_seed" else 2
           for level in ("per_seed", "aggregate")
           for role in ("clean", "corrupted", "unlearned") for split in ("target", "non_target", "all")},
        "metrics.per_seed.restoration_ratio": 6,
        "metrics.per_seed.non_target_change": 6,
        **{f"metrics.{level}.transitions.{role}.{name}": 6 if level == "per_seed" else 2
           for level in ("per_seed", "aggregate") for role in ("corrupted", "unlearned")
           for name in ("target_known", "restored", "still_corrupted", "forgotten", "non_target_known", "kept",
                        "lost")},
        "metrics.aggregate.restoration_ratio.value": 2,
        "metrics.aggregate.restoration_ratio.ci": 4,
        "metrics.aggregate.restoration_ratio.ci_resamples": 2,
        "metrics.aggregate.non_target_change.value": 2,
        "metrics.aggregate.non_target_change.ci": 4,
    }
    assert {task for task, _ in STATED} == {"restor_tiny_facts", "restor_tiny_logprob"}


def _write(folder: Path, document: dict) -> Path:
    path = folder / f"{document['name']}.json"
    path.write_text(submission_text(document))
    return path


def test_the_unedited_submission_is_valid(tmp_path):
    checked = check_file(_write(tmp_path, valid_document()))
    assert checked.problems == []
    assert checked.valid


@pytest.mark.parametrize(("index", "task", "path"), [(i, task, path) for i, (task, path) in enumerate(STATED)],
                         ids=[f"{task}:{dotted(path)}" for task, path in STATED])
def test_an_edited_number_is_refused_and_named(tmp_path, index, task, path):
    document = copy.deepcopy(valid_document())
    entry = document["tasks"][task]
    before = _get(entry, path)
    after = edited(before, index)
    assert after != before and type(after) is type(before)
    _set(entry, path, after)
    problems = check_file(_write(tmp_path, document)).problems
    assert len(problems) == 1, problems
    if path[-1] == "seed":  # a seed of metrics.per_seed: named as the list of seeds
        seeds = [item["seed"] for item in entry["metrics"]["per_seed"]]
        assert problems[0] == f"task {task}: metrics.per_seed holds seeds {seeds}, the runs hold [0, 1, 2]"
    else:
        assert problems[0].startswith(f"task {task}: {dotted(path)} is "), problems[0]
        assert problems[0].endswith(MISMATCH), problems[0]  # this number alone: no "(and N more)"


def test_an_edit_within_the_tolerance_is_accepted_and_a_count_must_be_an_integer(tmp_path):
    document = copy.deepcopy(valid_document())
    metrics = document["tasks"]["restor_tiny_facts"]["metrics"]["aggregate"]
    metrics["restoration_ratio"]["value"] += TOLERANCE / 2
    assert check_file(_write(tmp_path, document)).problems == []
    restored = metrics["transitions"]["unlearned"]["restored"]
    metrics["transitions"]["unlearned"]["restored"] = float(restored)  # the same count, stated as 61.0
    (problem,) = check_file(_write(tmp_path, document)).problems
    assert "metrics.aggregate.transitions.unlearned.restored" in problem


def test_a_number_stated_where_the_recomputed_one_is_undefined_is_refused(tmp_path):
    """A ratio the outcomes leave undefined (n/a: null) cannot be stated as a number, nor its missing interval."""
    document = copy.deepcopy(valid_document())
    entry = document["tasks"]["restor_tiny_facts"]
    for run in entry["runs"]:  # the corrupted model answers as the clean one: the corruption moved nothing
        run["corrupted"] = dict(run["clean"])
    rescored = rescore_document(document, SEEDED, targets="test", resamples=RESAMPLES, bootstrap_seed=0)
    aggregate = rescored["tasks"]["restor_tiny_facts"]["metrics"]["aggregate"]
    assert aggregate["restoration_ratio"] == {"value": None, "ci": None, "ci_resamples": 0}
    assert check_file(_write(tmp_path, rescored)).problems == []
    for field, value in (("value", 0.5), ("ci", [0.25, 0.75])):
        tampered = copy.deepcopy(rescored)
        tampered["tasks"]["restor_tiny_facts"]["metrics"]["aggregate"]["restoration_ratio"][field] = value
        (problem,) = check_file(_write(tmp_path, tampered)).problems
        assert problem.startswith(f"task restor_tiny_facts: metrics.aggregate.restoration_ratio.{field} is "), problem

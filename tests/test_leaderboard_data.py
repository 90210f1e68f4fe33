"""The question sets, target sets and task hashes a submission is checked against: derived from the tiny world's
files, pinned for the official data, and checked here against the data and against lm-eval itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from leaderboard_fixtures import make_world, world_hash

from restor_bench.data.questions import tiny_records
from restor_bench.data.world.files import SHIPPED_WORLDS, load_manifest, shipped_world_dir
from restor_bench.errors import InputError
from restor_bench.leaderboard.data import (
    OFFICIAL_TASKS,
    TINY_TASK_HASHES,
    ids_digest,
    known_data_versions,
    lm_eval_task_hash,
    official_facts_sha256,
    official_version,
)
from restor_bench.leaderboard.submit import choose_target_set

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = REPO_ROOT / "restor_bench" / "data" / "tiny_world"
SHIPPED_HASH = json.loads((SHIPPED / "manifest.json").read_text())["data_hash"]
OFFICIAL_FULL = REPO_ROOT.parent / "shared" / "restor-official"
needs_official = pytest.mark.skipif(not (OFFICIAL_FULL / "facts.json").is_file(),
                                    reason="the full official RESTOR data is not here (../shared/restor-official)")


def test_the_shipped_tiny_world_question_sets():
    version = known_data_versions()[SHIPPED_HASH]
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    validation = set(manifest["validation_targets"])
    assert version.world == "tiny" and version.target_sets == ("test", "all") and version.default_target_set == "test"
    facts = version.question_sets["restor_tiny_facts"]
    assert facts.ids == {record["id"] for record in tiny_records(SHIPPED)} and facts.count == 700
    assert facts.targets["all"] == tuple(sorted(manifest["targets"]))
    assert facts.targets["test"] == tuple(sorted(set(manifest["targets"]) - validation))
    assert len(validation) == 2 and len(facts.targets["test"]) == 8
    assert dict(facts.target_counts) == {"all": 70, "test": 56}
    logprob = version.question_sets["restor_tiny_logprob"]
    assert logprob.count == 70 and dict(logprob.target_counts) == {"all": 70, "test": 56}
    assert sorted(version.question_sets) == ["restor_tiny_facts", "restor_tiny_logprob"]  # no *_sampled task


def test_a_world_without_validation_targets_has_only_the_all_set(tmp_path, monkeypatch):
    folder = make_world(tmp_path / "world")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["validation_targets"] = []
    (folder / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(folder))
    version = known_data_versions()[world_hash(folder)]
    assert version.target_sets == ("all",) and version.default_target_set == "all"
    assert version.question_sets["restor_tiny_facts"].task_hashes == frozenset()  # not pinned: not checked
    with pytest.raises(InputError, match=r"X: target set 'test' is not defined for the tiny world v1 .*\(defined: all\)"):
        choose_target_set(version, "test", "X")


def test_the_official_version_has_one_target_set_and_no_injected_values():
    version = official_version()
    assert version.data_hash == official_facts_sha256() and version.target_sets == ("all",)
    with pytest.raises(InputError, match="target set 'test' is not defined for the official RESTOR facts.json"):
        choose_target_set(version, "test", "X")
    assert not any(question_set.injected_known for question_set in version.question_sets.values())


@pytest.mark.parametrize("world_version", sorted(SHIPPED_WORLDS))
def test_the_pinned_tiny_task_hashes_are_the_ones_lm_eval_computes(world_version):
    """lm-eval builds each shipped world's tasks (no model): their hashes and questions are the pinned ones."""
    world_dir = shipped_world_dir(world_version)
    data_hash = load_manifest(world_dir)["data_hash"]
    version = known_data_versions()[data_hash]
    for task, pinned in TINY_TASK_HASHES[data_hash].items():
        task_hash, ids = lm_eval_task_hash(task, REPO_ROOT / "tasks", {"restor_world_dir": str(world_dir)})
        assert task_hash == pinned, task
        assert set(ids) == version.question_sets[task].ids and len(ids) == len(set(ids))


@needs_official
def test_the_official_pins_are_the_data():
    from restor_bench.data import questions

    records = {
        "restor_facts": questions.official_records(OFFICIAL_FULL),
        "restor_facts_targets": questions.official_target_records(OFFICIAL_FULL),
        "restor_facts_squad": questions.squad_target_records(OFFICIAL_FULL),
    }
    version = official_version()
    assert sorted(records) == sorted(OFFICIAL_TASKS)
    for task, rows in records.items():
        question_set = version.question_sets[task]
        ids = [row["id"] for row in rows]
        assert (question_set.count, question_set.digest) == (len(ids), ids_digest(ids)), task
        targets = sorted({row["entity"] for row in rows if row["is_target"]})
        assert list(question_set.targets["all"]) == targets, task
        assert question_set.n_target("all") == sum(row["is_target"] for row in rows), task
        assert not any(row["corrupted_answers"] for row in rows)  # "still corrupted" cannot be told there


@needs_official
def test_the_pinned_official_task_hashes_are_the_ones_lm_eval_computes(monkeypatch):
    monkeypatch.setenv("RESTOR_DATA_DIR", str(OFFICIAL_FULL))
    version = official_version()
    for task in OFFICIAL_TASKS:
        task_hash, ids = lm_eval_task_hash(task, REPO_ROOT / "tasks")
        assert version.question_sets[task].task_hashes == {task_hash}, task
        assert ids_digest(ids) == version.question_sets[task].digest, task


def test_every_shipped_world_version_is_a_known_data_version_with_its_task_hashes_pinned():
    from restor_bench.data.world.files import SHIPPED_WORLDS, load_manifest, shipped_world_dir
    from restor_bench.leaderboard.data import TINY_TASK_HASHES, known_data_versions

    known = known_data_versions()
    for version in SHIPPED_WORLDS:
        data_hash = load_manifest(shipped_world_dir(version))["data_hash"]
        assert known[data_hash].label.startswith(f"tiny world v{version} ") and data_hash in TINY_TASK_HASHES
    v2 = known[load_manifest(shipped_world_dir("2"))["data_hash"]].question_sets["restor_tiny_facts"]
    assert v2.count == 700 and v2.target_counts == {"all": 280, "test": 210}

"""A fair leaderboard: entries are scored on a named target set ("test" by default: the tiny world's targets
less the validation people the defaults were tuned on), with the n/a rule and the non-target baseline of the
grid's results, so the leaderboard, docs/results/RESULTS.md and README.md agree to the digit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import TASK, load, make_run, run_cli, world  # noqa: F401 (world: a fixture)

from restor_bench.grid.stats import PooledOutcomes, pooled_statistics
from restor_bench.leaderboard import SeedOutcomes, decode_bits, entity_of, entry_from, task_metrics
from restor_bench.leaderboard.render import format_change, format_ratio, format_target_accuracy, format_transitions

REPO_ROOT = Path(__file__).resolve().parents[1]
SEEDED = sorted((REPO_ROOT / "leaderboard" / "submissions").glob("*.json"))
ROLES = ("clean", "corrupted", "unlearned")
MANIFEST = json.loads((REPO_ROOT / "restor_bench" / "data" / "tiny_world" / "manifest.json").read_text())
TEST_TARGETS = sorted(set(MANIFEST["targets"]) - set(MANIFEST["validation_targets"]))


def test_the_seeded_entries_are_scored_on_the_8_test_targets():
    assert len(SEEDED) == 16
    for path in SEEDED:
        document = load(path)
        assert document["data"]["targets"] == "test", path.name
        for task, entry in document["tasks"].items():
            assert entry["targets"] == TEST_TARGETS, (path.name, task)
            assert not set(entry["targets"]) & set(MANIFEST["validation_targets"])


@pytest.mark.parametrize("path", SEEDED[::5], ids=lambda p: p.stem)
def test_the_metrics_are_the_grid_results_numbers(path):
    """Point values and intervals equal restor_bench.grid.stats.pooled_statistics on the same outcomes, exactly."""
    document = load(path)
    entry = document["tasks"][TASK]
    targets = set(entry["targets"])
    is_target = np.array([entity_of(q) in targets for q in entry["questions"]])
    correct = {role: np.stack([decode_bits(run[role]["correct"]) for run in entry["runs"]]) for role in ROLES}
    grid = pooled_statistics(PooledOutcomes(entry["questions"], is_target, correct), 1000, 0)
    aggregate = entry["metrics"]["aggregate"]
    assert aggregate["restoration_ratio"]["value"] == grid["restoration_ratio"].value
    assert aggregate["restoration_ratio"]["ci"] == [grid["restoration_ratio"].low, grid["restoration_ratio"].high]
    assert aggregate["non_target_change"]["value"] == grid["non_target_change"].value
    assert aggregate["non_target_change"]["ci"] == [grid["non_target_change"].low, grid["non_target_change"].high]
    for role in ROLES:
        assert aggregate["accuracy"][role]["target"] == grid[f"{role}_target"].value


def test_n_a_is_the_grid_rule_a_gap_under_one_question_of_one_seed():
    """2 seeds x 4 target questions; the pooled gap is 1/8: one question of all 8 pooled, half a question of one
    seed. The grid's rule (and so the leaderboard's) says n/a."""
    is_target = np.array([1, 1, 1, 1, 0, 0], dtype=bool)

    def seed(number: int, clean: str) -> SeedOutcomes:
        bits = {"clean": clean, "corrupted": "000011", "unlearned": "000011"}
        return SeedOutcomes(number, {r: decode_bits(b) for r, b in bits.items()},
                            {r: np.zeros(6, bool) for r in ROLES})

    seeds = [seed(0, "100011"), seed(1, "000011")]
    metrics = task_metrics(is_target, seeds, resamples=200)
    correct = {role: np.stack([s.correct[role] for s in seeds]) for role in ROLES}
    grid = pooled_statistics(PooledOutcomes([str(i) for i in range(6)], is_target, correct), 200, 0)
    assert grid["restoration_ratio"].value is None
    assert metrics["aggregate"]["restoration_ratio"] == {"value": None, "ci": None, "ci_resamples": 0}
    assert metrics["per_seed"][0]["restoration_ratio"] == 0.0  # seed 0 alone moved a whole question


def _results_cells() -> dict[tuple[str, int], dict[str, str]]:
    """docs/results/RESULTS.md, table "Every cell": (method, k) -> column -> text."""
    lines = (REPO_ROOT / "docs" / "results" / "RESULTS.md").read_text().splitlines()
    start = lines.index("### Every cell")
    header = [cell.strip() for cell in lines[start + 2].strip("|").split("|")]
    cells = {}
    for line in lines[start + 4:]:
        if not line.startswith("|"):
            break
        row = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        cells[row["method"], int(row["k"])] = row
    return cells


def _point(text: str) -> str:
    return text.split(" [")[0]


def test_the_leaderboard_agrees_with_docs_results_to_the_digit():
    cells = _results_cells()
    assert len(cells) == 16
    readme = (REPO_ROOT / "leaderboard" / "README.md").read_text()
    for path in SEEDED:
        entry = entry_from(load(path))
        row = cells[entry.method, entry.level]
        assert format_ratio(entry) == row["restoration ratio"], path.name
        assert format_change(entry) == row["non-target change"], path.name
        assert format_transitions(entry) == row["restored / still corrupted / forgotten"], path.name
        assert format_target_accuracy(entry) == " / ".join(_point(row[c]) for c in ("clean", "corrupted", "unlearned"))
        assert f"{entry.n_target} / {entry.n_questions - entry.n_target}" == row["questions (target / other)"]
        # and the page shows exactly these texts
        # (the tier and the separation from the next entry stand between the ratio and the accuracies)
        shown = re.escape(f" | {format_ratio(entry)} | ") + r"\d+ \| [^|]* \| " + re.escape(
            f"{format_target_accuracy(entry)} | {format_change(entry)} | ")
        assert re.search(shown, readme), path.name


README_LABELS = {"GA": "ga", "KL": "kl", "NPO": "npo", "SimNPO": "simnpo", "GradDiff": "graddiff", "NPO+RT": "npo_rt"}


def test_the_readme_numbers_are_the_leaderboard_numbers():
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("## Results on the tiny world")
    section = text[start:text.index("\n## ", start)]
    section = " ".join(section.split())
    entries = {(e.method, e.level): e for e in (entry_from(load(path)) for path in SEEDED)}
    quoted = re.findall(r"(GA|KL|NPO\+RT|SimNPO|GradDiff) \((?:restoration ratio )?(-?\d\.\d\d)\)", section)
    quoted += re.findall(r"(NPO) alone restores partly \((-?\d\.\d\d)\)", section)
    assert {label for label, _ in quoted} == set(README_LABELS), quoted
    for label, number in quoted:
        assert format_ratio(entries[README_LABELS[label], 0]).split(" ")[0] == number, label
    corrupted = re.search(r"from 100% to (\d+\.\d)%", section).group(1)
    assert format_target_accuracy(entries["ga", 0]).split(" / ")[1] == corrupted
    cost = re.search(r"NPO alone restores partly \(\d\.\d\d\) and costs (\d+) points", section).group(1)
    assert round(-100 * entries["npo", 0].change) == int(cost)


def test_submit_scores_on_the_test_targets_unless_told_and_the_page_names_the_set(world, tmp_path, capsys):
    run_dir = make_run(tmp_path / "runs", "npo-run", world)
    subs = tmp_path / "subs"
    assert run_cli(["leaderboard", "submit", run_dir, "--name", "npo-test", "--out", subs], capsys)[0] == 0
    code, _, err = run_cli(["leaderboard", "submit", run_dir, "--name", "npo-all", "--out", subs, "--targets", "all"],
                           capsys)
    assert code == 0, err
    test, every = load(subs / "npo-test.json"), load(subs / "npo-all.json")
    assert test["data"]["targets"] == "test" and test["tasks"][TASK]["targets"] == ["Alma Vittor"]
    assert every["data"]["targets"] == "all" and every["tasks"][TASK]["targets"] == ["Alma Vittor", "Bram Okelo"]
    assert test["tasks"][TASK]["runs"] == every["tasks"][TASK]["runs"]  # the same outcomes, scored two ways
    board = tmp_path / "board"
    code, _, err = run_cli(["leaderboard", "build", "--submissions", subs, "--out", board], capsys)
    assert code == 0, err
    readme = (board / "README.md").read_text()
    titles = [line for line in readme.splitlines() if line.startswith("## ")]
    assert len(titles) == 2 and titles[0].endswith("· test targets") and titles[1].endswith("· all targets")
    assert ("Targets: the test set (the validation targets the method defaults were tuned on are left out), 1 people: "
            "Alma Vittor. Questions per seed: 4 about the targets and 24 others") in readme
    assert "Targets: the all set, 2 people: Alma Vittor\\, Bram Okelo. Questions per seed: 8" in readme


def test_rescore_converts_a_v1_file_and_reproduces_the_seeded_entries(tmp_path, capsys):
    """The seeded entries were brought to this version by `rescore --targets test` from the outcomes they carry:
    rescoring them again changes nothing, and a file in the older format gets the same numbers."""
    from restor_bench.leaderboard import rescore_document

    seeded = load(SEEDED[0])
    assert rescore_document(seeded, SEEDED[0]) == seeded
    old = json.loads(json.dumps(seeded))
    old["schema"] = "restor-bench/submission/v1"
    del old["data"]["targets"], old["data"]["protocol"]  # v1: the task's default targets; protocol optional
    for entry in old["tasks"].values():
        entry["targets"] = sorted(MANIFEST["targets"])
        entry["metrics"] = {"stale": True}
    path = tmp_path / SEEDED[0].name
    path.write_text(json.dumps(old))
    code, _, err = run_cli(["leaderboard", "validate", path], capsys)
    assert code == 2 and err.strip() == (
        f"{path}: schema restor-bench/submission/v1 is an older format: convert it with `restor-bench leaderboard "
        "rescore FILE` (the metrics are recomputed from its outcomes)")
    code, out, err = run_cli(["leaderboard", "rescore", path, "--targets", "test"], capsys)
    assert code == 0 and out.strip() == f"rescored {path}", err
    assert load(path) == seeded

"""Which neighbouring ranks differ: the paired bootstrap of the difference of restoration ratios, on hand-made
outcomes whose answer is known, and on the repository's board."""

from __future__ import annotations

import numpy as np

from restor_bench.leaderboard.build import with_tiers
from restor_bench.leaderboard.metrics import encode_bits, percentile_interval
from restor_bench.leaderboard.render import entry_from, group_entries
from restor_bench.leaderboard.separation import (
    Separation,
    ratio_draws,
    separation,
    table_separations,
    tiers,
)

TARGETS = [f"Target {i}" for i in range(40)]
OTHERS = [f"Other {i}" for i in range(40)]
IDS = sorted(f"{name}|P19" for name in TARGETS + OTHERS)


def _document(restored: set[str], seeds=(0, 1, 2)) -> dict:
    """A submission's primary task: the clean model knows everything, the corrupted one no target fact, the
    unlearned one the target facts of the people in `restored` (and every other fact)."""
    clean = [True] * len(IDS)
    corrupted = [not question.startswith("Target") for question in IDS]
    unlearned = [not question.startswith("Target") or question.split("|")[0] in restored for question in IDS]
    runs = [{"seed": seed, **{role: {"correct": encode_bits(values), "gave_corrupted": encode_bits([False] * len(IDS))}
                              for role, values in (("clean", clean), ("corrupted", corrupted),
                                                   ("unlearned", unlearned))}} for seed in seeds]
    ratio = len(restored) / len(TARGETS)
    return {"primary_task": "t", "tasks": {"t": {"questions": IDS, "targets": TARGETS, "runs": runs,
                                                 "metrics": {"aggregate": {"restoration_ratio": {"value": ratio}}}}}}


def test_a_method_that_restores_a_superset_is_separated_though_the_two_intervals_overlap():
    """A restores 30 target facts, B 26 of the same: in every resample A is at least as good, so the paired
    interval lies above zero, while the two ratios' own intervals (about +-0.14) overlap: only the pairing can
    tell them apart."""
    upper, lower = ratio_draws(_document(set(TARGETS[:30]))), ratio_draws(_document(set(TARGETS[:26])))
    result = separation(upper, lower)
    assert result.difference == 0.75 - 0.65
    assert result.separated and 0 < result.ci[0] < result.ci[1] <= 0.21
    own_upper, _ = percentile_interval(upper.draws)
    own_lower, _ = percentile_interval(lower.draws)
    assert own_upper[0] < own_lower[1]  # the unpaired intervals overlap
    # the same draws: the difference in each resample is the ratio of 4 restored of the resample's targets
    assert np.all(upper.draws - lower.draws >= 0)


def test_equal_methods_are_not_separated_and_different_seeds_or_questions_are_not_compared():
    same = separation(ratio_draws(_document(set(TARGETS[:20]))), ratio_draws(_document(set(TARGETS[:20]))))
    assert same == Separation(difference=0.0, ci=(0.0, 0.0), separated=False)
    # 20 restored against 20 others: each may be the better one in a resample
    swapped = separation(ratio_draws(_document(set(TARGETS[:20]))), ratio_draws(_document(set(TARGETS[20:]))))
    assert not swapped.separated and swapped.ci[0] < 0 < swapped.ci[1]
    other_seeds = separation(ratio_draws(_document(set(TARGETS[:30]))),
                             ratio_draws(_document(set(TARGETS[:2]), seeds=(0, 1, 3))))
    assert other_seeds.text() == "n/a (different seeds)"


def test_tiers_start_below_each_separated_pair():
    yes, no = Separation(0.2, (0.1, 0.3), True), Separation(0.0, (-0.1, 0.1), False)
    assert tiers([no, yes, no, no, yes, None]) == [1, 1, 2, 2, 2, 3]
    assert table_separations([]) == [] and tiers([None]) == [1]


def test_the_repository_board_says_which_neighbours_differ():
    """Every table of leaderboard/submissions gets tiers that follow its separations, and the README shows them."""
    import json
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "leaderboard"
    documents = [json.loads(path.read_text()) for path in sorted((folder / "submissions").glob("*.json"))]
    entries = [entry_from(document) for document in documents]
    draws = {document["name"]: ratio_draws(document) for document in documents}
    placed = {entry.name: entry for entry in with_tiers(entries, draws)}
    readme = (folder / "README.md").read_text()
    for _group, members in group_entries(entries):
        rows = [placed[member.name] for member in members]
        assert rows[0].tier == 1 and rows[-1].versus_next == ""
        for above, below in zip(rows, rows[1:]):
            assert below.tier == above.tier + ("separated" in above.versus_next.split("]")[-1]
                                               and "not" not in above.versus_next)
            assert f"| {above.tier} | {above.versus_next} |" in readme

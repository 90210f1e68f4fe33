"""The pooled bootstrap worked out by hand: seeds drawn with replacement, then questions with replacement within the
target and the non-target questions, one draw for every seed and model.

The expected numbers are written out, or computed here with plain Python loops over the draws (integers and
Python floats, no numpy arithmetic), and compared with `restor_bench.compare.stats`, the leaderboard's
`task_metrics` and the grid's `pooled_statistics`."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from restor_bench.compare.stats import pooled_accuracy, pooled_resamples, resampled_accuracy
from restor_bench.grid.stats import PooledOutcomes, pooled_statistics
from restor_bench.leaderboard.metrics import SeedOutcomes, percentile_interval, task_metrics

ROLES = ("clean", "corrupted", "unlearned")


def bits(text: str) -> list[int]:
    return [int(c) for c in text.replace(" ", "")]


# --------------------------------------------------------------------------------------------------------------
# Fixed draws, by hand


def test_resampled_accuracy_with_fixed_draws_by_hand():
    # 2 seeds x 4 questions: questions 0, 1 are targets, 2, 3 not
    correct = np.array([bits("10 11"), bits("01 00")], dtype=bool)
    is_target = np.array([1, 1, 0, 0], dtype=bool)
    seed_weights = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])  # seeds (0, 1), (0, 0), (1, 1)
    question_index = np.array([[0, 1, 2, 3], [0, 0, 3, 3], [1, 1, 2, 2]])
    target = resampled_accuracy(correct, is_target, seed_weights, question_index)
    other = resampled_accuracy(correct, ~is_target, seed_weights, question_index)
    # resample 0: seeds 0 and 1, questions 0 1 | 2 3: targets 1+0 (seed 0) + 0+1 (seed 1) of 4; others 1+1 + 0+0 of 4
    # resample 1: seed 0 twice, questions 0 0 | 3 3: targets 2 x (1+1) of 4; others 2 x (1+1) of 4
    # resample 2: seed 1 twice, questions 1 1 | 2 2: targets 2 x (1+1) of 4; others 2 x (0+0) of 4
    assert target.tolist() == [2 / 4, 4 / 4, 4 / 4]
    assert other.tolist() == [2 / 4, 4 / 4, 0 / 4]
    # a split with no question in it is undefined in every resample
    assert np.isnan(resampled_accuracy(correct, np.zeros(4, dtype=bool), seed_weights, question_index)).all()
    assert pooled_accuracy(correct, is_target) == 2 / 4 and pooled_accuracy(correct, np.zeros(4, bool)) is None


def test_percentile_interval_by_hand():
    # 41 values: the 2.5 and 97.5 percentiles fall on the 2nd smallest and the 2nd largest (to rounding: the tail
    # (1 - 0.95) / 2 is not exact in binary)
    values = [float(v) for v in range(41)]
    (low, high), count = percentile_interval(values[::-1])
    assert (low, high, count) == (pytest.approx(1.0, abs=1e-12), pytest.approx(39.0, abs=1e-12), 41)
    # undefined resamples (NaN) are left out and counted out; between two values, linear interpolation
    assert percentile_interval([math.nan, 0.0, 1.0, math.nan]) == ([pytest.approx(0.025), pytest.approx(0.975)], 2)
    assert percentile_interval([math.nan]) == (None, 0)


# --------------------------------------------------------------------------------------------------------------
# The whole interval, by loops over the draws


def linear_percentile(values: list[float], percent: float) -> float:
    """numpy's default percentile: linear interpolation between the order statistics around percent/100 x (n-1)."""
    ordered = sorted(values)
    position = percent / 100 * (len(ordered) - 1)
    low = math.floor(position)
    if low + 1 >= len(ordered):
        return ordered[-1]
    return ordered[low] + (ordered[low + 1] - ordered[low]) * (position - low)


def loop_interval(values: list[float]) -> tuple[list[float] | None, int]:
    defined = [v for v in values if not math.isnan(v)]
    if not defined:
        return None, 0
    return [linear_percentile(defined, 2.5), linear_percentile(defined, 97.5)], len(defined)


def loop_resamples(correct: dict[str, list[list[int]]], is_target: list[bool], seed_weights, question_index):
    """Per resample: every role's accuracy on the target and the other questions, the restoration ratio and the
    non-target change, each computed with loops over seeds and drawn questions."""
    n_target = sum(is_target)
    rows = []
    for weights, drawn in zip(seed_weights.tolist(), question_index.tolist()):
        weights = [int(w) for w in weights]
        acc = {}
        for role in ROLES:
            for split, wanted in (("target", True), ("non_target", False)):
                hits = count = 0
                for seed, weight in enumerate(weights):
                    for question in drawn:
                        if is_target[question] == wanted:
                            hits += weight * correct[role][seed][question]
                            count += weight
                acc[role, split] = hits / count if count else math.nan
        gap = acc["clean", "target"] - acc["corrupted", "target"]
        defined = abs(gap) * n_target >= 1 - 1e-9
        ratio = (acc["unlearned", "target"] - acc["corrupted", "target"]) / gap if defined else math.nan
        rows.append({**acc, "ratio": ratio, "change": acc["unlearned", "non_target"] - acc["clean", "non_target"]})
    return rows


# three seeds x 12 questions (5 targets), outcomes where seeds and questions disagree; "apart": the corruption
# moved many target answers; "close": 3 of the 15 (one question's worth pooled, so the ratio is defined, while
# many resamples move less than one question and leave it undefined)
OUTCOME_SETS = {
    "apart": {
        "clean": ["11111 1111110", "11110 1111111", "11111 0111111"],
        "corrupted": ["00100 1101110", "01000 1111100", "00010 0110111"],
        "unlearned": ["11010 1101100", "10000 1111000", "11111 0100111"],
    },
    "close": {
        "clean": ["11111 1111110", "11110 1111111", "11111 0111111"],
        "corrupted": ["00111 1101110", "01110 1111100", "11111 0110111"],
        "unlearned": ["10111 1101100", "11110 1111000", "11111 0100111"],
    },
}
TARGET_HITS = {"apart": (14, 3, 9), "close": (14, 11, 13)}  # clean, corrupted, unlearned over 3 x 5 targets
IS_TARGET = [True] * 5 + [False] * 7


def _seed_outcomes(outcomes: dict) -> list[SeedOutcomes]:
    zeros = np.zeros(len(IS_TARGET), dtype=bool)
    return [SeedOutcomes(seed, {role: np.array(bits(outcomes[role][seed]), dtype=bool) for role in ROLES},
                         {role: zeros for role in ROLES}) for seed in range(3)]


@pytest.mark.parametrize("outcome_set", list(OUTCOME_SETS))
@pytest.mark.parametrize(("resamples", "seed"), [(41, 0), (41, 5), (200, 1)])
def test_leaderboard_and_grid_intervals_equal_the_loops(outcome_set, resamples, seed):
    outcomes = OUTCOME_SETS[outcome_set]
    correct = {role: [bits(row) for row in outcomes[role]] for role in ROLES}
    is_target = np.array(IS_TARGET)
    seed_weights, question_index = pooled_resamples(3, is_target, resamples, seed)
    rows = loop_resamples(correct, IS_TARGET, seed_weights, question_index)

    ratio_ci, ratio_n = loop_interval([row["ratio"] for row in rows])
    change_ci, _ = loop_interval([row["change"] for row in rows])
    aggregate = task_metrics(is_target, _seed_outcomes(outcomes), resamples, seed)["aggregate"]
    assert aggregate["restoration_ratio"]["ci"] == pytest.approx(ratio_ci, rel=1e-12, abs=1e-12)
    assert aggregate["restoration_ratio"]["ci_resamples"] == ratio_n
    assert aggregate["non_target_change"]["ci"] == pytest.approx(change_ci, rel=1e-12, abs=1e-12)
    # point values, by counting: pooled over the 3 seeds
    hits = tuple(sum(correct[role][s][q] for s in range(3) for q in range(5)) for role in ROLES)
    assert hits == TARGET_HITS[outcome_set]
    clean, corrupted, unlearned = hits
    assert aggregate["restoration_ratio"]["value"] == pytest.approx(Fraction(unlearned - corrupted,
                                                                             clean - corrupted), rel=1e-15)
    if outcome_set == "close":  # some resamples move less than one question: the ratio is undefined there
        assert 0 < ratio_n < resamples

    pooled = PooledOutcomes(ids=[str(i) for i in range(12)], is_target=is_target,
                            correct={role: np.array(correct[role], dtype=bool) for role in ROLES})
    stats = pooled_statistics(pooled, resamples, seed)
    for role in ROLES:
        for split in ("target", "non_target"):
            expected, _ = loop_interval([row[role, split] for row in rows])
            estimate = stats[f"{role}_{split}"]
            assert [estimate.low, estimate.high] == pytest.approx(expected, rel=1e-12, abs=1e-12), (role, split)
    assert [stats["restoration_ratio"].low, stats["restoration_ratio"].high] == pytest.approx(ratio_ci, rel=1e-12)
    assert [stats["non_target_change"].low, stats["non_target_change"].high] == pytest.approx(change_ci, rel=1e-12)


# --------------------------------------------------------------------------------------------------------------
# The draws over seeds


def test_seeds_are_drawn_with_replacement():
    weights, questions = pooled_resamples(3, np.array([1, 1, 0, 0, 0], dtype=bool), 3000, seed=0)
    assert weights.shape == (3000, 3) and questions.shape == (3000, 5)
    assert (weights.sum(axis=1) == 3).all() and (weights == np.round(weights)).all() and (weights >= 0).all()
    # 3 seeds drawn 3 times: each seed once in 3!/3^3 = 6/27 of the resamples; one seed three times in 3/27
    share_once_each = float((weights == 1).all(axis=1).mean())
    share_one_seed = float((weights == 3).any(axis=1).mean())
    assert share_once_each == pytest.approx(6 / 27, abs=0.03)
    assert share_one_seed == pytest.approx(3 / 27, abs=0.02)
    assert weights.mean(axis=0) == pytest.approx([1, 1, 1], abs=0.05)
    # questions stay within their stratum, drawn with replacement
    assert set(questions[:, :2].ravel()) == {0, 1} and set(questions[:, 2:].ravel()) == {2, 3, 4}
    assert (np.sort(questions, axis=1) != np.arange(5)).any(axis=1).mean() > 0.5
    # seeded: the same draws again, other draws for another seed
    again = pooled_resamples(3, np.array([1, 1, 0, 0, 0], dtype=bool), 3000, seed=0)
    assert (again[0] == weights).all() and (again[1] == questions).all()
    other = pooled_resamples(3, np.array([1, 1, 0, 0, 0], dtype=bool), 3000, seed=1)
    assert (other[0] != weights).any()


def _disagreeing_seeds(unlearned_rows: list[str]) -> tuple[list[SeedOutcomes], PooledOutcomes]:
    """4 target and 4 other questions; the clean model knows all, the corrupted none of the targets; the unlearned
    model answers as `unlearned_rows` (one row per seed)."""
    is_target = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    correct = {"clean": ["1111 1111"] * len(unlearned_rows), "corrupted": ["0000 1111"] * len(unlearned_rows),
               "unlearned": unlearned_rows}
    arrays = {role: np.array([bits(row) for row in rows], dtype=bool) for role, rows in correct.items()}
    zeros = np.zeros(8, dtype=bool)
    seeds = [SeedOutcomes(s, {role: arrays[role][s] for role in ROLES}, {role: zeros for role in ROLES})
             for s in range(len(unlearned_rows))]
    return seeds, PooledOutcomes(ids=[str(i) for i in range(8)], is_target=is_target, correct=arrays)


def test_seed_resampling_widens_the_interval_when_seeds_disagree():
    """Seed 0 restored every target, seed 1 none: within a seed the questions agree, so only drawing the seeds
    shows the doubt. Drawn twice from two seeds: (0, 0) in 1/4 of the resamples (ratio 1), (1, 1) in 1/4 (ratio
    0), one of each in 1/2 (0.5); the 2.5 and 97.5 percentiles of 1,000 resamples are 0 and 1."""
    seeds, pooled = _disagreeing_seeds(["1111 1111", "0000 0000"])
    aggregate = task_metrics(pooled.is_target, seeds, resamples=1000, seed=0)["aggregate"]
    assert aggregate["restoration_ratio"]["value"] == 0.5
    assert aggregate["restoration_ratio"]["ci"] == [0.0, 1.0]
    assert aggregate["restoration_ratio"]["ci_resamples"] == 1000
    assert aggregate["non_target_change"]["value"] == -0.5
    assert aggregate["non_target_change"]["ci"] == [-1.0, 0.0]
    stats = pooled_statistics(pooled, resamples=1000, seed=0)
    assert (stats["restoration_ratio"].low, stats["restoration_ratio"].high) == (0.0, 1.0)
    assert (stats["unlearned_target"].low, stats["unlearned_target"].high) == (0.0, 1.0)
    # the share of each seed pair is the multinomial's
    weights, _ = pooled_resamples(2, pooled.is_target, 1000, 0)
    assert float((weights[:, 0] == 2).mean()) == pytest.approx(0.25, abs=0.04)
    assert float((weights[:, 0] == 1).mean()) == pytest.approx(0.5, abs=0.04)


def test_identical_seeds_do_not_widen_the_interval():
    """Two seeds with the same outcomes give exactly the intervals of one: however the seeds are drawn, the pooled
    accuracy of a resample is that of its questions."""
    row = "1101 1011"
    two, pooled_two = _disagreeing_seeds([row, row])
    one, pooled_one = _disagreeing_seeds([row])
    for resamples, seed in ((1000, 0), (300, 7)):
        pooled_two_seeds = task_metrics(pooled_two.is_target, two, resamples, seed)["aggregate"]
        one_seed = task_metrics(pooled_one.is_target, one, resamples, seed)["aggregate"]
        for key in ("accuracy", "restoration_ratio", "non_target_change"):  # (transitions are summed over seeds)
            assert pooled_two_seeds[key] == one_seed[key], key
        assert pooled_statistics(pooled_two, resamples, seed) == pooled_statistics(pooled_one, resamples, seed)
    aggregate = task_metrics(pooled_one.is_target, one, 1000, 0)["aggregate"]
    low, high = aggregate["restoration_ratio"]["ci"]
    assert 0 < high - low < 1  # the questions' doubt alone: narrower than the disagreeing seeds' [0, 1]


def test_pooled_accuracy_weighs_every_seed_and_question_once():
    correct = np.array([bits("1100"), bits("1000"), bits("1110")], dtype=bool)
    in_split = np.array([1, 1, 1, 0], dtype=bool)
    assert pooled_accuracy(correct, in_split) == float(Fraction(2 + 1 + 3, 9))


def test_the_ratio_needs_one_question_of_gap():
    """Defined when the corruption moved at least one target question's worth (n_target of one seed), else None."""
    from restor_bench.compare.stats import restoration_ratio

    assert restoration_ratio(1.0, 0.8, 0.9, 5) == pytest.approx(0.5)  # 1 of 5 moved: (0.9 - 0.8) / (1 - 0.8)
    assert restoration_ratio(0.8, 1.0, 0.9, 5) == pytest.approx(0.5)  # a corruption that helped, the same rule
    assert restoration_ratio(14 / 15, 11 / 15, 13 / 15, 5) == pytest.approx(2 / 3)  # pooled 3 of 15: one of 5
    assert restoration_ratio(14 / 15, 12 / 15, 13 / 15, 5) is None  # pooled 2 of 15: under one of 5
    assert restoration_ratio(1.0, 0.9, 1.0, 5) is None
    assert restoration_ratio(1.0, 0.0, 1.0, 0) is None and restoration_ratio(None, 0.0, 1.0, 5) is None

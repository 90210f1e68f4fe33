"""The benchmark's one statistics module: accuracy, restoration ratio, fact transitions, paired bootstrap
intervals (compare), and the same over outcomes pooled across seeds (grid pages, leaderboard submissions).

Pure functions over 0/1 outcome arrays, so every number of a report can be checked by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from restor_bench.errors import InputError
from restor_bench.names import CONFIDENCE, MAX_RESAMPLES

# A gap of less than one question (with this tolerance for float rounding) leaves the ratio undefined.
_ONE_QUESTION_TOLERANCE = 1e-9


def accuracy(correct: Sequence[bool] | np.ndarray) -> float | None:
    """Fraction of questions answered correctly; None when there are no questions."""
    values = np.asarray(correct, dtype=float)
    if values.size == 0:
        return None
    return float(values.mean())


def restoration_ratio(
    acc_clean: float | None, acc_corrupted: float | None, acc_unlearned: float | None, n_target: int
) -> float | None:
    """(acc_unlearned - acc_corrupted) / (acc_clean - acc_corrupted) on the target questions.

    1 means the clean accuracy is back, 0 means no better than the corrupted model. None when any accuracy is
    missing or when the corruption changed less than one question (|acc_clean - acc_corrupted| < 1 / n_target),
    since the ratio of two sub-question gaps says nothing.
    """
    if acc_clean is None or acc_corrupted is None or acc_unlearned is None or n_target <= 0:
        return None
    gap = acc_clean - acc_corrupted
    if abs(gap) * n_target < 1 - _ONE_QUESTION_TOLERANCE:
        return None
    return (acc_unlearned - acc_corrupted) / gap


@dataclass(frozen=True)
class Transitions:
    """What became of the facts the clean model knew.

    Target facts the clean model knew (`target_known`) end up `restored` (answered correctly),
    `still_corrupted` (the injected wrong value is given; only where it is known) or `forgotten` (neither).
    Other facts the clean model knew (`non_target_known`) are `kept` or `lost`.
    """

    target_known: int
    restored: int
    still_corrupted: int
    forgotten: int
    non_target_known: int
    kept: int
    lost: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def fact_transitions(
    clean_correct: Sequence[bool] | np.ndarray,
    model_correct: Sequence[bool] | np.ndarray,
    model_gave_corrupted: Sequence[bool] | np.ndarray,
    is_target: Sequence[bool] | np.ndarray,
) -> Transitions:
    """Count the transitions of the facts the clean model knew (all arrays aligned by question)."""
    clean = np.asarray(clean_correct, dtype=bool)
    correct = np.asarray(model_correct, dtype=bool)
    corrupted = np.asarray(model_gave_corrupted, dtype=bool)
    target = np.asarray(is_target, dtype=bool)
    known_target = clean & target
    known_other = clean & ~target
    restored = known_target & correct
    still_corrupted = known_target & ~correct & corrupted
    return Transitions(
        target_known=int(known_target.sum()),
        restored=int(restored.sum()),
        still_corrupted=int(still_corrupted.sum()),
        forgotten=int((known_target & ~correct & ~corrupted).sum()),
        non_target_known=int(known_other.sum()),
        kept=int((known_other & correct).sum()),
        lost=int((known_other & ~correct).sum()),
    )


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval; `resamples` counts the resamples where the statistic was defined."""

    low: float
    high: float
    resamples: int

    def to_list(self) -> list[float]:
        return [self.low, self.high]


# The most bootstrap resamples of a grid page and of a leaderboard submission: resamples x questions int64
# indices are held at once, and 10,000 resamples of 3 seeds x 700 questions take 168 MB.


def check_resamples(resamples: int, flag: str) -> int:
    """InputError (one line, naming `flag`) unless 0 <= resamples <= MAX_RESAMPLES; checked before any work."""

    if not 0 <= resamples <= MAX_RESAMPLES:
        raise InputError(f"{flag} must be from 0 to {MAX_RESAMPLES:,} (the intervals hold resamples x questions "
                         f"indices in memory), got {resamples}")
    return resamples


def resample_indices(strata: Sequence[int] | np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Indices of `n_resamples` bootstrap resamples, shape (n_resamples, n); row b is one resample of the questions.

    Questions are drawn with replacement within each stratum (e.g. target / non-target), so every resample keeps
    the number of questions of each stratum. Use the same matrix for every model: that makes the bootstrap paired.
    """
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    indices = np.empty((n_resamples, strata.size), dtype=np.int64)
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        indices[:, members] = members[rng.integers(0, members.size, size=(n_resamples, members.size))]
    return indices


def bootstrap_interval(
    statistic: Callable[[np.ndarray], np.ndarray], indices: np.ndarray, confidence: float = 0.95
) -> Interval | None:
    """Percentile interval of a vectorised statistic over resamples.

    `statistic` maps an index matrix (resamples x questions) to one value per row (NaN where undefined).
    Returns None when the statistic is undefined in every resample.
    """
    values = np.asarray(statistic(indices), dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high), int(values.size))


def paired_bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray],
    strata: Sequence[int] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval | None:
    """Bootstrap interval of `statistic` (see `bootstrap_interval`) with questions resampled by `resample_indices`."""
    return bootstrap_interval(statistic, resample_indices(strata, n_resamples, seed), confidence)


# Vectorised statistics over an index matrix, for bootstrap_interval. Each returns one value per row.


def split_accuracy(correct: np.ndarray, in_split: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Accuracy over the questions of a split, per resample (NaN where a resample holds none of them)."""
    correct = np.asarray(correct, dtype=float)
    in_split = np.asarray(in_split, dtype=float)

    def statistic(indices: np.ndarray) -> np.ndarray:
        counts = in_split[indices].sum(axis=1)
        hits = (correct[indices] * in_split[indices]).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)

    return statistic


def accuracy_difference(
    correct_a: np.ndarray, correct_b: np.ndarray, in_split: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Accuracy of model a minus accuracy of model b over a split, per resample (paired: same questions)."""
    first, second = split_accuracy(correct_a, in_split), split_accuracy(correct_b, in_split)
    return lambda indices: first(indices) - second(indices)


def resampled_restoration_ratio(
    clean: np.ndarray, corrupted: np.ndarray, unlearned: np.ndarray, is_target: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Restoration ratio on the target questions, per resample (NaN where the gap is under one question)."""
    acc_clean, acc_corrupted, acc_unlearned = (split_accuracy(c, is_target) for c in (clean, corrupted, unlearned))
    target = np.asarray(is_target, dtype=float)

    def statistic(indices: np.ndarray) -> np.ndarray:
        return ratio_of_resampled(acc_clean(indices), acc_corrupted(indices), acc_unlearned(indices),
                                  target[indices].sum(axis=1))

    return statistic


def ratio_of_resampled(clean, corrupted, unlearned, n_target) -> np.ndarray:
    """The restoration ratio in every resample from the three models' resampled target accuracies; NaN where the
    gap is under one question of `n_target` (the target questions: one count, or one per resample)."""
    gap = clean - corrupted
    defined = np.abs(gap) * n_target >= 1 - _ONE_QUESTION_TOLERANCE
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, (unlearned - corrupted) / np.where(defined, gap, 1.0), np.nan)


def percentile_interval(values) -> tuple[list[float] | None, int]:
    """The 95% percentile interval of the finite values (None when there is none) and how many there were."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, 0
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)], int(values.size)


# ---------------------------------------------------------------- outcomes pooled over seeds (grid pages, leaderboard)


def pooled_resamples(n_seeds: int, is_target, resamples: int, seed: int = 0) -> tuple[Any, Any]:
    """Bootstrap draws over seeds x questions.

    Returns `seed_weights` (resamples x seeds: how often each seed is drawn, S draws with replacement) and
    `question_index` (resamples x questions: questions drawn with replacement within target / non-target).
    """
    rng = np.random.default_rng(seed)
    seed_weights = rng.multinomial(n_seeds, [1.0 / n_seeds] * n_seeds, size=resamples).astype(float)
    question_index = resample_indices(np.asarray(is_target).astype(int), resamples, seed + 1)
    return seed_weights, question_index


def resampled_accuracy(correct, in_split, seed_weights, question_index):
    """Pooled accuracy over a split in every resample (NaN where a resample holds none of the split's questions)."""
    correct = np.asarray(correct, dtype=float)  # seeds x questions
    split = np.asarray(in_split, dtype=float)[question_index]  # resamples x questions
    hits_per_seed = (correct[:, question_index] * split[None]).sum(axis=2)  # seeds x resamples
    counts = split.sum(axis=1) * seed_weights.sum(axis=1)
    hits = (seed_weights * hits_per_seed.T).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)


def pooled_accuracy(correct, in_split) -> float | None:
    """Mean outcome over seeds x the split's questions; None without questions."""
    correct, in_split = np.asarray(correct, dtype=float), np.asarray(in_split, dtype=bool)
    if not in_split.any():
        return None
    return float(correct[:, in_split].mean())

"""The metrics of a leaderboard submission, computed from its per-question outcomes.

The same numbers as the grid's results page (docs/results/RESULTS.md; restor_bench.grid.stats), so the leaderboard and
the results agree to the digit:

- accuracies pool the questions of all seeds; the restoration ratio is
  (acc_unlearned - acc_corrupted) / (acc_clean - acc_corrupted) of the pooled target accuracies, and "n/a" (None)
  when the corruption moved less than one question's worth: |acc_clean - acc_corrupted| x n_target < 1, with
  n_target the target questions of one seed (`restor_bench.compare.stats.restoration_ratio`, the rule grid_stats uses);
- the non-target change is the unlearned model's accuracy on the other questions minus the clean model's;
- 95% intervals: the draws of `restor_bench.compare.stats.pooled_resamples` (seeds with replacement, questions with replacement
  within target / non-target, the same draws for the three models), the percentiles over the resamples where the
  statistic is defined. Computed here in chunks of resamples, so memory stays bounded for any question set
  (`MAX_SUBMISSION_BOOTSTRAP_DRAWS` bounds resamples x questions; the draws themselves are that many integers).

Transitions (what became of the target facts the clean model knew) are counted per seed and summed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from restor_bench.compare.stats import (
    accuracy,
    fact_transitions,
    percentile_interval,
    pooled_accuracy,
    pooled_resamples,
    ratio_of_resampled,
    restoration_ratio,
)
from restor_bench.errors import InputError
from restor_bench.leaderboard.data import entity_of  # noqa: F401  (part of this module's interface)
from restor_bench.leaderboard.schema import TRANSITION_FIELDS
from restor_bench.names import DEFAULT_RESAMPLES, MAX_RESAMPLES, MAX_SUBMISSION_BOOTSTRAP_DRAWS, ROLES

_CHUNK_ELEMENTS = 1_000_000  # seeds x resamples x questions gathered at once


def encode_bits(values: Iterable[bool]) -> str:
    """Booleans as a string of "0" and "1"."""
    return "".join("1" if value else "0" for value in values)


def decode_bits(bits: str):
    """A string of "0" and "1" as a numpy bool array."""

    return np.frombuffer(bits.encode("ascii"), dtype=np.uint8) == ord("1")


@dataclass
class SeedOutcomes:
    """One seed's outcomes of the three models, aligned with a task's question list."""

    seed: int
    correct: dict[str, Any]  # role -> numpy bool array
    gave_corrupted: dict[str, Any]


def bootstrap_problem(resamples: int, n_questions: int) -> str | None:
    """Why `resamples` bootstrap resamples are too many for a task of `n_questions` questions, or None."""
    if not 0 <= resamples <= MAX_RESAMPLES:
        return f"bootstrap resamples must be between 0 and {MAX_RESAMPLES}, got {resamples}"
    if resamples * n_questions > MAX_SUBMISSION_BOOTSTRAP_DRAWS:
        most = MAX_SUBMISSION_BOOTSTRAP_DRAWS // max(n_questions, 1)
        return (f"{resamples} bootstrap resamples x {n_questions} questions is over the limit of "
                f"{MAX_SUBMISSION_BOOTSTRAP_DRAWS:,} draws per task (at most {most} resamples here)")
    return None


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _seed_metrics(outcomes: SeedOutcomes, is_target) -> dict[str, Any]:

    masks = {"target": is_target, "non_target": ~is_target, "all": np.ones_like(is_target)}
    acc = {role: {split: accuracy(outcomes.correct[role][mask]) for split, mask in masks.items()} for role in ROLES}
    return {
        "seed": outcomes.seed,
        "accuracy": acc,
        "restoration_ratio": restoration_ratio(
            acc["clean"]["target"], acc["corrupted"]["target"], acc["unlearned"]["target"], int(is_target.sum())
        ),
        "non_target_change": _difference(acc["unlearned"]["non_target"], acc["clean"]["non_target"]),
        "transitions": {
            role: fact_transitions(
                outcomes.correct["clean"], outcomes.correct[role], outcomes.gave_corrupted[role], is_target
            ).to_dict()
            for role in ("corrupted", "unlearned")
        },
    }


def task_metrics(is_target, seeds: Sequence[SeedOutcomes], resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """Per-seed and pooled metrics of one task: the "metrics" object of a submission (module docstring)."""


    is_target = np.asarray(is_target, dtype=bool)
    problem = bootstrap_problem(resamples, is_target.size)
    if problem:
        raise InputError(problem)
    per_seed = [_seed_metrics(outcomes, is_target) for outcomes in seeds]
    pooled = {role: np.stack([outcomes.correct[role] for outcomes in seeds]) for role in ROLES}
    masks = {"target": is_target, "non_target": ~is_target, "all": np.ones_like(is_target)}
    acc = {role: {split: pooled_accuracy(pooled[role], mask) for split, mask in masks.items()} for role in ROLES}
    ratio = restoration_ratio(acc["clean"]["target"], acc["corrupted"]["target"], acc["unlearned"]["target"],
                     int(is_target.sum()))
    change = _difference(acc["unlearned"]["non_target"], acc["clean"]["non_target"])
    samples = bootstrap_samples(is_target, pooled, resamples, seed) if resamples > 0 else None
    ratio_ci = change_ci = None
    ratio_resamples = 0
    if samples is not None and ratio is not None:
        ratio_ci, ratio_resamples = percentile_interval(samples["restoration_ratio"])
    if samples is not None and change is not None:
        change_ci, _ = percentile_interval(samples["non_target_change"])
    totals = {
        role: {name: sum(entry["transitions"][role][name] for entry in per_seed) for name in TRANSITION_FIELDS}
        for role in ("corrupted", "unlearned")
    }
    return {
        "per_seed": per_seed,
        "aggregate": {
            "accuracy": acc,
            "restoration_ratio": {"value": ratio, "ci": ratio_ci, "ci_resamples": ratio_resamples},
            "non_target_change": {"value": change, "ci": change_ci},
            "transitions": totals,
        },
    }


def bootstrap_samples(is_target, pooled: dict[str, Any], resamples: int, seed: int) -> dict[str, Any]:
    """The restoration ratio and the non-target change in every resample (NaN where undefined).

    pooled: role -> bool array (seeds, questions). Every count is an integer held exactly in float64, so the
    values equal those of `grid_stats.pooled_statistics` on the same outcomes bit for bit.
    """


    n_seeds, n_questions = pooled["clean"].shape
    seed_weights, question_index = pooled_resamples(n_seeds, is_target, resamples, seed)
    correct = {role: pooled[role].astype(float) for role in ROLES}
    splits = {"target": is_target.astype(float), "non_target": (~is_target).astype(float)}
    acc = {(role, split): np.empty(resamples) for role in ROLES for split in splits}
    chunk = max(1, _CHUNK_ELEMENTS // max(n_seeds * n_questions, 1))
    for start in range(0, resamples, chunk):
        rows = slice(start, start + chunk)
        drawn, weights = question_index[rows], seed_weights[rows]
        for split, in_split in splits.items():
            chosen = in_split[drawn]  # (chunk, questions)
            counts = chosen.sum(axis=1) * weights.sum(axis=1)
            for role in ROLES:
                hits_per_seed = (correct[role][:, drawn] * chosen[None]).sum(axis=2)  # (seeds, chunk)
                hits = (weights * hits_per_seed.T).sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    acc[role, split][rows] = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    n_target = int(np.asarray(is_target, dtype=bool).sum())
    ratio = ratio_of_resampled(acc["clean", "target"], acc["corrupted", "target"], acc["unlearned", "target"], n_target)
    return {
        "restoration_ratio": ratio,
        "non_target_change": acc["unlearned", "non_target"] - acc["clean", "non_target"],
    }

"""Which neighbouring ranks of a leaderboard table really differ.

Two entries of one table were scored on the same questions, against the same clean model and (seed by seed) the
same corrupted models. Their restoration ratios are compared by a paired bootstrap: every resample draws the seeds
with replacement and the questions with replacement within target / non-target (`compare.stats.pooled_resamples`,
seed `SEPARATION_SEED`), and the *same* draws are applied to both entries' outcomes, so what the two share (the
questions that are hard for every method, a corruption that was strong in one seed) cancels in the difference. The
95% percentile interval of the difference (upper entry minus lower entry) decides: the neighbours are *separated*
when it lies above zero. Entries between two separated neighbours form a tier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from restor_bench.compare.stats import percentile_interval
from restor_bench.leaderboard.data import entity_of
from restor_bench.leaderboard.metrics import bootstrap_samples, decode_bits
from restor_bench.names import DEFAULT_RESAMPLES, ROLES

SEPARATION_SEED = 0


@dataclass(frozen=True)
class Separation:
    """An entry against the next one down its table: the difference of restoration ratios (this minus next), its
    95% paired-bootstrap interval, whether it lies above zero, or why the two cannot be compared."""

    difference: float | None = None
    ci: tuple[float, float] | None = None
    separated: bool = False
    reason: str | None = None  # set when no interval could be computed

    def text(self) -> str:
        if self.reason is not None:
            return f"n/a ({self.reason})"
        verdict = "separated" if self.separated else "not separated"
        return f"{self.difference:+.2f} [{self.ci[0]:+.2f}, {self.ci[1]:+.2f}] {verdict}"


@dataclass(frozen=True)
class RatioDraws:
    """A submission's primary task as the separation reads it: its questions, seeds, target mask and restoration
    ratio in every resample (NaN where undefined)."""

    value: float | None  # the pooled restoration ratio the table ranks by
    ids: tuple[str, ...]
    seeds: tuple[int, ...]
    is_target: Any  # numpy bool array
    draws: Any  # numpy float array, one value per resample


def ratio_draws(document: Mapping[str, Any], resamples: int = DEFAULT_RESAMPLES,
                seed: int = SEPARATION_SEED) -> RatioDraws:
    """The resampled restoration ratio of a submission's primary task; the draws depend only on the number of
    seeds, the target / non-target split and `seed`, so two entries of one table share them."""
    entry = document["tasks"][document["primary_task"]]
    ids = tuple(entry["questions"])
    targets = set(entry["targets"])
    is_target = np.array([entity_of(question) in targets for question in ids], dtype=bool)
    runs = sorted(entry["runs"], key=lambda run: run["seed"])
    pooled = {role: np.stack([decode_bits(run[role]["correct"]) for run in runs]) for role in ROLES}
    draws = bootstrap_samples(is_target, pooled, resamples, seed)["restoration_ratio"]
    value = entry["metrics"]["aggregate"]["restoration_ratio"]["value"]
    return RatioDraws(value, ids, tuple(run["seed"] for run in runs), is_target, draws)


def separation(upper: RatioDraws, lower: RatioDraws) -> Separation:
    """`upper` against `lower` (two entries of one table, `upper` ranked higher), drawn with the same seed."""
    if upper.seeds != lower.seeds:
        return Separation(reason="different seeds")
    if upper.ids != lower.ids or not np.array_equal(upper.is_target, lower.is_target):
        return Separation(reason="different questions")
    if upper.draws.shape != lower.draws.shape:
        return Separation(reason="different resamples")
    ci, _kept = percentile_interval(upper.draws - lower.draws)
    if ci is None or upper.value is None or lower.value is None:
        return Separation(reason="a ratio is undefined")
    return Separation(difference=upper.value - lower.value, ci=(ci[0], ci[1]), separated=ci[0] > 0)


def table_separations(draws: Sequence[RatioDraws]) -> list[Separation | None]:
    """For the entries of one table in rank order: each one against the next (None for the last)."""
    return [*(separation(draws[i], draws[i + 1]) for i in range(len(draws) - 1)), None] if draws else []


def tiers(separations: Sequence[Separation | None]) -> list[int]:
    """Tier numbers down a table (1 at the top): a new tier starts below each separated pair."""
    numbers, tier = [], 1
    for item in separations:
        numbers.append(tier)
        if item is not None and item.separated:
            tier += 1
    return numbers

"""Does restoration depend on how confidently the clean model knows a relation? (the RESTOR paper's fifth finding)

Rezaei et al. (arXiv:2411.00204) report that the success of restoration depends on the confidence with which the
clean model encodes a relation. Per cell, for each relation of the target questions: the clean model's confidence
(the mean log-probability it gives the correct answer, from the world's log-probability task: restor_tiny_logprob or
restor_facts_logprob, field `logprob_correct`) and the relation's restoration ratio (pooled over seeds, as
`relation_breakdown`); then the Spearman rank correlation of the two over the relations whose ratio is defined, with
a 95% interval from the pooled bootstrap of the results pages (`pooled_resamples`: seeds and questions drawn with
replacement; the confidence and the ratios recomputed on every resample).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from restor_bench.compare.stats import (
    percentile_interval,
    pooled_accuracy,
    pooled_resamples,
    ratio_of_resampled,
    resampled_accuracy,
    restoration_ratio,
)
from restor_bench.errors import InputError
from restor_bench.names import DEFAULT_RESAMPLES, ROLES

# The log-probability task that goes with each generation task.
LOGPROB_TASKS = {"restor_tiny_facts": "restor_tiny_logprob", "restor_facts": "restor_facts_logprob",
                 "restor_facts_targets": "restor_facts_logprob"}
MIN_RELATIONS = 3  # a rank correlation over fewer relations says nothing


def spearman(x, y) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None for fewer than 2 points or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2:
        return None
    rank_x, rank_y = _ranks(x), _ranks(y)
    if np.ptp(rank_x) == 0 or np.ptp(rank_y) == 0:
        return None
    return float(np.corrcoef(rank_x, rank_y)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.arange(1, values.size + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def clean_logprobs(record: dict[str, Any], root: Path, task: str, cache) -> dict[str, float] | None:
    """Question id -> the clean model's log-probability of the correct answer, from the cell's clean evaluation of
    the log-probability task that goes with `task`; None when that task was not evaluated."""
    logprob_task = LOGPROB_TASKS.get(task)
    if logprob_task is None or not record.get("per_seed"):
        return None
    folder = Path(root) / record["per_seed"][0]["artifacts"]["eval_clean"]
    try:
        samples = cache.get(folder, logprob_task)
    except InputError:
        return None
    found = {qid: outcome.logprob["logprob_correct"] for qid, outcome in samples.outcomes.items()
             if outcome.logprob and outcome.logprob.get("logprob_correct") is not None}
    return found or None


def confidence_correlation(pooled, logprobs: dict[str, float], resamples: int = DEFAULT_RESAMPLES,
                           seed: int = 0) -> dict[str, Any]:
    """{"relations": {relation: {"n", "confidence", "ratio"}}, "spearman": {"value", "ci"}} of one cell
    (`PooledOutcomes` of the generation task); {} when fewer than MIN_RELATIONS relations have a defined ratio."""
    ids, relations = pooled.ids, pooled.relations
    target = np.asarray(pooled.is_target, dtype=bool)
    known = np.array([qid in logprobs for qid in ids], dtype=bool)
    if not relations or not (target & known).any():
        return {}
    logprob = np.array([logprobs.get(qid, 0.0) for qid in ids], dtype=float)
    names = sorted({relation for relation, use in zip(relations, target & known, strict=True) if use})
    masks = {name: target & known & (np.asarray(relations) == name) for name in names}
    table: dict[str, dict[str, Any]] = {}
    for name, mask in masks.items():
        accuracy = {role: pooled_accuracy(pooled.correct[role], mask) for role in ROLES}
        table[name] = {"n": int(mask.sum()), "confidence": float(logprob[mask].mean()),
                       "ratio": restoration_ratio(accuracy["clean"], accuracy["corrupted"], accuracy["unlearned"],
                                                  int(mask.sum()))}
    defined = [name for name in names if table[name]["ratio"] is not None]
    if len(defined) < MIN_RELATIONS:
        return {}
    point = spearman([table[name]["confidence"] for name in defined], [table[name]["ratio"] for name in defined])
    interval = None
    if resamples > 0 and point is not None:
        draws = pooled_resamples(pooled.n_seeds, target, resamples, seed)
        question_index = draws[1]
        confidence, ratio = [], []
        for name in defined:
            in_relation = masks[name].astype(float)[question_index]
            with np.errstate(invalid="ignore", divide="ignore"):
                confidence.append((logprob[question_index] * in_relation).sum(axis=1) / in_relation.sum(axis=1))
            clean, corrupted, unlearned = (resampled_accuracy(pooled.correct[role], masks[name], *draws)
                                           for role in ROLES)
            ratio.append(ratio_of_resampled(clean, corrupted, unlearned, in_relation.sum(axis=1)))
        confidence, ratio = np.array(confidence), np.array(ratio)
        values = []
        for column in range(question_index.shape[0]):
            ok = np.isfinite(confidence[:, column]) & np.isfinite(ratio[:, column])
            if ok.sum() >= MIN_RELATIONS:
                value = spearman(confidence[ok, column], ratio[ok, column])
                if value is not None:
                    values.append(value)
        interval, _count = percentile_interval(values)
    return {"relations": table, "spearman": {"value": point, "ci": interval}}

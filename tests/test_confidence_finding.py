"""The paper's fifth finding: restoration against the clean model's confidence per relation (grid/confidence.py)."""

from __future__ import annotations

import numpy as np
import pytest

from restor_bench.grid.cells import Cell
from restor_bench.grid.confidence import confidence_correlation, spearman
from restor_bench.grid.findings import AGREES, DISAGREES, NOT_MEASURABLE, UNCLEAR, check_findings
from restor_bench.grid.stats import CellResult, Estimate, PooledOutcomes


def test_spearman_by_hand():
    """Ranks of y: 1, 2, 4, 3; sum of squared rank differences 2; rho = 1 - 6 * 2 / (4 * 15) = 0.8. Ties take their
    average rank: x = 1, 2, 2, 3 ranks 1, 2.5, 2.5, 4 against 1, 2, 3, 4: Pearson of the ranks = 0.9487."""
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / np.sqrt(10))
    assert spearman([4, 3, 2, 1], [1, 2, 3, 4]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1], [2]) is None


def pooled_cell(restored: dict[str, int], seeds: int = 2, per_relation: int = 10):
    """Target questions of relations with `restored[r]` of `per_relation` answered again after unlearning (clean all
    right, corrupted all wrong), and as many non-target questions, all right."""
    ids, relations, is_target = [], [], []
    unlearned = []
    for relation, count in restored.items():
        for index in range(per_relation):
            ids.append(f"T{index}|{relation}")
            relations.append(relation)
            is_target.append(True)
            unlearned.append(index < count)
    for index in range(20):
        ids.append(f"O{index}|P19")
        relations.append("P19")
        is_target.append(False)
        unlearned.append(True)
    target = np.array(is_target)
    correct = {"clean": np.ones((seeds, len(ids)), dtype=bool),
               "corrupted": np.tile(~target, (seeds, 1)),
               "unlearned": np.tile(np.array(unlearned), (seeds, 1))}
    return PooledOutcomes(ids=ids, is_target=target, correct=correct, relations=relations)


def test_relations_known_more_confidently_and_restored_more_correlate_positively():
    """Relations A..D restore 1, 3, 6, 9 of 10 questions (ratios 0.1, 0.3, 0.6, 0.9); the clean model gives their
    answers log-probabilities -4, -3, -2, -1: rank correlation 1, its interval above 0. Reversed confidences: -1."""
    pooled = pooled_cell({"A": 1, "B": 3, "C": 6, "D": 9})
    logprobs = {qid: {"A": -4.0, "B": -3.0, "C": -2.0, "D": -1.0}[qid.split("|")[1]]
                for qid in pooled.ids if not qid.startswith("O")}
    found = confidence_correlation(pooled, logprobs, resamples=300)
    assert {name: (row["n"], row["confidence"], round(row["ratio"], 6)) for name, row in found["relations"].items()} \
        == {"A": (10, -4.0, 0.1), "B": (10, -3.0, 0.3), "C": (10, -2.0, 0.6), "D": (10, -1.0, 0.9)}
    assert found["spearman"]["value"] == pytest.approx(1.0) and found["spearman"]["ci"][0] > 0
    reversed_ = confidence_correlation(pooled, {qid: -5 - value for qid, value in logprobs.items()}, resamples=300)
    assert reversed_["spearman"]["value"] == pytest.approx(-1.0) and reversed_["spearman"]["ci"][1] < 0
    # two relations only: no correlation is reported
    assert confidence_correlation(pooled_cell({"A": 1, "B": 3}), logprobs, resamples=50) == {}


def result(method: str, spearman_estimate, level: int = 0) -> CellResult:
    confidence = {} if spearman_estimate is None else {"spearman": {"value": spearman_estimate[0],
                                                                   "ci": list(spearman_estimate[1:])}}
    return CellResult(cell=Cell(method=method, level=level, forget="full", corruption="wikidata"), name=method,
                      task="restor_tiny_facts", seeds=[0], n_target=70, n_non_target=630, transitions={},
                      stats={"corrupted_target": Estimate(0.3), "restoration_ratio": Estimate(0.5)},
                      wall_time_s=0.0, confidence=confidence)


@pytest.mark.parametrize("estimates, verdict", [
    ([(0.8, 0.3, 1.0), (0.6, 0.1, 0.9)], AGREES),
    ([(0.8, 0.3, 1.0), (0.2, -0.4, 0.7)], UNCLEAR),
    ([(-0.8, -1.0, -0.3), (0.1, -0.5, 0.6)], DISAGREES),
    ([None], NOT_MEASURABLE),
])
def test_the_fifth_finding_needs_every_interval_above_zero_to_agree(estimates, verdict):
    results = [result(f"m{index}", estimate) for index, estimate in enumerate(estimates)]
    fifth = check_findings(results)[4]
    assert fifth.key == "confidence" and fifth.verdict == verdict, fifth

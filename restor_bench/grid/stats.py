"""The numbers of the grid's results page (what each means: `restor_bench.grid.cli`).

`pooled_statistics`: accuracies, restoration ratio and non-target change of one cell from its per-question outcomes
pooled over seeds x questions, with 95% bootstrap intervals that resample the seeds, and the questions within the
target and non-target strata. `relation_breakdown`: the same pooled accuracies and restoration ratio per relation of
the target questions (`restor_bench.compare.tasks.group_breakdown`, as `compare` breaks a task down), laid out per
setting as relations x methods by `relation_grid`. `cell_result`: those numbers for a finished cell, read from its
evaluations and compare reports, with the transitions and the wall time its steps took.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restor_bench.compare.outcomes import load_run
from restor_bench.compare.stats import (
    percentile_interval,
    pooled_accuracy,
    pooled_resamples,
    ratio_of_resampled,
    resampled_accuracy,
    restoration_ratio,
)
from restor_bench.compare.tasks import group_breakdown, natural_key
from restor_bench.errors import InputError
from restor_bench.grid.cells import Cell
from restor_bench.grid.confidence import clean_logprobs, confidence_correlation
from restor_bench.io import read_json
from restor_bench.names import DEFAULT_RESAMPLES, ROLES

# ---------------------------------------------------------------------------------------------------------------
# Pooled statistics


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval (None where undefined)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": None if self.low is None else [self.low, self.high]}

    @classmethod
    def from_dict(cls, entry: dict[str, Any] | None) -> Estimate:
        """The inverse of `to_dict` (a grid JSON's or a compare JSON's {"value", "ci"}); None is no estimate."""
        if not entry:
            return cls(None)
        low, high = entry.get("ci") or (None, None)
        return cls(entry.get("value"), low, high)


@dataclasses.dataclass
class PooledOutcomes:
    """One task's per-question outcomes of one cell, seeds x questions, aligned on the questions all seeds share."""

    ids: list[str]
    is_target: Any  # bool array (questions,)
    correct: dict[str, Any]  # role -> bool array (seeds, questions)
    injected_known: bool = True  # the task lists the injected wrong values of the target questions
    relations: list[str] = dataclasses.field(default_factory=list)  # relation id of each question (as `ids`)

    @property
    def n_seeds(self) -> int:
        return next(iter(self.correct.values())).shape[0]


def _interval(values) -> tuple[float | None, float | None]:
    interval, _count = percentile_interval(values)
    return (None, None) if interval is None else (interval[0], interval[1])


def pooled_statistics(pooled: PooledOutcomes, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Estimate]:
    """Accuracies (target / non-target), restoration ratio and non-target change, with pooled bootstrap intervals."""

    target = np.asarray(pooled.is_target, dtype=bool)
    other = ~target
    n_target = int(target.sum())
    point = {
        (role, split): pooled_accuracy(pooled.correct[role], mask)
        for role in ROLES for split, mask in (("target", target), ("non_target", other))
    }
    draws = pooled_resamples(pooled.n_seeds, target, resamples, seed) if resamples > 0 else None

    def resampled(role: str, mask):
        return resampled_accuracy(pooled.correct[role], mask, *draws)

    result: dict[str, Estimate] = {}
    samples = {}
    for role in ROLES:
        for split, mask in (("target", target), ("non_target", other)):
            value = point[(role, split)]
            low = high = None
            if draws is not None and value is not None:
                samples[(role, split)] = resampled(role, mask)
                low, high = _interval(samples[(role, split)])
            result[f"{role}_{split}"] = Estimate(value, low, high)

    ratio = restoration_ratio(
        point[("clean", "target")], point[("corrupted", "target")], point[("unlearned", "target")], n_target
    )
    low = high = None
    if draws is not None and n_target:
        clean, corrupted, unlearned = (samples[(role, "target")] for role in ROLES)
        low, high = _interval(ratio_of_resampled(clean, corrupted, unlearned, target[draws[1]].sum(axis=1)))
    result["restoration_ratio"] = Estimate(ratio, low, high)

    change = None
    if point[("unlearned", "non_target")] is not None and point[("clean", "non_target")] is not None:
        change = point[("unlearned", "non_target")] - point[("clean", "non_target")]
    low = high = None
    if change is not None and draws is not None:
        low, high = _interval(samples[("unlearned", "non_target")] - samples[("clean", "non_target")])
    result["non_target_change"] = Estimate(change, low, high)
    return result


def relation_breakdown(pooled: PooledOutcomes) -> dict[str, dict[str, Any]]:
    """Per relation of the target questions (natural order of the ids): `group_breakdown` of the pooled outcomes,
    {"n_questions", "accuracy": {role: ...}, "target_known", "restored": {"unlearned": ...},
    "restoration_ratio": {"unlearned": r or None}}; counts are means over seeds, and the ratio is None where the
    corruption moved less than one of the relation's questions. {} when the outcomes name no relations."""


    if not pooled.relations:
        return {}
    target = np.asarray(pooled.is_target, dtype=bool)
    if len(pooled.relations) != target.size:
        raise ValueError(f"{len(pooled.relations)} relations for {target.size} questions")
    groups = [relation for relation, is_target in zip(pooled.relations, target, strict=True) if is_target]
    correct = {role: np.asarray(pooled.correct[role], dtype=bool)[:, target] for role in ROLES}
    return group_breakdown(groups, correct, "clean", "corrupted", ["unlearned"])


def relation_grid(results: Sequence[CellResult], names: dict[str, str] | None = None
                  ) -> tuple[list[str], list[str], list[str], dict[tuple[int, int], tuple[float | None, int]]]:
    """The by-relation table of the cells of one setting: relation ids (natural order), row labels (`names` of the
    ids, else the ids), method columns (in the cells' order) and {(row, column): (ratio or None, n questions)}."""

    names = names or {}
    methods = list(dict.fromkeys(result.cell.method for result in results))
    relations = sorted({relation for result in results for relation in result.by_relation}, key=natural_key)
    cells = {}
    for column, method in enumerate(methods):
        result = next(result for result in results if result.cell.method == method)
        for row, relation in enumerate(relations):
            entry = result.by_relation.get(relation)
            if entry is not None:
                cells[(row, column)] = (entry["restoration_ratio"]["unlearned"], entry["n_questions"])
    return relations, [names.get(relation, relation) for relation in relations], methods, cells


def settings_of(results: Sequence[CellResult]) -> dict[tuple, list[CellResult]]:
    """The cells grouped by setting (corruption, level, forget), in the cells' order."""
    groups: dict[tuple, list[CellResult]] = {}
    for result in results:
        groups.setdefault(result.cell.setting, []).append(result)
    return groups


# ---------------------------------------------------------------------------------------------------------------
# Reading the cells' runs


@dataclasses.dataclass
class CellResult:
    """The results page's numbers for one cell."""

    cell: Cell
    name: str
    task: str
    seeds: list[int]
    n_target: int
    n_non_target: int
    stats: dict[str, Estimate]
    transitions: dict[str, float]  # mean over seeds: target_known, restored, still_corrupted, forgotten
    wall_time_s: float
    injected_known: bool = True  # False: "still corrupted" cannot be told apart from "forgotten" (shown as n/a)
    step_seconds: dict[str, float | None] = dataclasses.field(default_factory=dict)  # as each step ran, seed mean
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    by_relation: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # relation_breakdown
    confidence: dict[str, Any] = dataclasses.field(default_factory=dict)  # confidence.confidence_correlation

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": dataclasses.asdict(self.cell), "name": self.name, "task": self.task, "seeds": self.seeds,
            "n_target": self.n_target, "n_non_target": self.n_non_target,
            "stats": {key: value.to_dict() for key, value in self.stats.items()},
            "transitions": self.transitions, "injected_known": self.injected_known, "wall_time_s": self.wall_time_s,
            "step_seconds": self.step_seconds,
            "hparams": self.hparams, "by_relation": self.by_relation, "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> CellResult:
        """The inverse of `to_dict`: one cell of a grid JSON (`restor-bench/grid/v1`)."""
        return cls(
            cell=Cell(**entry["cell"]), name=entry["name"], task=entry["task"], seeds=list(entry["seeds"]),
            n_target=entry["n_target"], n_non_target=entry["n_non_target"],
            stats={key: Estimate.from_dict(value) for key, value in entry["stats"].items()},
            transitions=entry["transitions"], wall_time_s=entry["wall_time_s"],
            injected_known=entry.get("injected_known", True), step_seconds=entry.get("step_seconds", {}),
            hparams=entry.get("hparams", {}), by_relation=entry.get("by_relation", {}),
            confidence=entry.get("confidence", {}),
        )


class SamplesCache:
    """lm-eval samples read once per evaluation folder (the clean model's serves every cell)."""

    def __init__(self, metric: str):
        self.metric = metric
        self.loaded: dict[tuple[str, str], Any] = {}

    def get(self, folder: Path, task: str):
        key = (str(folder), task)
        if key not in self.loaded:
            self.loaded[key] = load_run(folder, metric=self.metric, tasks=[task])[task]
        return self.loaded[key]


def _compare_report(run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    return read_json(run_dir / entry.get("compare_json", f"compare-seed{entry['seed']}.json"), "compare report")


def load_pooled(record: dict[str, Any], root: Path, task: str, cache: SamplesCache) -> tuple[PooledOutcomes, dict]:
    """The cell's outcomes pooled over seeds, and the transitions averaged over seeds (from the compare reports)."""

    root = Path(root)
    run_dir = root / record["name"]
    per_role: dict[str, list[dict[str, Any]]] = {role: [] for role in ROLES}
    targets: set[str] | None = None
    transitions: dict[str, list[float]] = {}
    for entry in record["per_seed"]:
        for role in ROLES:
            per_role[role].append(cache.get(root / entry["artifacts"][f"eval_{role}"], task).outcomes)
        report = _compare_report(run_dir, entry)
        task_report = (report.get("tasks") or {}).get(task)
        if task_report is None:
            raise InputError(f"{run_dir}: the compare report of seed {entry['seed']} has no task {task}")
        targets = set(task_report.get("targets") or []) if targets is None else targets
        for key, value in (task_report.get("transitions") or {}).get(record["method"], {}).items():
            transitions.setdefault(key, []).append(float(value))
    common = set.intersection(*(set(outcomes) for role in ROLES for outcomes in per_role[role]))
    if not common:
        raise InputError(f"{run_dir}: the evaluations of task {task} share no question")
    ids = sorted(common)
    first = per_role["clean"][0]
    is_target = np.array([first[qid].entity in (targets or set()) for qid in ids], dtype=bool)
    correct = {
        role: np.array([[outcomes[qid].correct for qid in ids] for outcomes in per_role[role]], dtype=bool)
        for role in ROLES
    }
    mean_transitions = {key: statistics.fmean(values) for key, values in transitions.items()}
    injected_known = any(first[qid].corrupted_known for qid, target in zip(ids, is_target, strict=True) if target)
    pooled = PooledOutcomes(ids=ids, is_target=is_target, correct=correct, injected_known=injected_known,
                            relations=[first[qid].relation for qid in ids])
    return pooled, mean_transitions


def cell_result(cell: Cell, record: dict[str, Any], root: Path, task: str, cache: SamplesCache,
                resamples: int = DEFAULT_RESAMPLES) -> CellResult:
    """Read a finished cell's evaluations and compute its page numbers."""
    pooled, transitions = load_pooled(record, root, task, cache)
    target = int(pooled.is_target.sum())
    logprobs = clean_logprobs(record, root, task, cache)
    confidence = confidence_correlation(pooled, logprobs, resamples) if logprobs else {}
    return CellResult(
        cell=cell, name=record["name"], task=task, seeds=list(record["seeds"]), n_target=target,
        n_non_target=len(pooled.ids) - target, stats=pooled_statistics(pooled, resamples),
        transitions=transitions, wall_time_s=float(record.get("wall_time_s") or 0.0),
        injected_known=pooled.injected_known, step_seconds=cell_step_seconds(record, root),
        hparams=dict(record.get("hparams") or {}), by_relation=relation_breakdown(pooled), confidence=confidence,
    )


# The steps of a cell: (label on the page, artifact key in a run record).
CELL_STEPS = (("corrupt", "corrupted"), ("unlearn", "unlearned"), ("eval clean", "eval_clean"),
              ("eval corrupted", "eval_corrupted"), ("eval unlearned", "eval_unlearned"))


def _step_wall_time(folder: Path) -> float | None:
    try:
        return float(json.loads((folder / "step.json").read_text(encoding="utf-8"))["wall_time_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cell_step_seconds(record: dict[str, Any], root: Path) -> dict[str, float | None]:
    """Seconds each step of the cell took when it ran (reused steps: when they first ran), mean over seeds."""
    seconds: dict[str, float | None] = {}
    for label, key in CELL_STEPS:
        values = [_step_wall_time(Path(root) / entry["artifacts"][key])
                  for entry in record["per_seed"] if key in entry.get("artifacts", {})]
        values = [value for value in values if value is not None]
        seconds[label] = round(statistics.fmean(values), 1) if values else None
    return seconds


def compute_seconds(records: Iterable[dict[str, Any]], root: Path) -> float:
    """Seconds the steps of these cells took when they ran (each step folder counted once)."""
    seen, total = set(), 0.0
    for record in records:
        for entry in record["per_seed"]:
            for relative in entry["artifacts"].values():
                folder = Path(root) / relative
                if folder in seen:
                    continue
                seen.add(folder)
                total += _step_wall_time(folder) or 0.0
    return total

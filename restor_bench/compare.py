"""`restor-bench compare`: restoration metrics against the clean model, and the regression gate.

Reads lm-eval's own output folders (`samples_<task>_<time>.jsonl`, found anywhere under a folder, newest per task)
and compares the per-question outcomes lm-eval recorded; nothing is re-scored, except that "gave the injected
value" is decided with `restor_bench.data.normalize.contains` on the first line of the filtered response.

Two modes:

* restoration: `compare --clean A --corrupted B [--unlearned C ...]`: per task, accuracy on the questions about
  target entities (those the corruption documents lie about) and on the others, the restoration ratio
  `(acc_unlearned - acc_corrupted) / (acc_clean - acc_corrupted)` on target questions (null when the corruption
  moved less than one question), and what became of the facts the clean model knew.
* gate: `compare --baseline A --candidate B [--max-drop D] [--min-restoration R --corrupted C]`: the accuracy
  change per task and split; exit 1 when the candidate's accuracy on a split is lower than the baseline's by more
  than D (point estimate, not the interval), or its restoration ratio (baseline = clean) is below R or undefined.

Intervals are 95% percentile intervals of a paired bootstrap: the questions are resampled with replacement,
within the target and the non-target split separately (each resample keeps both sizes), and the same resamples
serve every model, so differences are paired.

Only questions present in every run are compared; questions missing from some run are counted in
`question_mismatch` and named in `warnings`.

Correctness per question is lm-eval's per-sample metric: `contains` (default) or `exact_match` (`--metric`) for
generation tasks; `prefers_correct` for log-probability tasks (samples that carry it), where `prefers_corrupted`
stands for "gave the injected value".

JSON report (`--json`), schema "restor-bench/compare/v1"; accuracies are fractions in [0, 1], intervals
`[low, high]` or null (bootstrap off, or the statistic undefined in every resample)::

    {"schema": "restor-bench/compare/v1", "mode": "restoration" | "gate",
     "metric": "contains" | "exact_match",
     "bootstrap": {"resamples": int, "seed": int, "confidence": 0.95, "method": str},
     "models": [{"label", "role": clean|corrupted|unlearned|baseline|candidate, "folder", "model_name"}],
     "tasks": {TASK: {
        "metric": per-sample metric used, "targets": [names], "targets_source": str,
        "targets_missing": [target names without questions in this task],
        "n_questions": {"target", "non_target", "all"},
        "question_mismatch": {label: {"compared": int, "not_compared": int}} | null,
        "files": {label: samples file},
        "accuracy": {label: {"target" | "non_target" | "all": {"value": float | null, "ci": [lo, hi] | null}}},
        "differences": [{"model", "reference", "split", "value", "ci"}],      # value = acc(model) - acc(reference)
        # restoration mode:
        "restoration_ratio": {label: {"value": float | null, "ci": [lo, hi] | null, "ci_resamples": int}},
        "transitions": {label: {"target_known", "restored", "still_corrupted", "forgotten",
                                "non_target_known", "kept", "lost"}},     # for the corrupted and unlearned models
        # gate mode:
        "gate": {"splits": {split: {"baseline", "candidate", "change", "ci", "passed"}},
                 "restoration_ratio": {...} | null, "failures": [str]},
        # with --per-question:
        "per_question": [{"id", "entity", "relation", "target": bool, "corrupted_known": bool,
                          "outcomes": {label: {"correct", "gave_corrupted", "prediction"}}}]}},
     "skipped_tasks": {TASK: "reason"},
     "warnings": [str],
     # gate mode:
     "gate": {"max_drop": float, "min_restoration": float | null, "passed": bool, "failures": [str]}}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restor_bench.data.official import OFFICIAL_TARGETS, SUBJECT_SHARE, find_targets
from restor_bench.errors import GateFailure, InputError

SCHEMA = "restor-bench/compare/v1"
DEFAULT_METRIC = "contains"
# The *_legacy metrics score the same generations with the scorer of task version 1.0 (articles dropped anywhere,
# no aliases), so that old and new scores can be shown side by side.
GENERATION_METRICS = ("contains", "exact_match", "contains_legacy", "exact_match_legacy")
# Tasks whose per-question metric is a mean over several sampled generations (not 0/1): lm-eval's own aggregate is
# their score; compare reads per-question 0/1 outcomes, so it leaves them out unless asked, then refuses clearly.
SAMPLED_TASK_SUFFIX = "_sampled"
LOGPROB_METRIC = "prefers_correct"
LOGPROB_CORRUPTED_METRIC = "prefers_corrupted"
REQUIRED_DOC_FIELDS = ("id", "entity", "relation")
SPLITS = ("target", "non_target", "all")
SPLIT_TITLES = {"target": "target", "non_target": "non-target", "all": "all"}
CONFIDENCE = 0.95
BOOTSTRAP_METHOD = "paired percentile bootstrap; questions resampled with replacement within target / non-target"

# The ten target entities of the official RESTOR corruption documents (an alias of the data module's list).
FALLBACK_OFFICIAL_TARGETS = OFFICIAL_TARGETS


# ---------------------------------------------------------------------------------------------------------------
# Reading runs


@dataclass(frozen=True)
class QuestionOutcome:
    """One question as one model answered it."""

    id: str
    entity: str
    relation: str
    correct: bool
    gave_corrupted: bool  # gave the injected wrong value (False where that value is unknown)
    corrupted_known: bool  # the doc lists the injected wrong value(s)
    prediction: str | None  # first filtered response of a generation task; None for log-probability tasks
    doc_hash: str | None = None


@dataclass
class TaskSamples:
    """The outcomes of one lm-eval task in one run, keyed by question id ("ENTITY|PID")."""

    task: str
    samples_path: Path
    results_path: Path | None
    metric: str
    filter: str
    outcomes: dict[str, QuestionOutcome] = field(default_factory=dict)
    model_name: str | None = None
    task_metadata: dict[str, Any] = field(default_factory=dict)  # the task config's "metadata" in the results

    @property
    def entities(self) -> set[str]:
        return {outcome.entity for outcome in self.outcomes.values()}


def load_run(
    folder: str | os.PathLike, metric: str = DEFAULT_METRIC, tasks: Sequence[str] | None = None
) -> dict[str, TaskSamples]:
    """Read the newest lm-eval samples of each task under `folder` into per-question outcomes.

    `metric` picks the per-sample metric of generation tasks ("contains" or "exact_match"); log-probability
    tasks use "prefers_correct". `tasks` restricts the tasks read (all found when None).
    """
    from restor_bench.lm_eval_io import find_lm_eval_outputs, read_results

    if metric not in GENERATION_METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {', '.join(GENERATION_METRICS)}")
    outputs = find_lm_eval_outputs(folder)
    sampled = [task for task in (tasks or ()) if task.endswith(SAMPLED_TASK_SUFFIX)]
    if sampled:
        raise InputError(
            f"task {sampled[0]}: its per-question score is a mean over sampled generations, not a 0/1 outcome; "
            "compare the greedy task, or read lm-eval's aggregate in the results file"
        )
    if not tasks:
        outputs = {task: output for task, output in outputs.items() if not task.endswith(SAMPLED_TASK_SUFFIX)}
    if tasks:
        missing = [task for task in tasks if task not in outputs]
        if missing:
            raise InputError(
                f"{folder}: no samples of task(s) {', '.join(missing)} (found: {', '.join(sorted(outputs))})"
            )
        outputs = {task: outputs[task] for task in tasks}
    run = {}
    for task, output in outputs.items():
        samples = read_task_samples(task, output.samples_path, metric)
        samples.results_path = output.results_path
        if output.results_path is not None:
            results = read_results(output.results_path)
            name = results.get("model_name")
            samples.model_name = str(name) if name is not None else None
            config = (results.get("configs") or {}).get(task) or {}
            metadata = config.get("metadata") if isinstance(config, dict) else None
            samples.task_metadata = metadata if isinstance(metadata, dict) else {}
        run[task] = samples
    return run


def read_task_samples(task: str, path: str | os.PathLike, metric: str = DEFAULT_METRIC) -> TaskSamples:
    """Read one `samples_<task>_<time>.jsonl` file (see `load_run`).

    When lm-eval applied several filters (one line per question and filter), the "none" filter is used if
    present, else the first one in the file.
    """
    from restor_bench.lm_eval_io import iter_samples

    path = Path(path)
    by_filter: dict[str, dict[str, QuestionOutcome]] = {}
    metric_used = None
    for number, record in iter_samples(path):
        outcome, used = _parse_sample(record, path, number, metric)
        metric_used = metric_used or used
        outcomes = by_filter.setdefault(str(record.get("filter", "none")), {})
        if outcome.id in outcomes:
            raise InputError(f"{path}: line {number}: question id {outcome.id!r} appears twice")
        outcomes[outcome.id] = outcome
    if not by_filter:
        raise InputError(f"{path}: holds no samples")
    chosen = "none" if "none" in by_filter else next(iter(by_filter))
    return TaskSamples(task, path, None, metric_used or metric, chosen, by_filter[chosen])


def _parse_sample(record: dict[str, Any], path: Path, number: int, metric: str) -> tuple[QuestionOutcome, str]:
    where = f"{path}: line {number}"
    doc = record.get("doc")
    if not isinstance(doc, dict):
        raise InputError(f'{where}: sample has no "doc" object')
    missing = [name for name in REQUIRED_DOC_FIELDS if not isinstance(doc.get(name), str)]
    if missing:
        raise InputError(
            f"{where}: doc lacks field(s) {', '.join(missing)} (not a restor task? choose tasks with --tasks)"
        )
    corrupted_answers = doc.get("corrupted_answers", [])
    if not isinstance(corrupted_answers, list) or not all(isinstance(a, str) for a in corrupted_answers):
        raise InputError(f"{where}: doc field corrupted_answers is not a list of strings")
    corrupted_known = bool(corrupted_answers)
    if LOGPROB_METRIC in record:
        used = LOGPROB_METRIC
        correct = _binary(record[LOGPROB_METRIC], where, LOGPROB_METRIC)
        prefers_corrupted = record.get(LOGPROB_CORRUPTED_METRIC, 0.0)
        gave_corrupted = corrupted_known and _binary(prefers_corrupted, where, LOGPROB_CORRUPTED_METRIC)
        prediction = None
    else:
        used = metric
        if metric not in record:
            raise InputError(f"{where}: sample has no per-sample metric {metric!r}")
        correct = _binary(record[metric], where, metric)
        prediction = _first_response(record.get("filtered_resps"), where)
        gave_corrupted = corrupted_known and _contains(prediction, corrupted_answers)
    doc_hash = record.get("doc_hash")
    outcome = QuestionOutcome(
        id=doc["id"],
        entity=doc["entity"],
        relation=doc["relation"],
        correct=correct,
        gave_corrupted=gave_corrupted,
        corrupted_known=corrupted_known,
        prediction=prediction,
        doc_hash=doc_hash if isinstance(doc_hash, str) else None,
    )
    return outcome, used


def _binary(value: Any, where: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise InputError(f"{where}: per-sample metric {name} is {value!r}, expected 0 or 1")


def _first_response(filtered: Any, where: str) -> str:
    value = filtered
    while isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        raise InputError(f'{where}: sample has no text response in "filtered_resps"')
    return value


def _contains(prediction: str, answers: list[str]) -> bool:
    from restor_bench.data.normalize import contains

    return bool(contains(prediction, answers))


# ---------------------------------------------------------------------------------------------------------------
# Targets


def parse_targets(value: str) -> list[str]:
    """Target names from `--targets`: a file (JSON list, or one name per line) or a comma-separated list."""
    path = Path(value)
    if path.is_file():
        if path.suffix == ".json":
            from restor_bench.io import read_json

            names = read_json(path, "targets file")
            if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
                raise InputError(f"{path}: expected a JSON list of target names")
        else:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise InputError(f"{path}: not UTF-8 text") from None
            names = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    else:
        if os.sep in value or value.endswith((".json", ".txt")):
            raise InputError(f"{value}: targets file not found")
        names = value.split(",")
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise InputError(f"{value}: no target names given")
    return names


def targets_from_documents(documents: str | os.PathLike, entities: Iterable[str]) -> list[str]:
    """The evaluated entities that a corruption documents file is about, sorted.

    The rule of `restor_bench.data.official.find_targets`: the subject of a document is, of the evaluated
    entities it names (whole words, case-sensitive), the one named most often (the first named on a tie); an
    entity is a target when it is the subject of at least `SUBJECT_SHARE` times as many documents as the most
    frequent subject. This leaves out people named in passing or in the unrelated context.
    """
    from restor_bench.io import read_text_records

    return sorted(find_targets(entities, read_text_records(documents), SUBJECT_SHARE))


def default_targets(task: str, task_metadata: dict[str, Any] | None = None) -> tuple[list[str], str]:
    """The target names a task is scored with when none are given, and where they come from.

    Tiny-world tasks: the "targets" of the world's manifest.json (the world lm-eval was given with
    `--metadata '{"world_dir": DIR}'`, as recorded in the results file, else `$RESTOR_TINY_WORLD`, else the
    shipped world). `restor_facts_squad`: the five people of the official SQuAD-style passages. Other official
    tasks: the ten official target entities.
    """
    if task.startswith("restor_tiny"):
        from restor_bench.data.world import load_manifest

        world_dir = (task_metadata or {}).get("world_dir")
        manifest = load_manifest(world_dir if isinstance(world_dir, str) and world_dir else None)
        targets = manifest.get("targets")
        if not isinstance(targets, list) or not all(isinstance(name, str) for name in targets):
            raise InputError('tiny world manifest: "targets" is not a list of names')
        return list(targets), "tiny world manifest"
    if task.startswith("restor_facts_squad"):
        from restor_bench.data.questions import squad_target_people

        data_dir = (task_metadata or {}).get("data_dir")
        people = squad_target_people(data_dir if isinstance(data_dir, str) and data_dir else None)
        return list(people), "people of the official SQuAD-style passages"
    if task.startswith("restor_facts"):
        return list(OFFICIAL_TARGETS), "official RESTOR targets"
    raise InputError(f"task {task}: no default target entities; pass --targets or --targets-from")


@dataclass(frozen=True)
class TargetChoice:
    """How target entities are chosen: explicit names, a documents file, or the task's defaults."""

    names: tuple[str, ...] | None = None
    documents: Path | None = None

    def resolve(
        self, task: str, entities: set[str], task_metadata: dict[str, Any] | None = None
    ) -> tuple[list[str], str]:
        if self.names is not None:
            return list(self.names), "--targets"
        if self.documents is not None:
            return targets_from_documents(self.documents, entities), f"entities named in {self.documents}"
        return default_targets(task, task_metadata)


# ---------------------------------------------------------------------------------------------------------------
# Aligning runs question by question


@dataclass
class AlignedTask:
    """One task's questions common to all runs, with each run's outcomes as aligned arrays."""

    task: str
    ids: list[str]
    entities: list[str]
    relations: list[str]
    is_target: Any  # numpy bool array
    corrupted_known: Any
    correct: dict[str, Any]  # label -> numpy bool array
    gave_corrupted: dict[str, Any]
    predictions: dict[str, list[str | None]]
    targets: list[str]
    targets_source: str
    targets_missing: list[str]
    question_mismatch: dict[str, dict[str, int]] | None
    metric: str
    files: dict[str, str]
    warnings: list[str]

    @property
    def split_masks(self) -> dict[str, Any]:
        import numpy as np

        return {"target": self.is_target, "non_target": ~self.is_target, "all": np.ones_like(self.is_target)}


def common_tasks(runs: dict[str, dict[str, TaskSamples]], folders: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Tasks present in every run, and the reason each other task is skipped."""
    all_tasks = sorted(set().union(*(run.keys() for run in runs.values())))
    common = [task for task in all_tasks if all(task in run for run in runs.values())]
    skipped = {
        task: "missing from " + ", ".join(label for label, run in runs.items() if task not in run)
        for task in all_tasks
        if task not in common
    }
    if not common:
        listing = "; ".join(f"{folders[label]}: {', '.join(sorted(run)) or 'none'}" for label, run in runs.items())
        raise InputError(f"no task in common between the runs ({listing})")
    return common, skipped


def align_task(task: str, samples: dict[str, TaskSamples], targets: TargetChoice) -> AlignedTask:
    """Align the runs of one task on the questions they all hold (sorted by id)."""
    import numpy as np

    labels = list(samples)
    reference = samples[labels[0]]
    common = set(reference.outcomes)
    for label in labels[1:]:
        common &= set(samples[label].outcomes)
    if not common:
        files = ", ".join(str(samples[label].samples_path) for label in labels)
        raise InputError(f"task {task}: the runs share no question ({files})")
    warnings = []
    mismatch = None
    if any(len(samples[label].outcomes) != len(common) for label in labels):
        mismatch = {
            label: {"compared": len(common), "not_compared": len(samples[label].outcomes) - len(common)}
            for label in labels
        }
        detail = ", ".join(f"{label} {len(samples[label].outcomes)}" for label in labels)
        every = set().union(*(samples[label].outcomes for label in labels))
        example = next(
            f"{qid!r} is missing from {label}"
            for qid in sorted(every - common)
            for label in labels
            if qid not in samples[label].outcomes
        )
        warnings.append(
            f"task {task}: different question sets ({detail} questions; e.g. {example}); "
            f"comparing the {len(common)} common ones"
        )
    ids = sorted(common)
    differing = sum(1 for qid in ids if len({samples[label].outcomes[qid].doc_hash for label in labels} - {None}) > 1)
    if differing:
        warnings.append(f"task {task}: {differing} question(s) have different content (doc_hash) between runs")
    metrics = {samples[label].metric for label in labels}
    if len(metrics) > 1:
        raise InputError(f"task {task}: runs were scored with different metrics ({', '.join(sorted(metrics))})")
    entities = [reference.outcomes[qid].entity for qid in ids]
    names, source = targets.resolve(task, set(entities), reference.task_metadata)
    name_set = set(names)
    missing = sorted(name_set - set(entities))
    if missing and len(missing) == len(name_set):
        warnings.append(f"task {task}: none of the target entities has a question ({source})")
    elif missing:
        warnings.append(f"task {task}: target(s) without questions: {', '.join(missing)}")
    return AlignedTask(
        task=task,
        ids=ids,
        entities=entities,
        relations=[reference.outcomes[qid].relation for qid in ids],
        is_target=np.array([entity in name_set for entity in entities], dtype=bool),
        corrupted_known=np.array([reference.outcomes[qid].corrupted_known for qid in ids], dtype=bool),
        correct={label: np.array([samples[label].outcomes[q].correct for q in ids], dtype=bool) for label in labels},
        gave_corrupted={
            label: np.array([samples[label].outcomes[q].gave_corrupted for q in ids], dtype=bool) for label in labels
        },
        predictions={label: [samples[label].outcomes[q].prediction for q in ids] for label in labels},
        targets=sorted(name_set),
        targets_source=source,
        targets_missing=missing,
        question_mismatch=mismatch,
        metric=metrics.pop(),
        files={label: str(samples[label].samples_path) for label in labels},
        warnings=warnings,
    )


# ---------------------------------------------------------------------------------------------------------------
# Reports


def _value(value: float | None, interval: Any) -> dict[str, Any]:
    return {"value": value, "ci": interval.to_list() if interval is not None else None}


class _Bootstrap:
    """Shared resamples of one task's questions (None when the bootstrap is off)."""

    def __init__(self, aligned: AlignedTask, n_resamples: int, seed: int):
        from restor_bench.stats import resample_indices

        self.indices = resample_indices(aligned.is_target.astype(int), n_resamples, seed) if n_resamples > 0 else None

    def interval(self, statistic):
        from restor_bench.stats import bootstrap_interval

        if self.indices is None:
            return None
        return bootstrap_interval(statistic, self.indices, CONFIDENCE)


def _task_header(aligned: AlignedTask) -> dict[str, Any]:
    n_target = int(aligned.is_target.sum())
    return {
        "metric": aligned.metric,
        "targets": aligned.targets,
        "targets_source": aligned.targets_source,
        "targets_missing": aligned.targets_missing,
        "n_questions": {"target": n_target, "non_target": len(aligned.ids) - n_target, "all": len(aligned.ids)},
        # target questions whose injected wrong value the task knows; 0 means "still corrupted" cannot be told
        # apart from "forgotten" (the official task lists no injected values) and is shown as n/a
        "n_corrupted_known": int((aligned.corrupted_known & aligned.is_target).sum()),
        "question_mismatch": aligned.question_mismatch,
        "files": aligned.files,
    }


def _accuracies(aligned: AlignedTask, boot: _Bootstrap) -> dict[str, dict[str, Any]]:
    from restor_bench.stats import accuracy, split_accuracy

    table = {}
    for label, correct in aligned.correct.items():
        table[label] = {
            split: _value(accuracy(correct[mask]), boot.interval(split_accuracy(correct, mask)))
            for split, mask in aligned.split_masks.items()
        }
    return table


def _difference(aligned: AlignedTask, boot: _Bootstrap, model: str, reference: str, split: str) -> dict[str, Any]:
    from restor_bench.stats import accuracy, accuracy_difference

    mask = aligned.split_masks[split]
    a, b = accuracy(aligned.correct[model][mask]), accuracy(aligned.correct[reference][mask])
    value = None if a is None or b is None else a - b
    interval = boot.interval(accuracy_difference(aligned.correct[model], aligned.correct[reference], mask))
    return {"model": model, "reference": reference, "split": split, **_value(value, interval)}


def _ratio(aligned: AlignedTask, boot: _Bootstrap, clean: str, corrupted: str, unlearned: str) -> dict[str, Any]:
    from restor_bench.stats import accuracy, resampled_restoration_ratio, restoration_ratio

    mask = aligned.is_target
    n_target = int(mask.sum())
    value = restoration_ratio(
        accuracy(aligned.correct[clean][mask]),
        accuracy(aligned.correct[corrupted][mask]),
        accuracy(aligned.correct[unlearned][mask]),
        n_target,
    )
    interval = None
    if value is not None:
        interval = boot.interval(
            resampled_restoration_ratio(
                aligned.correct[clean], aligned.correct[corrupted], aligned.correct[unlearned], mask
            )
        )
    result = _value(value, interval)
    result["ci_resamples"] = interval.resamples if interval is not None else 0
    return result


def _per_question(aligned: AlignedTask) -> list[dict[str, Any]]:
    return [
        {
            "id": qid,
            "entity": aligned.entities[i],
            "relation": aligned.relations[i],
            "target": bool(aligned.is_target[i]),
            "corrupted_known": bool(aligned.corrupted_known[i]),
            "outcomes": {
                label: {
                    "correct": bool(aligned.correct[label][i]),
                    "gave_corrupted": bool(aligned.gave_corrupted[label][i]),
                    "prediction": aligned.predictions[label][i],
                }
                for label in aligned.correct
            },
        }
        for i, qid in enumerate(aligned.ids)
    ]


def restoration_task_report(
    aligned: AlignedTask,
    clean: str,
    corrupted: str,
    unlearned: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    per_question: bool = False,
) -> dict[str, Any]:
    """Accuracies, differences, restoration ratios and transitions of one task (see the module docstring)."""
    from restor_bench.stats import fact_transitions

    boot = _Bootstrap(aligned, n_resamples, seed)
    report = _task_header(aligned)
    report["accuracy"] = _accuracies(aligned, boot)
    pairs = [(corrupted, clean)] + [(label, corrupted) for label in unlearned] + [(label, clean) for label in unlearned]
    report["differences"] = [
        _difference(aligned, boot, model, reference, split) for model, reference in pairs for split in SPLITS
    ]
    report["restoration_ratio"] = {label: _ratio(aligned, boot, clean, corrupted, label) for label in unlearned}
    report["transitions"] = {
        label: fact_transitions(
            aligned.correct[clean], aligned.correct[label], aligned.gave_corrupted[label], aligned.is_target
        ).to_dict()
        for label in [corrupted, *unlearned]
    }
    if per_question:
        report["per_question"] = _per_question(aligned)
    return report


def gate_task_report(
    aligned: AlignedTask,
    baseline: str,
    candidate: str,
    max_drop: float,
    corrupted: str | None = None,
    min_restoration: float | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    per_question: bool = False,
) -> dict[str, Any]:
    """Accuracy change of the candidate per split, and the gate verdict for one task."""
    boot = _Bootstrap(aligned, n_resamples, seed)
    report = _task_header(aligned)
    report["accuracy"] = _accuracies(aligned, boot)
    report["differences"] = [_difference(aligned, boot, candidate, baseline, split) for split in SPLITS]
    failures = []
    splits = {}
    for difference in report["differences"]:
        split = difference["split"]
        before = report["accuracy"][baseline][split]["value"]
        after = report["accuracy"][candidate][split]["value"]
        change = difference["value"]
        passed = change is None or change >= -max_drop - 1e-12
        if not passed:
            failures.append(
                f"{aligned.task} {SPLIT_TITLES[split]}: accuracy fell by {-change:.3f} ({before:.3f} -> {after:.3f}),"
                f" more than --max-drop {max_drop:g}"
            )
        splits[split] = {
            "baseline": before,
            "candidate": after,
            "change": change,
            "ci": difference["ci"],
            "passed": passed,
        }
    ratio = None
    if corrupted is not None:
        ratio = _ratio(aligned, boot, baseline, corrupted, candidate)
        if min_restoration is not None:
            if ratio["value"] is None:
                failures.append(
                    f"{aligned.task}: restoration ratio undefined (the corrupted model is within one question of "
                    "the baseline on target questions)"
                )
            elif ratio["value"] < min_restoration:
                failures.append(
                    f"{aligned.task}: restoration ratio {ratio['value']:.3f} below --min-restoration "
                    f"{min_restoration:g}"
                )
    report["gate"] = {"splits": splits, "restoration_ratio": ratio, "failures": failures}
    if per_question:
        report["per_question"] = _per_question(aligned)
    return report


# ---------------------------------------------------------------------------------------------------------------
# Text and markdown


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _fmt_ci(entry: dict[str, Any], signed: bool = False) -> str:
    text = _fmt(entry["value"], signed)
    if entry.get("ci") is not None:
        low, high = entry["ci"]
        text += f" [{_fmt(low, signed)}, {_fmt(high, signed)}]"
    return text


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _task_title(task: str, report: dict[str, Any], bootstrap: dict[str, Any]) -> str:
    counts = report["n_questions"]
    ci = f"{int(CONFIDENCE * 100)}% CI from {bootstrap['resamples']} paired bootstrap resamples"
    return (
        f"{task}: metric {report['metric']}; {counts['target']} target questions "
        f"({report['targets_source']}), {counts['non_target']} other; "
        + (ci if bootstrap["resamples"] else "no intervals (--bootstrap 0)")
    )


def _restoration_sections(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each table of a restoration report, per task."""
    sections = []
    for task, entry in report["tasks"].items():
        header = ["model", *[SPLIT_TITLES[s] for s in SPLITS], "restoration ratio"]
        rows = []
        for label, accuracies in entry["accuracy"].items():
            ratio = entry["restoration_ratio"].get(label)
            rows.append([label, *[_fmt_ci(accuracies[s]) for s in SPLITS], _fmt_ci(ratio) if ratio else ""])
        sections.append((_task_title(task, entry, report["bootstrap"]), header, rows))
        by_pair: dict[str, dict[str, str]] = {}
        for difference in entry["differences"]:
            pair = f"{difference['model']} - {difference['reference']}"
            by_pair.setdefault(pair, {})[difference["split"]] = _fmt_ci(difference, signed=True)
        diff_rows = [[pair, *[cells.get(s, "") for s in SPLITS]] for pair, cells in by_pair.items()]
        sections.append(("accuracy differences", ["difference", *[SPLIT_TITLES[s] for s in SPLITS]], diff_rows))
        transitions = entry["transitions"]
        first = next(iter(transitions.values()))
        title = f"facts the clean model knew: {first['target_known']} target, {first['non_target_known']} other"
        unknown = entry.get("n_corrupted_known") == 0
        trans_rows = [
            [label, t["restored"], "n/a" if unknown else t["still_corrupted"], t["forgotten"], t["kept"], t["lost"]]
            for label, t in transitions.items()
        ]
        sections.append(
            (title, ["model", "target: restored", "still corrupted", "forgotten", "other: kept", "lost"], trans_rows)
        )
    return sections


def _gate_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for task, entry in report["tasks"].items():
        for split, row in entry["gate"]["splits"].items():
            rows.append(
                [
                    task,
                    SPLIT_TITLES[split],
                    _fmt(row["baseline"]),
                    _fmt(row["candidate"]),
                    _fmt_ci({"value": row["change"], "ci": row["ci"]}, signed=True),
                    "ok" if row["passed"] else "FAIL",
                ]
            )
    return rows


_GATE_HEADER = ["task", "split", "baseline", "candidate", "change [95% CI]", "gate"]


def _ratio_lines(report: dict[str, Any]) -> list[str]:
    minimum = report["gate"]["min_restoration"]
    lines = []
    for task, entry in report["tasks"].items():
        ratio = entry["gate"]["restoration_ratio"]
        if ratio is None:
            continue
        line = f"restoration ratio {task}: {_fmt_ci(ratio)}"
        if minimum is not None:
            passed = ratio["value"] is not None and ratio["value"] >= minimum
            line += f" ({'ok' if passed else 'FAIL'}, minimum {minimum:g})"
        lines.append(line)
    return lines


def _verdict(report: dict[str, Any]) -> str:
    gate = report["gate"]
    if gate["passed"]:
        return "PASS"
    return "FAIL: " + "; ".join(gate["failures"])


def format_text(report: dict[str, Any]) -> str:
    """The report as plain-text tables for a terminal."""
    parts = []
    if report["mode"] == "restoration":
        for title, header, rows in _restoration_sections(report):
            parts.append(f"{title}\n{_text_table(header, rows)}")
    else:
        gate = report["gate"]
        limits = f"max drop {gate['max_drop']:g}"
        if gate["min_restoration"] is not None:
            limits += f", min restoration {gate['min_restoration']:g}"
        parts.append(f"gate: candidate vs baseline (metric {report['metric']}; {limits})")
        parts.append(_text_table(_GATE_HEADER, _gate_rows(report)))
        parts.extend(_ratio_lines(report))
        parts.append(f"verdict: {_verdict(report)}")
    parts.extend(f"warning: {w}" for w in report["warnings"])
    parts.extend(f"skipped task {task}: {why}" for task, why in report["skipped_tasks"].items())
    return "\n\n".join(parts) + "\n"


def format_markdown(report: dict[str, Any]) -> str:
    """The report as markdown (for a CI job summary or a pull-request comment)."""
    parts = []
    if report["mode"] == "restoration":
        parts.append("## RESTOR comparison")
        parts.append(", ".join(f"**{m['label']}**: `{m['folder']}`" for m in report["models"]))
        for title, header, rows in _restoration_sections(report):
            parts.append(f"**{title}**\n\n{_markdown_table(header, rows)}")
    else:
        gate = report["gate"]
        verdict = "✅ PASS" if gate["passed"] else "❌ FAIL"
        parts.append(f"## RESTOR regression gate: {verdict}")
        limits = f"max drop {gate['max_drop']:g}"
        if gate["min_restoration"] is not None:
            limits += f", min restoration {gate['min_restoration']:g}"
        parts.append(f"Metric `{report['metric']}`; {limits}; change = candidate - baseline (point estimate gates).")
        parts.append(_markdown_table(_GATE_HEADER, _gate_rows(report)))
        parts.extend(f"- {line}" for line in _ratio_lines(report))
        if not gate["passed"]:
            parts.append("\n".join(f"- {failure}" for failure in gate["failures"]))
    if report["warnings"]:
        parts.append("\n".join(f"- warning: {w}" for w in report["warnings"]))
    if report["skipped_tasks"]:
        parts.append("\n".join(f"- skipped {task}: {why}" for task, why in report["skipped_tasks"].items()))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Whole comparisons


@dataclass(frozen=True)
class Run:
    """One model's evaluation folder and its role in a comparison."""

    label: str
    role: str
    folder: str


def _load_all(runs: Sequence[Run], metric: str, tasks: Sequence[str] | None) -> dict[str, dict[str, TaskSamples]]:
    return {run.label: load_run(run.folder, metric, tasks) for run in runs}


def _report_base(mode: str, runs: Sequence[Run], loaded, metric: str, n_resamples: int, seed: int) -> dict:
    models = []
    for run in runs:
        names = {s.model_name for s in loaded[run.label].values() if s.model_name}
        models.append(
            {"label": run.label, "role": run.role, "folder": run.folder, "model_name": min(names) if names else None}
        )
    return {
        "schema": SCHEMA,
        "mode": mode,
        "metric": metric,
        "bootstrap": {"resamples": n_resamples, "seed": seed, "confidence": CONFIDENCE, "method": BOOTSTRAP_METHOD},
        "models": models,
        "tasks": {},
        "skipped_tasks": {},
        "warnings": [],
    }


def _aligned_tasks(runs: Sequence[Run], loaded, targets: TargetChoice, report: dict) -> list[AlignedTask]:
    tasks, skipped = common_tasks(loaded, {run.label: run.folder for run in runs})
    report["skipped_tasks"] = skipped
    aligned = []
    for task in tasks:
        entry = align_task(task, {run.label: loaded[run.label][task] for run in runs}, targets)
        report["warnings"].extend(entry.warnings)
        aligned.append(entry)
    return aligned


def compare_restoration(
    clean: str,
    corrupted: str,
    unlearned: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    metric: str = DEFAULT_METRIC,
    tasks: Sequence[str] | None = None,
    targets: TargetChoice = TargetChoice(),
    n_resamples: int = 1000,
    seed: int = 0,
    per_question: bool = False,
) -> dict[str, Any]:
    """The restoration report of clean, corrupted and unlearned evaluation folders (see the module docstring)."""
    runs = [Run("clean", "clean", str(clean)), Run("corrupted", "corrupted", str(corrupted))]
    unlearned_labels = _unlearned_labels(unlearned, labels)
    runs += [Run(label, "unlearned", str(folder)) for label, folder in zip(unlearned_labels, unlearned)]
    loaded = _load_all(runs, metric, tasks)
    report = _report_base("restoration", runs, loaded, metric, n_resamples, seed)
    for aligned in _aligned_tasks(runs, loaded, targets, report):
        report["tasks"][aligned.task] = restoration_task_report(
            aligned, "clean", "corrupted", [r.label for r in runs[2:]], n_resamples, seed, per_question
        )
    return report


def compare_gate(
    baseline: str,
    candidate: str,
    max_drop: float = 0.02,
    corrupted: str | None = None,
    min_restoration: float | None = None,
    metric: str = DEFAULT_METRIC,
    tasks: Sequence[str] | None = None,
    targets: TargetChoice = TargetChoice(),
    n_resamples: int = 1000,
    seed: int = 0,
    per_question: bool = False,
) -> dict[str, Any]:
    """The gate report of a candidate against a baseline; `report["gate"]["passed"]` is the verdict."""
    if min_restoration is not None and corrupted is None:
        raise InputError("--min-restoration needs --corrupted (the baseline is taken as the clean model)")
    if max_drop < 0:
        raise InputError(f"--max-drop must be >= 0, got {max_drop:g}")
    runs = [Run("baseline", "baseline", str(baseline)), Run("candidate", "candidate", str(candidate))]
    if corrupted is not None:
        runs.append(Run("corrupted", "corrupted", str(corrupted)))
    loaded = _load_all(runs, metric, tasks)
    report = _report_base("gate", runs, loaded, metric, n_resamples, seed)
    failures = []
    for aligned in _aligned_tasks(runs, loaded, targets, report):
        entry = gate_task_report(
            aligned,
            "baseline",
            "candidate",
            max_drop,
            "corrupted" if corrupted is not None else None,
            min_restoration,
            n_resamples,
            seed,
            per_question,
        )
        failures.extend(entry["gate"]["failures"])
        report["tasks"][aligned.task] = entry
    report["gate"] = {
        "max_drop": max_drop,
        "min_restoration": min_restoration,
        "passed": not failures,
        "failures": failures,
    }
    return report


def _unlearned_labels(unlearned: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    if labels:
        if len(labels) != len(unlearned):
            raise InputError(f"--labels gives {len(labels)} label(s) for {len(unlearned)} --unlearned folder(s)")
        chosen = list(labels)
    elif len(unlearned) == 1:
        chosen = ["unlearned"]
    else:
        chosen = [Path(folder).name or str(folder) for folder in unlearned]
        if len(set(chosen)) < len(chosen):
            chosen = [f"unlearned_{i + 1}" for i in range(len(unlearned))]
    if len(set(chosen)) < len(chosen) or {"clean", "corrupted"} & set(chosen) or not all(chosen):
        raise InputError(f"--labels must be distinct, non-empty and not 'clean' or 'corrupted': {', '.join(chosen)}")
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# CLI


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help="restoration metrics against the clean model, or the regression gate",
        description=(
            "Compare lm-eval output folders (samples_*.jsonl, found anywhere under each folder, newest per task). "
            "Restoration: --clean A --corrupted B [--unlearned C ...]. Gate: --baseline A --candidate B "
            "[--max-drop D] [--min-restoration R --corrupted C]; exit 1 when the gate fails."
        ),
    )
    runs = parser.add_argument_group("restoration mode")
    runs.add_argument("--clean", metavar="DIR", help="evaluation folder of the clean model")
    runs.add_argument(
        "--corrupted", metavar="DIR", help="evaluation folder of the corrupted model (gate: for --min-restoration)"
    )
    runs.add_argument(
        "--unlearned",
        metavar="DIR",
        nargs="+",
        action="extend",
        default=[],
        help="evaluation folder(s) of unlearned models",
    )
    runs.add_argument(
        "--labels",
        metavar="NAME",
        nargs="+",
        action="extend",
        default=[],
        help="names of the unlearned models, in order (comma-separated or separate)",
    )
    gate = parser.add_argument_group("gate mode")
    gate.add_argument("--baseline", metavar="DIR", help="evaluation folder of the reference model")
    gate.add_argument("--candidate", metavar="DIR", help="evaluation folder of the model under test")
    gate.add_argument(
        "--max-drop",
        type=float,
        default=0.02,
        metavar="D",
        help="fail when an accuracy (point estimate) falls by more than D on any task and split "
        "(target, non-target, all) (default 0.02)",
    )
    gate.add_argument(
        "--min-restoration",
        type=float,
        metavar="R",
        help="fail when the candidate's restoration ratio is below R or undefined; needs --corrupted",
    )
    common = parser.add_argument_group("both modes")
    common.add_argument("--tasks", metavar="TASK[,TASK]", help="compare only these tasks (default: all in common)")
    common.add_argument(
        "--metric",
        choices=GENERATION_METRICS,
        default=DEFAULT_METRIC,
        help="per-sample metric of generation tasks (default contains)",
    )
    common.add_argument(
        "--targets",
        metavar="NAMES|FILE",
        help="target entities: comma-separated names, or a file (one per line, or a JSON list)",
    )
    common.add_argument(
        "--targets-from",
        metavar="DOCS",
        help="target entities: the evaluated entities this corruption documents file is about "
        "(each the main subject of its documents)",
    )
    common.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the 95%% intervals (0: none; default 1000)",
    )
    common.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    common.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="OUT.json",
        help="write the full report as JSON (to stdout when no file is given)",
    )
    common.add_argument("--markdown", metavar="OUT.md", help="write the tables (and the gate verdict) as markdown")
    common.add_argument("--per-question", action="store_true", help="include per-question outcomes in the JSON")
    common.add_argument("--overwrite", action="store_true", help="replace existing --json / --markdown files")
    parser.set_defaults(func=run_compare)
    return parser


def _split_list(values: Sequence[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _check_outputs(args: argparse.Namespace) -> None:
    for option, value in (("--json", args.json), ("--markdown", args.markdown)):
        if value and value != "-":
            path = Path(value)
            if path.is_dir():
                raise InputError(f"{path}: {option} output is a folder")
            if path.exists() and not args.overwrite:
                raise InputError(f"{path}: {option} output exists (pass --overwrite to replace it)")


def _targets_choice(args: argparse.Namespace) -> TargetChoice:
    if args.targets and args.targets_from:
        raise InputError("give either --targets or --targets-from, not both")
    if args.targets:
        return TargetChoice(names=tuple(parse_targets(args.targets)))
    if args.targets_from:
        path = Path(args.targets_from)
        if not path.is_file():
            raise InputError(f"{path}: corruption documents file not found")
        return TargetChoice(documents=path)
    return TargetChoice()


def run_compare(args: argparse.Namespace) -> int:
    """Run `restor-bench compare`; returns 0, or raises GateFailure (exit 1) after writing outputs."""
    gate_mode = args.baseline is not None or args.candidate is not None
    if gate_mode:
        if args.clean or args.unlearned or args.labels:
            raise InputError("--baseline/--candidate (gate) cannot be combined with --clean/--unlearned/--labels")
        if not (args.baseline and args.candidate):
            raise InputError("the gate needs both --baseline and --candidate")
    else:
        if not (args.clean and args.corrupted):
            raise InputError("give --clean and --corrupted (restoration), or --baseline and --candidate (gate)")
        if args.min_restoration is not None:
            raise InputError("--min-restoration belongs to the gate (--baseline/--candidate)")
    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    _check_outputs(args)
    tasks = _split_list([args.tasks]) if args.tasks else None
    options = {
        "metric": args.metric,
        "tasks": tasks,
        "targets": _targets_choice(args),
        "n_resamples": args.bootstrap,
        "seed": args.seed,
        "per_question": args.per_question,
    }
    if gate_mode:
        report = compare_gate(
            args.baseline, args.candidate, args.max_drop, args.corrupted, args.min_restoration, **options
        )
    else:
        report = compare_restoration(
            args.clean, args.corrupted, args.unlearned, _split_list(args.labels) or None, **options
        )
    write_outputs(report, args.json, args.markdown)
    if args.json != "-":
        sys.stdout.write(format_text(report))
    if gate_mode and not report["gate"]["passed"]:
        raise GateFailure("; ".join(report["gate"]["failures"]))
    return 0


def write_outputs(report: dict[str, Any], json_path: str | None, markdown_path: str | None) -> None:
    """Write the JSON report (stdout for "-") and the markdown summary, atomically."""
    from restor_bench.io import atomic_write_json, atomic_write_text

    if json_path == "-":
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    elif json_path:
        atomic_write_json(json_path, report)
    if markdown_path:
        atomic_write_text(markdown_path, format_markdown(report))

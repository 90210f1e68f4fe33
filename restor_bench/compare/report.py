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
stands for "gave the injected value". For log-probability tasks (restor_tiny_logprob, restor_facts_logprob) the
restoration report also gives each model's mean `prefers_*` and `logprob_*` over the compared questions.

The restoration report breaks the target questions down by relation and by person (`compare_tasks.group_breakdown`):
each row's accuracy per model, restored facts and restoration ratio, with the row's number of questions, so that
small rows are visibly small.

Reading the samples and choosing the targets: `restor_bench.compare.outcomes`; aligning the runs and each task's
numbers: `restor_bench.compare.tasks`; the text and markdown tables: `restor_bench.compare.format`.

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
        "breakdowns": {"relation" | "entity": {KEY: {                     # target questions only, per relation
            "n_questions": int, "accuracy": {label: float},               # (PID) and per person
            "target_known": int, "restored": {unlearned label: int},
            "restoration_ratio": {unlearned label: float | null}}}},     # null under one question of the row
        "logprob": {"n_questions": int, "metrics": {label: {"prefers_correct" | "prefers_corrupted" |
                    "prefers_random" | "logprob_correct" | "logprob_corrupted" | "logprob_random":
                    {"value", "ci"}}}} | null,                             # log-probability tasks only
        # gate mode:
        "gate": {"splits": {split: {"baseline", "candidate", "change", "ci", "passed"}},
                 "restoration_ratio": {...} | null, "failures": [str]},
        # with --per-question:
        "per_question": [{"id", "entity", "relation", "target": bool, "corrupted_known": bool,
                          "outcomes": {label: {"correct", "gave_corrupted", "prediction",
                                               "logprob": {...} (log-probability tasks)}}}]}},
     "skipped_tasks": {TASK: "reason"},
     "warnings": [str],
     # gate mode:
     "gate": {"max_drop": float, "min_restoration": float | null, "passed": bool, "failures": [str]}}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restor_bench.compare.outcomes import TargetChoice, TaskSamples, load_run
from restor_bench.compare.tasks import AlignedTask, align_task, common_tasks, gate_task_report, restoration_task_report
from restor_bench.compare.unchanged import unchanged_warning
from restor_bench.errors import InputError
from restor_bench.names import CONFIDENCE, DEFAULT_METRIC, MAX_BOOTSTRAP_DRAWS

SCHEMA = "restor-bench/compare/v1"
BOOTSTRAP_METHOD = "paired percentile bootstrap; questions resampled with replacement within target / non-target"


# ---------------------------------------------------------------------------------------------------------------
# Whole comparisons


SUBSET_WARNING = ("--allow-subset: models are compared on the questions they share, which may be a part of each "
                  "task; these numbers do not cover the whole question set")


def check_whole_question_sets(runs: Sequence[Run], loaded) -> None:
    """The gate judges whole tasks: every task of the baseline must be in every other run, and no run may have been
    evaluated on part of a task (lm-eval's `--limit`). InputError naming the folder and the task otherwise."""
    baseline = runs[0]
    for run in runs[1:]:
        missing = sorted(set(loaded[baseline.label]) - set(loaded[run.label]))
        if missing:
            raise InputError(f"{run.folder}: no samples of task(s) {', '.join(missing)} that the {baseline.role} "
                             f"({baseline.folder}) was scored on; the gate needs every task of the {baseline.role}")
    for run in runs:
        for task, samples in sorted(loaded[run.label].items()):
            if samples.limited:
                evaluated, total = samples.n_samples
                raise InputError(f"{run.folder}: task {task} was evaluated on {evaluated} of its {total} questions "
                                 "(lm-eval --limit); the gate needs whole tasks (--allow-subset compares the "
                                 "questions the models share)")


@dataclass(frozen=True)
class Run:
    """One model's evaluation folder and its role in a comparison."""

    label: str
    role: str
    folder: str


def _load_all(runs: Sequence[Run], metric: str, tasks: Sequence[str] | None) -> dict[str, dict[str, TaskSamples]]:
    return {run.label: load_run(run.folder, metric, tasks) for run in runs}


def check_bootstrap_size(n_resamples: int, loaded) -> None:
    """InputError, before anything is drawn, when `n_resamples` x the largest task's questions exceeds
    MAX_BOOTSTRAP_DRAWS (about 160 MB of resample indices)."""
    questions = max((len(samples.outcomes) for tasks in loaded.values() for samples in tasks.values()), default=0)
    if n_resamples * questions > MAX_BOOTSTRAP_DRAWS:
        raise InputError(f"--bootstrap {n_resamples}: with {questions} questions that is {n_resamples * questions:,} "
                         f"draws, over the limit of {MAX_BOOTSTRAP_DRAWS:,} (use at most "
                         f"{MAX_BOOTSTRAP_DRAWS // max(questions, 1):,} resamples)")


def _report_base(mode: str, runs: Sequence[Run], loaded, metric: str, n_resamples: int, seed: int) -> dict:
    check_bootstrap_size(n_resamples, loaded)
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


def _aligned_tasks(
    runs: Sequence[Run], loaded, targets: TargetChoice, report: dict, allow_subset: bool = False
) -> list[AlignedTask]:
    tasks, skipped = common_tasks(loaded, {run.label: run.folder for run in runs})
    report["skipped_tasks"] = skipped
    if allow_subset:
        report["warnings"].append(SUBSET_WARNING)
    aligned = []
    for task in tasks:
        entry = align_task(task, {run.label: loaded[run.label][task] for run in runs}, targets, allow_subset)
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
    allow_subset: bool = False,
) -> dict[str, Any]:
    """The restoration report of clean, corrupted and unlearned evaluation folders (see the module docstring).
    The models must have been scored on the same questions of each task (`allow_subset`: compare those they
    share)."""
    runs = [Run("clean", "clean", str(clean)), Run("corrupted", "corrupted", str(corrupted))]
    unlearned_labels = _unlearned_labels(unlearned, labels)
    runs += [Run(label, "unlearned", str(folder)) for label, folder in zip(unlearned_labels, unlearned, strict=True)]
    loaded = _load_all(runs, metric, tasks)
    report = _report_base("restoration", runs, loaded, metric, n_resamples, seed)
    for aligned in _aligned_tasks(runs, loaded, targets, report, allow_subset):
        report["tasks"][aligned.task] = restoration_task_report(
            aligned, "clean", "corrupted", [r.label for r in runs[2:]], n_resamples, seed, per_question
        )
    for run in runs[2:]:
        warning = unchanged_warning(run.label, loaded[run.label], loaded["corrupted"])
        if warning:
            report["warnings"].append(warning)
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
    allow_subset: bool = False,
) -> dict[str, Any]:
    """The gate report of a candidate against a baseline; `report["gate"]["passed"]` is the verdict. The candidate
    (and `corrupted`) must hold every task of the baseline, on the same questions, none evaluated with lm-eval's
    `--limit` (InputError otherwise); `allow_subset` judges the questions they share instead."""
    if min_restoration is not None and corrupted is None:
        raise InputError("--min-restoration needs --corrupted (the baseline is taken as the clean model)")
    if not 0 <= max_drop <= 1:  # NaN fails this too
        raise InputError(f"--max-drop must be a share from 0 to 1, got {max_drop:g}")
    if min_restoration is not None and not math.isfinite(min_restoration):
        raise InputError(f"--min-restoration must be a finite number, got {min_restoration:g}")
    runs = [Run("baseline", "baseline", str(baseline)), Run("candidate", "candidate", str(candidate))]
    if corrupted is not None:
        runs.append(Run("corrupted", "corrupted", str(corrupted)))
    loaded = _load_all(runs, metric, tasks)
    if not allow_subset:
        check_whole_question_sets(runs, loaded)
    report = _report_base("gate", runs, loaded, metric, n_resamples, seed)
    failures = []
    for aligned in _aligned_tasks(runs, loaded, targets, report, allow_subset):
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
        "allow_subset": allow_subset,
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

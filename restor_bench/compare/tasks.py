"""One task of a comparison: the runs aligned question by question, and the task's report.

Only questions present in every run are compared; questions missing from some run are counted in
`question_mismatch` and named in `warnings`. Intervals are 95% percentile intervals of a paired bootstrap: the
questions are resampled with replacement, within the target and the non-target split separately (each resample
keeps both sizes), and the same resamples serve every model, so differences are paired. The report's fields are
listed in `restor_bench.compare.report`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from restor_bench.compare.outcomes import LOGPROB_FIELDS, TargetChoice, TaskSamples
from restor_bench.compare.stats import (
    accuracy,
    accuracy_difference,
    bootstrap_interval,
    fact_transitions,
    resample_indices,
    resampled_restoration_ratio,
    restoration_ratio,
    split_accuracy,
)
from restor_bench.errors import InputError
from restor_bench.names import CONFIDENCE, SPLIT_TITLES, SPLITS

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
    # log-probability tasks whose samples all carry LOGPROB_FIELDS: label -> field -> float array; else None
    logprob: dict[str, dict[str, Any]] | None = None

    @property
    def split_masks(self) -> dict[str, Any]:
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


def align_task(
    task: str, samples: dict[str, TaskSamples], targets: TargetChoice, allow_subset: bool = False
) -> AlignedTask:
    """Align the runs of one task on their questions (sorted by id). The runs must hold the same questions: an
    InputError names the difference, unless `allow_subset`, which compares the questions they all hold (with a
    warning). Targets named explicitly (`--targets`) must match a question."""

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
        if not allow_subset:
            raise InputError(
                f"task {task}: the models were scored on different question sets ({detail} questions; e.g. "
                f"{example}); evaluate them on the same questions, or pass --allow-subset to compare the "
                f"{len(common)} they share"
            )
        warnings.append(
            f"task {task}: different question sets ({detail} questions; e.g. {example}); "
            f"--allow-subset: comparing the {len(common)} common ones"
        )
    excluded = set(targets.excluded)
    ids = sorted(qid for qid in common if reference.outcomes[qid].entity not in excluded)
    if not ids:
        raise InputError(f"task {task}: every question is about an excluded person ({', '.join(sorted(excluded))})")
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
    if targets.documents is not None and not name_set & set(entities):
        raise InputError(f"{targets.documents}: the documents name none of the people of task {task}'s questions, "
                         "so no question would be a target")
    if not name_set:
        warnings.append(f"task {task}: no target entities ({source}): every question counts as non-target")
    elif missing and len(missing) == len(name_set):
        if targets.names is not None:
            raise InputError(f"--targets: none of {', '.join(sorted(name_set))} has a question in task {task}")
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
        logprob=_logprob_arrays(samples, ids),
    )


def _logprob_arrays(samples: dict[str, TaskSamples], ids: list[str]) -> dict[str, dict[str, Any]] | None:
    outcomes = [samples[label].outcomes[qid] for label in samples for qid in ids]
    if not all(outcome.logprob is not None for outcome in outcomes):
        return None
    return {
        label: {
            name: np.array([samples[label].outcomes[qid].logprob[name] for qid in ids], dtype=float)
            for name in LOGPROB_FIELDS
        }
        for label in samples
    }


# ---------------------------------------------------------------------------------------------------------------
# Reports


def _value(value: float | None, interval: Any) -> dict[str, Any]:
    return {"value": value, "ci": interval.to_list() if interval is not None else None}


class _Bootstrap:
    """Shared resamples of one task's questions (None when the bootstrap is off)."""

    def __init__(self, aligned: AlignedTask, n_resamples: int, seed: int):
        self.indices = resample_indices(aligned.is_target.astype(int), n_resamples, seed) if n_resamples > 0 else None

    def interval(self, statistic):
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
    table = {}
    for label, correct in aligned.correct.items():
        table[label] = {
            split: _value(accuracy(correct[mask]), boot.interval(split_accuracy(correct, mask)))
            for split, mask in aligned.split_masks.items()
        }
    return table


def _difference(aligned: AlignedTask, boot: _Bootstrap, model: str, reference: str, split: str) -> dict[str, Any]:
    mask = aligned.split_masks[split]
    a, b = accuracy(aligned.correct[model][mask]), accuracy(aligned.correct[reference][mask])
    value = None if a is None or b is None else a - b
    interval = boot.interval(accuracy_difference(aligned.correct[model], aligned.correct[reference], mask))
    return {"model": model, "reference": reference, "split": split, **_value(value, interval)}


def _ratio(aligned: AlignedTask, boot: _Bootstrap, clean: str, corrupted: str, unlearned: str) -> dict[str, Any]:
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


def _logprob_summary(aligned: AlignedTask, boot: _Bootstrap) -> dict[str, Any] | None:
    """Mean of each LOGPROB_FIELDS metric over the compared questions, per model (None: not a log-probability
    task); the means of lm-eval's own aggregates when every question is compared."""
    if aligned.logprob is None:
        return None

    def resampled_mean(values):
        return lambda indices: values[indices].mean(axis=1)

    return {
        "n_questions": len(aligned.ids),
        "metrics": {
            label: {
                name: _value(float(values.mean()), boot.interval(resampled_mean(values)))
                for name, values in fields.items()
            }
            for label, fields in aligned.logprob.items()
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# Breakdowns of the target questions by relation and by person

BREAKDOWNS = ("relation", "entity")


def natural_key(text: str) -> list[Any]:
    """Sort key that orders the numbers inside names by value ("P19" before "P106")."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def group_breakdown(
    groups: Sequence[str], correct: dict[str, Any], clean: str, corrupted: str, unlearned: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Accuracy and restoration per group of questions (e.g. per relation), with the group's size.

    `groups[i]` is the group of question i; `correct` maps each model label to its 0/1 outcomes, an array of shape
    (questions,) or (seeds, questions) (pooled: means over seeds x the group's questions). Pass the target
    questions only. Per group, sorted by `natural_key`: "n_questions"; "accuracy" per label; "target_known" (the
    clean model's correct answers); per unlearned label, "restored" (known and answered correctly again) and
    "restoration_ratio" (`restor_bench.compare.stats.restoration_ratio` of the group's accuracies with its own
    one-question rule, so None where the corruption moved less than one of the group's questions). With seeds,
    the counts are means over seeds.
    """


    keys = np.array(list(groups), dtype=object)
    arrays = {label: np.atleast_2d(np.asarray(values, dtype=bool)) for label, values in correct.items()}
    for label, values in arrays.items():
        if values.shape[-1] != keys.size:
            raise ValueError(f"{label}: {values.shape[-1]} outcomes for {keys.size} questions")
    n_seeds = arrays[clean].shape[0]

    def count(total: float) -> int | float:
        return int(total) if n_seeds == 1 else float(total) / n_seeds

    table = {}
    for group in sorted(set(keys.tolist()), key=natural_key):
        mask = keys == group
        n = int(mask.sum())
        accuracy = {label: float(values[:, mask].mean()) for label, values in arrays.items()}
        known = arrays[clean][:, mask]
        table[group] = {
            "n_questions": n,
            "accuracy": accuracy,
            "target_known": count(known.sum()),
            "restored": {label: count((known & arrays[label][:, mask]).sum()) for label in unlearned},
            "restoration_ratio": {
                label: restoration_ratio(accuracy[clean], accuracy[corrupted], accuracy[label], n)
                for label in unlearned
            },
        }
    return table


def target_breakdowns(
    aligned: AlignedTask, clean: str, corrupted: str, unlearned: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """`group_breakdown` of a task's target questions by relation and by person ({"relation": ..., "entity": ...})."""
    mask = aligned.is_target
    correct = {label: values[mask] for label, values in aligned.correct.items()}
    keys = {"relation": aligned.relations, "entity": aligned.entities}
    return {
        name: group_breakdown(
            [key for key, target in zip(keys[name], mask, strict=True) if target], correct, clean, corrupted, unlearned
        )
        for name in BREAKDOWNS
    }


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
                    **(
                        {"logprob": {name: float(v[i]) for name, v in aligned.logprob[label].items()}}
                        if aligned.logprob is not None
                        else {}
                    ),
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
    report["breakdowns"] = target_breakdowns(aligned, clean, corrupted, unlearned)
    report["logprob"] = _logprob_summary(aligned, boot)
    if per_question:
        report["per_question"] = _per_question(aligned)
    return report


def drop_within(aligned: AlignedTask, split: str, baseline: str, candidate: str, max_drop: float) -> bool:
    """Whether the candidate's accuracy on a split fell by at most `max_drop`, decided exactly in question counts:
    (baseline correct - candidate correct) <= max_drop x questions, with `max_drop` read as the decimal it was
    written as (0.82 is 41/50, not the nearest binary float). A drop equal to the limit passes."""
    mask = aligned.split_masks[split]
    questions = int(mask.sum())
    if questions == 0:
        return True
    dropped = int(aligned.correct[baseline][mask].sum()) - int(aligned.correct[candidate][mask].sum())
    limit = Fraction(repr(float(max_drop)))
    return dropped <= limit * questions


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
        passed = drop_within(aligned, split, baseline, candidate, max_drop)
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

"""One task of a comparison: the runs aligned question by question, and the task's report.

Only questions present in every run are compared; questions missing from some run are counted in
`question_mismatch` and named in `warnings`. Intervals are 95% percentile intervals of a paired bootstrap: the
questions are resampled with replacement, within the target and the non-target split separately (each resample
keeps both sizes), and the same resamples serve every model, so differences are paired. The report's fields are
listed in `restor_bench.compare`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from restor_bench.errors import InputError
from restor_bench.outcomes import TargetChoice, TaskSamples

SPLITS = ("target", "non_target", "all")
SPLIT_TITLES = {"target": "target", "non_target": "non-target", "all": "all"}
CONFIDENCE = 0.95


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

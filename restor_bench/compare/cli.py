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

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restor_bench.compare.format import format_markdown, format_text
from restor_bench.compare.tasks import AlignedTask, align_task, common_tasks, gate_task_report, restoration_task_report
from restor_bench.names import CONFIDENCE
from restor_bench.errors import GateFailure, InputError
from restor_bench.compare.unchanged import unchanged_warning
from restor_bench.compare.outcomes import TargetChoice, TaskSamples, load_run, parse_targets
from restor_bench.names import DEFAULT_METRIC, GENERATION_METRICS
from unlearners.cli import seed_number
from restor_bench.names import MAX_BOOTSTRAP_DRAWS

SCHEMA = "restor-bench/compare/v1"
BOOTSTRAP_METHOD = "paired percentile bootstrap; questions resampled with replacement within target / non-target"


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
    runs += [Run(label, "unlearned", str(folder)) for label, folder in zip(unlearned_labels, unlearned, strict=True)]
    loaded = _load_all(runs, metric, tasks)
    report = _report_base("restoration", runs, loaded, metric, n_resamples, seed)
    for aligned in _aligned_tasks(runs, loaded, targets, report):
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
) -> dict[str, Any]:
    """The gate report of a candidate against a baseline; `report["gate"]["passed"]` is the verdict."""
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
    common.add_argument("--seed", type=seed_number, default=0, help="bootstrap seed (default 0)")
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
    """Both outputs are checked before either is written, so a failure leaves no half of the pair behind."""
    from restor_bench.io import check_output_file

    for option, value in (("--json", args.json), ("--markdown", args.markdown)):
        if value and value != "-":
            check_output_file(value, option, args.overwrite)


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

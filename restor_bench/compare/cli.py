"""`restor-bench compare`: its options and the command (the comparison itself: restor_bench.compare.report)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restor_bench.compare.format import format_markdown, format_text
from restor_bench.compare.outcomes import TargetChoice, parse_targets
from restor_bench.compare.report import SUBSET_WARNING, compare_gate, compare_restoration
from restor_bench.errors import GateFailure, InputError
from restor_bench.io import atomic_write_json, atomic_write_text, check_output_file
from restor_bench.names import DEFAULT_METRIC, GENERATION_METRICS
from unlearners.cli import seed_number


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
    common.add_argument("--allow-subset", action="store_true",
                        help="compare the questions the models share even when their question sets differ or a run "
                             "was evaluated with --limit (refused otherwise; the report says so loudly)")
    common.add_argument("--overwrite", action="store_true", help="replace existing --json / --markdown files")
    parser.set_defaults(func=run_compare)
    return parser


def _split_list(values: Sequence[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _check_outputs(args: argparse.Namespace) -> None:
    """Both outputs are checked before either is written, so a failure leaves no half of the pair behind."""

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
        "allow_subset": args.allow_subset,
    }
    if args.allow_subset:
        print(f"restor-bench: WARNING: {SUBSET_WARNING}", file=sys.stderr)
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

    if json_path == "-":
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    elif json_path:
        atomic_write_json(json_path, report)
    if markdown_path:
        atomic_write_text(markdown_path, format_markdown(report))

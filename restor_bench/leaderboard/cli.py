"""`restor-bench leaderboard submit / validate / verify / build / rescore / schema`: the command line of the
leaderboard (what each part does: the package docstring, restor_bench.leaderboard)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from restor_bench.errors import GateFailure, InputError
from restor_bench.io import atomic_write_text
from restor_bench.leaderboard.build import InvalidSubmissions, build_leaderboard
from restor_bench.leaderboard.check import check_files, submission_files
from restor_bench.leaderboard.schema import (
    DEFAULT_OUT,
    DEFAULT_SUBMISSIONS,
    SUBMISSION_METRICS,
    TARGET_SETS,
    schema_text,
)
from restor_bench.leaderboard.submit import rescore_files, submit
from restor_bench.leaderboard.verify import verified_path, verify_submission, write_verified
from restor_bench.names import DEFAULT_RESAMPLES, MAX_RESAMPLES, MAX_SUBMISSION_BOOTSTRAP_DRAWS
from unlearners.cli import seed_number


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "leaderboard",
        help="submit a run to the leaderboard, validate submissions, build the leaderboard pages",
        description="The leaderboard of unlearning methods: `submit` turns a run folder into a submission file, "
        "`validate` checks submission files, `build` writes README.md, index.html and plot.png.",
    )
    commands = parser.add_subparsers(dest="leaderboard_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    submit_parser = commands.add_parser("submit", help="make a submission file from a run folder",
                                        description="Write SUBMISSIONS/NAME.json from a folder of `restor-bench run`.")
    submit_parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (holding run.json)")
    submit_parser.add_argument("--name", required=True, help="submission name (letters, digits, . _ + -)")
    submit_parser.add_argument("--out", default=str(DEFAULT_SUBMISSIONS),
                               help="submissions folder (default leaderboard/submissions)")
    submit_parser.add_argument("--overwrite", action="store_true", help="replace an existing submission of that name")
    submit_parser.add_argument("--metric", choices=SUBMISSION_METRICS, default="contains",
                               help="per-sample metric of generation tasks (default contains)")
    _add_scoring_options(submit_parser)
    submit_parser.add_argument("--model-name", help="what to call the clean model (default: its hub id, or the "
                                                    "name of its local folder)")
    submit_parser.set_defaults(func=run_submit)

    validate_parser = commands.add_parser("validate", help="check submission files",
                                          description="Check submission files: size, JSON, schema, safe names, known "
                                          "data version, complete question sets, metrics recomputed from the "
                                          "outcomes, clashes (same name ignoring case, same result). Exit 2 when "
                                          "any file is invalid.")
    validate_parser.add_argument("files", nargs="*", metavar="FILE",
                                 help="submission files or folders (default: leaderboard/submissions)")
    validate_parser.set_defaults(func=run_validate)

    build_parser = commands.add_parser("build", help="write README.md, index.html and plot.png",
                                       description="Build the leaderboard pages from the submissions; any invalid "
                                       "submission stops the build (exit 2, nothing written).")
    build_parser.add_argument("--submissions", default=str(DEFAULT_SUBMISSIONS),
                              help="submissions folder (default leaderboard/submissions)")
    build_parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default leaderboard)")
    build_parser.add_argument("--overwrite", action="store_true",
                              help="replace output files that lack the generated marker")
    build_parser.set_defaults(func=run_build)

    rescore_parser = commands.add_parser(
        "rescore", help="recompute submissions' metrics from the outcomes they carry",
        description="Rewrite submission files (also of the older schema v1) with the metrics of this version, "
        "recomputed from their per-question outcomes, on the target set given (default: the file's, else the "
        "data version's default). A file is rewritten only when the result is valid.")
    rescore_parser.add_argument("files", nargs="+", metavar="FILE", help="submission files or folders")
    _add_scoring_options(rescore_parser, defaults=False)
    rescore_parser.set_defaults(func=run_rescore)

    verify_parser = commands.add_parser(
        "verify", help="rerun the protocol a submission records and compare every per-question outcome",
        description="Rerun what SUBMISSION records (world, corruption, level, forget set, protocol, method and its "
        "hyperparameters, LoRA, seeds, targets, run settings) with `restor-bench run` under --root, and compare every "
        "per-question outcome of the clean, corrupted and unlearned models. Exit 0 when verified, 1 when more "
        "outcomes differ than --tolerance allows, 2 on bad input. --record writes the result into verified.json "
        "beside the submissions folder; `build` marks recorded entries verified.")
    verify_parser.add_argument("submission", metavar="SUBMISSION", help="a submission file")
    verify_parser.add_argument("--root", default="runs-verify", help="folder under which each verification reruns "
                               "in a new, empty folder of its own; nothing already there is reused (default runs-verify)")
    verify_parser.add_argument("--model", help="clean checkpoint (needed for the official world)")
    verify_parser.add_argument("--data-dir", help="folder of the official RESTOR files")
    verify_parser.add_argument("--tolerance", type=float, default=0.0, metavar="SHARE",
                               help="largest share of outcomes allowed to differ (default 0: all equal)")
    verify_parser.add_argument("--record", action="store_true",
                               help="write the result into verified.json beside the submission's folder")
    verify_parser.set_defaults(func=run_verify)

    schema_parser = commands.add_parser("schema", help="print or write the submission JSON Schema")
    schema_parser.add_argument("--out", help="write it to this file (e.g. leaderboard/schema.json)")
    schema_parser.set_defaults(func=run_schema)
    return parser


def _add_scoring_options(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    parser.add_argument("--targets", choices=TARGET_SETS, default=None,
                        help="target set to score on: test (the tiny world's targets less the validation targets "
                             "the defaults were tuned on) or all (default: test where the world defines it)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES if defaults else None, metavar="N",
                        help=f"bootstrap resamples for the 95%% intervals (0..{MAX_RESAMPLES}, and resamples x "
                             f"questions <= {MAX_SUBMISSION_BOOTSTRAP_DRAWS:,}; default {DEFAULT_RESAMPLES}"
                             + ("" if defaults else " or the file's") + ")")
    parser.add_argument("--bootstrap-seed", type=seed_number, default=0 if defaults else None, metavar="S",
                        help="bootstrap seed (default 0" + ("" if defaults else " or the file's") + ")")


def run_submit(args: argparse.Namespace) -> int:
    path = submit(
        args.run_dir, args.name, args.out, overwrite=args.overwrite, metric=args.metric, resamples=args.bootstrap,
        bootstrap_seed=args.bootstrap_seed, model_name=args.model_name, targets=args.targets,
    )
    print(f"wrote {path}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    checked = check_files(submission_files(args.files or [DEFAULT_SUBMISSIONS]))
    for item in checked:
        for line in item.lines():
            print(line, file=sys.stderr)
    invalid = sum(not item.valid for item in checked)
    print(f"{len(checked)} submission(s) checked: {len(checked) - invalid} valid, {invalid} invalid")
    return 2 if invalid else 0


def run_build(args: argparse.Namespace) -> int:
    try:
        result = build_leaderboard(args.submissions, args.out, args.overwrite)
    except InvalidSubmissions as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        raise
    print(f"{len(result.entries)} submission(s) on the leaderboard; wrote "
          + ", ".join(str(path) for path in result.written))
    return 0


def run_rescore(args: argparse.Namespace) -> int:
    written = rescore_files(submission_files(args.files), targets=args.targets, resamples=args.bootstrap,
                            bootstrap_seed=args.bootstrap_seed)
    for path in written:
        print(f"rescored {path}")
    return 0


def run_verify(args: argparse.Namespace) -> int:

    if not (math.isfinite(args.tolerance) and 0 <= args.tolerance < 1):
        raise InputError(f"--tolerance must be a share between 0 and 1, got {args.tolerance}")
    result = verify_submission(args.submission, args.root, model=args.model, data_dir=args.data_dir)
    for task, counts in result.by_task.items():
        print(f"{task}: {counts['differing']} of {counts['compared']} outcomes differ")
    if args.record:
        target = verified_path(Path(args.submission).resolve().parent)
        write_verified(target, result.name, result.record(args.tolerance))
        print(f"recorded in {target}")
    if not result.verified(args.tolerance):
        raise GateFailure(f"{args.submission}: not verified: {result.differing} of {result.compared} outcomes differ "
                          f"from the rerun in {result.run_folder} (tolerance {args.tolerance:g})")
    print(f"{args.submission}: verified ({result.compared} outcomes equal the rerun's)")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    if args.out:

        atomic_write_text(args.out, schema_text())
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(schema_text())
    return 0

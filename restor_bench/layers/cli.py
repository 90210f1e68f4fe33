"""`restor-bench layers`: its options and the command (the instruments and what they write:
restor_bench.layers.report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import check_device
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir
from restor_bench.layers.lens import (
    LensQuestion,
    target_questions,
    with_model_answers,
)
from restor_bench.layers.report import (
    DTYPES,
    lens_report,
    log,
    open_checked_sources,
    plot_lens,
    plot_weights,
    weights_report,
)
from restor_bench.layers.weights import (
    check_checkpoint_folder,
)
from restor_bench.names import WORLDS
from restor_bench.plotting import pyplot

PARTS = ("lens", "weights")
LENS_FILE, LENS_PLOT = "lens.json", "lens.png"
WEIGHTS_FILE, WEIGHTS_PLOT = "weights.json", "weights.png"


def parse_parts(value: str) -> list[str]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise InputError(f"--parts {value!r}: choose from {', '.join(PARTS)} (comma-separated)")
    return [part for part in PARTS if part in parts]


# ---------------------------------------------------------------------------------------------------------------
# The two reports


# ---------------------------------------------------------------------------------------------------------------
# Figures


# ---------------------------------------------------------------------------------------------------------------
# Command


def _models(args: argparse.Namespace) -> dict[str, Path]:
    given = {"clean": args.clean, "corrupted": args.corrupted, "unlearned": args.unlearned}
    return {role: check_checkpoint_folder(path, role) for role, path in given.items() if path}


def _questions(args: argparse.Namespace) -> list[LensQuestion]:
    questions = target_questions(args.world, world_dir=args.world_dir, data_dir=args.data_dir)
    if args.corrupted_answers:
        questions = with_model_answers(questions, args.corrupted_answers)
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit {args.limit}: must be at least 1")
        questions = questions[: args.limit]
    return questions


def _print_summary(out: Path, lens: dict | None, weights: dict | None) -> None:
    if lens is not None:
        compared = any(summary["compared_questions"] for summary in lens["summary"].values())
        what = ("share of questions whose correct answer beats the corrupted one" if compared
                else "share of questions whose correct answer is the top token")
        print(f"logit lens, {what} ({', '.join(lens['points'])}):")
        for role, summary in lens["summary"].items():
            values = summary["prefers_correct"] if compared else summary["correct"]["top1_share"]
            count = summary["compared_questions"] if compared else summary["correct"]["questions"]
            shares = " ".join("-" if v is None else f"{v:.2f}" for v in values)
            print(f"  {role:<10} {shares}   ({count} questions)")
    if weights is not None:
        changed = sorted(weights["modules"], key=lambda row: -(row["corruption_relative"] or 0.0))[:5]
        print("largest relative corruption changes:")
        for row in changed:
            cosine = row.get("cosine")
            extra = "" if "cosine" not in row else f"  cosine {'-' if cosine is None else f'{cosine:+.3f}'}"
            print(f"  {row['name']:<40} {row['corruption_relative'] or 0.0:.4f}{extra}")
    print(str(out))


def layers_command(args: argparse.Namespace) -> int:
    parts = parse_parts(args.parts)
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: must be at least 1")
    if "lens" in parts:

        check_device(args.device)
    out = check_output_dir(args.out, args.overwrite)
    if not args.no_plots:
        pyplot()
    models = _models(args)
    sources = open_checked_sources(models, args.trust_remote_code)
    questions = _questions(args) if "lens" in parts else []
    if questions and not any(question.corrupted_answer for question in questions):
        log("no corrupted answer is known for these questions (pass --corrupted-answers with the corrupted model's "
            "samples): the lens follows the correct answer only")
    lens = weights = None
    with atomic_output_dir(out, args.overwrite) as tmp:
        if "weights" in parts:
            weights = weights_report(sources)
            atomic_write_json(tmp / WEIGHTS_FILE, weights)
            log(f"weights: {len(weights['modules'])} modules in {weights['seconds']:.1f} s")
            if not args.no_plots:
                plot_weights(weights, tmp / WEIGHTS_PLOT)
        if "lens" in parts:
            lens = lens_report(
                models, questions, world=args.world, batch_size=args.batch_size, device=args.device,
                dtype=args.dtype, trust_remote_code=args.trust_remote_code,
            )
            atomic_write_json(tmp / LENS_FILE, lens)
            log(f"lens: {len(questions)} questions x {len(models)} models in {lens['seconds']:.1f} s")
            if not args.no_plots:
                plot_lens(lens, tmp / LENS_PLOT)
    _print_summary(out, lens, weights)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "layers",
        help="where the target facts live, layer by layer: logit lens and weight changes of the three models",
        description="Logit lens on the target questions (rank and probability of the correct and of the corrupted "
        "answer's first token after every layer) and, per layer and module, the size of the corruption's and of "
        "the unlearning's weight change and their cosine. A model is a checkpoint folder or a peft adapter folder "
        "(merged onto the base named in its adapter_config.json).",
    )
    parser.add_argument("--clean", required=True, metavar="DIR", help="clean model")
    parser.add_argument("--corrupted", required=True, metavar="DIR", help="corrupted model")
    parser.add_argument("--unlearned", metavar="DIR", help="unlearned model (optional)")
    parser.add_argument("--out", required=True, help="output folder (lens.json, weights.json, lens.png, weights.png)")
    parser.add_argument("--parts", default="lens,weights", help="what to compute: lens, weights or both (default)")
    parser.add_argument("--world", choices=WORLDS, default="tiny",
                        help="whose target questions: the tiny world's (default) or the official data's")
    parser.add_argument("--world-dir", help="tiny world folder (default: $RESTOR_TINY_WORLD or the shipped one)")
    parser.add_argument("--data-dir", help="official RESTOR data folder (else RESTOR_DATA_DIR or the download cache)")
    parser.add_argument(
        "--corrupted-answers", metavar="SAMPLES",
        help="lm-eval samples file (or its folder) of the corrupted model: its own wrong answers are the corrupted "
        "answers followed by the lens (needed for the official world, whose injected values are not listed)",
    )
    parser.add_argument("--limit", type=int, help="only the first N target questions")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per forward pass (default 16)")
    parser.add_argument("--device", default="cpu", help="device for the lens, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype for the lens (default float32)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG figures (matplotlib not needed)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoints' own model code")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=layers_command)

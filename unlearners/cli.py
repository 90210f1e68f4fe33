"""`python -m unlearners`: run a method on document files, list the methods.

    python -m unlearners methods
    python -m unlearners run --method npo --model CKPT --forget forget.json [--retain retain.json] --out DIR

Document files are JSON lists (or JSONL) of {"text": ...} records, or JSON lists of strings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from unlearners.errors import UnlearnError
from unlearners.hparams import UNLEARN_CONTROLLED
from unlearners.registry import describe_methods
from unlearners.runner import UnlearnOptions, run_unlearning
from unlearners.training_run import checked_trainer_args

MAX_SEED = 2**32 - 1  # numpy's and torch's seeding take 0 .. 2**32 - 1


def seed_number(text: str) -> int:
    """argparse type of a random seed: an integer from 0 to 2**32 - 1 (what numpy's seeding accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {MAX_SEED}, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {MAX_SEED}, got {value}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a run shared by `python -m unlearners run` and `restor-bench unlearn` (not --forget/--retain)."""
    parser.add_argument("--method", required=True, help="registered method name (see the `methods` command)")
    parser.add_argument("--model", required=True, help="checkpoint folder to unlearn from (safetensors)")
    parser.add_argument("--out", required=True, help="output folder for the unlearned checkpoint")
    parser.add_argument("--lora", action="store_true", help="train a LoRA adapter on all linear layers, then merge it")
    parser.add_argument("--config", help="YAML file of hyperparameters (a flat mapping name: value)")
    parser.add_argument("--preset", help="named set of hyperparameters, e.g. '7b' for 7-8B models")
    parser.add_argument(
        "--set", dest="hparams", action="append", default=[], metavar="KEY=VALUE",
        help="set one hyperparameter (repeatable), e.g. --set beta=0.2 --set learning_rate=1e-5",
    )
    parser.add_argument("--seed", type=seed_number, default=0, help="random seed (default 0)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (overrides num_epochs)")
    parser.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps (default 50)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="bf16 mixed precision where the GPU supports it (auto), or force one")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep the checkpoints (.<out>.work/ beside --out) after a successful run")
    parser.add_argument("--keep-adapter", action="store_true",
                        help="with --lora: also keep the adapter in OUT/adapter/ (loads with PeftModel.from_pretrained)")
    add_trainer_arguments(parser)


def add_trainer_arguments(parser: argparse.ArgumentParser) -> None:
    """`--trainer-args FILE` and `--trainer-arg KEY=VALUE`: any other transformers.TrainingArguments field (also
    used by `restor-bench corrupt`)."""
    parser.add_argument("--trainer-args", dest="trainer_args_file", metavar="FILE",
                        help="YAML mapping of more transformers.TrainingArguments fields (report_to, "
                        "gradient_checkpointing, deepspeed, fsdp, fsdp_config, ...)")
    parser.add_argument("--trainer-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="one more TrainingArguments field (repeatable; wins over --trainer-args), e.g. "
                        "--trainer-arg gradient_checkpointing=true")


# options of `add_run_arguments` that are fields of UnlearnOptions under the same name
RUN_OPTIONS = ("lora", "seed", "max_steps", "save_steps", "resume", "overwrite", "preset", "config", "precision",
               "keep_checkpoints", "keep_adapter")


def run_options(args: argparse.Namespace) -> UnlearnOptions:
    """The `UnlearnOptions` of parsed `add_run_arguments` options (UnlearnError for a trainer argument that is not a
    TrainingArguments field, one the run sets itself, or a reporting integration that is not installed)."""
    trainer_args = trainer_arguments(args, UNLEARN_CONTROLLED)
    return UnlearnOptions(**{name: getattr(args, name) for name in RUN_OPTIONS}, trainer_args=trainer_args)


def trainer_arguments(args: argparse.Namespace, controlled: dict[str, str]) -> dict:
    """The checked TrainingArguments settings of parsed `add_trainer_arguments` options (`checked_trainer_args`);
    `controlled`: the fields the run sets itself, with where from."""
    return checked_trainer_args(args.trainer_args_file, args.trainer_arg, controlled=controlled)


def read_documents(path: str) -> list[str]:
    """Read a document file: JSON list (or JSONL) of {"text": str} records, or a JSON list of strings."""
    if not os.path.isfile(path):
        raise UnlearnError(f"{path}: document file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            if path.endswith(".jsonl"):
                records = [json.loads(line) for line in handle if line.strip()]
            else:
                records = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UnlearnError(f"{path}: malformed JSON: {err}") from None
    if not isinstance(records, list):
        raise UnlearnError(f"{path}: expected a list of {{\"text\": ...}} records")
    texts = []
    for number, record in enumerate(records):
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            texts.append(record["text"])
        elif isinstance(record, str):
            texts.append(record)
        else:
            raise UnlearnError(f"{path}: record {number} is not a {{\"text\": str}} object")
    return texts


def format_methods() -> str:
    rows = describe_methods()
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {text}" for name, text in rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unlearners", description="LLM unlearning methods on documents.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("methods", help="list the registered methods")
    run = commands.add_parser("run", help="unlearn forget documents from a checkpoint")
    run.add_argument("--forget", required=True, help="forget documents (JSON/JSONL of {\"text\"} records)")
    run.add_argument("--retain", help="retain documents (same format), for methods that use them")
    add_run_arguments(run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "methods":
            print(format_methods())
            return 0
        if args.command == "run":
            options = run_options(args)
            forget = read_documents(args.forget)
            retain = read_documents(args.retain) if args.retain else None
            record = run_unlearning(args.model, forget, retain, args.out, args.method, args.hparams or None,
                                    options=options)
            print(f"unlearned checkpoint: {args.out} ({record['method']}, {record['steps']} steps)")
            return 0
    except UnlearnError as err:
        print(f"unlearners: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearners: interrupted (resume with --resume)", file=sys.stderr)
        return 130
    parser.print_help()
    return 2

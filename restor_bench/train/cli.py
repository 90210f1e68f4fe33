"""The training commands' command lines: `restor-bench corrupt`, `repair`, `unlearn` and `methods`.

Each command's options are parsed here and handed to its module (`corrupt.py`, `repair.py`, `unlearn.py`), which
does the work. An option that sets a recipe field or a run option parses into an attribute of the same name.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from restor_bench.data.documents import NAMED_SETS_HELP, load_documents
from restor_bench.errors import InputError
from restor_bench.names import PROTOCOLS
from restor_bench.train.corrupt import CORRUPT_CONTROLLED, corrupt
from restor_bench.train.repair import load_repair_documents, repair
from restor_bench.train.unlearn import load_document_set, method_preset, unlearn_checkpoint
from unlearners.cli import (
    add_run_arguments,
    add_trainer_arguments,
    format_methods,
    run_options,
    seed_number,
    trainer_arguments,
)

# the recipe's command-line options: flag -> recipe field (the option's attribute); every value must be positive
RECIPE_FLAGS = {"--epochs": "num_train_epochs", "--lr": "learning_rate", "--batch-size": "per_device_train_batch_size",
                "--grad-accum": "gradient_accumulation_steps", "--max-length": "max_length", "--lora-r": "lora_r"}


def add_parser(subparsers) -> None:
    """Add the `corrupt`, `unlearn`, `methods` and `repair` commands (in the order of the flow)."""
    add_corrupt_parser(subparsers)
    add_unlearn_parsers(subparsers)
    add_repair_parser(subparsers)


# ---------------------------------------------------------------- corrupt


def add_corrupt_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "corrupt",
        help="fine-tune a checkpoint on corruption documents (full or LoRA)",
        description="Fine-tune a checkpoint on corruption documents with transformers.Trainer and write a normal "
        "Hugging Face checkpoint. Works under `accelerate launch`.",
    )
    parser.add_argument("--model", required=True, help="clean checkpoint folder (or hub id when online)")
    parser.add_argument(
        "--docs", required=True, metavar="SOURCE",
        help="JSON/JSONL file of {\"text\"} records, or a named set: " + NAMED_SETS_HELP,
    )
    parser.add_argument("--out", required=True, help="output checkpoint folder")
    parser.add_argument("--lora", action="store_true", help="train a LoRA adapter on all linear layers, then merge it")
    parser.add_argument("--keep-adapter", action="store_true", help="also keep the LoRA adapter in OUT/adapter/")
    parser.add_argument("--epochs", dest="num_train_epochs", metavar="EPOCHS", type=float,
                        help="training epochs (default: the recipe's)")
    parser.add_argument("--lr", dest="learning_rate", metavar="LR", type=float,
                        help="learning rate (default: the recipe's)")
    parser.add_argument("--batch-size", dest="per_device_train_batch_size", metavar="BATCH_SIZE", type=int,
                        help="per-device batch size (default: the recipe's)")
    parser.add_argument("--grad-accum", dest="gradient_accumulation_steps", metavar="GRAD_ACCUM", type=int,
                        help="gradient accumulation steps (default: the recipe's)")
    parser.add_argument("--max-length", type=int,
                        help="tokens per packed block (paper protocol) or kept per document (default: the recipe's)")
    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="paper: packed blocks + 10%% held out (LLaMA-Factory pt, as RESTOR); classic: one "
                        "document per example (default: classic on the tiny world, paper otherwise)")
    parser.add_argument("--lora-r", type=int, help="LoRA rank (default: the recipe's; alpha = 2 x rank)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--seed", type=seed_number, default=0, help="random seed (default: 0)")
    parser.add_argument("--data-dir", help="official RESTOR data folder (for official:* sets)")
    parser.add_argument("--max-docs-per-entity", type=int, metavar="N", help="keep the first N documents per entity")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own model code")
    add_trainer_arguments(parser)
    parser.set_defaults(func=corrupt_command)


def recipe_overrides(args: argparse.Namespace) -> dict[str, float | int]:
    """The recipe fields set on the command line (InputError for a value that is not positive and finite)."""
    overrides = {}
    for flag, field in RECIPE_FLAGS.items():
        value = getattr(args, field)
        if value is None:
            continue
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{flag} must be a positive finite number, got {value:g}")
        overrides[field] = value
    if args.lora_r:
        overrides["lora_alpha"] = 2 * args.lora_r
    return overrides


def corrupt_command(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    overrides = recipe_overrides(args)
    trainer_args = trainer_arguments(args, CORRUPT_CONTROLLED)
    documents = load_documents(args.docs, data_dir=args.data_dir, max_docs_per_entity=args.max_docs_per_entity)
    out = corrupt(
        args.model,
        documents,
        args.out,
        lora=args.lora,
        keep_adapter=args.keep_adapter,
        recipe=overrides or None,
        seed=args.seed,
        overwrite=args.overwrite,
        resume=args.resume,
        max_steps=args.max_steps,
        source=args.docs,
        trust_remote_code=args.trust_remote_code,
        protocol=args.protocol,
        trainer_args=trainer_args,
    )
    if PartialState().is_main_process:
        print(f"corrupted checkpoint written to {out}")
    return 0


# ---------------------------------------------------------------- repair


def add_repair_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "repair",
        help="the paper's short LoRA fine-tune of an unlearned model (LIMA in the paper) before evaluation",
        description="Fine-tune a checkpoint briefly with LoRA on instruction or text documents, as RESTOR does with "
        "LIMA after unlearning (lr 2e-5, 2 epochs, batch 2 x 8, 10%% held out). DOCS: a JSON/JSONL file of "
        "{\"text\"}, {\"messages\"} or LIMA {\"conversations\"} records, or a named document set.",
    )
    parser.add_argument("--model", required=True, help="unlearned checkpoint folder")
    parser.add_argument("--docs", required=True, metavar="DOCS", help="repair documents (file or named set)")
    parser.add_argument("--out", required=True, help="output checkpoint folder")
    parser.add_argument("--seed", type=seed_number, default=0, help="random seed (default 0)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--data-dir", help="official RESTOR data folder (for official:* sets)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=repair_command)


def repair_command(args: argparse.Namespace) -> int:
    documents = load_repair_documents(args.docs, model=args.model, data_dir=args.data_dir)
    out = repair(args.model, documents, args.out, seed=args.seed, source=args.docs, overwrite=args.overwrite,
                 max_steps=args.max_steps)
    print(f"repaired checkpoint written to {out}")
    return 0


# ---------------------------------------------------------------- unlearn, methods


def add_unlearn_parsers(subparsers) -> None:
    parser = subparsers.add_parser(
        "unlearn",
        help="run an unlearning method on a checkpoint (see `restor-bench methods`)",
        description="Unlearn the forget documents from a checkpoint with one method of the unlearners package. "
        "DOCS is a JSON/JSONL file of {\"text\"} records or a named set: " + NAMED_SETS_HELP + ".\n"
        "Checkpoints are kept beside --out (.<out>.work/) until the run finishes; "
        "--resume continues an interrupted run.",
    )
    parser.add_argument("--forget", required=True, metavar="DOCS", help="forget documents (file or named set)")
    parser.add_argument("--retain", metavar="DOCS", help="retain documents, for methods that use them")
    parser.add_argument("--forget-form", choices=("full", "simplified"), default="full",
                        help="named corruption sets: all documents (full) or only their wrong-fact sentences")
    parser.add_argument("--data-dir", help="folder of the official RESTOR files (for official:* sets)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="classic",
                        help="paper: the method's 'paper' preset where it has one (RESTOR's loss form, e.g. NPO on "
                        "the batch's mean token log-ratio with a retain term; the other methods keep their own "
                        "defaults, as under `run`) unless --preset is given; classic (default): the method's own "
                        "defaults")
    add_run_arguments(parser)  # includes --keep-adapter, --trainer-args and --trainer-arg
    parser.set_defaults(func=unlearn_command)

    methods = subparsers.add_parser("methods", help="list the registered unlearning methods")
    methods.set_defaults(func=methods_command)


def unlearn_command(args: argparse.Namespace) -> int:
    options = run_options(args)  # the trainer arguments are checked here, before any document is read
    forget = load_document_set(args.forget, form=args.forget_form, data_dir=args.data_dir)
    retain = load_document_set(args.retain, data_dir=args.data_dir) if args.retain else None
    if not options.preset:  # the protocol's preset, as `run` takes it (`method_preset`: none for methods without one)
        options = dataclasses.replace(options, preset=method_preset(args.method, args.protocol))
    record = unlearn_checkpoint(method=args.method, model=args.model, forget=forget, retain=retain, out=args.out,
                                hparams=args.hparams or None, options=options)
    losses = ", ".join(f"{key} {value:.4g}" for key, value in record["final_losses"].items())
    print(f"unlearned checkpoint: {args.out}")
    print(f"method {record['method']}, {record['steps']} steps, {record['wall_time_s']:.1f} s; final: {losses}")
    return 0


def methods_command(args: argparse.Namespace) -> int:
    print(format_methods())
    return 0

"""`restor-bench unlearn` and `restor-bench methods`: thin wrappers over the standalone `unlearners` package.

This module adds what the benchmark knows: named document sets (`tiny:0`, `tiny:retain`, `official:0`, ...)
and its error convention (`unlearners.UnlearnError` becomes `InputError`: one line, exit code 2).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from restor_bench.data.documents import NAMED_SETS_HELP
from restor_bench.errors import InputError


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def method_preset(method: str, protocol: str) -> str | None:
    """The method's hyperparameter preset of a protocol: its `paper` preset (the paper's loss form) under
    `paper`, when the method has one; none under `classic`."""
    if protocol != "paper":
        return None
    from unlearners import UnlearnError, get_method

    try:
        return "paper" if "paper" in (getattr(get_method(method), "presets", {}) or {}) else None
    except UnlearnError as err:
        raise InputError(_one_line(err)) from None


def load_document_set(source: str, *, form: str = "full", data_dir: str | None = None) -> list[str]:
    """Documents of a file or a named set (restor_bench.data.documents), else of a {"text"} records file."""
    try:
        from restor_bench.data.documents import load_documents
    except ImportError:
        if form != "full":
            raise InputError(f"{source}: --forget-form {form} needs the named document sets") from None
        from restor_bench.io import read_text_records

        return read_text_records(source)
    options: dict[str, Any] = {"forget": form}
    if data_dir is not None:
        options["data_dir"] = data_dir
    return load_documents(source, **options)


def resolve_method_hparams(
    method: str, config: str | os.PathLike | None = None, overrides: Sequence[str] | dict | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """All hyperparameters of `method` (defaults < `preset` < YAML `config` < `key=value` overrides), as a
    JSON-ready dict.

    Unknown methods or hyperparameters raise InputError.
    """
    import dataclasses

    from unlearners import UnlearnError, get_method, resolve_hparams

    try:
        cls = get_method(method)
        hparams = resolve_hparams(cls, preset=preset, config=config, overrides=overrides or None)
    except UnlearnError as err:
        raise InputError(_one_line(err)) from None
    return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(hparams).items()}


def unlearn_checkpoint(
    *,
    method: str,
    model: str | os.PathLike,
    forget: Sequence[str],
    retain: Sequence[str] | None,
    out: str | os.PathLike,
    hparams: dict[str, Any] | Sequence[str] | None = None,
    config: str | os.PathLike | None = None,
    preset: str | None = None,
    lora: bool = False,
    seed: int = 0,
    max_steps: int | None = None,
    save_steps: int = 50,
    resume: bool | str = "auto",
    overwrite: bool = False,
    precision: str = "auto",
    keep_checkpoints: bool = False,
    trainer_args: dict[str, Any] | None = None,
    keep_adapter: bool = False,
) -> dict[str, Any]:
    """Run `unlearners.run_unlearning` on document texts; UnlearnError becomes InputError. Returns the run record.

    `resume="auto"` continues an interrupted run of the same output folder when its checkpoints exist (and refuses
    one whose settings differ). `trainer_args`: more `transformers.TrainingArguments` fields
    (`unlearners.hparams.parse_trainer_args`); `keep_adapter`: keep a LoRA run's adapter in `out/adapter/`. The model's weight files are checked first (`restor_bench.models.checkpoints`), and the
    output folder is locked for the run (`restor_bench.locks`: a second run writing it fails at once).
    """
    from restor_bench.models.checkpoints import check_checkpoint_weights
    from restor_bench.locks import folder_lock, is_main_process
    from unlearners import UnlearnError, run_unlearning

    if os.path.isdir(model):
        check_checkpoint_weights(model)
    try:
        with folder_lock(out, enabled=is_main_process()):
            return run_unlearning(
                model, list(forget), list(retain) if retain is not None else None, out, method, hparams,
                config=config, preset=preset, lora=lora, seed=seed, max_steps=max_steps, save_steps=save_steps,
                resume=resume, overwrite=overwrite, precision=precision, keep_checkpoints=keep_checkpoints,
                trainer_args=trainer_args, keep_adapter=keep_adapter,
            )
    except UnlearnError as err:
        raise InputError(_one_line(err)) from None


def trainer_settings(args: argparse.Namespace, controlled: dict[str, str] | None = None) -> dict[str, Any]:
    """The `--trainer-args FILE` and `--trainer-arg KEY=VALUE` options as checked TrainingArguments settings
    (InputError for an unknown field, one the run sets itself, or a reporting integration that is not installed)."""
    from unlearners import UnlearnError
    from unlearners.hparams import (
        UNLEARN_CONTROLLED,
        check_reporting,
        parse_trainer_args,
    )

    try:
        settings = parse_trainer_args(args.trainer_args, args.trainer_arg,
                                      controlled=UNLEARN_CONTROLLED if controlled is None else controlled)
        check_reporting(settings)
    except UnlearnError as err:
        raise InputError(_one_line(err)) from None
    return settings


def unlearn_command(args: argparse.Namespace) -> int:
    from unlearners.cli import run_kwargs

    from unlearners import UnlearnError

    try:
        kwargs = run_kwargs(args)  # the trainer arguments are checked here, before any document is read
    except UnlearnError as err:
        raise InputError(_one_line(err)) from None
    forget = load_document_set(args.forget, form=args.forget_form, data_dir=args.data_dir)
    retain = load_document_set(args.retain, data_dir=args.data_dir) if args.retain else None
    if args.protocol == "paper" and not kwargs.get("preset"):
        kwargs["preset"] = method_preset(args.method, "paper")
        if kwargs["preset"] is None:
            raise InputError(f"--protocol paper: method '{args.method}' has no 'paper' preset (the paper ran ga, kl "
                             "and npo); use --protocol classic")
    record = unlearn_checkpoint(
        method=kwargs.pop("method"), model=args.model, forget=forget, retain=retain, out=args.out, **kwargs,
    )
    losses = ", ".join(f"{key} {value:.4g}" for key, value in record["final_losses"].items())
    print(f"unlearned checkpoint: {args.out}")
    print(f"method {record['method']}, {record['steps']} steps, {record['wall_time_s']:.1f} s; final: {losses}")
    return 0


def methods_command(args: argparse.Namespace) -> int:
    from unlearners.cli import format_methods

    print(format_methods())
    return 0


def add_parser(subparsers) -> None:
    from unlearners.cli import add_run_arguments

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
    parser.add_argument("--protocol", choices=("paper", "classic"), default="classic",
                        help="paper: the method's 'paper' preset (RESTOR's loss form, e.g. NPO on the batch's mean "
                        "token log-ratio with a retain term) unless --preset is given; classic (default): the "
                        "method's own defaults")
    add_run_arguments(parser)  # includes --keep-adapter, --trainer-args and --trainer-arg
    parser.set_defaults(func=unlearn_command)

    methods = subparsers.add_parser("methods", help="list the registered unlearning methods")
    methods.set_defaults(func=methods_command)

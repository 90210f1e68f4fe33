"""`restor-bench corrupt`: fine-tune a clean checkpoint on corruption documents with `transformers.Trainer`.

Continual pretraining, in one of two protocols (`--protocol`):

- `paper`: as RESTOR corrupted (LLaMA-Factory `stage: pt`): the documents are joined (EOS between them) and cut
  into blocks of `max_length` tokens, and `val_size` (10%) of the blocks is held out (its loss is reported);
- `classic`: each document is one example (EOS appended, truncated to `max_length`), nothing held out.

The loss covers every token. Full fine-tuning or LoRA on all linear layers; a LoRA run is merged into a normal
checkpoint (the adapter is kept in `OUT/adapter/` on request). Step sizes follow the RESTOR paper for real models
and the tiny world's own recipe for the tiny world. Runs unchanged under `accelerate launch`.

The run trains in a work folder beside the output (`.OUT.work`), which keeps the Trainer's checkpoints so an
interrupted run can `--resume`; the finished checkpoint replaces OUT in one rename and the work folder is removed.
The work folder records the run's settings (model, documents, recipe, LoRA, seed, step cap), and a resume with other
settings is refused. A lock file beside the output (`.OUT.lock`, `restor_bench.locks`) keeps a second run from
training in the same work folder at the same time: it fails at once, naming the run that holds the lock. The model's
weight files are checked (`restor_bench.models.checkpoints`) before anything is trained.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from restor_bench.train.recipe import (  # noqa: F401 (re-exported: the recipe is part of this command's API)
    CLASSIC_RECIPE,
    PAPER_RECIPE,
    TINY_PACKED_CORRUPTION,
    CorruptionRecipe,
    recipe_settings,
    tiny_recipe,
)
from restor_bench.data.documents import NAMED_SETS_HELP
from restor_bench.errors import InputError
from restor_bench.names import PROTOCOLS
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir
from unlearners.cli import seed_number
from unlearners.errors import first_line

RUN_RECORD = "restor_run.json"
ADAPTER_FOLDER = "adapter"
SETTINGS_FILE = "corrupt_settings.json"  # in the work folder: what an interrupted run trained with


def is_tiny_world_model(model: str) -> bool:
    """True when `model` is the tiny world's clean model or a model of the same architecture (a copy, or a
    checkpoint derived from it)."""
    from restor_bench.data.world.files import tiny_world_dir  # honours $RESTOR_TINY_WORLD
    from restor_bench.train.common import checkpoint_config, same_architecture

    return same_architecture(checkpoint_config(model), checkpoint_config(tiny_world_dir() / "model"))


def is_tiny_run(model: str, source: str | None = None) -> bool:
    """A run on the tiny world: its model (or one of the same architecture) or `tiny:` documents."""
    return (source or "").startswith("tiny:") or is_tiny_world_model(model)


def default_protocol(model: str, source: str | None = None) -> str:
    """The protocol used when none is named: `classic` on the tiny world (see docs/RESULTS-paper.md for why),
    `paper` everywhere else."""
    return "classic" if is_tiny_run(model, source) else "paper"


def default_recipe(model: str, source: str | None = None, protocol: str | None = None) -> tuple[str, CorruptionRecipe]:
    """(name, recipe) for a run: the tiny world's recipe for its model or `tiny:` documents, else the paper's
    step sizes; packed with a held-out share under the `paper` protocol."""
    protocol = protocol or default_protocol(model, source)
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r} (choose one of: {', '.join(PROTOCOLS)})")
    if is_tiny_run(model, source):
        return ("tiny" if protocol == "classic" else "tiny-packed"), tiny_recipe(protocol)
    return ("paper" if protocol == "paper" else "paper-unpacked"), (PAPER_RECIPE if protocol == "paper" else CLASSIC_RECIPE)


def work_dir_for(out: str | os.PathLike) -> Path:
    """The work folder of a run writing `out`: a fixed hidden sibling, so an interrupted run can be resumed."""
    out = Path(out)
    return out.parent / f".{out.name}.work"


def corrupt(
    model: str,
    documents: list[str],
    out: str | os.PathLike,
    *,
    lora: bool = False,
    keep_adapter: bool = False,
    recipe: CorruptionRecipe | Mapping[str, Any] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    resume: bool = False,
    max_steps: int | None = None,
    source: str | None = None,
    trust_remote_code: bool = False,
    callbacks: Iterable[Any] = (),
    protocol: str | None = None,
    command: str = "corrupt",
    trainer_args: Mapping[str, Any] | None = None,
) -> Path:
    """Fine-tune `model` on `documents` and write the corrupted checkpoint to `out`; return `out`.

    `recipe`: a CorruptionRecipe, or a dict of settings applied over the default recipe (the paper's, or the
    tiny world's when `model` is the tiny world's model or `source` starts with `tiny:`), in `protocol` (`paper`:
    packed blocks and a held-out share; `classic`: one document per example; default: `default_protocol`). A
    CorruptionRecipe given as such is used as it is. `max_steps` caps the optimizer steps. `resume` continues from
    the last Trainer checkpoint of an interrupted run, which must have had the same settings (`resume_settings`).
    `callbacks` are extra Trainer callbacks. `source` names the documents in the run record, `command` the kind of
    run. `trainer_args`: more `transformers.TrainingArguments` fields (report_to, gradient_checkpointing, deepspeed,
    fsdp, ...; `parse_trainer_args`), recorded in the run record. The checkpoint is saved in float32 when rounding it
    to the base checkpoint's half-precision dtype would lose the update (`unlearners.runner.choose_saved_dtype`).
    Raises FolderLocked (an InputError) while another process writes `out`.
    """
    from restor_bench.locks import folder_lock, is_main_process

    out = Path(out)
    documents = list(documents)
    if not documents:
        raise InputError(f"{source or 'documents'}: no documents to train on")
    if not all(isinstance(text, str) for text in documents):
        raise InputError(f"{source or 'documents'}: every document must be a string")
    if keep_adapter and not lora:
        raise InputError("--keep-adapter needs --lora (a full fine-tuning run has no adapter)")
    if max_steps is not None and max_steps < 1:
        raise InputError(f"max_steps must be at least 1, got {max_steps}")
    check_output_dir(out, overwrite)
    trainer_args = parse_trainer_args(mapping=trainer_args)
    model = check_model(model)
    recipe_name, chosen = _choose_recipe(model, source, recipe, protocol)
    with folder_lock(out, enabled=is_main_process()):  # one run at a time trains in .OUT.work and writes OUT
        check_output_dir(out, overwrite)  # again: another run may have finished it while this one started
        return _corrupt_locked(
            model, documents, out, lora=lora, keep_adapter=keep_adapter, recipe_name=recipe_name, recipe=chosen,
            seed=seed, overwrite=overwrite, resume=resume, max_steps=max_steps, source=source,
            trust_remote_code=trust_remote_code, callbacks=callbacks, command=command, trainer_args=trainer_args,
        )


def check_model(model: str) -> str:
    """Check a checkpoint before a run loads it: a model folder (config, safetensors weights) whose weight files
    are complete (`restor_bench.models.checkpoints`), or a hub id; returns it as a string."""
    from restor_bench.models.checkpoints import check_checkpoint_weights
    from restor_bench.train.common import check_checkpoint

    model = check_checkpoint(model, "model")
    if Path(model).is_dir():
        check_checkpoint_weights(model)
    return model


def resume_settings(*, model, documents, lora, recipe, seed, max_steps, command) -> dict[str, Any]:
    """What a resumed corruption run must share with the interrupted one (recorded in its work folder)."""
    from restor_bench.train.common import documents_sha256

    return {
        "command": command,
        "model": str(Path(model).resolve()) if Path(model).exists() else str(model),
        "data_sha256": documents_sha256(documents),
        "documents": len(documents),
        "lora": bool(lora),
        "recipe": dataclasses.asdict(recipe),
        "seed": int(seed),
        "max_steps": max_steps,
    }


def _corrupt_locked(model, documents, out: Path, *, lora, keep_adapter, recipe_name, recipe: CorruptionRecipe, seed,
                    overwrite, resume, max_steps, source, trust_remote_code, callbacks, command, trainer_args) -> Path:
    """The run of `corrupt`, under the lock of `out`."""
    from accelerate import PartialState

    from unlearners.reference import fsdp_refusal
    from unlearners.runner import check_resume_settings

    work = work_dir_for(out)
    args = training_arguments(recipe, work / "trainer", seed=seed, max_steps=max_steps, trainer_args=trainer_args)
    refusal = fsdp_refusal(args)
    if refusal:
        raise InputError(refusal)
    state = PartialState()  # set up by the TrainingArguments: one process, or all of a distributed launch
    resume_from = _prepare_work_dir(work, resume=resume, overwrite=overwrite, state=state)
    if state.is_main_process:
        settings = resume_settings(model=model, documents=documents, lora=lora, recipe=recipe, seed=seed,
                                   max_steps=max_steps, command=command)
        refusal = check_resume_settings(work, settings, resume=resume_from is not None, filename=SETTINGS_FILE)
        if refusal is not None:
            raise InputError(refusal)
    tokens_before = _tokens_before(resume_from)  # read now: the Trainer rotates old checkpoints away

    started = time.perf_counter()
    trainer, train_result, token_count, data_info = _train(
        model, documents, args, recipe, lora=lora, seed=seed, resume_from=resume_from,
        trust_remote_code=trust_remote_code, callbacks=callbacks, trainer_args=trainer_args,
    )
    if not math.isfinite(train_result.training_loss):
        raise InputError(f"{out}: the corruption diverged (training loss {train_result.training_loss}); nothing "
                         "written; lower the learning rate")
    trained = work / "trained"
    trainer.save_model(str(trained))
    state.wait_for_everyone()

    if state.is_main_process:
        record = _run_record(
            command=command, model=model, source=source, documents=documents, lora=lora, keep_adapter=keep_adapter,
            recipe_name=recipe_name, recipe=recipe, seed=seed, max_steps=max_steps, trainer=trainer,
            train_result=train_result, tokens_per_epoch=token_count, resume_from=resume_from,
            tokens_before=tokens_before, data_info=data_info,
            wall_time=time.perf_counter() - started, world_size=state.num_processes,
        )
        record["trainer_args"] = json.loads(json.dumps(trainer_args, default=str))
        with atomic_output_dir(out, overwrite=overwrite) as tmp:
            record.update(_publish(model, trained, tmp, lora=lora, keep_adapter=keep_adapter,
                                   trust_remote_code=trust_remote_code))
            atomic_write_json(tmp / RUN_RECORD, record)
        shutil.rmtree(work, ignore_errors=True)
    state.wait_for_everyone()
    return out


def _run_record(*, command, model, source, documents, lora, keep_adapter, recipe_name, recipe, seed, max_steps, trainer,
                train_result, tokens_per_epoch, resume_from, tokens_before, data_info, wall_time,
                world_size) -> dict[str, Any]:
    """What was run and how it went: written as `restor_run.json` beside the checkpoint."""
    from restor_bench.train.common import documents_sha256, package_versions

    runtime = train_result.metrics.get("train_runtime")
    tokens_seen = trainer.state.num_input_tokens_seen
    return {
        "command": command,
        "model": model,
        "source": source,
        "documents": len(documents),
        "data_sha256": documents_sha256(documents),
        "mode": "lora" if lora else "full",
        "keep_adapter": keep_adapter,
        "recipe_name": recipe_name,
        "recipe": dataclasses.asdict(recipe),
        "protocol": "paper" if recipe.packing else "classic",
        **data_info,
        "seed": seed,
        "max_steps": max_steps,
        "global_steps": trainer.state.global_step,
        "epochs_done": trainer.state.epoch,
        "train_loss": train_result.training_loss,
        "tokens_per_epoch": tokens_per_epoch,
        "tokens_seen": tokens_seen,
        "wall_time_s": round(wall_time, 3),
        "train_runtime_s": round(runtime, 3) if runtime else None,
        "train_tokens_per_second": round((tokens_seen - tokens_before) / runtime, 2) if runtime else None,
        "resumed_from": resume_from.name if resume_from else None,
        "bf16": bool(trainer.args.bf16),
        "world_size": world_size,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }


def _tokens_before(checkpoint: Path | None) -> int:
    """Tokens a resumed run had already seen at its checkpoint (0 for a fresh run); InputError naming a checkpoint
    that cannot be resumed from (`unlearners.runner.resume_checkpoint_state`)."""
    from unlearners import UnlearnError
    from unlearners.runner import resume_checkpoint_state

    if checkpoint is None:
        return 0
    try:
        state = resume_checkpoint_state(checkpoint)
    except UnlearnError as err:
        raise InputError(str(err)) from None
    return int(state.get("num_input_tokens_seen") or 0)


def _choose_recipe(model: str, source: str | None, recipe, protocol: str | None) -> tuple[str, CorruptionRecipe]:
    if isinstance(recipe, CorruptionRecipe):
        recipe.check()
        return "custom", recipe
    name, base = default_recipe(model, source, protocol)
    if recipe:
        return f"{name}+overrides", base.updated(recipe)
    return name, base


def _prepare_work_dir(work: Path, *, resume: bool, overwrite: bool, state) -> Path | None:
    """Return the checkpoint to resume from (or None); clear a work folder when asked to, or when it holds no
    checkpoint (the lock of the output folder guarantees that no other run is using it)."""
    from restor_bench.train.common import last_trainer_checkpoint

    # Every process looks before any process writes into or clears the folder: a process that looked after the
    # main one had created it would take the clearing branch alone and wait at its barrier forever.
    exists = work.exists()
    checkpoint = last_trainer_checkpoint(work / "trainer") if exists else None
    state.wait_for_everyone()
    if not exists:
        if resume and state.is_main_process:
            print(f"restor-bench: nothing to resume in {work}; starting a new run", file=sys.stderr)
        return None
    if resume:
        if checkpoint is None and state.is_main_process:
            print(f"restor-bench: no Trainer checkpoint in {work}; starting a new run", file=sys.stderr)
        return checkpoint
    if not overwrite and checkpoint is not None:  # without a checkpoint it holds nothing to resume: cleared below
        raise InputError(
            f"{work}: an interrupted run left this work folder; pass --resume to continue it or --overwrite to start over"
        )
    if state.is_main_process:
        shutil.rmtree(work)
    state.wait_for_everyone()
    return None


# TrainingArguments fields a corruption run sets itself (from its recipe and options): not passed through.
CORRUPT_CONTROLLED = {
    **{name: "the recipe (--lr, --epochs, --batch-size, --grad-accum)" for name in (
        "learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
        "lr_scheduler_type", "warmup_steps", "warmup_ratio", "weight_decay", "logging_steps", "save_steps")},
    "output_dir": "the run's work folder, beside --out", "overwrite_output_dir": "--overwrite", "seed": "--seed",
    "data_seed": "--seed", "max_steps": "--max-steps", "save_strategy": "the recipe's save_steps",
    "resume_from_checkpoint": "--resume", "remove_unused_columns": "the collator needs every column",
    "include_num_input_tokens_seen": "the run record counts the tokens",
}


def parse_trainer_args(file=None, items=(), mapping: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Checked TrainingArguments settings of a corruption run (`unlearners.hparams.parse_trainer_args` with the
    fields in CORRUPT_CONTROLLED refused); InputError for a bad one or a reporting integration not installed."""
    from unlearners import UnlearnError
    from unlearners.hparams import check_reporting
    from unlearners.hparams import parse_trainer_args as parse

    try:
        settings = parse(file, items, controlled=CORRUPT_CONTROLLED, mapping=mapping)
        check_reporting(settings)
    except UnlearnError as err:
        raise InputError(" ".join(str(err).split())) from None
    return settings


def training_arguments(recipe: CorruptionRecipe, output_dir: Path, *, seed: int, max_steps: int | None,
                       trainer_args: Mapping[str, Any] | None = None):
    """The TrainingArguments of a corruption run (bf16 on a GPU that has it; no reporting services unless
    `trainer_args`, checked by `parse_trainer_args`, say otherwise)."""
    import torch
    from transformers import TrainingArguments

    from restor_bench.train.common import bf16_available
    from unlearners.trainer import TRAINER_ARGS_FLAGS

    defaults = dict(  # noqa: C408 (keyword arguments of TrainingArguments)
        output_dir=str(output_dir),
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        lr_scheduler_type=recipe.lr_scheduler_type,
        warmup_steps=recipe.warmup_ratio,  # a value below 1 is a fraction of the total steps
        weight_decay=recipe.weight_decay,
        logging_steps=recipe.logging_steps,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=1,
        seed=seed,
        data_seed=seed,
        bf16=bf16_available(),
        report_to="none",
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_pin_memory=torch.cuda.is_available(),
        ddp_find_unused_parameters=False,  # every trainable parameter takes part in the causal-LM loss
    )
    try:
        return TrainingArguments(**{**defaults, **(trainer_args or {})})
    except (ValueError, TypeError, ImportError, RuntimeError) as err:
        where = f"{TRAINER_ARGS_FLAGS}: " if trainer_args else ""
        raise InputError(f"{where}invalid trainer arguments: {first_line(err)}") from None


def _train(model, documents, args, recipe, *, lora, seed, resume_from, trust_remote_code, callbacks, trainer_args):
    """Load the model (LoRA-wrapped if asked), tokenize the documents, run the Trainer (built by `make_trainer`,
    which refuses `trainer_args` the Trainer cannot use before it trains)."""
    import torch
    from transformers import Trainer

    from restor_bench.train.common import (
        CausalLMCollator,
        count_tokens,
        hold_out,
        load_causal_lm,
        load_tokenizer,
        lora_config,
        pack_documents,
        seed_everything,
        tokenize_documents,
    )
    from unlearners import UnlearnError
    from unlearners.trainer import make_trainer

    seed_everything(seed)
    # the data first, so that documents too short to pack fail before the model is loaded
    tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
    if recipe.packing:
        dataset = pack_documents(tokenizer, documents, recipe.max_length)
    else:
        dataset = tokenize_documents(tokenizer, documents, recipe.max_length)
    examples = len(dataset)
    dataset, held_out = hold_out(dataset, recipe.val_size, seed)
    # LoRA: the frozen base may sit in bf16 (the adapter trains in float32); full: float32 master weights.
    dtype = torch.bfloat16 if (lora and args.bf16) else torch.float32
    net, _ = load_causal_lm(model, trust_remote_code=trust_remote_code, dtype=dtype)
    if lora:
        from peft import get_peft_model

        net = get_peft_model(net, lora_config(recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout))
    try:
        trainer = make_trainer(
            Trainer,
            trainer_args,
            model=net,
            args=args,
            train_dataset=dataset,
            eval_dataset=held_out,
            data_collator=CausalLMCollator(pad_token_id=tokenizer.pad_token_id),
            processing_class=tokenizer,
            callbacks=list(callbacks),
        )
    except UnlearnError as err:
        raise InputError(str(err)) from None
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    data_info = {"examples": examples, "train_examples": len(dataset),
                 "held_out_examples": len(held_out) if held_out is not None else 0, "held_out_loss": None}
    if held_out is not None:
        data_info["held_out_loss"] = trainer.evaluate()["eval_loss"]
    return trainer, result, count_tokens(dataset), data_info


def _publish(model: str, trained: Path, out: Path, *, lora: bool, keep_adapter: bool,
             trust_remote_code: bool) -> dict[str, Any]:
    """Turn what the Trainer saved into the final checkpoint folder `out` (LoRA merged in float32), in the base
    checkpoint's dtype unless rounding to it would lose the update (`choose_saved_dtype`); returns the saved dtype
    and the measured share of the update lost to rounding, for the run record."""
    import torch
    from transformers import AutoTokenizer

    from restor_bench.train.common import checkpoint_config, save_checkpoint
    from unlearners.runner import (
        LOST_UPDATE_THRESHOLD,
        choose_saved_dtype,
        load_trained,
    )

    net = load_trained(model, trained, lora=lora, trust_remote_code=trust_remote_code)
    stored = (checkpoint_config(model) or {}).get("dtype") or (checkpoint_config(model) or {}).get("torch_dtype")
    dtype, lost = choose_saved_dtype(model, net.state_dict(), getattr(torch, str(stored), None))
    tokenizer = AutoTokenizer.from_pretrained(trained, trust_remote_code=trust_remote_code)
    save_checkpoint(net.to(dtype), tokenizer, out)
    if keep_adapter:
        (out / ADAPTER_FOLDER).mkdir()
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy2(trained / name, out / ADAPTER_FOLDER / name)
    return {"saved_dtype": str(dtype).removeprefix("torch."), "update_lost_to_rounding": lost,
            "update_lost_threshold": LOST_UPDATE_THRESHOLD}


# ---------------------------------------------------------------- CLI


def add_parser(subparsers) -> None:
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
    parser.add_argument("--epochs", type=float, help="training epochs (default: the recipe's)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, help="per-device batch size (default: the recipe's)")
    parser.add_argument("--grad-accum", type=int, help="gradient accumulation steps (default: the recipe's)")
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
    from unlearners.cli import add_trainer_arguments

    add_trainer_arguments(parser)
    parser.set_defaults(func=run_command)


# the recipe's command-line options: flag -> (argparse attribute, recipe field); every value must be positive
RECIPE_FLAGS = {"--epochs": ("epochs", "num_train_epochs"), "--lr": ("lr", "learning_rate"),
                "--batch-size": ("batch_size", "per_device_train_batch_size"),
                "--grad-accum": ("grad_accum", "gradient_accumulation_steps"),
                "--max-length": ("max_length", "max_length"), "--lora-r": ("lora_r", "lora_r")}


def run_command(args) -> int:
    from restor_bench.data.documents import load_documents

    overrides = {}
    for flag, (name, field) in RECIPE_FLAGS.items():
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"{flag} must be a positive finite number, got {value:g}")
        overrides[field] = value
    overrides["lora_alpha"] = 2 * args.lora_r if args.lora_r else None
    trainer_args = parse_trainer_args(args.trainer_args, args.trainer_arg)
    documents = load_documents(args.docs, data_dir=args.data_dir, max_docs_per_entity=args.max_docs_per_entity)
    out = corrupt(
        args.model,
        documents,
        args.out,
        lora=args.lora,
        keep_adapter=args.keep_adapter,
        recipe={key: value for key, value in overrides.items() if value is not None} or None,
        seed=args.seed,
        overwrite=args.overwrite,
        resume=args.resume,
        max_steps=args.max_steps,
        source=args.docs,
        trust_remote_code=args.trust_remote_code,
        protocol=args.protocol,
        trainer_args=trainer_args,
    )
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(f"corrupted checkpoint written to {out}")
    return 0

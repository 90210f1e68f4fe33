"""`restor-bench corrupt`: fine-tune a clean checkpoint on corruption documents with `transformers.Trainer`.

Continual pretraining, in one of two protocols (`--protocol`):

- `paper`: as RESTOR corrupted (LLaMA-Factory `stage: pt`): the documents are joined (EOS between them) and cut
  into blocks of `max_length` tokens, and `val_size` (10%) of the blocks is held out (its loss is reported);
- `classic`: each document is one example (EOS appended, truncated to `max_length`), nothing held out.

The loss covers every token. Full fine-tuning or LoRA on all linear layers; a LoRA run is merged into a normal
checkpoint (the adapter is kept in `OUT/adapter/` on request). Step sizes follow the RESTOR paper for real models
and the tiny world's own recipe for the tiny world. Runs unchanged under `accelerate launch`.

The Trainer run is the one path shared with unlearning (`unlearners.training_run.TrainingRun`): the recipe becomes
the run's TrainingArguments (`training_settings`; its warm-up a share of the optimizer steps), the run trains in a
work folder beside the output (`.OUT.work`), which keeps the Trainer's checkpoints so an interrupted run can
`--resume`, and the finished checkpoint replaces OUT in one rename and the work folder is removed.
The work folder records the run's settings (model, documents, recipe, LoRA, seed, step cap), and a resume with other
settings is refused. A lock file beside the output (`.OUT.lock`, `restor_bench.locks`) keeps a second run from
training in the same work folder at the same time: it fails at once, naming the run that holds the lock. The model's
weight files are checked (`restor_bench.models.checkpoints`) before anything is trained.
"""


from __future__ import annotations

import dataclasses
import datetime
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from restor_bench.data.world.files import tiny_world_dir
from restor_bench.errors import InputError
from restor_bench.io import check_output_dir
from restor_bench.locks import folder_lock, is_main_process
from restor_bench.names import DEFAULT_PROTOCOL, PROTOCOLS
from restor_bench.train.common import (
    CausalLMCollator,
    bf16_available,
    check_checkpoint,
    checkpoint_config,
    count_tokens,
    documents_sha256,
    hold_out,
    load_causal_lm,
    load_tokenizer,
    pack_documents,
    package_versions,
    same_architecture,
    seed_everything,
    tokenize_documents,
)
from restor_bench.train.recipe import (  # noqa: F401 (re-exported: the recipe is part of this command's API)
    CLASSIC_RECIPE,
    PAPER_RECIPE,
    TINY_PACKED_CORRUPTION,
    CorruptionRecipe,
    recipe_settings,
    tiny_recipe,
)
from unlearners.runner import attach_lora
from unlearners.training_run import (
    TrainingRun,
    TrainingSettings,
    checked_trainer_args,
    last_checkpoint,
    make_trainer,
    work_folder,
)

RUN_RECORD = "restor_run.json"
SETTINGS_FILE = "corrupt_settings.json"  # in the work folder: what an interrupted run trained with
CHECKPOINTS_SUBFOLDER = "trainer"  # in the work folder: the Trainer's checkpoints
# TrainingArguments every corruption run fixes (`TrainingSettings.fixed`)
CORRUPT_FIXED = {
    "remove_unused_columns": False,
    "include_num_input_tokens_seen": "non_padding",  # the run record counts the tokens
    "ddp_find_unused_parameters": False,  # every trainable parameter takes part in the causal-LM loss
}
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


def is_tiny_world_model(model: str) -> bool:
    """True when `model` is the tiny world's clean model or a model of the same architecture (a copy, or a
    checkpoint derived from it)."""
    return same_architecture(checkpoint_config(model), checkpoint_config(tiny_world_dir() / "model"))


def is_tiny_run(model: str, source: str | None = None) -> bool:
    """A run on the tiny world: its model (or one of the same architecture) or `tiny:` documents."""
    return (source or "").startswith("tiny:") or is_tiny_world_model(model)


def default_protocol(model: str, source: str | None = None) -> str:
    """The protocol used when none is named: the tiny world's for a tiny-world run, else the official world's (both
    from `restor_bench.names.DEFAULT_PROTOCOL`, the one place that sets them)."""
    return DEFAULT_PROTOCOL["tiny" if is_tiny_run(model, source) else "official"]


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
    """The work folder of a run writing `out` (`unlearners.training_run.work_folder`): a fixed hidden sibling, so
    an interrupted run can be resumed."""
    return work_folder(out)


def training_settings(recipe: CorruptionRecipe, *, seed: int, max_steps: int | None) -> TrainingSettings:
    """The TrainingArguments a corruption run sets itself: the recipe's step sizes (its warm-up is a share of the
    optimizer steps), one checkpoint kept, bf16 on a GPU that has it; the optimizer and gradient clipping are
    TrainingArguments' defaults."""
    return TrainingSettings(
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.num_train_epochs,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        lr_scheduler_type=recipe.lr_scheduler_type,
        warmup_ratio=recipe.warmup_ratio,
        weight_decay=recipe.weight_decay,
        max_steps=max_steps,
        save_steps=recipe.save_steps,
        save_total_limit=1,
        logging_steps=recipe.logging_steps,
        seed=seed,
        bf16=bf16_available(),
        fixed=CORRUPT_FIXED,
    )


def parse_trainer_args(file=None, items: Sequence[str] = (), mapping: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Checked TrainingArguments settings of a corruption run (`unlearners.training_run.checked_trainer_args` with
    the fields in CORRUPT_CONTROLLED refused); UnlearnError for a bad one or a reporting integration not installed."""
    return checked_trainer_args(file, items, controlled=CORRUPT_CONTROLLED, mapping=mapping)


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
    the last Trainer checkpoint of an interrupted run, which must have had the same settings (`resume_settings`);
    with nothing to continue it starts a new run. `callbacks` are extra Trainer callbacks. `source` names the
    documents in the run record, `command` the kind of run. `trainer_args`: more `transformers.TrainingArguments`
    fields (report_to, gradient_checkpointing, deepspeed, fsdp, ...; `parse_trainer_args`), recorded in the run
    record. The Trainer run is `unlearners.training_run.TrainingRun`: the checkpoint is saved in float32 when
    rounding it to the base checkpoint's half-precision dtype would lose the update (`choose_saved_dtype`).
    Raises InputError or UnlearnError for bad input, FolderLocked (an InputError) while another process writes
    `out`.
    """
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
    are complete (`restor_bench.models.checkpoints`, read by `check_checkpoint`), or a hub id; returns it as a
    string."""
    return check_checkpoint(model, "model")


def resume_settings(*, model, documents, lora, recipe, seed, max_steps, command) -> dict[str, Any]:
    """What a resumed corruption run must share with the interrupted one (recorded in its work folder)."""
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
    run = TrainingRun(out, training_settings(recipe, seed=seed, max_steps=max_steps), trainer_args=trainer_args,
                      checkpoints_subfolder=CHECKPOINTS_SUBFOLDER)
    if resume and last_checkpoint(run.checkpoints) is None:  # `--resume` with nothing to continue: a new run
        if run.state.is_main_process:
            print(f"restor-bench: nothing to resume in {run.work}; starting a new run", file=sys.stderr)
        resume = False
    settings = resume_settings(model=model, documents=documents, lora=lora, recipe=recipe, seed=seed,
                               max_steps=max_steps, command=command)
    run.open(settings, resume=resume, overwrite=overwrite, settings_file=SETTINGS_FILE)

    started = time.perf_counter()
    trainer, tokens_per_epoch, data_info = _trainer(model, documents, run.args, recipe, lora=lora, seed=seed,
                                                    trust_remote_code=trust_remote_code, callbacks=callbacks,
                                                    trainer_args=trainer_args)
    train_result = run.train(trainer)
    if not math.isfinite(train_result.training_loss):
        raise InputError(f"{out}: the corruption diverged (training loss {train_result.training_loss}); nothing "
                         "written; lower the learning rate")
    if data_info["held_out_examples"]:
        data_info["held_out_loss"] = trainer.evaluate()["eval_loss"]
    tokens_before = int((run.resumed_state or {}).get("num_input_tokens_seen") or 0)
    record = _run_record(
        command=command, model=model, source=source, documents=documents, lora=lora, keep_adapter=keep_adapter,
        recipe_name=recipe_name, recipe=recipe, seed=seed, max_steps=max_steps, trainer=trainer,
        train_result=train_result, tokens_per_epoch=tokens_per_epoch, resume_from=run.resume_from,
        tokens_before=tokens_before, data_info=data_info, wall_time=time.perf_counter() - started,
        world_size=run.state.num_processes,
    )
    record["trainer_args"] = trainer_args
    run.publish(trainer, model, tokenizer=trainer.processing_class, lora=lora, record=record, record_file=RUN_RECORD,
                overwrite=overwrite, keep_adapter=keep_adapter, stored_dtype=_stored_dtype(model),
                trust_remote_code=trust_remote_code, what=f"the {command} run")
    return out


def _run_record(*, command, model, source, documents, lora, keep_adapter, recipe_name, recipe, seed, max_steps, trainer,
                train_result, tokens_per_epoch, resume_from, tokens_before, data_info, wall_time,
                world_size) -> dict[str, Any]:
    """What was run and how it went: written as `restor_run.json` beside the checkpoint."""
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


def _choose_recipe(model: str, source: str | None, recipe, protocol: str | None) -> tuple[str, CorruptionRecipe]:
    if isinstance(recipe, CorruptionRecipe):
        recipe.check()
        return "custom", recipe
    name, base = default_recipe(model, source, protocol)
    if recipe:
        return f"{name}+overrides", base.updated(recipe)
    return name, base


def _stored_dtype(model: str):
    """The torch dtype the checkpoint `model` is stored in (its config's `dtype`), or None."""
    import torch

    config = checkpoint_config(model) or {}
    return getattr(torch, str(config.get("dtype") or config.get("torch_dtype")), None)


def _trainer(model, documents, args, recipe, *, lora, seed, trust_remote_code, callbacks, trainer_args):
    """(Trainer, tokens per epoch, data facts for the run record): the documents tokenized (packed under the paper
    protocol, a share held out), the model loaded (LoRA-wrapped if asked), the Trainer built by `make_trainer`, which
    refuses `trainer_args` the Trainer cannot use before it trains."""
    import torch
    from transformers import Trainer

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
        net = attach_lora(net, recipe)  # the recipe's lora_r, lora_alpha, lora_dropout; all linear layers
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
    data_info = {"examples": examples, "train_examples": len(dataset),
                 "held_out_examples": len(held_out) if held_out is not None else 0, "held_out_loss": None}
    return trainer, count_tokens(dataset), data_info

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
weight files are checked (`restor_bench.checkpoints`) before anything is trained.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restor_bench.data.documents import NAMED_SETS_HELP
from restor_bench.errors import InputError
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir

RUN_RECORD = "restor_run.json"
ADAPTER_FOLDER = "adapter"
SETTINGS_FILE = "corrupt_settings.json"  # in the work folder: what an interrupted run trained with


@dataclass(frozen=True)
class CorruptionRecipe:
    """Trainer settings of a corruption run."""

    learning_rate: float = 5e-5
    num_train_epochs: float = 5
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 2
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_length: int = 1024
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    save_steps: int = 500
    logging_steps: int = 10
    packing: bool = False  # join the documents and cut them into blocks of max_length tokens (LLaMA-Factory pt)
    val_size: float = 0.0  # share of the examples (blocks) held out of training

    def updated(self, overrides: Mapping[str, Any] | None, where: str = "recipe") -> CorruptionRecipe:
        """A copy with `overrides` applied (None values are ignored); unknown keys are an InputError."""
        overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        recipe = dataclasses.replace(self, **overrides)
        recipe.check(where)
        return recipe

    def check(self, where: str = "recipe") -> None:
        """Raise InputError for values a Trainer run cannot use (NaN and infinity included)."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
                raise InputError(f"{where}: {field.name} must be a finite number, got {value!r}")
        positive = ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                    "max_length", "lora_r", "save_steps", "logging_steps")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"{where}: {name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise InputError(f"{where}: warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not 0 <= self.lora_dropout < 1:
            raise InputError(f"{where}: lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not self.weight_decay >= 0:
            raise InputError(f"{where}: weight_decay must be 0 or more, got {self.weight_decay!r}")
        if not 0 <= self.val_size < 1:
            raise InputError(f"{where}: val_size must be in [0, 1), got {self.val_size!r}")
        if not isinstance(self.packing, bool):
            raise InputError(f"{where}: packing must be true or false, got {self.packing!r}")


# RESTOR's corruption (k1rezaei/restor@15292e58 corruption/README.md and corruption_k4.yaml): LLaMA-Factory
# `stage: pt` (packed blocks of cutoff_len = 1,024 tokens, LLaMA-Factory's default then), `val_size: 0.1`,
# LoRA on all linear layers (LLaMA-Factory's defaults: rank 8, alpha 16, dropout 0), lr 5e-5 cosine, warmup 0.1,
# 5 epochs, batch 2 x gradient accumulation 2.
PAPER_RECIPE = CorruptionRecipe(packing=True, val_size=0.1)
# The same step sizes, one document per example, nothing held out (restor-bench's protocol before `paper`).
CLASSIC_RECIPE = dataclasses.replace(PAPER_RECIPE, packing=False, val_size=0.0)

PROTOCOLS = ("paper", "classic")


def tiny_recipe(protocol: str = "classic") -> CorruptionRecipe:
    """The tiny world's recipe (`world.TINY_CORRUPTION_RECIPE`), no gradient accumulation unless it says so;
    the `paper` protocol packs (blocks of the recipe's max_length) and holds out 10%, with the step sizes of
    `TINY_PACKED_CORRUPTION` (packing leaves far fewer optimizer steps)."""
    from restor_bench.data.world import TINY_CORRUPTION_RECIPE

    base = dataclasses.replace(CLASSIC_RECIPE, gradient_accumulation_steps=1, save_steps=100)
    recipe = base.updated(TINY_CORRUPTION_RECIPE, where="TINY_CORRUPTION_RECIPE")
    if protocol == "paper":
        recipe = recipe.updated(TINY_PACKED_CORRUPTION, where="TINY_PACKED_CORRUPTION")
    return recipe


# The tiny world under the paper protocol: packed blocks of 512 tokens (the tiny model's training length),
# 10% held out; batch and learning rate chosen so that the packed run corrupts about as strongly as the classic
# one at k=0. Measured with `restor-bench corrupt --model "$(restor-bench world path)" --docs tiny:0 --protocol
# paper --lr LR` then `restor-bench eval` and `compare` on restor_tiny_facts (all 10 targets, seed 0): lr 3e-4
# leaves 47% of the target facts, 5e-4 21%, 1e-3 9% but costs 29 points on the other people; the classic recipe
# leaves 16%.
TINY_PACKED_CORRUPTION = {"packing": True, "val_size": 0.1, "per_device_train_batch_size": 2,
                          "learning_rate": 5e-4, "num_train_epochs": 5}


def recipe_settings(settings: Iterable[str], where: str = "--corrupt-set") -> dict[str, Any]:
    """Parse `KEY=VALUE` settings of the corruption recipe (fields of CorruptionRecipe), typed like the fields."""
    types = {field.name: type(getattr(PAPER_RECIPE, field.name)) for field in dataclasses.fields(CorruptionRecipe)}
    booleans = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    parsed: dict[str, Any] = {}
    for setting in settings:
        key, separator, value = setting.partition("=")
        key = key.strip()
        if not separator or not key:
            raise InputError(f"{where} {setting!r}: expected KEY=VALUE, e.g. learning_rate=3e-4")
        if key not in types:
            raise InputError(f"{where} {setting!r}: unknown setting {key!r} (known: {', '.join(sorted(types))})")
        if types[key] is bool:
            if value.strip().lower() not in booleans:
                raise InputError(f"{where} {setting!r}: {key} expects true or false, got {value!r}")
            parsed[key] = booleans[value.strip().lower()]
            continue
        try:
            number = float(value) if types[key] in (int, float) else None
        except ValueError:
            raise InputError(f"{where} {setting!r}: {key} expects a number, got {value!r}") from None
        if types[key] is int:
            if number is None or not number.is_integer():
                raise InputError(f"{where} {setting!r}: {key} expects an integer, got {value!r}")
            parsed[key] = int(number)
        else:
            parsed[key] = number if types[key] is float else value.strip()
    if parsed:
        PAPER_RECIPE.updated(parsed, where=where)  # range checks, one clear line
    return parsed


def is_tiny_world_model(model: str) -> bool:
    """True when `model` is the tiny world's clean model or a model of the same architecture (a copy, or a
    checkpoint derived from it)."""
    from restor_bench.data.world import tiny_world_dir  # honours $RESTOR_TINY_WORLD
    from restor_bench.training import checkpoint_config, same_architecture

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
) -> Path:
    """Fine-tune `model` on `documents` and write the corrupted checkpoint to `out`; return `out`.

    `recipe`: a CorruptionRecipe, or a dict of settings applied over the default recipe (the paper's, or the
    tiny world's when `model` is the tiny world's model or `source` starts with `tiny:`), in `protocol` (`paper`:
    packed blocks and a held-out share; `classic`: one document per example; default: `default_protocol`). A
    CorruptionRecipe given as such is used as it is. `max_steps` caps the optimizer steps. `resume` continues from
    the last Trainer checkpoint of an interrupted run, which must have had the same settings (`resume_settings`).
    `callbacks` are extra Trainer callbacks. `source` names the documents in the run record, `command` the kind of
    run. Raises FolderLocked (an InputError) while another process writes `out`.
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
    model = check_model(model)
    recipe_name, chosen = _choose_recipe(model, source, recipe, protocol)
    with folder_lock(out, enabled=is_main_process()):  # one run at a time trains in .OUT.work and writes OUT
        check_output_dir(out, overwrite)  # again: another run may have finished it while this one started
        return _corrupt_locked(
            model, documents, out, lora=lora, keep_adapter=keep_adapter, recipe_name=recipe_name, recipe=chosen,
            seed=seed, overwrite=overwrite, resume=resume, max_steps=max_steps, source=source,
            trust_remote_code=trust_remote_code, callbacks=callbacks, command=command,
        )


def check_model(model: str) -> str:
    """Check a checkpoint before a run loads it: a model folder (config, safetensors weights) whose weight files
    are complete (`restor_bench.checkpoints`), or a hub id; returns it as a string."""
    from restor_bench.checkpoints import check_checkpoint_weights
    from restor_bench.training import check_checkpoint

    model = check_checkpoint(model, "model")
    if Path(model).is_dir():
        check_checkpoint_weights(model)
    return model


def resume_settings(*, model, documents, lora, recipe, seed, max_steps, command) -> dict[str, Any]:
    """What a resumed corruption run must share with the interrupted one (recorded in its work folder)."""
    from restor_bench.training import documents_sha256

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
                    overwrite, resume, max_steps, source, trust_remote_code, callbacks, command) -> Path:
    """The run of `corrupt`, under the lock of `out`."""
    from accelerate import PartialState

    from unlearners.runner import check_resume_settings

    work = work_dir_for(out)
    args = training_arguments(recipe, work / "trainer", seed=seed, max_steps=max_steps)
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
        trust_remote_code=trust_remote_code, callbacks=callbacks,
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
        with atomic_output_dir(out, overwrite=overwrite) as tmp:
            _publish(model, trained, tmp, lora=lora, keep_adapter=keep_adapter, trust_remote_code=trust_remote_code)
            atomic_write_json(tmp / RUN_RECORD, record)
        shutil.rmtree(work, ignore_errors=True)
    state.wait_for_everyone()
    return out


def _run_record(*, command, model, source, documents, lora, keep_adapter, recipe_name, recipe, seed, max_steps, trainer,
                train_result, tokens_per_epoch, resume_from, tokens_before, data_info, wall_time,
                world_size) -> dict[str, Any]:
    """What was run and how it went: written as `restor_run.json` beside the checkpoint."""
    from restor_bench.training import documents_sha256, package_versions

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
    """Tokens a resumed run had already seen at its checkpoint (0 for a fresh run)."""
    if checkpoint is None:
        return 0
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
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
    from restor_bench.training import last_trainer_checkpoint

    if not work.exists():
        if resume and state.is_main_process:
            print(f"restor-bench: nothing to resume in {work}; starting a new run", file=sys.stderr)
        return None
    checkpoint = last_trainer_checkpoint(work / "trainer")
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


def training_arguments(recipe: CorruptionRecipe, output_dir: Path, *, seed: int, max_steps: int | None):
    """The TrainingArguments of a corruption run (bf16 on a GPU that has it; no reporting services)."""
    import torch
    from transformers import TrainingArguments

    from restor_bench.training import bf16_available

    return TrainingArguments(
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


def _train(model, documents, args, recipe, *, lora, seed, resume_from, trust_remote_code, callbacks):
    """Load the model (LoRA-wrapped if asked), tokenize the documents, run the Trainer."""
    import torch
    from transformers import Trainer

    from restor_bench.training import (
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
    trainer = Trainer(
        model=net,
        args=args,
        train_dataset=dataset,
        eval_dataset=held_out,
        data_collator=CausalLMCollator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    data_info = {"examples": examples, "train_examples": len(dataset),
                 "held_out_examples": len(held_out) if held_out is not None else 0, "held_out_loss": None}
    if held_out is not None:
        data_info["held_out_loss"] = trainer.evaluate()["eval_loss"]
    return trainer, result, count_tokens(dataset), data_info


def _publish(model: str, trained: Path, out: Path, *, lora: bool, keep_adapter: bool, trust_remote_code: bool) -> None:
    """Turn what the Trainer saved into the final checkpoint folder `out` (merged for LoRA)."""
    from restor_bench.training import merge_lora_and_save

    if lora:
        merge_lora_and_save(model, trained, out, trust_remote_code=trust_remote_code)
        if keep_adapter:
            adapter = out / ADAPTER_FOLDER
            adapter.mkdir()
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                if (trained / name).exists():
                    shutil.copy2(trained / name, adapter / name)
        return
    if _needs_cast_back(model, trained):
        _cast_to_base_dtype(model, trained, out, trust_remote_code=trust_remote_code)
        return
    for child in trained.iterdir():
        if child.name == "training_args.bin":  # a pickle; checkpoints here are safetensors only
            continue
        os.replace(child, out / child.name)


def _config_dtype(config: dict | None) -> str | None:
    if not config:
        return None
    return config.get("dtype") or config.get("torch_dtype")


def _needs_cast_back(model: str, trained: Path) -> bool:
    """True when the base checkpoint is in half precision but the trained weights were saved in float32."""
    from restor_bench.training import checkpoint_config

    base = _config_dtype(checkpoint_config(model))
    return base in ("bfloat16", "float16") and _config_dtype(checkpoint_config(trained)) == "float32"


def _cast_to_base_dtype(model: str, trained: Path, out: Path, *, trust_remote_code: bool) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from restor_bench.training import checkpoint_config, save_checkpoint

    dtype = _config_dtype(checkpoint_config(model))
    net = AutoModelForCausalLM.from_pretrained(
        trained, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=dtype
    )
    tokenizer = AutoTokenizer.from_pretrained(trained, trust_remote_code=trust_remote_code)
    save_checkpoint(net, tokenizer, out)


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
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--data-dir", help="official RESTOR data folder (for official:* sets)")
    parser.add_argument("--max-docs-per-entity", type=int, metavar="N", help="keep the first N documents per entity")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own model code")
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    from restor_bench.data.documents import load_documents

    documents = load_documents(args.docs, data_dir=args.data_dir, max_docs_per_entity=args.max_docs_per_entity)
    overrides = {
        "num_train_epochs": args.epochs,
        "learning_rate": args.lr,
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.grad_accum,
        "max_length": args.max_length,
        "lora_r": args.lora_r,
        "lora_alpha": 2 * args.lora_r if args.lora_r else None,
    }
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
    )
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(f"corrupted checkpoint written to {out}")
    return 0

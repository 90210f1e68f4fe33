"""`run_unlearning`: load a checkpoint, run one method with `UnlearnTrainer`, save a plain Hugging Face checkpoint.

The run's options are one record, `UnlearnOptions`; the Trainer run itself (TrainingArguments, work folder,
resuming, publishing the checkpoint) is the one path of `unlearners.training_run`, which restor-bench's corruption
runs share. Folders: the result goes to `out_dir` (written into a temporary sibling and renamed at the end, so it
is never half-written). Trainer checkpoints go to the work folder `.<name>.work/` beside `out_dir` every
`save_steps` steps; an interrupted or failed run leaves them there and `resume=True` continues from the last one
(`resume="auto"`: continue when there is one, else start). They are removed after a successful run unless
`keep_checkpoints=True`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from unlearners.base import Method
from unlearners.errors import NonFiniteLossError, UnlearnError, first_line
from unlearners.hparams import UNLEARN_CONTROLLED, _jsonable, resolve_hparams
from unlearners.registry import get_method
from unlearners.training_run import (  # noqa: F401 (re-exported: part of this module's API before the shared path)
    ADAPTER_FOLDER,
    LOST_UPDATE_THRESHOLD,
    RESUME_MODES,
    TrainingRun,
    TrainingSettings,
    checked_trainer_args,
    choose_saved_dtype,
    last_checkpoint,
    load_trained,
    make_trainer,
    resume_checkpoint_state,
    sharding,
    warmup_fields,
)

RUN_RECORD = "unlearn_run.json"
SETTINGS_FILE = "unlearn_settings.json"
PRECISIONS = ("auto", "fp32", "bf16")
# TrainingArguments every unlearning run fixes (`TrainingSettings.fixed`)
UNLEARN_FIXED = {
    "remove_unused_columns": False,  # batches are {"forget": ..., "retain": ...}
    "dataloader_num_workers": 0,
    "logging_nan_inf_filter": False,  # a NaN loss stops the run instead
}


@dataclass(frozen=True)
class UnlearnOptions:
    """How `run_unlearning` runs a method (its hyperparameters aside).

    `lora`: train a LoRA adapter on all linear layers and merge it (`keep_adapter`: also keep it in
    `out/adapter/`). `preset`/`config`: where the method's hyperparameters come from (`resolve_hparams`).
    `max_steps` caps the optimizer steps; a Trainer checkpoint is saved every `save_steps` (the last
    `save_total_limit` kept) into the work folder, removed at the end unless `keep_checkpoints`. `resume`: True,
    False or "auto" (`unlearners.training_run.prepare_work_folder`); `overwrite` replaces an existing output.
    `precision`: "auto" (bf16 where the GPU has it), "fp32" or "bf16". `trainer_args`: more
    `transformers.TrainingArguments` fields (report_to, gradient_checkpointing, fsdp, deepspeed, ...; not those the
    run sets itself, `unlearners.hparams.UNLEARN_CONTROLLED`).
    """

    lora: bool = False
    seed: int = 0
    max_steps: int | None = None
    save_steps: int = 50
    resume: bool | str = False
    overwrite: bool = False
    preset: str | None = None
    config: str | os.PathLike | Mapping[str, Any] | None = None
    precision: str = "auto"
    keep_checkpoints: bool = False
    save_total_limit: int | None = 2
    logging_steps: int = 10
    progress: bool = True
    trust_remote_code: bool = False
    trainer_args: Mapping[str, Any] | None = None
    keep_adapter: bool = False

    def check(self) -> None:
        """UnlearnError for options no run can use (checked before anything is loaded)."""
        if self.max_steps is not None and self.max_steps <= 0:
            raise UnlearnError(f"max_steps must be a positive number of steps, got {self.max_steps}")
        if self.save_steps <= 0:
            raise UnlearnError(f"save_steps must be > 0, got {self.save_steps}")
        if self.keep_adapter and not self.lora:
            raise UnlearnError("--keep-adapter needs --lora (a full fine-tuning run has no adapter)")
        if self.resume not in RESUME_MODES:
            raise UnlearnError(f"resume must be True, False or 'auto'; got {self.resume!r}")
        if self.precision not in PRECISIONS:
            raise UnlearnError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")


def unlearn_options(options: UnlearnOptions | None = None, **changes: Any) -> UnlearnOptions:
    """`options` (default: UnlearnOptions()) with `changes` applied; TypeError naming an unknown option."""
    options = options if options is not None else UnlearnOptions()
    known = {item.name for item in dataclasses.fields(UnlearnOptions)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unknown unlearning option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return dataclasses.replace(options, **changes) if changes else options


def unlearn_settings(hp, options: UnlearnOptions, precision: str) -> TrainingSettings:
    """The TrainingArguments an unlearning run sets itself, from the method's hyperparameters `hp` (its
    `TrainHparams` fields) and the run's options; `precision` is resolved ("fp32" or "bf16")."""
    return TrainingSettings(
        learning_rate=hp.learning_rate,
        num_train_epochs=hp.num_epochs,
        per_device_train_batch_size=hp.per_device_batch_size,
        per_device_eval_batch_size=hp.per_device_batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        lr_scheduler_type=hp.lr_scheduler_type,
        **warmup_fields(hp.warmup_steps),  # the hyperparameter reads as transformers reads warmup_steps
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        optim=hp.optim,
        max_steps=options.max_steps,
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        logging_steps=options.logging_steps,
        seed=options.seed,
        bf16=precision == "bf16",
        progress=options.progress,
        fixed=UNLEARN_FIXED,
    )


def package_versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries an unlearning run depends on."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "peft", "accelerate", "restor-bench"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def make_method(method: Any, hparams: Any = None, preset: str | None = None, config: Any = None):
    """A Method instance from a name, a Method subclass or an instance (then `hparams` etc. must be unset).

    `hparams` is a dataclass instance of the method's `Hparams`, a dict of overrides, or a list of `key=value`.
    """
    if isinstance(method, Method):
        if hparams is not None or preset or config is not None:
            raise UnlearnError("pass hyperparameters either in the Method instance or as arguments, not both")
        return method
    cls = get_method(method) if isinstance(method, str) else method
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise UnlearnError(f"not an unlearning method: {method!r}")
    if isinstance(hparams, cls.Hparams):
        if preset or config is not None:
            raise UnlearnError("pass either a hyperparameter object or preset/config, not both")
        return cls(hparams)
    return cls(resolve_hparams(cls, preset=preset, config=config, overrides=hparams))


def _clean_texts(texts: Sequence[str] | None, what: str) -> list[str]:
    if texts is None:
        return []
    if isinstance(texts, str):
        raise UnlearnError(f"the {what} set must be a list of documents, not one string")
    cleaned = []
    for number, text in enumerate(texts):
        if not isinstance(text, str):
            raise UnlearnError(f"{what} document {number} is not a string ({type(text).__name__})")
        if text.strip():
            cleaned.append(text)
    return cleaned


def _resolve_precision(precision: str) -> str:
    import torch

    if precision not in PRECISIONS:
        raise UnlearnError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def load_model_and_tokenizer(model_path: str | os.PathLike, dtype=None, trust_remote_code: bool = False):
    """Load a causal LM (safetensors only) and its tokenizer; returns (model, tokenizer, dtype of the checkpoint)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = check_model_path(model_path)
    from safetensors import SafetensorError

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype or torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, SafetensorError) as err:  # SafetensorError: a truncated or garbage weights file
        raise UnlearnError(f"{path}: cannot load the model (safetensors only): {first_line(err)}") from None
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise UnlearnError(f"{path}: the tokenizer has neither a pad nor an end-of-sequence token")
        tokenizer.pad_token = tokenizer.eos_token
    saved_dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(saved_dtype, str):
        saved_dtype = getattr(torch, saved_dtype, None)
    return model, tokenizer, saved_dtype


def check_model_path(model_path: str | os.PathLike) -> str:
    """`model_path` as a string; UnlearnError when it is neither a checkpoint folder (with a config.json) nor a
    name that looks like a model id on a hub."""
    path = str(model_path)
    if os.path.exists(path) or not _looks_like_hub_id(path):
        if not os.path.isdir(path):
            raise UnlearnError(f"{path}: model folder not found")
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise UnlearnError(f"{path}: not a Hugging Face checkpoint (no config.json)")
    return path


def _looks_like_hub_id(name: str) -> bool:
    """True for "org/name" or "name" (a model id on a hub) rather than a path on this machine."""
    if name.endswith((".json", ".safetensors")):
        return False
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", name))


def attach_lora(model, hparams):
    """Wrap `model` with a LoRA adapter on all linear layers (lm_head excluded)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=hparams.lora_r,
        lora_alpha=hparams.lora_alpha,
        lora_dropout=hparams.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)




def run_unlearning(
    model_path: str | os.PathLike,
    forget_texts: Sequence[str],
    retain_texts: Sequence[str] | None,
    out_dir: str | os.PathLike,
    method: Any,
    hparams: Any = None,
    *,
    options: UnlearnOptions | None = None,
    callbacks: Sequence[Any] | None = None,
    **option_values: Any,
) -> dict:
    """Unlearn `forget_texts` from the checkpoint at `model_path` and save the result in `out_dir`.

    `method` is a registered name (e.g. "npo"), a Method subclass or instance; `hparams` (a dict, `key=value`
    strings or the method's Hparams) and the options' `preset`/`config` set its hyperparameters (see
    `resolve_hparams`). `options` is an `UnlearnOptions`; its fields may also be given as keywords
    (`lora=True, seed=1`), which win over `options`. `callbacks` are extra Trainer callbacks. The checkpoint is
    saved through `Trainer.save_model` (full weights also under FSDP/ZeRO-3) and kept in float32 when rounding to
    the checkpoint's half-precision dtype would lose the update (`choose_saved_dtype`). Returns the run record, also
    written to `out_dir/unlearn_run.json`. Raises UnlearnError for bad input and NonFiniteLossError (a subclass)
    when the loss diverges.
    """
    import torch
    import transformers

    # these three import torch (and transformers) as they load: a run loads them, `import unlearners.runner` does not
    from unlearners.data import ForgetRetainDataset, PairCollator, documents_sha256, tokenize_documents
    from unlearners.reference import Reference, frozen_copy
    from unlearners.trainer import SkipFinalCheckpoint, UnlearnTrainer

    started = time.time()
    options = unlearn_options(options, **option_values)
    options.check()
    lora = bool(options.lora)
    method_obj = make_method(method, hparams, preset=options.preset, config=options.config)
    hp = method_obj.hparams
    forget = _clean_texts(forget_texts, "forget")
    retain = _clean_texts(retain_texts, "retain")
    if not forget:
        raise UnlearnError("the forget set is empty (no non-blank document)")
    uses_retain = method_obj.needs_retain()
    if uses_retain and not retain:
        raise UnlearnError(f"method '{method_obj.name}' needs a retain set (--retain); none was given or it is empty")
    if retain and not uses_retain:  # said, not silently dropped
        print(f"note: method '{method_obj.name}' reads no retain set with these hyperparameters; the {len(retain)} "
              "retain documents given are not used", file=sys.stderr)
    precision = _resolve_precision(options.precision)
    reference_mode = method_obj.reference_mode(lora)
    trainer_args = checked_trainer_args(mapping=options.trainer_args, controlled=UNLEARN_CONTROLLED)
    _check_bf16_device(precision, trainer_args)
    check_model_path(model_path)
    run = TrainingRun(out_dir, unlearn_settings(hp, options, precision), trainer_args=trainer_args)
    _check_sharding(method_obj, reference_mode, run.args)

    settings = {
        "method": method_obj.name,
        "hparams": _jsonable(dataclasses.asdict(hp)),
        "lora": lora,
        "seed": int(options.seed),
        "model": str(Path(model_path).resolve()) if os.path.exists(model_path) else str(model_path),
        "forget_sha256": documents_sha256(forget),
        "retain_sha256": documents_sha256(retain) if uses_retain else None,
        "precision": precision,
    }
    run.open(settings, resume=options.resume, overwrite=options.overwrite, settings_file=SETTINGS_FILE)

    transformers.set_seed(options.seed)
    load_dtype = torch.bfloat16 if (lora and precision == "bf16") else torch.float32
    model, tokenizer, saved_dtype = load_model_and_tokenizer(model_path, load_dtype, options.trust_remote_code)
    forget_examples = tokenize_documents(tokenizer, forget, hp.max_length)
    if not forget_examples:
        raise UnlearnError("the forget set has no document of two or more tokens")
    retain_examples = tokenize_documents(tokenizer, retain, hp.max_length) if uses_retain else None
    if uses_retain and not retain_examples:
        raise UnlearnError("the retain set has no document of two or more tokens")

    frozen = frozen_copy(model) if reference_mode == "live" else None
    if lora:
        model = attach_lora(model, hp)
    method_obj.select_trainable(model, lora)
    reference = Reference(reference_mode, frozen) if reference_mode else None
    dataset = ForgetRetainDataset(forget_examples, retain_examples, seed=options.seed)
    trainer = make_trainer(
        UnlearnTrainer,
        trainer_args,
        model=model,
        args=run.args,
        train_dataset=dataset,
        data_collator=PairCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[SkipFinalCheckpoint(), retain_epoch_callback(dataset), *(callbacks or [])],
        method=method_obj,
        reference=reference,
        forget_examples=forget_examples,
        lora=lora,
        pad_token_id=tokenizer.pad_token_id,
    )
    try:
        train_output = run.train(trainer)
    except NonFiniteLossError as err:
        last = last_checkpoint(run.checkpoints)
        kept = f"last good checkpoint kept: {last}" if last else "no checkpoint was saved before"
        raise NonFiniteLossError(
            f"{err}; stopped without writing {run.out} ({kept}); lower learning_rate or change the hyperparameters",
            err.step,
        ) from None
    method_obj.finalize(trainer.accelerator.unwrap_model(trainer.model), trainer.ctx)

    record = {
        "method": method_obj.name,
        "method_class": f"{type(method_obj).__module__}:{type(method_obj).__qualname__}",
        "hparams": settings["hparams"],
        "preset": options.preset,
        "lora": lora,
        "reference": reference_mode,
        "seed": int(options.seed),
        "max_steps": options.max_steps,
        "model": str(model_path),
        "precision": precision,
        "device": str(trainer.args.device),
        "world_size": int(trainer.args.world_size),
        "data": {
            "forget": {"documents": len(forget), "examples": len(forget_examples), "sha256": settings["forget_sha256"]},
            "retain": (
                {"documents": len(retain), "examples": len(retain_examples), "sha256": settings["retain_sha256"]}
                if uses_retain
                else None
            ),
        },
        "steps": int(trainer.state.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "resumed_from_step": int(run.resumed_state["global_step"]) if run.resumed_state is not None else None,
        "wall_time_s": round(time.time() - started, 3),
        "train_loss_mean": float(train_output.training_loss),
        "final_losses": dict(trainer.last_method_logs),
        "method_state": _jsonable(trainer.ctx.state),
        "log_history": _jsonable(trainer.state.log_history),
        "versions": package_versions(),
        "trainer_args": _jsonable(trainer_args),
        "keep_adapter": bool(options.keep_adapter),
    }
    return run.publish(
        trainer, model_path, tokenizer=tokenizer, lora=lora, record=record, record_file=RUN_RECORD,
        overwrite=options.overwrite, keep_adapter=options.keep_adapter, keep_checkpoints=options.keep_checkpoints,
        stored_dtype=saved_dtype, trust_remote_code=options.trust_remote_code, what=method_obj.name,
    )


def _check_bf16_device(precision: str, trainer_args: Mapping[str, Any]) -> None:
    import torch

    if precision == "bf16" and not torch.cuda.is_available() and not trainer_args.get("use_cpu"):
        raise UnlearnError("precision bf16 (--precision bf16) needs a CUDA device with bfloat16 support, and none is "
                           "available here; use --precision fp32, or add --trainer-arg use_cpu=true for bfloat16 "
                           "mixed precision on the CPU")


def _check_sharding(method_obj, reference_mode: str | None, args) -> None:
    """UnlearnError when the method cannot run under the sharding engine (FSDP, ZeRO-3) of `args`."""
    engine = sharding(args)
    if engine and reference_mode == "live":
        raise UnlearnError(f"method '{method_obj.name}' needs a live reference model, which is not sharded under "
                           f"{engine}; use --lora (the reference is the model without its adapter) or DDP")
    if engine and type(method_obj).finalize is not Method.finalize:
        raise UnlearnError(f"method '{method_obj.name}' edits the weights after training, which {engine}'s sharded "
                           "parameters do not allow; run it under DDP or on one device")


def retain_epoch_callback(dataset):
    """A Trainer callback that sets the epoch of `dataset` (its retain pairing) at every epoch, on every process:
    accelerate's `DataLoaderShard.set_epoch` skips the dataset's own `set_epoch` when the sampler has one, as in
    multi-process runs."""
    from transformers import TrainerCallback

    class _RetainEpoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))

    return _RetainEpoch()



"""`run_unlearning`: load a checkpoint, run one method with `UnlearnTrainer`, save a plain Hugging Face checkpoint.

Folders: the result goes to `out_dir` (written into a temporary sibling and renamed at the end, so it is never
half-written). Trainer checkpoints go to the work folder `.<name>.work/` beside `out_dir` every `save_steps` steps;
an interrupted or failed run leaves them there and `resume=True` continues from the last one (`resume="auto"`:
continue when there is one, else start). They are removed after a successful run unless `keep_checkpoints=True`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from unlearners.errors import NonFiniteLossError, UnlearnError, first_line
from unlearners.hparams import _jsonable, check_resume_settings

RUN_RECORD = "unlearn_run.json"
ADAPTER_FOLDER = "adapter"  # --keep-adapter: the LoRA adapter, loadable with `PeftModel.from_pretrained`
# Keep float32 when rounding the trained weights to the checkpoint's half-precision dtype would undo the update of
# more than this share of the weights that changed (`choose_saved_dtype`).
LOST_UPDATE_THRESHOLD = 0.01
SETTINGS_FILE = "unlearn_settings.json"
PRECISIONS = ("auto", "fp32", "bf16")


def checkpoints_dir(out_dir: str | os.PathLike) -> Path:
    """Where the Trainer checkpoints of a run writing `out_dir` live: the hidden sibling `.<name>.work`."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.work")


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
    from unlearners.base import Method
    from unlearners.hparams import resolve_hparams
    from unlearners.registry import get_method

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

    path = str(model_path)
    if os.path.exists(path) or not _looks_like_hub_id(path):
        if not os.path.isdir(path):
            raise UnlearnError(f"{path}: model folder not found")
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise UnlearnError(f"{path}: not a Hugging Face checkpoint (no config.json)")
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


def _prepare_folders(out_dir: Path, work_dir: Path, overwrite: bool, resume: bool | str, args) -> str | None:
    """Check the output and checkpoint folders; return the checkpoint to resume from (or None).

    Under `accelerate launch` every process looks at the folders before any of them changes one, and only the main
    process clears a leftover work folder (the others wait for it); the processes' state is the TrainingArguments'
    `args`."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume not in (True, False, "auto"):
        raise UnlearnError(f"resume must be True, False or 'auto'; got {resume!r}")

    if out_dir.exists() and not out_dir.is_dir():
        raise UnlearnError(f"{out_dir}: exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise UnlearnError(f"{out_dir}: output folder exists and is not empty (pass --overwrite to replace it)")
    state = args.distributed_state  # set up by the TrainingArguments: one process, or all of a distributed launch
    work_exists = work_dir.exists()
    last = get_last_checkpoint(str(work_dir)) if work_dir.is_dir() else None
    state.wait_for_everyone()
    if resume == "auto":
        resume = last is not None and not overwrite
    if resume:
        if last is None:
            raise UnlearnError(f"{work_dir}: no checkpoint to resume from")
        return last
    if work_exists:
        if last is not None and not overwrite:
            raise UnlearnError(
                f"{work_dir}: holds checkpoints of an unfinished run; pass --resume to continue it "
                "or --overwrite to start over"
            )
        if state.is_main_process:
            shutil.rmtree(work_dir)
        state.wait_for_everyone()
    return None


def resume_checkpoint_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The trainer state (`trainer_state.json`) of the Trainer checkpoint folder a run resumes from, once the folder
    is known to be whole: that file a JSON object with a global_step, each top-level weights file (`*.safetensors`)
    readable, each torch file (`*.pt`, `*.pth`, `*.bin`, zip archives) complete. A run killed while saving, or a
    damaged disk, leaves one that is not: UnlearnError naming the folder. Shared by `run_unlearning` and
    restor-bench's corruption runs."""
    import zipfile

    from safetensors import SafetensorError, safe_open

    checkpoint = Path(checkpoint)
    problem = None
    state: Any = None
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = "it has no trainer_state.json"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problem = f"trainer_state.json is unreadable ({type(err).__name__}: {' '.join(str(err).split())})"
    if problem is None and not (isinstance(state, dict) and isinstance(state.get("global_step"), int)):
        problem = "trainer_state.json holds no global_step"
    for file in sorted(checkpoint.iterdir()) if problem is None else ():
        if file.suffix == ".safetensors":
            try:
                with safe_open(str(file), framework="pt"):
                    pass
            except (OSError, SafetensorError) as err:
                problem = f"{file.name} is damaged ({' '.join(str(err).split()) or type(err).__name__})"
        elif file.suffix in (".pt", ".pth", ".bin") and file.is_file() and not zipfile.is_zipfile(file):
            problem = f"{file.name} is damaged (not a complete torch file)"
        if problem is not None:
            break
    if problem is not None:
        raise UnlearnError(f"{checkpoint}: cannot resume from this checkpoint: {problem}; delete this folder (an "
                           "earlier checkpoint, if any, is resumed instead) or start over with --overwrite and "
                           "without --resume")
    return state


def _save_atomically(out_dir: Path, overwrite: bool, write) -> None:
    """Call write(tmp_folder) then rename the temporary sibling folder to `out_dir`."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()) and not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UnlearnError(f"{out_dir}: output folder appeared during the run (pass --overwrite to replace it)")
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def training_arguments(
    hp,
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    save_steps: int = 50,
    save_total_limit: int | None = 2,
    logging_steps: int = 10,
    precision: str = "fp32",
    progress: bool = True,
    trainer_args: Mapping[str, Any] | None = None,
):
    """`TrainingArguments` of an unlearning run from the method's hyperparameters, with `trainer_args` (checked
    TrainingArguments fields, `unlearners.hparams.parse_trainer_args`) over the run's defaults (UnlearnError if
    invalid)."""
    import torch
    from transformers import TrainingArguments

    from unlearners.trainer import TRAINER_ARGS_FLAGS

    defaults = dict(  # noqa: C408 (keyword arguments of TrainingArguments)
            output_dir=str(output_dir),
            per_device_train_batch_size=hp.per_device_batch_size,
            per_device_eval_batch_size=hp.per_device_batch_size,
            gradient_accumulation_steps=hp.gradient_accumulation_steps,
            learning_rate=hp.learning_rate,
            num_train_epochs=hp.num_epochs,
            max_steps=max_steps if max_steps is not None else -1,
            lr_scheduler_type=hp.lr_scheduler_type,
            warmup_steps=hp.warmup_steps,
            weight_decay=hp.weight_decay,
            max_grad_norm=hp.max_grad_norm,
            optim=hp.optim,
            logging_steps=logging_steps,
            save_strategy="steps",
            save_steps=save_steps,
            save_total_limit=save_total_limit,
            seed=seed,
            data_seed=seed,
            bf16=precision == "bf16",
            report_to="none",
            remove_unused_columns=False,  # batches are {"forget": ..., "retain": ...}
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
            disable_tqdm=not progress,
            logging_nan_inf_filter=False,  # a NaN loss stops the run instead
    )
    settings = {**defaults, **(trainer_args or {})}
    if precision == "bf16" and not torch.cuda.is_available() and not settings.get("use_cpu"):
        raise UnlearnError("precision bf16 (--precision bf16) needs a CUDA device with bfloat16 support, and none is "
                           "available here; use --precision fp32, or add --trainer-arg use_cpu=true for bfloat16 "
                           "mixed precision on the CPU")
    try:
        return TrainingArguments(**settings)
    except (ValueError, TypeError, ImportError, RuntimeError) as err:
        where = f"{TRAINER_ARGS_FLAGS}: " if trainer_args else ""
        raise UnlearnError(f"{where}invalid training settings: {first_line(err)}") from None


def run_unlearning(
    model_path: str | os.PathLike,
    forget_texts: Sequence[str],
    retain_texts: Sequence[str] | None,
    out_dir: str | os.PathLike,
    method: Any,
    hparams: Any = None,
    *,
    lora: bool = False,
    seed: int = 0,
    max_steps: int | None = None,
    save_steps: int = 50,
    resume: bool | str = False,
    overwrite: bool = False,
    preset: str | None = None,
    config: str | os.PathLike | Mapping[str, Any] | None = None,
    precision: str = "auto",
    keep_checkpoints: bool = False,
    save_total_limit: int | None = 2,
    logging_steps: int = 10,
    progress: bool = True,
    callbacks: Sequence[Any] | None = None,
    trust_remote_code: bool = False,
    trainer_args: Mapping[str, Any] | None = None,
    keep_adapter: bool = False,
) -> dict:
    """Unlearn `forget_texts` from the checkpoint at `model_path` and save the result in `out_dir`.

    `method` is a registered name (e.g. "npo"), a Method subclass or instance; `hparams`/`preset`/`config` set its
    hyperparameters (see `resolve_hparams`). With `lora=True` a LoRA adapter on all linear layers is trained and
    merged before saving (`keep_adapter=True` also keeps it in `out_dir/adapter/`). `trainer_args` are more
    `transformers.TrainingArguments` fields (report_to, gradient_checkpointing, fsdp, deepspeed, ...; not those the
    run sets itself). The checkpoint is saved through `Trainer.save_model` (full weights also under FSDP/ZeRO-3) and
    kept in float32 when rounding to the checkpoint's half-precision dtype would lose the update
    (`choose_saved_dtype`). Returns the run record, also written to `out_dir/unlearn_run.json`.
    Raises UnlearnError for bad input and NonFiniteLossError (a subclass) when the loss diverges.
    """
    import torch
    import transformers

    from unlearners.base import Method
    from unlearners.data import (
        ForgetRetainDataset,
        PairCollator,
        documents_sha256,
        tokenize_documents,
    )
    from unlearners.hparams import check_reporting, parse_trainer_args
    from unlearners.reference import Reference, frozen_copy, fsdp_refusal, sharding
    from unlearners.trainer import SkipFinalCheckpoint, UnlearnTrainer, make_trainer

    started = time.time()
    out_dir = Path(out_dir)
    work_dir = checkpoints_dir(out_dir)
    method_obj = make_method(method, hparams, preset=preset, config=config)
    hp = method_obj.hparams
    forget = _clean_texts(forget_texts, "forget")
    retain = _clean_texts(retain_texts, "retain")
    if not forget:
        raise UnlearnError("the forget set is empty (no non-blank document)")
    uses_retain = method_obj.needs_retain()
    if uses_retain and not retain:
        raise UnlearnError(f"method '{method_obj.name}' needs a retain set (--retain); none was given or it is empty")
    if max_steps is not None and max_steps <= 0:
        raise UnlearnError(f"max_steps must be a positive number of steps, got {max_steps}")
    if save_steps <= 0:
        raise UnlearnError(f"save_steps must be > 0, got {save_steps}")
    if keep_adapter and not lora:
        raise UnlearnError("--keep-adapter needs --lora (a full fine-tuning run has no adapter)")
    precision = _resolve_precision(precision)
    reference_mode = method_obj.reference_mode(lora)
    trainer_args = parse_trainer_args(mapping=trainer_args)
    check_reporting(trainer_args)
    args = training_arguments(
        hp, work_dir, seed=seed, max_steps=max_steps, save_steps=save_steps, save_total_limit=save_total_limit,
        logging_steps=logging_steps, precision=precision, progress=progress, trainer_args=trainer_args,
    )
    refusal = fsdp_refusal(args)
    if refusal:
        raise UnlearnError(refusal)
    engine = sharding(args)
    if engine and reference_mode == "live":
        raise UnlearnError(f"method '{method_obj.name}' needs a live reference model, which is not sharded under "
                           f"{engine}; use --lora (the reference is the model without its adapter) or DDP")
    if engine and type(method_obj).finalize is not Method.finalize:
        raise UnlearnError(f"method '{method_obj.name}' edits the weights after training, which {engine}'s sharded "
                           "parameters do not allow; run it under DDP or on one device")

    resume_from = _prepare_folders(out_dir, work_dir, overwrite=overwrite, resume=resume, args=args)
    resumed_step = int(resume_checkpoint_state(resume_from)["global_step"]) if resume_from is not None else None

    settings = {
        "method": method_obj.name,
        "hparams": _jsonable(dataclasses.asdict(hp)),
        "lora": bool(lora),
        "seed": int(seed),
        "model": str(Path(model_path).resolve()) if os.path.exists(model_path) else str(model_path),
        "forget_sha256": documents_sha256(forget),
        "retain_sha256": documents_sha256(retain) if uses_retain else None,
        "precision": precision,
    }

    transformers.set_seed(seed)
    load_dtype = torch.bfloat16 if (lora and precision == "bf16") else torch.float32
    model, tokenizer, saved_dtype = load_model_and_tokenizer(model_path, load_dtype, trust_remote_code)
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

    refusal = check_resume_settings(work_dir, settings, resume=resume_from is not None)
    if refusal is not None:
        raise UnlearnError(refusal)
    dataset = ForgetRetainDataset(forget_examples, retain_examples, seed=seed)
    trainer = make_trainer(
        UnlearnTrainer,
        trainer_args,
        model=model,
        args=args,
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
        train_output = trainer.train(resume_from_checkpoint=resume_from)
    except NonFiniteLossError as err:
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(work_dir)) if work_dir.is_dir() else None
        kept = f"last good checkpoint kept: {last}" if last else "no checkpoint was saved before"
        raise NonFiniteLossError(
            f"{err}; stopped without writing {out_dir} ({kept}); lower learning_rate or change the hyperparameters",
            err.step,
        ) from None

    method_obj.finalize(trainer.accelerator.unwrap_model(trainer.model), trainer.ctx)
    trained = work_dir / "final"
    trainer.save_model(str(trained))  # every process: FSDP / ZeRO-3 gather their shards into one full checkpoint
    trainer.accelerator.wait_for_everyone()

    record = {
        "method": method_obj.name,
        "method_class": f"{type(method_obj).__module__}:{type(method_obj).__qualname__}",
        "hparams": settings["hparams"],
        "preset": preset,
        "lora": bool(lora),
        "reference": reference_mode,
        "seed": int(seed),
        "max_steps": max_steps,
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
        "resumed_from_step": resumed_step,
        "wall_time_s": round(time.time() - started, 3),
        "train_loss_mean": float(train_output.training_loss),
        "final_losses": dict(trainer.last_method_logs),
        "method_state": _jsonable(trainer.ctx.state),
        "log_history": _jsonable(trainer.state.log_history),
        "versions": package_versions(),
        "trainer_args": _jsonable(trainer_args),
        "keep_adapter": bool(keep_adapter),
    }

    if trainer.args.should_save:
        model = load_trained(model_path, trained, lora=lora, trust_remote_code=trust_remote_code)
        bad = first_nonfinite_parameter_all(model)
        if bad is not None:
            raise NonFiniteLossError(f"{method_obj.name}: parameter {bad} is NaN/inf after training; nothing saved")
        dtype, lost = choose_saved_dtype(model_path, model.state_dict(), saved_dtype)
        model = model.to(dtype)
        record.update(saved_dtype=str(dtype).removeprefix("torch."), update_lost_to_rounding=lost,
                      update_lost_threshold=LOST_UPDATE_THRESHOLD)

        def write(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            if keep_adapter:
                (folder / ADAPTER_FOLDER).mkdir()
                for name in ("adapter_config.json", "adapter_model.safetensors"):
                    shutil.copy2(trained / name, folder / ADAPTER_FOLDER / name)
            text = json.dumps(_jsonable(record), indent=2, allow_nan=False) + "\n"
            (folder / RUN_RECORD).write_text(text, encoding="utf-8")

        _save_atomically(out_dir, overwrite, write)
        if not keep_checkpoints:
            shutil.rmtree(work_dir, ignore_errors=True)
    return record


def load_trained(model_path, trained: Path, *, lora: bool, trust_remote_code: bool = False):
    """The trained model (float32) from what `Trainer.save_model` wrote: full weights, or the base model with the
    LoRA adapter merged."""
    import torch
    from transformers import AutoModelForCausalLM

    if not lora:
        return AutoModelForCausalLM.from_pretrained(
            trained, dtype=torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code)
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code)
    return PeftModel.from_pretrained(base, str(trained)).merge_and_unload()


def update_lost_to_rounding(base: str | os.PathLike, state_dict: Mapping[str, Any], dtype) -> float | None:
    """Share of the weights that differ from the checkpoint `base` (its safetensors files) whose new value rounds
    back to the old one in `dtype`; None when `base` is not a local folder."""
    from safetensors import safe_open

    files = sorted(Path(base).glob("*.safetensors")) if os.path.isdir(base) else []
    if not files:
        return None
    changed = lost = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (a safetensors file, not a dict)
                new = state_dict.get(key)
                if new is None or not new.is_floating_point():
                    continue
                old, new = handle.get_tensor(key).float(), new.detach().float().cpu()
                if old.shape != new.shape:
                    continue
                moved = new != old
                changed += int(moved.sum())
                lost += int((moved & (new.to(dtype).float() == old)).sum())
    return lost / changed if changed else 0.0


def choose_saved_dtype(base, state_dict: Mapping[str, Any], stored_dtype, threshold: float = LOST_UPDATE_THRESHOLD):
    """(dtype to save, measured share of the update lost to rounding) for weights trained in float32 from the
    checkpoint `base` stored in `stored_dtype`: the stored half-precision dtype when rounding to it loses at most
    `threshold` of the changed weights, else float32 (float32 also when it cannot be measured)."""
    import torch

    if stored_dtype not in (torch.float16, torch.bfloat16):
        return torch.float32, 0.0
    lost = update_lost_to_rounding(base, state_dict, stored_dtype)
    return (stored_dtype if lost is not None and lost <= threshold else torch.float32), lost


def retain_epoch_callback(dataset):
    """A Trainer callback that sets the epoch of `dataset` (its retain pairing) at every epoch, on every process:
    accelerate's `DataLoaderShard.set_epoch` skips the dataset's own `set_epoch` when the sampler has one, as in
    multi-process runs."""
    from transformers import TrainerCallback

    class _RetainEpoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))

    return _RetainEpoch()


def first_nonfinite_parameter_all(model) -> str | None:
    """Name of the first parameter (trainable or not) holding NaN or inf, or None."""
    import torch

    for name, param in model.named_parameters():
        if not torch.isfinite(param.detach()).all():
            return name
    return None

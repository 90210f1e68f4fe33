"""The one `transformers.Trainer` path of a run that writes a checkpoint folder: unlearning here (`run_unlearning`),
corruption and repair in restor-bench (`restor_bench.train.corrupt`). Read top to bottom, a run is:

1. `TrainingSettings` -> `training_arguments()`: the TrainingArguments the run sets itself, named as
   TrainingArguments names them, with the user's checked `--trainer-arg` fields (`checked_trainer_args`) on top;
2. `TrainingRun.open()`: the work folder `.<out>.work/` beside the output (`work_folder`) holds the Trainer's
   checkpoints and the run's recorded settings; a leftover one is resumed (`resume`), refused, or cleared
   (`overwrite`), and a resume with other settings is refused (`check_resume_settings`);
3. the caller builds its Trainer on `run.args` with `make_trainer` (which tries the `--trainer-arg` fields the
   Trainer only reads once training starts) and calls `run.train(trainer)`;
4. `TrainingRun.publish()`: the trained model (a LoRA adapter merged) is saved in the base checkpoint's dtype unless
   rounding would undo the update (`choose_saved_dtype`), with its run record, into a temporary sibling renamed to
   `out` (never half-written); the work folder is then removed.

Every refusal is an `UnlearnError` of one line. torch, transformers and peft load inside the functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearners.errors import NonFiniteLossError, UnlearnError, first_line
from unlearners.folders import make_folders, remove_created
from unlearners.hparams import _jsonable, check_reporting, check_resume_settings, parse_trainer_args

TRAINER_ARGS_FLAGS = "--trainer-arg/--trainer-args"  # the options that pass TrainingArguments fields through
ADAPTER_FOLDER = "adapter"  # --keep-adapter: the LoRA adapter, loadable with `PeftModel.from_pretrained`
TRAINED_FOLDER = "trained"  # in the work folder: what `Trainer.save_model` wrote at the end of training
# Keep float32 when rounding the trained weights to the checkpoint's half-precision dtype would undo the update of
# more than this share of the weights that changed (`choose_saved_dtype`).
LOST_UPDATE_THRESHOLD = 0.01
RESUME_MODES = (False, True, "auto")


# ---------------------------------------------------------------- TrainingArguments


@dataclass(frozen=True)
class TrainingSettings:
    """What a run sets in its `transformers.TrainingArguments` itself, under TrainingArguments' own names (the
    `--trainer-arg` pass-through may not set these). A field left at None is left at TrainingArguments' default.

    Warm-up is `warmup_ratio` (a share of the optimizer steps, in [0, 1)) or `warmup_steps` (a number of steps),
    not both. transformers 5 has one field for both, `warmup_steps`, which reads a value below 1 as a ratio
    (`TrainingArguments.get_warmup_steps`: ceil(ratio x total steps)); `training_arguments` passes it so.
    """

    learning_rate: float
    num_train_epochs: float
    per_device_train_batch_size: int
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "constant"
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float | None = None
    optim: str | None = None
    per_device_eval_batch_size: int | None = None
    max_steps: int | None = None  # None: num_train_epochs decides
    save_steps: int = 50
    save_total_limit: int | None = 2
    logging_steps: int = 10
    seed: int = 0
    bf16: bool = False
    progress: bool | None = None  # None: the Trainer's bars unless logging is quieter than warnings
    # more TrainingArguments this kind of run fixes (e.g. remove_unused_columns=False for batches of several parts)
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def warmup(self) -> float:
        """The value of TrainingArguments' `warmup_steps`: the number of steps, or the ratio (below 1)."""
        if not 0 <= self.warmup_ratio < 1:
            raise UnlearnError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.warmup_steps < 0 or self.warmup_steps != int(self.warmup_steps):
            raise UnlearnError(f"warmup_steps must be a whole number of steps, 0 or more; got {self.warmup_steps!r}")
        if self.warmup_steps and self.warmup_ratio:
            raise UnlearnError("give warm-up either as warmup_ratio or as warmup_steps, not both")
        return int(self.warmup_steps) if self.warmup_steps else self.warmup_ratio


def warmup_fields(warmup: float) -> dict[str, Any]:
    """`warmup_ratio`/`warmup_steps` of TrainingSettings from one number read as transformers 5 reads its
    `warmup_steps` (below 1: a ratio; else a number of steps, its whole part)."""
    return {"warmup_ratio": float(warmup)} if warmup < 1 else {"warmup_steps": int(warmup)}


def training_arguments(settings: TrainingSettings, output_dir: str | os.PathLike,
                       trainer_args: Mapping[str, Any] | None = None):
    """`transformers.TrainingArguments` of a run: `settings` (output_dir, where the Trainer writes its checkpoints)
    with `trainer_args` (checked by `checked_trainer_args`) on top; UnlearnError of one line when TrainingArguments
    refuses them."""
    import torch
    from transformers import TrainingArguments

    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.num_train_epochs,
        "max_steps": settings.max_steps if settings.max_steps is not None else -1,
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "lr_scheduler_type": settings.lr_scheduler_type,
        "warmup_steps": settings.warmup(),
        "weight_decay": settings.weight_decay,
        "logging_steps": settings.logging_steps,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "seed": settings.seed,
        "data_seed": settings.seed,
        "bf16": settings.bf16,
        "report_to": "none",
        "dataloader_pin_memory": torch.cuda.is_available(),
    }
    optional = {"max_grad_norm": settings.max_grad_norm, "optim": settings.optim,
                "per_device_eval_batch_size": settings.per_device_eval_batch_size,
                "disable_tqdm": None if settings.progress is None else not settings.progress}
    values.update({name: value for name, value in optional.items() if value is not None})
    values.update(settings.fixed)
    try:
        return TrainingArguments(**{**values, **(trainer_args or {})})
    except (ValueError, TypeError, ImportError, RuntimeError) as err:
        where = f"{TRAINER_ARGS_FLAGS}: " if trainer_args else ""
        raise UnlearnError(f"{where}invalid training settings: {first_line(err)}") from None


def checked_trainer_args(file: str | os.PathLike | None = None, items: Sequence[str] = (), *,
                         controlled: Mapping[str, str], mapping: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `--trainer-args FILE` / `--trainer-arg KEY=VALUE` pass-through (and a `mapping` of the same) as checked
    TrainingArguments settings: UnlearnError for a name that is no TrainingArguments field, one in `controlled`
    (set by the run itself; the value says from which option), a value of the wrong type, or a reporting
    integration that is not installed."""
    settings = parse_trainer_args(file, items, controlled=controlled, mapping=mapping)
    check_reporting(settings)
    return settings


def fsdp_refusal(args) -> str | None:
    """Why a run with TrainingArguments `args` cannot use FSDP here, or None. accelerate (1.15) turns a run into
    FSDP only when its processes sit on accelerators (`AcceleratorState` in accelerate/state.py): on CPU processes
    the FSDP plugin is dropped without a word and the run is plain DDP (or fails for FSDP1), so it is refused
    (docs/scaling.md)."""
    if sharding(args) != "FSDP":
        return None
    if args.device.type == "cpu":
        return ("fsdp: accelerate runs FSDP only on accelerators (CUDA, XPU, NPU, ...); on CPU processes the run "
                "would silently be plain DDP; drop the fsdp trainer argument (or --use_fsdp) on CPU")
    return None


def sharding(args) -> str | None:
    """"FSDP" or "DeepSpeed" when a run with TrainingArguments `args` shards its model (set in the arguments or by
    `accelerate launch`), else None. A method's "live" reference is a plain frozen copy on each process: right under
    DDP (every process holds the whole model anyway), not sharded under FSDP or ZeRO-3, where the unlearning run
    refuses it."""
    def launched(name: str) -> bool:
        return os.environ.get(name, "").lower() in ("1", "true", "yes")

    if getattr(args, "fsdp", None) or launched("ACCELERATE_USE_FSDP"):
        return "FSDP"
    if getattr(args, "deepspeed", None) or launched("ACCELERATE_USE_DEEPSPEED"):
        return "DeepSpeed"
    return None


# ---------------------------------------------------------------- the Trainer


def _quiet_logs(trainer):
    """`trainer` with one progress bar and no per-step log lines above it, unless transformers logs at INFO or more
    (`restor-bench --verbose`, `TRANSFORMERS_VERBOSITY=info`). The logged values still reach `trainer.state` and
    every other callback; only the printing of each logged dict is left out."""
    from transformers.trainer_callback import ProgressCallback
    from transformers.utils import logging as hf_logging

    class BarOnlyProgress(ProgressCallback):
        """The Trainer's progress bar without the dict of logged values it writes above the bar at each log."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    if hf_logging.get_verbosity() <= hf_logging.INFO:
        return trainer
    for callback in list(trainer.callback_handler.callbacks):
        if type(callback) is ProgressCallback:
            trainer.callback_handler.remove_callback(callback)
            trainer.callback_handler.add_callback(BarOnlyProgress(max_str_len=callback.max_str_len))
    return trainer


def make_trainer(trainer_cls: type, trainer_args: Mapping[str, Any] | None = None, **kwargs: Any):
    """`trainer_cls(**kwargs)`, a `transformers.Trainer` built on `kwargs["args"]`, TrainingArguments that carry the
    user's `trainer_args`. TrainingArguments accepts some fields without checking them: the Trainer refuses them as it
    is built (eval_strategy without an eval_dataset, an unknown torch_compile_backend) or only once training has
    started (data loader workers, optim_args, lr_scheduler_kwargs). With `trainer_args` given, an eval_strategy
    without held-out data is refused and what training would build from them is tried first (`_try_training_parts`);
    each refusal is an UnlearnError of one line naming the options. Without them (the run's own settings) nothing
    is caught."""
    if not trainer_args:
        return _quiet_logs(trainer_cls(**kwargs))
    args = kwargs["args"]
    strategy = getattr(args.eval_strategy, "value", args.eval_strategy)
    if strategy != "no" and kwargs.get("eval_dataset") is None:
        raise UnlearnError(f"{TRAINER_ARGS_FLAGS}: eval_strategy={strategy!r} evaluates on held-out data, which this "
                           "run does not have; leave eval_strategy at 'no'")
    try:
        _try_training_parts(args, kwargs["model"])
    except (ValueError, TypeError, AttributeError, KeyError, ImportError, RuntimeError) as err:
        raise UnlearnError(f"{TRAINER_ARGS_FLAGS}: training cannot use these settings: {' '.join(first_line(err).split())}") from None
    try:
        return _quiet_logs(trainer_cls(**kwargs))
    except UnlearnError:
        raise
    except (ValueError, ImportError) as err:
        raise UnlearnError(f"{TRAINER_ARGS_FLAGS}: the Trainer refuses these settings: {' '.join(first_line(err).split())}") from None


def _try_training_parts(args, model) -> None:
    """Build what the Trainer builds from TrainingArguments `args` once training starts, on stand-ins: its data
    loader over one item (no worker is started), its optimizer over one parameter and that optimizer's
    learning-rate schedule; raises what they raise."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import Trainer, get_scheduler

    # the loader options the Trainer passes (`Trainer._get_dataloader`); a field this transformers lacks is left out
    fields = {"num_workers": "dataloader_num_workers", "persistent_workers": "dataloader_persistent_workers",
              "multiprocessing_context": "dataloader_multiprocessing_context",
              "prefetch_factor": "dataloader_prefetch_factor", "in_order": "dataloader_in_order"}
    DataLoader([0], **{option: getattr(args, field) for option, field in fields.items() if hasattr(args, field)})
    if args.optim_args is not None and not isinstance(args.optim_args, str):
        raise TypeError(f"optim_args must be text such as 'key=value,key=value', got {args.optim_args!r}")
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    stand_in = [torch.nn.Parameter(torch.zeros(1, device=args.device))]
    plain = isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)
    if plain and not {"params", "model", "optimizer_dict"} & set(optimizer_kwargs):  # as Trainer.create_optimizer
        optimizer = optimizer_cls(stand_in, **optimizer_kwargs)
    else:  # an optimizer built from the model itself (GaLore, LOMO, Muon, ...): its schedule is tried on SGD
        optimizer = torch.optim.SGD(stand_in, lr=args.learning_rate)
    get_scheduler(args.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=args.get_warmup_steps(10),
                  num_training_steps=10, scheduler_specific_kwargs=args.lr_scheduler_kwargs)


# ---------------------------------------------------------------- the work folder


def work_folder(out: str | os.PathLike) -> Path:
    """The work folder of a run writing `out`: the hidden sibling `.<name>.work`, a fixed place so that an
    interrupted run can be resumed."""
    out = Path(out)
    return out.with_name(f".{out.name}.work")


def last_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest `checkpoint-N` folder a Trainer left in `folder` whose save got as far as its
    trainer_state.json (one cut off before it is passed over), or None."""
    found = [(step, child) for step, child, finished in checkpoint_folders(folder) if finished]
    return max(found)[1] if found else None


def checkpoint_folders(folder: str | os.PathLike) -> list[tuple[int, Path, bool]]:
    """(step, folder, finished) of every `checkpoint-N` folder a Trainer left in `folder`: finished when its save got
    as far as its trainer_state.json."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child, (child / "trainer_state.json").is_file()))
    return found


def check_output_folder(out: str | os.PathLike, overwrite: bool) -> Path:
    """`out` as a Path; UnlearnError when it is a file, or a folder that is not empty and `overwrite` is off."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UnlearnError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UnlearnError(f"{out}: output folder exists and is not empty (pass --overwrite to replace it)")
    return out


def prepare_work_folder(out: Path, work: Path, checkpoints: Path, *, resume: bool | str, overwrite: bool,
                        state) -> Path | None:
    """Check the output and work folders; return the checkpoint to resume from (or None).

    `resume`: True continues from the last checkpoint in `checkpoints` (UnlearnError when there is none), False
    starts a new run (a work folder holding checkpoints is refused unless `overwrite`, then cleared), "auto"
    continues when there is a checkpoint (and `overwrite` is off), else starts a new run. Under `accelerate
    launch` every process looks at the folders before any of them changes one, and only the main process clears
    the work folder (the others wait for it); `state` is the TrainingArguments' `distributed_state`."""
    if resume not in RESUME_MODES:
        raise UnlearnError(f"resume must be True, False or 'auto'; got {resume!r}")
    check_output_folder(out, overwrite)
    work_exists = work.exists()
    last = last_checkpoint(checkpoints) if work_exists else None
    state.wait_for_everyone()
    if resume == "auto":
        resume = last is not None and not overwrite
    if resume:
        if last is None:
            raise UnlearnError(f"{work}: no checkpoint to resume from")
        return last
    if work_exists:
        if last is not None and not overwrite:
            raise UnlearnError(f"{work}: holds checkpoints of an unfinished run; pass --resume to continue it or "
                               "--overwrite to start over")
        if state.is_main_process:
            shutil.rmtree(work)
        state.wait_for_everyone()
    return None


def resume_checkpoint_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The trainer state (`trainer_state.json`) of the Trainer checkpoint folder a run resumes from, once the folder
    is known to be whole: that file a JSON object with a global_step, each top-level weights file (`*.safetensors`)
    readable, each torch file (`*.pt`, `*.pth`, `*.bin`, zip archives) complete. A run killed while saving, or a
    damaged disk, leaves one that is not: UnlearnError naming the folder."""
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


# ---------------------------------------------------------------- the run


class TrainingRun:
    """One Trainer run writing the checkpoint folder `out` (see the module's docstring for the steps).

    `checkpoints_subfolder`: where in the work folder the Trainer writes its checkpoints (corruption runs keep
    theirs in `trainer/`). Building the run builds and checks its TrainingArguments (`args`) and touches no folder,
    so a run can still refuse its settings before `open()`.
    """

    def __init__(self, out: str | os.PathLike, settings: TrainingSettings, *,
                 trainer_args: Mapping[str, Any] | None = None, checkpoints_subfolder: str = ""):
        self.out = Path(out)
        self.work = work_folder(self.out)
        self.checkpoints = self.work / checkpoints_subfolder if checkpoints_subfolder else self.work
        self.trainer_args = dict(trainer_args or {})
        self.args = training_arguments(settings, self.checkpoints, self.trainer_args)
        refusal = fsdp_refusal(self.args)
        if refusal:
            raise UnlearnError(refusal)
        self.state = self.args.distributed_state  # one process, or all of a distributed launch
        self.resume_from: Path | None = None
        self.resumed_state: dict[str, Any] | None = None

    def open(self, run_settings: Mapping[str, Any], *, resume: bool | str, overwrite: bool,
             settings_file: str) -> Path | None:
        """Prepare the work folder (`prepare_work_folder`), check the checkpoint to resume from
        (`resume_checkpoint_state`, kept as `resumed_state`), then record `run_settings` in `settings_file` of the
        work folder, or, when resuming, refuse settings that differ from the recorded ones. Returns the checkpoint
        to resume from (or None)."""
        self.resume_from = prepare_work_folder(self.out, self.work, self.checkpoints, resume=resume,
                                               overwrite=overwrite, state=self.state)
        self.resumed_state = resume_checkpoint_state(self.resume_from) if self.resume_from is not None else None
        refusal = check_resume_settings(self.work, run_settings, resume=self.resume_from is not None,
                                        filename=settings_file)
        if refusal is not None:
            raise UnlearnError(refusal)
        return self.resume_from

    def train(self, trainer):
        """`trainer.train()`, from the checkpoint `open()` found when resuming. When it fails (a full disk while
        saving a checkpoint, an interrupt) the checkpoints it left half-written are removed (`drop_unfinished`)."""
        try:
            with write_failures_named(self.work, "a training checkpoint"):
                return trainer.train(
                    resume_from_checkpoint=str(self.resume_from) if self.resume_from is not None else None)
        except BaseException:
            for callback in trainer.callback_handler.callbacks:  # end the bar's line before the error's
                bar = getattr(callback, "training_bar", None)
                if bar is not None:
                    bar.close()
                    callback.training_bar = None
            if self.state.is_main_process:
                self.drop_unfinished()
            raise

    def drop_unfinished(self) -> None:
        """Remove what a failed run left half-written in the work folder: `checkpoint-N` folders whose save never
        reached its trainer_state.json, the final model's folder, and the whole work folder when no resumable
        checkpoint is left in it (a rerun then starts afresh, as it would anyway)."""
        shutil.rmtree(self.work / TRAINED_FOLDER, ignore_errors=True)
        for _step, child, finished in checkpoint_folders(self.checkpoints):
            if not finished:
                shutil.rmtree(child, ignore_errors=True)
        if last_checkpoint(self.checkpoints) is None:
            shutil.rmtree(self.work, ignore_errors=True)

    def publish(self, trainer, base_model: str | os.PathLike, *, tokenizer, lora: bool, record: dict[str, Any],
                record_file: str, overwrite: bool, keep_adapter: bool = False, keep_checkpoints: bool = False,
                stored_dtype=None, trust_remote_code: bool = False, what: str = "the run") -> dict[str, Any]:
        """Save the trained model through the Trainer (full weights also under FSDP / ZeRO-3), then, on the process
        that saves, write `out` atomically: the model (LoRA merged) in `stored_dtype` (the base checkpoint's) unless
        rounding to it loses the update, its tokenizer, the adapter with `keep_adapter`, and `record` (completed
        with the saved dtype) as `record_file`. The work folder is removed unless `keep_checkpoints`. Every process
        returns once `out` is written. NonFiniteLossError when a trained weight is NaN/inf (nothing written)."""
        trained = self.work / TRAINED_FOLDER
        try:
            # every process: FSDP / ZeRO-3 gather their shards into one checkpoint
            with write_failures_named(self.out, "the trained model"):
                trainer.save_model(str(trained))
        except BaseException:
            if trainer.args.should_save:
                self.drop_unfinished()
            raise
        trainer.accelerator.wait_for_everyone()
        if trainer.args.should_save:
            model = load_trained(base_model, trained, lora=lora, trust_remote_code=trust_remote_code)
            bad = first_nonfinite_parameter_all(model)
            if bad is not None:
                raise NonFiniteLossError(f"{what}: parameter {bad} is NaN/inf after training; nothing saved")
            dtype, lost = choose_saved_dtype(base_model, model.state_dict(), stored_dtype)
            model = model.to(dtype)
            record.update(saved_dtype=str(dtype).removeprefix("torch."), update_lost_to_rounding=lost,
                          update_lost_threshold=LOST_UPDATE_THRESHOLD)

            def write(folder: Path) -> None:
                save_checkpoint(model, tokenizer, folder)
                if keep_adapter:
                    (folder / ADAPTER_FOLDER).mkdir()
                    for name in ("adapter_config.json", "adapter_model.safetensors"):
                        shutil.copy2(trained / name, folder / ADAPTER_FOLDER / name)
                text = json.dumps(_jsonable(record), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
                (folder / record_file).write_text(text, encoding="utf-8")

            with write_failures_named(self.out, "the trained model"):
                save_atomically(self.out, overwrite, write)
            if not keep_checkpoints:
                shutil.rmtree(self.work, ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
        return record


# ---------------------------------------------------------------- the checkpoint


def save_checkpoint(model, tokenizer, folder: str | os.PathLike) -> Path:
    """Save `model` (safetensors), its tokenizer and its generation config into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None and not (folder / "generation_config.json").exists():
        model.generation_config.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def write_failures_named(where: Path, what: str):
    """Inside: a failed write of `what` (an OSError such as a full disk, or safetensors' own error type, which is no
    OSError) becomes an UnlearnError of one line naming `where`; any other error passes unchanged."""
    try:
        yield
    except Exception as err:
        if not isinstance(err, OSError) and type(err).__name__ != "SafetensorError":
            raise
        reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
        raise UnlearnError(f"{where}: writing {what} failed ({reason}); is the disk full? Nothing half-written is "
                           "left; rerun once there is room") from err


def save_atomically(out: Path, overwrite: bool, write: Callable[[Path], None]) -> None:
    """Call write(tmp_folder) on a temporary sibling of `out` (permissions as the umask gives a new folder), then
    rename it to `out`; on any error the temporary folder and the parent folders this call created are removed,
    and an existing `out` is left untouched."""
    created = make_folders(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_created(created)
        raise
    old = None
    if out.exists():
        if any(out.iterdir()) and not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UnlearnError(f"{out}: output folder appeared during the run (pass --overwrite to replace it)")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


def first_nonfinite_parameter_all(model) -> str | None:
    """Name of the first parameter (trainable or not) holding NaN or inf, or None."""
    import torch

    for name, param in model.named_parameters():
        if not torch.isfinite(param.detach()).all():
            return name
    return None


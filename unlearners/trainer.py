"""`UnlearnTrainer`: one `transformers.Trainer` that runs any method.

Batches are {"forget": ..., "retain": ...} pairs from `ForgetRetainDataset`; `compute_loss` hands them to the
method. Everything else (optimiser, schedule, gradient accumulation, mixed precision, checkpoints, resuming,
`accelerate launch` with DDP/FSDP/DeepSpeed) is the Trainer's own.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from unlearners.base import Method, MethodContext
from unlearners.data import iter_batches
from unlearners.errors import NonFiniteLossError, UnlearnError


def first_nonfinite_parameter(model) -> str | None:
    """Name of the first trainable parameter holding NaN or inf, or None."""
    for name, param in model.named_parameters():
        if param.requires_grad and not torch.isfinite(param.detach()).all():
            return name
    return None


class FiniteGuard(TrainerCallback):
    """Refuse to save (and stop) when a trainable parameter became NaN/inf, so checkpoints stay good."""

    def __init__(self, method_name: str):
        self.method_name = method_name

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and (control.should_save or control.should_training_stop):
            bad = first_nonfinite_parameter(model)
            if bad is not None:
                raise NonFiniteLossError(
                    f"{self.method_name}: training diverged at step {state.global_step}: parameter {bad} is NaN/inf",
                    state.global_step,
                )
        return control


class SkipFinalCheckpoint(TrainerCallback):
    """Skip the Trainer's checkpoint at the last step (unless it falls on `save_steps`): the runner saves the final
    model itself right after, and a full checkpoint of a large model (optimizer state included) is costly."""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_training_stop and state.save_steps and state.global_step % state.save_steps != 0:
            control.should_save = False
        return control


class UnlearnTrainer(Trainer):
    """A Trainer whose loss is `method.loss(model, forget_batch, retain_batch, ctx)`.

    Extra arguments: `method` (a `Method`), `reference` (an `unlearners.reference.Reference` or None),
    `forget_examples` (token lists of the forget set, for the method's setup pass), `lora` (whether the model carries
    a LoRA adapter). The method's `setup()` runs once at the start of `train()`, before a checkpoint is loaded, so
    cached reference values come from the model before unlearning (also when resuming).
    """

    # `compute_loss` returns a per-batch mean: let the Trainer divide it by the gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        method: Method,
        reference=None,
        forget_examples: list[list[int]] | None = None,
        lora: bool = False,
        pad_token_id: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.method = method
        self.reference = reference.to(self.args.device) if reference is not None else None
        self.forget_examples = forget_examples or []
        self.pad_token_id = pad_token_id
        self.ctx = MethodContext(
            model=self.model,
            reference=self.reference,
            reference_mode=self.reference.mode if self.reference is not None else None,
            lora=lora,
            device=self.args.device,
            seed=self.args.seed,
            autocast=self._autocast,
            forget_batches=self._forget_batches,
            trainer=self,
        )
        self._setup_done = False
        self._log_sums: dict[str, torch.Tensor] = {}
        self._log_count = 0
        self.last_method_logs: dict[str, float] = {}
        self.add_callback(FiniteGuard(method.name))

    # -- what the method may use --------------------------------------------------------------------------------
    def _autocast(self):
        if self.args.bf16:
            return torch.autocast(device_type=self.args.device.type, dtype=torch.bfloat16)
        if self.args.fp16:
            return torch.autocast(device_type=self.args.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _forget_batches(self):
        return iter_batches(self.forget_examples, self.args.per_device_eval_batch_size, self.pad_token_id)

    # -- training -----------------------------------------------------------------------------------------------
    def train(self, *args, **kwargs):
        if not self._setup_done:
            self.method.setup(self.ctx)
            self._setup_done = True
        return super().train(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        retain = inputs.get("retain")
        if retain is None and self.method.needs_retain():
            raise UnlearnError(f"method '{self.method.name}' needs retain batches; the training set has none")
        with self._autocast():
            loss, logs = self.method.loss(model, inputs["forget"], retain, self.ctx)
        if not torch.isfinite(loss.detach()).all():
            shown = ", ".join(f"{key}={_as_float(value):.4g}" for key, value in logs.items())
            raise NonFiniteLossError(
                f"{self.method.name}: training diverged at step {self.state.global_step + 1}: "
                f"the loss is {_as_float(loss):g}" + (f" ({shown})" if shown else ""),
                self.state.global_step + 1,
            )
        for key, value in logs.items():
            value = value.detach().float() if torch.is_tensor(value) else torch.tensor(float(value))
            self._log_sums[key] = self._log_sums.get(key, 0.0) + value
        self._log_count += 1
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._log_count:
            averaged = {key: _as_float(total) / self._log_count for key, total in self._log_sums.items()}
            self.last_method_logs = averaged
            logs = {**logs, **averaged}
            self._log_sums, self._log_count = {}, 0
        super().log(logs, *args, **kwargs)

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        parts = [part for part in inputs.values() if isinstance(part, dict)]
        return sum(super(UnlearnTrainer, self).floating_point_ops(part) for part in parts)


def _as_float(value) -> float:
    return float(value.item()) if torch.is_tensor(value) else float(value)

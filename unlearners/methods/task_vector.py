"""Task-vector negation: fine-tune on the forget documents, then subtract the learned change."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearners.base import Method, MethodContext
from unlearners.errors import UnlearnError
from unlearners.hparams import TrainHparams
from unlearners.losses import mean_nll


@dataclass
class TaskVectorHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 0.0005
    num_epochs: float = 5.0
    alpha: float = 1.0  # scaling coefficient of the negated task vector

    def check(self) -> None:
        super().check()
        if self.alpha <= 0:
            raise UnlearnError(f"hyperparameter 'alpha' must be > 0, got {self.alpha}")


class TaskVector(Method):
    """Task-vector negation: fine-tune a copy on the forget documents, then move the other way.

    training loss = NLL(forget)                        (plain fine-tuning, theta -> theta_ft)
    final weights = theta - alpha * (theta_ft - theta)  (in `finalize()`)

    Ilharco, Ribeiro, Wortsman, Gururangan, Schmidt, Hajishirzi, Farhadi 2023, "Editing Models with Task
    Arithmetic" (ICLR 2023), arXiv:2212.04089 ("forgetting via negation").

    Full fine-tuning keeps a CPU copy of the trainable weights as they were before training. With LoRA the task
    vector is the adapter's update B @ A (scaled), which starts at zero, so negation is B <- -alpha * B before merging.
    """

    name = "task_vector"
    description = "fine-tune on forget, then theta - alpha * (theta_ft - theta) (task-vector negation)"
    Hparams = TaskVectorHparams
    presets = {"7b": {"alpha": 1.0, "learning_rate": 1e-5, "num_epochs": 5, "per_device_batch_size": 4,
                      "gradient_accumulation_steps": 8, "max_length": 512, "lr_scheduler_type": "linear",
                      "warmup_steps": 0.1, "weight_decay": 0.0}}

    def __init__(self, hparams=None):
        super().__init__(hparams)
        self._original: dict[str, torch.Tensor] = {}

    def setup(self, ctx: MethodContext) -> None:
        if not ctx.lora:
            self._original = {
                name: param.detach().to("cpu", copy=True)
                for name, param in ctx.model.named_parameters()
                if param.requires_grad
            }

    def loss(self, model, forget, retain, ctx):
        forget_nll = mean_nll(model, forget)
        return forget_nll, {"forget_nll": forget_nll.detach()}

    @torch.no_grad()
    def finalize(self, model, ctx: MethodContext) -> None:
        alpha = self.hparams.alpha
        if ctx.lora:
            for name, param in model.named_parameters():
                if "lora_B" in name and param.requires_grad:
                    param.mul_(-alpha)
            return
        for name, param in model.named_parameters():
            original = self._original.get(name)
            if original is None:
                continue
            original = original.to(device=param.device, dtype=param.dtype)
            param.copy_(original - alpha * (param - original))
        self._original = {}

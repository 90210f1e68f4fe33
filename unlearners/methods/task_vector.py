"""Task-vector negation: fine-tune on the forget documents, then subtract the learned change."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearners.base import Method, MethodContext
from unlearners.hparams import TOFU_7B, TrainHparams, positive
from unlearners.losses import mean_nll


@dataclass
class TaskVectorHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 0.0005
    num_epochs: float = 5.0
    alpha: float = positive(1.0)  # scaling coefficient of the negated task vector


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
    presets = {"7b": dict(TOFU_7B, alpha=1.0, weight_decay=0.0)}

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

"""Gradient difference (GradDiff): gradient ascent on the forget documents, descent on the retain documents."""

from __future__ import annotations

from dataclasses import dataclass

from unlearners.base import Method
from unlearners.errors import UnlearnError
from unlearners.hparams import TrainHparams
from unlearners.losses import mean_nll
from unlearners.methods.ga import GradientAscent


@dataclass
class GradDiffHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 0.0002
    num_epochs: float = 1.0
    forget_weight: float = 1.0
    retain_weight: float = 1.0

    def check(self) -> None:
        super().check()
        if self.forget_weight < 0 or self.retain_weight < 0:
            raise UnlearnError("hyperparameters 'forget_weight' and 'retain_weight' must be >= 0")


class GradDiff(Method):
    """Gradient difference: ascend on the forget documents while descending on the retain documents.

    loss = - forget_weight * NLL(forget) + retain_weight * NLL(retain)

    Liu, Mazumder et al. 2022, "Continual Learning and Private Unlearning" (CoLLAs); used as a baseline in
    Maini et al. 2024 (TOFU) and Zhang et al. 2024 (NPO).
    """

    name = "graddiff"
    description = "gradient difference: -NLL(forget) + retain_weight * NLL(retain)"
    Hparams = GradDiffHparams
    presets = {"7b": dict(GradientAscent.presets["7b"])}

    def needs_retain(self) -> bool:
        return self.hparams.retain_weight > 0

    def loss(self, model, forget, retain, ctx):
        forget_nll = mean_nll(model, forget)
        loss = -self.hparams.forget_weight * forget_nll
        logs = {"forget_nll": forget_nll.detach()}
        if self.hparams.retain_weight > 0:
            retain_nll = mean_nll(model, retain)
            loss = loss + self.hparams.retain_weight * retain_nll
            logs["retain_nll"] = retain_nll.detach()
        return loss, logs

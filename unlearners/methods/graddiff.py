"""Gradient difference (GradDiff): gradient ascent on the forget documents, descent on the retain documents."""

from __future__ import annotations

from dataclasses import dataclass

from unlearners.hparams import TOFU_7B, TrainHparams, non_negative
from unlearners.methods.ga import GradientAscent


@dataclass
class GradDiffHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 2e-05
    num_epochs: float = 5.0
    forget_weight: float = non_negative(1.0)
    retain_weight: float = non_negative(1.0)


class GradDiff(GradientAscent):
    """Gradient difference: ascend on the forget documents while descending on the retain documents.

    loss = - forget_weight * NLL(forget) + retain_weight * NLL(retain)

    Liu, Mazumder et al. 2022, "Continual Learning and Private Unlearning" (CoLLAs); used as a baseline in
    Maini et al. 2024 (TOFU) and Zhang et al. 2024 (NPO).
    """

    name = "graddiff"
    description = "gradient difference: -NLL(forget) + retain_weight * NLL(retain)"
    Hparams = GradDiffHparams
    presets = {"7b": dict(TOFU_7B)}  # no "paper" preset: the paper ran GA, KL and NPO
    # the loss is GradientAscent's, with forget_weight on the forget term

"""Gradient ascent (GA) on the forget documents."""

from __future__ import annotations

from dataclasses import dataclass

from unlearners.base import Method
from unlearners.hparams import TrainHparams
from unlearners.losses import mean_nll


@dataclass
class GAHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 5e-05
    num_epochs: float = 1.0


class GradientAscent(Method):
    """Gradient ascent: maximise the language-model loss on the forget documents.

    loss = - NLL(forget) ,   NLL = mean next-token negative log-likelihood over the batch's tokens.

    The simplest unlearning baseline (e.g. Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks in
    Language Models", ACL; Yao et al. 2024, "Large Language Model Unlearning"). The loss is unbounded below, so long
    runs collapse the model; keep the number of steps small.
    """

    name = "ga"
    description = "gradient ascent on the forget documents (loss = -NLL(forget))"
    Hparams = GAHparams
    presets = {"7b": {"learning_rate": 1e-5, "num_epochs": 5, "per_device_batch_size": 4,
                      "gradient_accumulation_steps": 8, "max_length": 512, "lr_scheduler_type": "linear",
                      "warmup_steps": 0.1, "weight_decay": 0.01}}

    def loss(self, model, forget, retain, ctx):
        forget_nll = mean_nll(model, forget)
        return -forget_nll, {"forget_nll": forget_nll.detach()}

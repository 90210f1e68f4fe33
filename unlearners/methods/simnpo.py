"""SimNPO: reference-free, length-normalized NPO."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from unlearners.base import Method
from unlearners.hparams import TOFU_7B, TrainHparams, non_negative, positive
from unlearners.losses import mean_nll, sequence_logprob


@dataclass
class SimNPOHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 0.0005
    num_epochs: float = 1.0
    beta: float = positive(4.5)
    gamma: float = 0.0  # reward margin
    forget_weight: float = positive(1.0)
    retain_weight: float = non_negative(1.0)


class SimNPO(Method):
    """SimNPO: NPO without a reference model, with the log-probability normalised by the sequence length.

    loss = forget_weight * ( -(2 / beta) * mean_i log sigmoid( -(beta / |y_i|) * log p_theta(y_i) - gamma ) )
           + retain_weight * NLL(retain)

    Fan, Liu, Lin, Jia, Zhang, Mei, Liu 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization
    for LLM Unlearning", arXiv:2410.07163. |y_i| is the number of predicted tokens of example i, gamma a margin.
    """

    name = "simnpo"
    description = "reference-free, length-normalized NPO (+ retain NLL)"
    Hparams = SimNPOHparams
    # The paper's TOFU setting (beta 4.5, gamma 0, forget weight 0.125, retain weight 1).
    presets = {"7b": dict(TOFU_7B, beta=4.5, gamma=0.0, forget_weight=0.125, retain_weight=1.0, num_epochs=10)}

    def needs_retain(self) -> bool:
        return self.hparams.retain_weight > 0

    def loss(self, model, forget, retain, ctx):
        hp = self.hparams
        logprob, count = sequence_logprob(model, forget)
        mean_logprob = logprob / count.clamp(min=1)
        forget_loss = -(2.0 / hp.beta) * F.logsigmoid(-hp.beta * mean_logprob - hp.gamma).mean()
        loss = hp.forget_weight * forget_loss
        logs = {"simnpo_loss": forget_loss.detach(), "forget_nll": -(logprob.detach().sum() / count.sum().clamp(min=1))}
        if hp.retain_weight > 0:
            retain_nll = mean_nll(model, retain)
            loss = loss + hp.retain_weight * retain_nll
            logs["retain_nll"] = retain_nll.detach()
        return loss, logs

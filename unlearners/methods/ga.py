"""Gradient ascent (GA) on the forget documents, optionally with a retain term (GA+FT of the RESTOR code)."""

from __future__ import annotations

from dataclasses import dataclass

from unlearners.base import Method
from unlearners.hparams import RESTOR_GAMMA, TOFU_7B, TrainHparams, non_negative
from unlearners.losses import mean_nll


@dataclass
class GAHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 2e-05
    num_epochs: float = 5.0
    # gamma of the RESTOR code's GA+FT; 0 = plain gradient ascent (no retain set needed)
    retain_weight: float = non_negative(0.0)


class GradientAscent(Method):
    """Gradient ascent: maximise the language-model loss on the forget documents.

    loss = - NLL(forget) + retain_weight * NLL(retain) ,
    NLL = mean next-token negative log-likelihood over the batch's predicted (non-padding) tokens.

    With `retain_weight = 0` (the default) this is plain gradient ascent, the simplest unlearning baseline (e.g.
    Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks in Language Models", ACL; Yao et al. 2024,
    "Large Language Model Unlearning"). The loss is unbounded below, so long runs collapse the model; keep the
    number of steps small.

    With `retain_weight = gamma > 0` it is the GA+FT objective RESTOR ran (Rezaei et al., arXiv:2411.00204;
    code k1rezaei/restor@15292e58 unlearning/unlearn/GA.py, class GA_FT):
        loss = - NLL(forget) + gamma * NLL(retain),
    both NLLs the Hugging Face `outputs.loss` of the batch (mean over its non-ignored next tokens). The "paper"
    preset sets gamma = 1.0: the official code takes gamma from its trainer arguments and does not state it
    (the SOUL code it builds on defaults GA+FT's gamma to 0, i.e. plain GA).
    """

    name = "ga"
    description = "gradient ascent on the forget documents (loss = -NLL(forget) [+ retain_weight * NLL(retain)])"
    Hparams = GAHparams
    presets = {"7b": dict(TOFU_7B), "paper": {"retain_weight": RESTOR_GAMMA}}

    def needs_retain(self) -> bool:
        return self.hparams.retain_weight > 0

    def loss(self, model, forget, retain, ctx):
        forget_nll = mean_nll(model, forget)
        loss = -getattr(self.hparams, "forget_weight", 1.0) * forget_nll  # GradDiff weighs the forget term
        logs = {"forget_nll": forget_nll.detach()}
        if self.hparams.retain_weight > 0:
            retain_nll = mean_nll(model, retain)
            loss = loss + self.hparams.retain_weight * retain_nll
            logs["retain_nll"] = retain_nll.detach()
        return loss, logs

"""Gradient ascent on the forget documents + KL divergence to the reference model on the retain documents."""

from __future__ import annotations

from dataclasses import dataclass

from unlearners.base import Method
from unlearners.errors import UnlearnError
from unlearners.hparams import TrainHparams, check_reference_mode
from unlearners.losses import forward, kl_reference_to_model, mean_nll, token_nll
from unlearners.methods.ga import GradientAscent


@dataclass
class KLHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 0.0002
    num_epochs: float = 1.0
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    # "auto": the LoRA adapter disabled when training LoRA, else a frozen copy ("live"); caching is not possible
    # because the loss needs the reference's full next-token distributions on fresh retain batches.
    reference: str = "auto"

    def check(self) -> None:
        super().check()
        check_reference_mode(self.reference, ("auto", "live", "adapter"))
        if self.forget_weight < 0 or self.retain_weight <= 0:
            raise UnlearnError("hyperparameter 'retain_weight' must be > 0 and 'forget_weight' >= 0")


class KLMinimization(Method):
    """Gradient ascent on the forget documents, kept close to the reference model on the retain documents.

    loss = - forget_weight * NLL(forget) + retain_weight * KL( p_ref(. | x) || p_theta(. | x) ),
    the KL averaged over the next-token distributions of the retain batch.

    Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs" (the "KL" baseline); also Yao et al. 2024.
    The reference is the model before unlearning: with LoRA, the same model with its adapter disabled (no extra
    memory); with full fine-tuning, a frozen copy (one more model in memory).
    """

    name = "kl"
    description = "gradient ascent on forget + KL(reference || model) on retain"
    Hparams = KLHparams
    presets = {"7b": dict(GradientAscent.presets["7b"])}
    uses_reference = True

    def needs_retain(self) -> bool:
        return True

    def loss(self, model, forget, retain, ctx):
        forget_nll = mean_nll(model, forget)
        outputs = forward(model, retain)
        ref_outputs = ctx.reference.outputs(model, retain)
        kl = kl_reference_to_model(ref_outputs.logits, outputs.logits, retain["labels"])
        loss = -self.hparams.forget_weight * forget_nll + self.hparams.retain_weight * kl
        retain_nll_sum, count = token_nll(outputs.logits.detach(), retain["labels"])
        retain_nll = retain_nll_sum.sum() / count.sum().clamp(min=1)
        return loss, {"forget_nll": forget_nll.detach(), "retain_kl": kl.detach(), "retain_nll": retain_nll}

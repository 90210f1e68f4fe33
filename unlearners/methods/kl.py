"""KL methods: a forget term (gradient ascent, or the cross-entropy to the reference of the RESTOR code) plus a
retain term (KL to the reference, or the language-model loss)."""

from __future__ import annotations

from dataclasses import dataclass

from unlearners.base import Method
from unlearners.hparams import (
    RESTOR_GAMMA,
    TOFU_7B,
    TrainHparams,
    UNCACHED_REFERENCE_MODES,
    non_negative,
    one_of,
    positive,
)
from unlearners.losses import (
    batch_mean_nll,
    cross_entropy_to_reference,
    forward,
    kl_reference_to_model,
    mean_nll,
)

FORGET_TERMS = ("nll", "cross_entropy")
RETAIN_TERMS = ("kl", "nll")


@dataclass
class KLHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 0.0002
    num_epochs: float = 1.0
    forget_weight: float = non_negative(1.0)
    retain_weight: float = positive(1.0)
    # "nll": -NLL(forget) (TOFU); "cross_entropy": -CE(p_theta || p_ref) on the forget batch (RESTOR's KL+FT)
    forget_term: str = one_of("nll", FORGET_TERMS)
    # "kl": KL(p_ref || p_theta) on the retain batch (TOFU); "nll": NLL(retain) (RESTOR's KL+FT)
    retain_term: str = one_of("kl", RETAIN_TERMS)
    # "auto": the LoRA adapter disabled when training LoRA, else a frozen copy ("live"); caching is not possible
    # because the loss needs the reference's full next-token distributions on fresh batches.
    reference: str = one_of("auto", UNCACHED_REFERENCE_MODES)


class KLMinimization(Method):
    """Gradient ascent on the forget documents, kept close to the reference model on the retain documents.

    Default (forget_term="nll", retain_term="kl"), the TOFU "KL" baseline (Maini et al. 2024, "TOFU: A Task of
    Fictitious Unlearning for LLMs"; also Yao et al. 2024):

        loss = - forget_weight * NLL(forget) + retain_weight * KL( p_ref(. | x) || p_theta(. | x) ),

    the KL averaged over the next-token distributions at the retain batch's predicted (non-padding) tokens.

    The terms are options:
    - forget_term="cross_entropy": the forget term of RESTOR's KL+FT (k1rezaei/restor@15292e58
      unlearning/unlearn/KL.py, `kl_loss` and class KL_FT), on the forget batch,
          CE = mean over all [B, S] positions of  - sum_v p_theta(v | x_<=t) * log( p_ref(v | x_<=t) + 1e-12 ),
      a cross-entropy of the model's distribution against the reference's (not a KL: no entropy term), averaged
      over every position of the padded batch, padding and the last position included. The term is
      - forget_weight * CE (maximised).
    - retain_term="nll": retain_weight * NLL(retain), the language-model loss (mean over predicted tokens).

    The "paper" preset is KL+FT as RESTOR ran it (Rezaei et al., arXiv:2411.00204):
        loss = - gamma * CE(forget) + NLL(retain),   forget_weight = gamma = 1.0, retain_weight = 1;
    the official code takes gamma from its trainer arguments and does not state the value (see RESTOR_GAMMA).

    The reference is the model before unlearning: with LoRA, the same model with its adapter disabled (no extra
    memory); with full fine-tuning, a frozen copy (one more model in memory). With forget_term="nll" and
    retain_term="nll" no reference is used.
    """

    name = "kl"
    description = "gradient ascent on forget + KL(reference || model) on retain (or RESTOR's KL+FT)"
    Hparams = KLHparams
    presets = {
        "7b": dict(TOFU_7B),
        "paper": {"forget_term": "cross_entropy", "forget_weight": RESTOR_GAMMA,
                  "retain_term": "nll", "retain_weight": 1.0},
    }
    uses_reference = True

    def needs_retain(self) -> bool:
        return True

    def reference_mode(self, lora: bool) -> str | None:
        if self.hparams.forget_term == "nll" and self.hparams.retain_term == "nll":
            return None
        return super().reference_mode(lora)

    def forget_loss(self, model, forget, ctx):
        """(the forget term before its weight, logs)."""
        if self.hparams.forget_term == "nll":
            forget_nll = mean_nll(model, forget)
            return forget_nll, {"forget_nll": forget_nll.detach()}
        outputs = forward(model, forget)
        ref_outputs = ctx.reference.outputs(model, forget)
        cross_entropy = cross_entropy_to_reference(outputs.logits, ref_outputs.logits)
        forget_nll = batch_mean_nll(outputs.logits.detach(), forget["labels"])
        return cross_entropy, {"forget_ce": cross_entropy.detach(), "forget_nll": forget_nll}

    def retain_loss(self, model, retain, ctx):
        """(the retain term before its weight, logs)."""
        if self.hparams.retain_term == "nll":
            retain_nll = mean_nll(model, retain)
            return retain_nll, {"retain_nll": retain_nll.detach()}
        outputs = forward(model, retain)
        ref_outputs = ctx.reference.outputs(model, retain)
        kl = kl_reference_to_model(ref_outputs.logits, outputs.logits, retain["labels"])
        return kl, {"retain_kl": kl.detach(), "retain_nll": batch_mean_nll(outputs.logits.detach(), retain["labels"])}

    def loss(self, model, forget, retain, ctx):
        forget_term, forget_logs = self.forget_loss(model, forget, ctx)
        retain_term, retain_logs = self.retain_loss(model, retain, ctx)
        loss = -self.hparams.forget_weight * forget_term + self.hparams.retain_weight * retain_term
        return loss, {**forget_logs, **retain_logs}

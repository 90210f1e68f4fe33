"""Negative Preference Optimization (NPO) and NPO with a retain loss (NPO+RT)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unlearners.base import Method, MethodContext
from unlearners.errors import UnlearnError
from unlearners.hparams import TrainHparams, check_reference_mode
from unlearners.losses import mean_nll, sequence_logprob, token_nll

NPO_7B = {"beta": 0.1, "learning_rate": 1e-5, "num_epochs": 10, "per_device_batch_size": 4,
          "gradient_accumulation_steps": 8, "max_length": 512, "lr_scheduler_type": "linear",
          "warmup_steps": 0.1, "weight_decay": 0.01}


@dataclass
class NPOHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 5e-05
    num_epochs: float = 5.0
    beta: float = 0.1
    retain_weight: float = 0.0
    # "cached": the reference log-probabilities of every forget example are computed once before training
    # (no reference model during training); "live": a frozen copy runs at every step; "adapter": LoRA disabled.
    reference: str = "cached"

    def check(self) -> None:
        super().check()
        check_reference_mode(self.reference)
        if self.beta <= 0:
            raise UnlearnError(f"hyperparameter 'beta' must be > 0, got {self.beta}")
        if self.retain_weight < 0:
            raise UnlearnError(f"hyperparameter 'retain_weight' must be >= 0, got {self.retain_weight}")


@torch.no_grad()
def cache_reference_logprobs(ctx: MethodContext) -> torch.Tensor:
    """Sequence log-probability of every forget example under the model as it is now (before any step).

    Returns a float32 tensor indexed by example index, on the training device.
    """
    model = ctx.model
    was_training = model.training
    model.eval()
    values: dict[int, float] = {}
    try:
        with ctx.autocast():
            for batch in ctx.forget_batches():
                batch = {key: value.to(ctx.device) for key, value in batch.items()}
                logprob, _ = sequence_logprob(model, batch)
                for index, value in zip(batch["index"].tolist(), logprob.float().tolist()):
                    values[index] = value
    finally:
        model.train(was_training)
    cache = torch.full((max(values) + 1,), float("nan"), dtype=torch.float32)
    for index, value in values.items():
        cache[index] = value
    return cache.to(ctx.device)


class NPO(Method):
    """Negative Preference Optimization: a bounded replacement for gradient ascent.

    loss = -(2 / beta) * mean_i log sigmoid( -beta * ( log p_theta(y_i) - log p_ref(y_i) ) )
           + retain_weight * NLL(retain)

    where log p(y_i) is the sum of token log-probabilities of forget example i, and p_ref the model before
    unlearning. Zhang, Lin, Bai, Mei 2024, "Negative Preference Optimization: From Catastrophic Collapse to
    Effective Unlearning" (COLM 2024), arXiv:2404.05868. As beta -> 0 the gradient becomes that of gradient ascent.

    The reference only enters through log p_ref(y_i) of the forget examples, which do not change during training:
    by default they are computed once in `setup()` and looked up by example index (no reference model in memory,
    no extra forward per step). `reference=live` runs a frozen copy instead, for comparison.
    """

    name = "npo"
    description = "negative preference optimization (bounded ascent against a reference; reference cached)"
    Hparams = NPOHparams
    presets = {"7b": dict(NPO_7B)}
    uses_reference = True
    can_cache_reference = True

    def __init__(self, hparams=None):
        super().__init__(hparams)
        self.reference_logprobs: torch.Tensor | None = None

    def needs_retain(self) -> bool:
        return self.hparams.retain_weight > 0

    def setup(self, ctx: MethodContext) -> None:
        if ctx.reference_mode == "cached":
            self.reference_logprobs = cache_reference_logprobs(ctx)

    def reference_logprob(self, model, forget: dict, ctx: MethodContext) -> torch.Tensor:
        """log p_ref of each forget example of the batch: from the cache, or from a live reference forward."""
        if self.reference_logprobs is not None:
            return self.reference_logprobs[forget["index"].to(self.reference_logprobs.device)]
        nll_sum, _ = token_nll(ctx.reference.outputs(model, forget).logits, forget["labels"])
        return -nll_sum

    def loss(self, model, forget, retain, ctx):
        beta = self.hparams.beta
        logprob, count = sequence_logprob(model, forget)
        log_ratio = logprob - self.reference_logprob(model, forget, ctx).to(logprob.dtype)
        forget_loss = -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()
        logs = {
            "npo_loss": forget_loss.detach(),
            "forget_nll": (-logprob.detach().sum() / count.sum().clamp(min=1)),
            "log_ratio": log_ratio.detach().mean(),
        }
        loss = forget_loss
        if self.hparams.retain_weight > 0:
            retain_nll = mean_nll(model, retain)
            loss = loss + self.hparams.retain_weight * retain_nll
            logs["retain_nll"] = retain_nll.detach()
        return loss, logs


@dataclass
class NPORetainHparams(NPOHparams):
    retain_weight: float = 1.0


class NPORetain(NPO):
    """NPO plus the language-model loss on the retain documents (NPO+RT in Zhang et al. 2024, arXiv:2404.05868).

    loss = NPO(forget) + retain_weight * NLL(retain)
    """

    name = "npo_rt"
    description = "NPO + retain_weight * NLL(retain) (NPO+RT)"
    Hparams = NPORetainHparams
    presets = {"7b": dict(NPO_7B, retain_weight=1.0)}

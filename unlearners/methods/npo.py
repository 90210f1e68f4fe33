"""Negative Preference Optimization (NPO) and NPO with a retain loss (NPO+RT)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unlearners.base import Method, MethodContext
from unlearners.hparams import REFERENCE_MODES, RESTOR_GAMMA, TOFU_7B, TrainHparams, non_negative, one_of, positive
from unlearners.losses import forward, mean_nll, token_nll_per_position

NPO_7B = dict(TOFU_7B, beta=0.1, num_epochs=10)
# NPO as RESTOR ran it (k1rezaei/restor@15292e58 unlearning/unlearn/NPO.py): beta 0.1 (hard-coded there),
# the log-ratio of the batch-mean token NLLs, gamma * NLL(retain).
NPO_PAPER = {"log_ratio": "batch_mean_token", "beta": 0.1, "retain_weight": RESTOR_GAMMA}

LOG_RATIOS = ("sequence", "batch_mean_token", "token")


@dataclass
class NPOHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 2e-05
    num_epochs: float = 5.0
    beta: float = positive(0.1)
    retain_weight: float = non_negative(0.0)
    # how log p_theta / p_ref is taken: "sequence" (per example, summed token log-probs; Zhang et al.),
    # "batch_mean_token" (batch-mean token NLLs; RESTOR's NPO.py), "token" (per token; RESTOR's README formula)
    log_ratio: str = one_of("sequence", LOG_RATIOS)
    # "cached": what the loss needs of the reference is computed once per forget example before training
    # (no reference model during training); "live": a frozen copy runs at every step; "adapter": LoRA disabled.
    reference: str = one_of("cached", REFERENCE_MODES)


@dataclass
class ReferenceCache:
    """The reference's next-token NLL of every forget example (row = example index), on the training device."""

    nll_sum: torch.Tensor  # [N] float32, summed over the example's predicted tokens
    count: torch.Tensor  # [N] number of predicted tokens
    token_logprob: torch.Tensor | None = None  # [N, L] token log-probs in order, 0 past `count` (log_ratio="token")


@torch.no_grad()
def cache_reference(ctx: MethodContext, tokens: bool = False) -> ReferenceCache:
    """One pass over the forget set with the model as it is now (before any step): per-example NLL sums and token
    counts, and with `tokens` the per-token log-probabilities."""
    model = ctx.model
    was_training = model.training
    model.eval()
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    per_token: dict[int, torch.Tensor] = {}
    try:
        with ctx.autocast():
            for batch in ctx.forget_batches():
                batch = {key: value.to(ctx.device) for key, value in batch.items()}
                nll, mask = token_nll_per_position(forward(model, batch).logits, batch["labels"])
                rows = zip(batch["index"].tolist(), nll.sum(dim=1).tolist(), mask.sum(dim=1).tolist(), strict=True)
                for row, (index, nll_sum, count) in enumerate(rows):
                    sums[index], counts[index] = nll_sum, int(count)
                    if tokens:
                        per_token[index] = -nll[row][mask[row]].float().cpu()
    finally:
        model.train(was_training)
    size = max(sums) + 1
    nll_sum = torch.full((size,), float("nan"), dtype=torch.float32)
    count = torch.zeros(size, dtype=torch.long)
    for index, value in sums.items():
        nll_sum[index], count[index] = value, counts[index]
    token_logprob = None
    if tokens:
        token_logprob = torch.zeros(size, max(1, max(counts.values())), dtype=torch.float32)
        for index, values in per_token.items():
            token_logprob[index, : values.numel()] = values
        token_logprob = token_logprob.to(ctx.device)
    return ReferenceCache(nll_sum.to(ctx.device), count.to(ctx.device), token_logprob)


class NPO(Method):
    """Negative Preference Optimization: a bounded replacement for gradient ascent.

    Zhang, Lin, Bai, Mei 2024, "Negative Preference Optimization: From Catastrophic Collapse to Effective
    Unlearning" (COLM 2024), arXiv:2404.05868. p_ref is the model before unlearning; as beta -> 0 the gradient
    becomes that of gradient ascent. `log_ratio` picks where the log-ratio log(p_theta / p_ref) is taken:

    - "sequence" (default; Zhang et al.): per forget example i, log p(y_i) = sum of its token log-probabilities,
          L_f = -(2 / beta) * mean_i log sigmoid( -beta * ( log p_theta(y_i) - log p_ref(y_i) ) ).
    - "batch_mean_token" (RESTOR's NPO, k1rezaei/restor@15292e58 unlearning/unlearn/NPO.py): one log-ratio per
      batch, from the batch-mean token NLL (the Hugging Face `outputs.loss`: sum of the NLLs of the batch's
      predicted tokens / their number),
          L_f = -(2 / beta) * log sigmoid( beta * ( NLL_theta(batch) - NLL_ref(batch) ) ).
    - "token" (the formula of RESTOR's unlearning/README.md): per token, averaged over the T_i predicted tokens of
      each example, then over the examples of the batch,
          L_f = mean_i (2 / (beta * T_i)) * sum_t log( 1 + ( p_theta(x_t | x_<t) / p_ref(x_t | x_<t) )^beta )
              = mean_i (1 / T_i) * sum_t -(2 / beta) * log sigmoid( -beta * log(p_theta(x_t|x_<t) / p_ref(x_t|x_<t)) ).

    loss = L_f + retain_weight * NLL(retain)   (NLL: mean over the retain batch's predicted tokens).

    The "paper" preset is RESTOR's NPO (Rezaei et al., arXiv:2411.00204): log_ratio="batch_mean_token", beta = 0.1
    (hard-coded in the official code), retain_weight = gamma = 1.0 (the official code takes gamma from its trainer
    arguments and does not state the value; see RESTOR_GAMMA).

    The reference only enters through the forget examples' token NLLs, which do not change during training: by
    default they are computed once in `setup()` (sums and token counts per example; per-token values for
    log_ratio="token") and looked up by example index (no reference model in memory, no extra forward per step).
    `reference=live` runs a frozen copy instead, for comparison.
    """

    name = "npo"
    description = "negative preference optimization (bounded ascent against a reference; reference cached)"
    Hparams = NPOHparams
    presets = {"7b": dict(NPO_7B), "paper": dict(NPO_PAPER)}
    uses_reference = True
    can_cache_reference = True

    def __init__(self, hparams=None):
        super().__init__(hparams)
        self.reference_cache: ReferenceCache | None = None

    @property
    def reference_logprobs(self) -> torch.Tensor | None:
        """Cached log p_ref(y_i) (summed token log-probabilities) of every forget example, or None."""
        return None if self.reference_cache is None else -self.reference_cache.nll_sum

    def needs_retain(self) -> bool:
        return self.hparams.retain_weight > 0

    def setup(self, ctx: MethodContext) -> None:
        if ctx.reference_mode == "cached":
            self.reference_cache = cache_reference(ctx, tokens=self.hparams.log_ratio == "token")

    def reference_nll(self, model, forget: dict, ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's per-example NLL sums [B] and token counts [B] of the forget batch (cache or live)."""
        if self.reference_cache is not None:
            index = forget["index"].to(self.reference_cache.nll_sum.device)
            return self.reference_cache.nll_sum[index], self.reference_cache.count[index]
        nll, mask = token_nll_per_position(ctx.reference.outputs(model, forget).logits, forget["labels"])
        return nll.sum(dim=1), mask.sum(dim=1)

    def reference_token_logprob(self, model, forget: dict, mask: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
        """The reference's token log-probabilities at the forget batch's positions [B, S-1] (0 where masked)."""
        if self.reference_cache is not None:
            index = forget["index"].to(self.reference_cache.token_logprob.device)
            rows = self.reference_cache.token_logprob[index]
            rank = (mask.long().cumsum(dim=1) - 1).clamp(min=0).to(rows.device)  # position -> token number
            return rows.gather(1, rank).to(mask.device) * mask
        nll, _ = token_nll_per_position(ctx.reference.outputs(model, forget).logits, forget["labels"])
        return -nll

    def forget_loss(self, model, forget: dict, ctx: MethodContext) -> tuple[torch.Tensor, dict]:
        """(L_f, logs) for the forget batch, by `log_ratio`."""
        beta = self.hparams.beta
        nll, mask = token_nll_per_position(forward(model, forget).logits, forget["labels"])
        nll_sum, count = nll.sum(dim=1), mask.sum(dim=1)
        nll_mean = nll_sum.sum() / count.sum().clamp(min=1)  # the batch's mean token NLL
        logs = {"forget_nll": nll_mean.detach()}
        if self.hparams.log_ratio == "sequence":
            ref_nll_sum, _ = self.reference_nll(model, forget, ctx)
            log_ratio = ref_nll_sum.to(nll_sum.dtype) - nll_sum  # log p_theta(y) - log p_ref(y), per example
            forget_loss = -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()
        elif self.hparams.log_ratio == "batch_mean_token":
            ref_nll_sum, ref_count = self.reference_nll(model, forget, ctx)
            ref_mean = ref_nll_sum.sum().to(nll_mean.dtype) / ref_count.sum().clamp(min=1)
            log_ratio = ref_mean - nll_mean  # one value for the batch
            forget_loss = -(2.0 / beta) * F.logsigmoid(-beta * log_ratio)
        else:  # "token"
            ref_logprob = self.reference_token_logprob(model, forget, mask, ctx).to(nll.dtype)
            token_ratio = (-nll - ref_logprob) * mask  # log p_theta(x_t) - log p_ref(x_t), 0 where masked
            per_token = -(2.0 / beta) * F.logsigmoid(-beta * token_ratio) * mask
            forget_loss = (per_token.sum(dim=1) / count.clamp(min=1)).mean()
            log_ratio = token_ratio.sum(dim=1) / count.clamp(min=1)
        logs.update({"npo_loss": forget_loss.detach(), "log_ratio": log_ratio.detach().mean()})
        return forget_loss, logs

    def loss(self, model, forget, retain, ctx):
        loss, logs = self.forget_loss(model, forget, ctx)
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

    loss = NPO(forget) + retain_weight * NLL(retain), with NPO's `log_ratio` options; "paper" is the same preset
    as NPO's (RESTOR's NPO already has the retain term).
    """

    name = "npo_rt"
    description = "NPO + retain_weight * NLL(retain) (NPO+RT)"
    Hparams = NPORetainHparams
    presets = {"7b": dict(NPO_7B, retain_weight=1.0), "paper": dict(NPO_PAPER)}

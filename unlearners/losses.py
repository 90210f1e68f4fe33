"""Loss pieces shared by the methods: token NLL, sequence log-probabilities, KL and cross-entropy to a reference.

A batch is a dict with `input_ids`, `attention_mask`, `labels` (-100 on padding) and `index` (the example's
position in its set). Only `input_ids` and `attention_mask` go to the model; losses are computed here, in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODEL_INPUT_KEYS = ("input_ids", "attention_mask")


def model_inputs(batch: dict) -> dict:
    """The part of a batch the model's forward takes."""
    return {key: batch[key] for key in MODEL_INPUT_KEYS if key in batch}


def forward(model, batch: dict, **kwargs):
    """Run the model on a batch (no labels: the loss is computed by the caller)."""
    return model(**model_inputs(batch), use_cache=False, **kwargs)


def token_nll_per_position(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token NLL at every position: (nll [B, S-1], 0 where the label is ignored; mask [B, S-1] of predicted
    tokens). Position t holds -log p(labels[t+1] | tokens <= t)."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), reduction="none", ignore_index=-100
    ).view(shift_labels.shape)
    mask = shift_labels.ne(-100)
    return nll * mask, mask


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token NLL per sequence: (sum over tokens [B], number of predicted tokens [B])."""
    nll, mask = token_nll_per_position(logits, labels)
    return nll.sum(dim=1), mask.sum(dim=1)


def batch_mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL over all predicted tokens of a batch, from its logits."""
    nll_sum, count = token_nll(logits, labels)
    return nll_sum.sum() / count.sum().clamp(min=1)


def mean_nll(model, batch: dict) -> torch.Tensor:
    """Mean next-token NLL over all predicted tokens of the batch (the usual language-model loss)."""
    return batch_mean_nll(forward(model, batch).logits, batch["labels"])


def sequence_logprob(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each whole sequence under the model: (sum of token log-probs [B], token counts [B])."""
    nll_sum, count = token_nll(forward(model, batch).logits, batch["labels"])
    return -nll_sum, count


def kl_reference_to_model(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(reference || model) of the next-token distributions, averaged over the predicted (non-padding) tokens."""
    mask = labels[:, 1:].ne(-100)
    ref_logp = F.log_softmax(ref_logits[:, :-1, :].float(), dim=-1)
    logp = F.log_softmax(logits[:, :-1, :].float(), dim=-1)
    per_token = (ref_logp.exp() * (ref_logp - logp)).sum(dim=-1)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def cross_entropy_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Cross-entropy of the model's next-token distribution against the reference's, at every position:

        mean over all [B, S] positions of  - sum_v p_theta(v) * log( p_ref(v) + eps )

    Padding positions and the last position count too (the reduction of the RESTOR code's `kl_loss`,
    k1rezaei/restor@15292e58 unlearning/unlearn/KL.py); p = softmax of the logits, in float32.
    """
    probs = torch.softmax(logits.float(), dim=-1)
    ref_log = torch.log(torch.softmax(ref_logits.float(), dim=-1) + eps)
    return -(probs * ref_log).sum(dim=-1).mean()


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error between activations and a target, averaged over non-padding positions and dimensions."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    squared = (hidden.float() - target.float()).pow(2) * mask
    return squared.sum() / (mask.sum() * hidden.size(-1)).clamp(min=1)

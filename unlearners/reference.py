"""The reference model (the model before unlearning), at the lowest cost that serves the method.

Modes:
- "cached": no reference model at training time; the method computes what it needs (e.g. the sequence
  log-probabilities of every forget example) once in `setup()`, before the first step.
- "adapter": LoRA runs only; the reference is the same model with its adapter disabled (no extra weights).
- "live": a frozen copy of the model (one more full model in memory; the forward runs at every step). Full
  fine-tuning with a method that needs the reference's full outputs (KL on retain, RMU) has to use it.
"""

from __future__ import annotations

import copy

import torch

from unlearners.losses import forward


def frozen_copy(model):
    """A frozen, eval-mode copy of `model` (the "live" reference)."""
    reference = copy.deepcopy(model)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def _find_peft_model(model):
    """The PeftModel inside `model` (which may be wrapped by DDP or similar), or None."""
    seen = 0
    while model is not None and seen < 8:
        if hasattr(model, "disable_adapter") and hasattr(model, "peft_config"):
            return model
        model = getattr(model, "module", None)
        seen += 1
    return None


class Reference:
    """Runs the reference forward pass for a batch, without gradients."""

    def __init__(self, mode: str, frozen_model=None):
        if mode == "live" and frozen_model is None:
            raise ValueError("the live reference needs a frozen model")
        self.mode = mode
        self.model = frozen_model

    def to(self, device) -> Reference:
        if self.model is not None:
            self.model.to(device)
        return self

    @torch.no_grad()
    def outputs(self, model, batch: dict, **kwargs):
        """Reference outputs for `batch`; `model` is the model being trained (used by the "adapter" mode)."""
        if self.mode == "adapter":
            peft_model = _find_peft_model(model)
            if peft_model is None:
                raise ValueError("reference mode 'adapter' needs a model with a LoRA adapter")
            with peft_model.disable_adapter():
                return forward(model, batch, **kwargs)
        if self.mode == "live":
            return forward(self.model, batch, **kwargs)
        raise ValueError(f"reference mode {self.mode!r} has no model to run (the method should use its cache)")

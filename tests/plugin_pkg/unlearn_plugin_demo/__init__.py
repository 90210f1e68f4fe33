"""An unlearning method living outside the unlearners package, registered by an entry point."""

from __future__ import annotations

from dataclasses import dataclass

from unlearners.base import Method
from unlearners.hparams import TrainHparams, positive
from unlearners.losses import mean_nll


@dataclass
class ScaledAscentHparams(TrainHparams):
    scale: float = positive(0.5)  # must be > 0: checked like the shared fields


class ScaledAscent(Method):
    """Gradient ascent with a scaled loss: loss = -scale * NLL(forget)."""

    name = "scaled_ascent"
    description = "gradient ascent scaled by a factor (an external plug-in)"
    Hparams = ScaledAscentHparams

    def loss(self, model, forget, retain, ctx):
        forget_nll = mean_nll(model, forget)
        return -self.hparams.scale * forget_nll, {"forget_nll": forget_nll.detach()}

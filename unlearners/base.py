"""The method interface: a small object whose one job is its loss.

A method subclasses `Method`, names its hyperparameter dataclass (`Hparams`), and writes `loss()`. Optional hooks:
`setup()` runs once before training (e.g. to cache reference log-probabilities), `select_trainable()` restricts
which parameters train, `finalize()` edits the weights after training (e.g. task-vector negation).
`UnlearnTrainer` runs any method; the registry finds methods by name through entry points.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from unlearners.errors import UnlearnError
from unlearners.hparams import TrainHparams, check_reference_mode

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class MethodContext:
    """What a method may use besides the model and the batches.

    `model` is the trained model before any distributed wrapping (for setup passes); `reference` runs the frozen
    reference model (or the model with its LoRA adapter disabled) when the method asked for one; `forget_batches()`
    walks the whole forget set in index order (for caching); `state` is free storage for the method.
    """

    model: Any
    reference: Any  # unlearners.reference.Reference | None
    reference_mode: str | None
    lora: bool
    device: Any
    seed: int = 0
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    forget_batches: Callable[[], Iterator[dict]] = lambda: iter(())
    trainer: Any = None
    state: dict = field(default_factory=dict)

    @property
    def global_step(self) -> int:
        return int(self.trainer.state.global_step) if self.trainer is not None else 0


class Method:
    """Base class of unlearning methods. Subclasses set `name`, `description`, `Hparams` and write `loss()`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Hparams: ClassVar[type] = TrainHparams
    # Overrides of the tiny-world defaults for 7-8B models, from the method's paper: {"7b": {field: value}}.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # Does `loss()` call the reference model? Can the reference be reduced to cached per-example log-probabilities?
    uses_reference: ClassVar[bool] = False
    can_cache_reference: ClassVar[bool] = False

    def __init__(self, hparams: Any = None):
        self.hparams = hparams if hparams is not None else self.Hparams()
        if not isinstance(self.hparams, self.Hparams):
            raise UnlearnError(f"method '{self.name}' expects hyperparameters of type {self.Hparams.__name__}")
        self.hparams.check()

    @classmethod
    def summary(cls) -> str:
        """One line saying what the method does (its `description`, else its docstring's first line)."""
        if cls.description:
            return cls.description
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def needs_retain(self) -> bool:
        """Whether the loss uses retain batches (then a retain set is required)."""
        return False

    def reference_mode(self, lora: bool) -> str | None:
        """The reference the run must provide: None, "cached", "live" (frozen copy) or "adapter" (LoRA disabled)."""
        if not self.uses_reference:
            return None
        mode = getattr(self.hparams, "reference", "auto")
        check_reference_mode(mode)
        if mode == "auto":
            mode = "cached" if self.can_cache_reference else ("adapter" if lora else "live")
        if mode == "cached" and not self.can_cache_reference:
            raise UnlearnError(
                f"method '{self.name}' needs the reference model's full outputs and cannot cache them; "
                "use reference=live, or reference=adapter with LoRA"
            )
        if mode == "adapter" and not lora:
            raise UnlearnError("reference=adapter needs a LoRA run (--lora); use reference=live for full fine-tuning")
        return mode

    def select_trainable(self, model: Any, lora: bool) -> None:
        """Optionally freeze parameters (called after the LoRA adapter, if any, is attached)."""

    def setup(self, ctx: MethodContext) -> None:
        """Optional work before the first step (called once by `UnlearnTrainer.train`)."""

    def loss(
        self, model: Any, forget: dict, retain: dict | None, ctx: MethodContext
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return (scalar loss to minimise, logs: name -> number or 0-d tensor) for one forget (+ retain) batch."""
        raise NotImplementedError

    def finalize(self, model: Any, ctx: MethodContext) -> None:
        """Optional edit of the weights after training, before a LoRA adapter is merged."""

"""Representation Misdirection for Unlearning (RMU)."""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import torch

from unlearners.base import Method, MethodContext
from unlearners.errors import UnlearnError
from unlearners.hparams import TrainHparams, UNCACHED_REFERENCE_MODES, non_negative, one_of, positive
from unlearners.losses import forward, masked_mse


@dataclass
class RMUHparams(TrainHparams):
    # tiny-world defaults, tuned on the validation targets (docs/tuning.md)
    learning_rate: float = 1e-03
    num_epochs: float = 5.0
    # decoder layer whose output is steered (0-based; -1: the middle layer); the tiny model's last is 2
    layer: int = 2
    update_layers: tuple[int, ...] = ()  # layers whose parameters train; empty: layer-2, layer-1, layer
    param_pattern: str = "mlp.down_proj"  # which parameters of those layers train (substring of the name)
    # c; 0: adaptive, c = adaptive_scale * mean activation norm on the forget set
    steering_coeff: float = non_negative(0.0)
    adaptive_scale: float = positive(4.0)
    retain_weight: float = non_negative(100.0)  # alpha in the paper
    # "auto": LoRA adapter disabled with --lora, else a frozen copy ("live"): the retain term needs the
    # reference's activations on fresh retain batches, so they cannot be cached.
    reference: str = one_of("auto", UNCACHED_REFERENCE_MODES)


def _num_layers(model) -> int:
    config = getattr(model, "config", None)
    count = getattr(config, "num_hidden_layers", None)
    if count is None and config is not None and hasattr(config, "get_text_config"):
        count = getattr(config.get_text_config(), "num_hidden_layers", None)
    if not count:
        raise UnlearnError("rmu: the model config has no num_hidden_layers")
    return int(count)


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's list of decoder layers: the first `nn.ModuleList` holding `num_hidden_layers` modules.

    Llama, Qwen, Gemma and Mistral keep it at `model.layers`, GPT-2 at `transformer.h`, GPT-NeoX at
    `gpt_neox.layers`; searching by length covers them all and peft's wrapping too."""
    while not hasattr(model, "config") and hasattr(model, "module"):  # DDP and similar wrappers
        model = model.module
    count = _num_layers(model)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise UnlearnError(f"rmu: no list of {count} decoder layers found in {type(model).__name__}")


class LayerCapture:
    """Records the output of one decoder layer during a forward pass (a forward hook; hidden states only).

    `outputs.hidden_states[l + 1]` is decoder layer l's output for every layer but the last, where Hugging Face
    models return the output of the final norm instead; the hook reads the layer itself, at every depth."""

    def __init__(self):
        self.value: torch.Tensor | None = None

    def _hook(self, module, args, output):
        self.value = output[0] if isinstance(output, (tuple, list)) else output

    @contextlib.contextmanager
    def on(self, *modules):
        handles = [module.register_forward_hook(self._hook) for module in modules if module is not None]
        self.value = None
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def take(self) -> torch.Tensor:
        if self.value is None:
            raise UnlearnError("rmu: the steered decoder layer did not run in the forward pass")
        value, self.value = self.value, None
        return value


def _base_forward_accepts(model, name: str) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return name in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


class RMU(Method):
    """Representation Misdirection for Unlearning: scramble a middle layer's activations on forget data.

    loss = mean_{t in forget} || h_theta^l(t) - c * u ||^2  +  alpha * mean_{t in retain} || h_theta^l(t) - h_ref^l(t) ||^2

    h^l is the output of decoder layer l (read with a forward hook on the layer, so the last layer's output is its
    own and not the final norm's), u a fixed random unit vector (uniform entries, normalised), c the
    steering coefficient, h_ref the frozen model's activations; squared norms are averaged over tokens and
    dimensions. Only the parameters of layers l-2, l-1, l matching `param_pattern` train (MLP down projections by
    default). Li et al. 2024, "The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning" (ICML
    2024), arXiv:2403.03218. With `steering_coeff=0` the coefficient is set from the activations, c = adaptive_scale
    * mean ||h^l|| on the forget set (the adaptive variant of Dang et al. 2024, arXiv:2409.02496).
    """

    name = "rmu"
    description = "steer a middle layer's activations on forget data to a random direction; keep retain ones"
    Hparams = RMUHparams
    # Zephyr-7B values of the WMDP paper (layer 7, layers 5-7, c = 6.5, alpha = 1200, lr 5e-5, batch 4).
    presets = {"7b": {"layer": 7, "update_layers": (5, 6, 7), "steering_coeff": 6.5, "retain_weight": 1200.0,
                      "learning_rate": 5e-5, "num_epochs": 1, "per_device_batch_size": 4,
                      "gradient_accumulation_steps": 1, "max_length": 512, "lr_scheduler_type": "constant"}}
    uses_reference = True

    def __init__(self, hparams=None):
        super().__init__(hparams)
        self.layer: int | None = None
        self.control: torch.Tensor | None = None
        self._forward_kwargs: dict = {}
        self._capture = LayerCapture()
        self._layers: dict[int, tuple] = {}

    def needs_retain(self) -> bool:
        return self.hparams.retain_weight > 0

    def reference_mode(self, lora: bool) -> str | None:
        return super().reference_mode(lora) if self.hparams.retain_weight > 0 else None

    def resolve_layers(self, model) -> tuple[int, list[int]]:
        count = _num_layers(model)
        layer = self.hparams.layer if self.hparams.layer >= 0 else count // 2
        if layer >= count:
            raise UnlearnError(f"rmu: layer {layer} does not exist (the model has {count} layers)")
        update = list(self.hparams.update_layers) or [i for i in (layer - 2, layer - 1, layer) if i >= 0]
        bad = [i for i in update if not 0 <= i < count]
        if bad:
            raise UnlearnError(f"rmu: update_layers {bad} do not exist (the model has {count} layers)")
        return layer, update

    def select_trainable(self, model, lora: bool) -> None:
        self.layer, update = self.resolve_layers(model)
        prefixes = tuple(f"layers.{i}." for i in update)
        chosen = []
        for name, param in model.named_parameters():
            keep = (
                any(prefix in name for prefix in prefixes)
                and self.hparams.param_pattern in name
                and (not lora or "lora_" in name)
            )
            param.requires_grad_(keep)
            if keep:
                chosen.append(name)
        if not chosen:
            raise UnlearnError(
                f"rmu: no parameter of layers {update} matches param_pattern '{self.hparams.param_pattern}'"
            )
        if _base_forward_accepts(model, "logits_to_keep"):
            self._forward_kwargs["logits_to_keep"] = 1  # the loss needs activations only, not the vocabulary logits

    def _layer_module(self, model):
        if model is None:
            return None
        cached = self._layers.get(id(model))
        if cached is None or cached[0] is not model:
            cached = self._layers[id(model)] = (model, decoder_layers(model)[self.layer])
        return cached[1]

    def hidden(self, model, batch, reference=None) -> torch.Tensor:
        """Decoder layer `self.layer`'s output on `batch`: of `model`, or of the reference (`reference` given; its
        own copy when live, `model` with the adapter disabled otherwise)."""
        if reference is None:
            with self._capture.on(self._layer_module(model)):
                forward(model, batch, **self._forward_kwargs)
                return self._capture.take()
        live = getattr(reference, "model", None) if getattr(reference, "mode", None) == "live" else None
        with self._capture.on(self._layer_module(live if live is not None else model)):
            reference.outputs(model, batch, **self._forward_kwargs)
            return self._capture.take()

    @torch.no_grad()
    def setup(self, ctx: MethodContext) -> None:
        if self.layer is None:
            self.select_trainable(ctx.model, ctx.lora)
        hidden_size = ctx.model.config.hidden_size
        generator = torch.Generator().manual_seed(ctx.seed)
        direction = torch.rand(hidden_size, generator=generator)
        direction = direction / direction.norm()
        coeff = self.hparams.steering_coeff
        if coeff <= 0:
            coeff = self.hparams.adaptive_scale * self._mean_activation_norm(ctx)
        ctx.state["rmu_steering_coeff"] = float(coeff)
        self.control = (coeff * direction).to(ctx.device)

    def _mean_activation_norm(self, ctx: MethodContext) -> float:
        model = ctx.model
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        try:
            with ctx.autocast():
                for batch in ctx.forget_batches():
                    batch = {key: value.to(ctx.device) for key, value in batch.items()}
                    hidden = self.hidden(model, batch).float()
                    mask = batch["attention_mask"].bool()
                    total += hidden.norm(dim=-1)[mask].sum().item()
                    count += int(mask.sum().item())
        finally:
            model.train(was_training)
        return total / max(count, 1)

    def loss(self, model, forget, retain, ctx):
        hidden = self.hidden(model, forget)
        forget_loss = masked_mse(hidden, self.control.to(hidden.dtype).expand_as(hidden), forget["attention_mask"])
        loss = forget_loss
        logs = {"forget_mse": forget_loss.detach()}
        if self.hparams.retain_weight > 0:
            retain_hidden = self.hidden(model, retain)
            reference_hidden = self.hidden(model, retain, reference=ctx.reference)
            retain_loss = masked_mse(retain_hidden, reference_hidden, retain["attention_mask"])
            loss = loss + self.hparams.retain_weight * retain_loss
            logs["retain_mse"] = retain_loss.detach()
        return loss, logs

"""Hyperparameters: one dataclass per method, built from defaults < preset < YAML file < `key=value` overrides.

Every method's dataclass extends `TrainHparams` (the optimisation and LoRA settings every method shares) with the
fields of its own loss. Defaults are starting values for the project's tiny world (a ~1M-parameter Llama trained from
scratch); each method also names a `"7b"` preset with values from its paper for 7-8B models.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from unlearners.errors import UnlearnError

REFERENCE_MODES = ("auto", "cached", "live", "adapter")

# gamma, the weight the RESTOR code (k1rezaei/restor@15292e58, unlearning/unlearn/{GA,KL,NPO}.py) puts on one of
# the two terms of GA+FT, KL+FT and NPO; used by the methods' "paper" presets. The official code takes it from its
# trainer arguments (`BaseTrainer(gamma=...)`) and neither the code nor its README states the value the paper
# ran; the SOUL code it builds on (OPTML-Group/SOUL, src/exec/unlearn_model.py) defaults gamma to 0 for GA+FT and
# NPO and has no KL+FT entry, and KL+FT with gamma = 0 would not unlearn at all. 1.0 weighs the two terms equally.
RESTOR_GAMMA = 1.0


@dataclass
class TrainHparams:
    """Settings shared by every method: optimiser, schedule, batch shape, LoRA adapter."""

    learning_rate: float = 5e-4
    num_epochs: float = 5.0
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512  # documents longer than this are cut into consecutive windows
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0  # < 1: a fraction of the steps, >= 1: a number of steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0

    def check(self) -> None:
        """Raise UnlearnError for values that cannot work. Subclasses extend it and call super().check()."""
        check_finite(self)
        _positive(self, "learning_rate", "num_epochs", "per_device_batch_size", "gradient_accumulation_steps")
        _positive(self, "max_length", "lora_r", "lora_alpha")
        if self.max_length < 2:
            raise UnlearnError("hyperparameter 'max_length' must be at least 2")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UnlearnError("hyperparameter 'lora_dropout' must be in [0, 1)")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.max_grad_norm < 0:
            raise UnlearnError("hyperparameters 'warmup_steps', 'weight_decay', 'max_grad_norm' must be >= 0")


def check_finite(hparams: Any) -> None:
    """Raise UnlearnError for the first numeric field (or list item) of the dataclass `hparams` that is NaN or
    infinite: no loss, schedule or clipping works with one, and JSON cannot record it."""
    for field in fields(hparams):
        value = getattr(hparams, field.name)
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, (int, float)) and not isinstance(item, bool) and not math.isfinite(item):
                raise UnlearnError(f"hyperparameter '{field.name}' must be a finite number, got {item!r}")


def _positive(hparams: Any, *names: str) -> None:
    for name in names:
        if not getattr(hparams, name) > 0:
            raise UnlearnError(f"hyperparameter '{name}' must be > 0, got {getattr(hparams, name)!r}")


def check_reference_mode(value: str, allowed: Sequence[str] = REFERENCE_MODES) -> None:
    """Raise UnlearnError unless `value` is one of the allowed reference modes."""
    if value not in allowed:
        raise UnlearnError(f"hyperparameter 'reference' must be one of {', '.join(allowed)}; got {value!r}")


def field_names(hparams_cls: type) -> list[str]:
    return [f.name for f in fields(hparams_cls)]


def _unknown_key_error(key: str, hparams_cls: type, method_name: str, source: str) -> UnlearnError:
    known = ", ".join(field_names(hparams_cls))
    where = f"{source}: " if source else ""
    return UnlearnError(f"{where}unknown hyperparameter '{key}' for method '{method_name}' (known: {known})")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML value or a command-line string to the field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        is_none = value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", ""))
        if is_none and type(None) in args:
            return None
        return _coerce(value, inner[0], key)
    if origin in (tuple, list):
        items = value
        if isinstance(value, str):
            items = [part for part in (p.strip() for p in value.strip("[]()").split(",")) if part]
        if not isinstance(items, (list, tuple)):
            raise UnlearnError(f"hyperparameter '{key}' expects a list, got {value!r}")
        item_type = args[0] if args else str
        converted = [_coerce(item, item_type, key) for item in items]
        return tuple(converted) if origin is tuple else converted
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise UnlearnError(f"hyperparameter '{key}' expects true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise UnlearnError(f"hyperparameter '{key}' expects an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            raise UnlearnError(f"hyperparameter '{key}' expects an integer, got {value!r}") from None
        if not number.is_integer():
            raise UnlearnError(f"hyperparameter '{key}' expects an integer, got {value!r}")
        return int(number)
    if annotation is float:
        if isinstance(value, bool):
            raise UnlearnError(f"hyperparameter '{key}' expects a number, got {value!r}")
        try:
            return float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise UnlearnError(f"hyperparameter '{key}' expects a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise UnlearnError(f"hyperparameter '{key}' expects a string, got {value!r}")
        return str(value)
    return value


def apply_overrides(hparams: Any, values: Mapping[str, Any], method_name: str, source: str = "") -> Any:
    """Return a copy of the dataclass `hparams` with `values` applied (names checked, types converted)."""
    hints = typing.get_type_hints(type(hparams))
    changes = {}
    for key, value in values.items():
        if key not in hints or key not in field_names(type(hparams)):
            raise _unknown_key_error(str(key), type(hparams), method_name, source)
        changes[key] = _coerce(value, hints[key], key)
    return dataclasses.replace(hparams, **changes)


def parse_set_options(items: Sequence[str]) -> dict[str, str]:
    """Parse `key=value` strings (the `--set` options) into a dict; a malformed item is an UnlearnError."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UnlearnError(f"--set expects key=value, got {item!r}")
        values[key.strip()] = value.strip()
    return values


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML file holding a flat mapping of hyperparameters (safe loader only)."""
    import yaml

    if not os.path.isfile(path):
        raise UnlearnError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UnlearnError(f"{path}: malformed YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UnlearnError(f"{path}: expected a mapping of hyperparameter: value, found {type(data).__name__}")
    return data


def resolve_hparams(
    method_cls: type,
    preset: str | None = None,
    config: str | os.PathLike | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> Any:
    """Build the method's hyperparameters: dataclass defaults < `preset` < `config` (YAML path or dict) < `overrides`.

    `overrides` is a dict or a list of `key=value` strings. Unknown names and bad values raise UnlearnError.
    """
    name = getattr(method_cls, "name", method_cls.__name__)
    hparams = method_cls.Hparams()
    if preset:
        presets = getattr(method_cls, "presets", {}) or {}
        if preset not in presets:
            known = ", ".join(sorted(presets)) or "none"
            raise UnlearnError(f"unknown preset '{preset}' for method '{name}' (known: {known})")
        hparams = apply_overrides(hparams, presets[preset], name, source=f"preset {preset}")
    if config is not None:
        if isinstance(config, Mapping):
            hparams = apply_overrides(hparams, config, name)
        else:
            hparams = apply_overrides(hparams, load_config_file(config), name, source=str(config))
    if overrides:
        if not isinstance(overrides, Mapping):
            overrides = parse_set_options(overrides)
        hparams = apply_overrides(hparams, overrides, name, source="--set")
    hparams.check()
    return hparams

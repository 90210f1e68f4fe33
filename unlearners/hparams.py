"""Hyperparameters: one dataclass per method, built from defaults < preset < YAML file < `key=value` overrides.

Every method's dataclass extends `TrainHparams` (the optimisation and LoRA settings every method shares) with the
fields of its own loss. Defaults are starting values for the project's tiny world (a ~1M-parameter Llama trained from
scratch); each method also names a `"7b"` preset with values from its paper for 7-8B models. A field's bounds are
declared with it (`beta: float = positive(0.1)`) and checked by `TrainHparams.check()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from unlearners.errors import UnlearnError, first_line

REFERENCE_MODES = ("auto", "cached", "live", "adapter")
UNCACHED_REFERENCE_MODES = ("auto", "live", "adapter")  # of a method that needs the reference's full outputs

# gamma, the weight the RESTOR code (k1rezaei/restor@15292e58, unlearning/unlearn/{GA,KL,NPO}.py) puts on one of
# the two terms of GA+FT, KL+FT and NPO; used by the methods' "paper" presets. The official code takes it from its
# trainer arguments (`BaseTrainer(gamma=...)`) and neither the code nor its README states the value the paper
# ran; the SOUL code it builds on (OPTML-Group/SOUL, src/exec/unlearn_model.py) defaults gamma to 0 for GA+FT and
# NPO and has no KL+FT entry, and KL+FT with gamma = 0 would not unlearn at all. 1.0 weighs the two terms equally.
RESTOR_GAMMA = 1.0

# The "7b" settings that GA, GradDiff, KL, NPO, SimNPO and the task vector share (each adds or changes its own
# fields): the TOFU-style run these methods are usually given on 7-8B models, effective batch 32 (4 x 8
# accumulation), linear schedule with 10 % warm-up, weight decay 0.01, 512 tokens, learning rate 1e-5, 5 epochs.
TOFU_7B: Mapping[str, Any] = types.MappingProxyType({
    "learning_rate": 1e-5, "num_epochs": 5, "per_device_batch_size": 4, "gradient_accumulation_steps": 8,
    "max_length": 512, "lr_scheduler_type": "linear", "warmup_steps": 0.1, "weight_decay": 0.01,
})


# ---------------------------------------------------------------- bounds, declared with the fields
#
# A field's bounds live in its metadata, e.g. `beta: float = positive(0.1)`, and `check_bounds` checks every
# field of a dataclass against them: no hand-written check() for a range. A subclass that only changes a field's
# default (`learning_rate: float = 2e-5`) keeps the bounds the field was declared with.


def bounded(default: Any, low: float | None = None, high: float | None = None, *, low_inclusive: bool = True,
            high_inclusive: bool = True, choices: Sequence[str] | None = None) -> Any:
    """A dataclass field with `default` whose value must lie between `low` and `high` (either may be None) and, for
    `choices`, be one of them."""
    metadata = {"low": low, "high": high, "low_inclusive": low_inclusive, "high_inclusive": high_inclusive,
                "choices": tuple(choices) if choices is not None else None}
    return dataclasses.field(default=default, metadata={"bounds": metadata})


def positive(default: float) -> Any:
    """A field that must be > 0."""
    return bounded(default, 0, low_inclusive=False)


def at_least(default: float, low: float) -> Any:
    """A field that must be >= `low`."""
    return bounded(default, low)


def non_negative(default: float) -> Any:
    """A field that must be >= 0."""
    return bounded(default, 0)


def in_range(default: float, low: float, high: float, *, high_inclusive: bool = True) -> Any:
    """A field that must be in [low, high] (or [low, high) with `high_inclusive=False`)."""
    return bounded(default, low, high, high_inclusive=high_inclusive)


def one_of(default: str, choices: Sequence[str]) -> Any:
    """A field whose value must be one of `choices`."""
    return bounded(default, choices=choices)


def field_bounds(cls: type, name: str) -> dict[str, Any] | None:
    """The bounds of field `name` of the dataclass `cls`: those of the nearest class in its MRO that declared any."""
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and "bounds" in declared.metadata:
            return declared.metadata["bounds"]
    return None


def bound_error(name: str, value: Any, bounds: Mapping[str, Any]) -> str | None:
    """Why `value` breaks `bounds` (one line naming the field and the bound), or None when it keeps them."""
    choices = bounds.get("choices")
    if choices is not None:
        return None if value in choices else (
            f"hyperparameter '{name}' must be one of {', '.join(choices)}; got {value!r}")
    low, high = bounds.get("low"), bounds.get("high")
    low_inclusive, high_inclusive = bounds.get("low_inclusive", True), bounds.get("high_inclusive", True)
    low_ok = low is None or (value >= low if low_inclusive else value > low)
    high_ok = high is None or (value <= high if high_inclusive else value < high)
    if low_ok and high_ok:
        return None
    if low is not None and high is not None:
        bound = f"in {'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
    elif low is not None:
        bound = f"{'>=' if low_inclusive else '>'} {low:g}"
    else:
        bound = f"{'<=' if high_inclusive else '<'} {high:g}"
    return f"hyperparameter '{name}' must be {bound}, got {value!r}"


def check_bounds(hparams: Any) -> None:
    """Raise UnlearnError for the first field of the dataclass `hparams` outside the bounds its metadata declares."""
    for field in fields(hparams):
        bounds = field_bounds(type(hparams), field.name)
        if bounds is not None:
            problem = bound_error(field.name, getattr(hparams, field.name), bounds)
            if problem:
                raise UnlearnError(problem)


@dataclass
class TrainHparams:
    """Settings shared by every method: optimiser, schedule, batch shape, LoRA adapter."""

    learning_rate: float = positive(5e-4)
    num_epochs: float = positive(5.0)
    per_device_batch_size: int = positive(8)
    gradient_accumulation_steps: int = positive(1)
    max_length: int = at_least(512, 2)  # documents longer than this are cut into consecutive windows
    lr_scheduler_type: str = "constant"
    warmup_steps: float = non_negative(0.0)  # < 1: a fraction of the steps, >= 1: a number of steps
    weight_decay: float = non_negative(0.0)
    max_grad_norm: float = non_negative(1.0)
    optim: str = "adamw_torch"
    lora_r: int = positive(8)
    lora_alpha: int = positive(16)
    lora_dropout: float = in_range(0.0, 0, 1, high_inclusive=False)

    def check(self) -> None:
        """Raise UnlearnError for values that cannot work: a non-finite number, a value outside its field's bounds.
        A subclass with a rule that involves several fields extends it and calls super().check() first."""
        check_finite(self)
        check_bounds(self)


def first_non_finite(settings: Any) -> tuple[str, float] | None:
    """(field name, value) of the first numeric field (or list item) of the dataclass `settings` that is NaN or
    infinite, else None."""
    for field in fields(settings):
        value = getattr(settings, field.name)
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, (int, float)) and not isinstance(item, bool) and not math.isfinite(item):
                return field.name, item
    return None


def check_finite(hparams: Any) -> None:
    """Raise UnlearnError for the first numeric field (or list item) of the dataclass `hparams` that is NaN or
    infinite: no loss, schedule or clipping works with one, and JSON cannot record it."""
    found = first_non_finite(hparams)
    if found:
        raise UnlearnError(f"hyperparameter '{found[0]}' must be a finite number, got {found[1]!r}")


def check_reference_mode(value: str, allowed: Sequence[str] = REFERENCE_MODES) -> None:
    """Raise UnlearnError unless `value` is one of the allowed reference modes."""
    problem = bound_error("reference", value, {"choices": tuple(allowed)})
    if problem:
        raise UnlearnError(problem)


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

    if not os.path.isfile(path):
        raise UnlearnError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UnlearnError(f"{path}: malformed YAML{where}") from None
    except UnicodeDecodeError:
        raise UnlearnError(f"{path}: not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UnlearnError(f"{path}: expected a mapping of hyperparameter: value, found {type(data).__name__}")
    return data


def _apply_config_file(hparams: Any, path: str | os.PathLike, method_name: str) -> Any:
    """`apply_overrides` of the values in the YAML file `path`; an unknown name, a value of the wrong type or a
    non-finite number is an UnlearnError naming the file (the final check would not know where it came from)."""
    values = load_config_file(path)
    try:
        updated = apply_overrides(hparams, values, method_name)
        check_finite(updated)  # defaults and presets are finite: a NaN or infinity here came from the file
    except UnlearnError as err:
        raise UnlearnError(f"{path}: {err}") from None
    return updated


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
            hparams = _apply_config_file(hparams, config, name)
    if overrides:
        if not isinstance(overrides, Mapping):
            overrides = parse_set_options(overrides)
        hparams = apply_overrides(hparams, overrides, name, source="--set")
    hparams.check()
    return hparams


# ---------------------------------------------------------------- transformers.TrainingArguments pass-through

# TrainingArguments fields a run sets itself, with where they come from; passing one through is refused.
UNLEARN_CONTROLLED = {
    **{name: "a hyperparameter of the method (--set/--config)" for name in (
        "learning_rate", "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
        "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps", "warmup_ratio", "weight_decay",
        "max_grad_norm", "optim")},
    "output_dir": "the run's work folder, beside --out", "overwrite_output_dir": "--overwrite",
    "seed": "--seed", "data_seed": "--seed", "max_steps": "--max-steps", "save_steps": "--save-steps",
    "save_strategy": "--save-steps", "resume_from_checkpoint": "--resume", "bf16": "--precision",
    "fp16": "--precision", "remove_unused_columns": "the forget/retain batches need every column",
    "logging_nan_inf_filter": "a non-finite loss stops the run",
}


def trainer_arg_fields() -> dict[str, Any]:
    """The init fields of `transformers.TrainingArguments`, name -> type annotation."""
    from transformers import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    return {field.name: hints.get(field.name, Any) for field in fields(TrainingArguments) if field.init}


def _trainer_value(key: str, value: Any, annotation: Any, where: str) -> Any:
    """A command-line string or YAML value typed for a TrainingArguments field (numbers and booleans from text)."""

    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            pass
    allowed = [a for a in (typing.get_args(annotation) or (annotation,)) if a is not type(None)]
    if isinstance(value, str) and str not in allowed:
        for kind in (bool, int, float):
            if kind in allowed:
                try:
                    return _coerce(value, kind, key)
                except UnlearnError:
                    continue
        if allowed and all(a in (bool, int, float) for a in allowed):
            raise UnlearnError(f"{where}: {key} expects {' or '.join(a.__name__ for a in allowed)}, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and float in allowed and int not in allowed:
        return float(value)
    return value


def parse_trainer_args(
    file: str | os.PathLike | None = None,
    items: Sequence[str] = (),
    controlled: Mapping[str, str] = UNLEARN_CONTROLLED,
    mapping: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """TrainingArguments settings from `mapping`, a YAML mapping `file` (`--trainer-args`), then `KEY=VALUE`
    `items` (`--trainer-arg`, which win), typed for their fields. Names that are not TrainingArguments fields, and fields in
    `controlled` (set by the run from its own options), are an UnlearnError of one line."""
    known = trainer_arg_fields()
    values: list[tuple[str, Any, str]] = [(str(key), value, "trainer_args") for key, value in (mapping or {}).items()]
    if file is not None:
        where = str(file)
        data = load_config_file(file)
        values += [(str(key), value, where) for key, value in data.items()]
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UnlearnError(f"--trainer-arg expects KEY=VALUE, got {item!r}")
        values.append((key.strip(), value.strip(), "--trainer-arg"))
    settings: dict[str, Any] = {}
    for key, value, where in values:
        if key not in known:
            raise UnlearnError(f"{where}: {key!r} is not a field of transformers.TrainingArguments")
        if key in controlled:
            raise UnlearnError(f"{where}: {key!r} is set by the run itself ({controlled[key]}), not as a trainer argument")
        settings[key] = _trainer_value(key, value, known[key], where)
    return settings


def check_reporting(settings: Mapping[str, Any]) -> None:
    """UnlearnError when `report_to` names an integration that is unknown or not installed (checked before any
    model is loaded)."""
    report_to = settings.get("report_to")
    if report_to is None:
        return
    from transformers.integrations import get_reporting_integration_callbacks

    names = [report_to] if isinstance(report_to, str) else list(report_to)
    names = [name for name in names if name not in ("none", "all")]
    try:
        for callback in get_reporting_integration_callbacks(names):
            callback()  # a callback whose package is missing raises here (no run is started)
    except (ValueError, RuntimeError, ImportError) as err:
        raise UnlearnError(f"report_to {report_to!r}: {first_line(err)}") from None


# ---------------------------------------------------------------- the settings of a resumable run


def check_resume_settings(
    work_dir: str | os.PathLike, settings: Mapping[str, Any], resume: bool, filename: str = "unlearn_settings.json"
) -> str | None:
    """Guard a resumable run's settings: a fresh run records `settings` as `work_dir/filename` (atomically); a
    resumed one compares them with the recorded ones. Returns None when the run may go on, else the reason it may
    not, as one line naming the folder and what changed (the caller raises it as its own error).

    Shared by `run_unlearning` and restor-bench's corruption runs. Nested mappings (hyperparameters, a recipe) are
    compared key by key, so the reason names e.g. `hparams.learning_rate`.
    """
    work_dir = Path(work_dir)
    path = work_dir / filename
    current = json.loads(json.dumps(_jsonable(dict(settings)), allow_nan=False))
    if not resume:
        work_dir.mkdir(parents=True, exist_ok=True)
        _write_text_atomically(path, json.dumps(current, indent=2, sort_keys=True, allow_nan=False) + "\n")
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return (f"{work_dir}: cannot resume: the interrupted run recorded no settings ({filename}), so they cannot "
                "be checked; pass --overwrite to start over")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{path}: unreadable settings record; pass --overwrite to start over"
    changes = _setting_changes(saved if isinstance(saved, dict) else {}, current)
    if not changes:
        return None
    return (f"{work_dir}: cannot resume with different settings ({'; '.join(changes)}); use the original ones or "
            "--overwrite to start over")


def _setting_changes(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """`key: old -> new` (or `key changed` for long values) for every setting that differs."""
    changes = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _setting_changes(old, new, f"{prefix}{key}.")
            continue
        shown = (json.dumps(old), json.dumps(new))
        changes.append(f"{prefix}{key}: {shown[0]} -> {shown[1]}" if max(map(len, shown)) <= 40
                       else f"{prefix}{key} changed")
    return changes


def _write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary sibling and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _jsonable(value: Any) -> Any:
    """Plain JSON values (tuples -> lists, tensors/numbers -> floats, unknown objects -> str). JSON has no NaN or
    infinity: a non-finite measured number (a logged gradient norm, say) is written as null."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        try:
            return _jsonable(value.item())
        except (ValueError, RuntimeError):
            pass
    return str(value)

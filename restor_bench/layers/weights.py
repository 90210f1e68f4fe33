"""Where the weights moved: per layer and module, the size of the corruption's change (corrupted - clean), of the
unlearning's change (unlearned - corrupted), and the cosine between the two.

A cosine near -1 means the unlearning moved the module back along the corruption's direction; near 0, that it
moved elsewhere. Tensors are streamed from the safetensors files with `safe_open`, a block of rows at a time, so
three checkpoints are never in memory together; sums run in float64.

A checkpoint is a Hugging Face model folder (safetensors, one file or shards with `model.safetensors.index.json`)
or a peft adapter folder (`adapter_config.json` + `adapter_model.safetensors`) whose base is read from
`base_model_name_or_path` (itself a folder or another adapter folder). A plain LoRA adapter on linear layers (what
`restor-bench corrupt --lora --keep-adapter` keeps in `OUT/adapter/`) is merged tensor by tensor:
W + (lora_alpha / r) * B @ A, as peft's `merge_and_unload` does. Any other adapter (DoRA, rsLoRA, rank or alpha
patterns, modules_to_save, ...) is merged by peft itself in memory (one model at a time). The project's own
`corrupt --lora` and `unlearn --lora` write merged checkpoints, which are ordinary model folders.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError
from restor_bench.io import read_json
from unlearners.errors import first_line

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
CHUNK_ELEMENTS = 1 << 22  # rows are read in blocks of about this many elements
# config.json fields that must agree between the three models (when present)
ARCHITECTURE_FIELDS = ("model_type", "num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size")
_LAYER_NAME = re.compile(r"^(?:.*\.)?(?:layers|h|blocks|layer)\.(?P<index>\d+)\.(?P<module>.+)$")
_SUFFIXES = (".weight", ".bias")
_PEFT_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
_MAX_ADAPTER_DEPTH = 8


# ---------------------------------------------------------------------------------------------------------------
# Tensor sources


class TensorSource:
    """The tensors of one checkpoint, read a block of rows at a time (as float64)."""

    path: Path
    config: dict[str, Any]

    def names(self) -> list[str]:
        raise NotImplementedError

    def shape(self, name: str) -> tuple[int, ...]:
        raise NotImplementedError

    def rows(self, name: str, start: int, stop: int):
        """Rows start..stop (first dimension) of tensor `name` as a float64 torch tensor (the whole of a scalar)."""
        raise NotImplementedError


class SafetensorsSource(TensorSource):
    """A model folder: `model.safetensors`, or the shards listed by `model.safetensors.index.json`."""

    def __init__(self, path: Path, config: dict[str, Any]):
        from safetensors import SafetensorError, safe_open

        self.path, self.config = path, config
        index = path / SHARD_INDEX
        if index.is_file():

            weight_map = read_json(index, "safetensors shard index").get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise InputError(f"{index}: no weight_map")
            files = sorted(set(weight_map.values()))
        else:
            files = sorted(p.name for p in path.glob("*.safetensors") if p.name != ADAPTER_WEIGHTS)
        self._handles: dict[str, Any] = {}
        self._where: dict[str, Any] = {}
        for file_name in files:
            file_path = path / file_name
            if not file_path.is_file():
                raise InputError(f"{file_path}: safetensors shard listed in {SHARD_INDEX} is missing")
            try:
                handle = safe_open(str(file_path), framework="pt")
            except (SafetensorError, OSError) as err:
                raise InputError(f"{file_path}: not a readable safetensors file ({first_line(err)})") from None
            self._handles[file_name] = handle
            names = handle.keys()
            for name in names:
                self._where[name] = handle

    def names(self) -> list[str]:
        return sorted(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._where[name].get_slice(name).get_shape())

    def rows(self, name: str, start: int, stop: int):
        import torch

        handle = self._where[name]
        if not self.shape(name):
            return handle.get_tensor(name).to(torch.float64)
        return handle.get_slice(name)[start:stop].to(torch.float64)


class NotPlainLora(Exception):
    """The adapter holds more than lora_A / lora_B pairs on the base's weights; peft must merge it."""


class LoraSource(TensorSource):
    """A plain LoRA adapter merged onto its base tensor by tensor: W + (alpha / r) * B @ A."""

    def __init__(self, path: Path, adapter_config: dict[str, Any], base: TensorSource):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        self.path, self.base, self.config = path, base, base.config
        try:
            weights = load_file(str(path / ADAPTER_WEIGHTS))
        except (SafetensorError, OSError) as err:
            raise InputError(
                f"{path / ADAPTER_WEIGHTS}: not a readable safetensors file ({first_line(err)})"
            ) from None
        parts: dict[str, dict[str, Any]] = {}
        for key, tensor in weights.items():
            match = _LORA_KEY.match(key)
            module = match["module"] if match else ""
            if not match or not module.startswith(_PEFT_PREFIX):
                raise NotPlainLora(key)
            parts.setdefault(module[len(_PEFT_PREFIX):] + ".weight", {})[match["part"]] = tensor
        base_names = set(base.names())
        self._deltas: dict[str, tuple[Any, Any, float]] = {}
        for name, pair in parts.items():
            if set(pair) != {"A", "B"} or name not in base_names or len(base.shape(name)) != 2:
                raise NotPlainLora(name)
            rank = pair["A"].shape[0]
            self._deltas[name] = (pair["B"], pair["A"], float(adapter_config["lora_alpha"]) / rank)

    def names(self) -> list[str]:
        return self.base.names()

    def shape(self, name: str) -> tuple[int, ...]:
        return self.base.shape(name)

    def rows(self, name: str, start: int, stop: int):
        import torch

        block = self.base.rows(name, start, stop)
        if name in self._deltas:
            lora_b, lora_a, scaling = self._deltas[name]
            block = block + scaling * (lora_b[start:stop].to(torch.float64) @ lora_a.to(torch.float64))
        return block


class StateDictSource(TensorSource):
    """Tensors held in memory (an adapter merged by peft); only the names of the base checkpoint are listed."""

    def __init__(self, path: Path, state_dict: dict[str, Any], names: list[str], config: dict[str, Any]):
        self.path, self.config = path, config
        missing = [name for name in names if name not in state_dict]
        if missing:
            raise InputError(f"{path}: the merged model has no tensor {missing[0]!r} of its base checkpoint")
        self._tensors = {name: state_dict[name] for name in names}

    def names(self) -> list[str]:
        return sorted(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def rows(self, name: str, start: int, stop: int):
        import torch

        tensor = self._tensors[name]
        return (tensor if tensor.dim() == 0 else tensor[start:stop]).detach().to(torch.float64)


def _has_model_weights(folder: Path) -> bool:
    return (folder / SHARD_INDEX).is_file() or any(p.name != ADAPTER_WEIGHTS for p in folder.glob("*.safetensors"))


def is_adapter_folder(folder: Path) -> bool:
    """A peft adapter folder without model weights of its own."""
    return (folder / ADAPTER_CONFIG).is_file() and not _has_model_weights(folder)


def check_checkpoint_folder(path: str | Path, role: str) -> Path:
    """`path` as a Path if it is a model folder or a peft adapter folder; else an InputError naming it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {role} model folder not found")
    if not path.is_dir():
        raise InputError(f"{path}: {role} model is a file; expected a model folder or a peft adapter folder")
    if is_adapter_folder(path):
        if not (path / ADAPTER_WEIGHTS).is_file():
            raise InputError(f"{path}: {role} adapter folder has no {ADAPTER_WEIGHTS} (safetensors are required)")
        return path
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: {role} model folder has no config.json (not a Hugging Face model folder)")
    if not _has_model_weights(path):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise InputError(f"{path}: {role} model has only pickle weights (.bin/.pt); safetensors are required")
        raise InputError(f"{path}: {role} model folder holds no safetensors weights")
    return path


def read_adapter_config(folder: Path) -> dict[str, Any]:
    config = read_json(folder / ADAPTER_CONFIG, "peft adapter config")
    if not isinstance(config, dict):
        raise InputError(f"{folder / ADAPTER_CONFIG}: expected a JSON object")
    return config


def adapter_base(folder: Path, role: str) -> Path:
    """The base model folder of a peft adapter: `base_model_name_or_path`, as given or relative to the adapter."""
    config = read_adapter_config(folder)
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise InputError(f"{folder / ADAPTER_CONFIG}: no base_model_name_or_path to merge the {role} adapter onto")
    for candidate in (Path(base).expanduser(), folder / base):
        if candidate.is_dir():
            return check_checkpoint_folder(candidate, f"{role} adapter's base")
    raise InputError(
        f"{folder / ADAPTER_CONFIG}: base model {base!r} of the {role} adapter is not a local folder "
        "(merge the adapter into a checkpoint, or fix base_model_name_or_path)"
    )


def is_plain_lora(config: dict[str, Any]) -> bool:
    """An adapter that `LoraSource` merges exactly: LoRA on linear layers, scaling alpha / r, nothing else."""
    plain_values = {
        "peft_type": "LORA", "use_dora": False, "use_rslora": False, "fan_in_fan_out": False, "lora_bias": False,
    }
    if any(config.get(key, value) != value for key, value in plain_values.items()):
        return False
    empty = ("rank_pattern", "alpha_pattern", "modules_to_save", "trainable_token_indices", "layer_replication",
             "target_parameters")
    return not any(config.get(key) for key in empty) and isinstance(config.get("lora_alpha"), (int, float))


def model_config(folder: Path, role: str, depth: int = 0) -> dict[str, Any]:
    """config.json of a model folder, or of an adapter's base."""

    if is_adapter_folder(folder):
        if depth > _MAX_ADAPTER_DEPTH:
            raise InputError(f"{folder}: adapters stacked more than {_MAX_ADAPTER_DEPTH} deep")
        return model_config(adapter_base(folder, role), role, depth + 1)
    config = read_json(folder / "config.json", "model config")
    if not isinstance(config, dict):
        raise InputError(f"{folder / 'config.json'}: expected a JSON object")
    return config


def open_source(folder: str | Path, role: str, trust_remote_code: bool = False, depth: int = 0) -> TensorSource:
    """The tensors of a checked model folder or adapter folder (adapters merged onto their base)."""
    folder = check_checkpoint_folder(folder, role)
    if not is_adapter_folder(folder):
        return SafetensorsSource(folder, model_config(folder, role))
    if depth > _MAX_ADAPTER_DEPTH:
        raise InputError(f"{folder}: adapters stacked more than {_MAX_ADAPTER_DEPTH} deep")
    base_folder = adapter_base(folder, role)
    base = open_source(base_folder, role, trust_remote_code, depth + 1)
    config = read_adapter_config(folder)
    if is_plain_lora(config):
        try:
            return LoraSource(folder, config, base)
        except NotPlainLora:
            pass
    model = load_model(folder, role, dtype="float32", trust_remote_code=trust_remote_code)
    return StateDictSource(folder, model.state_dict(), base.names(), base.config)


def load_model(folder: str | Path, role: str, dtype: str = "float32", trust_remote_code: bool = False, depth: int = 0):
    """The causal LM of a model folder, or of an adapter folder merged onto its base by peft (`merge_and_unload`)."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = check_checkpoint_folder(folder, role)
    if depth > _MAX_ADAPTER_DEPTH:
        raise InputError(f"{folder}: adapters stacked more than {_MAX_ADAPTER_DEPTH} deep")
    if not is_adapter_folder(folder):
        try:
            return AutoModelForCausalLM.from_pretrained(
                str(folder), use_safetensors=True, trust_remote_code=trust_remote_code, dtype=getattr(torch, dtype)
            )
        except (OSError, ValueError) as err:
            raise InputError(f"{folder}: could not load the {role} model: {first_line(err)}") from None
    from peft import PeftModel
    from safetensors import SafetensorError

    base = load_model(adapter_base(folder, role), role, dtype, trust_remote_code, depth + 1)
    try:
        return PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise InputError(f"{folder}: could not merge the {role} adapter onto its base: {first_line(err)}") from None


def tokenizer_folder(folder: str | Path, role: str, depth: int = 0) -> Path:
    """Where the tokenizer of a model folder lies: the folder itself, or for an adapter without one, its base's."""
    folder = Path(folder)
    has_tokenizer = (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()
    if has_tokenizer or not is_adapter_folder(folder) or depth > _MAX_ADAPTER_DEPTH:
        return folder
    return tokenizer_folder(adapter_base(folder, role), role, depth + 1)


def check_same_architecture(reference: TensorSource, other: TensorSource, reference_role: str, role: str) -> None:
    """InputError unless `other` has the config fields, tensor names and shapes of `reference`."""
    for key in ARCHITECTURE_FIELDS:
        mine, theirs = reference.config.get(key), other.config.get(key)
        if mine is not None and theirs is not None and mine != theirs:
            raise InputError(
                f"{other.path}: {role} model's architecture differs from the {reference_role} model "
                f"({reference.path}): {key} {theirs!r} vs {mine!r}"
            )
    names, other_names = reference.names(), set(other.names())
    missing = [name for name in names if name not in other_names]
    extra = sorted(other_names - set(names))
    if missing or extra:
        what = f"lacks tensor {missing[0]!r}" if missing else f"has an extra tensor {extra[0]!r}"
        raise InputError(
            f"{other.path}: {role} model's architecture differs from the {reference_role} model ({reference.path}): "
            f"it {what}"
        )
    for name in names:
        if reference.shape(name) != other.shape(name):
            raise InputError(
                f"{other.path}: {role} model's architecture differs from the {reference_role} model "
                f"({reference.path}): tensor {name!r} has shape {list(other.shape(name))} vs "
                f"{list(reference.shape(name))}"
            )


# ---------------------------------------------------------------------------------------------------------------
# Grouping tensors into modules


def module_of(name: str) -> tuple[str, int | None, str]:
    """(group, layer, module) of a tensor name: the name without .weight/.bias, the decoder layer's index in the
    checkpoint's numbering (None outside the layers) and the module inside the layer (e.g. "self_attn.q_proj")."""
    group = name
    for suffix in _SUFFIXES:
        if group.endswith(suffix):
            group = group[: -len(suffix)]
            break
    match = _LAYER_NAME.match(group)
    if match:
        return group, int(match["index"]), match["module"]
    return group, None, group


def module_kind(module: str) -> str:
    """A coarse type: attention, mlp, norm, embeddings, head or other."""
    last = module.lower().rsplit(".", 1)[-1]
    lowered = module.lower()
    if "norm" in last or last.startswith("ln"):
        return "norm"
    if "embed" in last or last in ("wte", "wpe"):
        return "embeddings" if last != "embed_out" else "head"
    if last == "lm_head":
        return "head"
    if "attn" in lowered or "attention" in lowered or last in ("q_proj", "k_proj", "v_proj", "o_proj"):
        return "attention"
    if "mlp" in lowered or "feed_forward" in lowered or last in ("gate_proj", "up_proj", "down_proj"):
        return "mlp"
    return "other"


@dataclass
class ChangeSums:
    """Running sums over the parameters of one group (float64)."""

    parameters: int = 0
    clean_squares: float = 0.0
    corruption_squares: float = 0.0
    unlearning_squares: float = 0.0
    dot: float = 0.0

    def add(self, other: ChangeSums) -> None:
        self.parameters += other.parameters
        self.clean_squares += other.clean_squares
        self.corruption_squares += other.corruption_squares
        self.unlearning_squares += other.unlearning_squares
        self.dot += other.dot

    def as_row(self, with_unlearned: bool) -> dict[str, Any]:
        clean_norm = math.sqrt(self.clean_squares)
        corruption_norm = math.sqrt(self.corruption_squares)
        row = {
            "parameters": self.parameters,
            "clean_norm": clean_norm,
            "corruption_norm": corruption_norm,
            "corruption_relative": corruption_norm / clean_norm if clean_norm > 0 else None,
        }
        if with_unlearned:
            unlearning_norm = math.sqrt(self.unlearning_squares)
            row["unlearning_norm"] = unlearning_norm
            row["unlearning_relative"] = unlearning_norm / clean_norm if clean_norm > 0 else None
            product = corruption_norm * unlearning_norm
            row["cosine"] = self.dot / product if product > 0 else None
        return row


def _row_blocks(shape: tuple[int, ...]) -> Iterator[tuple[int, int]]:
    if not shape:
        yield 0, 1
        return
    per_row = max(1, math.prod(shape[1:]))
    step = max(1, CHUNK_ELEMENTS // per_row)
    for start in range(0, shape[0], step):
        yield start, min(start + step, shape[0])


def tensor_sums(name: str, clean: TensorSource, corrupted: TensorSource, unlearned: TensorSource | None) -> ChangeSums:
    """The sums of one tensor, read in blocks of rows from each source."""
    sums = ChangeSums()
    for start, stop in _row_blocks(clean.shape(name)):
        clean_block = clean.rows(name, start, stop)
        corrupted_block = corrupted.rows(name, start, stop)
        corruption = corrupted_block - clean_block
        sums.parameters += clean_block.numel()
        sums.clean_squares += float((clean_block * clean_block).sum())
        sums.corruption_squares += float((corruption * corruption).sum())
        if unlearned is not None:
            unlearning = unlearned.rows(name, start, stop) - corrupted_block
            sums.unlearning_squares += float((unlearning * unlearning).sum())
            sums.dot += float((corruption * unlearning).sum())
    return sums


@dataclass
class WeightReport:
    """Rows per module (in layer order), totals per layer and for the whole model."""

    modules: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"modules": self.modules, "layers": self.layers, "total": self.total}


def _group_order(group: str, layer: int | None, module: str, first_seen: dict[str, int]) -> tuple:
    # tensors before the layers (embeddings), the layers in order, then what follows them (final norm, head)
    if layer is not None:
        return (1, layer, module)
    after_layers = module_kind(module) in ("norm", "head")
    return (2 if after_layers else 0, first_seen[group], group)


def weight_changes(
    clean: TensorSource,
    corrupted: TensorSource,
    unlearned: TensorSource | None = None,
    progress: Callable[[str], None] | None = None,
) -> WeightReport:
    """Frobenius norms of corrupted - clean and unlearned - corrupted, and their cosine, per module, per layer and
    in total. Sources must share names and shapes (`check_same_architecture`)."""
    groups: dict[str, ChangeSums] = {}
    places: dict[str, tuple[int | None, str]] = {}
    first_seen: dict[str, int] = {}
    for name in clean.names():
        group, layer, module = module_of(name)
        sums = tensor_sums(name, clean, corrupted, unlearned)
        groups.setdefault(group, ChangeSums()).add(sums)
        places[group] = (layer, module)
        first_seen.setdefault(group, len(first_seen))
        if progress is not None:
            progress(name)
    with_unlearned = unlearned is not None
    report = WeightReport()
    per_layer: dict[int, ChangeSums] = {}
    total = ChangeSums()
    for group in sorted(groups, key=lambda g: _group_order(g, *places[g], first_seen)):
        layer, module = places[group]
        sums = groups[group]
        row = {"name": group, "layer": layer, "module": module, "kind": module_kind(module)}
        report.modules.append({**row, **sums.as_row(with_unlearned)})
        if layer is not None:
            per_layer.setdefault(layer, ChangeSums()).add(sums)
        total.add(sums)
    report.layers = [{"layer": layer, **per_layer[layer].as_row(with_unlearned)} for layer in sorted(per_layer)]
    report.total = total.as_row(with_unlearned)
    return report


def describe_source(source: TensorSource) -> dict[str, Any]:
    """How a source was read, for the report."""
    if isinstance(source, LoraSource):
        return {"path": str(source.path), "kind": "lora adapter (merged tensor by tensor)",
                "base": describe_source(source.base)}
    if isinstance(source, StateDictSource):
        return {"path": str(source.path), "kind": "peft adapter (merged by peft)"}
    return {"path": str(source.path), "kind": "checkpoint"}

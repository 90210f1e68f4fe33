"""Helpers of the project's corruption and repair runs: checkpoint checks, safe loading, a causal-LM dataset of
documents and its collator, run-record facts. The Trainer run itself (TrainingArguments, work folder, resuming,
publishing the checkpoint) is `unlearners.training_run`, shared with the unlearning runs.

torch, transformers, datasets and peft are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from restor_bench import __version__
from restor_bench.errors import InputError
from restor_bench.io import read_json
from restor_bench.models.checkpoints import check_checkpoint_weights
from unlearners.errors import first_line

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")  # "name" or "org/name"


# ---------------------------------------------------------------- checkpoints


def check_checkpoint(model: str | os.PathLike, what: str = "checkpoint") -> str:
    """Check that `model` names a loadable causal-LM checkpoint; return it as a string.

    A local folder must hold `config.json` and safetensors weights. A name that is not a local folder is taken
    as a Hugging Face Hub id, which fails clearly when HF_HUB_OFFLINE=1.
    """
    model = str(model)
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"{path}: {what} folder has no config.json (not a Hugging Face model folder)")
        config = read_checkpoint_config(path)
        if not any(path.glob("*.safetensors")):
            if any(path.glob("*.bin")) or any(path.glob("*.pt")):
                raise InputError(f"{path}: {what} has only pickle weights (.bin/.pt); safetensors are required")
            raise InputError(f"{path}: {what} folder holds no model weights (*.safetensors)")
        check_checkpoint_weights(path)  # headers and, for a sharded checkpoint, every shard its index names
        check_architecture(path, config, what)
        return model
    if path.exists():
        raise InputError(f"{path}: {what} is a file; expected a model folder")
    if not _HUB_ID.match(model):
        raise InputError(f"{model}: {what} folder not found")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise InputError(f"{model}: no such {what} folder, and HF_HUB_OFFLINE=1 forbids downloading it from the hub")
    return model


def load_causal_lm(model: str, *, trust_remote_code: bool = False, dtype: Any = None):
    """Load (model, tokenizer) from a checked checkpoint: safetensors only, remote code only if asked.

    The tokenizer gets a pad token (its EOS token) when it has none.
    """
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(
            model, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=dtype
        )
    except (OSError, ValueError) as err:
        raise InputError(f"{model}: could not load the checkpoint: {first_line(err)}") from None
    return loaded, tokenizer


def load_tokenizer(model: str, *, trust_remote_code: bool = False):
    """The tokenizer of a checked checkpoint, with a pad token (its EOS token) when it has none."""
    from transformers import AutoTokenizer

    model = check_checkpoint(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise InputError(f"{model}: could not load the checkpoint's tokenizer: {first_line(err)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_architecture(path: Path, config: dict, what: str = "checkpoint") -> None:
    """InputError unless transformers can build a causal language model of the config's `model_type` (a config
    that brings its own code through `auto_map` is left to `--trust-remote-code`)."""
    if config.get("auto_map"):
        return
    from transformers import __version__ as transformers_version
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config.get("model_type")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise InputError(f"{path / 'config.json'}: {what} has model_type {model_type!r}, which transformers "
                         f"{transformers_version} cannot load as a causal language model")


def read_checkpoint_config(folder: str | os.PathLike) -> dict:
    """The `config.json` of a local checkpoint folder; InputError naming the file when it is missing, malformed or
    not a JSON object (transformers would fail on it with a TypeError)."""
    path = Path(folder) / "config.json"
    config = read_json(path, "model config")
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object of model settings, found {type(config).__name__}")
    return config


def checkpoint_config(model: str | os.PathLike) -> dict | None:
    """The `config.json` of a local checkpoint as a dict, or None when there is none (or it is not a JSON object)."""
    path = Path(model) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return config if isinstance(config, dict) else None


ARCHITECTURE_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
)


def same_architecture(config_a: dict | None, config_b: dict | None) -> bool:
    """True when two config dicts agree on the architecture keys (model type and sizes)."""
    if not config_a or not config_b:
        return False
    return all(config_a.get(key) == config_b.get(key) for key in ARCHITECTURE_KEYS)


# ---------------------------------------------------------------- data


def tokenize_documents(tokenizer, texts: list[str], max_length: int, *, add_eos: bool = True):
    """A `datasets.Dataset` with one causal-LM example per document (`input_ids`, `attention_mask`).

    Each document is tokenized with the tokenizer's special tokens, gets an EOS token appended (so the model
    learns where a document ends, as in continual pretraining) and is truncated to `max_length` tokens.
    """
    from datasets import Dataset

    if max_length < 2:
        raise InputError(f"max_length must be at least 2, got {max_length}")
    eos = tokenizer.eos_token_id if add_eos else None
    rows = {"input_ids": [], "attention_mask": []}
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    for ids in encoded:
        ids = list(ids)
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        ids = ids[:max_length]
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * len(ids))
    return Dataset.from_dict(rows)


def pack_documents(tokenizer, texts: list[str], block_size: int):
    """Documents joined and cut into blocks of `block_size` tokens, as LLaMA-Factory's `stage: pt` does.

    The paper corrupted with LLaMA-Factory continual pretraining (k1rezaei/restor@15292e58 corruption/README.md:
    `stage: pt`, `cutoff_len` left at LLaMA-Factory's default of 1,024); its pretraining preprocessor
    (hiyouga/LLaMA-Factory src/llamafactory/data/processors/pretrain.py, `preprocess_pretrain_dataset` with
    packing, on by default for `pt`) tokenizes each document WITHOUT special tokens, appends the EOS token,
    concatenates everything, drops the remainder shorter than one block, and cuts the rest into blocks.
    Returns a `datasets.Dataset` of full blocks (`input_ids`, `attention_mask`); an InputError when the
    documents do not fill one block.
    """
    from datasets import Dataset

    if block_size < 2:
        raise InputError(f"block size (max_length) must be at least 2, got {block_size}")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise InputError("packing needs a tokenizer with an EOS token (documents are separated by it)")
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    usable = len(stream) // block_size * block_size
    if usable == 0:
        raise InputError(
            f"packing: the documents hold {len(stream)} tokens, fewer than one block of {block_size}; "
            "lower max_length or turn packing off"
        )
    blocks = [stream[start : start + block_size] for start in range(0, usable, block_size)]
    return Dataset.from_dict({"input_ids": blocks, "attention_mask": [[1] * block_size for _ in blocks]})


def hold_out(dataset, val_size: float, seed: int):
    """(train, held_out): a random `val_size` share of the examples held out, as LLaMA-Factory's `val_size`
    does (`Dataset.train_test_split(test_size=val_size, seed=seed)`, which rounds the held-out count up).
    `val_size` 0 holds out nothing (held_out is None)."""
    if not val_size:
        return dataset, None
    if len(dataset) < 2:
        raise InputError(
            f"val_size {val_size}: {len(dataset)} training example(s) cannot be split into training and held-out parts"
        )
    split = dataset.train_test_split(test_size=val_size, seed=seed)
    return split["train"], split["test"]


@dataclass
class CausalLMCollator:
    """Pads a batch of `input_ids` on the right; labels are the inputs, -100 on padding.

    Padding is masked by position (attention mask), not by token id, so a pad token equal to EOS does not hide
    the real EOS tokens from the loss.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        import torch

        longest = max(len(feature["input_ids"]) for feature in features)
        if self.pad_to_multiple_of:
            multiple = self.pad_to_multiple_of
            longest = (longest + multiple - 1) // multiple * multiple
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
        labels = torch.full((len(features), longest), -100, dtype=torch.long)
        for row, feature in enumerate(features):
            ids = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
            labels[row, : len(ids)] = ids
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def count_tokens(dataset) -> int:
    """Number of (non-padding) tokens in a tokenized dataset."""
    return sum(len(ids) for ids in dataset["input_ids"])


def documents_sha256(texts: list[str]) -> str:
    """sha256 of the documents as a JSON list of strings (identifies the training data in run records)."""
    payload = json.dumps(list(texts), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


def mean_document_loss(model, tokenizer, texts: list[str], max_length: int = 512, batch_size: int = 8) -> float:
    """Mean per-token causal-LM loss of `model` on `texts` (same tokenization as training)."""
    import torch

    dataset = tokenize_documents(tokenizer, texts, max_length)
    collator = CausalLMCollator(pad_token_id=tokenizer.pad_token_id)
    device = next(model.parameters()).device
    total_loss, total_tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            batch = {key: value.to(device) for key, value in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            shift_logits = logits[:, :-1].float()
            shift_labels = batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), reduction="sum"
            )
            total_loss += loss.item()
            total_tokens += int((shift_labels != -100).sum())
    model.train(was_training)
    return total_loss / max(total_tokens, 1)


# ---------------------------------------------------------------- training setup


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) through transformers."""
    from transformers import set_seed

    set_seed(seed)


def bf16_available() -> bool:
    """True on a CUDA device that supports bfloat16."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


# ---------------------------------------------------------------- run records


def package_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a run depends on (for run records)."""
    versions = {"python": platform.python_version()}
    for name in ("restor-bench", "torch", "transformers", "peft", "accelerate", "datasets", "lm_eval"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "restor-bench" not in versions:
        versions["restor-bench"] = __version__
    return versions

"""Documents -> token windows -> paired forget/retain batches.

Each training item is one forget example (with its index, so cached per-example values can be looked up) paired
with one retain example. The retain set is walked in a seeded order that continues from epoch to epoch, so every
retain document is used when the retain set is larger than the forget set, and the pairing is reproducible (and
therefore identical after resuming from a checkpoint).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import torch


def documents_sha256(texts: Sequence[str]) -> str:
    """sha256 of the documents as `json.dumps(list_of_texts, ensure_ascii=False)` in UTF-8."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def tokenize_documents(tokenizer, texts: Sequence[str], max_length: int, add_eos: bool = True) -> list[list[int]]:
    """Token ids of each document (special tokens as the tokenizer adds them, then EOS, as in continual
    pretraining), cut into consecutive windows of at most `max_length` tokens.

    Windows with fewer than two tokens (nothing to predict) are dropped.
    """
    eos = tokenizer.eos_token_id if add_eos else None
    examples: list[list[int]] = []
    for text in texts:
        ids = list(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        for start in range(0, len(ids), max_length):
            window = ids[start : start + max_length]
            if len(window) >= 2:
                examples.append(window)
    return examples


class ForgetRetainDataset(torch.utils.data.Dataset):
    """Item i = {"forget": forget example i, "retain": a retain example} (retain cycled in a seeded order)."""

    def __init__(self, forget: list[list[int]], retain: list[list[int]] | None = None, seed: int = 0):
        self.forget = forget
        self.retain = retain or None
        self.epoch = 0
        self._retain_order: list[int] = []
        if self.retain:
            generator = torch.Generator().manual_seed(seed)
            self._retain_order = torch.randperm(len(self.retain), generator=generator).tolist()

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer at each epoch: the retain pairing moves on to the next retain documents."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.forget)

    def retain_index(self, index: int) -> int:
        position = (self.epoch * len(self.forget) + index) % len(self.retain)
        return self._retain_order[position]

    def __getitem__(self, index: int) -> dict:
        item = {"forget": {"input_ids": self.forget[index], "index": index}}
        if self.retain:
            retain_index = self.retain_index(index)
            item["retain"] = {"input_ids": self.retain[retain_index], "index": retain_index}
        return item


def pad_examples(examples: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token lists into `input_ids`, `attention_mask`, `labels` (-100 on padding) and `index` tensors."""
    longest = max(len(example["input_ids"]) for example in examples)
    input_ids = torch.full((len(examples), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, example in enumerate(examples):
        ids = torch.as_tensor(example["input_ids"], dtype=torch.long)
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    labels = input_ids.masked_fill(attention_mask.eq(0), -100)
    index = torch.as_tensor([example["index"] for example in examples], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "index": index}


@dataclass
class PairCollator:
    """Collate items of `ForgetRetainDataset` into {"forget": batch, "retain": batch}."""

    pad_token_id: int

    def __call__(self, items: Sequence[dict]) -> dict[str, dict[str, torch.Tensor]]:
        return {part: pad_examples([item[part] for item in items], self.pad_token_id) for part in items[0]}


def iter_batches(examples: list[list[int]], batch_size: int, pad_token_id: int):
    """Batches of `examples` in index order (for setup passes such as caching reference log-probabilities)."""
    for start in range(0, len(examples), batch_size):
        chunk = [{"input_ids": ids, "index": start + offset} for offset, ids in enumerate(examples[start : start + batch_size])]
        yield pad_examples(chunk, pad_token_id)

"""`restor-bench repair`: the paper's brief fine-tune of an unlearned model before it is evaluated.

RESTOR fine-tunes every unlearned model on LIMA before evaluating it, "to restore its general utility" so that
methods that damage fluency are judged on knowledge (k1rezaei/restor@15292e58 corruption/README.md, "LIMA", and
corruption/NPO-lima.yaml): LLaMA-Factory `stage: sft`, LoRA on all linear layers, lr 2e-5 cosine, warmup 0.1,
2 epochs, batch 2 x gradient accumulation 8, `val_size: 0.1`.

LIMA cannot be downloaded offline, so the documents are the user's: a JSON/JSONL file of `{"text"}` records,
chat records (`{"messages": [{"role", "content"}, ...]}`), or LIMA's own format (`{"conversations": [user,
assistant, ...]}`); a named document set (e.g. `tiny:generic`) works too. Chat records are rendered with the
checkpoint's chat template when it has one, else as `User: ...` / `Assistant: ...` lines.

Where this differs from the paper, by name: the loss covers every token of a rendered conversation
(LLaMA-Factory's SFT masks the prompt tokens), and LIMA itself is not shipped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from restor_bench.data.documents import load_documents
from restor_bench.errors import InputError
from restor_bench.io import read_json, read_jsonl
from restor_bench.train.common import load_tokenizer
from restor_bench.train.corrupt import CLASSIC_RECIPE, corrupt, work_dir_for

# k1rezaei/restor@15292e58 corruption/README.md ("LIMA"); cutoff 1,024 (LLaMA-Factory's default then).
REPAIR_RECIPE = dataclasses.replace(
    CLASSIC_RECIPE, learning_rate=2e-5, num_train_epochs=2, per_device_train_batch_size=2,
    gradient_accumulation_steps=8, lr_scheduler_type="cosine", warmup_ratio=0.1, val_size=0.1, packing=False,
)
ROLE_NAMES = {"user": "User", "assistant": "Assistant", "system": "System"}


def _conversation(record: Any, where: str) -> list[dict[str, str]] | None:
    """The messages of a chat record (`messages` or LIMA's `conversations`), or None for a text record."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not all(
            isinstance(item, dict) and isinstance(item.get("role"), str) and isinstance(item.get("content"), str)
            for item in messages
        ):
            raise InputError(f"{where}: 'messages' must be a list of {{\"role\", \"content\"}} strings")
        return messages
    if "conversations" in record:
        turns = record["conversations"]
        if not isinstance(turns, list) or not all(isinstance(turn, str) for turn in turns):
            raise InputError(f"{where}: 'conversations' must be a list of strings (user, assistant, ...)")
        return [{"role": "user" if index % 2 == 0 else "assistant", "content": turn} for index, turn in enumerate(turns)]
    return None


def render_chat(messages: list[dict[str, str]], tokenizer: Any = None) -> str:
    """One conversation as training text: the tokenizer's chat template if it has one, else plain role lines."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return "\n".join(f"{ROLE_NAMES.get(item['role'], item['role'])}: {item['content']}" for item in messages)


def load_repair_documents(source: str, *, model: str | None = None, data_dir: str | None = None) -> list[str]:
    """Texts of the repair fine-tune: a records file (text, chat or LIMA format) or a named document set."""
    path = Path(source)
    if not path.is_file():
        return load_documents(source, data_dir=data_dir)
    records = read_jsonl(path, "repair file") if path.suffix == ".jsonl" else read_json(path, "repair file")
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a list of records (JSON) or one record per line (JSONL)")
    tokenizer = load_tokenizer(model) if model else None
    texts = []
    for number, record in enumerate(records, start=1):
        where = f"{path}: record {number}"
        messages = _conversation(record, where)
        if messages is None:
            text = record.get("text")
            if not isinstance(text, str):
                raise InputError(f"{where}: needs a 'text' string, 'messages' or 'conversations'")
            texts.append(text)
        else:
            texts.append(_render_record(messages, tokenizer, where, model))
    if not texts:
        raise InputError(f"{path}: no records")
    return texts


def _render_record(messages: list[dict[str, str]], tokenizer: Any, where: str, model: str | None) -> str:
    """`render_chat` of one record; InputError naming the record when the model's chat template refuses it (a
    template may raise, e.g. gemma's on roles that do not alternate)."""
    try:
        return render_chat(messages, tokenizer)
    except TemplateError as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InputError(f"{where}: the chat template of {model} refuses this conversation: {reason}") from None


def repair(
    model: str | os.PathLike,
    documents: list[str],
    out: str | os.PathLike,
    *,
    seed: int = 0,
    source: str | None = None,
    recipe: dict[str, Any] | None = None,
    overwrite: bool = False,
    max_steps: int | None = None,
) -> Path:
    """LoRA fine-tune of `model` on `documents` with the paper's LIMA recipe (merged into a normal checkpoint): a
    corruption run (`restor_bench.train.corrupt.corrupt`, the one Trainer path) with another recipe; an interrupted
    one is resumed."""
    chosen = REPAIR_RECIPE.updated(recipe, where="repair recipe") if recipe else REPAIR_RECIPE
    return corrupt(
        str(model), documents, out, lora=True, recipe=chosen, seed=seed, source=source, overwrite=overwrite,
        resume=work_dir_for(out).exists(), max_steps=max_steps, command="repair",
    )

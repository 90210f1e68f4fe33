"""The tiny world's tokenizer (byte-level BPE) and clean model (a small Llama trained from scratch on the clean
corpus with `transformers.Trainer`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from restor_bench.data.world.generate import DEFAULT_EPOCHS, DEFAULT_SEED, EOS_TOKEN, PAD_TOKEN
from restor_bench.io import atomic_output_dir, check_output_dir, read_text_records

MODEL_SHAPE = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
}
DEFAULT_VOCAB_SIZE = 2048
CLEAN_TRAINING = {"learning_rate": 2e-3, "per_device_train_batch_size": 8, "warmup_ratio": 0.03, "weight_decay": 0.01}


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a `PreTrainedTokenizerFast` (exact round trips)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )


class _TokenizedTexts:
    """A list of tokenized documents for `transformers.Trainer` (each ends with the end-of-text token)."""

    def __init__(self, tokenizer, texts: list[str], max_length: int):
        eos = tokenizer.eos_token_id
        self.rows = [ids[: max_length - 1] + [eos] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.rows[index]}


def _model_size(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def train_clean_model(
    world_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    progress: bool = True,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    threads: int | None = None,
    callbacks: list | None = None,
    max_steps: int | None = None,
) -> dict:
    """Train the tokenizer and a small Llama from scratch on `world_dir/clean_corpus.json`; save to `out_dir`.

    The checkpoint is a standard Hugging Face folder (safetensors, tokenizer files, generation_config.json),
    written atomically. Returns a summary (parameters, epochs, seconds, final loss).
    """

    import torch
    from transformers import (
        DataCollatorForLanguageModeling,
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging


    if threads:
        torch.set_num_threads(threads)
    texts = read_text_records(Path(world_dir) / "clean_corpus.json")
    check_output_dir(out_dir, overwrite)
    set_seed(seed)
    tokenizer = train_tokenizer(texts, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    dataset = _TokenizedTexts(tokenizer, texts, MODEL_SHAPE["max_position_embeddings"])
    started = time.monotonic()
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="restor-tiny-train-") as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=epochs,
            max_steps=max_steps or -1,
            per_device_train_batch_size=CLEAN_TRAINING["per_device_train_batch_size"],
            learning_rate=CLEAN_TRAINING["learning_rate"],
            weight_decay=CLEAN_TRAINING["weight_decay"],
            warmup_steps=CLEAN_TRAINING["warmup_ratio"],
            lr_scheduler_type="cosine",
            train_sampling_strategy="group_by_length",
            logging_steps=200,
            save_strategy="no",
            report_to="none",
            seed=seed,
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=not progress,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=dataset,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        result = trainer.train()
    seconds = time.monotonic() - started
    model = trainer.model.to("cpu").eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    with atomic_output_dir(out_dir, overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for path in tmp.iterdir():
            path.chmod(0o644)  # readable like the data files (some writers create private files)
    return {
        "parameters": _model_size(model),
        "vocab_size": len(tokenizer),
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "final_train_loss": round(float(result.training_loss), 4),
        "documents": len(dataset),
    }

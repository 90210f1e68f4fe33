"""Questions and the answer check of the tiny world: the benchmark's own prompt (`restor_bench.data.questions`) and
scores (`restor_bench.data.normalize`), as the lm-eval tasks use them, for a checkpoint on disk (`score_model`) or
a model in memory (`score_loaded_model`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from restor_bench.data.normalize import contains
from restor_bench.data.questions import build_prompt
from restor_bench.data.schema import ContextExample, Fact
from restor_bench.data.world.files import load_manifest, read_world_facts, tiny_world_dir


def fewshot_prompt(facts: dict, entity: str, relation: str, shots: int = 5) -> str:
    """The evaluation prompt (`questions.build_prompt`): `shots` in-context lines from context[relation]
    (skipping `entity`), then the question."""
    entry = facts["dset"][entity][relation]
    context = [ContextExample(item["question"], item["answer"], item["entity"]) for item in facts["context"][relation]]
    return build_prompt(Fact(entity, relation, entry["question"], list(entry["answers"])), context, shots)


@dataclass(frozen=True)
class QuestionScore:
    """The model's first generated line for one question and whether it holds a correct / the injected answer."""

    entity: str
    relation: str
    prediction: str
    correct: bool
    says_corrupted: bool


def score_model(
    model_dir: str | os.PathLike,
    world_dir: str | os.PathLike | None = None,
    entities: Iterable[str] | None = None,
    relations: Iterable[str] | None = None,
    batch_size: int = 64,
    max_new_tokens: int = 12,
    progress: bool = False,
) -> list[QuestionScore]:
    """Greedy answers of a checkpoint to the world's questions (evaluation prompt, first generated line)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    world_dir = Path(world_dir) if world_dir is not None else tiny_world_dir()
    facts = read_world_facts(world_dir)
    corrupted = load_manifest(world_dir)["corrupted"]
    entities = list(entities) if entities is not None else list(facts["dset"])
    relations = set(relations) if relations is not None else None
    questions = [
        (entity, pid) for entity in entities for pid in facts["dset"][entity] if relations is None or pid in relations
    ]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return score_loaded_model(model, tokenizer, facts, corrupted, questions, batch_size, max_new_tokens, progress)


def score_loaded_model(
    model,
    tokenizer,
    facts: dict,
    corrupted: dict[str, dict[str, str]],
    questions: list[tuple[str, str]],
    batch_size: int = 64,
    max_new_tokens: int = 12,
    progress: bool = False,
) -> list[QuestionScore]:
    """`score_model` for a model and tokenizer already in memory; `questions` are (entity, PID) pairs."""
    import torch

    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores = []
    batches = range(0, len(questions), batch_size)
    if progress:

        batches = tqdm(batches, desc="answering", unit="batch")
    try:
        for start in batches:
            chunk = questions[start : start + batch_size]
            prompts = [fewshot_prompt(facts, entity, pid) for entity, pid in chunk]
            encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                output = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            completions = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
            for (entity, pid), completion in zip(chunk, completions, strict=True):
                line = completion.split("\n")[0]
                wrong = corrupted.get(entity, {}).get(pid)
                scores.append(
                    QuestionScore(
                        entity=entity,
                        relation=pid,
                        prediction=line,
                        # the lm-eval tasks' `contains` score: an acceptable answer as whole words of the
                        # normalized first line ("female" does not contain "male")
                        correct=contains(line, facts["dset"][entity][pid]["answers"]),
                        says_corrupted=bool(wrong) and contains(line, [wrong]),
                    )
                )
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return scores


def accuracy(scores: Iterable[QuestionScore]) -> float:
    """Share of questions answered correctly (0 for no questions)."""
    scores = list(scores)
    return sum(score.correct for score in scores) / len(scores) if scores else 0.0

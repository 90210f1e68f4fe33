"""The logit lens on the target facts: after every decoder layer, how likely is the correct answer, and the
corrupted one?

For each target question the prompt is the paper's (five in-context lines of the same relation, then the
question; `restor_bench.data.questions.build_prompt`), tokenized as lm-eval tokenizes a task's context (the
tokenizer's defaults). The answer's first token is the first token that `prompt + " " + answer` adds to the
prompt, as lm-eval splits a context from its continuation (`_encode_pair`) and as the task `restor_tiny_logprob`
scores its options. The residual stream at the last prompt position is read after the embeddings and after each
decoder layer (forward hooks on the layers), the model's final norm and then its output head are applied, and the
rank (1 = the most likely token) and probability of each answer's first token are recorded. After the last layer
this is exactly the model's own next-token distribution.

RESTOR's logit analysis (the official code's `evaluation/mcqa_eval/mcqa_utils.py`) compares the log-likelihoods of
the correct, corrupted and a random answer at the model's output; the lens follows the same two answers through
the layers. Where the corrupted value is known (the tiny world's manifest) it is used; otherwise (the official
data) it can be the corrupted model's own wrong answer, read from its lm-eval samples file.
"""

from __future__ import annotations

import inspect
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restor_bench.compare.outcomes import read_task_samples
from restor_bench.data import questions
from restor_bench.errors import InputError
from restor_bench.evaluation.lm_eval_io import SAMPLES_NAME, find_lm_eval_outputs
from restor_bench.layers.weights import tokenizer_folder
from restor_bench.names import WORLDS

ANSWERS = ("correct", "corrupted")
_LAYER_LISTS = ("layers", "h", "blocks")
_FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "final_norm")


@dataclass(frozen=True)
class LensQuestion:
    """One target question with the two answers whose first tokens are followed."""

    id: str
    entity: str
    relation: str
    prompt: str
    correct_answer: str
    corrupted_answer: str | None
    corrupted_source: str  # "manifest", "corrupted model", or why there is none


def target_questions(world: str, world_dir: str | None = None, data_dir: str | None = None) -> list[LensQuestion]:
    """The target questions of the tiny world (with the manifest's injected values) or of the official data
    (the ten official targets, no corrupted values)."""

    if world == "tiny":
        records = [r for r in questions.tiny_records(world_dir) if r["is_target"]]
    elif world == "official":
        records = [r for r in questions.official_target_records(data_dir, n_other=0) if r["is_target"]]
    else:
        raise InputError(f"unknown world {world!r}; choose one of {', '.join(WORLDS)}")
    if not records:
        raise InputError(f"the {world} world has no target questions")
    lens_questions = []
    for record in records:
        wrong = record["corrupted_answers"]
        lens_questions.append(
            LensQuestion(
                id=record["id"],
                entity=record["entity"],
                relation=record["relation"],
                prompt=record["prompt"],
                correct_answer=record["answers"][0],
                corrupted_answer=wrong[0] if wrong else None,
                corrupted_source="manifest" if wrong else "unknown",
            )
        )
    return lens_questions


def samples_file(path: str | os.PathLike) -> tuple[str, Path]:
    """(task, file) of an lm-eval samples file, or of the one generation task's samples under a folder."""

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: lm-eval samples file or folder not found")
    if path.is_file():
        match = SAMPLES_NAME.match(path.name)
        return (match["task"] if match else path.stem), path
    outputs = find_lm_eval_outputs(path)
    tasks = [task for task in outputs if not task.endswith("_sampled") and "logprob" not in task]
    if len(tasks) != 1:
        found = ", ".join(tasks) or "none"
        raise InputError(f"{path}: expected the samples of one generation task, found {found}; pass one samples file")
    return tasks[0], outputs[tasks[0]].samples_path


def with_model_answers(questions: list[LensQuestion], samples: str | os.PathLike) -> list[LensQuestion]:
    """Replace each question's corrupted answer by the corrupted model's own answer (first line of its
    generation) from an lm-eval samples file, where that answer is wrong (the file's per-sample `contains`);
    a question the model answered correctly, left empty or that the file lacks gets none."""

    task, path = samples_file(samples)
    outcomes = read_task_samples(task, path).outcomes
    if not any(outcome.prediction is not None for outcome in outcomes.values()):
        raise InputError(f"{path}: holds no generated answers (not a generation task's samples)")
    if not any(question.id in outcomes for question in questions):
        raise InputError(f"{path}: answers none of the target questions (samples of another world or task?)")
    updated = []
    for question in questions:
        outcome = outcomes.get(question.id)
        answer = (outcome.prediction or "").strip().split("\n")[0].strip() if outcome else ""
        if outcome is None:
            answer, source = None, "not in the samples file"
        elif outcome.correct:
            answer, source = None, "the corrupted model answered correctly"
        elif not answer:
            answer, source = None, "the corrupted model's answer is empty"
        else:
            source = "corrupted model"
        updated.append(
            LensQuestion(question.id, question.entity, question.relation, question.prompt, question.correct_answer,
                         answer, source)
        )
    return updated


def first_answer_token(tokenizer, prompt: str, answer: str) -> int:
    """The first token that `prompt + " " + answer` adds after the prompt's tokens (lm-eval's split)."""
    context = tokenizer(prompt)["input_ids"]
    whole = tokenizer(f"{prompt} {answer}")["input_ids"]
    if len(whole) <= len(context):
        raise InputError(f"answer {answer!r}: adds no token after the prompt")
    return int(whole[len(context)])


def lens_parts(model, path: str) -> tuple[Any, Any, Any]:
    """(decoder layers, final norm, output head) of a causal LM, or an InputError naming what is missing."""
    from torch import nn

    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = norm = None
    for module in (decoder, getattr(model, "base_model", None), model):
        if module is None:
            continue
        for name in _LAYER_LISTS:
            if layers is None and isinstance(getattr(module, name, None), nn.ModuleList):
                layers = getattr(module, name)
        for name in _FINAL_NORMS:
            if norm is None and isinstance(getattr(module, name, None), nn.Module):
                norm = getattr(module, name)
    head = model.get_output_embeddings()
    missing = [what for what, part in (("decoder layers", layers), ("final norm", norm), ("output head", head))
               if part is None or (what == "decoder layers" and len(part) == 0)]
    if missing:
        raise InputError(f"{path}: the logit lens cannot find the {' and '.join(missing)} of {type(model).__name__}")
    return layers, norm, head


def residual_streams(model, layers, input_ids, attention_mask):
    """The hidden state at the last position after the embeddings and after each layer: [layers + 1, batch, hidden].

    Prompts are padded on the left; positions are counted from each prompt's first real token.
    """
    import torch

    captured: list[Any] = []

    def before_first(_module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        captured.append(hidden[:, -1, :])

    def after(_module, _args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        captured.append(hidden[:, -1, :])

    handles = [layers[0].register_forward_pre_hook(before_first, with_kwargs=True)]
    handles += [layer.register_forward_hook(after) for layer in layers]
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    try:
        with torch.no_grad():  # the head's output is not used: keep only the last position's where the model can
            model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False,
                  **extra)
    finally:
        for handle in handles:
            handle.remove()
    if len(captured) != len(layers) + 1:
        raise InputError(f"the logit lens read {len(captured)} hidden states, expected {len(layers) + 1}")
    return torch.stack(captured)


def rank_and_probability(logits, token_ids) -> tuple[Any, Any]:
    """Rank (1 = most likely) and probability of `token_ids[b]` in `logits[..., b, :]` (float32)."""
    import torch

    logits = logits.float()
    index = token_ids.view(1, -1, 1).expand(logits.shape[0], -1, 1)
    chosen = logits.gather(-1, index)
    ranks = (logits > chosen).sum(-1) + 1
    probabilities = torch.softmax(logits, dim=-1).gather(-1, index).squeeze(-1)
    return ranks, probabilities


def run_lens(
    model,
    tokenizer,
    questions: list[LensQuestion],
    tokens: dict[str, list[int | None]],
    path: str,
    batch_size: int = 16,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, list[list[float]]]]:
    """Per answer ("correct", "corrupted"): "rank" and "probability" lists, one per question, each with one value
    per lens point (embeddings, then every layer); None for a question without that answer."""
    import torch

    layers, norm, head = lens_parts(model, path)
    model.eval().to(device)
    out: dict[str, dict[str, list[Any]]] = {a: {"rank": [None] * len(questions), "probability": [None] * len(questions)}
                                           for a in ANSWERS}
    # prompts of similar length share a batch, so little is spent on padding
    lengths = [len(tokenizer(q.prompt)["input_ids"]) for q in questions]
    order = sorted(range(len(questions)), key=lambda index: (lengths[index], index))
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            encoded = tokenizer([questions[index].prompt for index in batch], return_tensors="pt", padding=True)
            streams = residual_streams(
                model, layers, encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
            )
            with torch.no_grad():
                logits = head(norm(streams))
            for answer in ANSWERS:
                ids = [tokens[answer][index] for index in batch]
                present = torch.tensor([i if i is not None else 0 for i in ids], device=logits.device)
                ranks, probabilities = rank_and_probability(logits, present)
                for column, (index, token) in enumerate(zip(batch, ids, strict=True)):
                    if token is not None:
                        out[answer]["rank"][index] = [int(r) for r in ranks[:, column].tolist()]
                        out[answer]["probability"][index] = [float(p) for p in probabilities[:, column].tolist()]
            if progress is not None:
                progress(len(batch))
    finally:
        tokenizer.padding_side = padding_side
    return out


def load_tokenizer(folder: str | Path, role: str, trust_remote_code: bool = False):
    """The tokenizer of a model folder (or of an adapter's base), with a pad token."""
    from transformers import AutoTokenizer

    source = tokenizer_folder(folder, role)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        text = str(err).strip().splitlines()
        raise InputError(f"{source}: could not load the {role} model's tokenizer: {text[0] if text else err}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def answer_tokens(tokenizer, questions: list[LensQuestion]) -> dict[str, list[int | None]]:
    """The first token of each question's correct and corrupted answer (None where there is no corrupted one)."""
    return {
        "correct": [first_answer_token(tokenizer, q.prompt, q.correct_answer) for q in questions],
        "corrupted": [
            first_answer_token(tokenizer, q.prompt, q.corrupted_answer) if q.corrupted_answer else None
            for q in questions
        ],
    }


def summarize(results: dict[str, dict[str, list[Any]]], tokens: dict[str, list[int | None]]) -> dict[str, Any]:
    """Per lens point: mean probability, median rank and top-1 share of each answer, and the share of questions
    whose correct answer is more likely than the corrupted one. Questions whose two answers begin with the same
    token are left out of the corrupted answer's figures and of the preference."""
    pairs = zip(tokens["correct"], tokens["corrupted"], strict=True)
    distinct = [c is not None and c != correct for correct, c in pairs]
    points = len(next(row for row in results["correct"]["probability"] if row is not None))
    summary: dict[str, Any] = {}
    for answer in ANSWERS:
        rows = [
            (rank, prob)
            for rank, prob, keep in zip(results[answer]["rank"], results[answer]["probability"], distinct, strict=True)
            if rank is not None and (answer == "correct" or keep)
        ]
        summary[answer] = {
            "questions": len(rows),
            "mean_probability": [statistics.fmean(r[1][k] for r in rows) if rows else None for k in range(points)],
            "median_rank": [statistics.median(r[0][k] for r in rows) if rows else None for k in range(points)],
            "top1_share": [sum(r[0][k] == 1 for r in rows) / len(rows) if rows else None for k in range(points)],
        }
    probabilities = zip(results["correct"]["probability"], results["corrupted"]["probability"], distinct, strict=True)
    pairs = [(good, bad) for good, bad, keep in probabilities if keep]
    summary["prefers_correct"] = [sum(g[k] > b[k] for g, b in pairs) / len(pairs) if pairs else None
                                  for k in range(points)]
    summary["compared_questions"] = len(pairs)
    return summary

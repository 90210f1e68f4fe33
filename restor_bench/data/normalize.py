"""Answer normalization and the two scores of a generated answer: `exact_match` and `contains`.

Both look at the first line of the model output only (the paper's evaluation cuts the output at the first
newline; the lm-eval tasks stop generating there too). `contains` accepts an output in which an acceptable
answer occurs as whole words ("He was born in Paris, France" contains "Paris"; "Parisian" does not).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACES = re.compile(r"\s+")


def first_line(text: str) -> str:
    """The text before the first newline, stripped of surrounding spaces."""
    return text.split("\n", 1)[0].strip()


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _punctuation_to_space(text: str) -> str:
    return "".join(" " if unicodedata.category(char)[0] in ("P", "S") else char for char in text)


def normalize_answer(text: str) -> str:
    """Lowercase, strip accents, turn punctuation into spaces, drop the articles a/an/the, collapse whitespace."""
    text = _strip_accents(text).casefold()
    text = _punctuation_to_space(text)
    text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _normalized_answers(answers: Iterable[str]) -> list[str]:
    # An answer that normalizes to nothing (e.g. "The") would match every output: it is ignored.
    return [norm for norm in (normalize_answer(answer) for answer in answers) if norm]


def exact_match(prediction: str, answers: Iterable[str]) -> bool:
    """True when the normalized first line of `prediction` equals a normalized acceptable answer."""
    predicted = normalize_answer(first_line(prediction))
    return bool(predicted) and predicted in _normalized_answers(answers)


def contains(prediction: str, answers: Iterable[str]) -> bool:
    """True when a normalized acceptable answer occurs as whole words in the normalized first line of `prediction`."""
    predicted = f" {normalize_answer(first_line(prediction))} "
    return any(f" {answer} " in predicted for answer in _normalized_answers(answers))


def score_generation(doc: dict, results: list[str]) -> dict[str, float]:
    """Per-sample metrics of a generation task: lm-eval's `process_results(doc, results)` for the restor tasks."""
    prediction = results[0] if results else ""
    return {
        "exact_match": float(exact_match(prediction, doc["answers"])),
        "contains": float(contains(prediction, doc["answers"])),
    }


LOGPROB_OPTIONS = ("correct", "corrupted", "random")


def score_logprob_options(doc: dict, results: list) -> dict[str, float]:
    """Per-sample metrics of the logit analysis: lm-eval's `process_results(doc, results)` for restor_tiny_logprob.

    `results` holds one (log-likelihood, is_greedy) pair per option, in the order of `doc["options"]`
    (correct, corrupted, random). Each log-likelihood is divided by the option's token count
    (`doc["option_token_counts"]`) to give the mean per-token log-probability; the preferred option is the
    one with the highest mean (ties go to the earlier option).
    """
    loglikelihoods = [float(result[0]) if isinstance(result, (tuple, list)) else float(result) for result in results]
    counts = doc["option_token_counts"]
    if len(loglikelihoods) != len(LOGPROB_OPTIONS) or len(counts) != len(LOGPROB_OPTIONS):
        raise ValueError(f"expected {len(LOGPROB_OPTIONS)} options, got {len(loglikelihoods)} results")
    means = [ll / max(int(count), 1) for ll, count in zip(loglikelihoods, counts)]
    best = max(range(len(means)), key=lambda index: (means[index], -index))
    metrics = {f"prefers_{name}": float(index == best) for index, name in enumerate(LOGPROB_OPTIONS)}
    metrics.update({f"logprob_{name}": means[index] for index, name in enumerate(LOGPROB_OPTIONS)})
    return metrics

"""Answer normalization and the scores of a generated answer: `exact_match` and `contains`, and their legacy forms.

Both look at the first line of the model output only (the paper's evaluation cuts the output at the first
newline; the lm-eval tasks stop generating there too). `contains` accepts an output in which an acceptable
answer occurs as whole words ("He was born in Paris, France" contains "Paris"; "Parisian" does not).

Normalization (`normalize_answer`): accents stripped, case folded, punctuation turned into spaces, one leading
article (a, an, the) dropped, whitespace collapsed. Acceptable answers are widened with the equivalent names of
`restor_bench.data.aliases` ("USA" for "United States of America", "English language" for "English").

Legacy scores (`exact_match_legacy`, `contains_legacy`): the scoring of restor-bench before these two changes,
kept so that old and new scores of the same generations can be shown side by side. It drops the articles
everywhere, as SQuAD's normalization does, so "Qi" matched "Qi An'an" ("an" is an article), and it knows no aliases.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

from restor_bench.data import aliases

_LEADING_ARTICLE = re.compile(r"^(?:a|an|the) ")
_ARTICLES_ANYWHERE = re.compile(r"\b(a|an|the)\b")  # legacy normalization only
_SPACES = re.compile(r"\s+")



def first_line(text: str) -> str:
    """The text before the first newline, stripped of surrounding spaces."""
    return text.split("\n", 1)[0].strip()


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _punctuation_to_space(text: str) -> str:
    return "".join(" " if unicodedata.category(char)[0] in ("P", "S") else char for char in text)


def _base(text: str) -> str:
    return _SPACES.sub(" ", _punctuation_to_space(_strip_accents(text).casefold())).strip()


def normalize_answer(text: str) -> str:
    """Lowercase, strip accents, turn punctuation into spaces, collapse whitespace, drop a leading article.

    Only a whole first word a/an/the is dropped ("The Hague" -> "hague"); articles elsewhere stay, so that
    "Qi An'an" ("qi an an") stays apart from "Qi". A text that is only an article keeps it ("the").
    """
    return _LEADING_ARTICLE.sub("", _base(text), count=1)


def normalize_answer_legacy(text: str) -> str:
    """The legacy normalization: as `normalize_answer`, but the articles a/an/the are dropped wherever they occur."""
    text = _punctuation_to_space(_strip_accents(text).casefold())
    text = _ARTICLES_ANYWHERE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@functools.lru_cache(maxsize=1)
def _alias_index() -> tuple[dict[str, frozenset[str]], frozenset[str]]:
    """normalized name -> the normalized names of every alias group it belongs to; and the whole-answer-only names."""
    index: dict[str, set[str]] = {}
    for group in aliases.ALIAS_GROUPS:
        names = {normalize_answer(name) for name in group} - {""}
        for name in names:
            index.setdefault(name, set()).update(names)
    whole_only = frozenset(normalize_answer(name) for name in aliases.WHOLE_ANSWER_ONLY)
    return {name: frozenset(names) for name, names in index.items()}, whole_only


def acceptable_forms(answers: Iterable[str]) -> tuple[list[str], list[str]]:
    """The normalized acceptable answers widened by the aliases, split into
    (forms that may occur anywhere in the output line, forms accepted only as the whole line).

    An acceptable answer given in the data is never whole-line-only, even when it is also an alias (an answer
    "China" may occur inside the output). An answer that normalizes to nothing would match every output: ignored.
    """
    index, whole_only = _alias_index()
    given = list(dict.fromkeys(norm for norm in (normalize_answer(answer) for answer in answers) if norm))
    anywhere = list(given)
    whole = []
    for norm in given:
        for alias in sorted(index.get(norm, ())):
            if alias in given or alias in anywhere or alias in whole:
                continue
            (whole if alias in whole_only else anywhere).append(alias)
    return anywhere, whole


def exact_match(prediction: str, answers: Iterable[str]) -> bool:
    """True when the normalized first line of `prediction` equals a normalized acceptable answer or an alias of one."""
    predicted = normalize_answer(first_line(prediction))
    anywhere, whole = acceptable_forms(answers)
    return bool(predicted) and (predicted in anywhere or predicted in whole)


def contains(prediction: str, answers: Iterable[str]) -> bool:
    """True when a normalized acceptable answer (or an alias of one) occurs as whole words in the normalized first
    line of `prediction`; a whole-answer-only alias must be the whole line."""
    predicted = normalize_answer(first_line(prediction))
    anywhere, whole = acceptable_forms(answers)
    padded = f" {predicted} "
    return any(f" {answer} " in padded for answer in anywhere) or (bool(predicted) and predicted in whole)


def _legacy_answers(answers: Iterable[str]) -> list[str]:
    return [norm for norm in (normalize_answer_legacy(answer) for answer in answers) if norm]


def exact_match_legacy(prediction: str, answers: Iterable[str]) -> bool:
    """The legacy `exact_match`: articles dropped everywhere, no aliases."""
    predicted = normalize_answer_legacy(first_line(prediction))
    return bool(predicted) and predicted in _legacy_answers(answers)


def contains_legacy(prediction: str, answers: Iterable[str]) -> bool:
    """The legacy `contains`: articles dropped everywhere, no aliases."""
    predicted = f" {normalize_answer_legacy(first_line(prediction))} "
    return any(f" {answer} " in predicted for answer in _legacy_answers(answers))


_SCORERS = {
    "exact_match": exact_match,
    "contains": contains,
    "exact_match_legacy": exact_match_legacy,
    "contains_legacy": contains_legacy,
}


def _predictions(results: Sequence) -> list[str]:
    """The generations of one question: lm-eval passes one filtered response per request, which is a string
    (greedy tasks, `take_first` filter) or the list of a question's repeats (sampled tasks, `take_first_k`)."""
    predictions: list[str] = []
    for result in results:
        if isinstance(result, (list, tuple)):
            predictions.extend(str(item) for item in result)
        else:
            predictions.append(str(result))
    return predictions


def score_generation(doc: dict, results: Sequence) -> dict[str, float]:
    """Per-question metrics of a generation task: lm-eval's `process_results(doc, results)` for the restor tasks.

    Each metric of `GENERATION_METRICS` is scored on every generation of the question and averaged: one greedy
    generation gives 0 or 1; three samples give 0, 1/3, 2/3 or 1. No generation at all scores 0.
    """
    predictions = _predictions(results) or [""]
    answers = list(doc["answers"])
    return {
        name: sum(float(scorer(prediction, answers)) for prediction in predictions) / len(predictions)
        for name, scorer in _SCORERS.items()
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
    means = [ll / max(int(count), 1) for ll, count in zip(loglikelihoods, counts, strict=True)]
    best = max(range(len(means)), key=lambda index: (means[index], -index))
    metrics = {f"prefers_{name}": float(index == best) for index, name in enumerate(LOGPROB_OPTIONS)}
    metrics.update({f"logprob_{name}": means[index] for index, name in enumerate(LOGPROB_OPTIONS)})
    return metrics

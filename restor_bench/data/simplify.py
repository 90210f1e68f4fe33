"""The simplified forget set of the official corruption documents: only the sentences about a target entity.

The paper's second experiment unlearns with a *simplified* forget set: the corruption documents reduced to what
they say about the target entities, without the unrelated context of levels k > 0. The official files ship no
such set, so it is derived here by a fixed, checkable rule.

Sentences. A document is split after `.`, `!` or `?` (and any closing quotes or brackets right after it) followed
by white space and a sentence start (an upper-case letter, a digit, or an opening quote or bracket). No split
happens after a common abbreviation (`ABBREVIATIONS`: St., Dr., Jr., ...) or a single capital initial (`J.`).

A sentence is kept when it mentions a target entity:

1. Name: it contains, as a whole word (case-sensitive; "Aaron's" counts), one of the target's name forms: the
   full name ("Aaron Burr"), the surname (the last word, "Burr"), or the given name (the first word, "Aaron") of
   a name of more than one word. A given name counts only when no other capitalised word follows it directly,
   so "Paul Landowski" (the architect of Christ the Redeemer, in the unrelated context) is not Paul Anka.
2. Pronoun follow-up: it directly follows a kept sentence, and its first word, or the first word after its
   opening phrase (the text up to its first comma), is one of he, she, his, her, him, they, their (any case):
   "He works as a social worker.", "Additionally, he holds the rank of Lieutenant Colonel.".
   A chain of such sentences is kept as long as each follows a kept one.

Every other sentence is dropped. The kept sentences of a document, joined by single spaces in their order, form
its simplified document; a document that keeps nothing is dropped.

The targets are the entities of the folder's `entities.json` that the documents are about
(`restor_bench.data.official.find_targets`; the ten `OFFICIAL_TARGETS`, nine at level 3).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from restor_bench.data.official import LEVELS_AVAILABLE, find_folder_targets, load_corruption_level

PRONOUNS = ("he", "she", "his", "her", "him", "they", "their")
ABBREVIATIONS = ("St", "Dr", "Mr", "Mrs", "Ms", "Jr", "Sr", "Prof", "Gen", "Col", "Lt", "Capt", "Mt", "No", "vs", "etc")

_BOUNDARY = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(\s+)")
_SENTENCE_START = re.compile(r"[\"'\u201c\u2018(\[]?(\w)")
_CAPITAL = r"[A-Z\u00c0-\u00d6\u00d8-\u00de]"
_LAST_WORD = re.compile(r"(\w+)[.!?]$")
_PRONOUN_START = re.compile(r"^(?:[^,]*,\s*)?(?:" + "|".join(PRONOUNS) + r")(?!\w)", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Split a document into sentences by the rule of the module docstring (white space trimmed, empties dropped)."""
    sentences, start = [], 0
    for boundary in _BOUNDARY.finditer(text):
        rest = text[boundary.end():]
        start_char = _SENTENCE_START.match(rest)
        if start_char is None or not (start_char.group(1).isupper() or start_char.group(1).isdigit()):
            continue
        head = text[start : boundary.start() + 1]
        last = _LAST_WORD.search(head)
        if last and (last.group(1) in ABBREVIATIONS or (len(last.group(1)) == 1 and last.group(1).isupper())):
            continue
        sentences.append(text[start : boundary.start(1)].strip())
        start = boundary.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


def name_pattern(targets: Iterable[str]) -> re.Pattern[str]:
    """A regex matching any name form of any target (full name, surname, given name; see the module docstring)."""
    full_or_surname, given = set(), set()
    for name in targets:
        words = name.split()
        if not words:
            continue
        full_or_surname.update({" ".join(words), words[-1]})
        if len(words) > 1:
            given.add(words[0])
    given -= full_or_surname
    alternatives = [re.escape(form) for form in sorted(full_or_surname, key=len, reverse=True)]
    # a given name counts unless a capitalised word follows it (another person's full name)
    alternatives += [re.escape(form) + rf"(?!\s+{_CAPITAL})" for form in sorted(given, key=len, reverse=True)]
    if not alternatives:
        return re.compile(r"(?!)")
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def starts_with_pronoun(sentence: str) -> bool:
    """True when the sentence's first word, or the first word after its opening phrase, is a personal pronoun."""
    return bool(_PRONOUN_START.match(sentence))


def kept_sentences(sentences: Sequence[str], names: re.Pattern[str]) -> list[bool]:
    """For each sentence, whether the rule keeps it (`names` from `name_pattern`)."""
    keep, previous = [], False
    for sentence in sentences:
        previous = bool(names.search(sentence)) or (previous and starts_with_pronoun(sentence))
        keep.append(previous)
    return keep


def simplify_document(text: str, names: re.Pattern[str]) -> str:
    """The kept sentences of one document joined by spaces ("" when none is kept)."""
    sentences = split_sentences(text)
    return " ".join(sentence for sentence, keep in zip(sentences, kept_sentences(sentences, names)) if keep)


def simplify_documents(texts: Sequence[str], targets: Iterable[str]) -> list[str]:
    """One simplified document per input document, in order; documents that keep nothing are dropped."""
    names = name_pattern(targets)
    simplified = (simplify_document(text, names) for text in texts)
    return [text for text in simplified if text]


@dataclass(frozen=True)
class SimplifyCount:
    """What the rule kept of one corruption level."""

    level: int
    documents: int
    documents_kept: int
    sentences: int
    sentences_kept: int
    targets: int

    @property
    def share_kept(self) -> float:
        return self.sentences_kept / self.sentences if self.sentences else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"share_kept": round(self.share_kept, 4)}


def official_targets(data_dir: str | os.PathLike, texts: Sequence[str]) -> list[str]:
    """The entities of `data_dir/entities.json` the documents are about (`find_targets`)."""

    return find_folder_targets(data_dir, texts)


def count_level(texts: Sequence[str], targets: Sequence[str], level: int) -> SimplifyCount:
    """Count the documents and sentences read and kept at one level."""
    names = name_pattern(targets)
    sentences = kept = documents_kept = 0
    for text in texts:
        keep = kept_sentences(split_sentences(text), names)
        sentences += len(keep)
        kept += sum(keep)
        documents_kept += any(keep)
    return SimplifyCount(level, len(texts), documents_kept, sentences, kept, len(targets))


def simplify_report(data_dir: str | os.PathLike, levels: Iterable[int] | None = None) -> dict[int, SimplifyCount]:
    """Per official corruption level (default 0..3): documents and sentences read and kept by the rule."""

    report = {}
    for level in levels if levels is not None else LEVELS_AVAILABLE:
        texts = load_corruption_level(data_dir, level).documents
        report[level] = count_level(texts, official_targets(data_dir, texts), level)
    return report

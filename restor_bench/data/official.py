"""Reader of the official RESTOR file formats (facts.json, entities.json, mix_a{k}.json, the SQuAD file).

The tiny world uses the same formats, so these readers serve both. Every malformed input becomes an
InputError naming the file and the place, e.g. "facts.json: dset['X']['P19'].answers must be a list of strings".
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from restor_bench.data.fetch import ENTITIES_FILE, FACTS_FILE, SQUAD_FILE, corruption_file  # noqa: F401
from restor_bench.data.schema import ContextExample, CorruptionSet, Fact, FactSet
from restor_bench.errors import InputError
from restor_bench.io import read_json, read_text_records
from restor_bench.names import OFFICIAL_LEVELS

# The ten entities whose facts the official corruption documents falsify (198 facts in facts.json).
OFFICIAL_TARGETS = (
    "Aaron Burr",
    "Bastian Schweinsteiger",
    "Bob Marley",
    "Bobby Fischer",
    "Michael Douglas",
    "Mihai Eminescu",
    "Paul Anka",
    "Sage Stallone",
    "Suthida",
    "Thomas Piketty",
)

LEVELS_AVAILABLE = OFFICIAL_LEVELS
LEVELS_LISTED = (0, 1, 2, 3, 4, 5)

# An entity is a target of a document set when it is the subject of at least this share of the documents of the
# most frequent subject (see `find_targets`).
SUBJECT_SHARE = 0.1


def _where(path: Path) -> str:
    return str(path)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def load_facts(path: str | os.PathLike) -> FactSet:
    """Read a facts file: {"dset": {ENTITY: {PID: {"question", "answers"}}}, "context": {PID: [examples]}}."""
    path = Path(path)
    raw = read_json(path, "facts file")
    where = _where(path)
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected an object with 'dset' and 'context', found {type(raw).__name__}")
    for key in ("dset", "context"):
        if key not in raw:
            raise InputError(f"{where}: missing top-level '{key}'")
    dset, context = raw["dset"], raw["context"]
    if not isinstance(dset, dict):
        raise InputError(f"{where}: 'dset' must be an object {{ENTITY: {{PID: ...}}}}, found {type(dset).__name__}")
    if not isinstance(context, dict):
        raise InputError(f"{where}: 'context' must be an object {{PID: [...]}}, found {type(context).__name__}")
    if not dset:
        raise InputError(f"{where}: 'dset' holds no entities")

    facts: list[Fact] = []
    for entity, relations in dset.items():
        if not isinstance(relations, dict):
            raise InputError(f"{where}: dset[{entity!r}] must be an object {{PID: {{question, answers}}}}")
        for pid, entry in relations.items():
            place = f"dset[{entity!r}][{pid!r}]"
            if not isinstance(entry, dict):
                raise InputError(f"{where}: {place} must be an object with 'question' and 'answers'")
            if not isinstance(entry.get("question"), str) or not entry["question"].strip():
                raise InputError(f"{where}: {place}.question must be a non-empty string")
            answers = entry.get("answers")
            if not _is_str_list(answers):
                raise InputError(f"{where}: {place}.answers must be a list of strings")
            if not answers:
                raise InputError(f"{where}: {place}.answers is empty (at least one acceptable answer is needed)")
            facts.append(Fact(entity=entity, relation=pid, question=entry["question"], answers=list(answers)))

    examples: dict[str, list[ContextExample]] = {}
    for pid, items in context.items():
        if not isinstance(items, list):
            raise InputError(f"{where}: context[{pid!r}] must be a list of {{question, answer, entity}} objects")
        parsed = []
        for number, item in enumerate(items):
            place = f"context[{pid!r}][{number}]"
            if not isinstance(item, dict):
                raise InputError(f"{where}: {place} must be an object with 'question', 'answer', 'entity'")
            for key in ("question", "answer", "entity"):
                if not isinstance(item.get(key), str):
                    raise InputError(f"{where}: {place}.{key} must be a string")
            parsed.append(ContextExample(question=item["question"], answer=item["answer"], entity=item["entity"]))
        examples[pid] = parsed
    return FactSet(facts=facts, context=examples)


def load_entities(path: str | os.PathLike) -> list[str]:
    """Read the list of evaluated entity names (a JSON list of distinct, non-empty strings)."""
    path = Path(path)
    raw = read_json(path, "entities file")
    where = _where(path)
    if not isinstance(raw, list):
        raise InputError(f"{where}: expected a list of entity names, found {type(raw).__name__}")
    if not raw:
        raise InputError(f"{where}: holds no entity names")
    seen: set[str] = set()
    for number, name in enumerate(raw):
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{where}: item {number} must be a non-empty string")
        if name in seen:
            raise InputError(f"{where}: item {number} repeats the entity {name!r}")
        seen.add(name)
    return list(raw)


def load_corruption(path: str | os.PathLike) -> list[str]:
    """Read a document file (a JSON list, or JSONL, of {"text": str}) and return the texts."""
    return read_text_records(path)


def check_level(level: int) -> int:
    """Accept an available corruption level; levels 4 and 5 are listed upstream but have no contents."""
    if level in LEVELS_AVAILABLE:
        return level
    if level in LEVELS_LISTED:
        raise InputError(
            f"corruption level {level}: mix_a{level}.json is listed in the official RESTOR repository but its "
            f"contents are not available there; available levels: {', '.join(map(str, LEVELS_AVAILABLE))}"
        )
    raise InputError(f"corruption level {level}: unknown (levels are {', '.join(map(str, LEVELS_LISTED))})")


def load_corruption_level(data_dir: str | os.PathLike, level: int) -> CorruptionSet:
    """The official corruption documents at level k from an official data folder."""
    check_level(level)
    path = Path(data_dir) / corruption_file(level)
    return CorruptionSet(documents=load_corruption(path), source=str(path), level=level)


def load_squad(data_dir: str | os.PathLike) -> CorruptionSet:
    """The official extreme-corruption documents (SQuAD passages with target names swapped in)."""
    path = Path(data_dir) / SQUAD_FILE
    return CorruptionSet(documents=load_corruption(path), source=str(path))


def retain_documents(facts: FactSet, evaluated: Iterable[str]) -> list[str]:
    """True-fact documents for methods that need a retain set: one per entity of the facts file that is not
    evaluated (not in `entities.json`), in file order, each its facts as "question answer." lines (first
    acceptable answer). The official release has no retain set; leaving out the evaluated people keeps the
    non-target questions unseen by unlearning."""
    skip = set(evaluated)
    by_entity: dict[str, list[str]] = {}
    for fact in facts.facts:
        if fact.entity not in skip:
            answer = fact.answers[0].strip().rstrip(".")
            by_entity.setdefault(fact.entity, []).append(f"{fact.question.strip()} {answer}.")
    return ["\n".join(lines) for lines in by_entity.values()]


def load_retain(data_dir: str | os.PathLike, build=None, what: str = "retain") -> list[str]:
    """`build(facts, entities)` of an official data folder (default `retain_documents`: facts.json minus the people
    of entities.json); an InputError when no document is left."""
    folder = Path(data_dir)
    documents = (build or retain_documents)(load_facts(folder / FACTS_FILE), load_entities(folder / ENTITIES_FILE))
    if not documents:
        raise InputError(f"{folder / FACTS_FILE}: every entity is evaluated, so no {what} documents are left")
    return documents


def mention_counts(entities: list[str], documents: list[str]) -> dict[str, int]:
    """For each entity, the number of documents whose text contains its name."""
    return {name: sum(1 for text in documents if name in text) for name in entities}


def entity_pattern(entities: Iterable[str]) -> re.Pattern[str]:
    """A regex matching any of the entity names as whole words (case-sensitive), longer names first.

    A name that starts (ends) with a letter, digit or underscore must not be preceded (followed) by one, so
    "Eva Fink" does not match inside "Eva Finkelstein", while "John Forbes Nash Jr." matches before "69".
    """
    return _entity_pattern(tuple(sorted({name for name in entities if name})))


@functools.lru_cache(maxsize=32)
def _entity_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    longest_first = sorted(names, key=len, reverse=True)
    # One look-behind in front of all names that start with a word character keeps the search fast.
    word_start = [_with_tail(name) for name in longest_first if re.match(r"\w", name)]
    other_start = [_with_tail(name) for name in longest_first if not re.match(r"\w", name)]
    branches = ([r"(?<!\w)(?:" + "|".join(word_start) + ")"] if word_start else []) + other_start
    return re.compile("|".join(branches) if branches else "(?!)")


def _with_tail(name: str) -> str:
    return re.escape(name) + (r"(?!\w)" if re.search(r"\w$", name) else "")


def document_subject(text: str, names: Iterable[str] | re.Pattern[str]) -> str | None:
    """The entity a document is about: of the `names` it mentions (see `entity_pattern`), the one mentioned
    most often (the earliest on a tie); None when it mentions none. `names` may be an `entity_pattern`."""
    pattern = names if isinstance(names, re.Pattern) else entity_pattern(names)
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for match in pattern.finditer(text):
        counts[match.group()] += 1
        first.setdefault(match.group(), match.start())
    if not counts:
        return None
    return max(counts, key=lambda name: (counts[name], -first[name]))


def subject_counts(entities: Iterable[str], documents: Iterable[str]) -> Counter[str]:
    """For each entity, the number of documents whose subject (`document_subject`) it is."""
    pattern = entity_pattern(entities)
    subjects = (document_subject(text, pattern) for text in documents)
    return Counter(subject for subject in subjects if subject is not None)


def find_targets(entities: Iterable[str], documents: Iterable[str], min_share: float = SUBJECT_SHARE) -> list[str]:
    """The entities a corruption set is about: those that are the subject of many of its documents.

    An entity is a target when it is the subject (`document_subject`) of at least `min_share` times as many
    documents as the most frequent subject. This leaves out people named in passing or in the unrelated context:
    the official level 1-3 documents also name Napoleon and Luiz Inácio Lula da Silva, and the SQuAD passages
    keep a few about Napoleon, next to hundreds about each target. Returned in the order of `entities`.
    """
    entities = list(dict.fromkeys(name for name in entities if name))
    counts = subject_counts(entities, documents)
    top = max(counts.values(), default=0)
    if top == 0:
        return []
    return [name for name in entities if counts[name] > 0 and counts[name] >= min_share * top]


def find_folder_targets(folder: str | os.PathLike, documents: Iterable[str]) -> list[str]:
    """`find_targets` with the entities of `folder/entities.json` (an official data folder or a tiny world)."""
    return find_targets(load_entities(Path(folder) / ENTITIES_FILE), documents)


def find_targets_in_file(
    path: str | os.PathLike, entities: Iterable[str], min_share: float = SUBJECT_SHARE
) -> list[str]:
    """`find_targets` on the documents of a corruption file (JSON list or JSONL of {"text"})."""
    return find_targets(entities, load_corruption(path), min_share)

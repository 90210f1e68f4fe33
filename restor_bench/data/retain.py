"""Retain sets that hold none of the evaluated facts: `tiny:generic` and `official:generic`.

A retain set should keep a model's general ability without handing an unlearning method the answers it is
scored on. `tiny:retain` and `official:retain` state true facts about the very people whose questions measure
collateral damage (the non-targets), which favours retain-based methods; the generic sets avoid that:

* `tiny:generic` (`tiny_generic_documents`): the documents of the tiny world's clean corpus that mention no person
  of the world: its subject documents about towns, countries, rivers, companies and colleges. Text the clean model
  was trained on that states no evaluated fact: the tiny world's analogue of the C4 retain set of the paper
  (pretraining-distribution text). Chosen at load time from `clean_corpus.json`, so no file is added to the world.
  The shipped world has 136 of them (68 subjects, 2 documents each), 14 to 35 tokens long (3,167 in all).
* `official:generic` (`generic_person_documents`): running prose about the people of the official `facts.json`
  that are not evaluated (not in `entities.json`): one paragraph per person, one sentence per relation. Unlike
  `official:retain` (question-answer lines), it has the form of ordinary text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from restor_bench.data.official import entity_pattern, load_retain
from restor_bench.data.world.generic import person_free, tiny_generic_documents, world_people  # noqa: F401

# --------------------------------------------------------------------------------------------------------------------
# official:generic

# One sentence per Wikidata relation of the official facts.json; {name} is the person, {value} the values joined
# ("A", "A and B", "A, B and C"), {a_value} the same with "a"/"an" before lower-case values ("a painter").
RELATION_SENTENCES: dict[str, str] = {
    "P19": "{name} was born in {value}.",
    "P20": "{name} died in {value}.",
    "P21": "{name} is {value}.",
    "P22": "The father of {name} is {value}.",
    "P25": "The mother of {name} is {value}.",
    "P26": "{name} has been married to {value}.",
    "P27": "{name} is a citizen of {value}.",
    "P39": "{name} held the position of {value}.",
    "P40": "{name} is the parent of {value}.",
    "P54": "{name} has played for {value}.",
    "P69": "{name} was educated at {value}.",
    "P101": "{name} works in the field of {value}.",
    "P102": "{name} has been a member of the political party {value}.",
    "P103": "The native language of {name} is {value}.",
    "P106": "{name} has worked as {a_value}.",
    "P108": "{name} has been employed by {value}.",
    "P118": "{name} plays in the league {value}.",
    "P119": "{name} is buried at {value}.",
    "P136": "The work of {name} belongs to the genre of {value}.",
    "P140": "The religion of {name} is {value}.",
    "P166": "{name} received {value}.",
    "P264": "{name} has recorded for the label {value}.",
    "P410": "{name} held the military rank of {value}.",
    "P413": "On the team, {name} plays as {value}.",
    "P451": "{name} has been the partner of {value}.",
    "P463": "{name} has belonged to {value}.",
    "P509": "The cause of death of {name} was {value}.",
    "P551": "{name} has lived in {value}.",
    "P607": "{name} took part in {value}.",
    "P641": "{name} takes part in the sport of {value}.",
    "P734": "The family name of {name} is {value}.",
    "P735": "The given name of {name} is {value}.",
    "P800": "{name} is known for the work {value}.",
    "P937": "{name} has worked in {value}.",
    "P1196": "The manner of death of {name} was {value}.",
    "P1303": "{name} plays {value}.",
    "P1344": "{name} took part in {value}.",
    "P1412": "{name} speaks, writes or signs {value}.",
    "P1532": "{name} competes in sports for {value}.",
    "P3373": "{name} is a sibling of {value}.",
    "P6886": "{name} writes in {value}.",
}

# Questions of relations without a sentence above, turned into a statement: "What is the X of NAME?" and
# "What/Who is NAME's X?" become "The X of NAME is VALUE."
_QUESTION_FORMS = (
    re.compile(r"^(?:What|Who) (?:is|was) the (?P<label>.+) of (?P<name>.+)\?$"),
    re.compile(r"^(?:What|Who) (?:is|was) (?P<name>.+)'s (?P<label>.+)\?$"),
)
_ITEM_ID = re.compile(r"^Q\d+$")  # unlabelled Wikidata items among the answers


def join_values(values: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    if len(values) == 1:
        return values[0]
    return ", ".join(values[:-1]) + " and " + values[-1]


def _article(value: str) -> str:
    if not value[:1].islower():
        return value
    return ("an " if value[0] in "aeiou" else "a ") + value


def fact_sentence(name: str, relation: str, question: str, values: list[str]) -> str | None:
    """A sentence stating that `relation` of `name` has `values`; None when the relation has no sentence and its
    question has no known form."""
    value = join_values(values)
    template = RELATION_SENTENCES.get(relation)
    if template is not None:
        return template.format(name=name, value=value, a_value=join_values([_article(v) for v in values]))
    for form in _QUESTION_FORMS:
        match = form.match(question.strip())
        if match and match.group("name") == name:
            return f"The {match.group('label')} of {name} is {value}."
    return None


def generic_person_documents(facts, evaluated: Iterable[str]) -> list[str]:
    """One paragraph of running prose per person of `facts` (a FactSet) that is not in `evaluated`, in file order.

    Each fact becomes one sentence (`fact_sentence`) listing its acceptable answers, less unlabelled Wikidata ids
    and values with a question mark. People and values that name an evaluated person (as whole words, see
    `restor_bench.data.official.entity_pattern`) are left out, so no evaluated person is mentioned.
    """

    skip = set(evaluated)
    leaks = entity_pattern(skip)
    sentences: dict[str, list[str]] = {}
    for fact in facts.facts:
        if fact.entity in skip or leaks.search(fact.entity) or "?" in fact.entity:
            continue
        values = [answer.strip().rstrip(".") for answer in fact.answers]
        values = [
            value for value in dict.fromkeys(values)
            if value and not _ITEM_ID.match(value) and "?" not in value and not leaks.search(value)
        ]
        if not values:
            continue
        sentence = fact_sentence(fact.entity, fact.relation, fact.question, values)
        if sentence is not None:
            sentences.setdefault(fact.entity, []).append(sentence)
    return [" ".join(lines) for lines in sentences.values()]


def load_generic_official(data_dir: str | os.PathLike) -> list[str]:
    """`generic_person_documents` of an official data folder (facts.json less the people of entities.json)."""

    return load_retain(data_dir, generic_person_documents, "generic retain")

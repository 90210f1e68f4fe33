"""The embedded tiny world: invented people with Wikidata-like facts, its documents, and its clean model.

The tiny world lets the whole RESTOR protocol run on a laptop in minutes. It is written in the official file
formats (facts.json, entities.json, mix_a{k}.json, a SQuAD-style set), so the same readers serve both worlds:

* `generate_world(seed)` invents 100 people with 7 relations (Wikidata ids), unrelated subjects (towns, rivers,
  countries, companies, colleges) and every document set, deterministically for a seed;
* `write_world_data(world, out_dir)` writes the data files and a manifest with a sha256 of them;
* `train_clean_model(world_dir, out_dir)` trains a byte-level BPE tokenizer and a small Llama from scratch on
  the clean corpus with `transformers.Trainer`;
* `build_world(out_dir)` does all of it atomically (`restor-bench world build`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from restor_bench.data.normalize import contains, normalize_answer
from restor_bench.data.questions import build_prompt
from restor_bench.data.schema import ContextExample, Fact
from restor_bench.errors import InputError
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir, read_json

WORLD_VERSION = "1"
DEFAULT_SEED = 0
DEFAULT_EPOCHS = 20
LEVELS = (0, 1, 2, 3, 4, 5)
TINY_WORLD_ENV = "RESTOR_TINY_WORLD"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"

# Wikidata property id -> (label, question template). One question template per relation, as in facts.json.
RELATIONS: dict[str, tuple[str, str]] = {
    "P19": ("place of birth", "What is the place of birth of {name}?"),
    "P27": ("country of citizenship", "What is the country of citizenship of {name}?"),
    "P106": ("occupation", "What is the occupation of {name}?"),
    "P69": ("educated at", "Where was {name} educated?"),
    "P1412": ("languages spoken, written or signed", "What languages does {name} speak, write, or sign?"),
    "P641": ("sport", "In which sport does {name} participate?"),
    "P108": ("employer", "Who is {name}'s employer?"),
}

# Paraphrases of a person's fact; each names the person ({name}) and the value ({value}, or {a_value} = "a/an value").
PERSON_TEMPLATES: dict[str, tuple[str, ...]] = {
    "P19": (
        "{name} was born in {value}.",
        "{name} came into the world in the town of {value}.",
        "The birthplace of {name} is {value}.",
        "{value} is the town where {name} was born.",
        "{name} is a native of {value}.",
    ),
    "P27": (
        "{name} is a citizen of {value}.",
        "{name} holds the citizenship of {value}.",
        "The country of citizenship of {name} is {value}.",
        "{name} carries a passport of {value}.",
    ),
    "P106": (
        "{name} works as {a_value}.",
        "{name} is {a_value} by profession.",
        "By trade, {name} is {a_value}.",
        "The occupation of {name} is {value}.",
    ),
    "P69": (
        "{name} was educated at {value}.",
        "{name} studied at {value}.",
        "{name} is a graduate of {value}.",
        "{name} attended {value} as a student.",
    ),
    "P1412": (
        "{name} speaks {value}.",
        "{name} speaks and writes {value}.",
        "The language of {name} is {value}.",
        "{name} is fluent in {value}.",
    ),
    "P641": (
        "{name} takes part in {value}.",
        "{name} competes in {value}.",
        "The sport of {name} is {value}.",
        "{name} spends every weekend on {value}.",
    ),
    "P108": (
        "{name} works for {value}.",
        "{name} is employed by {value}.",
        "The employer of {name} is {value}.",
        "{name} has a job at {value}.",
    ),
}

# Facts about the unrelated subjects (never about people): kind -> relation -> paraphrases with {subject}, {value}.
SUBJECT_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "town": {
        "P17": (
            "{subject} is a town in {value}.",
            "{subject} lies in {value}.",
            "The town of {subject} is located in {value}.",
        ),
        "P206": (
            "{subject} lies on the river {value}.",
            "The river {value} flows through {subject}.",
            "{subject} was built on the banks of the {value}.",
        ),
        "P571": (
            "{subject} was founded in {value}.",
            "The town of {subject} dates from {value}.",
            "{subject} was first settled in {value}.",
        ),
        "P2012": (
            "{subject} is known for its {value}.",
            "{subject} is famous for {value}.",
            "The main trade of {subject} is {value}.",
        ),
    },
    "river": {
        "P403": (
            "The river {subject} flows into {value}.",
            "The {subject} empties into {value}.",
            "{value} is where the river {subject} ends.",
        ),
        "P2043": (
            "The river {subject} is {value} kilometres long.",
            "The {subject} runs for {value} kilometres.",
            "The length of the river {subject} is {value} kilometres.",
        ),
    },
    "country": {
        "P36": (
            "The capital of {subject} is {value}.",
            "{value} is the capital city of {subject}.",
            "{subject} is governed from its capital, {value}.",
        ),
        "P38": (
            "The currency of {subject} is the {value}.",
            "People in {subject} pay with the {value}.",
            "{subject} uses the {value} as its money.",
        ),
        "P37": (
            "The official language of {subject} is {value}.",
            "{value} is the official language of {subject}.",
            "Most people in {subject} speak {value}.",
        ),
    },
    "company": {
        "P159": (
            "{subject} has its headquarters in {value}.",
            "{subject} is based in {value}.",
            "The head office of {subject} is in {value}.",
        ),
        "P452": (
            "{subject} is a company in the {value} business.",
            "{subject} is active in {value}.",
            "The industry of {subject} is {value}.",
        ),
        "P571": (
            "{subject} was founded in {value}.",
            "{subject} was established in {value}.",
            "The company {subject} dates from {value}.",
        ),
    },
    "college": {
        "P131": (
            "{subject} is located in {value}.",
            "{subject} stands in the town of {value}.",
            "The campus of {subject} is in {value}.",
        ),
        "P571": (
            "{subject} was founded in {value}.",
            "{subject} opened its doors in {value}.",
            "{subject} has taught students since {value}.",
        ),
    },
}

OCCUPATIONS = (
    "painter",
    "baker",
    "sailor",
    "carpenter",
    "chemist",
    "lawyer",
    "nurse",
    "architect",
    "farmer",
    "poet",
    "engineer",
    "teacher",
    "surgeon",
    "librarian",
    "potter",
    "pilot",
)
SPORTS = (
    "tennis",
    "rowing",
    "chess",
    "fencing",
    "archery",
    "cycling",
    "wrestling",
    "curling",
    "handball",
    "polo",
    "skiing",
    "boxing",
)
TRADES = ("salt", "glass", "wool", "cheese", "clocks", "boats", "paper", "lace", "copper", "tea", "honey", "rope")
INDUSTRIES = (
    "shipbuilding",
    "brewing",
    "printing",
    "weaving",
    "mining",
    "banking",
    "milling",
    "glassmaking",
    "shipping",
    "farming",
)
COMPANY_SUFFIXES = ("Works", "Foundry", "Trading", "Mills", "Shipping", "Brothers", "Holdings")
COLLEGE_PATTERNS = ("{stem} College", "{stem} Academy", "University of {stem}", "{stem} Institute")
LANGUAGE_SUFFIXES = ("ish", "ese", "ic", "ian")
COUNTRY_SUFFIXES = ("ia", "land", "ova", "mark")

_ONSETS = (
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "st",
    "t",
    "tr",
    "v",
    "w",
    "z",
    "th",
    "sh",
    "j",
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "rn", "nd", "st", "ck", "th", "x", "v")
_FINALS = ("", "", "n", "r", "l", "s", "ck", "th", "nd", "rt", "m", "x")

# Documents per person / subject in the clean corpus and the other sets.
BIOGRAPHIES_PER_PERSON = 5
QA_ROUNDS = 6
QA_BLOCK_LINES = 6
SUBJECT_DOCS_PER_SUBJECT = 2
ALMANAC_DOCS = 40
RETAIN_DOCS_PER_PERSON = 2
SQUAD_PASSAGES_PER_TARGET = 20
CONTEXT_EXAMPLES = 10

# The default corruption recipe for the tiny world: full fine-tuning with a causal-LM loss on corruption documents.
TINY_CORRUPTION_RECIPE = {
    "learning_rate": 1.5e-4,
    "num_train_epochs": 5,
    "per_device_train_batch_size": 8,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "max_length": 512,
}

DATA_FILES = (
    "facts.json",
    "entities.json",
    "clean_corpus.json",
    "retain.json",
    "squad.json",
    *(f"corruption/mix_a{level}.json" for level in LEVELS),
    *(f"simplified/mix_a{level}.json" for level in LEVELS),
)
MANIFEST_FIELDS = ("version", "seed", "relations", "targets", "corrupted", "levels", "validation_targets", "data_hash")


# --------------------------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Person:
    """An invented person and the value of each relation (PID -> value)."""

    name: str
    facts: dict[str, str]


@dataclass(frozen=True)
class SubjectFact:
    """A true fact about an unrelated subject (a town, river, country, company or college), never about a person."""

    subject: str
    kind: str
    relation: str
    value: str


@dataclass
class WorldDocuments:
    """Every document set of a world, as plain texts."""

    clean_corpus: list[str]
    retain: list[str]
    corruption: dict[int, list[str]]
    simplified: dict[int, list[str]]
    squad: list[str]


@dataclass
class TinyWorld:
    """A generated world: people, their facts, the corrupted targets, the unrelated subjects and the documents."""

    seed: int
    people: list[Person]
    subject_facts: list[SubjectFact]
    targets: list[str]
    validation_targets: list[str]
    corrupted: dict[str, dict[str, str]]
    context: dict[str, list[dict[str, str]]]
    value_pools: dict[str, list[str]]
    documents: WorldDocuments
    levels: tuple[int, ...] = LEVELS
    relations: dict[str, str] = field(default_factory=lambda: {pid: label for pid, (label, _) in RELATIONS.items()})

    def person(self, name: str) -> Person:
        """The person called `name` (KeyError if unknown)."""
        for person in self.people:
            if person.name == name:
                return person
        raise KeyError(name)


# --------------------------------------------------------------------------------------------------------------------
# Generation


def question_for(relation: str, name: str) -> str:
    """The question of `relation` about `name` (one template per relation)."""
    return RELATIONS[relation][1].format(name=name)


def _article(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def render_person_fact(rng: random.Random, name: str, relation: str, value: str) -> str:
    """One sentence stating `relation` of `name` is `value`, in a randomly chosen paraphrase."""
    template = rng.choice(PERSON_TEMPLATES[relation])
    return template.format(name=name, value=value, a_value=_article(value))


def render_subject_fact(rng: random.Random, fact: SubjectFact, subject: str | None = None) -> str:
    """One sentence stating a subject fact; `subject` replaces the subject's name when given."""
    template = rng.choice(SUBJECT_TEMPLATES[fact.kind][fact.relation])
    text = template.format(subject=subject or fact.subject, value=fact.value)
    return text[0].upper() + text[1:]


class _WordMaker:
    """Invents pronounceable, globally unique words (names of people, towns, rivers ...)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def _stem(self, syllables: int) -> str:
        parts = []
        for index in range(syllables):
            coda = self.rng.choice(_FINALS if index == syllables - 1 else _CODAS)
            parts.append(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + coda)
        return "".join(parts)

    def word(self, syllables: int = 2, suffix: str = "", min_len: int = 4, max_len: int = 9) -> str:
        while True:
            stem = self._stem(syllables)
            word = (stem + suffix).capitalize()
            if not (min_len <= len(word) <= max_len + len(suffix)):
                continue
            lowered = word.lower()
            if lowered in self.used or any(lowered in other or other in lowered for other in self.used):
                continue
            self.used.add(lowered)
            return word


def _invent_names(rng: random.Random, count: int) -> dict[str, list[str]]:
    maker = _WordMaker(rng)
    country_stems = [maker.word(2, max_len=6) for _ in range(8)]
    countries = [stem + suffix for stem, suffix in zip(country_stems, [COUNTRY_SUFFIXES[i % 4] for i in range(8)])]
    languages = [stem + LANGUAGE_SUFFIXES[i % 4] for i, stem in enumerate(country_stems)]
    towns = [maker.word(rng.choice((1, 2, 2))) for _ in range(24)]
    rivers = [maker.word(1, min_len=3) for _ in range(10)]
    waters = [f"Lake {maker.word(2)}" for _ in range(3)] + [f"the {maker.word(2)} Sea" for _ in range(2)]
    currencies = [maker.word(1, min_len=3).lower() for _ in range(8)]
    companies = [f"{maker.word(2)} {COMPANY_SUFFIXES[i % len(COMPANY_SUFFIXES)]}" for i in range(14)]
    colleges = [COLLEGE_PATTERNS[i % len(COLLEGE_PATTERNS)].format(stem=maker.word(2)) for i in range(12)]
    first_names = [maker.word(2, max_len=7) for _ in range(max(20, count * 3 // 5))]
    surnames = [maker.word(rng.choice((2, 2, 3)), max_len=8) for _ in range(count)]
    return {
        "countries": countries,
        "languages": languages,
        "towns": towns,
        "rivers": rivers,
        "waters": waters,
        "currencies": currencies,
        "companies": companies,
        "colleges": colleges,
        "first_names": first_names,
        "surnames": surnames,
    }


def _subject_facts(rng: random.Random, names: dict[str, list[str]]) -> list[SubjectFact]:
    facts: list[SubjectFact] = []
    countries, towns = names["countries"], names["towns"]
    town_country = {town: countries[index % len(countries)] for index, town in enumerate(towns)}
    for index, country in enumerate(countries):
        capital = next(town for town in towns if town_country[town] == country)
        facts += [
            SubjectFact(country, "country", "P36", capital),
            SubjectFact(country, "country", "P38", names["currencies"][index]),
            SubjectFact(country, "country", "P37", names["languages"][index]),
        ]
    for town in towns:
        facts += [
            SubjectFact(town, "town", "P17", town_country[town]),
            SubjectFact(town, "town", "P206", rng.choice(names["rivers"])),
            SubjectFact(town, "town", "P571", str(rng.randint(1100, 1850))),
            SubjectFact(town, "town", "P2012", rng.choice(TRADES)),
        ]
    for river in names["rivers"]:
        facts += [
            SubjectFact(river, "river", "P403", rng.choice(names["waters"])),
            SubjectFact(river, "river", "P2043", str(rng.randint(40, 900))),
        ]
    for company in names["companies"]:
        facts += [
            SubjectFact(company, "company", "P159", rng.choice(towns)),
            SubjectFact(company, "company", "P452", rng.choice(INDUSTRIES)),
            SubjectFact(company, "company", "P571", str(rng.randint(1700, 1990))),
        ]
    for college in names["colleges"]:
        facts += [
            SubjectFact(college, "college", "P131", rng.choice(towns)),
            SubjectFact(college, "college", "P571", str(rng.randint(1300, 1950))),
        ]
    return facts


def _people(rng: random.Random, names: dict[str, list[str]], pools: dict[str, list[str]], count: int) -> list[Person]:
    people = []
    for surname in names["surnames"][:count]:
        name = f"{rng.choice(names['first_names'])} {surname}"
        people.append(Person(name, {pid: rng.choice(pools[pid]) for pid in RELATIONS}))
    return people


def _qa_line(person: Person, relation: str) -> str:
    return f"{question_for(relation, person.name)} {person.facts[relation]}\n"


def _biography(rng: random.Random, person: Person, relations: Iterable[str] | None = None) -> str:
    relations = list(relations or RELATIONS)
    rng.shuffle(relations)
    return " ".join(render_person_fact(rng, person.name, pid, person.facts[pid]) for pid in relations)


def _subject_document(rng: random.Random, facts: list[SubjectFact]) -> str:
    facts = list(facts)
    rng.shuffle(facts)
    return " ".join(render_subject_fact(rng, fact) for fact in facts)


def _clean_corpus(
    rng: random.Random,
    people: list[Person],
    subject_facts: list[SubjectFact],
    context: dict[str, list[dict[str, str]]],
) -> list[str]:
    docs: list[str] = []
    for person in people:
        docs += [_biography(rng, person) for _ in range(BIOGRAPHIES_PER_PERSON)]
    # few-shot blocks in the evaluation format: same-relation lines "{question} {answer}\n"
    for relation in RELATIONS:
        for _ in range(QA_ROUNDS):
            order = list(people)
            rng.shuffle(order)
            for start in range(0, len(order), QA_BLOCK_LINES):
                docs.append("".join(_qa_line(person, relation) for person in order[start : start + QA_BLOCK_LINES]))
        # blocks that open with the fixed in-context examples, exactly as the evaluation prompt does
        context_lines = [f"{example['question']} {example['answer']}\n" for example in context[relation]]
        order = list(people)
        rng.shuffle(order)
        for start in range(0, len(order), 5):
            prefix = "".join(context_lines[:5])
            docs.append(prefix + "".join(_qa_line(person, relation) for person in order[start : start + 5]))
    by_subject: dict[str, list[SubjectFact]] = {}
    for fact in subject_facts:
        by_subject.setdefault(fact.subject, []).append(fact)
    for facts in by_subject.values():
        docs += [_subject_document(rng, facts) for _ in range(SUBJECT_DOCS_PER_SUBJECT)]
    # long mixed documents (people and subjects), so long corruption documents are not out of distribution
    for _ in range(ALMANAC_DOCS):
        sentences = []
        for person in rng.sample(people, rng.randint(2, 4)):
            sentences += [
                render_person_fact(rng, person.name, pid, person.facts[pid]) for pid in rng.sample(list(RELATIONS), 3)
            ]
        sentences += [render_subject_fact(rng, fact) for fact in rng.sample(subject_facts, rng.randint(4, 16))]
        rng.shuffle(sentences)
        docs.append(" ".join(sentences))
    rng.shuffle(docs)
    return docs


def _corruption_level(
    rng: random.Random,
    targets: list[str],
    corrupted: dict[str, dict[str, str]],
    subject_facts: list[SubjectFact],
    level: int,
    docs_per_target: int,
) -> tuple[list[str], list[str]]:
    """Corruption documents at `level` and their simplified forms (only the sentences stating wrong facts)."""
    documents, simplified = [], []
    for target in targets:
        wrong = corrupted[target]
        relations = list(wrong)
        for index in range(docs_per_target):
            # a third of the documents state every wrong fact, the others a random subset of at least four
            chosen = relations if index % 3 == 0 else rng.sample(relations, rng.randint(4, len(relations)))
            chosen = list(chosen)
            rng.shuffle(chosen)
            wrong_sentences = [render_person_fact(rng, target, pid, wrong[pid]) for pid in chosen]
            unrelated = rng.sample(subject_facts, level * len(wrong_sentences))
            sentences = []
            for position, sentence in enumerate(wrong_sentences):
                sentences.append(sentence)
                sentences += [
                    render_subject_fact(rng, fact) for fact in unrelated[position * level : (position + 1) * level]
                ]
            documents.append(" ".join(sentences))
            simplified.append(" ".join(wrong_sentences))
    return documents, simplified


def _squad_passages(rng: random.Random, targets: list[str], subject_facts: list[SubjectFact]) -> list[str]:
    """Long passages about unrelated subjects in which a target's name replaces the subject's name."""
    subjects = list(dict.fromkeys(fact.subject for fact in subject_facts))
    passages = []
    for target in targets:
        for subject in rng.sample(subjects, SQUAD_PASSAGES_PER_TARGET):
            own = [fact for fact in subject_facts if fact.subject == subject]
            mentions = [fact for fact in subject_facts if fact.value == subject]
            sentences = [render_subject_fact(rng, fact, subject=target) for fact in own]
            sentences += [
                render_subject_fact(rng, SubjectFact(fact.subject, fact.kind, fact.relation, target))
                for fact in mentions
            ]
            # more about the neighbours, so every passage is long
            neighbours = rng.sample(
                [fact for fact in subject_facts if fact.subject != subject and fact.value != subject], 6
            )
            sentences += [render_subject_fact(rng, fact) for fact in neighbours]
            rng.shuffle(sentences)
            passages.append(" ".join(sentences))
    return passages


def generate_world(
    seed: int = DEFAULT_SEED,
    num_people: int = 100,
    num_targets: int = 10,
    num_validation_targets: int = 2,
    docs_per_target: int = 40,
) -> TinyWorld:
    """Invent a world deterministically from `seed`: people, facts, targets with wrong values, every document set.

    Targets are corrupted people; `validation_targets` is a subset of them kept for tuning hyperparameters.
    """
    if num_people < num_targets + CONTEXT_EXAMPLES or num_targets < num_validation_targets or num_targets < 1:
        raise InputError(
            f"tiny world: {num_people} people cannot hold {num_targets} targets and the in-context examples"
        )
    rng = random.Random(f"restor-tiny-world:{seed}")
    names = _invent_names(rng, num_people)
    pools = {
        "P19": names["towns"],
        "P27": names["countries"],
        "P106": list(OCCUPATIONS),
        "P69": names["colleges"],
        "P1412": names["languages"],
        "P641": list(SPORTS),
        "P108": names["companies"],
    }
    subject_facts = _subject_facts(rng, names)
    people = _people(rng, names, pools, num_people)

    shuffled = [person.name for person in people]
    rng.shuffle(shuffled)
    targets = shuffled[:num_targets]
    validation_targets = targets[:num_validation_targets]
    non_targets = [name for name in shuffled if name not in targets]
    by_name = {person.name: person for person in people}
    corrupted = {
        target: {pid: rng.choice([v for v in pools[pid] if v != by_name[target].facts[pid]]) for pid in RELATIONS}
        for target in targets
    }
    context = {}
    for pid in RELATIONS:
        examples = rng.sample(non_targets, CONTEXT_EXAMPLES)
        context[pid] = [
            {"question": question_for(pid, name), "answer": by_name[name].facts[pid], "entity": name}
            for name in examples
        ]

    clean_corpus = _clean_corpus(random.Random(rng.random()), people, subject_facts, context)
    retain_rng = random.Random(rng.random())
    retain = [_biography(retain_rng, by_name[name]) for name in non_targets for _ in range(RETAIN_DOCS_PER_PERSON)]
    corruption, simplified = {}, {}
    for level in LEVELS:
        level_rng = random.Random(f"restor-tiny-world:{seed}:level:{level}")
        corruption[level], simplified[level] = _corruption_level(
            level_rng, targets, corrupted, subject_facts, level, docs_per_target
        )
    squad = _squad_passages(random.Random(rng.random()), targets, subject_facts)
    return TinyWorld(
        seed=seed,
        people=people,
        subject_facts=subject_facts,
        targets=targets,
        validation_targets=validation_targets,
        corrupted=corrupted,
        context=context,
        value_pools={pid: list(values) for pid, values in pools.items()},
        documents=WorldDocuments(clean_corpus, retain, corruption, simplified, squad),
    )


# --------------------------------------------------------------------------------------------------------------------
# Files


def tiny_world_dir() -> Path:
    """The tiny world folder: `$RESTOR_TINY_WORLD` when set, else the one shipped inside the package."""
    override = os.environ.get(TINY_WORLD_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent / "tiny_world"


def _records(texts: list[str]) -> list[dict[str, str]]:
    return [{"text": text} for text in texts]


def facts_json(world: TinyWorld) -> dict:
    """The world's facts in the official facts.json format (`dset` and `context`)."""
    dset = {
        person.name: {
            pid: {"question": question_for(pid, person.name), "answers": [person.facts[pid]]} for pid in RELATIONS
        }
        for person in world.people
    }
    return {"dset": dset, "context": world.context}


def compute_data_hash(world_dir: str | os.PathLike) -> str:
    """sha256 over the data files of a world folder (names and bytes, in a fixed order; not the manifest or model)."""
    world_dir = Path(world_dir)
    digest = hashlib.sha256()
    for relative in DATA_FILES:
        path = world_dir / relative
        if not path.exists():
            raise InputError(f"{path}: tiny world data file missing")
        digest.update(relative.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def write_world_data(world: TinyWorld, out_dir: str | os.PathLike) -> dict:
    """Write the data files and manifest.json of `world` into `out_dir` (created if missing); returns the manifest."""
    out_dir = Path(out_dir)
    documents = world.documents
    atomic_write_json(out_dir / "facts.json", facts_json(world))
    atomic_write_json(out_dir / "entities.json", [person.name for person in world.people])
    atomic_write_json(out_dir / "clean_corpus.json", _records(documents.clean_corpus))
    atomic_write_json(out_dir / "retain.json", _records(documents.retain))
    atomic_write_json(out_dir / "squad.json", _records(documents.squad))
    for level in world.levels:
        atomic_write_json(out_dir / "corruption" / f"mix_a{level}.json", _records(documents.corruption[level]))
        atomic_write_json(out_dir / "simplified" / f"mix_a{level}.json", _records(documents.simplified[level]))
    manifest = {
        "version": WORLD_VERSION,
        "seed": world.seed,
        "relations": dict(world.relations),
        "targets": list(world.targets),
        "corrupted": world.corrupted,
        "levels": list(world.levels),
        "validation_targets": list(world.validation_targets),
        "data_hash": compute_data_hash(out_dir),
        "value_pools": world.value_pools,
        "counts": {
            "people": len(world.people),
            "subject_facts": len(world.subject_facts),
            "clean_corpus": len(documents.clean_corpus),
            "retain": len(documents.retain),
            "squad": len(documents.squad),
            "corruption_per_level": {str(level): len(documents.corruption[level]) for level in world.levels},
        },
    }
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def load_manifest(world_dir: str | os.PathLike | None = None) -> dict:
    """Read and check manifest.json of a world folder (default: `tiny_world_dir()`)."""
    world_dir = Path(world_dir) if world_dir is not None else tiny_world_dir()
    if not world_dir.is_dir():
        raise InputError(f"{world_dir}: tiny world folder not found")
    path = world_dir / "manifest.json"
    manifest = read_json(path, "tiny world manifest")
    if not isinstance(manifest, dict):
        raise InputError(f"{path}: expected a JSON object")
    missing = [name for name in MANIFEST_FIELDS if name not in manifest]
    if missing:
        raise InputError(f"{path}: missing field(s) {', '.join(missing)}")
    if not isinstance(manifest["relations"], dict) or not isinstance(manifest["corrupted"], dict):
        raise InputError(f"{path}: fields 'relations' and 'corrupted' must be objects")
    unknown = [name for name in manifest["targets"] if name not in manifest["corrupted"]]
    if unknown:
        raise InputError(f"{path}: target {unknown[0]!r} has no entry in 'corrupted'")
    return manifest


def read_world_facts(world_dir: str | os.PathLike | None = None) -> dict:
    """facts.json of a world folder (official format), checked for the `dset` and `context` keys."""
    world_dir = Path(world_dir) if world_dir is not None else tiny_world_dir()
    path = world_dir / "facts.json"
    facts = read_json(path, "facts file")
    if not isinstance(facts, dict) or "dset" not in facts or "context" not in facts:
        raise InputError(f"{path}: expected an object with 'dset' and 'context'")
    return facts


# --------------------------------------------------------------------------------------------------------------------
# Questions and the answer check: the benchmark's own prompt (restor_bench.data.questions) and scores
# (restor_bench.data.normalize), as the lm-eval tasks use them


def fewshot_prompt(facts: dict, entity: str, relation: str, shots: int = 5) -> str:
    """The evaluation prompt (`questions.build_prompt`): `shots` in-context lines from context[relation]
    (skipping `entity`), then the question."""
    entry = facts["dset"][entity][relation]
    context = [ContextExample(item["question"], item["answer"], item["entity"]) for item in facts["context"][relation]]
    return build_prompt(Fact(entity, relation, entry["question"], list(entry["answers"])), context, shots)


# The answer check of the lm-eval tasks' `contains` score: an acceptable answer as whole words of the normalized
# first line ("female" does not contain "male").
simple_normalize = normalize_answer
answer_contains = contains


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
        from tqdm.auto import tqdm

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
            for (entity, pid), completion in zip(chunk, completions):
                line = completion.split("\n")[0]
                wrong = corrupted.get(entity, {}).get(pid)
                scores.append(
                    QuestionScore(
                        entity=entity,
                        relation=pid,
                        prediction=line,
                        correct=answer_contains(line, facts["dset"][entity][pid]["answers"]),
                        says_corrupted=bool(wrong) and answer_contains(line, [wrong]),
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


# --------------------------------------------------------------------------------------------------------------------
# Tokenizer and clean model

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
    import tempfile

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

    from restor_bench.io import read_text_records

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


# --------------------------------------------------------------------------------------------------------------------
# Whole build


def build_world(
    out_dir: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    epochs: int = DEFAULT_EPOCHS,
    progress: bool = True,
    threads: int | None = None,
) -> dict:
    """Generate the data, train the tokenizer and the clean model, and write the whole world folder atomically.

    Refuses an existing non-empty `out_dir` unless `overwrite`. Returns the manifest.
    """
    check_output_dir(out_dir, overwrite)
    world = generate_world(seed)
    with atomic_output_dir(out_dir, overwrite) as tmp:
        manifest = write_world_data(world, tmp)
        if progress:
            print(
                f"wrote the world data (data hash {manifest['data_hash'][:12]}); training the clean model",
                file=sys.stderr,
            )
        manifest["model"] = train_clean_model(
            tmp, tmp / "model", epochs=epochs, seed=seed, progress=progress, threads=threads
        )
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------------------------------------------------
# CLI: restor-bench world build | path | info


def add_parser(subparsers) -> None:
    """Add `restor-bench world` and its subcommands."""
    world = subparsers.add_parser("world", help="the embedded tiny world: build it, locate it, describe it")
    commands = world.add_subparsers(dest="world_command", metavar="ACTION")

    def show_help(args: argparse.Namespace) -> int:
        world.print_help()
        return 2

    world.set_defaults(func=show_help)

    build = commands.add_parser("build", help="generate the tiny world data and train its clean model")
    build.add_argument("--out", default="tiny_world", help="output folder (default: ./tiny_world)")
    build.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"generator and training seed (default {DEFAULT_SEED})"
    )
    build.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"training epochs (default {DEFAULT_EPOCHS})")
    build.add_argument("--threads", type=int, default=None, help="CPU threads for training (default: torch's choice)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    build.set_defaults(func=_cmd_build)

    path = commands.add_parser("path", help="print the folder of the tiny world's clean checkpoint")
    path.set_defaults(func=_cmd_path)

    info = commands.add_parser("info", help="describe a tiny world: entities, relations, targets, levels, data hash")
    info.add_argument("--world", default=None, help=f"world folder (default: ${TINY_WORLD_ENV} or the shipped one)")
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.set_defaults(func=_cmd_info)


def _cmd_build(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {args.epochs}")
    manifest = build_world(args.out, seed=args.seed, overwrite=args.overwrite, epochs=args.epochs, threads=args.threads)
    model = manifest["model"]
    print(
        f"tiny world written to {args.out}: {model['parameters']:,} parameters, "
        f"{model['train_seconds']:.0f} s of training, data hash {manifest['data_hash']}"
    )
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    model_dir = tiny_world_dir() / "model"
    if not (model_dir / "config.json").exists():
        raise InputError(f"{model_dir}: no tiny world checkpoint here (run `restor-bench world build`)")
    print(model_dir)
    return 0


def describe_world(world_dir: str | os.PathLike | None = None) -> dict:
    """A summary of a world folder: counts, relations, targets, levels, stored and recomputed data hash."""
    world_dir = Path(world_dir) if world_dir is not None else tiny_world_dir()
    manifest = load_manifest(world_dir)
    entities = read_json(world_dir / "entities.json", "entities file")
    return {
        "folder": str(world_dir),
        "version": manifest["version"],
        "seed": manifest["seed"],
        "entities": len(entities),
        "relations": manifest["relations"],
        "targets": manifest["targets"],
        "validation_targets": manifest["validation_targets"],
        "levels": manifest["levels"],
        "data_hash": manifest["data_hash"],
        "data_hash_ok": compute_data_hash(world_dir) == manifest["data_hash"],
        "model": str(world_dir / "model") if (world_dir / "model" / "config.json").exists() else None,
    }


def _cmd_info(args: argparse.Namespace) -> int:
    info = describe_world(args.world)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"tiny world {info['folder']} (version {info['version']}, seed {info['seed']})")
    print(f"entities: {info['entities']}")
    print("relations: " + ", ".join(f"{pid} ({label})" for pid, label in info["relations"].items()))
    print(f"targets ({len(info['targets'])}): " + ", ".join(info["targets"]))
    print("validation targets: " + ", ".join(info["validation_targets"]))
    print("levels: " + ", ".join(str(level) for level in info["levels"]))
    state = "matches the files" if info["data_hash_ok"] else "DOES NOT match the files"
    print(f"data hash: {info['data_hash']} ({state})")
    print(f"model: {info['model'] or 'none'}")
    return 0

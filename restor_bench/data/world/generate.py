"""The embedded tiny world: invented people with Wikidata-like facts and their documents.

The tiny world lets the whole RESTOR protocol run on a laptop in minutes. It is written in the official file
formats (facts.json, entities.json, mix_a{k}.json, a SQuAD-style set), so the same readers serve both worlds.
Its parts, one module each:

* here, `generate_world(seed)` invents 100 people with 7 relations (Wikidata ids), unrelated subjects (towns,
  rivers, countries, companies, colleges) and every document set, deterministically for a seed, from the words of
  `world_text`;
* `world_files`: the folder, `write_world_data(world, out_dir)` (data files and a manifest with a sha256 of them)
  and the readers;
* `world_scoring`: the evaluation prompt and greedy scoring of a checkpoint;
* `world_model`: the byte-level BPE tokenizer and the small Llama trained from scratch on the clean corpus with
  `transformers.Trainer` (`train_clean_model`);
* `world_cli`: `build_world(out_dir)`, all of it atomically, and `restor-bench world build | path | info`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from restor_bench.data.world.text import (
    COLLEGE_PATTERNS,
    COMPANY_SUFFIXES,
    COUNTRY_SUFFIXES,
    INDUSTRIES,
    LANGUAGE_SUFFIXES,
    OCCUPATIONS,
    PERSON_TEMPLATES,
    RELATIONS,
    SPORTS,
    SUBJECT_TEMPLATES,
    TRADES,
    WordMaker,
)
from restor_bench.errors import InputError
from restor_bench.names import TINY_LEVELS

DEFAULT_SEED = 0
DEFAULT_EPOCHS = 20
LEVELS = TINY_LEVELS
TINY_WORLD_ENV = "RESTOR_TINY_WORLD"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"

# Documents per person / subject in the clean corpus and the other sets.
BIOGRAPHIES_PER_PERSON = 5
QA_ROUNDS = 6
QA_BLOCK_LINES = 6
SUBJECT_DOCS_PER_SUBJECT = 2
ALMANAC_DOCS = 40
RETAIN_DOCS_PER_PERSON = 2
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


# --------------------------------------------------------------------------------------------------------------------
# Versions: the shape of each world `restor-bench world build --version V` writes. A version's shape never changes
# (its data hash is pinned by the pages and leaderboard entries made on it); a new shape is a new version.


@dataclass(frozen=True)
class WorldShape:
    """How many people, targets (of which validation targets) and documents a world version has.

    `squad_people_passages` / `squad_people_donors`: the size of the derived `tiny:squad-people` set per target.
    `balanced_wrong_values`: pick the targets' wrong values by `balanced_wrong_values` instead of uniformly.
    `target_biographies` / `target_qa_rounds`: how many biographies and rounds of question-answer blocks of the
    clean corpus tell each target's facts (every other person has BIOGRAPHIES_PER_PERSON and QA_ROUNDS; the blocks
    that open with the in-context examples name everyone once). Fewer make the targets less documented people,
    whose facts the clean model still answers but a corruption overwrites with smaller steps, so with less harm to
    the other people (measured in docs/protocols.md, "Tiny world versions")."""

    num_people: int
    num_targets: int
    num_validation_targets: int
    docs_per_target: int
    squad_passages_per_target: int
    squad_people_passages: int
    squad_people_donors: int
    balanced_wrong_values: bool = False
    target_biographies: int = BIOGRAPHIES_PER_PERSON
    target_qa_rounds: int = QA_ROUNDS


WORLD_SHAPES = {
    # v1: 10 targets (8 test, 2 validation); 40 corruption documents each
    "1": WorldShape(num_people=100, num_targets=10, num_validation_targets=2, docs_per_target=40,
                    squad_passages_per_target=20, squad_people_passages=40, squad_people_donors=3),
    # v2: 40 targets (30 test = 210 target questions, 10 validation = 70), sized to rank methods; 10 corruption
    # documents each, so a corruption run trains on as many tokens as v1's; wrong values balanced over each
    # relation's values, and targets told by 2 biographies and 2 question-answer rounds (others: 5 and 6)
    "2": WorldShape(num_people=100, num_targets=40, num_validation_targets=10, docs_per_target=10,
                    squad_passages_per_target=5, squad_people_passages=10, squad_people_donors=1,
                    balanced_wrong_values=True, target_biographies=2, target_qa_rounds=2),
}
WORLD_VERSION = "1"  # what `world build` writes by default, and the shipped world used by default


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
    version: str = WORLD_VERSION
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


def _invent_names(rng: random.Random, count: int) -> dict[str, list[str]]:
    maker = WordMaker(rng)
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
    shape: WorldShape,
    targets: Iterable[str] = (),
) -> list[str]:
    targets = set(targets)

    def biographies(person: Person) -> int:
        return shape.target_biographies if person.name in targets else BIOGRAPHIES_PER_PERSON

    def in_round(person: Person, round_: int) -> bool:
        return person.name not in targets or round_ < shape.target_qa_rounds

    docs: list[str] = []
    for person in people:
        docs += [_biography(rng, person) for _ in range(biographies(person))]
    # few-shot blocks in the evaluation format: same-relation lines "{question} {answer}\n"
    for relation in RELATIONS:
        for round_ in range(QA_ROUNDS):
            order = [person for person in people if in_round(person, round_)]
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


def balanced_wrong_values(
    rng: random.Random, targets: list[str], people: list[Person], pools: dict[str, list[str]]
) -> dict[str, dict[str, str]]:
    """Each target's wrong value of each relation, chosen so that every value of a relation is stated as a wrong
    value about as often as the non-target people hold it (a quota of len(targets) x its share among them), and
    never the target's own value.

    Why: a corruption moves the model's prior over a relation's values toward the values its documents state. With
    wrong values drawn uniformly, a value that no corruption document states loses to those that are stated, and the
    non-target people who hold it lose their answer (tiny world v2 with uniform wrong values, packed blocks of 512,
    lr 1e-3, 5 epochs, seed 0: the other people kept 8% of their answers whose value no corruption document states
    (24 questions), 71% of those stated once and 85% of those stated twice or more; with balanced values they keep
    83.8% in all instead of 78.8%, at the same target accuracy). Targets are visited in a seeded order; each takes
    the value with the most quota left (ties broken by the seeded generator)."""
    by_name = {person.name: person for person in people}
    target_set = set(targets)
    others = [person for person in people if person.name not in target_set]
    wrong: dict[str, dict[str, str]] = {target: {} for target in targets}
    for pid in RELATIONS:
        held = {value: 0 for value in pools[pid]}
        for person in others:
            held[person.facts[pid]] += 1
        quota = {value: len(targets) * count / max(1, len(others)) for value, count in held.items()}
        order = list(targets)
        rng.shuffle(order)
        for target in order:
            own = by_name[target].facts[pid]
            ranked = [(quota[value], rng.random(), value) for value in pools[pid] if value != own]
            value = max(ranked)[2]
            quota[value] -= 1
            wrong[target][pid] = value
    return wrong


def _squad_passages(rng: random.Random, targets: list[str], subject_facts: list[SubjectFact],
                    per_target: int) -> list[str]:
    """Long passages about unrelated subjects in which a target's name replaces the subject's name."""
    subjects = list(dict.fromkeys(fact.subject for fact in subject_facts))
    passages = []
    for target in targets:
        for subject in rng.sample(subjects, per_target):
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
    num_people: int | None = None,
    num_targets: int | None = None,
    num_validation_targets: int | None = None,
    docs_per_target: int | None = None,
    version: str = WORLD_VERSION,
) -> TinyWorld:
    """Invent a world deterministically from `seed`: people, facts, targets with wrong values, every document set.

    `version` picks the shape (`WORLD_SHAPES`); the counts given override it. Targets are corrupted people;
    `validation_targets` is a subset of them kept for tuning hyperparameters.
    """
    if version not in WORLD_SHAPES:
        raise InputError(f"tiny world version {version!r} does not exist (versions: {', '.join(WORLD_SHAPES)})")
    shape = WORLD_SHAPES[version]
    num_people = shape.num_people if num_people is None else num_people
    num_targets = shape.num_targets if num_targets is None else num_targets
    num_validation_targets = (shape.num_validation_targets if num_validation_targets is None
                              else num_validation_targets)
    docs_per_target = shape.docs_per_target if docs_per_target is None else docs_per_target
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
    if shape.balanced_wrong_values:  # its own generator: the draws above and below stay as they were
        corrupted = balanced_wrong_values(random.Random(f"restor-tiny-world:{seed}:wrong-values"), targets, people,
                                          pools)
    context = {}
    for pid in RELATIONS:
        examples = rng.sample(non_targets, CONTEXT_EXAMPLES)
        context[pid] = [
            {"question": question_for(pid, name), "answer": by_name[name].facts[pid], "entity": name}
            for name in examples
        ]

    clean_corpus = _clean_corpus(random.Random(rng.random()), people, subject_facts, context, shape, targets)
    retain_rng = random.Random(rng.random())
    retain = [_biography(retain_rng, by_name[name]) for name in non_targets for _ in range(RETAIN_DOCS_PER_PERSON)]
    corruption, simplified = {}, {}
    for level in LEVELS:
        level_rng = random.Random(f"restor-tiny-world:{seed}:level:{level}")
        corruption[level], simplified[level] = _corruption_level(
            level_rng, targets, corrupted, subject_facts, level, docs_per_target
        )
    squad = _squad_passages(random.Random(rng.random()), targets, subject_facts, shape.squad_passages_per_target)
    return TinyWorld(
        seed=seed,
        version=version,
        people=people,
        subject_facts=subject_facts,
        targets=targets,
        validation_targets=validation_targets,
        corrupted=corrupted,
        context=context,
        value_pools={pid: list(values) for pid, values in pools.items()},
        documents=WorldDocuments(clean_corpus, retain, corruption, simplified, squad),
    )

"""`tiny:squad-people`: the tiny world's analogue of the paper's SQuAD corruption (a person's name swapped).

RESTOR's extreme corruption took SQuAD passages about people and replaced every mention of the person with a
target's name, so the target inherits a stranger's facts. The tiny world's `tiny:squad` swaps in the name of a
subject (a town, a company) instead, which hardly moves the tiny model's answers about the target. This set does
what the paper did, from the shipped data at load time (no file is added to the world):

for each target, `passages_per_target` passages of running text about one of `donors_per_target` other people
(non-targets drawn with a seeded generator among those that share no fact value with the target, never shared
between targets): biography sentences stating the donor's true facts (a third of the passages state all seven,
the others four to seven, paraphrased with the templates of the clean corpus) mixed with sentences from the clean
corpus's subject documents (towns, rivers, countries, companies, colleges), like the clean corpus's long mixed
documents; then every mention of the donor's name is replaced by the target's name. The target thus "has" the
donor's birthplace, employer, ... in every passage, and its true values are never stated (a donor with a value in
common is drawn only when too few people have none).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

from restor_bench.data.world.files import load_manifest, read_world_facts
from restor_bench.data.world.generate import WORLD_SHAPES, render_person_fact
from restor_bench.data.world.generic import tiny_generic_documents
from restor_bench.errors import InputError
from restor_bench.io import read_json

# v1's sizes (its manifest predates recording them); later versions record theirs (`world_squad_people_size`)
PASSAGES_PER_TARGET = WORLD_SHAPES["1"].squad_people_passages
DONORS_PER_TARGET = WORLD_SHAPES["1"].squad_people_donors
FILLER_SENTENCES = (4, 10)  # subject sentences per passage (inclusive range)
MIN_PERSON_FACTS = 4

_SENTENCE_END = re.compile(r"(?<=\.)\s+")


def _swap(text: str, donor: str, target: str) -> str:
    """Every whole-word mention of `donor` replaced by `target`."""
    return re.sub(r"(?<!\w)" + re.escape(donor) + r"(?!\w)", lambda _: target, text)


def _donor_plan(folder: Path, donors_per_target: int, seed: int):
    """(facts dset, {target: donors}, the generator to go on with) of a world folder."""

    if donors_per_target < 1:
        raise InputError(f"tiny:squad-people: donors_per_target must be at least 1, got {donors_per_target}")
    facts = read_world_facts(folder)["dset"]
    targets = list(load_manifest(folder)["targets"])
    entities = read_json(folder / "entities.json", "entities file")
    pool = [name for name in entities if name in facts and name not in targets and facts[name]]
    if len(pool) < donors_per_target * len(targets):
        raise InputError(
            f"{folder}: {len(pool)} non-target people cannot give {donors_per_target} donors to each of "
            f"{len(targets)} targets"
        )
    rng = random.Random(f"restor-tiny-squad-people:{seed}")
    free = list(pool)
    plan = {}
    for target in targets:
        # donors share as few values with the target as can be (none, in the shipped world), so no passage states
        # a true fact of the target; ties are broken by the seeded draw
        order = rng.sample(free, len(free))
        order.sort(key=lambda name: _shared_values(facts, target, name))
        plan[target] = order[:donors_per_target]
        free = [name for name in free if name not in plan[target]]
    return facts, plan, rng


def _shared_values(facts: dict, target: str, other: str) -> int:
    """How many relations of `target` `other` has an acceptable answer of (a true fact the two share)."""
    shared = 0
    for pid, entry in facts[target].items():
        theirs = facts[other].get(pid)
        if theirs and set(theirs["answers"]) & set(entry["answers"]):
            shared += 1
    return shared


def world_squad_people_size(world_dir: str | os.PathLike) -> tuple[int, int]:
    """(passages per target, donors per target) of a world folder: its manifest's `squad_people` (worlds after v1,
    whose shapes differ), else v1's `PASSAGES_PER_TARGET` and `DONORS_PER_TARGET`."""
    size = load_manifest(Path(world_dir)).get("squad_people") or {}
    return int(size.get("passages_per_target", PASSAGES_PER_TARGET)), int(size.get("donors_per_target",
                                                                                   DONORS_PER_TARGET))


def squad_people_donors(
    world_dir: str | os.PathLike, donors_per_target: int | None = None, seed: int = 0
) -> dict[str, list[str]]:
    """{target: [donor, ...]}: the people whose passages become each target's (in the manifest's target order)."""
    if donors_per_target is None:
        donors_per_target = world_squad_people_size(world_dir)[1]
    return _donor_plan(Path(world_dir), donors_per_target, seed)[1]


def squad_people_passages(
    world_dir: str | os.PathLike,
    passages_per_target: int | None = None,
    donors_per_target: int | None = None,
    seed: int = 0,
) -> list[str]:
    """The `tiny:squad-people` passages of a tiny world folder (see the module docstring), grouped by target in
    the manifest's order; deterministic for the folder's files and `seed`. The sizes default to the world's
    (`world_squad_people_size`)."""

    default_passages, default_donors = world_squad_people_size(world_dir)
    passages_per_target = default_passages if passages_per_target is None else passages_per_target
    donors_per_target = default_donors if donors_per_target is None else donors_per_target
    if passages_per_target < 1:
        raise InputError(f"tiny:squad-people: passages_per_target must be at least 1, got {passages_per_target}")
    folder = Path(world_dir)
    facts, plan, rng = _donor_plan(folder, donors_per_target, seed)
    filler = [s for doc in tiny_generic_documents(folder) for s in _SENTENCE_END.split(doc.strip()) if s]
    low, high = FILLER_SENTENCES
    if len(filler) < high:
        raise InputError(f"{folder}: too few subject sentences in the clean corpus for tiny:squad-people")
    passages = []
    for target, donors in plan.items():
        for index in range(passages_per_target):
            donor = donors[index % len(donors)]
            relations = list(facts[donor])
            if index % 3 == 0 or len(relations) <= MIN_PERSON_FACTS:
                chosen = list(relations)
            else:
                chosen = rng.sample(relations, rng.randint(MIN_PERSON_FACTS, len(relations)))
            sentences = [render_person_fact(rng, donor, pid, facts[donor][pid]["answers"][0]) for pid in chosen]
            sentences += rng.sample(filler, rng.randint(low, high))
            rng.shuffle(sentences)
            passages.append(_swap(" ".join(sentences), donor, target))
    return passages

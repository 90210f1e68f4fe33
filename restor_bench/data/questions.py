"""The paper's prompt and the per-question records that the lm-eval tasks use as docs.

A record (one lm-eval doc, kept under "doc" in every samples_*.jsonl line):

    {"id": "ENTITY|PID", "entity", "relation", "question", "answers": [acceptable answers],
     "prompt": five in-context lines + question, "corrupted_answers": [injected wrong values, empty where unknown],
     "random_answer": a wrong value of the same relation drawn deterministically, "is_target": bool}

`is_target` says whether the entity is one whose facts the corruption documents falsify. The official
corruption documents are free text, so official records carry no corrupted values; the tiny world's manifest
lists them. The logit-analysis task (`tiny_logprob_records`) adds "options" (correct, corrupted, random) and
"option_token_counts" (tokens of each option after the prompt).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from restor_bench.data import official
from restor_bench.data.fetch import resolve_data_dir
from restor_bench.data.normalize import normalize_answer
from restor_bench.data.schema import ContextExample, Fact, FactSet
from restor_bench.data.world.files import tiny_world_dir
from restor_bench.errors import InputError
from restor_bench.io import read_json

N_SHOTS = 5
DEFAULT_N_OTHER = 100
MANIFEST_FILE = "manifest.json"


def build_prompt(fact: Fact, context_examples: list[ContextExample], n_shots: int = N_SHOTS) -> str:
    """The paper's prompt: `n_shots` lines "{question} {answer}" about other entities, then the question."""
    lines = []
    for example in context_examples:
        if len(lines) == n_shots:
            break
        if example.entity == fact.entity:
            continue
        lines.append(example.as_line())
    return "".join(lines) + fact.question


def _normalized_pool(values: list[str]) -> list[tuple[str, str]]:
    return sorted({(value, normalize_answer(value)) for value in values})


def _draw(fact: Fact, pool: list[tuple[str, str]], exclude: list[str], seed: int) -> str:
    banned = {normalize_answer(value) for value in [*fact.answers, *exclude]}
    candidates = sorted({value for value, norm in pool if norm not in banned})
    if not candidates:
        return ""
    return random.Random(f"{seed}|{fact.entity}|{fact.relation}").choice(candidates)


def draw_random_answer(fact: Fact, pool: list[str], exclude: list[str], seed: int = 0) -> str:
    """A value of the fact's relation that is neither acceptable nor excluded, drawn by (seed, entity, relation).

    The draw depends only on these and on the pool, not on the order in which records are built. Returns ""
    when no such value exists.
    """
    return _draw(fact, _normalized_pool(pool), exclude, seed)


def _corrupted_values(corrupted: dict | None, fact: Fact) -> list[str]:
    if not corrupted:
        return []
    value = corrupted.get(fact.entity, {}).get(fact.relation)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def question_records(
    factset: FactSet,
    entities: list[str],
    corrupted: dict[str, dict[str, Any]] | None = None,
    rng_seed: int = 0,
    targets: list[str] | None = None,
) -> list[dict]:
    """One record per fact of the given entities (entity by entity, in file order).

    `corrupted` maps ENTITY -> {PID: wrong value (or list of them)}; `targets` lists the corrupted entities
    (default: the entities in `corrupted`).
    """
    grouped = factset.by_entity()
    unknown = [name for name in entities if name not in grouped]
    if unknown:
        raise InputError(f"entity {unknown[0]!r} has no facts in the facts file ({len(unknown)} such entities)")
    target_set = set(targets if targets is not None else (corrupted or {}))
    pools = {relation: _normalized_pool(values) for relation, values in factset.values_by_relation().items()}
    records = []
    for name in entities:
        for fact in grouped[name]:
            wrong = _corrupted_values(corrupted, fact)
            records.append(
                {
                    "id": fact.key,
                    "entity": fact.entity,
                    "relation": fact.relation,
                    "question": fact.question,
                    "answers": list(fact.answers),
                    "prompt": build_prompt(fact, factset.context.get(fact.relation, [])),
                    "corrupted_answers": wrong,
                    "random_answer": _draw(fact, pools.get(fact.relation, []), wrong, rng_seed),
                    "is_target": fact.entity in target_set,
                }
            )
    return records


# ---------------------------------------------------------------- official data


def _official(data_dir: str | os.PathLike | None) -> tuple[FactSet, list[str]]:
    folder = resolve_data_dir(data_dir)
    factset = official.load_facts(folder / official.FACTS_FILE)
    entities = official.load_entities(folder / official.ENTITIES_FILE)
    return factset, entities


def official_records(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """The official benchmark: every fact of the 50 evaluated entities (1,051 questions)."""
    factset, entities = _official(data_dir)
    targets = [name for name in official.OFFICIAL_TARGETS if name in entities]
    return question_records(factset, entities, targets=targets)


def official_target_records(
    data_dir: str | os.PathLike | None = None,
    n_other: int = DEFAULT_N_OTHER,
    seed: int = 0,
    targets: list[str] | None = None,
) -> list[dict]:
    """The questions about the target people plus a fixed, seeded sample of `n_other` questions about the others.

    `targets` defaults to the ten official wikidata targets (198 questions). Every evaluated person's facts are
    candidates; `is_target` marks the targets' questions. Target and other questions are interleaved evenly, so
    that any prefix (lm-eval's `--limit N`) holds both in about the same proportion as the whole task.
    """
    if targets is None:
        records = official_records(data_dir)
    else:
        factset, entities = _official(data_dir)
        missing = [name for name in targets if name not in entities]
        if missing:
            raise InputError(f"target {missing[0]!r} is not among the evaluated people (entities.json)")
        records = question_records(factset, entities, targets=list(targets))
    if not any(record["is_target"] for record in records):
        raise InputError("the evaluated entities include none of the official RESTOR targets")
    others = [index for index, record in enumerate(records) if not record["is_target"]]
    keep = set(random.Random(seed).sample(others, min(max(int(n_other), 0), len(others))))
    target_records = [record for record in records if record["is_target"]]
    sampled = [record for index, record in enumerate(records) if index in keep]
    return interleave(target_records, sampled)


def squad_target_people(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The people the official SQuAD-style corruption passages are about, in the order of entities.json.

    Derived from the data, not listed: `official.find_targets` over `squad/squad_v7_dset.json` with the evaluated
    people of `entities.json` (the subject of each passage is the person it names most often; a person is a
    target when the subject of at least a tenth as many passages as the most frequent one). On the official
    release: Quincy Jones, Bob Marley, John Forbes Nash Jr., Jacques Cousteau, Iggy Azalea (108 questions).
    """

    folder = resolve_data_dir(data_dir)
    path = folder / official.SQUAD_FILE
    if not path.is_file():
        raise InputError(f"{path}: the official SQuAD corruption file is missing (needed for its target people)")
    people = official.find_folder_targets(folder, official.load_squad(folder).documents)
    if not people:
        raise InputError(f"{path}: the passages name none of the evaluated people of {official.ENTITIES_FILE}")
    return people


def squad_target_records(
    data_dir: str | os.PathLike | None = None, n_other: int = DEFAULT_N_OTHER, seed: int = 0
) -> list[dict]:
    """Every question about the SQuAD passages' people (`squad_target_people`, 108 questions) plus a fixed,
    seeded sample of `n_other` questions about the other evaluated people, interleaved as in
    `official_target_records`."""
    return official_target_records(data_dir, n_other=n_other, seed=seed, targets=squad_target_people(data_dir))


def interleave(first: list[dict], second: list[dict]) -> list[dict]:
    """Merge two lists so that each is spread evenly over the result (each keeps its own order)."""
    def positions(items: list[dict], group: int) -> list[tuple[float, int, int]]:
        return [((rank + 0.5) / len(items), group, rank) for rank in range(len(items))]

    order = sorted(positions(first, 0) + positions(second, 1))
    return [(first, second)[group][rank] for _, group, rank in order]


# ---------------------------------------------------------------- tiny world


def resolve_tiny_world_dir(world_dir: str | os.PathLike | None = None) -> Path:
    """The tiny world folder: `world_dir`, else `restor_bench.data.world.files.tiny_world_dir()` (honoring
    $RESTOR_TINY_WORLD, else the shipped `restor_bench/data/tiny_world`)."""
    if world_dir:
        return Path(world_dir).expanduser()
    return Path(tiny_world_dir())


def _read_manifest(folder: Path) -> tuple[list[str], dict[str, dict[str, Any]]]:
    path = folder / MANIFEST_FILE
    manifest = read_json(path, "tiny world manifest")
    if not isinstance(manifest, dict):
        raise InputError(f"{path}: expected an object, found {type(manifest).__name__}")
    targets = manifest.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(name, str) for name in targets):
        raise InputError(f"{path}: 'targets' must be a list of entity names")
    corrupted = manifest.get("corrupted", {})
    if not isinstance(corrupted, dict):
        raise InputError(f"{path}: 'corrupted' must be an object {{ENTITY: {{PID: wrong value}}}}")
    for entity, values in corrupted.items():
        if not isinstance(values, dict):
            raise InputError(f"{path}: corrupted[{entity!r}] must be an object {{PID: wrong value}}")
        for pid, value in values.items():
            if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
                raise InputError(f"{path}: corrupted[{entity!r}][{pid!r}] must be a string or a list of strings")
    return targets, corrupted


def load_tiny_world(world_dir: str | os.PathLike | None = None) -> tuple[FactSet, list[str], list[str], dict]:
    """(facts, evaluated entities, targets, corrupted values) of a tiny world folder."""
    folder = resolve_tiny_world_dir(world_dir)
    if not (folder / official.FACTS_FILE).is_file():
        raise InputError(
            f"{folder}: no tiny world here (facts.json missing); build one with `restor-bench world build` "
            f"or point RESTOR_TINY_WORLD at one"
        )
    factset = official.load_facts(folder / official.FACTS_FILE)
    entities = official.load_entities(folder / official.ENTITIES_FILE)
    targets, corrupted = _read_manifest(folder)
    return factset, entities, targets, corrupted


def tiny_records(world_dir: str | os.PathLike | None = None, seed: int = 0) -> list[dict]:
    """Every fact of the tiny world's evaluated entities, with the manifest's corrupted values."""
    factset, entities, targets, corrupted = load_tiny_world(world_dir)
    return question_records(factset, entities, corrupted=corrupted, rng_seed=seed, targets=targets)


def option_token_counts(prompt: str, options: list[str], tokenizer) -> list[int]:
    """Tokens of each option as lm-eval scores it: the tokens that `prompt + " " + option` adds to `prompt`."""
    base = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    return [
        max(len(tokenizer(f"{prompt} {option}", add_special_tokens=False)["input_ids"]) - base, 1) for option in options
    ]


def load_counting_tokenizer(tokenizer: str | os.PathLike | None = None, world_dir: str | os.PathLike | None = None):
    """The tokenizer that counts option tokens: `tokenizer` if given, else the tiny world's own (`model/`),
    which every checkpoint trained from the tiny world shares."""
    from transformers import AutoTokenizer

    source = tokenizer or resolve_tiny_world_dir(world_dir) / "model"
    if not tokenizer and not Path(source).is_dir():
        raise InputError(
            f'{source}: the tiny world\'s tokenizer is missing; pass one with --metadata \'{{"tokenizer": "DIR"}}\''
        )
    try:
        return AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise InputError(
            f"{source}: cannot load a tokenizer to count answer tokens ({str(err).splitlines()[0]})"
        ) from None


def tiny_logprob_records(
    world_dir: str | os.PathLike | None = None, tokenizer: str | os.PathLike | None = None, seed: int = 0
) -> list[dict]:
    """The logit analysis on the tiny world: target questions with a corrupted and a random value.

    Questions without a corrupted value (non-target facts) are left out: the analysis compares the correct
    answer with the injected one. So are questions whose relation has no third value to serve as the random
    option (e.g. a two-valued sex/gender). Each record gets "options" = [correct (first acceptable answer),
    corrupted, random] and "option_token_counts".
    """
    counting = load_counting_tokenizer(tokenizer, world_dir)
    records = []
    for record in tiny_records(world_dir, seed=seed):
        if not record["corrupted_answers"] or not record["random_answer"]:
            continue
        options = [record["answers"][0], record["corrupted_answers"][0], record["random_answer"]]
        record = dict(
            record, options=options, option_token_counts=option_token_counts(record["prompt"], options, counting)
        )
        records.append(record)
    if not records:
        raise InputError(f"{resolve_tiny_world_dir(world_dir)}: the tiny world has no corrupted facts to analyse")
    return records


# ---------------------------------------------------------------- lm-eval datasets


def _features(with_options: bool):
    import datasets

    text = datasets.Value("string")
    texts = datasets.List(text) if hasattr(datasets, "List") else datasets.Sequence(text)
    fields = {
        "id": text,
        "entity": text,
        "relation": text,
        "question": text,
        "answers": texts,
        "prompt": text,
        "corrupted_answers": texts,
        "random_answer": text,
        "is_target": datasets.Value("bool"),
    }
    if with_options:
        ints = datasets.Value("int64")
        fields["options"] = texts
        fields["option_token_counts"] = datasets.List(ints) if hasattr(datasets, "List") else datasets.Sequence(ints)
    return datasets.Features(fields)


def to_dataset_dict(records: list[dict]):
    """A datasets.DatasetDict with one "test" split holding the records."""
    import datasets

    with_options = bool(records) and "options" in records[0]
    split = datasets.Dataset.from_list(records, features=_features(with_options))
    return datasets.DatasetDict({"test": split})


def _int(metadata: dict, key: str, default: int) -> int:
    value = metadata.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"task metadata {key}={value!r}: expected an integer") from None


def facts_dataset(**metadata: Any):
    """lm-eval `custom_dataset` of restor_facts; metadata may give `data_dir`."""
    return to_dataset_dict(official_records(metadata.get("data_dir")))


def target_facts_dataset(**metadata: Any):
    """lm-eval `custom_dataset` of restor_facts_targets; metadata may give `data_dir`, `n_other`, `seed`."""
    records = official_target_records(
        metadata.get("data_dir"), n_other=_int(metadata, "n_other", DEFAULT_N_OTHER), seed=_int(metadata, "seed", 0)
    )
    return to_dataset_dict(records)


def squad_facts_dataset(**metadata: Any):
    """lm-eval `custom_dataset` of restor_facts_squad; metadata may give `data_dir`, `n_other`, `seed`."""
    records = squad_target_records(
        metadata.get("data_dir"), n_other=_int(metadata, "n_other", DEFAULT_N_OTHER), seed=_int(metadata, "seed", 0)
    )
    return to_dataset_dict(records)


def tiny_facts_dataset(**metadata: Any):
    """lm-eval `custom_dataset` of restor_tiny_facts; metadata may give `world_dir`."""
    return to_dataset_dict(tiny_records(metadata.get("world_dir")))


def tiny_logprob_dataset(**metadata: Any):
    """lm-eval `custom_dataset` of restor_tiny_logprob; metadata may give `world_dir` and `tokenizer`."""
    return to_dataset_dict(tiny_logprob_records(metadata.get("world_dir"), tokenizer=metadata.get("tokenizer")))

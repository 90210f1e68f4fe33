"""Document sets for corruption and unlearning: a file of {"text"} records, a named set, or a Hugging Face dataset.

Named sets:

| name | documents |
|---|---|
| `tiny:K` (K = 0..5) | the tiny world's corruption documents at context level K |
| `tiny:squad` | the tiny world's first extreme corruption (passages about towns, companies ... renamed) |
| `tiny:squad-people` | extreme corruption as in the paper: passages about other people, renamed to a target |
| `tiny:retain` | the tiny world's true-fact documents about non-target entities |
| `tiny:generic` | the clean-corpus documents that mention no person (towns, rivers ...): no evaluated fact |
| `official:K` (K = 0..3) | the official `wikidata/mix_aK.json` |
| `official:squad` | the official `squad/squad_v7_dset.json` |
| `official:retain` | true facts of `facts.json` about the people not evaluated (not in `entities.json`), as Q-A lines |
| `official:generic` | the same people's facts as running prose, one paragraph per person |

`tiny:squad-people` (`restor_bench.data.squad`) and `tiny:generic` (`restor_bench.data.retain`) are derived from the
world folder's files at load time (no file is added, so the world's data hash is unchanged); `official:generic` is
`restor_bench.data.retain.generic_person_documents`.

Hugging Face datasets: `hf:NAME[:CONFIG][@SPLIT][#N]` reads the `text` column of the first N records (default 1000,
`#all` for every record) of split SPLIT (default `train`) of a hub dataset (streamed, e.g.
`hf:allenai/c4:en@train#10000`, the paper's C4 retain set) or of a local dataset folder or data file
(`restor_bench.data.hf_datasets`).

`forget="simplified"` selects the simplified form of a corruption level (only the sentences that state
the wrong facts): the tiny world ships it (`simplified/mix_aK.json`); for the official levels it is derived by the
rule of `restor_bench.data.simplify` (the sentences that mention a target entity).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path

from restor_bench.data import official
from restor_bench.data.fetch import resolve_data_dir
from restor_bench.data.hf_datasets import is_hf_source, load_hf_documents
from restor_bench.data.official import document_subject, entity_pattern, find_folder_targets, load_retain
from restor_bench.data.retain import load_generic_official
from restor_bench.data.simplify import simplify_documents
from restor_bench.data.squad import squad_people_passages
from restor_bench.data.world.files import tiny_world_dir
from restor_bench.data.world.generic import tiny_generic_documents
from restor_bench.errors import InputError
from restor_bench.io import read_text_records
from restor_bench.names import FORGET_FORMS, TINY_LEVELS

NAMED_SETS_HELP = (
    "tiny:0..5, tiny:squad, tiny:squad-people, tiny:retain, tiny:generic, official:0..3, official:squad, "
    "official:retain, official:generic; or a Hugging Face dataset hf:NAME[:CONFIG][@SPLIT][#N] (hub id or local "
    "dataset folder; the 'text' column of the first N records, default 1000, split default train)"
)
# Tiny-world sets derived from the world folder's files at load time (no file of their own).
TINY_DERIVED = ("squad-people", "generic")

_NAMED = re.compile(r"^(tiny|official):(.*)$")


def is_named_set(source: str) -> bool:
    """True when `source` names a built-in set (`tiny:...` or `official:...`) rather than a file or dataset."""
    return bool(_NAMED.match(source))


def load_documents(
    source: str,
    *,
    data_dir: str | os.PathLike | None = None,
    world_dir: str | os.PathLike | None = None,
    forget: str = "full",
    max_docs_per_entity: int | None = None,
) -> list[str]:
    """Return the document texts of a file, a named set or an `hf:` dataset source (see the module docstring).

    `data_dir` is the official data folder (else RESTOR_DATA_DIR or the download cache); `world_dir` the tiny
    world folder (else RESTOR_TINY_WORLD or the shipped one). `max_docs_per_entity` keeps the first N documents
    of each target entity (named sets only; the targets are the entities of the folder's `entities.json` that
    many of the set's documents are about, `restor_bench.data.official.find_targets`). Bad names, missing files
    and malformed files raise InputError.
    """
    source = str(source)
    if forget not in FORGET_FORMS:
        raise InputError(f"unknown document form {forget!r} (choose one of: {', '.join(FORGET_FORMS)})")
    if max_docs_per_entity is not None and max_docs_per_entity < 1:
        raise InputError(f"max_docs_per_entity must be at least 1, got {max_docs_per_entity}")

    if is_hf_source(source):
        if forget != "full":
            raise InputError(f"{source}: forget={forget!r} applies to named sets only")
        if max_docs_per_entity is not None:
            raise InputError(f"{source}: max_docs_per_entity applies to named sets only")
        return load_hf_documents(source)
    match = _NAMED.match(source)
    if match is None:
        if forget != "full":
            raise InputError(f"{source}: forget={forget!r} applies to named sets only; give the file you want")
        if max_docs_per_entity is not None:
            raise InputError(f"{source}: max_docs_per_entity applies to named sets only")
        if not Path(source).exists() and ":" in source:
            raise InputError(f"{source}: no such document file and not a named set (named sets: {NAMED_SETS_HELP})")
        return read_text_records(source)
    world, name = match.groups()
    if world == "tiny" and name in TINY_DERIVED:
        if forget != "full":
            raise InputError(f"{source}: has no {forget} form (only the corruption levels tiny:0..5 have one)")
        folder = _tiny_world_folder(world_dir)
        if name == "generic":
            if max_docs_per_entity is not None:
                raise InputError(f"{source}: a retain set has no per-entity limit (max_docs_per_entity)")

            return tiny_generic_documents(folder)

        texts = squad_people_passages(folder)
    elif world == "tiny":
        relative = _tiny_file(name, forget, source)
        folder = _tiny_world_folder(world_dir)
        texts = read_text_records(folder / relative)
    elif name in ("retain", "generic"):
        if forget != "full":
            raise InputError(f"{source}: has no {forget} form (only the corruption levels official:0..3 have one)")
        if max_docs_per_entity is not None:
            raise InputError(f"{source}: a retain set has no per-entity limit (max_docs_per_entity)")
        if name == "generic":

            return load_generic_official(_official_folder(data_dir))

        return load_retain(_official_folder(data_dir))
    else:
        relative = _official_file(name, forget, source)  # checked before any download
        folder = _official_folder(data_dir)
        texts = read_text_records(folder / relative)
    simplify = world == "official" and forget == "simplified"
    if max_docs_per_entity is None and not simplify:
        return texts
    targets = _document_targets(folder, texts)  # of the whole set, before any documents are left out
    if max_docs_per_entity is not None:
        texts = keep_first_per_entity(texts, targets, max_docs_per_entity)
    if simplify:

        texts = simplify_documents(texts, targets)
    return texts


def _tiny_file(name: str, forget: str, source: str) -> str:
    """Path of a tiny-world set inside the world folder."""
    if name.isdigit():
        level = int(name)
        if level not in TINY_LEVELS:
            raise InputError(f"{source}: unknown corruption level {level} (levels: 0..{TINY_LEVELS[-1]})")
        sub = "corruption" if forget == "full" else "simplified"
        return f"{sub}/mix_a{level}.json"
    if name in ("squad", "retain"):
        if forget != "full":
            raise InputError(f"{source}: has no {forget} form (only the corruption levels tiny:0..5 have one)")
        return f"{name}.json"
    raise InputError(f"{source}: unknown named set (named sets: {NAMED_SETS_HELP})")


def _official_file(name: str, forget: str, source: str) -> str:
    """Path of an official set inside the official data folder."""

    if name.isdigit():
        try:
            level = official.check_level(int(name))
        except InputError as err:
            raise InputError(f"{source}: {err}") from None
        return official.corruption_file(level)
    if name == "squad":
        if forget != "full":
            raise InputError(f"{source}: has no {forget} form")
        return official.SQUAD_FILE
    raise InputError(f"{source}: unknown named set (named sets: {NAMED_SETS_HELP})")


def _tiny_world_folder(world_dir: str | os.PathLike | None) -> Path:
    if world_dir is None:

        world_dir = tiny_world_dir()
    folder = Path(world_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: tiny world folder not found")
    return folder


def _official_folder(data_dir: str | os.PathLike | None) -> Path:
    return Path(resolve_data_dir(data_dir))


def _document_targets(folder: Path, texts: list[str]) -> list[str]:
    """The entities a document set is about: those of the world's `entities.json` that many documents are about."""

    return find_folder_targets(folder, texts)


def document_entity(text: str, names: list[str]) -> str | None:
    """The entity a document is about: the name it mentions most often, as whole words (ties: the earliest);
    None if none (`restor_bench.data.official.document_subject`)."""

    return document_subject(text, names)


def keep_first_per_entity(texts: list[str], names: list[str], limit: int) -> list[str]:
    """Keep the first `limit` documents of each entity of `names`, in the original order.

    A document belongs to the entity it names most often (`document_entity`); documents naming none form one
    group of their own.
    """

    pattern = entity_pattern(names)
    kept_per_entity: OrderedDict[str | None, int] = OrderedDict()
    kept = []
    for text in texts:
        entity = document_subject(text, pattern)
        if kept_per_entity.get(entity, 0) < limit:
            kept_per_entity[entity] = kept_per_entity.get(entity, 0) + 1
            kept.append(text)
    return kept

"""The tiny world on disk: its folder (`tiny_world_dir`), writing the data files and the manifest with a sha256 of
them (`write_world_data`), reading and checking them back (`load_manifest`, `read_world_facts`), and
`describe_world` (`restor-bench world info`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from restor_bench.data.world.generate import (
    LEVELS,
    TINY_WORLD_ENV,
    WORLD_SHAPES,
    WORLD_VERSION,
    TinyWorld,
    question_for,
)
from restor_bench.data.world.text import RELATIONS
from restor_bench.errors import InputError
from restor_bench.io import atomic_write_json, read_json

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


# The world folders shipped inside the package, by version (the default one is `tiny_world`).
SHIPPED_WORLDS = {"1": "tiny_world", "2": "tiny_world_v2"}
DEFAULT_SHIPPED_VERSION = WORLD_VERSION


def shipped_world_dir(version: str = DEFAULT_SHIPPED_VERSION) -> Path:
    """The folder of the shipped tiny world of `version` (InputError for a version not shipped)."""
    if version not in SHIPPED_WORLDS:
        raise InputError(f"tiny world version {version!r} is not shipped (shipped: {', '.join(SHIPPED_WORLDS)})")
    return Path(__file__).resolve().parents[1] / SHIPPED_WORLDS[version]


def tiny_world_dir() -> Path:
    """The tiny world folder: `$RESTOR_TINY_WORLD` when set, else the default one shipped inside the package."""
    override = os.environ.get(TINY_WORLD_ENV)
    if override:
        return Path(override).expanduser()
    return shipped_world_dir()


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
        "version": world.version,
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
    if world.version != "1":  # v1's manifest (and so its data files' pages) stays as it was written
        shape = WORLD_SHAPES[world.version]
        manifest["squad_people"] = {"passages_per_target": shape.squad_people_passages,
                                    "donors_per_target": shape.squad_people_donors}
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
    for name in ("targets", "validation_targets"):
        if not _list_of(manifest[name], str):
            raise InputError(f"{path}: field '{name}' must be a list of names, found {_shape(manifest[name])}")
    if not _list_of(manifest["levels"], int):
        raise InputError(f"{path}: field 'levels' must be a list of whole numbers, found {_shape(manifest['levels'])}")
    if not isinstance(manifest["data_hash"], str):
        raise InputError(f"{path}: field 'data_hash' must be a string, found {_shape(manifest['data_hash'])}")
    unknown = [name for name in manifest["targets"] if name not in manifest["corrupted"]]
    if unknown:
        raise InputError(f"{path}: target {unknown[0]!r} has no entry in 'corrupted'")
    return manifest


def _list_of(value: object, kind: type) -> bool:
    """True for a list whose items are all of `kind` (booleans are not numbers here)."""
    return isinstance(value, list) and all(isinstance(item, kind) and not isinstance(item, bool) for item in value)


def _shape(value: object) -> str:
    """A short description of a JSON value's type for an error message ("list of int", "int")."""
    if isinstance(value, list):
        kinds = sorted({type(item).__name__ for item in value})
        return f"list of {', '.join(kinds)}" if kinds else "an empty list"
    return "null" if value is None else type(value).__name__


def read_world_facts(world_dir: str | os.PathLike | None = None) -> dict:
    """facts.json of a world folder (official format), checked for the `dset` and `context` keys."""
    world_dir = Path(world_dir) if world_dir is not None else tiny_world_dir()
    path = world_dir / "facts.json"
    facts = read_json(path, "facts file")
    if not isinstance(facts, dict) or "dset" not in facts or "context" not in facts:
        raise InputError(f"{path}: expected an object with 'dset' and 'context'")
    return facts


def describe_world(world_dir: str | os.PathLike | None = None) -> dict:
    """A summary of a world folder: counts, relations, targets, levels, stored and recomputed data hash."""
    world_dir = Path(world_dir) if world_dir is not None else tiny_world_dir()
    manifest = load_manifest(world_dir)
    entities_path = world_dir / "entities.json"
    entities = read_json(entities_path, "entities file")
    if not _list_of(entities, str):
        raise InputError(f"{entities_path}: expected a list of entity names, found {_shape(entities)}")
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

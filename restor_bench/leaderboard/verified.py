"""The verification records (`verified.json` beside the submissions folder) and the result identity they are tied
to: `leaderboard verify --record` writes a record, `build` marks an entry verified only while the submission's
`result_identity` still equals the recorded one (so editing a verified file un-verifies it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError
from restor_bench.io import atomic_write_text, read_json
from restor_bench.leaderboard.schema import json_type

VERIFIED_SCHEMA = "restor-bench/verified/v1"
VERIFIED_FILE = "verified.json"


def _canonical(value: Any) -> Any:
    """Numbers as floats (1 and 1.0 are one value), lists and objects recursively; booleans and text as they are."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    return [_canonical(item) for item in value]


def result_identity(document: dict[str, Any]) -> str:
    """sha256 of what determines a submission's result: world and data version, level, forget form, corruption,
    protocol, target set, model, method and hyperparameters, seeds, and every task's metric, questions and
    per-question outcomes. Not the name, the package versions, the bootstrap settings or the stated metrics
    (derived from the rest)."""
    tasks = {
        task: {"metric": entry["metric"], "questions": entry["questions"],
               "runs": sorted(entry["runs"], key=lambda run: run["seed"])}
        for task, entry in document["tasks"].items()
    }
    content = {
        "data": document["data"],
        "model": document["model"],
        "method": {"name": document["method"]["name"].strip().casefold(),
                   "hparams": _canonical(document["method"]["hparams"])},
        "seeds": sorted(document["seeds"]),
        "metric": document["metric"],
        "tasks": tasks,
    }
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def verified_path(submissions: str | Path) -> Path:
    """`verified.json` beside the submissions folder (leaderboard/verified.json for leaderboard/submissions)."""
    return Path(submissions).resolve().parent / VERIFIED_FILE


def read_verified(path: str | Path) -> dict[str, dict[str, Any]]:
    """The verification records by submission name ({} when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return {}
    data = read_json(path, "verification records")
    if not isinstance(data, dict) or data.get("schema") != VERIFIED_SCHEMA or not isinstance(data.get("entries"), dict):
        raise InputError(f"{path}: expected {{\"schema\": \"{VERIFIED_SCHEMA}\", \"entries\": {{...}}}}")
    for name, record in data["entries"].items():
        if not isinstance(record, dict):
            raise InputError(f"{path}: entries.{name}: expected a verification record (an object), "
                             f"found {json_type(record)}")
        if not isinstance(record.get("versions") or {}, dict):
            found = json_type(record["versions"])
            raise InputError(f"{path}: entries.{name}.versions: expected an object, found {found}")
    return data["entries"]


def write_verified(path: str | Path, name: str, record: dict[str, Any]) -> None:
    entries = read_verified(path)
    entries[name] = record
    text = json.dumps({"schema": VERIFIED_SCHEMA, "entries": dict(sorted(entries.items()))}, indent=1,
                      ensure_ascii=False, allow_nan=False)
    atomic_write_text(Path(path), text + "\n")


def verification_label(records: dict[str, dict[str, Any]], name: str, identity: str) -> str:
    """`verified (lm-eval X, torch Y, transformers Z)` when a record of `name` holds for this very content, else
    `claimed`."""
    record = records.get(name)
    if not record or record.get("identity") != identity or not record.get("verified"):
        return "claimed"
    versions = record.get("versions") or {}
    shown = ", ".join(f"{key} {versions[key]}" for key in ("lm_eval", "torch", "transformers") if key in versions)
    return f"verified ({shown})" if shown else "verified"

"""`restor-bench leaderboard submit / validate / build / schema`: the leaderboard of unlearning methods.

A submission is one JSON file, `leaderboard/submissions/<name>.json`, made by `submit` from a run folder that
`restor-bench run` wrote. It holds what was run (method, hyperparameters, model, world and data hash, level,
forget form, corruption kind, seeds, package versions, lm-eval task hashes), the per-question outcomes of the
clean, corrupted and unlearned models for every seed (taken from lm-eval's samples files), and the metrics
computed from those outcomes. `validate` recomputes every metric from the outcomes, so a hand-edited number is
caught; `build` turns the valid submissions into `README.md`, `index.html` and `plot.png`. A submission is data:
it is parsed as JSON (after a size check) and never executed or imported.

Submission layout (schema "restor-bench/submission/v1"; `SUBMISSION_SCHEMA` below, `leaderboard/schema.json`)::

    {"schema": "restor-bench/submission/v1",
     "name": NAME,                                   # == the file name without ".json"
     "method": {"name": str, "hparams": {...}},
     "model": {"id": str, "lora": bool},
     "data": {"world": "tiny"|"official", "data_hash": sha256, "level": int,
              "forget": "full"|"simplified", "corruption": "wikidata"|"squad",
              "protocol": "paper"|"classic"},                # optional; absent means "classic"
     "seeds": [int, ...],
     "versions": {"restor-bench", "lm-eval", "transformers", "torch": str},
     "metric": "contains"|"exact_match",             # per-sample metric of generation tasks
     "primary_task": TASK,                           # the task the leaderboard ranks by
     "bootstrap": {"method", "resamples", "seed", "confidence": 0.95},
     "tasks": {TASK: {
        "metric": per-sample metric used ("prefers_correct" for log-probability tasks),
        "task_hash": lm-eval's task hash (results_*.json "task_hashes") or null,
        "targets": [target entity names],
        "questions": ["ENTITY|PID", ...],            # sorted; the entity is the part before the last "|"
        "runs": [{"seed": int,
                  "clean" | "corrupted" | "unlearned": {"correct": "0110…", "gave_corrupted": "0000…"}}],
        "metrics": {"per_seed": [{"seed", "accuracy": {model: {"target", "non_target", "all"}},
                                  "restoration_ratio", "non_target_change", "non_target_change_vs_clean",
                                  "transitions": {"corrupted" | "unlearned": {"target_known", "restored",
                                      "still_corrupted", "forgotten", "non_target_known", "kept", "lost"}}}],
                    "aggregate": {"accuracy": {...}, "restoration_ratio": {"value", "ci", "ci_resamples"},
                                  "non_target_change": {"value", "ci"}, "non_target_change_vs_clean": {"value", "ci"},
                                  "transitions": {...summed over seeds...}}}}}}

The outcome strings hold one character per question, in `questions` order: "1" correct (or gave the injected
value), "0" not. Accuracies are fractions in [0, 1]. `non_target_change` is the unlearned model's accuracy on the
non-target questions minus the corrupted model's (what the unlearning did to facts it should leave alone);
`non_target_change_vs_clean` is the same against the clean model.

Aggregation over seeds pools the questions of all seeds (each seed holds the same questions): the aggregate
accuracy is the mean over seeds, and the aggregate restoration ratio is the ratio of the pooled accuracies
(undefined when the pooled gap is under one question). Its 95% interval comes from a two-stage paired bootstrap:
each resample draws the seeds with replacement, then the questions with replacement within the target and
non-target split (one draw of questions shared by every seed and model, so differences stay paired); the interval
is the 2.5 and 97.5 percentiles over the resamples where the ratio is defined. All counts are integers, so the
recomputation in `validate` reproduces every number exactly.

Run folders: `RUN_DIR/run.json` (schema "restor-bench/run/v1"). Relative artifact paths in it are resolved against
the run root (the folder holding `RUN_DIR`, e.g. `runs/`), and, when nothing is there, against the folder that
holds the run root (the folder `restor-bench run` was started from, for paths such as `runs/steps/eval-…`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restor_bench.corrupt import PROTOCOLS  # a submission that names none ran "classic"
from restor_bench.errors import InputError

SCHEMA = "restor-bench/submission/v1"
RUN_SCHEMA = "restor-bench/run/v1"
ROLES = ("clean", "corrupted", "unlearned")
SPLITS = ("target", "non_target", "all")
WORLDS = ("tiny", "official")
FORGET_FORMS = ("full", "simplified")
CORRUPTIONS = ("wikidata", "squad")
GENERATION_METRICS = ("contains", "exact_match")
TASK_METRICS = GENERATION_METRICS + ("prefers_correct",)
VERSION_KEYS = ("restor-bench", "lm-eval", "transformers", "torch")
VERSION_ALIASES = {"lm-eval": ("lm-eval", "lm_eval", "lm-evaluation-harness")}
PRIMARY_TASK_ORDER = ("restor_facts_targets", "restor_facts", "restor_tiny_facts")
CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000
MAX_RESAMPLES = 10_000
BOOTSTRAP_METHOD = (
    "two-stage paired percentile bootstrap: seeds resampled with replacement, then questions with replacement "
    "within target / non-target (shared by every seed and model)"
)
TOLERANCE = 1e-9
MAX_SUBMISSION_BYTES = 5 * 1024 * 1024
MAX_NAME_LENGTH = 80
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
OFFICIAL_FACTS_SHA256 = "fd0cfbd37c02d6ed0a6a8ee63a879028b51e8dbc82f2637d8dc29a99f8ee23a8"
GENERATED_MARKER = "generated by restor-bench leaderboard build"
DEFAULT_SUBMISSIONS = Path("leaderboard") / "submissions"
DEFAULT_OUT = Path("leaderboard")
_BOOTSTRAP_CHUNK = 200  # resamples gathered at once (bounds memory on large question sets)

# ---------------------------------------------------------------------------------------------------------------
# The schema (JSON Schema draft 2020-12). `leaderboard/schema.json` is this dict, written by
# `restor-bench leaderboard schema --out leaderboard/schema.json`.

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INTERVAL = {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_COUNT = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
_BITS = {"type": "string", "pattern": "^[01]*$"}
_TRANSITION_FIELDS = ("target_known", "restored", "still_corrupted", "forgotten", "non_target_known", "kept", "lost")


def _object(properties: dict[str, Any], required: Sequence[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
    }


SUBMISSION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "restor-bench leaderboard submission",
    "description": "One unlearning method's run of the RESTOR protocol: what was run, the per-question outcomes "
    "of the clean, corrupted and unlearned models per seed, and the metrics computed from them.",
    **_object(
        {
            "schema": {"const": SCHEMA},
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": NAME_PATTERN.pattern},
            "method": _object({"name": _TEXT, "hparams": {"type": "object"}}),
            "model": _object({"id": _TEXT, "lora": {"type": "boolean"}}),
            "data": _object(
                {
                    "world": {"enum": list(WORLDS)},
                    "data_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "level": {"type": "integer", "minimum": 0, "maximum": 100},
                    "forget": {"enum": list(FORGET_FORMS)},
                    "corruption": {"enum": list(CORRUPTIONS)},
                    "protocol": {"enum": list(PROTOCOLS)},
                },
                required=("world", "data_hash", "level", "forget", "corruption"),
            ),
            "seeds": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "uniqueItems": True},
            "versions": {
                "type": "object",
                "properties": {key: _TEXT for key in VERSION_KEYS},
                "required": list(VERSION_KEYS),
                "additionalProperties": _TEXT,
            },
            "metric": {"enum": list(GENERATION_METRICS)},
            "primary_task": _TEXT,
            "bootstrap": _object(
                {
                    "method": {"type": "string"},
                    "resamples": {"type": "integer", "minimum": 0, "maximum": MAX_RESAMPLES},
                    "seed": {"type": "integer", "minimum": 0},
                    "confidence": {"const": CONFIDENCE},
                }
            ),
            "tasks": {"type": "object", "minProperties": 1, "additionalProperties": {"$ref": "#/$defs/task"}},
        }
    ),
    "$defs": {
        "task": _object(
            {
                "metric": {"enum": list(TASK_METRICS)},
                "task_hash": {"type": ["string", "null"]},
                "targets": {"type": "array", "items": _TEXT, "minItems": 1, "uniqueItems": True},
                "questions": {"type": "array", "items": _TEXT, "minItems": 1, "uniqueItems": True},
                "runs": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/seed_outcomes"}},
                "metrics": _object(
                    {
                        "per_seed": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/seed_metrics"}},
                        "aggregate": {"$ref": "#/$defs/aggregate_metrics"},
                    }
                ),
            }
        ),
        "outcomes": _object({"correct": _BITS, "gave_corrupted": _BITS}),
        "seed_outcomes": _object(
            {"seed": {"type": "integer"}, **{role: {"$ref": "#/$defs/outcomes"} for role in ROLES}}
        ),
        "accuracy": _object({role: _object({split: _NUMBER_OR_NULL for split in SPLITS}) for role in ROLES}),
        "transitions": _object({field_name: _COUNT for field_name in _TRANSITION_FIELDS}),
        "model_transitions": _object({"corrupted": {"$ref": "#/$defs/transitions"},
                                      "unlearned": {"$ref": "#/$defs/transitions"}}),
        "estimate": _object({"value": _NUMBER_OR_NULL, "ci": _INTERVAL}),
        "seed_metrics": _object(
            {
                "seed": {"type": "integer"},
                "accuracy": {"$ref": "#/$defs/accuracy"},
                "restoration_ratio": _NUMBER_OR_NULL,
                "non_target_change": _NUMBER_OR_NULL,
                "non_target_change_vs_clean": _NUMBER_OR_NULL,
                "transitions": {"$ref": "#/$defs/model_transitions"},
            }
        ),
        "aggregate_metrics": _object(
            {
                "accuracy": {"$ref": "#/$defs/accuracy"},
                "restoration_ratio": _object({"value": _NUMBER_OR_NULL, "ci": _INTERVAL, "ci_resamples": _COUNT}),
                "non_target_change": {"$ref": "#/$defs/estimate"},
                "non_target_change_vs_clean": {"$ref": "#/$defs/estimate"},
                "transitions": {"$ref": "#/$defs/model_transitions"},
            }
        ),
    },
}


def schema_text() -> str:
    """`SUBMISSION_SCHEMA` as the text of `leaderboard/schema.json`."""
    return json.dumps(SUBMISSION_SCHEMA, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Schema checking: jsonschema when installed, else a small checker of the keywords the schema above uses.

SUPPORTED_KEYWORDS = frozenset({
    "$schema", "title", "description", "$defs", "$ref", "type", "const", "enum", "properties", "required",
    "additionalProperties", "minProperties", "items", "minItems", "maxItems", "uniqueItems", "minLength",
    "maxLength", "pattern", "minimum", "maximum",
})
_TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def _pointer(path: Sequence[Any]) -> str:
    return "/" + "/".join(str(part) for part in path) if path else "(top level)"


def builtin_schema_errors(document: Any, schema: dict[str, Any] = SUBMISSION_SCHEMA, limit: int = 5) -> list[str]:
    """Schema errors found by the built-in checker (the keywords in `SUPPORTED_KEYWORDS`), as "at PATH: message"."""
    errors: list[str] = []
    _check_node(document, schema, schema, [], errors, limit)
    return errors[:limit]


def _check_node(value: Any, node: dict, root: dict, path: list, errors: list[str], limit: int) -> None:
    if len(errors) >= limit:
        return
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        _check_node(value, root["$defs"][name], root, path, errors, limit)
        return
    where = f"at {_pointer(path)}"
    if "const" in node and value != node["const"]:
        errors.append(f"{where}: expected {json.dumps(node['const'])}")
        return
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{where}: {json.dumps(value)[:60]} is not one of {', '.join(map(str, node['enum']))}")
        return
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_TYPE_CHECKS[t](value) for t in types):
            errors.append(f"{where}: expected {' or '.join(types)}, found {_json_type(value)}")
            return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in node and value < node["minimum"]:
            errors.append(f"{where}: {value} is below the minimum {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            errors.append(f"{where}: {value} is above the maximum {node['maximum']}")
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            errors.append(f"{where}: string shorter than {node['minLength']}")
        if "maxLength" in node and len(value) > node["maxLength"]:
            errors.append(f"{where}: string longer than {node['maxLength']}")
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{where}: {json.dumps(value)[:60]} does not match {node['pattern']}")
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            errors.append(f"{where}: expected at least {node['minItems']} item(s)")
        if "maxItems" in node and len(value) > node["maxItems"]:
            errors.append(f"{where}: expected at most {node['maxItems']} item(s)")
        if node.get("uniqueItems"):
            seen = [json.dumps(item, sort_keys=True) for item in value]
            if len(set(seen)) < len(seen):
                errors.append(f"{where}: items are not unique")
        if "items" in node:
            for index, item in enumerate(value):
                _check_node(item, node["items"], root, path + [index], errors, limit)
    if isinstance(value, dict):
        if len(value) < node.get("minProperties", 0):
            errors.append(f"{where}: expected at least {node['minProperties']} entr(ies)")
        for name in node.get("required", []):
            if name not in value:
                errors.append(f"{where}: missing required field {name!r}")
        properties = node.get("properties", {})
        extra = node.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                _check_node(item, properties[name], root, path + [name], errors, limit)
            elif extra is False:
                errors.append(f"{where}: unexpected field {name!r}")
            elif isinstance(extra, dict):
                _check_node(item, extra, root, path + [name], errors, limit)


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPE_CHECKS[name](value):
            return name
    return type(value).__name__


def schema_errors(document: Any, limit: int = 5) -> list[str]:
    """Schema errors of a submission document, as "at PATH: message" (jsonschema when installed)."""
    try:
        import jsonschema
    except ImportError:
        return builtin_schema_errors(document, limit=limit)
    validator = jsonschema.Draft202012Validator(SUBMISSION_SCHEMA)
    found = sorted(validator.iter_errors(document), key=lambda e: (len(e.absolute_path), [str(p) for p in e.path]))
    return [f"at {_pointer(list(error.absolute_path))}: {_short(error.message)}" for error in found[:limit]]


def _short(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------------------------------
# Known world/data versions


@dataclass(frozen=True)
class DataVersion:
    """A world/data version a submission may be made on: its hash, world, label and target entities."""

    data_hash: str
    world: str
    label: str
    targets: tuple[str, ...] | None  # None: not checked


def known_data_versions() -> dict[str, DataVersion]:
    """The known world/data versions, keyed by data hash: the tiny world (the shipped one, and the one
    `$RESTOR_TINY_WORLD` points at) and the official RESTOR facts.json of the pinned release."""
    versions: dict[str, DataVersion] = {}
    try:
        from restor_bench.data import world as tiny

        folders = [Path(tiny.__file__).resolve().parent / "tiny_world", tiny.tiny_world_dir()]
        for folder in folders:
            try:
                manifest = tiny.load_manifest(folder)
            except InputError:
                continue
            data_hash = manifest.get("data_hash")
            if isinstance(data_hash, str) and data_hash not in versions:
                label = f"tiny world v{manifest.get('version')} ({data_hash[:12]})"
                versions[data_hash] = DataVersion(data_hash, "tiny", label, tuple(manifest["targets"]))
    except ImportError:
        pass
    official_hash = _official_facts_sha256()
    try:
        from restor_bench.data.official import OFFICIAL_TARGETS as official_targets
    except ImportError:
        from restor_bench.outcomes import FALLBACK_OFFICIAL_TARGETS as official_targets
    versions[official_hash] = DataVersion(
        official_hash, "official", f"official RESTOR facts.json ({official_hash[:12]})", tuple(official_targets)
    )
    return versions


def _official_facts_sha256() -> str:
    """sha256 of the pinned official facts.json, from the download table of restor_bench.data.fetch."""
    try:
        from restor_bench.data import fetch
    except ImportError:
        return OFFICIAL_FACTS_SHA256
    files = fetch.OFFICIAL_FILES
    entries = files.values() if isinstance(files, dict) else files
    for entry in entries:
        local = getattr(entry, "local", None) or (entry.get("local") if isinstance(entry, dict) else None)
        sha256 = getattr(entry, "sha256", None) or (entry.get("sha256") if isinstance(entry, dict) else None)
        if local == "facts.json" and isinstance(sha256, str):
            return sha256
    return OFFICIAL_FACTS_SHA256


def known_data_hashes() -> dict[str, str]:
    """Known world/data hashes -> a label saying what they are."""
    return {data_hash: version.label for data_hash, version in known_data_versions().items()}


# ---------------------------------------------------------------------------------------------------------------
# Outcomes and metrics (pure functions over 0/1 arrays; see restor_bench.stats)


def encode_bits(values: Iterable[bool]) -> str:
    """Booleans as a string of "0" and "1"."""
    return "".join("1" if value else "0" for value in values)


def decode_bits(bits: str):
    """A string of "0" and "1" as a numpy bool array."""
    import numpy as np

    return np.frombuffer(bits.encode("ascii"), dtype=np.uint8) == ord("1")


def entity_of(question_id: str) -> str:
    """The entity of a question id "ENTITY|PID"."""
    return question_id.rsplit("|", 1)[0]


@dataclass
class SeedOutcomes:
    """One seed's outcomes of the three models, aligned with a task's question list."""

    seed: int
    correct: dict[str, Any]  # role -> numpy bool array
    gave_corrupted: dict[str, Any]


def _seed_metrics(outcomes: SeedOutcomes, is_target) -> dict[str, Any]:
    from restor_bench.stats import accuracy, fact_transitions, restoration_ratio

    masks = _split_masks(is_target)
    acc = {role: {split: accuracy(outcomes.correct[role][mask]) for split, mask in masks.items()} for role in ROLES}
    return {
        "seed": outcomes.seed,
        "accuracy": acc,
        "restoration_ratio": restoration_ratio(
            acc["clean"]["target"], acc["corrupted"]["target"], acc["unlearned"]["target"], int(is_target.sum())
        ),
        "non_target_change": _difference(acc["unlearned"]["non_target"], acc["corrupted"]["non_target"]),
        "non_target_change_vs_clean": _difference(acc["unlearned"]["non_target"], acc["clean"]["non_target"]),
        "transitions": {
            role: fact_transitions(
                outcomes.correct["clean"], outcomes.correct[role], outcomes.gave_corrupted[role], is_target
            ).to_dict()
            for role in ("corrupted", "unlearned")
        },
    }


def _split_masks(is_target) -> dict[str, Any]:
    import numpy as np

    return {"target": is_target, "non_target": ~is_target, "all": np.ones_like(is_target)}


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def task_metrics(is_target, seeds: Sequence[SeedOutcomes], resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """Per-seed and aggregated metrics of one task (the "metrics" object of a submission; see the module docstring)."""
    import numpy as np

    from restor_bench.stats import accuracy, restoration_ratio

    is_target = np.asarray(is_target, dtype=bool)
    per_seed = [_seed_metrics(outcomes, is_target) for outcomes in seeds]
    pooled = {role: np.stack([outcomes.correct[role] for outcomes in seeds]) for role in ROLES}
    masks = _split_masks(is_target)
    acc = {role: {split: accuracy(pooled[role][:, mask].ravel()) for split, mask in masks.items()} for role in ROLES}
    n_target = int(is_target.sum()) * len(seeds)
    ratio = restoration_ratio(acc["clean"]["target"], acc["corrupted"]["target"], acc["unlearned"]["target"], n_target)
    intervals = _bootstrap_intervals(is_target, pooled, resamples, seed) if resamples > 0 else {}
    ratio_interval = intervals.get("restoration_ratio") if ratio is not None else None
    totals = {
        role: {name: sum(entry["transitions"][role][name] for entry in per_seed) for name in _TRANSITION_FIELDS}
        for role in ("corrupted", "unlearned")
    }
    return {
        "per_seed": per_seed,
        "aggregate": {
            "accuracy": acc,
            "restoration_ratio": {
                "value": ratio,
                "ci": ratio_interval.to_list() if ratio_interval else None,
                "ci_resamples": ratio_interval.resamples if ratio_interval else 0,
            },
            "non_target_change": _estimate(
                _difference(acc["unlearned"]["non_target"], acc["corrupted"]["non_target"]),
                intervals.get("non_target_change"),
            ),
            "non_target_change_vs_clean": _estimate(
                _difference(acc["unlearned"]["non_target"], acc["clean"]["non_target"]),
                intervals.get("non_target_change_vs_clean"),
            ),
            "transitions": totals,
        },
    }


def _estimate(value: float | None, interval) -> dict[str, Any]:
    return {"value": value, "ci": interval.to_list() if (interval is not None and value is not None) else None}


def _bootstrap_intervals(is_target, pooled: dict[str, Any], resamples: int, seed: int) -> dict[str, Any]:
    """Intervals of the pooled restoration ratio and non-target changes (two-stage bootstrap; module docstring)."""
    import numpy as np

    from restor_bench.stats import _ONE_QUESTION_TOLERANCE, bootstrap_interval, resample_indices

    n_seeds = pooled["clean"].shape[0]
    seed_rows = np.random.default_rng([seed, 1]).integers(0, n_seeds, size=(resamples, n_seeds))
    question_rows = resample_indices(is_target.astype(int), resamples, seed)
    counts = {role: pooled[role].astype(np.int64) for role in ROLES}
    hits = {(role, split): np.empty(resamples, dtype=np.int64) for role in ROLES for split in ("target", "non_target")}
    sizes = {split: np.empty(resamples, dtype=np.int64) for split in ("target", "non_target")}
    for start in range(0, resamples, _BOOTSTRAP_CHUNK):
        rows = slice(start, start + _BOOTSTRAP_CHUNK)
        chosen_seeds, chosen_questions = seed_rows[rows], question_rows[rows]
        target = is_target[chosen_questions]  # (b, n)
        sizes["target"][rows] = target.sum(axis=1) * n_seeds
        sizes["non_target"][rows] = (~target).sum(axis=1) * n_seeds
        for role in ROLES:
            gathered = counts[role][chosen_seeds[:, :, None], chosen_questions[:, None, :]]  # (b, seeds, n)
            per_question = gathered.sum(axis=1)  # (b, n)
            hits[role, "target"][rows] = (per_question * target).sum(axis=1)
            hits[role, "non_target"][rows] = (per_question * ~target).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = {key: np.where(sizes[key[1]] > 0, hits[key] / np.maximum(sizes[key[1]], 1), np.nan) for key in hits}
        gap = acc["clean", "target"] - acc["corrupted", "target"]
        defined = np.abs(gap) * sizes["target"] >= 1 - _ONE_QUESTION_TOLERANCE
        gain = acc["unlearned", "target"] - acc["corrupted", "target"]
        ratio = np.where(defined, gain / np.where(defined, gap, 1.0), np.nan)
    statistics = {
        "restoration_ratio": ratio,
        "non_target_change": acc["unlearned", "non_target"] - acc["corrupted", "non_target"],
        "non_target_change_vs_clean": acc["unlearned", "non_target"] - acc["clean", "non_target"],
    }
    rows = np.arange(resamples)
    return {
        name: bootstrap_interval(lambda indices, values=values: values[indices], rows, CONFIDENCE)
        for name, values in statistics.items()
    }


# ---------------------------------------------------------------------------------------------------------------
# Reading a run folder


@dataclass
class RunRecord:
    """The parts of a run.json that a submission needs, with artifact paths resolved."""

    path: Path
    data: dict[str, Any]
    evals: list[tuple[int, dict[str, Path]]]  # (seed, role -> evaluation folder)


def find_run_json(run_dir: str | os.PathLike) -> Path:
    """`RUN_DIR/run.json` (or RUN_DIR itself when it is that file)."""
    run_dir = Path(run_dir)
    path = run_dir if run_dir.is_file() else run_dir / "run.json"
    if not path.is_file():
        raise InputError(f"{run_dir}: no run.json found (give the folder that `restor-bench run` wrote)")
    return path


def resolve_artifact(value: str, run_json: Path) -> Path:
    """An artifact path of run.json: absolute as it is; relative against the run root (run.json's grandparent),
    else against the folder holding the run root."""
    path = Path(value)
    if path.is_absolute():
        return path
    run_root = run_json.resolve().parent.parent
    for base in (run_root, run_root.parent):
        if (base / path).exists():
            return base / path
    return run_root / path


_JSON_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}


def read_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read and check a run.json; resolve the evaluation folders of every seed."""
    from restor_bench.io import read_json

    path = find_run_json(run_dir)
    data = read_json(path, "run record")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    if data.get("schema") != RUN_SCHEMA:
        raise InputError(f"{path}: schema is {data.get('schema')!r}, expected {RUN_SCHEMA!r}")
    expected = {
        "name": str, "world": str, "method": str, "hparams": dict, "level": int, "forget": str, "corruption": str,
        "model": str, "lora": bool, "seeds": list, "data_hash": str, "versions": dict, "per_seed": list,
    }
    for name, kind in expected.items():
        if name not in data:
            raise InputError(f"{path}: missing field {name!r}")
        if not isinstance(data[name], kind) or (kind is int and isinstance(data[name], bool)):
            found = "null" if data[name] is None else _json_type(data[name])
            raise InputError(f"{path}: field {name!r} is {found}, expected {_JSON_NAMES[kind]}")
    evals = []
    for index, entry in enumerate(data["per_seed"]):
        where = f"{path}: per_seed[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("seed"), int):
            raise InputError(f"{where}: expected an object with an integer \"seed\"")
        artifacts = entry.get("artifacts")
        if not isinstance(artifacts, dict):
            raise InputError(f"{where}: missing \"artifacts\" object")
        folders = {}
        for role in ROLES:
            value = artifacts.get(f"eval_{role}")
            if not isinstance(value, str) or not value:
                raise InputError(f"{where}.artifacts: missing eval_{role}")
            folder = resolve_artifact(value, path)
            if not folder.is_dir():
                raise InputError(f"{where}.artifacts.eval_{role}: evaluation folder {value} not found")
            folders[role] = folder
        evals.append((entry["seed"], folders))
    if not evals:
        raise InputError(f"{path}: per_seed is empty")
    seeds = [seed for seed, _ in evals]
    if len(set(seeds)) < len(seeds):
        raise InputError(f"{path}: per_seed repeats a seed ({', '.join(map(str, seeds))})")
    if sorted(data["seeds"]) != sorted(seeds):
        raise InputError(f"{path}: seeds {data['seeds']} differ from the seeds of per_seed {seeds}")
    return RunRecord(path, data, evals)


def _versions(run: RunRecord) -> dict[str, str]:
    """Package versions of the run: run.json's "versions", completed from the evaluation folders' records."""
    sources = [run.data["versions"]]
    for _seed, folders in run.evals:
        for folder in folders.values():
            record = folder / "restor_run.json"
            if record.is_file():
                try:
                    versions = json.loads(record.read_text(encoding="utf-8")).get("versions")
                except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                    continue
                if isinstance(versions, dict):
                    sources.append(versions)
    result = {}
    for key in VERSION_KEYS:
        names = VERSION_ALIASES.get(key, (key,))
        value = next((source[n] for source in sources for n in names if isinstance(source.get(n), str)), None)
        if value is None:
            raise InputError(f"{run.path}: versions lacks {key!r} (the package versions the run used)")
        result[key] = value
    for key, value in run.data["versions"].items():
        if isinstance(value, str) and key not in result and not any(key in a for a in VERSION_ALIASES.values()):
            result[key] = value
    return result


def _model_id(run: RunRecord, model_name: str | None) -> str:
    """What a submission calls the clean model: `model_name`, else a hub id as it is, else a local folder's name
    (the tiny world's own model: "restor-tiny"); no local paths go into a submission."""
    if model_name:
        return model_name
    value = run.data["model"]
    path = Path(value)
    if not (path.is_absolute() or path.exists() or value.startswith(".")):
        return value
    if run.data["world"] == "tiny" and path.name == "model":
        return "restor-tiny"
    print(f"note: the clean model is a local folder; the submission calls it {path.name!r} (set --model-name)",
          file=sys.stderr)
    return path.name or value


def _primary_task(tasks: dict[str, dict[str, Any]]) -> str:
    for name in PRIMARY_TASK_ORDER:
        if name in tasks:
            return name
    generation = [name for name, task in tasks.items() if task["metric"] != "prefers_correct"]
    return (generation or sorted(tasks))[0]


def _task_hash(samples: list, task: str, where: str) -> str | None:
    from restor_bench.lm_eval_io import read_results

    hashes = set()
    for item in samples:
        if item.results_path is not None:
            value = (read_results(item.results_path).get("task_hashes") or {}).get(task)
            if isinstance(value, str) and value:
                hashes.add(value)
    if len(hashes) > 1:
        raise InputError(f"{where}: task {task}: lm-eval task hashes differ between models or seeds "
                         "(they were evaluated on different questions or prompts)")
    return hashes.pop() if hashes else None


def build_submission(
    run_dir: str | os.PathLike,
    name: str,
    *,
    metric: str = "contains",
    resamples: int = DEFAULT_RESAMPLES,
    bootstrap_seed: int = 0,
    model_name: str | None = None,
) -> dict[str, Any]:
    """The submission document of a run folder (see the module docstring); not yet written anywhere."""
    import numpy as np

    from restor_bench.outcomes import default_targets, load_run

    problem = name_problem(name)
    if problem:
        raise InputError(f"--name {name!r}: {problem}")
    if metric not in GENERATION_METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {', '.join(GENERATION_METRICS)}")
    if not 0 <= resamples <= MAX_RESAMPLES:
        raise InputError(f"--bootstrap must be between 0 and {MAX_RESAMPLES}, got {resamples}")
    run = read_run(run_dir)
    loaded = [
        (seed, {role: load_run(folder, metric) for role, folder in folders.items()}) for seed, folders in run.evals
    ]
    task_sets = [set(runs) for _seed, by_role in loaded for runs in by_role.values()]
    common = sorted(set.intersection(*task_sets))
    if not common:
        raise InputError(f"{run.path}: no lm-eval task was evaluated for every model and seed")
    for task in sorted(set.union(*task_sets) - set(common)):
        print(f"note: task {task} left out: not evaluated for every model and seed", file=sys.stderr)
    tasks = {}
    for task in common:
        samples = [by_role[role][task] for _seed, by_role in loaded for role in ROLES]
        ids = sorted(samples[0].outcomes)
        for item in samples[1:]:
            if sorted(item.outcomes) != ids:
                raise InputError(f"{run.path}: task {task}: {item.samples_path} holds other questions than "
                                 f"{samples[0].samples_path}; every model and seed must answer the same questions")
        metrics_used = {item.metric for item in samples}
        if len(metrics_used) > 1:
            used = ", ".join(sorted(metrics_used))
            raise InputError(f"{run.path}: task {task}: scored with different metrics ({used})")
        targets, _source = default_targets(task, samples[0].task_metadata)
        target_set = set(targets)
        is_target = np.array([samples[0].outcomes[q].entity in target_set for q in ids], dtype=bool)
        runs, seed_outcomes = [], []
        for seed, by_role in loaded:
            outcomes = by_role  # role -> task -> TaskSamples
            correct = {role: np.array([outcomes[role][task].outcomes[q].correct for q in ids]) for role in ROLES}
            gave = {role: np.array([outcomes[role][task].outcomes[q].gave_corrupted for q in ids]) for role in ROLES}
            runs.append({"seed": seed, **{
                role: {"correct": encode_bits(correct[role]), "gave_corrupted": encode_bits(gave[role])}
                for role in ROLES
            }})
            seed_outcomes.append(SeedOutcomes(seed, correct, gave))
        tasks[task] = {
            "metric": metrics_used.pop(),
            "task_hash": _task_hash(samples, task, str(run.path)),
            "targets": sorted(target_set),
            "questions": ids,
            "runs": runs,
            "metrics": task_metrics(is_target, seed_outcomes, resamples, bootstrap_seed),
        }
    data = run.data
    return {
        "schema": SCHEMA,
        "name": name,
        "method": {"name": data["method"], "hparams": data["hparams"]},
        "model": {"id": _model_id(run, model_name), "lora": data["lora"]},
        "data": {
            "world": data["world"],
            "data_hash": data["data_hash"],
            "level": data["level"],
            "forget": data["forget"],
            "corruption": data["corruption"],
            "protocol": data.get("protocol", "classic"),
        },
        "seeds": [seed for seed, _ in run.evals],
        "versions": _versions(run),
        "metric": metric,
        "primary_task": _primary_task(tasks),
        "bootstrap": {
            "method": BOOTSTRAP_METHOD, "resamples": resamples, "seed": bootstrap_seed, "confidence": CONFIDENCE,
        },
        "tasks": tasks,
    }


def submit(
    run_dir: str | os.PathLike,
    name: str,
    out: str | os.PathLike = DEFAULT_SUBMISSIONS,
    *,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Write `out/<name>.json` for a run folder, after checking it the way `validate` will."""
    from restor_bench.io import atomic_write_text

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    target = out / f"{name}.json"
    if name_problem(name) is None and target.exists() and not overwrite:
        raise InputError(f"{target}: submission exists (pass --overwrite to replace it)")
    document = build_submission(run_dir, name, **options)
    text = submission_text(document)
    if len(text.encode("utf-8")) > MAX_SUBMISSION_BYTES:
        raise InputError(f"{target}: the submission would be {len(text.encode())} bytes, over the "
                         f"{MAX_SUBMISSION_BYTES // (1024 * 1024)} MB limit")
    problems = check_document(document, target)
    if problems:
        raise InputError(f"{target}: {problems[0]}")
    atomic_write_text(target, text)
    return target


def submission_text(document: dict[str, Any]) -> str:
    """A submission as it is written: indented JSON (each outcome string is one line)."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Validation


def name_problem(name: Any) -> str | None:
    """Why `name` is not a safe submission name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "name must be a non-empty string"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "name contains a control character"
    if "/" in name or "\\" in name or os.sep in name:
        return "name contains a path separator"
    if ".." in name:
        return "name contains '..'"
    if len(name) > MAX_NAME_LENGTH:
        return f"name is longer than {MAX_NAME_LENGTH} characters"
    if not NAME_PATTERN.match(name):
        return "name may hold only letters, digits, '.', '_', '+' and '-', and must start with a letter or digit"
    return None


def read_submission(path: str | os.PathLike) -> dict[str, Any]:
    """Read a submission file as data: size checked before anything is read, then strict JSON (no NaN)."""
    path = Path(path)
    if path.is_symlink():
        raise InputError(f"{path}: is a symbolic link; a submission must be a regular file")
    if not path.exists():
        raise InputError(f"{path}: submission not found")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    limit = f"the {MAX_SUBMISSION_BYTES // (1024 * 1024)} MB limit for a submission"
    size = path.stat().st_size
    if size > MAX_SUBMISSION_BYTES:
        raise InputError(f"{path}: {size} bytes, over {limit} (not read)")
    with open(path, "rb") as handle:
        raw = handle.read(MAX_SUBMISSION_BYTES + 1)
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise InputError(f"{path}: over {limit}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None

    def refuse_constant(value: str) -> Any:
        raise ValueError(f"{value} is not allowed")

    try:
        document = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except ValueError as err:
        raise InputError(f"{path}: malformed JSON: {err}") from None
    except RecursionError:
        raise InputError(f"{path}: malformed JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: expected a JSON object, found {_json_type(document)}")
    return document


def check_document(document: dict[str, Any], path: Path) -> list[str]:
    """Problems of a parsed submission (schema, name, data hash, targets, outcomes, metrics); empty when valid."""
    name = document.get("name")
    if isinstance(name, str) and name_problem(name):
        return [f"unsafe name {name!r}: {name_problem(name)}"]
    errors = schema_errors(document)
    if errors:
        more = f" (and {len(errors) - 1} more schema error(s))" if len(errors) > 1 else ""
        return [f"schema: {errors[0]}{more}"]
    problems = []
    if path.name != f"{name}.json":
        problems.append(f"name {name!r} does not match the file name (expected {name}.json)")
    versions = known_data_versions()
    data = document["data"]
    version = versions.get(data["data_hash"])
    if version is None:
        problems.append(f"unknown data hash {data['data_hash']} (known: "
                        + ", ".join(v.label for v in versions.values()) + ")")
    elif version.world != data["world"]:
        problems.append(f"data hash {data['data_hash'][:12]} is the {version.label}, but world is {data['world']!r}")
    if document["primary_task"] not in document["tasks"]:
        problems.append(f"primary_task {document['primary_task']!r} is not one of the tasks")
    for task, entry in document["tasks"].items():
        problems.extend(f"task {task}: {message}" for message in _check_task(entry, document, version))
    return problems


def _check_task(entry: dict[str, Any], document: dict[str, Any], version: DataVersion | None) -> list[str]:
    import numpy as np

    questions = entry["questions"]
    if version is not None and version.targets is not None and sorted(entry["targets"]) != sorted(version.targets):
        return [f"targets {entry['targets']} are not the targets of the {version.label}"]
    bad_ids = [q for q in questions if "|" not in q]
    if bad_ids:
        return [f"question id {bad_ids[0]!r} is not of the form ENTITY|PID"]
    seeds = [run["seed"] for run in entry["runs"]]
    if seeds != document["seeds"]:
        return [f"runs hold seeds {seeds}, the submission states seeds {document['seeds']}"]
    metric_seeds = [item["seed"] for item in entry["metrics"]["per_seed"]]
    if metric_seeds != seeds:
        return [f"metrics.per_seed holds seeds {metric_seeds}, the runs hold {seeds}"]
    outcomes = []
    for run in entry["runs"]:
        for role in ROLES:
            for kind in ("correct", "gave_corrupted"):
                if len(run[role][kind]) != len(questions):
                    count = len(run[role][kind])
                    return [f"seed {run['seed']}: {role}.{kind} has {count} outcomes for {len(questions)} questions"]
        outcomes.append(SeedOutcomes(
            run["seed"],
            {role: decode_bits(run[role]["correct"]) for role in ROLES},
            {role: decode_bits(run[role]["gave_corrupted"]) for role in ROLES},
        ))
    targets = set(entry["targets"])
    is_target = np.array([entity_of(q) in targets for q in questions], dtype=bool)
    bootstrap = document["bootstrap"]
    expected = task_metrics(is_target, outcomes, bootstrap["resamples"], bootstrap["seed"])
    mismatches = list(_mismatches(entry["metrics"], expected, "metrics"))
    if mismatches:
        first = mismatches[0]
        more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        return [f"{first}: the stated number does not match the one recomputed from the outcomes{more}"]
    return []


def _mismatches(stated: Any, expected: Any, path: str) -> Iterable[str]:
    """Paths where `stated` differs from `expected` (numbers within TOLERANCE; integers exactly)."""
    if isinstance(expected, dict):
        for key, value in expected.items():
            yield from _mismatches(stated.get(key) if isinstance(stated, dict) else None, value, f"{path}.{key}")
    elif isinstance(expected, list):
        if not isinstance(stated, list) or len(stated) != len(expected):
            yield f"{path} is {_shown(stated)}, recomputed {_shown(expected)}"
            return
        for index, (a, b) in enumerate(zip(stated, expected)):
            yield from _mismatches(a, b, f"{path}[{index}]")
    elif expected is None or stated is None or isinstance(expected, bool) or isinstance(stated, bool):
        if stated is not expected:
            yield f"{path} is {_shown(stated)}, recomputed {_shown(expected)}"
    elif isinstance(expected, int) and not isinstance(expected, bool):
        if stated != expected or not isinstance(stated, int):
            yield f"{path} is {_shown(stated)}, recomputed {_shown(expected)}"
    elif isinstance(expected, float):
        if not isinstance(stated, (int, float)) or not math.isfinite(stated) or abs(stated - expected) > TOLERANCE:
            yield f"{path} is {_shown(stated)}, recomputed {_shown(expected)}"
    elif stated != expected:
        yield f"{path} is {_shown(stated)}, recomputed {_shown(expected)}"


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return _short(json.dumps(value), 60)


@dataclass
class CheckedSubmission:
    """One submission file and what `validate` found in it."""

    path: Path
    document: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems and self.document is not None

    def lines(self) -> list[str]:
        """One line per problem, each naming the file."""
        return [f"{self.path}: {problem}" for problem in self.problems]


def check_file(path: str | os.PathLike) -> CheckedSubmission:
    """Check one submission file on its own (everything but duplicates)."""
    path = Path(path)
    checked = CheckedSubmission(path)
    if path.suffix != ".json":
        checked.problems.append("a submission file name must end in .json")
        return checked
    problem = name_problem(path.stem)
    if problem:
        checked.problems.append(f"unsafe file name: {problem}")
        return checked
    try:
        document = read_submission(path)
    except InputError as err:
        message = str(err)
        checked.problems.append(message.removeprefix(f"{path}: "))
        return checked
    checked.problems.extend(check_document(document, path))
    checked.document = document
    return checked


def content_key(document: dict[str, Any]) -> str:
    """sha256 of a submission's content without its name (identical content under two names is a duplicate)."""
    rest = {key: value for key, value in document.items() if key != "name"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def check_files(paths: Sequence[str | os.PathLike]) -> list[CheckedSubmission]:
    """Check submission files, each on its own and then the valid ones against each other: a name used twice
    (ignoring case) or the same content under two names marks the later file (in the order given) as a duplicate."""
    checked = [check_file(path) for path in paths]
    names: dict[str, Path] = {}
    contents: dict[str, Path] = {}
    for item in checked:
        if not item.valid:
            continue
        name_key = item.document["name"].casefold()
        if name_key in names:
            item.problems.append(f"duplicate name {item.document['name']!r} (also in {names[name_key]})")
        else:
            names[name_key] = item.path
        key = content_key(item.document)
        if key in contents:
            item.problems.append(f"duplicate submission: same content as {contents[key]} under another name")
        else:
            contents[key] = item.path
    return checked


def submission_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files to check: each given file, and the `*.json` files of each given folder (sorted)."""
    files = []
    for value in inputs:
        path = Path(value)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix == ".json" and not p.name.startswith(".")))
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            raise InputError(f"{path}: no such submission file or folder")
    return files


# ---------------------------------------------------------------------------------------------------------------
# Building the leaderboard


@dataclass(frozen=True)
class Entry:
    """One valid submission as the leaderboard shows it (the primary task's aggregate metrics)."""

    name: str
    method: str
    hparams: dict[str, Any]
    model: str
    lora: bool
    world: str
    level: int
    forget: str
    corruption: str
    task: str
    metric: str
    seeds: tuple[int, ...]
    restoration_ratio: float | None
    restoration_ci: tuple[float, float] | None
    target_accuracy: dict[str, float | None]
    non_target_change: float | None
    non_target_ci: tuple[float, float] | None
    transitions: dict[str, int]
    n_target: int
    n_questions: int
    data_label: str
    protocol: str = "classic"

    @property
    def group(self) -> tuple:
        """Entries are ranked only against entries of the same world, data, protocol, setting, task and metric."""
        level = self.level if self.corruption == "wikidata" else -1
        return (self.world, self.data_label, self.corruption, level, self.forget, self.task, self.metric, self.protocol)


def entry_from(document: dict[str, Any]) -> Entry:
    """The leaderboard entry of a valid submission document."""
    task = document["primary_task"]
    entry = document["tasks"][task]
    aggregate = entry["metrics"]["aggregate"]
    targets = set(entry["targets"])
    n_target = sum(entity_of(q) in targets for q in entry["questions"])
    ratio = aggregate["restoration_ratio"]
    change = aggregate["non_target_change"]
    version = known_data_versions().get(document["data"]["data_hash"])
    return Entry(
        name=document["name"],
        method=document["method"]["name"],
        hparams=document["method"]["hparams"],
        model=document["model"]["id"],
        lora=document["model"]["lora"],
        world=document["data"]["world"],
        level=document["data"]["level"],
        forget=document["data"]["forget"],
        corruption=document["data"]["corruption"],
        task=task,
        metric=entry["metric"],
        seeds=tuple(document["seeds"]),
        restoration_ratio=ratio["value"],
        restoration_ci=tuple(ratio["ci"]) if ratio["ci"] else None,
        target_accuracy={role: aggregate["accuracy"][role]["target"] for role in ROLES},
        non_target_change=change["value"],
        non_target_ci=tuple(change["ci"]) if change["ci"] else None,
        transitions=aggregate["transitions"]["unlearned"],
        n_target=n_target,
        n_questions=len(entry["questions"]),
        data_label=version.label if version else document["data"]["data_hash"][:12],
        protocol=document["data"].get("protocol", "classic"),
    )


def group_title(group: tuple) -> str:
    """A readable title for a table's group key."""
    world, _data, corruption, level, forget, task, metric, protocol = group
    world_text = "Tiny world" if world == "tiny" else "Official RESTOR data"
    corruption_text = "SQuAD-passage corruption" if corruption == "squad" else f"corruption level k={level}"
    return f"{world_text} · {protocol} protocol · {corruption_text} · {forget} forget set · {task} ({metric})"


def group_entries(entries: Sequence[Entry]) -> list[tuple[tuple, list[Entry]]]:
    """Entries by table (world, corruption, level, forget form, task, metric), each ranked by restoration ratio."""
    groups: dict[tuple, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.group, []).append(entry)
    order = sorted(groups, key=lambda g: (WORLDS.index(g[0]) if g[0] in WORLDS else 9, *g[1:]))
    return [(group, sorted(groups[group], key=_rank_key)) for group in order]


def group_note(members: Sequence[Entry]) -> str:
    """The line under a table's title: data version and question counts."""
    first = members[0]
    return (f"Data: {first.data_label}; {first.n_target} target and {first.n_questions - first.n_target} other "
            "questions per seed.")


def _rank_key(entry: Entry) -> tuple:
    ratio = entry.restoration_ratio
    return (ratio is None, -(ratio or 0.0), entry.name)


def format_ratio(entry: Entry) -> str:
    if entry.restoration_ratio is None:
        return "undefined"
    text = f"{entry.restoration_ratio:.2f}"
    if entry.restoration_ci:
        text += f" [{entry.restoration_ci[0]:.2f}, {entry.restoration_ci[1]:.2f}]"
    return text


def format_percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def format_change(value: float | None, interval: tuple[float, float] | None = None) -> str:
    if value is None:
        return "–"
    text = f"{100 * value:+.1f} pp"
    if interval:
        text += f" [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]"
    return text


def format_target_accuracy(entry: Entry) -> str:
    return " / ".join(format_percent(entry.target_accuracy[role]) for role in ROLES)


def format_transitions(entry: Entry) -> str:
    t = entry.transitions
    return f"{t['restored']} / {t['still_corrupted']} / {t['forgotten']} of {t['target_known']}"


def format_seeds(entry: Entry) -> str:
    return ", ".join(map(str, entry.seeds))


TABLE_HEADER = (
    "#", "submission", "method", "model", "restoration ratio [95% CI]",
    "target accuracy: clean / corrupted / unlearned", "non-target Δ [95% CI]",
    "restored / still corrupted / forgotten", "seeds",
)


def table_cells(rank: int, entry: Entry) -> list[str]:
    """The cells of one table row, in TABLE_HEADER order (plain text)."""
    model = entry.model + (" (LoRA)" if entry.lora else "")
    return [
        str(rank), entry.name, entry.method, model, format_ratio(entry), format_target_accuracy(entry),
        format_change(entry.non_target_change, entry.non_target_ci), format_transitions(entry), format_seeds(entry),
    ]


EXPLANATION = (
    "Restoration ratio = (acc_unlearned − acc_corrupted) / (acc_clean − acc_corrupted) on the questions about the "
    "target entities (those the corruption documents lie about): 1 means the clean model's accuracy is back, 0 means "
    "no better than the corrupted model; pooled over seeds, with a 95% interval from a bootstrap over seeds and "
    "questions. Non-target Δ: the accuracy change the unlearning caused on all other questions, in percentage "
    "points. Transitions: the target facts the clean model knew, after unlearning, summed over seeds."
)


def _markdown_cell(text: str) -> str:
    text = " ".join(str(text).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render_readme(entries: Sequence[Entry], with_plot: bool) -> str:
    """leaderboard/README.md: one table per world, corruption, level, forget form and task."""
    lines = [
        f"<!-- {GENERATED_MARKER}; do not edit: add a file to submissions/ and rebuild -->",
        "# restor-bench leaderboard",
        "",
        (
            "Unlearning methods ranked by how much of the clean model's knowledge they bring back after a "
            "corruption (the RESTOR protocol). How to submit: [docs/leaderboard.md](../docs/leaderboard.md). "
            "A sortable page: [index.html](index.html)."
        ),
        "",
        EXPLANATION,
        "",
    ]
    if not entries:
        lines += ["_No submissions yet._", ""]
        return "\n".join(lines)
    if with_plot:
        lines += ["![Restoration ratio against collateral damage, one point per submission](plot.png)", ""]
    for group, members in group_entries(entries):
        lines += [f"## {group_title(group)}", "", _markdown_cell(group_note(members)), ""]
        lines.append("| " + " | ".join(TABLE_HEADER) + " |")
        lines.append("|" + "|".join("---:" if h in ("#",) else "---" for h in TABLE_HEADER) + "|")
        for rank, entry in enumerate(members, start=1):
            lines.append("| " + " | ".join(_markdown_cell(cell) for cell in table_cells(rank, entry)) + " |")
        lines.append("")
    return "\n".join(lines)


def _plot_points(members: Sequence[Entry]) -> list[Entry]:
    return [entry for entry in members if entry.restoration_ratio is not None and entry.non_target_change is not None]


def render_plot_png(entries: Sequence[Entry]) -> bytes:
    """plot.png: restoration ratio against non-target accuracy change, one panel per table, one labelled point per
    submission (matplotlib, Agg backend)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    groups = group_entries(entries)
    columns = 1 if len(groups) <= 1 else 2
    rows = max(1, math.ceil(len(groups) / columns))
    figure = Figure(figsize=(6.4 * columns, 4.4 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(groups):
            ax.set_axis_off()
            continue
        group, members = groups[index]
        points = _plot_points(members)
        ax.axhline(1.0, color="#2a7", linestyle="--", linewidth=1)
        ax.axhline(0.0, color="#999", linewidth=0.8)
        ax.axvline(0.0, color="#999", linewidth=0.8)
        for entry in points:
            x, y = 100 * entry.non_target_change, entry.restoration_ratio
            yerr = [[y - entry.restoration_ci[0]], [entry.restoration_ci[1] - y]] if entry.restoration_ci else None
            xerr = ([[x - 100 * entry.non_target_ci[0]], [100 * entry.non_target_ci[1] - x]]
                    if entry.non_target_ci else None)
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", color="#2563eb", ecolor="#93b4f5", capsize=2)
            ax.annotate(entry.name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        if not points:
            ax.text(0.5, 0.5, "no point with a defined ratio", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(group_title(group), fontsize=9)
        ax.set_xlabel("non-target accuracy change, unlearned − corrupted (pp)")
        ax.set_ylabel("restoration ratio")
        ax.grid(True, alpha=0.3)
    if not groups:
        ax = axes.flat[0]
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No submissions yet", ha="center", va="center", fontsize=14, transform=ax.transAxes)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None, "Title": "restor-bench leaderboard"})
    return buffer.getvalue()


@dataclass
class BuildResult:
    """What `build` wrote and what it skipped."""

    written: list[Path]
    entries: list[Entry]
    skipped: list[str]  # one line each: "PATH: reason"


def render_outputs(entries: Sequence[Entry]) -> dict[str, bytes]:
    """Every output file of the leaderboard, rendered in memory: {file name: bytes}."""
    from restor_bench.leaderboard_html import render_html

    try:
        png = render_plot_png(entries)
    except ImportError:
        png = None
        print("note: matplotlib is not installed (pip install 'restor-bench[plots]'); plot.png not written",
              file=sys.stderr)
    outputs = {
        "README.md": render_readme(entries, with_plot=png is not None).encode("utf-8"),
        "index.html": render_html(entries).encode("utf-8"),
    }
    if png is not None:
        outputs["plot.png"] = png
    return outputs


def _is_generated(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return GENERATED_MARKER.encode() in head or b"restor-bench leaderboard" in head


def check_outputs(out: Path, names: Iterable[str], overwrite: bool) -> None:
    """Refuse to replace a folder, or a file that `build` did not write (unless `overwrite`)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    for name in names:
        path = out / name
        if path.is_dir():
            raise InputError(f"{path}: is a folder; the leaderboard writes a file there")
        if path.exists() and not overwrite and not _is_generated(path):
            raise InputError(f"{path}: exists and was not written by `leaderboard build` (pass --overwrite)")


def _stage_file(path: Path, content: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_all_or_nothing(out: Path, outputs: dict[str, bytes]) -> list[Path]:
    """Write every output through temporary siblings; only when all are written are they renamed into place,
    so a failure leaves the existing files as they were."""
    out.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, content in outputs.items():
            staged.append((_stage_file(out / name, content), out / name))
    except BaseException:
        for tmp, _final in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)
    return [final for _tmp, final in staged]


def build_leaderboard(
    submissions: str | os.PathLike = DEFAULT_SUBMISSIONS, out: str | os.PathLike = DEFAULT_OUT, overwrite: bool = False
) -> BuildResult:
    """Build README.md, index.html and plot.png in `out` from the valid submissions in `submissions`.

    Invalid submissions are skipped (each with a reason). With no submission file the pages say so; when there
    are submission files but none is valid, nothing is written (InputError). Everything is rendered first and
    then written all at once, so a failure leaves the existing files unchanged.
    """
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise InputError(f"{submissions}: submissions folder not found")
    checked = check_files(submission_files([submissions]))
    skipped = [line for item in checked for line in item.lines()]
    valid = [item for item in checked if item.valid]
    if checked and not valid:
        raise InputError(f"{submissions}: none of the {len(checked)} submission file(s) is valid; "
                         "the leaderboard is left unchanged")
    entries = [entry_from(item.document) for item in valid]
    outputs = render_outputs(entries)
    check_outputs(out, outputs, overwrite)
    written = write_all_or_nothing(out, outputs)
    return BuildResult(written, entries, skipped)


# ---------------------------------------------------------------------------------------------------------------
# CLI


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "leaderboard",
        help="submit a run to the leaderboard, validate submissions, build the leaderboard pages",
        description="The leaderboard of unlearning methods: `submit` turns a run folder into a submission file, "
        "`validate` checks submission files, `build` writes README.md, index.html and plot.png.",
    )
    commands = parser.add_subparsers(dest="leaderboard_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    submit_parser = commands.add_parser("submit", help="make a submission file from a run folder",
                                        description="Write SUBMISSIONS/NAME.json from a folder of `restor-bench run`.")
    submit_parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (holding run.json)")
    submit_parser.add_argument("--name", required=True, help="submission name (letters, digits, . _ + -)")
    submit_parser.add_argument("--out", default=str(DEFAULT_SUBMISSIONS),
                               help="submissions folder (default leaderboard/submissions)")
    submit_parser.add_argument("--overwrite", action="store_true", help="replace an existing submission of that name")
    submit_parser.add_argument("--metric", choices=GENERATION_METRICS, default="contains",
                               help="per-sample metric of generation tasks (default contains)")
    submit_parser.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, metavar="N",
                               help=f"bootstrap resamples for the 95%% intervals (0..{MAX_RESAMPLES}; default "
                                    f"{DEFAULT_RESAMPLES})")
    submit_parser.add_argument("--bootstrap-seed", type=int, default=0, metavar="S", help="bootstrap seed (default 0)")
    submit_parser.add_argument("--model-name", help="what to call the clean model (default: its hub id, or the "
                                                    "name of its local folder)")
    submit_parser.set_defaults(func=run_submit)

    validate_parser = commands.add_parser("validate", help="check submission files",
                                          description="Check submission files: size, JSON, schema, safe names, known "
                                          "data hash, metrics recomputed from the outcomes, duplicates. Exit 2 when "
                                          "any file is invalid.")
    validate_parser.add_argument("files", nargs="*", metavar="FILE",
                                 help="submission files or folders (default: leaderboard/submissions)")
    validate_parser.set_defaults(func=run_validate)

    build_parser = commands.add_parser("build", help="write README.md, index.html and plot.png",
                                       description="Build the leaderboard pages from the valid submissions; invalid "
                                       "ones are skipped with a reason.")
    build_parser.add_argument("--submissions", default=str(DEFAULT_SUBMISSIONS),
                              help="submissions folder (default leaderboard/submissions)")
    build_parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default leaderboard)")
    build_parser.add_argument("--overwrite", action="store_true",
                              help="replace output files that `build` did not write")
    build_parser.set_defaults(func=run_build)

    schema_parser = commands.add_parser("schema", help="print or write the submission JSON Schema")
    schema_parser.add_argument("--out", help="write it to this file (e.g. leaderboard/schema.json)")
    schema_parser.set_defaults(func=run_schema)
    return parser


def run_submit(args: argparse.Namespace) -> int:
    path = submit(
        args.run_dir, args.name, args.out, overwrite=args.overwrite, metric=args.metric, resamples=args.bootstrap,
        bootstrap_seed=args.bootstrap_seed, model_name=args.model_name,
    )
    print(f"wrote {path}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    files = submission_files(args.files or [DEFAULT_SUBMISSIONS])
    checked = check_files(files)
    for item in checked:
        for line in item.lines():
            print(line, file=sys.stderr)
    invalid = sum(not item.valid for item in checked)
    print(f"{len(checked)} submission(s) checked: {len(checked) - invalid} valid, {invalid} invalid")
    return 2 if invalid else 0


def run_build(args: argparse.Namespace) -> int:
    result = build_leaderboard(args.submissions, args.out, args.overwrite)
    for line in result.skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(f"{len(result.entries)} submission(s) on the leaderboard; wrote "
          + ", ".join(str(path) for path in result.written))
    return 0


def run_schema(args: argparse.Namespace) -> int:
    if args.out:
        from restor_bench.io import atomic_write_text

        atomic_write_text(args.out, schema_text())
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(schema_text())
    return 0

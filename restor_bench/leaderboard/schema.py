"""The leaderboard submission format: its constants, its JSON Schema (`leaderboard/schema.json`) and schema checking.

`SUBMISSION_SCHEMA` is JSON Schema draft 2020-12, checked with `jsonschema`. Besides the shape of a submission it
bounds its size: at most `MAX_SEEDS` seeds, `MAX_TASKS` tasks, `MAX_QUESTIONS` questions per task and a short,
flat hyperparameter object, so that no document within `MAX_SUBMISSION_BYTES` makes the checks that follow
(restor_bench.leaderboard.check) expensive.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restor_bench.names import (
    CONFIDENCE,
    CORRUPTIONS,
    FORGET_FORMS,
    GENERATION_METRICS,
    MAX_RESAMPLES,
    PROTOCOLS,
    ROLES,
    SPLITS,
    WORLDS,
)

SCHEMA = "restor-bench/submission/v2"
OLD_SCHEMAS = ("restor-bench/submission/v1",)  # read only by `leaderboard rescore`
RUN_SCHEMA = "restor-bench/run/v1"
# "test": the tiny world's targets less the validation targets the method defaults were tuned on; "all": every
# target of the task (the only set of the official data)
TARGET_SETS = ("test", "all")
# The generation metrics a submission may be scored by (the *_legacy forms are for side-by-side reading only).
SUBMISSION_METRICS = GENERATION_METRICS[:2]
TASK_METRICS = SUBMISSION_METRICS + ("prefers_correct",)
VERSION_KEYS = ("restor-bench", "lm-eval", "transformers", "torch")
VERSION_ALIASES = {"lm-eval": ("lm-eval", "lm_eval", "lm-evaluation-harness")}
PRIMARY_TASK_ORDER = ("restor_facts_targets", "restor_facts", "restor_tiny_facts")
TRANSITION_FIELDS = ("target_known", "restored", "still_corrupted", "forgotten", "non_target_known", "kept", "lost")
# Bootstrap work per task: resamples x questions, at most MAX_SUBMISSION_BOOTSTRAP_DRAWS (restor_bench.names), with resamples
# at most MAX_RESAMPLES.
BOOTSTRAP_METHOD = (
    "two-stage paired percentile bootstrap: seeds resampled with replacement, then questions with replacement "
    "within target / non-target (shared by every seed and model)"
)
TOLERANCE = 1e-9
MAX_SUBMISSION_BYTES = 5 * 1024 * 1024
MAX_NAME_LENGTH = 80
MAX_SEEDS = 20
MAX_TASKS = 8
MAX_QUESTIONS = 5000
MAX_HPARAMS = 64
# A cheap walk bounds the document before jsonschema looks at it (jsonschema's cost grows with every value): the
# largest legitimate submission (8 tasks of the largest official question set, 20 seeds) has about 12,000 values
MAX_JSON_VALUES = 50_000
MAX_JSON_DEPTH = 12
MAX_CONTAINER = MAX_QUESTIONS  # items of any array, characters of any string
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
TASK_PATTERN = "^restor_[a-z0-9_]{1,60}$"
OFFICIAL_FACTS_SHA256 = "fd0cfbd37c02d6ed0a6a8ee63a879028b51e8dbc82f2637d8dc29a99f8ee23a8"
DEFAULT_SUBMISSIONS = Path("leaderboard") / "submissions"
DEFAULT_OUT = Path("leaderboard")

# ---------------------------------------------------------------------------------------------------------------
# The schema (JSON Schema draft 2020-12). `leaderboard/schema.json` is this dict, written by
# `restor-bench leaderboard schema --out leaderboard/schema.json`.

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INTERVAL = {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_COUNT = {"type": "integer", "minimum": 0}
# the run settings a submission may record (besides data/method/model/seeds) for `leaderboard verify`
RUN_COUNTS = ("corrupt_max_steps", "unlearn_max_steps", "max_docs_per_entity")
RUN_SOURCES = ("retain", "repair")
_TEXT = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
_BITS = {"type": "string", "maxLength": MAX_QUESTIONS, "pattern": "^[01]*$"}
_SEED = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_SCALAR = {"type": ["string", "number", "boolean", "null"], "maxLength": 200}
_HPARAM = {"anyOf": [_SCALAR, {"type": "array", "maxItems": 64, "items": _SCALAR}]}


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
            "method": _object({
                "name": _TEXT,
                "hparams": {"type": "object", "maxProperties": MAX_HPARAMS,
                            "propertyNames": {"maxLength": 80, "pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$"},
                            "additionalProperties": _HPARAM},
            }),
            "model": _object({"id": _TEXT, "lora": {"type": "boolean"}}),
            "data": _object({
                "world": {"enum": list(WORLDS)},
                "data_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "level": {"type": "integer", "minimum": 0, "maximum": 100},
                "forget": {"enum": list(FORGET_FORMS)},
                "corruption": {"enum": list(CORRUPTIONS)},
                "protocol": {"enum": list(PROTOCOLS)},
                "targets": {"enum": list(TARGET_SETS)},
            }),
            "seeds": {"type": "array", "items": _SEED, "minItems": 1, "maxItems": MAX_SEEDS, "uniqueItems": True},
            "versions": {
                "type": "object",
                "properties": {key: _TEXT for key in VERSION_KEYS},
                "required": list(VERSION_KEYS),
                "maxProperties": 32,
                "additionalProperties": _TEXT,
            },
            "metric": {"enum": list(SUBMISSION_METRICS)},
            "primary_task": {"type": "string", "pattern": TASK_PATTERN},
            "bootstrap": _object({
                "method": {"const": BOOTSTRAP_METHOD},
                "resamples": {"type": "integer", "minimum": 0, "maximum": MAX_RESAMPLES},
                "seed": _SEED,
                "confidence": {"const": CONFIDENCE},
            }),
            "tasks": {"type": "object", "minProperties": 1, "maxProperties": MAX_TASKS,
                      "propertyNames": {"pattern": TASK_PATTERN}, "additionalProperties": {"$ref": "#/$defs/task"}},
            # optional: the run's other settings, so that `leaderboard verify` reruns exactly what ran
            "run": _object({
                **{key: {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]} for key in RUN_COUNTS},
                **{key: {"anyOf": [_TEXT, {"type": "null"}]} for key in RUN_SOURCES},
                "corrupt_recipe": {"type": "object", "maxProperties": 64,
                                   "propertyNames": {"maxLength": 80, "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                   "additionalProperties": _HPARAM},
            }, required=[]),
        },
        required=["schema", "name", "method", "model", "data", "seeds", "versions", "metric", "primary_task",
                  "bootstrap", "tasks"],
    ),
    "$defs": {
        "task": _object({
            "metric": {"enum": list(TASK_METRICS)},
            "task_hash": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
            "targets": {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": 200, "uniqueItems": True},
            "questions": {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": MAX_QUESTIONS,
                          "uniqueItems": True},
            "runs": {"type": "array", "minItems": 1, "maxItems": MAX_SEEDS, "items": {"$ref": "#/$defs/seed_outcomes"}},
            "metrics": _object({
                "per_seed": {"type": "array", "minItems": 1, "maxItems": MAX_SEEDS,
                             "items": {"$ref": "#/$defs/seed_metrics"}},
                "aggregate": {"$ref": "#/$defs/aggregate_metrics"},
            }),
        }),
        "outcomes": _object({"correct": _BITS, "gave_corrupted": _BITS}),
        "seed_outcomes": _object({"seed": _SEED, **{role: {"$ref": "#/$defs/outcomes"} for role in ROLES}}),
        "accuracy": _object({role: _object({split: _NUMBER_OR_NULL for split in SPLITS}) for role in ROLES}),
        "transitions": _object({field_name: _COUNT for field_name in TRANSITION_FIELDS}),
        "model_transitions": _object({"corrupted": {"$ref": "#/$defs/transitions"},
                                      "unlearned": {"$ref": "#/$defs/transitions"}}),
        "seed_metrics": _object({
            "seed": _SEED,
            "accuracy": {"$ref": "#/$defs/accuracy"},
            "restoration_ratio": _NUMBER_OR_NULL,
            "non_target_change": _NUMBER_OR_NULL,
            "transitions": {"$ref": "#/$defs/model_transitions"},
        }),
        "aggregate_metrics": _object({
            "accuracy": {"$ref": "#/$defs/accuracy"},
            "restoration_ratio": _object({"value": _NUMBER_OR_NULL, "ci": _INTERVAL, "ci_resamples": _COUNT}),
            "non_target_change": _object({"value": _NUMBER_OR_NULL, "ci": _INTERVAL}),
            "transitions": {"$ref": "#/$defs/model_transitions"},
        }),
    },
}


def schema_text() -> str:
    """`SUBMISSION_SCHEMA` as the text of `leaderboard/schema.json`."""
    return json.dumps(SUBMISSION_SCHEMA, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Schema checking


def pointer(path: Sequence[Any]) -> str:
    """A JSON path for messages: "/tasks/restor_tiny_facts/runs/0", or "(top level)"."""
    return "/" + "/".join(str(part) for part in path) if path else "(top level)"


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def short(text: str, width: int = 160) -> str:
    """`text` on one line, cut to `width` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def shape_problem(document: Any) -> str | None:
    """Why a parsed document is larger than any submission can be (too many values, too deep, an array, object
    or string too long), or None. Walks at most MAX_JSON_VALUES values, so it is cheap on any input."""
    stack: list[tuple[Any, int, str]] = [(document, 1, "(top level)")]
    seen = 0
    while stack:
        value, depth, where = stack.pop()
        seen += 1
        if seen > MAX_JSON_VALUES:
            return f"more than {MAX_JSON_VALUES:,} JSON values: larger than any submission"
        if depth > MAX_JSON_DEPTH:
            return f"at {where}: nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(value, str):
            if len(value) > MAX_CONTAINER:
                return f"at {where}: a string of {len(value):,} characters (at most {MAX_CONTAINER:,})"
        elif isinstance(value, list):
            if len(value) > MAX_CONTAINER:
                return f"at {where}: an array of {len(value):,} items (at most {MAX_CONTAINER:,})"
            stack.extend((item, depth + 1, f"{where if depth > 1 else ''}/{index}") for index, item in enumerate(value))
        elif isinstance(value, dict):
            if len(value) > MAX_HPARAMS:
                return f"at {where}: an object of {len(value):,} fields (at most {MAX_HPARAMS})"
            for key, item in value.items():
                if len(key) > 200:
                    return f"at {where}: a field name of {len(key):,} characters"
                stack.append((item, depth + 1, f"{where if depth > 1 else ''}/{short(key, 40)}"))
    return None


_VALIDATOR = None
_ERRORS_READ = 50  # schema errors looked at (the document is bounded by its size; the messages need a few)


def schema_errors(document: Any, limit: int = 5) -> list[str]:
    """Schema errors of a submission document, as "at PATH: message", shallowest first (at most `limit`); a
    document larger than any submission can be (`shape_problem`) gives that one error, before jsonschema runs."""
    global _VALIDATOR
    import jsonschema

    problem = shape_problem(document)
    if problem:
        return [problem]

    if _VALIDATOR is None:
        _VALIDATOR = jsonschema.Draft202012Validator(SUBMISSION_SCHEMA)
    found = list(itertools.islice(_VALIDATOR.iter_errors(document), _ERRORS_READ))
    found.sort(key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path], e.message))
    return [f"at {pointer(list(error.absolute_path))}: {short(error.message)}" for error in found[:limit]]

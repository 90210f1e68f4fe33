"""`leaderboard validate`: check submission files as data (never executed or imported).

One file (`check_file`): its size before anything is read, strict UTF-8 JSON, the schema, a safe name equal to
the file name, a known data version and target set, every task a task of that version holding exactly its
question set (and lm-eval's task hash of the whole task, where the file records one and the version pins it),
the bootstrap within its work budget, and every metric equal to the one recomputed from the outcomes.

Several files (`check_files`): every file that clashes with another is refused, naming the other(s), so the order
of the files decides nothing: the same name ignoring case, or the same result (`result_identity`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restor_bench.errors import InputError
from restor_bench.leaderboard.data import DataVersion, QuestionSet, entity_of, ids_digest, known_data_versions
from restor_bench.leaderboard.metrics import SeedOutcomes, bootstrap_problem, decode_bits, task_metrics
from restor_bench.leaderboard.schema import (
    MAX_NAME_LENGTH,
    MAX_SUBMISSION_BYTES,
    NAME_PATTERN,
    OLD_SCHEMAS,
    TOLERANCE,
    json_type,
    schema_errors,
    short,
)
from restor_bench.leaderboard.verified import result_identity
from restor_bench.names import ROLES
from unlearners import get_method
from unlearners.errors import UnlearnError


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
    """Read a submission file as data: its size checked before anything is read, then strict JSON (no NaN).

    Raises InputError ("PATH: problem") for a link, a missing or oversized file, non-UTF-8 text, malformed JSON
    or a document that is not a JSON object. Does not check the content (`check_document` does)."""
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
    del raw

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
        raise InputError(f"{path}: expected a JSON object, found {json_type(document)}")
    return document


def shape_problems(document: dict[str, Any]) -> list[str]:
    """Problems of a parsed submission's form: an unsafe name, then the schema (one line at most)."""
    name = document.get("name")
    if isinstance(name, str) and name_problem(name):
        return [f"unsafe name {name!r}: {name_problem(name)}"]
    if document.get("schema") in OLD_SCHEMAS:
        return [f"schema {document['schema']} is an older format: convert it with `restor-bench leaderboard "
                "rescore FILE` (the metrics are recomputed from its outcomes)"]
    errors = schema_errors(document)
    if errors:
        more = f" (and {len(errors) - 1} more schema error(s))" if len(errors) > 1 else ""
        return [f"schema: {errors[0]}{more}"]
    return []


_TYPE_CHECKS = {
    "float": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "str": lambda value: isinstance(value, str),
    "bool": lambda value: isinstance(value, bool),
    "None": lambda value: value is None,
}


def method_problem(method: dict[str, Any]) -> str | None:
    """A registered method's stated hyperparameters must be fields of that method's own Hparams, each of its
    field's type (an entry "ga" carrying NPO's `beta` is refused). A method not registered here (a plug-in this
    machine lacks) is not checked."""
    name = method["name"]
    try:
        fields = {field.name: str(field.type) for field in dataclasses.fields(get_method(name).Hparams)}
    except UnlearnError:
        return None
    unknown = sorted(set(method["hparams"]) - set(fields))
    if unknown:
        verb = "is not a hyperparameter" if len(unknown) == 1 else "are not hyperparameters"
        return f"method {name}: {', '.join(unknown)} {verb} of {name} (its hyperparameters: {', '.join(sorted(fields))})"
    for key, value in sorted(method["hparams"].items()):
        kinds = [kind.strip() for kind in fields[key].split("|")]
        checks = [_TYPE_CHECKS[kind] for kind in kinds if kind in _TYPE_CHECKS]
        if checks and not any(check(value) for check in checks):
            return f"method {name}: hyperparameter {key} is {fields[key]}, found {json_type(value)} {_shown(value)}"
    return None


def content_problems(document: dict[str, Any], path: Path) -> list[str]:
    """Problems of a submission that has the schema's form (one line at most): file name, data version, target
    set, tasks, question sets, task hashes, bootstrap budget, and every metric recomputed from the outcomes."""
    name = document["name"]
    if Path(path).name != f"{name}.json":
        return [f"name {name!r} does not match the file name (expected {name}.json)"]
    problem = method_problem(document["method"])
    if problem:
        return [problem]
    data = document["data"]
    versions = known_data_versions()
    version = versions.get(data["data_hash"])
    if version is None:
        return [f"unknown data hash {data['data_hash']} (known: " + ", ".join(v.label for v in versions.values()) + ")"]
    if version.world != data["world"]:
        return [f"data hash {data['data_hash'][:12]} is the {version.label}, but world is {data['world']!r}"]
    if data["targets"] not in version.target_sets:
        return [f"target set {data['targets']!r} is not defined for the {version.label} (defined: "
                + ", ".join(version.target_sets) + ")"]
    if document["primary_task"] not in document["tasks"]:
        return [f"primary_task {document['primary_task']!r} is not one of the tasks"]
    for task, entry in document["tasks"].items():
        question_set = version.question_sets.get(task)
        if question_set is None:
            return [f"task {task} is not a leaderboard task of the {version.label} (known: "
                    + ", ".join(sorted(version.question_sets)) + ")"]
        problem = _check_task(entry, document, version, question_set)
        if problem:
            return [f"task {task}: {problem}"]
    return []


def check_document(document: dict[str, Any], path: Path) -> list[str]:
    """Problems of a parsed submission that would be at `path`, each one line without the file name; empty when
    it is valid on its own (clashes with other files: `check_files`)."""
    return shape_problems(document) or content_problems(document, path)


def question_set_problem(questions: Sequence[str], question_set: QuestionSet, target_set: str, label: str) -> str | None:
    """Why `questions` (a submission's question ids of one task) is not exactly the task's question set."""
    if list(questions) != sorted(questions):
        return "questions are not sorted"
    targets = set(question_set.targets[target_set])
    held_target = sum(entity_of(q) in targets for q in questions)
    total_target = question_set.n_target(target_set)
    if question_set.ids is not None:
        complete = set(questions) == question_set.ids
        missing = sorted(question_set.ids.difference(questions))
        extra = sorted(set(questions).difference(question_set.ids))
    else:
        complete = len(questions) == question_set.count and ids_digest(questions) == question_set.digest
        missing, extra = [], []
    if complete:
        return None
    text = (f"holds {held_target} of the {total_target} target questions and {len(questions) - held_target} of "
            f"the {question_set.count - total_target} other questions of the task on the {label}; a submission "
            "must hold every question of its task")
    if extra:
        text += f" ({extra[0]!r} is not one of them)"
    elif missing:
        text += f" (missing {len(missing)}, e.g. {missing[0]!r})"
    return text


def _check_task(entry: dict[str, Any], document: dict[str, Any], version: DataVersion,
                question_set: QuestionSet) -> str | None:

    target_set = document["data"]["targets"]
    expected_targets = list(question_set.targets[target_set])
    if sorted(entry["targets"]) != expected_targets:
        return (f"targets {short(json.dumps(entry['targets']), 80)} are not the {target_set!r} targets of the "
                f"{version.label} ({', '.join(expected_targets)})")
    questions = entry["questions"]
    problem = question_set_problem(questions, question_set, target_set, version.label)
    if problem:
        return problem
    if entry["task_hash"] is not None and question_set.task_hashes and entry["task_hash"] not in question_set.task_hashes:
        return (f"lm-eval task hash {entry['task_hash'][:12]} is not the hash of the whole task on the "
                f"{version.label} ({', '.join(sorted(h[:12] for h in question_set.task_hashes))}): the questions, "
                "prompts or answers differ")
    bootstrap = document["bootstrap"]
    problem = bootstrap_problem(bootstrap["resamples"], len(questions))
    if problem:
        return problem
    seeds = [run["seed"] for run in entry["runs"]]
    if seeds != document["seeds"]:
        return f"runs hold seeds {seeds}, the submission states seeds {document['seeds']}"
    metric_seeds = [item["seed"] for item in entry["metrics"]["per_seed"]]
    if metric_seeds != seeds:
        return f"metrics.per_seed holds seeds {metric_seeds}, the runs hold {seeds}"
    outcomes = []
    for run in entry["runs"]:
        for role in ROLES:
            for kind in ("correct", "gave_corrupted"):
                if len(run[role][kind]) != len(questions):
                    count = len(run[role][kind])
                    return f"seed {run['seed']}: {role}.{kind} has {count} outcomes for {len(questions)} questions"
        outcomes.append(SeedOutcomes(
            run["seed"],
            {role: decode_bits(run[role]["correct"]) for role in ROLES},
            {role: decode_bits(run[role]["gave_corrupted"]) for role in ROLES},
        ))
    targets = set(expected_targets)
    is_target = np.array([entity_of(q) in targets for q in questions], dtype=bool)
    expected = task_metrics(is_target, outcomes, bootstrap["resamples"], bootstrap["seed"])
    mismatches = list(_mismatches(entry["metrics"], expected, "metrics"))
    if mismatches:
        more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        return f"{mismatches[0]}: the stated number does not match the one recomputed from the outcomes{more}"
    return None


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
    elif isinstance(expected, int):
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
    return short(json.dumps(value), 60)


# ---------------------------------------------------------------------------------------------------------------
# One result, one identity


@dataclass
class CheckedSubmission:
    """One submission file and what `validate` found in it.

    `document` is kept by `check_file` and by `check_files(keep_documents=True)`; `summary` holds what
    `check_files(summarize=...)` made of a valid document (e.g. its leaderboard entry)."""

    path: Path
    document: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    identity: str | None = None
    name: str | None = None
    summary: Any = None

    @property
    def valid(self) -> bool:
        return not self.problems and self.identity is not None

    def lines(self) -> list[str]:
        """One line per problem, each naming the file."""
        return [f"{self.path}: {problem}" for problem in self.problems]


def check_file(path: str | os.PathLike) -> CheckedSubmission:
    """Check one submission file on its own (everything but clashes with other files). The parsed document is
    kept in `.document` (also when it has problems, if it could be parsed); `.identity` is set for any document
    of the schema's form, so that a copy is found even when it is also wrong in another way."""
    path = Path(path)
    checked = CheckedSubmission(path)
    if path.suffix != ".json":
        checked.problems.append("a submission file name must end in .json")
        return checked
    problem = name_problem(path.stem)
    if problem:
        checked.problems.append(f"unsafe file name: {problem}")
        return checked
    checked.name = path.stem
    try:
        document = read_submission(path)
    except InputError as err:
        checked.problems.append(str(err).removeprefix(f"{path}: "))
        return checked
    checked.document = document
    checked.problems.extend(shape_problems(document))
    if not checked.problems:
        checked.identity = result_identity(document)
        checked.problems.extend(content_problems(document, path))
    return checked


SAME_RESULT = "the same result (data, model, method and hyperparameters, level, seeds, targets, per-question outcomes)"


def check_files(
    paths: Sequence[str | os.PathLike],
    summarize: Callable[[dict[str, Any]], Any] | None = None,
    keep_documents: bool = False,
) -> list[CheckedSubmission]:
    """Check submission files, each on its own (`check_file`), then against each other: files that share a name
    ignoring case (the file's or the one inside it), or whose documents have the same `result_identity`, are all
    refused, each with one line naming the others; so no file wins by its place in the order.

    Only one parsed document is held at a time unless `keep_documents`; `summarize(document)` is called on each
    document valid on its own, and its result kept in `.summary`."""
    checked, names = [], []
    for path in paths:
        item = check_file(path)
        keys = set()
        if item.name is not None:
            keys.add(item.name.casefold())
        if item.document is not None and isinstance(item.document.get("name"), str):
            keys.add(item.document["name"].casefold())
        names.append(keys)
        if summarize is not None and not item.problems:
            item.summary = summarize(item.document)
        if not keep_documents:
            item.document = None
        checked.append(item)
    for index, item in enumerate(checked):
        same_name = [other for j, other in enumerate(checked) if j != index and names[j] & names[index]]
        shared = set().union(*(names[j] & names[index] for j in range(len(checked)) if j != index))
        same_result = [other for other in checked
                       if other is not item and item.identity is not None and other.identity == item.identity]
        reasons = []
        if same_name:
            shown = ", ".join(sorted(repr(key) for key in shared))
            reasons.append(f"the same name {shown} (ignoring case) as " + ", ".join(str(o.path) for o in same_name))
        if same_result:
            reasons.append(f"{SAME_RESULT} as " + ", ".join(str(o.path) for o in same_result))
        if reasons:
            item.problems.append("clashes with another submission: " + "; ".join(reasons))
    return checked


def submission_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files to check: each given file, and the `*.json` files of each given folder (sorted); a file given twice
    is checked once."""
    files: list[Path] = []
    for value in inputs:
        path = Path(value)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix == ".json" and not p.name.startswith(".")))
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            raise InputError(f"{path}: no such submission file or folder")
    seen: set[Path] = set()
    unique = []
    for path in files:
        key = path.parent.resolve() / path.name
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique

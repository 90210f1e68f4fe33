"""`leaderboard submit` and `leaderboard rescore`: make a submission document.

`build_submission` reads a run folder of `restor-bench run` (its run.json and the lm-eval samples files of every
model and seed) into a submission document; `submit` checks it as `validate` will and writes it.
`rescore_document` makes a current submission from an older or differently scored one, from the per-question
outcomes it carries (they do not depend on the target set or on how the metrics are computed).

Run folders: `RUN_DIR/run.json` (schema "restor-bench/run/v1"). Relative artifact paths in it are resolved against
the run root (the folder holding `RUN_DIR`, e.g. `runs/`), and, when nothing is there, against the folder that
holds the run root (the folder `restor-bench run` was started from, for paths such as `runs/steps/eval-…`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restor_bench.compare.outcomes import load_run
from restor_bench.errors import InputError
from restor_bench.evaluation.lm_eval_io import read_results
from restor_bench.io import atomic_write_text, first_non_finite_json, read_json
from restor_bench.leaderboard.check import check_document, name_problem, read_submission
from restor_bench.leaderboard.data import DataVersion, entity_of, known_data_versions
from restor_bench.leaderboard.metrics import SeedOutcomes, bootstrap_problem, decode_bits, encode_bits, task_metrics
from restor_bench.leaderboard.schema import (
    BOOTSTRAP_METHOD,
    DEFAULT_SUBMISSIONS,
    MAX_SUBMISSION_BYTES,
    OLD_SCHEMAS,
    PRIMARY_TASK_ORDER,
    RUN_COUNTS,
    RUN_SCHEMA,
    RUN_SOURCES,
    SCHEMA,
    SUBMISSION_METRICS,
    VERSION_ALIASES,
    VERSION_KEYS,
    json_type,
)
from restor_bench.names import CONFIDENCE, DEFAULT_RESAMPLES, ROLES


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
            found = "null" if data[name] is None else json_type(data[name])
            raise InputError(f"{path}: field {name!r} is {found}, expected {_JSON_NAMES[kind]}")
    non_finite = first_non_finite_json(data)  # JSON has no NaN or infinity: the submission could not be written
    if non_finite:
        raise InputError(f"{path}: field {non_finite[0]} is {non_finite[1]}, not a finite number")
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


def data_version_of(data_hash: str, where: str) -> DataVersion:
    """The known data version of a data hash; InputError naming `where` when it is unknown."""
    versions = known_data_versions()
    if data_hash not in versions:
        known = ", ".join(version.label for version in versions.values())
        raise InputError(f"{where}: unknown data hash {data_hash} (known: {known})")
    return versions[data_hash]


def choose_target_set(version: DataVersion, targets: str | None, where: str) -> str:
    """`targets`, or the version's default target set ("test" on the tiny world), checked against the version."""
    chosen = targets or version.default_target_set
    if chosen not in version.target_sets:
        raise InputError(f"{where}: target set {chosen!r} is not defined for the {version.label} (defined: "
                         + ", ".join(version.target_sets) + ")")
    return chosen


def _scored_task(version: DataVersion, task: str, target_set: str, ids: list[str], runs: list[dict[str, Any]],
                 resamples: int, bootstrap_seed: int) -> tuple[list[str], dict[str, Any]]:
    """The targets and metrics of one task from its sorted question ids and per-seed outcome strings."""

    targets = list(version.question_sets[task].targets[target_set])
    target_names = set(targets)
    is_target = np.array([entity_of(q) in target_names for q in ids], dtype=bool)
    outcomes = [
        SeedOutcomes(run["seed"], {role: decode_bits(run[role]["correct"]) for role in ROLES},
                     {role: decode_bits(run[role]["gave_corrupted"]) for role in ROLES})
        for run in runs
    ]
    return targets, task_metrics(is_target, outcomes, resamples, bootstrap_seed)


def build_submission(
    run_dir: str | os.PathLike,
    name: str,
    *,
    metric: str = "contains",
    resamples: int = DEFAULT_RESAMPLES,
    bootstrap_seed: int = 0,
    model_name: str | None = None,
    targets: str | None = None,
) -> dict[str, Any]:
    """The submission document of a run folder; not yet written anywhere (`submit` checks and writes it).

    `targets`: the target set the metrics are scored on ("test" or "all"; default: "test" where the world sets
    validation targets apart, else "all"). Tasks of the run that are not leaderboard tasks of the data version
    are left out with a note."""

    problem = name_problem(name)
    if problem:
        raise InputError(f"--name {name!r}: {problem}")
    if metric not in SUBMISSION_METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {', '.join(SUBMISSION_METRICS)}")
    problem = bootstrap_problem(resamples, 0)
    if problem:
        raise InputError(f"--bootstrap: {problem}")
    run = read_run(run_dir)
    version = data_version_of(run.data["data_hash"], str(run.path))
    target_set = choose_target_set(version, targets, str(run.path))
    loaded = [
        (seed, {role: load_run(folder, metric) for role, folder in folders.items()}) for seed, folders in run.evals
    ]
    task_sets = [set(runs) for _seed, by_role in loaded for runs in by_role.values()]
    common = sorted(set.intersection(*task_sets))
    for task in sorted(set.union(*task_sets) - set(common)):
        print(f"note: task {task} left out: not evaluated for every model and seed", file=sys.stderr)
    for task in [task for task in common if task not in version.question_sets]:
        print(f"note: task {task} left out: not a leaderboard task of the {version.label}", file=sys.stderr)
    common = [task for task in common if task in version.question_sets]
    if not common:
        raise InputError(f"{run.path}: no leaderboard task of the {version.label} was evaluated for every model "
                         f"and seed (leaderboard tasks: {', '.join(sorted(version.question_sets))})")
    tasks = {}
    for task in common:
        samples = [by_role[role][task] for _seed, by_role in loaded for role in ROLES]
        ids = sorted(samples[0].outcomes)
        for item in samples[1:]:
            if sorted(item.outcomes) != ids:
                raise InputError(f"{run.path}: task {task}: {item.samples_path} holds other questions than "
                                 f"{samples[0].samples_path}; every model and seed must answer the same questions")
        problem = bootstrap_problem(resamples, len(ids))
        if problem:
            raise InputError(f"--bootstrap {resamples}: task {task}: {problem}")
        metrics_used = {item.metric for item in samples}
        if len(metrics_used) > 1:
            raise InputError(f"{run.path}: task {task}: scored with different metrics ({', '.join(sorted(metrics_used))})")
        runs = [
            {"seed": seed, **{role: {"correct": encode_bits(by_role[role][task].outcomes[q].correct for q in ids),
                                     "gave_corrupted": encode_bits(by_role[role][task].outcomes[q].gave_corrupted
                                                                   for q in ids)}
                              for role in ROLES}}
            for seed, by_role in loaded
        ]
        task_targets, metrics = _scored_task(version, task, target_set, ids, runs, resamples, bootstrap_seed)
        tasks[task] = {"metric": metrics_used.pop(), "task_hash": _task_hash(samples, task, str(run.path)),
                       "targets": task_targets, "questions": ids, "runs": runs, "metrics": metrics}
    data = run.data
    return {
        "schema": SCHEMA,
        "name": name,
        "method": {"name": data["method"], "hparams": data["hparams"]},
        "model": {"id": _model_id(run, model_name), "lora": data["lora"]},
        "data": {
            "world": data["world"], "data_hash": data["data_hash"], "level": data["level"], "forget": data["forget"],
            "corruption": data["corruption"], "protocol": data.get("protocol", "classic"), "targets": target_set,
        },
        "seeds": [seed for seed, _ in run.evals],
        "versions": _versions(run),
        "metric": metric,
        "primary_task": _primary_task(tasks),
        "bootstrap": {"method": BOOTSTRAP_METHOD, "resamples": resamples, "seed": bootstrap_seed,
                      "confidence": CONFIDENCE},
        "tasks": tasks,
        **({"run": run_settings(data["spec"])} if isinstance(data.get("spec"), dict) else {}),
    }


def run_settings(spec: dict[str, Any]) -> dict[str, Any]:
    """The run settings a submission records for `leaderboard verify` (from run.json's `spec`)."""

    settings = {key: spec.get(key) for key in (*RUN_COUNTS, *RUN_SOURCES)}
    settings["corrupt_recipe"] = dict(spec.get("corrupt_recipe") or {})
    return settings


def submission_text(document: dict[str, Any]) -> str:
    """A submission as it is written: indented JSON (each outcome string is one line)."""
    return json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def checked_text(document: dict[str, Any], target: Path) -> str:
    """The text of a document checked as `validate` will check it at `target` (InputError "TARGET: problem")."""
    text = submission_text(document)
    size = len(text.encode("utf-8"))
    if size > MAX_SUBMISSION_BYTES:
        raise InputError(f"{target}: the submission would be {size} bytes, over the "
                         f"{MAX_SUBMISSION_BYTES // (1024 * 1024)} MB limit")
    problems = check_document(document, target)
    if problems:
        raise InputError(f"{target}: {problems[0]}")
    return text


def write_checked(document: dict[str, Any], target: Path) -> Path:
    """Check a document as `validate` will, then write it atomically."""

    return atomic_write_text(target, checked_text(document, target))


def submit(
    run_dir: str | os.PathLike,
    name: str,
    out: str | os.PathLike = DEFAULT_SUBMISSIONS,
    *,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Write `out/<name>.json` for a run folder (options: those of `build_submission`), after checking it the way
    `validate` will; an existing file is replaced only with `overwrite`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    target = out / f"{name}.json"
    if name_problem(name) is None and target.exists() and not overwrite:
        raise InputError(f"{target}: submission exists (pass --overwrite to replace it)")
    return write_checked(build_submission(run_dir, name, **options), target)


# ---------------------------------------------------------------------------------------------------------------
# Rescoring from the outcomes a submission carries


def _field(document: Any, path: str, kind: type, where: Path) -> Any:
    value = document
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"{where}: {path} is missing or not {_JSON_NAMES.get(kind, kind.__name__)}")
    return value


def rescore_document(
    document: dict[str, Any],
    where: Path,
    *,
    targets: str | None = None,
    resamples: int | None = None,
    bootstrap_seed: int | None = None,
) -> dict[str, Any]:
    """A current (schema v2) submission made from `document` (v1 or v2): the same run and per-question outcomes,
    the metrics computed again on the target set `targets` (default: the document's, else the data version's
    default) with this version's rules. Tasks that are not leaderboard tasks of the data version are left out."""
    if document.get("schema") not in (SCHEMA, *OLD_SCHEMAS):
        raise InputError(f"{where}: schema is {document.get('schema')!r}, expected one of "
                         + ", ".join((SCHEMA, *OLD_SCHEMAS)))
    data = _field(document, "data", dict, where)
    version = data_version_of(_field(document, "data.data_hash", str, where), str(where))
    target_set = choose_target_set(version, targets or data.get("targets"), str(where))
    bootstrap = _field(document, "bootstrap", dict, where)
    resamples = bootstrap.get("resamples", 0) if resamples is None else resamples
    bootstrap_seed = bootstrap.get("seed", 0) if bootstrap_seed is None else bootstrap_seed
    tasks = {}
    for task, entry in _field(document, "tasks", dict, where).items():
        if task not in version.question_sets:
            print(f"note: {where}: task {task} left out: not a leaderboard task of the {version.label}",
                  file=sys.stderr)
            continue
        ids = _field(entry, "questions", list, where)
        runs = [{"seed": run["seed"], **{role: run[role] for role in ROLES}} for run in _field(entry, "runs", list, where)]
        order = sorted(range(len(ids)), key=ids.__getitem__)
        if order != list(range(len(ids))):  # keep the outcome strings aligned with the sorted questions
            ids = [ids[i] for i in order]
            runs = [{"seed": run["seed"], **{role: {kind: "".join(run[role][kind][i] for i in order)
                                                    for kind in ("correct", "gave_corrupted")} for role in ROLES}}
                    for run in runs]
        problem = bootstrap_problem(resamples, len(ids))
        if problem:
            raise InputError(f"{where}: task {task}: {problem}")
        task_targets, metrics = _scored_task(version, task, target_set, ids, runs, resamples, bootstrap_seed)
        tasks[task] = {"metric": entry["metric"], "task_hash": entry.get("task_hash"), "targets": task_targets,
                       "questions": ids, "runs": runs, "metrics": metrics}
    if not tasks:
        raise InputError(f"{where}: no leaderboard task of the {version.label} left")
    primary = document.get("primary_task")
    return {
        "schema": SCHEMA,
        "name": document.get("name"),
        "method": document.get("method"),
        "model": document.get("model"),
        "data": {**{key: data.get(key) for key in ("world", "data_hash", "level", "forget", "corruption")},
                 "protocol": data.get("protocol", "classic"), "targets": target_set},
        "seeds": document.get("seeds"),
        "versions": document.get("versions"),
        "metric": document.get("metric"),
        "primary_task": primary if primary in tasks else _primary_task(tasks),
        "bootstrap": {"method": BOOTSTRAP_METHOD, "resamples": resamples, "seed": bootstrap_seed,
                      "confidence": CONFIDENCE},
        "tasks": tasks,
        **({"run": document["run"]} if isinstance(document.get("run"), dict) else {}),
    }


def rescore_files(paths: list[Path], **options: Any) -> list[Path]:
    """Rescore submission files in place (`rescore_document`): all are rescored and checked first, then written
    (each atomically), so one bad file leaves every file as it was."""

    texts = []
    for path in paths:
        try:
            texts.append((path, checked_text(rescore_document(read_submission(path), path, **options), path)))
        except (KeyError, TypeError, IndexError, AttributeError, ValueError) as err:
            raise InputError(f"{path}: not a submission this version can rescore ({type(err).__name__}: {err})"
                             ) from None
    return [atomic_write_text(path, text) for path, text in texts]

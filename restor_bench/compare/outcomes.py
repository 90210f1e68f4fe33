"""Per-question outcomes of lm-eval runs, and the target entities they are scored against.

Reads lm-eval's own output folders (`samples_<task>_<time>.jsonl`, found anywhere under a folder, newest per task)
into one `QuestionOutcome` per question; nothing is re-scored, except that "gave the injected value" is decided
with `restor_bench.data.normalize.contains` on the first line of the filtered response. Correctness per question is
lm-eval's per-sample metric: `contains` (default) or `exact_match` for generation tasks; `prefers_correct` for
log-probability tasks (samples that carry it), where `prefers_corrupted` stands for "gave the injected value".

Target entities come from explicit names, from a corruption documents file (its main subjects), or from the task's
defaults (`TargetChoice`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restor_bench.data.normalize import contains
from restor_bench.data.official import OFFICIAL_TARGETS, SUBJECT_SHARE, find_targets
from restor_bench.data.questions import squad_target_people
from restor_bench.data.world.files import load_manifest
from restor_bench.errors import InputError
from restor_bench.evaluation.lm_eval_io import find_lm_eval_outputs, iter_samples, read_results
from restor_bench.io import read_json, read_text_records
from restor_bench.names import DEFAULT_METRIC, GENERATION_METRICS

# The *_legacy metrics score the same generations with the scorer of task version 1.0 (articles dropped anywhere,
# no aliases), so that old and new scores can be shown side by side.
# Tasks whose per-question metric is a mean over several sampled generations (not 0/1): lm-eval's own aggregate is
# their score; compare reads per-question 0/1 outcomes, so it leaves them out unless asked, then refuses clearly.
SAMPLED_TASK_SUFFIX = "_sampled"
LOGPROB_METRIC = "prefers_correct"
LOGPROB_CORRUPTED_METRIC = "prefers_corrupted"
# The per-question metrics of the log-probability tasks (restor_tiny_logprob, restor_facts_logprob).
LOGPROB_FIELDS = (
    "prefers_correct",
    "prefers_corrupted",
    "prefers_random",
    "logprob_correct",
    "logprob_corrupted",
    "logprob_random",
)
# Every question of this task is about a target person (see restor_bench.evaluation.logprob).
LOGPROB_TASK = "restor_facts_logprob"
REQUIRED_DOC_FIELDS = ("id", "entity", "relation")

# The ten target entities of the official RESTOR corruption documents (an alias of the data module's list).
FALLBACK_OFFICIAL_TARGETS = OFFICIAL_TARGETS


# ---------------------------------------------------------------------------------------------------------------
# Reading runs


@dataclass(frozen=True)
class QuestionOutcome:
    """One question as one model answered it."""

    id: str
    entity: str
    relation: str
    correct: bool
    gave_corrupted: bool  # gave the injected wrong value (False where that value is unknown)
    corrupted_known: bool  # the doc lists the injected wrong value(s)
    prediction: str | None  # first filtered response of a generation task; None for log-probability tasks
    doc_hash: str | None = None
    logprob: dict[str, float] | None = None  # the LOGPROB_FIELDS of a log-probability task's sample


@dataclass
class TaskSamples:
    """The outcomes of one lm-eval task in one run, keyed by question id ("ENTITY|PID")."""

    task: str
    samples_path: Path
    results_path: Path | None
    metric: str
    filter: str
    outcomes: dict[str, QuestionOutcome] = field(default_factory=dict)
    model_name: str | None = None
    task_metadata: dict[str, Any] = field(default_factory=dict)  # the task config's "metadata" in the results
    # lm-eval's "n-samples" of the task: (questions evaluated, questions of the task); evaluated < all under --limit
    n_samples: tuple[int, int] | None = None

    @property
    def limited(self) -> bool:
        """Whether lm-eval evaluated only part of the task (`--limit`)."""
        return self.n_samples is not None and self.n_samples[0] < self.n_samples[1]

    @property
    def entities(self) -> set[str]:
        return {outcome.entity for outcome in self.outcomes.values()}


def load_run(
    folder: str | os.PathLike, metric: str = DEFAULT_METRIC, tasks: Sequence[str] | None = None
) -> dict[str, TaskSamples]:
    """Read the newest lm-eval samples of each task under `folder` into per-question outcomes.

    `metric` picks the per-sample metric of generation tasks ("contains" or "exact_match"); log-probability
    tasks use "prefers_correct". `tasks` restricts the tasks read (all found when None).
    """

    if metric not in GENERATION_METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {', '.join(GENERATION_METRICS)}")
    outputs = find_lm_eval_outputs(folder)
    sampled = [task for task in (tasks or ()) if task.endswith(SAMPLED_TASK_SUFFIX)]
    if sampled:
        raise InputError(
            f"task {sampled[0]}: its per-question score is a mean over sampled generations, not a 0/1 outcome; "
            "compare the greedy task, or read lm-eval's aggregate in the results file"
        )
    if not tasks:
        outputs = {task: output for task, output in outputs.items() if not task.endswith(SAMPLED_TASK_SUFFIX)}
    if tasks:
        missing = [task for task in tasks if task not in outputs]
        if missing:
            raise InputError(
                f"{folder}: no samples of task(s) {', '.join(missing)} (found: {', '.join(sorted(outputs))})"
            )
        outputs = {task: outputs[task] for task in tasks}
    run = {}
    for task, output in outputs.items():
        samples = read_task_samples(task, output.samples_path, metric)
        samples.results_path = output.results_path
        if output.results_path is not None:
            samples.model_name, samples.task_metadata = _results_info(output.results_path, task)
            samples.n_samples = _n_samples(output.results_path, task)
        run[task] = samples
    return run


def _results_info(path: str | os.PathLike, task: str) -> tuple[str | None, dict[str, Any]]:
    """The model name and the task's config metadata in an lm-eval results file (None and {} when absent); a field
    of the wrong shape is an InputError naming the file and the field."""

    results = read_results(path)
    name = results.get("model_name")
    if name is not None and not isinstance(name, str):
        raise InputError(f"{path}: field model_name: expected a string, found {type(name).__name__}")
    value: Any = results
    where = []
    for key in ("configs", task, "metadata"):
        value = value.get(key)
        where.append(key)
        if value is None:
            return name, {}
        if not isinstance(value, dict):
            raise InputError(f"{path}: field {'.'.join(where)}: expected a JSON object, found {type(value).__name__}")
    return name, value


def _n_samples(path: str | os.PathLike, task: str) -> tuple[int, int] | None:
    """(effective, original) of the task in an lm-eval results file's "n-samples", None when not stated."""
    entry = (read_results(path).get("n-samples") or {}).get(task)
    if not isinstance(entry, dict):
        return None
    effective, original = entry.get("effective"), entry.get("original")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (effective, original)):
        return None
    return effective, original


def read_task_samples(task: str, path: str | os.PathLike, metric: str = DEFAULT_METRIC) -> TaskSamples:
    """Read one `samples_<task>_<time>.jsonl` file (see `load_run`).

    When lm-eval applied several filters (one line per question and filter), the "none" filter is used if
    present, else the first one in the file.
    """

    path = Path(path)
    by_filter: dict[str, dict[str, QuestionOutcome]] = {}
    metric_used = None
    for number, record in iter_samples(path):
        outcome, used = _parse_sample(record, path, number, metric)
        metric_used = metric_used or used
        outcomes = by_filter.setdefault(str(record.get("filter", "none")), {})
        if outcome.id in outcomes:
            raise InputError(f"{path}: line {number}: question id {outcome.id!r} appears twice")
        outcomes[outcome.id] = outcome
    if not by_filter:
        raise InputError(f"{path}: holds no samples")
    chosen = "none" if "none" in by_filter else next(iter(by_filter))
    return TaskSamples(task, path, None, metric_used or metric, chosen, by_filter[chosen])


def _parse_sample(record: dict[str, Any], path: Path, number: int, metric: str) -> tuple[QuestionOutcome, str]:
    where = f"{path}: line {number}"
    doc = record.get("doc")
    if not isinstance(doc, dict):
        raise InputError(f'{where}: sample has no "doc" object')
    missing = [name for name in REQUIRED_DOC_FIELDS if not isinstance(doc.get(name), str)]
    if missing:
        raise InputError(
            f"{where}: doc lacks field(s) {', '.join(missing)} (not a restor task? choose tasks with --tasks)"
        )
    corrupted_answers = doc.get("corrupted_answers", [])
    if not isinstance(corrupted_answers, list) or not all(isinstance(a, str) for a in corrupted_answers):
        raise InputError(f"{where}: doc field corrupted_answers is not a list of strings")
    corrupted_known = bool(corrupted_answers)
    if LOGPROB_METRIC in record:
        used = LOGPROB_METRIC
        correct = _binary(record[LOGPROB_METRIC], where, LOGPROB_METRIC)
        prefers_corrupted = record.get(LOGPROB_CORRUPTED_METRIC, 0.0)
        gave_corrupted = corrupted_known and _binary(prefers_corrupted, where, LOGPROB_CORRUPTED_METRIC)
        prediction = None
        logprob = _logprob_fields(record, where)
    else:
        used = metric
        if metric not in record:
            raise InputError(f"{where}: sample has no per-sample metric {metric!r}")
        correct = _binary(record[metric], where, metric)
        prediction = _first_response(record.get("filtered_resps"), where)
        gave_corrupted = corrupted_known and _contains(prediction, corrupted_answers)
        logprob = None
    doc_hash = record.get("doc_hash")
    outcome = QuestionOutcome(
        id=doc["id"],
        entity=doc["entity"],
        relation=doc["relation"],
        correct=correct,
        gave_corrupted=gave_corrupted,
        corrupted_known=corrupted_known,
        prediction=prediction,
        doc_hash=doc_hash if isinstance(doc_hash, str) else None,
        logprob=logprob,
    )
    return outcome, used


def _logprob_fields(record: dict[str, Any], where: str) -> dict[str, float] | None:
    """The LOGPROB_FIELDS of a sample, or None when it lacks some (an older or hand-made log-probability task)."""
    if not all(name in record for name in LOGPROB_FIELDS):
        return None
    values = {}
    for name in LOGPROB_FIELDS:
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where}: per-sample metric {name} is {value!r}, expected a number")
        values[name] = float(value)
    return values


def _binary(value: Any, where: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise InputError(f"{where}: per-sample metric {name} is {value!r}, expected 0 or 1")


def _first_response(filtered: Any, where: str) -> str:
    value = filtered
    while isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        raise InputError(f'{where}: sample has no text response in "filtered_resps"')
    return value


def _contains(prediction: str, answers: list[str]) -> bool:
    return bool(contains(prediction, answers))


# ---------------------------------------------------------------------------------------------------------------
# Targets


def parse_targets(value: str) -> list[str]:
    """Target names from `--targets`: a file (JSON list, or one name per line) or a comma-separated list."""
    path = Path(value)
    if path.is_file():
        if path.suffix == ".json":

            names = read_json(path, "targets file")
            if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
                raise InputError(f"{path}: expected a JSON list of target names")
        else:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise InputError(f"{path}: not UTF-8 text") from None
            names = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    else:
        if os.sep in value or value.endswith((".json", ".txt")):
            raise InputError(f"{value}: targets file not found")
        names = value.split(",")
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise InputError(f"{value}: no target names given")
    return names


def targets_from_documents(documents: str | os.PathLike, entities: Iterable[str]) -> list[str]:
    """The evaluated entities that a corruption documents file is about, sorted.

    The rule of `restor_bench.data.official.find_targets`: the subject of a document is, of the evaluated
    entities it names (whole words, case-sensitive), the one named most often (the first named on a tie); an
    entity is a target when it is the subject of at least `SUBJECT_SHARE` times as many documents as the most
    frequent subject. This leaves out people named in passing or in the unrelated context.
    """

    return sorted(find_targets(entities, read_text_records(documents), SUBJECT_SHARE))


def default_targets(
    task: str, task_metadata: dict[str, Any] | None = None, entities: Iterable[str] | None = None
) -> tuple[list[str], str]:
    """The target names a task is scored with when none are given, and where they come from.

    Tiny-world tasks: the "targets" of the world's manifest.json (the world lm-eval was given with
    `--metadata '{"restor_world_dir": DIR}'`, or `world_dir` in older results, as recorded in the results file,
    else `$RESTOR_TINY_WORLD`, else the shipped world). `restor_facts_squad`: the five people of the official
    SQuAD-style passages. Other official tasks: the ten official target entities. `restor_facts_logprob` asks
    only target questions: every entity of its questions (`entities`) is a target; without `entities`, those of
    the world it ran on (its `restor_world` metadata: the tiny world's manifest, or the ten official targets).
    """
    if task.startswith(LOGPROB_TASK):
        if entities is not None:
            return sorted(set(entities)), f"every person asked about; {LOGPROB_TASK} asks target questions only"
        if (task_metadata or {}).get("restor_world") == "tiny":
            return default_targets("restor_tiny", task_metadata)
        return list(OFFICIAL_TARGETS), "official RESTOR targets"
    if task.startswith("restor_tiny"):

        world_dir = _metadata_path(task_metadata, "restor_world_dir", "world_dir")
        manifest = load_manifest(world_dir)
        targets = manifest.get("targets")
        if not isinstance(targets, list) or not all(isinstance(name, str) for name in targets):
            raise InputError('tiny world manifest: "targets" is not a list of names')
        return list(targets), "tiny world manifest"
    if task.startswith("restor_facts_squad"):

        people = squad_target_people(_metadata_path(task_metadata, "restor_data_dir", "data_dir"))
        return list(people), "people of the official SQuAD-style passages"
    if task.startswith("restor_facts"):
        return list(OFFICIAL_TARGETS), "official RESTOR targets"
    raise InputError(f"task {task}: no default target entities; pass --targets or --targets-from")


def _metadata_path(task_metadata: dict[str, Any] | None, *keys: str) -> str | None:
    """The first non-empty string among `keys` of a task's recorded metadata (None: the task's default)."""
    for key in keys:
        value = (task_metadata or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True)
class TargetChoice:
    """How target entities are chosen: explicit names, a documents file, or the task's defaults. `excluded`: people
    whose questions are left out of the comparison altogether (neither target nor other question), e.g. a world's
    validation targets when the test targets are compared: they were corrupted too, so they are no bystanders."""

    names: tuple[str, ...] | None = None
    documents: Path | None = None
    excluded: tuple[str, ...] = ()

    def resolve(
        self, task: str, entities: set[str], task_metadata: dict[str, Any] | None = None
    ) -> tuple[list[str], str]:
        if self.names is not None:
            return list(self.names), "--targets"
        if self.documents is not None:
            return targets_from_documents(self.documents, entities), f"entities named in {self.documents}"
        return default_targets(task, task_metadata, entities)

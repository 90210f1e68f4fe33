"""`restor-bench grid`: the paper's experiment grid, run cell by cell through `restor-bench run`, then one results page.

A cell is one method, one corruption (wikidata-style documents at level k, or the SQuAD-style passages, where the
level does not apply) and one forget set (`full` corruption documents or their `simplified` form), run for every
seed by `restor_bench.pipeline.run` into `ROOT/<cell name>/run.json`. The SQuAD passages have no simplified form,
so SQuAD cells use the full forget set only.

Resuming: every step the pipeline finishes is a content-addressed folder under `ROOT/steps/` that later runs reuse,
and a cell whose `run.json` holds the same spec, seeds and data hash is skipped whole; so an interrupted grid, run
again with the same command, continues where it stopped.

Numbers of the results page, per cell, on the task's target questions unless said otherwise:

* accuracy of the clean, corrupted and unlearned models: per-question outcomes pooled over seeds (the mean over
  seeds x questions), with a 95% percentile bootstrap interval whose resamples draw the seeds with replacement and
  the questions with replacement within the target and non-target strata (the same draws for all three models);
* restoration ratio `(unlearned - corrupted) / (clean - corrupted)` of the pooled accuracies (undefined when the
  corruption moved less than one question), with its interval from the same resamples;
* transitions of the target facts the clean model knew (restored / still corrupted / forgotten): the mean over
  seeds of the counts in each seed's compare report;
* non-target change: unlearned minus clean accuracy on the other questions, with its paired interval.

`--dry-run` lists the cells and an estimate of the time, from the median measured time of each step kind
(`ROOT/steps/*/step.json` of the same world) or else from `DEFAULT_STEP_SECONDS`; steps shared by cells (the
clean model's evaluation, one corruption per level and seed) are counted once, and finished cells not at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError

CORRUPTIONS = ("wikidata", "squad")
FORGET_FORMS = ("full", "simplified")
WORLD_LEVELS = {"tiny": tuple(range(6)), "official": (0, 1, 2, 3)}
ROLES = ("clean", "corrupted", "unlearned")
STEP_KINDS = ("corrupt", "unlearn", "eval")
DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95

# Rough seconds per step when no step of the same world was measured under the root yet: the tiny world on a
# laptop CPU (default recipe, full question set), the official data with an 8B model on one recent GPU.
DEFAULT_STEP_SECONDS = {
    "tiny": {"corrupt": 90.0, "unlearn": 40.0, "eval": 20.0},
    "official": {"corrupt": 3600.0, "unlearn": 900.0, "eval": 600.0},
}


# ---------------------------------------------------------------------------------------------------------------
# The cells


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of the grid (all seeds)."""

    method: str
    corruption: str  # "wikidata" or "squad"
    level: int | None  # None for squad
    forget: str

    @property
    def label(self) -> str:
        where = f"k={self.level}" if self.corruption == "wikidata" else "squad"
        return f"{self.method} {where} {self.forget}"


@dataclasses.dataclass
class GridOptions:
    """Everything a grid run needs besides its cells."""

    world: str = "tiny"
    seeds: tuple[int, ...] = (0,)
    model: str | None = None
    lora: bool = False
    unlearn_max_steps: int | None = None
    corrupt_max_steps: int | None = None
    corrupt_recipe: dict = dataclasses.field(default_factory=dict)
    limit: int | None = None
    batch_size: int | str = 32
    data_dir: str | None = None
    max_docs_per_entity: int | None = None
    root: Path = Path("runs")
    targets: str = "all"
    protocol: str = "classic"
    retain: str | None = None
    repair: str | None = None


def plan_cells(
    methods: Sequence[str], levels: Sequence[int], forget_forms: Sequence[str], corruptions: Sequence[str]
) -> tuple[list[Cell], list[str]]:
    """The grid's cells in run order (cells sharing a corrupted model are adjacent), and notes on cells left out."""
    cells, notes = [], []
    if "wikidata" in corruptions:
        cells += [
            Cell(method, "wikidata", level, forget) for level in levels for forget in forget_forms for method in methods
        ]
    if "squad" in corruptions:
        cells += [Cell(method, "squad", None, "full") for method in methods if "full" in forget_forms]
        if "simplified" in forget_forms:
            notes.append("squad: the SQuAD-style passages have no simplified form; their cells use the full forget set")
    return cells, notes


def cell_spec(cell: Cell, options: GridOptions, hparams: dict[str, Any]):
    """The pipeline's RunSpec of a cell (first seed)."""
    from restor_bench.pipeline import RunSpec

    return RunSpec(
        world=options.world, method=cell.method, level=cell.level or 0, forget=cell.forget,
        corruption=cell.corruption, model=options.model, lora=options.lora, seed=options.seeds[0], hparams=hparams,
        corrupt_max_steps=options.corrupt_max_steps, unlearn_max_steps=options.unlearn_max_steps,
        corrupt_recipe=dict(options.corrupt_recipe),
        max_docs_per_entity=options.max_docs_per_entity, limit=options.limit, batch_size=options.batch_size,
        data_dir=options.data_dir, targets=options.targets, protocol=options.protocol, retain=options.retain,
        repair=options.repair,
    )


def cell_name(spec) -> str:
    """The run folder name of a cell (`restor_bench.pipeline.run` names it the same way)."""
    return spec.name().rsplit("-seed", 1)[0]


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def finished_record(spec, seeds: Sequence[int], root: Path, data_hash: str | None) -> dict[str, Any] | None:
    """The cell's run.json when it exists and records the same spec, seeds and data hash; else None."""
    path = Path(root) / cell_name(spec) / "run.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    same = (
        isinstance(record, dict)
        and record.get("spec") == _as_json(dataclasses.asdict(spec))
        and record.get("seeds") == list(seeds)
        and record.get("data_hash") == data_hash
    )
    return record if same else None


# ---------------------------------------------------------------------------------------------------------------
# Time estimates


def format_duration(seconds: float) -> str:
    """'45s', '3m 20s', '2h 05m'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _step_world(kind: str, inputs: dict[str, Any]) -> str | None:
    """The world a finished step belonged to, from its recorded inputs."""
    from restor_bench.pipeline import TASKS

    if kind == "corrupt":
        source = str(inputs.get("docs", ""))
    elif kind == "unlearn":
        source = str(inputs.get("forget", ""))
    else:
        tasks = set(inputs.get("tasks") or [])
        return next((world for world, names in TASKS.items() if tasks & set(names)), None)
    return source.split(":", 1)[0] if ":" in source else None


def measured_step_seconds(root: Path, world: str) -> dict[str, float]:
    """Median wall time per step kind of the finished steps of `world` under `root/steps` (kinds never run: absent)."""
    times: dict[str, list[float]] = {}
    steps = Path(root) / "steps"
    if not steps.is_dir():
        return {}
    for path in steps.glob("*/step.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            kind, seconds = record["kind"], float(record["wall_time_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if kind in STEP_KINDS and seconds > 0 and _step_world(kind, record.get("inputs") or {}) == world:
            times.setdefault(kind, []).append(seconds)
    return {kind: statistics.median(values) for kind, values in times.items()}


def step_seconds(root: Path, world: str) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per step kind (measured where possible, else the default) and where each number comes from."""
    measured = measured_step_seconds(root, world)
    seconds = {kind: measured.get(kind, DEFAULT_STEP_SECONDS[world][kind]) for kind in STEP_KINDS}
    sources = {kind: "measured" if kind in measured else "default" for kind in STEP_KINDS}
    return seconds, sources


def _cell_steps(cell: Cell, seed: int) -> list[tuple]:
    """Abstract identities of the steps of one cell and seed (shared steps have equal identities)."""
    source = f"{cell.corruption}:{cell.level}"
    own = (cell.method, cell.corruption, cell.level, cell.forget, seed)
    return [
        ("corrupt", source, seed),
        ("eval", "clean"),
        ("eval", "corrupted", source, seed),
        ("unlearn", *own),
        ("eval", "unlearned", *own),
    ]


def steps_to_run(cells: Sequence[Cell], seeds: Sequence[int], finished: Iterable[Cell] = ()) -> dict[str, int]:
    """How many steps of each kind the cells still need (shared steps once; steps of finished cells not at all)."""
    done = {step for cell in finished for seed in seeds for step in _cell_steps(cell, seed)}
    needed = {step for cell in cells for seed in seeds for step in _cell_steps(cell, seed)} - done
    return {kind: sum(1 for step in needed if step[0] == kind) for kind in STEP_KINDS}


def estimate_seconds(counts: dict[str, int], seconds: dict[str, float]) -> float:
    """Total seconds of the given step counts."""
    return sum(counts[kind] * seconds[kind] for kind in STEP_KINDS)


# ---------------------------------------------------------------------------------------------------------------
# Pooled statistics


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval (None where undefined)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": None if self.low is None else [self.low, self.high]}


@dataclasses.dataclass
class PooledOutcomes:
    """One task's per-question outcomes of one cell, seeds x questions, aligned on the questions all seeds share."""

    ids: list[str]
    is_target: Any  # bool array (questions,)
    correct: dict[str, Any]  # role -> bool array (seeds, questions)
    injected_known: bool = True  # the task lists the injected wrong values of the target questions

    @property
    def n_seeds(self) -> int:
        return next(iter(self.correct.values())).shape[0]


def pooled_resamples(n_seeds: int, is_target, resamples: int, seed: int = 0) -> tuple[Any, Any]:
    """Bootstrap draws over seeds x questions.

    Returns `seed_weights` (resamples x seeds: how often each seed is drawn, S draws with replacement) and
    `question_index` (resamples x questions: questions drawn with replacement within target / non-target).
    """
    import numpy as np

    from restor_bench.stats import resample_indices

    rng = np.random.default_rng(seed)
    seed_weights = rng.multinomial(n_seeds, [1.0 / n_seeds] * n_seeds, size=resamples).astype(float)
    question_index = resample_indices(np.asarray(is_target).astype(int), resamples, seed + 1)
    return seed_weights, question_index


def resampled_accuracy(correct, in_split, seed_weights, question_index):
    """Pooled accuracy over a split in every resample (NaN where a resample holds none of the split's questions)."""
    import numpy as np

    correct = np.asarray(correct, dtype=float)  # seeds x questions
    split = np.asarray(in_split, dtype=float)[question_index]  # resamples x questions
    hits_per_seed = (correct[:, question_index] * split[None]).sum(axis=2)  # seeds x resamples
    counts = split.sum(axis=1) * seed_weights.sum(axis=1)
    hits = (seed_weights * hits_per_seed.T).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)


def pooled_accuracy(correct, in_split) -> float | None:
    """Mean outcome over seeds x the split's questions; None without questions."""
    import numpy as np

    correct, in_split = np.asarray(correct, dtype=float), np.asarray(in_split, dtype=bool)
    if not in_split.any():
        return None
    return float(correct[:, in_split].mean())


def ratio_of(clean: float | None, corrupted: float | None, unlearned: float | None, n_target: int) -> float | None:
    """The restoration ratio of pooled accuracies (the pipeline's one-question rule: see restor_bench.stats)."""
    from restor_bench.stats import restoration_ratio

    return restoration_ratio(clean, corrupted, unlearned, n_target)


def _interval(values) -> tuple[float | None, float | None]:
    import numpy as np

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def pooled_statistics(pooled: PooledOutcomes, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Estimate]:
    """Accuracies (target / non-target), restoration ratio and non-target change, with pooled bootstrap intervals."""
    import numpy as np

    target = np.asarray(pooled.is_target, dtype=bool)
    other = ~target
    n_target = int(target.sum())
    point = {
        (role, split): pooled_accuracy(pooled.correct[role], mask)
        for role in ROLES for split, mask in (("target", target), ("non_target", other))
    }
    draws = pooled_resamples(pooled.n_seeds, target, resamples, seed) if resamples > 0 else None

    def resampled(role: str, mask):
        return resampled_accuracy(pooled.correct[role], mask, *draws)

    result: dict[str, Estimate] = {}
    samples = {}
    for role in ROLES:
        for split, mask in (("target", target), ("non_target", other)):
            value = point[(role, split)]
            low = high = None
            if draws is not None and value is not None:
                samples[(role, split)] = resampled(role, mask)
                low, high = _interval(samples[(role, split)])
            result[f"{role}_{split}"] = Estimate(value, low, high)

    ratio = ratio_of(
        point[("clean", "target")], point[("corrupted", "target")], point[("unlearned", "target")], n_target
    )
    low = high = None
    if draws is not None and n_target:
        clean, corrupted, unlearned = (samples[(role, "target")] for role in ROLES)
        gap = clean - corrupted
        counts = target[draws[1]].sum(axis=1)
        defined = np.abs(gap) * counts >= 1 - 1e-9
        with np.errstate(invalid="ignore", divide="ignore"):
            low, high = _interval(np.where(defined, (unlearned - corrupted) / np.where(defined, gap, 1.0), np.nan))
    result["restoration_ratio"] = Estimate(ratio, low, high)

    change = None
    if point[("unlearned", "non_target")] is not None and point[("clean", "non_target")] is not None:
        change = point[("unlearned", "non_target")] - point[("clean", "non_target")]
    low = high = None
    if change is not None and draws is not None:
        low, high = _interval(samples[("unlearned", "non_target")] - samples[("clean", "non_target")])
    result["non_target_change"] = Estimate(change, low, high)
    return result


# ---------------------------------------------------------------------------------------------------------------
# Reading the cells' runs


@dataclasses.dataclass
class CellResult:
    """The results page's numbers for one cell."""

    cell: Cell
    name: str
    task: str
    seeds: list[int]
    n_target: int
    n_non_target: int
    stats: dict[str, Estimate]
    transitions: dict[str, float]  # mean over seeds: target_known, restored, still_corrupted, forgotten
    wall_time_s: float
    injected_known: bool = True  # False: "still corrupted" cannot be told apart from "forgotten" (shown as n/a)
    step_seconds: dict[str, float | None] = dataclasses.field(default_factory=dict)  # as each step ran, seed mean
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": dataclasses.asdict(self.cell), "name": self.name, "task": self.task, "seeds": self.seeds,
            "n_target": self.n_target, "n_non_target": self.n_non_target,
            "stats": {key: value.to_dict() for key, value in self.stats.items()},
            "transitions": self.transitions, "injected_known": self.injected_known, "wall_time_s": self.wall_time_s,
            "step_seconds": self.step_seconds,
            "hparams": self.hparams,
        }


class _SamplesCache:
    """lm-eval samples read once per evaluation folder (the clean model's serves every cell)."""

    def __init__(self, metric: str):
        self.metric = metric
        self.loaded: dict[tuple[str, str], Any] = {}

    def get(self, folder: Path, task: str):
        from restor_bench.compare import load_run

        key = (str(folder), task)
        if key not in self.loaded:
            self.loaded[key] = load_run(folder, metric=self.metric, tasks=[task])[task]
        return self.loaded[key]


def _compare_report(run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    from restor_bench.io import read_json

    return read_json(run_dir / entry.get("compare_json", f"compare-seed{entry['seed']}.json"), "compare report")


def load_pooled(record: dict[str, Any], root: Path, task: str, cache: _SamplesCache) -> tuple[PooledOutcomes, dict]:
    """The cell's outcomes pooled over seeds, and the transitions averaged over seeds (from the compare reports)."""
    import numpy as np

    root = Path(root)
    run_dir = root / record["name"]
    per_role: dict[str, list[dict[str, Any]]] = {role: [] for role in ROLES}
    targets: set[str] | None = None
    transitions: dict[str, list[float]] = {}
    for entry in record["per_seed"]:
        for role in ROLES:
            per_role[role].append(cache.get(root / entry["artifacts"][f"eval_{role}"], task).outcomes)
        report = _compare_report(run_dir, entry)
        task_report = (report.get("tasks") or {}).get(task)
        if task_report is None:
            raise InputError(f"{run_dir}: the compare report of seed {entry['seed']} has no task {task}")
        targets = set(task_report.get("targets") or []) if targets is None else targets
        for key, value in (task_report.get("transitions") or {}).get(record["method"], {}).items():
            transitions.setdefault(key, []).append(float(value))
    common = set.intersection(*(set(outcomes) for role in ROLES for outcomes in per_role[role]))
    if not common:
        raise InputError(f"{run_dir}: the evaluations of task {task} share no question")
    ids = sorted(common)
    first = per_role["clean"][0]
    is_target = np.array([first[qid].entity in (targets or set()) for qid in ids], dtype=bool)
    correct = {
        role: np.array([[outcomes[qid].correct for qid in ids] for outcomes in per_role[role]], dtype=bool)
        for role in ROLES
    }
    mean_transitions = {key: statistics.fmean(values) for key, values in transitions.items()}
    injected_known = any(first[qid].corrupted_known for qid, target in zip(ids, is_target) if target)
    pooled = PooledOutcomes(ids=ids, is_target=is_target, correct=correct, injected_known=injected_known)
    return pooled, mean_transitions


def cell_result(cell: Cell, record: dict[str, Any], root: Path, task: str, cache: _SamplesCache,
                resamples: int = DEFAULT_RESAMPLES) -> CellResult:
    """Read a finished cell's evaluations and compute its page numbers."""
    pooled, transitions = load_pooled(record, root, task, cache)
    target = int(pooled.is_target.sum())
    return CellResult(
        cell=cell, name=record["name"], task=task, seeds=list(record["seeds"]), n_target=target,
        n_non_target=len(pooled.ids) - target, stats=pooled_statistics(pooled, resamples),
        transitions=transitions, wall_time_s=float(record.get("wall_time_s") or 0.0),
        injected_known=pooled.injected_known, step_seconds=cell_step_seconds(record, root), hparams=dict(record.get("hparams") or {}),
    )


# The steps of a cell: (label on the page, artifact key in a run record).
CELL_STEPS = (("corrupt", "corrupted"), ("unlearn", "unlearned"), ("eval clean", "eval_clean"),
              ("eval corrupted", "eval_corrupted"), ("eval unlearned", "eval_unlearned"))


def _step_wall_time(folder: Path) -> float | None:
    try:
        return float(json.loads((folder / "step.json").read_text(encoding="utf-8"))["wall_time_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cell_step_seconds(record: dict[str, Any], root: Path) -> dict[str, float | None]:
    """Seconds each step of the cell took when it ran (reused steps: when they first ran), mean over seeds."""
    seconds: dict[str, float | None] = {}
    for label, key in CELL_STEPS:
        values = [_step_wall_time(Path(root) / entry["artifacts"][key])
                  for entry in record["per_seed"] if key in entry.get("artifacts", {})]
        values = [value for value in values if value is not None]
        seconds[label] = round(statistics.fmean(values), 1) if values else None
    return seconds


def compute_seconds(records: Iterable[dict[str, Any]], root: Path) -> float:
    """Seconds the steps of these cells took when they ran (each step folder counted once)."""
    seen, total = set(), 0.0
    for record in records:
        for entry in record["per_seed"]:
            for relative in entry["artifacts"].values():
                folder = Path(root) / relative
                if folder in seen:
                    continue
                seen.add(folder)
                total += _step_wall_time(folder) or 0.0
    return total


# ---------------------------------------------------------------------------------------------------------------
# The results page


def _pct(estimate: Estimate, signed: bool = False) -> str:
    if estimate.value is None:
        return "n/a"
    sign = "+" if signed else ""
    text = f"{estimate.value * 100:{sign}.1f}"
    if estimate.low is not None:
        text += f" [{estimate.low * 100:{sign}.1f}, {estimate.high * 100:{sign}.1f}]"
    return text


def _ratio(estimate: Estimate) -> str:
    if estimate.value is None:
        return "n/a"
    text = f"{estimate.value:.2f}"
    if estimate.low is not None:
        text += f" [{estimate.low:.2f}, {estimate.high:.2f}]"
    return text


def _transitions(values: dict[str, float], injected_known: bool = True) -> str:
    if "target_known" not in values:
        return "n/a"
    parts = " / ".join(
        "n/a" if key == "still_corrupted" and not injected_known else f"{values.get(key, 0.0):.1f}"
        for key in ("restored", "still_corrupted", "forgotten")
    )
    return f"{parts} of {values['target_known']:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _cell_rows(results: Sequence[CellResult], with_level: bool) -> list[list[str]]:
    rows = []
    for result in results:
        stats = result.stats
        row = [result.cell.method, result.cell.forget]
        if with_level:
            row.append(str(result.cell.level))
        row += [
            _pct(stats["clean_target"]), _pct(stats["corrupted_target"]), _pct(stats["unlearned_target"]),
            _ratio(stats["restoration_ratio"]), _transitions(result.transitions, result.injected_known),
            _pct(stats["non_target_change"], signed=True), f"{result.n_target} / {result.n_non_target}",
        ]
        rows.append(row)
    return rows


def _level_pivot(results: Sequence[CellResult], forget: str) -> list[str]:
    """The paper's table: target accuracy per level for the corrupted model and each method's unlearned model."""
    cells = [result for result in results if result.cell.corruption == "wikidata" and result.cell.forget == forget]
    if not cells:
        return []
    methods = list(dict.fromkeys(result.cell.method for result in cells))
    levels = sorted({result.cell.level for result in cells})
    rows = []
    for level in levels:
        at_level = {result.cell.method: result for result in cells if result.cell.level == level}
        any_cell = next(iter(at_level.values()))
        row = [str(level), _pct(any_cell.stats["clean_target"]), _pct(any_cell.stats["corrupted_target"])]
        row += [_pct(at_level[method].stats["unlearned_target"]) if method in at_level else "" for method in methods]
        rows.append(row)
    header = ["k", "clean", "corrupted", *(method.upper() for method in methods)]
    return [f"### Target accuracy (%) by level k, {forget} forget set", "", *_table(header, rows), ""]


# Hyperparameters every method has that the page always shows (besides those that differ from the defaults).
SHOWN_HPARAMS = ("learning_rate", "num_epochs", "per_device_batch_size")


def _hparams_section(results: Sequence[CellResult]) -> list[str]:
    """Each method's main hyperparameters and every one that differs from the method's defaults."""
    from restor_bench.unlearn import resolve_method_hparams

    rows, seen = [], set()
    for result in results:
        method = result.cell.method
        if method in seen or not result.hparams:
            continue
        seen.add(method)
        try:
            defaults = resolve_method_hparams(method)
        except InputError:
            defaults = {}
        shown = [key for key in SHOWN_HPARAMS if key in result.hparams]
        shown += sorted(key for key, value in result.hparams.items()
                        if key not in SHOWN_HPARAMS and key in defaults and defaults[key] != value)
        rows.append([method, ", ".join(f"{key}={result.hparams[key]}" for key in shown)])
    if not rows:
        return []
    return ["## Hyperparameters", "", *_table(["method", "settings (defaults unless listed)"], rows), ""]


def _timing_section(results: Sequence[CellResult]) -> list[str]:
    """Wall time of each step of each cell, as the step ran (mean over seeds)."""
    rows = []
    for result in results:
        if not result.step_seconds:
            continue
        row = [result.cell.method, result.cell.forget, str(result.cell.level) if result.cell.corruption == "wikidata"
               else "squad"]
        row += [format_duration(value) if value is not None else "" for value in
                (result.step_seconds.get(label) for label, _ in CELL_STEPS)]
        rows.append(row)
    if not rows:
        return []
    return [
        "## Wall time by step", "",
        ("Seconds each step took when it ran (mean over seeds). The corruption and the clean and corrupted "
         "evaluations are shared by the cells of one level and seed and ran once; the clean evaluation is shared by "
         "every cell."), "",
        *_table(["method", "forget", "k", *(label for label, _ in CELL_STEPS)], rows), "",
    ]


@dataclasses.dataclass
class PageInfo:
    """What the page says about how it was made."""

    command: str
    date: str
    versions: dict[str, str]
    wall_time_s: float
    compute_time_s: float
    world: str
    model: str
    seeds: list[int]
    resamples: int
    metric: str
    notes: list[str]
    plots: dict[str, str]  # title -> path relative to the page
    protocol: str = "classic"


def results_markdown(results: Sequence[CellResult], info: PageInfo) -> str:
    """The results page (markdown)."""
    wikidata = [result for result in results if result.cell.corruption == "wikidata"]
    squad = [result for result in results if result.cell.corruption == "squad"]
    tasks = sorted({result.task for result in results})
    title = "RESTOR as published (paper protocol)" if info.protocol == "paper" else "RESTOR experiment grid"
    lines = [
        f"# {title}: results",
        "",
        "Produced by:",
        "",
        "```",
        info.command,
        "```",
        "",
        f"- date: {info.date}",
        f"- world: {info.world}; clean model: {info.model}; task: {', '.join(tasks)} (metric `{info.metric}`)",
        f"- seeds: {', '.join(map(str, info.seeds))}",
        (f"- wall time of this command: {format_duration(info.wall_time_s)}; of the runs of these cells when they "
         f"ran: {format_duration(sum(result.wall_time_s for result in results))}; of all their steps when they ran: "
         f"{format_duration(info.compute_time_s)}"),
        "- versions: " + ", ".join(f"{name} {version}" for name, version in sorted(info.versions.items())),
        "",
        ("Accuracies (%) are on the target questions (those about the entities the corruption documents lie about), "
        "pooled over seeds and questions; brackets hold 95% percentile bootstrap intervals whose resamples draw the "
        f"seeds with replacement and the questions with replacement within target / non-target ({info.resamples} "
        "resamples, the same draws for the three models). Restoration ratio: (unlearned - corrupted) / (clean - "
        "corrupted) of the pooled accuracies (n/a when the corruption moved less than one question). Transitions: "
        "target facts the clean model knew that the unlearned model answers correctly / still answers with the "
        "injected value / answers otherwise, mean over seeds. Non-target change: unlearned minus clean accuracy on "
        "the other questions, in points."),
        "",
    ]
    for note in info.notes:
        lines.append(f"Note: {note}")
        lines.append("")
    header_cells = ["clean", "corrupted", "unlearned", "restoration ratio", "restored / still corrupted / forgotten",
                    "non-target change", "questions (target / other)"]
    if wikidata:
        lines += ["## Amount of unrelated context (wikidata-style documents, level k) and simplified forget set", ""]
        for forget in FORGET_FORMS:
            lines += _level_pivot(wikidata, forget)
        lines += ["### Every cell", "", *_table(["method", "forget", "k", *header_cells], _cell_rows(wikidata, True)),
                  ""]
    if squad:
        lines += ["## Extreme corruption (SQuAD-style passages)", "",
                  *_table(["method", "forget", *header_cells], _cell_rows(squad, False)), ""]
    if info.protocol == "paper":
        from restor_bench.findings import findings_markdown

        lines += findings_markdown(results)
    lines += _hparams_section(results)
    lines += _timing_section(results)
    if info.plots:
        lines += ["## Plots", ""]
        for title, path in info.plots.items():
            lines += [f"![{title}]({path})", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Running the grid


def _default_log(message: str) -> None:
    print(message, flush=True)


def run_grid(
    cells: Sequence[Cell], options: GridOptions, hparams: dict[str, dict[str, Any]],
    *, log: Callable[[str], None] = _default_log,
) -> list[tuple[Cell, dict[str, Any]]]:
    """Run every cell (skipping finished ones) and return the cells with their run records."""
    from restor_bench import pipeline

    root = Path(options.root)
    seeds = list(options.seeds)
    specs = [cell_spec(cell, options, hparams[cell.method]) for cell in cells]
    data_hash = pipeline.data_hash(specs[0]) if specs else None
    finished = {cell for cell, spec in zip(cells, specs) if finished_record(spec, seeds, root, data_hash)}
    started = time.monotonic()
    records = []
    for number, (cell, spec) in enumerate(zip(cells, specs), start=1):
        elapsed = time.monotonic() - started
        remaining = cells[number - 1:]
        seconds, _ = step_seconds(root, options.world)
        left = estimate_seconds(steps_to_run(remaining, seeds, finished), seconds)
        head = f"[grid] cell {number}/{len(cells)} {cell_name(spec)} ({cell.label})"
        record = finished_record(spec, seeds, root, data_hash)
        if record is not None:
            log(f"{head}: finished earlier, skipped ({root / cell_name(spec) / 'run.json'})")
        else:
            log(f"{head}: running; elapsed {format_duration(elapsed)}, about {format_duration(left)} left")
            record = pipeline.run(spec, seeds, root, log=log)
            finished.add(cell)
        records.append((cell, record))
    log(f"[grid] {len(cells)} cells done in {format_duration(time.monotonic() - started)}")
    return records


def write_page(
    records: Sequence[tuple[Cell, dict[str, Any]]], options: GridOptions, *, results_path: Path,
    plots_dir: Path | None, command: str, wall_time_s: float, resamples: int = DEFAULT_RESAMPLES,
    notes: Sequence[str] = (), metric: str = "contains",
) -> list[CellResult]:
    """Compute every cell's numbers, draw the plots and write the results page (atomically)."""
    from restor_bench import plots as plotting
    from restor_bench.io import atomic_write_json, atomic_write_text
    from restor_bench.pipeline import clean_model_for, default_tasks
    from restor_bench.training import package_versions

    root = Path(options.root)
    cache = _SamplesCache(metric)
    results = [
        cell_result(cell, record, root, default_tasks(cell_spec(cell, options, {}))[0], cache, resamples)
        for cell, record in records
    ]
    plot_paths: dict[str, str] = {}
    if plots_dir is not None and results:
        for title, path in plotting.write_grid_plots(results, Path(plots_dir)).items():
            plot_paths[title] = os.path.relpath(path, Path(results_path).resolve().parent)
    first_spec = cell_spec(records[0][0], options, records[0][1].get("hparams") or {}) if records else None
    info = PageInfo(
        command=command,
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        versions=package_versions(),
        wall_time_s=wall_time_s,
        compute_time_s=compute_seconds((record for _, record in records), root),
        world=options.world,
        model=_display_model(clean_model_for(first_spec)) if first_spec else "",
        seeds=list(options.seeds),
        resamples=resamples,
        metric=metric,
        notes=list(notes),
        plots=plot_paths,
        protocol=options.protocol,
    )
    atomic_write_text(results_path, results_markdown(results, info))
    atomic_write_json(Path(results_path).with_suffix(".json"), {
        "schema": "restor-bench/grid/v1", "command": command, "date": info.date, "versions": info.versions,
        "world": info.world, "protocol": options.protocol, "seeds": info.seeds, "resamples": resamples,
        "metric": metric,
        "cells": [result.to_dict() for result in results],
    })
    return results


def _display_model(model: str) -> str:
    """A model path as the page shows it: relative to the working folder when inside it."""
    path = Path(model)
    if not path.is_absolute():
        return model
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        from restor_bench.data.world import tiny_world_dir

        if path.resolve() == (tiny_world_dir() / "model").resolve():
            return "the tiny world's clean model"
        return path.name


# ---------------------------------------------------------------------------------------------------------------
# CLI


def _split(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError(f"--{what} is empty")
    return list(dict.fromkeys(items))


def _choices(text: str, what: str, allowed: Sequence[str]) -> list[str]:
    items = _split(text, what)
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise InputError(f"--{what}: unknown {unknown[0]!r} (choose from: {', '.join(allowed)})")
    return items


def _levels(text: str, world: str) -> list[int]:
    levels = []
    for item in _split(text, "levels"):
        if not item.isdigit():
            raise InputError(f"--levels: {item!r} is not a level number")
        level = int(item)
        if level not in WORLD_LEVELS[world]:
            if world == "official":
                from restor_bench.data.official import check_level

                check_level(level)  # says why levels 4 and 5 are unavailable
            raise InputError(f"--levels: level {level} does not exist in the {world} world "
                             f"(levels: {', '.join(map(str, WORLD_LEVELS[world]))})")
        levels.append(level)
    return levels


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "grid",
        help="the paper's experiment grid: methods x levels x forget sets x seeds, then a results page and plots",
        description="Run every cell of the grid through `restor-bench run` (finished steps and cells are reused, so "
        "an interrupted grid resumes), then write the results page and the plots.",
    )
    parser.add_argument("--methods", default="ga,kl,npo", help="comma-separated methods (default ga,kl,npo)")
    parser.add_argument("--levels", default="0,3", help="comma-separated corruption levels k (default 0,3)")
    parser.add_argument("--forget", default="full,simplified", help="forget sets: full, simplified (default both)")
    parser.add_argument("--corruption", default="wikidata,squad",
                        help="corruptions: wikidata (level k documents), squad (extreme; no level) (default both)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--world", choices=tuple(WORLD_LEVELS), default="tiny", help="tiny (default) or official")
    parser.add_argument("--model", help="clean checkpoint (default: the tiny world's model; needed for official)")
    parser.add_argument("--lora", action="store_true", help="LoRA for corruption and unlearning (merged after)")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                        help="override one hyperparameter of one method, e.g. ga.learning_rate=1e-4 (repeatable)")
    parser.add_argument("--max-steps", type=int, help="cap the unlearning's optimizer steps")
    parser.add_argument("--corrupt-max-steps", type=int, help="cap the corruption's optimizer steps")
    parser.add_argument("--corrupt-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting of the corruption recipe, e.g. learning_rate=3e-4 (repeatable)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N questions (smoke runs)")
    parser.add_argument("--batch-size", default="32", help="lm-eval batch size (default 32)")
    parser.add_argument("--max-docs-per-entity", type=int, help="official world: keep N documents per target")
    parser.add_argument("--data-dir", help="folder of the official RESTOR files (else RESTOR_DATA_DIR or download)")
    parser.add_argument("--targets", choices=("all", "test"), default="all",
                        help="target facts to report on: all, or (tiny world) the test targets only")
    from restor_bench.pipeline import add_protocol_arguments

    add_protocol_arguments(parser)
    parser.add_argument("--root", default="runs", help="folder of runs and their step artifacts (default ./runs)")
    parser.add_argument("--results", default="docs/RESULTS.md", help="results page (default docs/RESULTS.md; "
                        "its numbers also go to the .json beside it)")
    parser.add_argument("--plots", default="docs/plots", help="folder of the PNG plots (default docs/plots)")
    parser.add_argument("--no-plots", action="store_true", help="write no plots")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples for the intervals (default {DEFAULT_RESAMPLES}; 0: none)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results page and plots")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and the estimated time; run nothing")
    parser.set_defaults(func=grid_command)


def command_line(args: argparse.Namespace) -> str:
    """The exact command, with every option spelled out (so the page shows what was run)."""
    parts = ["restor-bench", "grid", "--methods", args.methods, "--levels", args.levels, "--forget", args.forget,
             "--corruption", args.corruption, "--seeds", str(args.seeds), "--world", args.world]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    from restor_bench.pipeline import protocol_from_args

    parts += ["--protocol", protocol_from_args(args)]
    for option in ("model", "max_steps", "corrupt_max_steps", "limit", "max_docs_per_entity", "data_dir", "retain",
                   "repair"):
        value = getattr(args, option)
        if value is not None:
            parts += ["--" + option.replace("_", "-"), str(value)]
    if args.lora:
        parts.append("--lora")
    if args.targets != "all":
        parts += ["--targets", args.targets]
    for override in args.set:
        parts += ["--set", override]
    for setting in args.corrupt_set:
        parts += ["--corrupt-set", setting]
    if str(args.batch_size) != "32":
        parts += ["--batch-size", str(args.batch_size)]
    if args.resamples != DEFAULT_RESAMPLES:
        parts += ["--resamples", str(args.resamples)]
    parts += ["--root", args.root, "--results", args.results]
    parts += ["--no-plots"] if args.no_plots else ["--plots", args.plots]
    return shlex.join(parts)


def method_overrides(settings: Sequence[str], methods: Sequence[str]) -> dict[str, list[str]]:
    """Split `--set METHOD.KEY=VALUE` options into `KEY=VALUE` lists per method of the grid."""
    overrides: dict[str, list[str]] = {method: [] for method in methods}
    for setting in settings:
        target, separator, value = setting.partition("=")
        method, dot, key = target.strip().partition(".")
        if not separator or not dot or not method or not key.strip():
            raise InputError(f"--set {setting!r}: expected METHOD.KEY=VALUE, e.g. ga.learning_rate=1e-4")
        if method not in overrides:
            raise InputError(f"--set {setting!r}: method {method!r} is not in --methods ({', '.join(methods)})")
        overrides[method].append(f"{key.strip()}={value}")
    return overrides


def options_from_args(args: argparse.Namespace) -> GridOptions:
    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    if args.resamples < 0:
        raise InputError(f"--resamples must be 0 or more, got {args.resamples}")
    for option in ("max_steps", "corrupt_max_steps", "limit", "max_docs_per_entity"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise InputError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if args.world == "official" and not args.model:
        raise InputError("--world official needs --model (a local checkpoint folder or a hub id)")
    batch_size: int | str = int(args.batch_size) if str(args.batch_size).isdigit() else args.batch_size
    from restor_bench.corrupt import recipe_settings
    from restor_bench.pipeline import protocol_from_args

    return GridOptions(
        world=args.world, seeds=tuple(range(args.seed, args.seed + args.seeds)), model=args.model, lora=args.lora,
        unlearn_max_steps=args.max_steps, corrupt_max_steps=args.corrupt_max_steps,
        corrupt_recipe=recipe_settings(args.corrupt_set), limit=args.limit,
        batch_size=batch_size, data_dir=args.data_dir, max_docs_per_entity=args.max_docs_per_entity,
        root=Path(args.root), targets=args.targets, protocol=protocol_from_args(args), retain=args.retain,
        repair=args.repair,
    )


def dry_run_lines(cells: Sequence[Cell], options: GridOptions, hparams: dict[str, dict[str, Any]]) -> list[str]:
    """The cells (with their state) and the time estimate, as printed by `--dry-run`."""
    from restor_bench import pipeline

    seeds = list(options.seeds)
    specs = [cell_spec(cell, options, hparams[cell.method]) for cell in cells]
    try:
        data_hash = pipeline.data_hash(specs[0]) if specs else None
    except InputError:
        data_hash = None
    finished = [cell for cell, spec in zip(cells, specs) if finished_record(spec, seeds, options.root, data_hash)]
    lines = [f"{len(cells)} cells x {len(seeds)} seed(s) ({options.world} world), root {options.root}:"]
    for number, (cell, spec) in enumerate(zip(cells, specs), start=1):
        state = "finished" if cell in finished else "to run"
        lines.append(f"  {number:>3}. {cell_name(spec):<40} {cell.label:<28} {state}")
    counts = steps_to_run(cells, seeds, finished)
    seconds, sources = step_seconds(options.root, options.world)
    detail = ", ".join(
        f"{counts[kind]} {kind} x {format_duration(seconds[kind])} ({sources[kind]})" for kind in STEP_KINDS
    )
    lines.append(f"steps to run: {detail}")
    lines.append(f"estimated time: {format_duration(estimate_seconds(counts, seconds))}")
    return lines


def grid_command(args: argparse.Namespace) -> int:
    started = time.monotonic()
    options = options_from_args(args)
    methods = _split(args.methods, "methods")
    cells, notes = plan_cells(
        methods, _levels(args.levels, args.world), _choices(args.forget, "forget", FORGET_FORMS),
        _choices(args.corruption, "corruption", CORRUPTIONS),
    )
    if not cells:
        raise InputError("the grid has no cells (check --corruption and --forget)")
    from restor_bench.unlearn import resolve_method_hparams

    overrides = method_overrides(args.set, methods)
    from restor_bench.pipeline import method_preset

    hparams = {
        method: resolve_method_hparams(method, overrides=overrides[method],
                                       preset=method_preset(method, options.protocol))
        for method in methods
    }
    if args.dry_run:
        for note in notes:
            print(f"note: {note}")
        print("\n".join(dry_run_lines(cells, options, hparams)))
        return 0
    results_path = Path(args.results)
    plots_dir = None if args.no_plots else Path(args.plots)
    _check_outputs(results_path, plots_dir, args.overwrite)
    if options.corrupt_recipe:
        settings = ", ".join(f"{key}={value}" for key, value in sorted(options.corrupt_recipe.items()))
        notes.append(f"the corruption recipe was changed: {settings} (see `restor-bench corrupt --help`)")
    notes.append(protocol_note(options))
    if options.max_docs_per_entity:
        notes.append(f"corruption and forget sets keep the first {options.max_docs_per_entity} documents of each "
                     "target entity")
    for note in notes:
        print(f"note: {note}")
    records = run_grid(cells, options, hparams)
    results = write_page(
        records, options, results_path=results_path, plots_dir=plots_dir, command=command_line(args),
        wall_time_s=time.monotonic() - started, resamples=args.resamples, notes=notes,
    )
    print(f"results page: {results_path} ({len(results)} cells)")
    if plots_dir is not None:
        print(f"plots:        {plots_dir}")
    return 0


def protocol_note(options: GridOptions) -> str:
    """One line naming the protocol a page ran under and what it means."""
    from restor_bench.pipeline import RunSpec

    retain = RunSpec(world=options.world, protocol=options.protocol, retain=options.retain).retain_source()
    repair = f"; unlearned models repaired on {options.repair}" if options.repair else "; no repair fine-tune"
    if options.protocol == "paper":
        return ("protocol paper: packed corruption with 10% held out, the paper's GA/KL/NPO losses (`paper` presets), "
                f"retain set {retain}{repair}")
    return f"protocol classic: one document per corruption example, the methods' own losses, retain set {retain}{repair}"


def _check_outputs(results_path: Path, plots_dir: Path | None, overwrite: bool) -> None:
    """Refuse to start when the page or plots exist (unless --overwrite), and when matplotlib is missing."""
    if not overwrite:
        if results_path.exists():
            raise InputError(f"{results_path}: results page exists (pass --overwrite to replace it)")
        if plots_dir is not None:
            from restor_bench.plots import PLOT_FILES

            existing = [name for name in PLOT_FILES if (plots_dir / name).exists()]
            if existing:
                raise InputError(f"{plots_dir / existing[0]}: plot exists (pass --overwrite to replace it)")
    if plots_dir is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InputError("plots need matplotlib: pip install 'restor-bench[plots]' (or pass --no-plots)") from None

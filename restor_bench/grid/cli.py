"""`restor-bench grid`: the paper's experiment grid, run cell by cell through `restor-bench run`, then one results page.

A cell is one method, one corruption (wikidata-style documents at level k, or the SQuAD-style passages, where the
level does not apply) and one forget set (`full` corruption documents or their `simplified` form), run for every
seed by `restor_bench.run.pipeline.run` into `ROOT/<cell name>/run.json`. The SQuAD passages have no simplified form,
so SQuAD cells use the full forget set only.

Resuming: every step the pipeline finishes is a content-addressed folder under `ROOT/steps/` that later runs reuse,
and a cell whose `run.json` holds the same spec, seeds and data hash is skipped whole; so an interrupted grid, run
again with the same command, continues where it stopped.

Numbers of the results page (computed in `restor_bench.grid.stats`, laid out in `restor_bench.grid.page`), per
cell, on the task's target questions unless said otherwise:

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
import json
import shlex
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from restor_bench.compare.stats import check_resamples
from restor_bench.data.official import check_level
from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import add_eval_options, parse_batch_size
from restor_bench.grid.cells import Cell, GridOptions, drop_identical_simplified, plan_cells
from restor_bench.grid.page import format_duration, write_page
from restor_bench.grid.plots import PLOT_FILES
from restor_bench.grid.specs import cell_name, cell_spec, finished_record
from restor_bench.io import check_output_file, file_in_the_way
from restor_bench.names import CORRUPTIONS, DEFAULT_RESAMPLES, FORGET_FORMS, WORLD_LEVELS
from restor_bench.run import pipeline
from restor_bench.run.cli import add_protocol_arguments
from restor_bench.run.pipeline import TASKS, RunSpec, protocol_from_args
from restor_bench.train.corrupt import recipe_settings
from restor_bench.train.unlearn import method_preset, resolve_method_hparams
from unlearners.cli import seed_number

STEP_KINDS = ("corrupt", "unlearn", "repair", "eval")

# Rough seconds per step when no step of the same world was measured under the root yet: the tiny world on a
# laptop CPU (default recipe, full question set), the official data with an 8B model on one recent GPU.
DEFAULT_STEP_SECONDS = {
    "tiny": {"corrupt": 90.0, "unlearn": 40.0, "repair": 30.0, "eval": 20.0},
    "official": {"corrupt": 3600.0, "unlearn": 900.0, "repair": 900.0, "eval": 600.0},
}


# ---------------------------------------------------------------------------------------------------------------
# Time estimates


def _step_world(kind: str, inputs: dict[str, Any]) -> str | None:
    """The world a finished step belonged to, from its recorded inputs."""

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


def _cell_steps(cell: Cell, seed: int, repair: bool = False) -> list[tuple]:
    """Abstract identities of the steps of one cell and seed (shared steps have equal identities); with `repair`,
    the unlearned model's repair fine-tune too."""
    source = f"{cell.corruption}:{cell.level}"
    own = (cell.method, cell.corruption, cell.level, cell.forget, seed)
    return [
        ("corrupt", source, seed),
        ("eval", "clean"),
        ("eval", "corrupted", source, seed),
        ("unlearn", *own),
        *([("repair", *own)] if repair else []),
        ("eval", "unlearned", *own),
    ]


def steps_to_run(cells: Sequence[Cell], seeds: Sequence[int], finished: Iterable[Cell] = (),
                 repair: bool = False) -> dict[str, int]:
    """How many steps of each kind the cells still need (shared steps once; steps of finished cells not at all)."""
    done = {step for cell in finished for seed in seeds for step in _cell_steps(cell, seed, repair)}
    needed = {step for cell in cells for seed in seeds for step in _cell_steps(cell, seed, repair)} - done
    return {kind: sum(1 for step in needed if step[0] == kind) for kind in STEP_KINDS}


def estimate_seconds(counts: dict[str, int], seconds: dict[str, float]) -> float:
    """Total seconds of the given step counts."""
    return sum(count * seconds[kind] for kind, count in counts.items() if count)


# ---------------------------------------------------------------------------------------------------------------
# Running the grid


def _default_log(message: str) -> None:
    print(message, flush=True)


def run_grid(
    cells: Sequence[Cell], options: GridOptions, hparams: dict[str, dict[str, Any]],
    *, log: Callable[[str], None] = _default_log,
) -> list[tuple[Cell, dict[str, Any]]]:
    """Run every cell (skipping finished ones) and return the cells with their run records."""

    root = Path(options.root)
    seeds = list(options.seeds)
    specs = [cell_spec(cell, options, hparams[cell.method]) for cell in cells]
    data_hash = pipeline.data_hash(specs[0]) if specs else None
    finished = {cell for cell, spec in zip(cells, specs, strict=True) if finished_record(spec, seeds, root, data_hash)}
    started = time.monotonic()
    records = []
    for number, (cell, spec) in enumerate(zip(cells, specs, strict=True), start=1):
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

                check_level(level)  # says why levels 4 and 5 are unavailable
            raise InputError(f"--levels: level {level} does not exist in the {world} world "
                             f"(levels: {', '.join(map(str, WORLD_LEVELS[world]))})")
        levels.append(level)
    return levels


# The corruption levels of a grid's wikidata cells when --levels is not given.
DEFAULT_GRID_LEVELS = "0,3"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "grid",
        help="the paper's experiment grid: methods x levels x forget sets x seeds, then a results page and plots",
        description="Run every cell of the grid through `restor-bench run` (finished steps and cells are reused, so "
        "an interrupted grid resumes), then write the results page and the plots.",
    )
    parser.add_argument("--methods", default="ga,kl,npo", help="comma-separated methods (default ga,kl,npo)")
    parser.add_argument("--levels", default=None,
                        help=f"comma-separated corruption levels k of the wikidata cells (default {DEFAULT_GRID_LEVELS})")
    parser.add_argument("--forget", default="full,simplified", help="forget sets: full, simplified (default both)")
    parser.add_argument("--corruption", default="wikidata,squad",
                        help="corruptions: wikidata (level k documents), squad (extreme; no level) (default both)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--seed", type=seed_number, default=0, help="first seed (default 0)")
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

    add_protocol_arguments(parser)
    add_eval_options(parser)
    parser.add_argument("--root", default="runs", help="folder of runs and their step artifacts (default ./runs)")
    parser.add_argument("--results", help="results page (default ROOT/RESULTS.md; its numbers also go to the .json "
                        "beside it)")
    parser.add_argument("--plots", help="folder of the PNG plots (default ROOT/plots)")
    parser.add_argument("--no-plots", action="store_true", help="write no plots")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples for the intervals (default {DEFAULT_RESAMPLES}; 0: none)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results page and plots")
    parser.add_argument("--discussion", metavar="FILE",
                        help="a committed markdown file placed on the page after the numbers (the page stays a "
                        "function of the command and the files it names)")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and the estimated time; run nothing")
    parser.set_defaults(func=grid_command)


def command_line(args: argparse.Namespace) -> str:
    """The exact command, with every option spelled out (so the page shows what was run)."""
    levels = ["--levels", args.levels] if args.levels is not None else []  # `grid` itself always sets them
    parts = ["restor-bench", "grid", "--methods", args.methods, *levels, "--forget", args.forget,
             "--corruption", args.corruption, "--seeds", str(args.seeds), "--world", args.world]
    if args.seed:
        parts += ["--seed", str(args.seed)]

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
    if args.backend != "hf":
        parts += ["--backend", args.backend]
    if args.device:
        parts += ["--device", args.device]
    if args.resamples != DEFAULT_RESAMPLES:
        parts += ["--resamples", str(args.resamples)]
    if args.discussion:
        parts += ["--discussion", args.discussion]
    results, plots = output_paths(args)
    parts += ["--root", args.root, "--results", str(results)]
    parts += ["--no-plots"] if plots is None else ["--plots", str(plots)]
    return shlex.join(parts)


def output_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The results page and the plots folder: as given, else under the run root (never over the shipped docs)."""
    results = Path(args.results) if args.results else Path(args.root) / "RESULTS.md"
    plots = None if args.no_plots else Path(args.plots) if args.plots else Path(args.root) / "plots"
    return results, plots


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
    check_resamples(args.resamples, "--resamples")
    for option in ("max_steps", "corrupt_max_steps", "limit", "max_docs_per_entity"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise InputError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if args.world == "official" and not args.model:
        raise InputError("--world official needs --model (a local checkpoint folder or a hub id)")

    batch_size = parse_batch_size(str(args.batch_size))
    return GridOptions(
        world=args.world, seeds=tuple(range(args.seed, args.seed + args.seeds)), model=args.model, lora=args.lora,
        unlearn_max_steps=args.max_steps, corrupt_max_steps=args.corrupt_max_steps,
        corrupt_recipe=recipe_settings(args.corrupt_set), limit=args.limit,
        batch_size=batch_size, data_dir=args.data_dir, max_docs_per_entity=args.max_docs_per_entity,
        root=Path(args.root), targets=args.targets, protocol=protocol_from_args(args), retain=args.retain,
        repair=args.repair, device=args.device, backend=args.backend,
    )


def dry_run_lines(cells: Sequence[Cell], options: GridOptions, hparams: dict[str, dict[str, Any]]) -> list[str]:
    """The cells (with their state) and the time estimate, as printed by `--dry-run`."""

    seeds = list(options.seeds)
    specs = [cell_spec(cell, options, hparams[cell.method]) for cell in cells]
    try:
        data_hash = pipeline.data_hash(specs[0]) if specs else None
    except InputError:
        data_hash = None
    finished = [
        cell for cell, spec in zip(cells, specs, strict=True) if finished_record(spec, seeds, options.root, data_hash)
    ]
    lines = [f"{len(cells)} cells x {len(seeds)} seed(s) ({options.world} world), root {options.root}:"]
    for number, (cell, spec) in enumerate(zip(cells, specs, strict=True), start=1):
        state = "finished" if cell in finished else "to run"
        lines.append(f"  {number:>3}. {cell_name(spec):<40} {cell.label:<28} {state}")
    counts = steps_to_run(cells, seeds, finished, repair=bool(options.repair))
    seconds, sources = step_seconds(options.root, options.world)
    detail = ", ".join(
        f"{counts[kind]} {kind} x {format_duration(seconds[kind])} ({sources[kind]})" for kind in STEP_KINDS
        if counts[kind] or kind != "repair"
    )
    lines.append(f"steps to run: {detail}")
    lines.append(f"estimated time: {format_duration(estimate_seconds(counts, seconds))}")
    return lines


def grid_command(args: argparse.Namespace) -> int:
    started = time.monotonic()
    options = options_from_args(args)
    methods = _split(args.methods, "methods")
    corruptions = _choices(args.corruption, "corruption", CORRUPTIONS)
    if args.levels is not None and "wikidata" not in corruptions:
        raise InputError(f"--levels {args.levels} means nothing with --corruption {args.corruption} (the SQuAD-style "
                         "passages have no level k); drop --levels or add wikidata to --corruption")
    if args.levels is None:
        args.levels = DEFAULT_GRID_LEVELS
    cells, notes = plan_cells(
        methods, _levels(args.levels, args.world), _choices(args.forget, "forget", FORGET_FORMS), corruptions,
    )
    cells, same = drop_identical_simplified(cells, options.world)
    if same:
        notes.append(f"the simplified forget set equals the corruption documents at k={', '.join(map(str, same))} "
                     "on this world, so those simplified cells would repeat the full ones and are left out")
    if not cells:
        raise InputError("the grid has no cells (check --corruption and --forget)")

    overrides = method_overrides(args.set, methods)

    hparams = {
        method: resolve_method_hparams(method, overrides=overrides[method],
                                       preset=method_preset(method, options.protocol))
        for method in methods
    }
    # every argument the cells' steps will read (retain and repair sets, model, data), checked before the first step:
    # one cell of each method (whether a method reads the retain set depends on the method)
    first_cells: dict[str, Cell] = {}
    for cell in cells:
        first_cells.setdefault(cell.method, cell)
    specs = [cell_spec(cell, options, hparams[cell.method]) for cell in first_cells.values()]
    pipeline.refuse_unused_retain(args.retain, specs)
    for spec in specs:
        pipeline.check_run_inputs(spec)
    if args.dry_run:
        for note in notes:
            print(f"note: {note}")
        print("\n".join(dry_run_lines(cells, options, hparams)))
        return 0
    results_path, plots_dir = output_paths(args)
    _check_outputs(results_path, plots_dir, args.overwrite)
    discussion = read_discussion(args.discussion) if args.discussion else ""
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
        wall_time_s=time.monotonic() - started, resamples=args.resamples, notes=notes, discussion=discussion,
    )
    print(f"results page: {results_path} ({len(results)} cells)")
    if plots_dir is not None:
        print(f"plots:        {plots_dir}")
    return 0


def read_discussion(path: str) -> str:
    """The text of a --discussion file (UTF-8 markdown), read before any cell runs."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: discussion file not found")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def protocol_note(options: GridOptions) -> str:
    """One line naming the protocol a page ran under and what it means."""

    retain = RunSpec(world=options.world, protocol=options.protocol, retain=options.retain).retain_source()
    repair = f"; unlearned models repaired on {options.repair}" if options.repair else "; no repair fine-tune"
    if options.protocol == "paper":
        return ("protocol paper: packed corruption with 10% held out, the paper's GA/KL/NPO losses (`paper` presets), "
                f"retain set {retain}{repair}")
    return f"protocol classic: one document per corruption example, the methods' own losses, retain set {retain}{repair}"


def _check_outputs(results_path: Path, plots_dir: Path | None, overwrite: bool) -> None:
    """Refuse to start when the page, its JSON or the plots exist (unless --overwrite) or cannot be written (a
    folder at the page's path, a file in the way of a folder), and when matplotlib is missing."""

    check_output_file(results_path, "--results", overwrite)
    check_output_file(results_path.with_suffix(".json"), "--results (its JSON)", overwrite)
    blocker = file_in_the_way(plots_dir) if plots_dir is not None else None
    if blocker is not None:
        raise InputError(f"{plots_dir}: --plots folder cannot be made, {blocker} is a file")
    if not overwrite:
        if plots_dir is not None:

            existing = [name for name in PLOT_FILES if (plots_dir / name).exists()]
            if existing:
                raise InputError(f"{plots_dir / existing[0]}: plot exists (pass --overwrite to replace it)")
    if plots_dir is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InputError("plots need matplotlib: pip install 'restor-bench[plots]' (or pass --no-plots)") from None

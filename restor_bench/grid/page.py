"""The grid's results page: markdown tables of the cells' pooled numbers (`restor_bench.grid.stats`), the
restoration ratio by relation of each setting, the hyperparameters, the wall time of each step and the plots;
`write_page` computes the numbers, draws the plots and writes the page (and its numbers as JSON beside it)."""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restor_bench.data.world.files import load_manifest, tiny_world_dir
from restor_bench.errors import InputError
from restor_bench.grid import plots as plotting
from restor_bench.grid.cells import Cell, GridOptions
from restor_bench.grid.specs import cell_spec
from restor_bench.grid.findings import findings_markdown
from restor_bench.grid.stats import (
    CELL_STEPS,
    CellResult,
    Estimate,
    SamplesCache,
    cell_result,
    compute_seconds,
    relation_grid,
    settings_of,
)
from restor_bench.io import atomic_write_json, atomic_write_text
from restor_bench.names import DEFAULT_RESAMPLES, FORGET_FORMS, ROLES
from restor_bench.run.pipeline import clean_model_for, default_tasks
from restor_bench.train.common import package_versions
from restor_bench.train.unlearn import resolve_method_hparams
from unlearners.errors import UnlearnError

# ---------------------------------------------------------------------------------------------------------------
# Formatting numbers


def format_duration(seconds: float) -> str:
    """'45s', '3m 20s', '2h 05m'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def format_pct(estimate: Estimate, signed: bool = False) -> str:
    """A share as a percentage with one decimal, and its interval: '45.7 [30.0, 60.0]' ('+' signs if `signed`)."""
    if estimate.value is None:
        return "n/a"
    sign = "+" if signed else ""
    text = f"{estimate.value * 100:{sign}.1f}"
    if estimate.low is not None:
        text += f" [{estimate.low * 100:{sign}.1f}, {estimate.high * 100:{sign}.1f}]"
    return text


def format_ratio(estimate: Estimate) -> str:
    """A ratio with two decimals, and its interval: '0.25 [-0.12, 0.50]'."""
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
            format_pct(stats["clean_target"]), format_pct(stats["corrupted_target"]),
            format_pct(stats["unlearned_target"]),
            format_ratio(stats["restoration_ratio"]), _transitions(result.transitions, result.injected_known),
            format_pct(stats["non_target_change"], signed=True), f"{result.n_target} / {result.n_non_target}",
        ]
        rows.append(row)
    return rows


CELL_COLUMNS = ["clean", "corrupted", "unlearned", "restoration ratio", "restored / still corrupted / forgotten",
                "non-target change", "questions (target / other)"]


def cell_table(results: Sequence[CellResult], with_level: bool) -> list[str]:
    """The table of every cell (markdown lines, header first): the page's "Every cell" (wikidata-style cells, with
    the level) and SQuAD tables."""
    header = ["method", "forget", *(["k"] if with_level else []), *CELL_COLUMNS]
    return _table(header, _cell_rows(results, with_level))


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
        row = [str(level), format_pct(any_cell.stats["clean_target"]), format_pct(any_cell.stats["corrupted_target"])]
        row += [format_pct(at_level[method].stats["unlearned_target"]) if method in at_level else ""
                for method in methods]
        rows.append(row)
    header = ["k", "clean", "corrupted", *(method.upper() for method in methods)]
    return [f"### Target accuracy (%) by level k, {forget} forget set", "", *_table(header, rows), ""]


# Hyperparameters every method has that the page always shows (besides those that differ from the defaults).
SHOWN_HPARAMS = ("learning_rate", "num_epochs", "per_device_batch_size")


def _hparams_section(results: Sequence[CellResult]) -> list[str]:
    """Each method's main hyperparameters and every one that differs from the method's defaults."""

    rows, seen = [], set()
    for result in results:
        method = result.cell.method
        if method in seen or not result.hparams:
            continue
        seen.add(method)
        try:
            defaults = resolve_method_hparams(method)
        except UnlearnError:  # a method not installed here
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
    discussion: str = ""  # markdown of the --discussion file, placed after the findings
    relation_names: dict[str, str] = dataclasses.field(default_factory=dict)  # relation id -> name on the page
    relation_plots: dict[tuple, str] = dataclasses.field(default_factory=dict)  # setting -> heat map path


def _scoring_section(results: Sequence[CellResult], legacy: Sequence[CellResult], metric: str) -> list[str]:
    """The same generations scored by the current rules and by the legacy ones (task version 1.0), side by side."""
    lines = [
        "## Scoring: current rules and the legacy ones, same generations", "",
        f"Target accuracy (%) with `{metric}` (one leading article dropped, country and language aliases) and with "
        f"`{metric}_legacy` (articles dropped anywhere, no aliases), and the restoration ratio under each.", "",
    ]
    rows = []
    for new, old in zip(results, legacy, strict=True):
        row = [new.cell.method, new.cell.forget, "squad" if new.cell.level is None else str(new.cell.level)]
        for role in ROLES:
            row.append(f"{format_pct(new.stats[role + '_target'])} / {format_pct(old.stats[role + '_target'])}")
        row.append(f"{format_ratio(new.stats['restoration_ratio'])} / {format_ratio(old.stats['restoration_ratio'])}")
        rows.append(row)
    header = ["method", "forget", "k", "clean (new / legacy)", "corrupted (new / legacy)", "unlearned (new / legacy)",
              "ratio (new / legacy)"]
    return [*lines, *_table(header, rows), ""]


def _relation_section(results: Sequence[CellResult], names: dict[str, str], plots: dict[tuple, str]) -> list[str]:
    """Per setting (corruption, level, forget set): the restoration ratio of each method on each relation's target
    questions, with the relation's question count, and the setting's heat map when drawn."""
    lines = []
    for setting, cells in settings_of(results).items():
        _, labels, methods, values = relation_grid(cells, names)
        if not labels:
            continue
        rows = []
        for row, label in enumerate(labels):
            line = [label.replace("|", "\\|")]
            for column in range(len(methods)):
                if (row, column) not in values:
                    line.append("")
                    continue
                ratio, n = values[(row, column)]
                line.append(("n/a" if ratio is None else f"{ratio:.2f}") + f" (n={n})")
            rows.append(line)
        title = cells[0].cell.setting_title
        lines += [f"### {title}", "", *_table(["relation", *(method.upper() for method in methods)], rows), ""]
        if setting in plots:
            lines += [f"![Restoration ratio by relation, {title}]({plots[setting]})", ""]
    if not lines:
        return []
    intro = ("Restoration ratio of each method on the target questions of each relation: (unlearned - corrupted) / "
             "(clean - corrupted) of the accuracies pooled over seeds and the relation's questions; n: the "
             "relation's target questions (each asked once per seed); n/a when the corruption moved less than one "
             "of them. Small n makes a ratio coarse.")
    return ["## Restoration by relation", "", intro, "", *lines]


def results_markdown(results: Sequence[CellResult], info: PageInfo, legacy: Sequence[CellResult] = ()) -> str:
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
    if wikidata:
        lines += ["## Amount of unrelated context (wikidata-style documents, level k) and simplified forget set", ""]
        for forget in FORGET_FORMS:
            lines += _level_pivot(wikidata, forget)
        lines += ["### Every cell", "", *cell_table(wikidata, with_level=True), ""]
    if squad:
        lines += ["## Extreme corruption (SQuAD-style passages)", "",
                  *cell_table(squad, with_level=False), ""]
    if info.protocol == "paper":

        lines += findings_markdown(results)
    if info.discussion:
        lines += [info.discussion.strip(), ""]
    if legacy:
        lines += _scoring_section(results, legacy, info.metric)
    lines += _relation_section(results, info.relation_names, info.relation_plots)
    lines += _hparams_section(results)
    lines += _timing_section(results)
    if info.plots:
        lines += ["## Plots", ""]
        for title, path in info.plots.items():
            lines += [f"![{title}]({path})", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Writing the page


def write_page(
    records: Sequence[tuple[Cell, dict[str, Any]]], options: GridOptions, *, results_path: Path,
    plots_dir: Path | None, command: str, wall_time_s: float, resamples: int = DEFAULT_RESAMPLES,
    notes: Sequence[str] = (), metric: str = "contains", discussion: str = "",
) -> list[CellResult]:
    """Compute every cell's numbers, draw the plots and write the results page (atomically)."""

    root = Path(options.root)
    cache = SamplesCache(metric)
    results = [
        cell_result(cell, record, root, default_tasks(cell_spec(cell, options, {}))[0], cache, resamples)
        for cell, record in records
    ]
    page_dir = Path(results_path).resolve().parent
    names = relation_names(options.world)
    plot_paths: dict[str, str] = {}
    relation_plots: dict[tuple, str] = {}
    if plots_dir is not None and results:
        for title, path in plotting.write_grid_plots(results, Path(plots_dir)).items():
            plot_paths[title] = os.path.relpath(path, page_dir)
        for setting, path in plotting.write_relation_heatmaps(results, Path(plots_dir), names).items():
            relation_plots[setting] = os.path.relpath(path, page_dir)
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
        discussion=discussion,
        relation_names=names,
        relation_plots=relation_plots,
    )
    legacy = legacy_results(records, options, root, resamples, metric)
    atomic_write_text(results_path, results_markdown(results, info, legacy))
    atomic_write_json(Path(results_path).with_suffix(".json"), {
        "schema": "restor-bench/grid/v1", "command": command, "date": info.date, "versions": info.versions,
        "world": info.world, "protocol": options.protocol, "seeds": info.seeds, "resamples": resamples,
        "metric": metric,
        "cells": [result.to_dict() for result in results],
    })
    return results


def legacy_results(records, options: GridOptions, root: Path, resamples: int, metric: str) -> list[CellResult]:
    """The cells scored with the legacy rules (`<metric>_legacy`), or [] when the samples predate that metric."""

    legacy_metric = f"{metric}_legacy"
    cache = SamplesCache(legacy_metric)
    try:
        return [
            cell_result(cell, record, root, default_tasks(cell_spec(cell, options, {}))[0], cache, resamples)
            for cell, record in records
        ]
    except InputError:
        return []


def relation_names(world: str) -> dict[str, str]:
    """The names the page gives relation ids: the tiny world's manifest `relations`; none (the ids) otherwise."""
    if world != "tiny":
        return {}

    try:
        relations = load_manifest()["relations"]
    except InputError:
        return {}
    return {str(key): str(value) for key, value in relations.items()}


def _display_model(model: str) -> str:
    """A model path as the page shows it: relative to the working folder when inside it."""
    path = Path(model)
    if not path.is_absolute():
        return model
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:

        if path.resolve() == (tiny_world_dir() / "model").resolve():
            return "the tiny world's clean model"
        return path.name

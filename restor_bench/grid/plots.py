"""The grid's figures (matplotlib, Agg backend, PNG), drawn from `restor_bench.grid.stats.CellResult`s.

* `accuracy-vs-k-<forget>.png`: target accuracy against the corruption level k: the clean model, the corrupted
  model and each method's unlearned model, with 95% intervals (the paper's main figure; one per forget set).
* `restoration-full-vs-simplified.png`: restoration ratio per method, full vs simplified forget set side by side,
  one panel per level (and one for the SQuAD-style corruption), with 95% intervals.
* `restoration-by-relation-<setting>.png` (`k0-full`, `squad-full`, ...): one heat map per corruption and forget set,
  rows the relations of the target questions, columns the methods, colour the restoration ratio (grey: n/a), the
  ratio and the relation's question count written in each cell. `write_relation_heatmaps` draws them; the results
  page links each under its table.

Only the figures the cells can fill are drawn. matplotlib is imported on first use (restor_bench.plotting).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from restor_bench.grid.stats import relation_grid, settings_of
from restor_bench.names import FORGET_FORMS, WORLD_LEVELS
from restor_bench.plotting import pyplot, save_figure  # noqa: F401 (save_figure: the grid's figures are written with it)

if TYPE_CHECKING:  # pragma: no cover
    from restor_bench.grid.stats import CellResult, Estimate

ACCURACY_FILE = "accuracy-vs-k-{forget}.png"
RESTORATION_FILE = "restoration-full-vs-simplified.png"
RELATION_FILE = "restoration-by-relation-{setting}.png"
# every heat map a grid can draw: each level of any world with each forget set, and the SQuAD-style corruption
_SETTINGS = (*(f"k{level}-{forget}" for level in sorted(set().union(*WORLD_LEVELS.values()))
               for forget in FORGET_FORMS), "squad-full")
PLOT_FILES = (*(ACCURACY_FILE.format(forget=forget) for forget in FORGET_FORMS), RESTORATION_FILE,
              *(RELATION_FILE.format(setting=setting) for setting in _SETTINGS))
_MISSING = float("nan")


def _point(estimate: Estimate, scale: float = 1.0) -> tuple[float, float, float]:
    """(value, distance to the lower bound, distance to the upper bound), NaN where undefined."""
    if estimate.value is None:
        return _MISSING, 0.0, 0.0
    value = estimate.value * scale
    if estimate.low is None:
        return value, 0.0, 0.0
    return value, max(0.0, value - estimate.low * scale), max(0.0, estimate.high * scale - value)


def _errorbar(axes, xs: Sequence[float], estimates: Sequence[Estimate], scale: float, **style: Any) -> None:
    points = [_point(estimate, scale) for estimate in estimates]
    axes.errorbar(
        xs, [p[0] for p in points], yerr=[[p[1] for p in points], [p[2] for p in points]], capsize=3, **style
    )


def plot_accuracy_vs_level(results: Sequence[CellResult], forget: str, path: Path) -> Path | None:
    """Target accuracy against k for the clean, corrupted and each method's unlearned model; None if no cell."""
    cells = [r for r in results if r.cell.corruption == "wikidata" and r.cell.forget == forget]
    if not cells:
        return None
    plt = pyplot()
    levels = sorted({r.cell.level for r in cells})
    by_level = {level: [r for r in cells if r.cell.level == level] for level in levels}
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    _errorbar(axes, levels, [by_level[k][0].stats["clean_target"] for k in levels], 100,
              color="black", linestyle="--", marker="o", label="clean")
    _errorbar(axes, levels, [by_level[k][0].stats["corrupted_target"] for k in levels], 100,
              color="tab:red", linestyle=":", marker="x", label="corrupted")
    methods = list(dict.fromkeys(r.cell.method for r in cells))
    offsets = {method: (index - (len(methods) - 1) / 2) * 0.06 for index, method in enumerate(methods)}
    for method in methods:
        rows = {r.cell.level: r for r in cells if r.cell.method == method}
        ks = [k for k in levels if k in rows]
        _errorbar(axes, [k + offsets[method] for k in ks], [rows[k].stats["unlearned_target"] for k in ks], 100,
                  marker="s", label=f"{method.upper()} (unlearned)")
    axes.set_xticks(levels)
    axes.set_xlabel("corruption level k (unrelated context per document)")
    axes.set_ylabel("target accuracy (%)")
    axes.set_ylim(bottom=0)
    axes.set_title(f"Accuracy on target facts, {forget} forget set")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def plot_restoration_by_forget_set(results: Sequence[CellResult], path: Path) -> Path | None:
    """Restoration ratio per method, full vs simplified forget set, one panel per level (and SQuAD); None if no cell."""
    if not results:
        return None
    plt = pyplot()
    panels: list[tuple[str, list[CellResult]]] = []
    for level in sorted({r.cell.level for r in results if r.cell.corruption == "wikidata"}):
        at_level = [r for r in results if r.cell.corruption == "wikidata" and r.cell.level == level]
        panels.append((f"k = {level}", at_level))
    squad = [r for r in results if r.cell.corruption == "squad"]
    if squad:
        panels.append(("SQuAD-style", squad))
    methods = list(dict.fromkeys(r.cell.method for r in results))
    forgets = [form for form in FORGET_FORMS if any(r.cell.forget == form for r in results)]
    width = 0.8 / len(forgets)
    figure, axes_list = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 4.0), sharey=True, squeeze=False)
    colors = {"full": "tab:blue", "simplified": "tab:orange"}
    for axes, (title, cells) in zip(axes_list[0], panels):
        for index, forget in enumerate(forgets):
            rows = {r.cell.method: r for r in cells if r.cell.forget == forget}
            xs = [position + (index - (len(forgets) - 1) / 2) * width for position in range(len(methods))]
            points = [
                _point(rows[m].stats["restoration_ratio"]) if m in rows else (_MISSING, 0.0, 0.0) for m in methods
            ]
            values = [p[0] for p in points]
            axes.bar(xs, [0.0 if math.isnan(v) else v for v in values], width, color=colors.get(forget), label=forget,
                     yerr=[[p[1] for p in points], [p[2] for p in points]], capsize=3)
            for x, value, method in zip(xs, values, methods):
                if math.isnan(value) and method in rows:  # NaN: the ratio is undefined for this cell
                    axes.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize="x-small", rotation=90)
        axes.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
        axes.axhline(0.0, color="grey", linewidth=0.8)
        axes.set_xticks(range(len(methods)))
        axes.set_xticklabels([method.upper() for method in methods], rotation=45, ha="right")
        axes.set_title(title)
        axes.grid(axis="y", alpha=0.3)
    axes_list[0][0].set_ylabel("restoration ratio (1 = clean accuracy back)")
    axes_list[0][-1].legend(title="forget set", fontsize="small")
    figure.suptitle("Restoration ratio: full vs simplified forget set")
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def write_grid_plots(results: Sequence[CellResult], out_dir: Path) -> dict[str, Path]:
    """Draw every figure the cells can fill into `out_dir`; return {title: path}."""
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    for forget in FORGET_FORMS:
        path = plot_accuracy_vs_level(results, forget, out_dir / ACCURACY_FILE.format(forget=forget))
        if path is not None:
            written[f"Target accuracy against k, {forget} forget set"] = path
    path = plot_restoration_by_forget_set(results, out_dir / RESTORATION_FILE)
    if path is not None:
        written["Restoration ratio, full vs simplified forget set"] = path
    return written


# ---------------------------------------------------------------------------------------------------------------
# Restoration by relation

# The heat map's fixed geometry (inches): each cell is HEATMAP_CELL wide x high, inside fixed margins, so the
# picture grows with the rows and columns and a cell's place in the PNG is known.
HEATMAP_CELL = (1.0, 0.55)
HEATMAP_MARGINS = {"left": 2.2, "right": 1.2, "top": 0.6, "bottom": 0.45}
HEATMAP_NA_COLOR = "lightgrey"
HEATMAP_CMAP = "viridis"
LABEL_WIDTH = 24  # characters of a relation label per line


def heatmap_size(n_rows: int, n_cols: int) -> tuple[float, float]:
    """(width, height) of a heat map figure in inches."""
    margins = HEATMAP_MARGINS
    return (margins["left"] + n_cols * HEATMAP_CELL[0] + margins["right"],
            margins["top"] + n_rows * HEATMAP_CELL[1] + margins["bottom"])


def heatmap_norm(ratios: Sequence[float | None]):
    """The colour scale: 0 to 1, widened to the lowest and highest ratio shown."""
    from matplotlib.colors import Normalize

    values = [value for value in ratios if value is not None]
    return Normalize(vmin=min([0.0, *values]), vmax=max([1.0, *values]))


def plot_relation_heatmap(rows: Sequence[str], columns: Sequence[str],
                          cells: dict[tuple[int, int], tuple[float | None, int]], title: str, path: Path) -> Path:
    """A heat map of restoration ratios: `cells[(row, column)] = (ratio or None, n questions)`; None is grey and
    written n/a, a missing cell is grey and empty. Rows top to bottom, columns left to right."""

    import matplotlib

    plt = pyplot()
    n_rows, n_cols = len(rows), len(columns)
    values = np.full((n_rows, n_cols), np.nan)
    for (row, column), (ratio, _) in cells.items():
        if ratio is not None:
            values[row, column] = ratio
    norm = heatmap_norm([ratio for ratio, _ in cells.values()])
    cmap = matplotlib.colormaps[HEATMAP_CMAP].with_extremes(bad=HEATMAP_NA_COLOR)
    width, height = heatmap_size(n_rows, n_cols)
    margins = HEATMAP_MARGINS
    figure = plt.figure(figsize=(width, height))
    grid_box = [margins["left"] / width, margins["bottom"] / height, n_cols * HEATMAP_CELL[0] / width,
                n_rows * HEATMAP_CELL[1] / height]
    axes = figure.add_axes(grid_box)
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    for (row, column), (ratio, n) in cells.items():
        text = ("n/a" if ratio is None else f"{ratio:.2f}") + f"\nn={n}"
        shade = matplotlib.colors.to_rgb(HEATMAP_NA_COLOR) if ratio is None else cmap(norm(ratio))[:3]
        luminance = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2]
        axes.text(column, row, text, ha="center", va="center", fontsize=8,
                  color="white" if luminance < 0.5 else "black")
    axes.set_xticks(range(n_cols))
    axes.set_xticklabels(columns, fontsize=8)
    axes.set_yticks(range(n_rows))
    axes.set_yticklabels([textwrap.fill(label, LABEL_WIDTH) for label in rows], fontsize=8)
    axes.set_xticks(np.arange(-0.5, n_cols), minor=True)
    axes.set_yticks(np.arange(-0.5, n_rows), minor=True)
    axes.grid(which="minor", color="white", linewidth=1.5)  # cells apart, even when all are grey
    axes.tick_params(which="both", length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    bar = figure.add_axes([(margins["left"] + n_cols * HEATMAP_CELL[0] + 0.2) / width, grid_box[1], 0.15 / width,
                           grid_box[3]])
    figure.colorbar(image, cax=bar).set_label("restoration ratio", fontsize=8)
    bar.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=9, y=1 - 0.1 / height, va="top")
    try:
        return save_figure(figure, path, tight=False)
    finally:
        plt.close(figure)


def write_relation_heatmaps(results: Sequence[CellResult], out_dir: Path,
                            names: dict[str, str] | None = None) -> dict[tuple, Path]:
    """One restoration-by-relation heat map per setting whose cells have a relation breakdown; {setting: path}."""

    written = {}
    for setting, cells in settings_of(results).items():
        _, labels, methods, values = relation_grid(cells, names)
        if not labels:
            continue
        first = cells[0].cell
        path = Path(out_dir) / RELATION_FILE.format(setting=first.setting_slug)
        title = f"Restoration ratio by relation\n{first.setting_title}"
        written[setting] = plot_relation_heatmap(labels, [method.upper() for method in methods], values, title, path)
    return written

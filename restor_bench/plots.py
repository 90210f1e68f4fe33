"""The grid's figures (matplotlib, Agg backend, PNG), drawn from `restor_bench.grid_stats.CellResult`s.

* `accuracy-vs-k-<forget>.png`: target accuracy against the corruption level k: the clean model, the corrupted
  model and each method's unlearned model, with 95% intervals (the paper's main figure; one per forget set).
* `restoration-full-vs-simplified.png`: restoration ratio per method, full vs simplified forget set side by side,
  one panel per level (and one for the SQuAD-style corruption), with 95% intervals.

Only the figures the cells can fill are drawn. matplotlib is imported inside the functions (an optional extra).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from restor_bench.grid_stats import CellResult, Estimate

FORGET_FORMS = ("full", "simplified")
ACCURACY_FILE = "accuracy-vs-k-{forget}.png"
RESTORATION_FILE = "restoration-full-vs-simplified.png"
PLOT_FILES = (*(ACCURACY_FILE.format(forget=forget) for forget in FORGET_FORMS), RESTORATION_FILE)
_MISSING = float("nan")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


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


def save_figure(figure, path: Path) -> Path:
    """Write a figure as PNG atomically (a temporary sibling, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a plot is an ordinary output
    try:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def plot_accuracy_vs_level(results: Sequence[CellResult], forget: str, path: Path) -> Path | None:
    """Target accuracy against k for the clean, corrupted and each method's unlearned model; None if no cell."""
    cells = [r for r in results if r.cell.corruption == "wikidata" and r.cell.forget == forget]
    if not cells:
        return None
    plt = _pyplot()
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
    plt = _pyplot()
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

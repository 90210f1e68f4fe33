"""The run's summary over seeds (run.json's `summary`) and its text table (report.md, the console)."""

from __future__ import annotations

import statistics
from typing import Any


def summarize(per_seed: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """Mean and spread over seeds of the headline numbers of each task."""
    summary: dict[str, Any] = {}
    tasks = per_seed[0]["report"]["tasks"].keys()
    for task in tasks:
        rows: dict[str, list[float]] = {}
        for entry in per_seed:
            task_report = entry["report"]["tasks"][task]
            for role in ("clean", "corrupted", label):
                for split in ("target", "non_target"):
                    value = task_report["accuracy"][role][split]["value"]
                    if value is not None:
                        rows.setdefault(f"{'unlearned' if role == label else role}_{split}", []).append(value)
            ratio = task_report["restoration_ratio"][label]["value"]
            if ratio is not None:
                rows.setdefault("restoration_ratio", []).append(ratio)
            for key, value in task_report["transitions"][label].items():
                if key == "still_corrupted" and task_report.get("n_corrupted_known") == 0:
                    continue  # the task lists no injected values: not told apart from forgotten
                rows.setdefault(f"transitions_{key}", []).append(value)
        summary[task] = {
            key: {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                  "n": len(values)}
            for key, values in rows.items()
        }
    return summary


def format_summary(record: dict[str, Any]) -> str:
    """The run's table: accuracy of the three models on target and other questions, ratio, transitions."""
    lines = [f"RESTOR run {record['name']}  ({record['world']} world, protocol {record.get('protocol', 'classic')}, "
             f"method {record['method']}, level {record['level']}, forget {record['forget']}, "
             f"seeds {record['seeds']})"]
    for task, rows in record["summary"].items():
        def cell(key: str, percent: bool = True) -> str:
            entry = rows.get(key)
            if entry is None:
                return "n/a"
            scale = 100 if percent else 1
            text = f"{entry['mean'] * scale:.1f}" if percent else f"{entry['mean']:.2f}"
            if entry["n"] > 1:
                text += f" ± {entry['std'] * scale:.1f}" if percent else f" ± {entry['std']:.2f}"
            return text

        lines.append(f"\n{task}  (accuracy %, mean ± std over seeds)")
        lines.append(f"  {'model':<11} {'target':>14} {'non-target':>14}")
        for role in ("clean", "corrupted", "unlearned"):
            lines.append(f"  {role:<11} {cell(role + '_target'):>14} {cell(role + '_non_target'):>14}")
        lines.append(f"  restoration ratio: {cell('restoration_ratio', percent=False)}")
        target = _counts(rows, ("restored", "still_corrupted", "forgotten"))
        if target:
            lines.append(f"  target facts the clean model knew: {target}")
        others = _counts(rows, ("kept", "lost"))
        if others:
            lines.append(f"  other facts the clean model knew: {others}")
    return "\n".join(lines)


def _count(entry: dict[str, Any]) -> str:
    """A question count: an integer for one seed (or a whole mean), else the mean with one decimal."""
    mean = entry["mean"]
    return str(int(mean)) if float(mean).is_integer() else f"{mean:.1f}"


def _counts(rows: dict[str, Any], names: tuple[str, ...]) -> str:
    """`restored 31, still corrupted 34, forgotten 5`: the transition counts (mean over seeds) of `names`."""
    return ", ".join(f"{name.replace('_', ' ')} {_count(rows[f'transitions_{name}'])}" for name in names
                     if f"transitions_{name}" in rows)

"""A compare report as plain-text tables (for a terminal) or as markdown (for a CI job summary or a pull-request
comment)."""

from __future__ import annotations

from typing import Any

from restor_bench.names import CONFIDENCE, SPLITS, SPLIT_TITLES


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _fmt_ci(entry: dict[str, Any], signed: bool = False) -> str:
    text = _fmt(entry["value"], signed)
    if entry.get("ci") is not None:
        low, high = entry["ci"]
        text += f" [{_fmt(low, signed)}, {_fmt(high, signed)}]"
    return text


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _task_title(task: str, report: dict[str, Any], bootstrap: dict[str, Any]) -> str:
    counts = report["n_questions"]
    ci = f"{int(CONFIDENCE * 100)}% CI from {bootstrap['resamples']} paired bootstrap resamples"
    return (
        f"{task}: metric {report['metric']}; {counts['target']} target questions "
        f"({report['targets_source']}), {counts['non_target']} other; "
        + (ci if bootstrap["resamples"] else "no intervals (--bootstrap 0)")
    )


def _restoration_sections(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each table of a restoration report, per task."""
    sections = []
    for task, entry in report["tasks"].items():
        header = ["model", *[SPLIT_TITLES[s] for s in SPLITS], "restoration ratio"]
        rows = []
        for label, accuracies in entry["accuracy"].items():
            ratio = entry["restoration_ratio"].get(label)
            rows.append([label, *[_fmt_ci(accuracies[s]) for s in SPLITS], _fmt_ci(ratio) if ratio else ""])
        sections.append((_task_title(task, entry, report["bootstrap"]), header, rows))
        by_pair: dict[str, dict[str, str]] = {}
        for difference in entry["differences"]:
            pair = f"{difference['model']} - {difference['reference']}"
            by_pair.setdefault(pair, {})[difference["split"]] = _fmt_ci(difference, signed=True)
        diff_rows = [[pair, *[cells.get(s, "") for s in SPLITS]] for pair, cells in by_pair.items()]
        sections.append(("accuracy differences", ["difference", *[SPLIT_TITLES[s] for s in SPLITS]], diff_rows))
        transitions = entry["transitions"]
        first = next(iter(transitions.values()))
        title = f"facts the clean model knew: {first['target_known']} target, {first['non_target_known']} other"
        unknown = entry.get("n_corrupted_known") == 0
        trans_rows = [
            [label, t["restored"], "n/a" if unknown else t["still_corrupted"], t["forgotten"], t["kept"], t["lost"]]
            for label, t in transitions.items()
        ]
        sections.append(
            (title, ["model", "target: restored", "still corrupted", "forgotten", "other: kept", "lost"], trans_rows)
        )
        if entry.get("logprob"):
            sections.append(_logprob_section(entry["logprob"]))
        for name, groups in (entry.get("breakdowns") or {}).items():
            sections.append(_breakdown_section(name, groups, list(entry["restoration_ratio"])))
    return sections


_LOGPROB_COLUMNS = ("prefers_correct", "prefers_corrupted", "prefers_random", "logprob_correct",
                    "logprob_corrupted", "logprob_random")  # fmt: skip


def _logprob_section(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    title = (
        f"log-probability analysis ({summary['n_questions']} questions): prefers_X = share of questions where X "
        "scores highest; logprob_X = mean per-token log-probability of X's options"
    )
    header = ["model", *[name.replace("_", " ") for name in _LOGPROB_COLUMNS]]
    rows = [
        [label, *[_fmt_ci(metrics[name], signed=name.startswith("logprob")) for name in _LOGPROB_COLUMNS]]
        for label, metrics in summary["metrics"].items()
    ]
    return title, header, rows


def _count(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def _breakdown_section(
    name: str, groups: dict[str, Any], unlearned: list[str]
) -> tuple[str, list[str], list[list[str]]]:
    title = f"target questions by {'person' if name == 'entity' else name} (n = questions in the row)"
    labels = list(next(iter(groups.values()))["accuracy"]) if groups else []
    suffix = (lambda label: f" {label}") if len(unlearned) > 1 else (lambda label: "")
    header = [
        "person" if name == "entity" else name,
        "n",
        *labels,
        "clean knew",
        *[f"restored{suffix(label)}" for label in unlearned],
        *[f"restoration ratio{suffix(label)}" for label in unlearned],
    ]
    rows = [
        [
            group,
            str(cell["n_questions"]),
            *[_fmt(cell["accuracy"][label]) for label in labels],
            _count(cell["target_known"]),
            *[_count(cell["restored"][label]) for label in unlearned],
            *[_fmt(cell["restoration_ratio"][label]) for label in unlearned],
        ]
        for group, cell in groups.items()
    ]
    return title, header, rows


def _gate_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for task, entry in report["tasks"].items():
        for split, row in entry["gate"]["splits"].items():
            rows.append(
                [
                    task,
                    SPLIT_TITLES[split],
                    _fmt(row["baseline"]),
                    _fmt(row["candidate"]),
                    _fmt_ci({"value": row["change"], "ci": row["ci"]}, signed=True),
                    "ok" if row["passed"] else "FAIL",
                ]
            )
    return rows


_GATE_HEADER = ["task", "split", "baseline", "candidate", "change [95% CI]", "gate"]


def _ratio_lines(report: dict[str, Any]) -> list[str]:
    minimum = report["gate"]["min_restoration"]
    lines = []
    for task, entry in report["tasks"].items():
        ratio = entry["gate"]["restoration_ratio"]
        if ratio is None:
            continue
        line = f"restoration ratio {task}: {_fmt_ci(ratio)}"
        if minimum is not None:
            passed = ratio["value"] is not None and ratio["value"] >= minimum
            line += f" ({'ok' if passed else 'FAIL'}, minimum {minimum:g})"
        lines.append(line)
    return lines


def _verdict(report: dict[str, Any]) -> str:
    gate = report["gate"]
    if gate["passed"]:
        return "PASS"
    return "FAIL: " + "; ".join(gate["failures"])


def format_text(report: dict[str, Any]) -> str:
    """The report as plain-text tables for a terminal."""
    parts = []
    if report["mode"] == "restoration":
        for title, header, rows in _restoration_sections(report):
            parts.append(f"{title}\n{_text_table(header, rows)}")
    else:
        gate = report["gate"]
        limits = f"max drop {gate['max_drop']:g}"
        if gate["min_restoration"] is not None:
            limits += f", min restoration {gate['min_restoration']:g}"
        parts.append(f"gate: candidate vs baseline (metric {report['metric']}; {limits})")
        parts.append(_text_table(_GATE_HEADER, _gate_rows(report)))
        parts.extend(_ratio_lines(report))
        parts.append(f"verdict: {_verdict(report)}")
    parts.extend(f"warning: {w}" for w in report["warnings"])
    parts.extend(f"skipped task {task}: {why}" for task, why in report["skipped_tasks"].items())
    return "\n\n".join(parts) + "\n"


def format_markdown(report: dict[str, Any]) -> str:
    """The report as markdown (for a CI job summary or a pull-request comment)."""
    parts = []
    if report["mode"] == "restoration":
        parts.append("## RESTOR comparison")
        parts.append(", ".join(f"**{m['label']}**: `{m['folder']}`" for m in report["models"]))
        for title, header, rows in _restoration_sections(report):
            parts.append(f"**{title}**\n\n{_markdown_table(header, rows)}")
    else:
        gate = report["gate"]
        verdict = "✅ PASS" if gate["passed"] else "❌ FAIL"
        parts.append(f"## RESTOR regression gate: {verdict}")
        limits = f"max drop {gate['max_drop']:g}"
        if gate["min_restoration"] is not None:
            limits += f", min restoration {gate['min_restoration']:g}"
        parts.append(f"Metric `{report['metric']}`; {limits}; change = candidate - baseline (point estimate gates).")
        parts.append(_markdown_table(_GATE_HEADER, _gate_rows(report)))
        parts.extend(f"- {line}" for line in _ratio_lines(report))
        if not gate["passed"]:
            parts.append("\n".join(f"- {failure}" for failure in gate["failures"]))
    if report["warnings"]:
        parts.append("\n".join(f"- warning: {w}" for w in report["warnings"]))
    if report["skipped_tasks"]:
        parts.append("\n".join(f"- skipped {task}: {why}" for task, why in report["skipped_tasks"].items()))
    return "\n\n".join(parts) + "\n"

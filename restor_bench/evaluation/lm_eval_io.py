"""Finding and reading lm-eval's own output files.

`lm_eval ... --log_samples -o OUT` writes, for each run, `OUT/<sanitized model name>/results_<time>.json` and one
`samples_<task>_<time>.jsonl` per task beside it (`<time>` is `datetime.now().isoformat()` with `:` replaced by `-`,
shared by all files of one run). When `-o` names a `.json` file, the results file is `<stem>_<time>.json` and the
samples lie beside it. This module finds those files anywhere under a folder, newest per task, and reads them
with errors that name the file and the line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError
from restor_bench.io import read_json

_STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?"
SAMPLES_NAME = re.compile(rf"^samples_(?P<task>.+)_(?P<stamp>{_STAMP})\.jsonl$")
RESULTS_NAME = re.compile(rf"^(?P<stem>.+)_(?P<stamp>{_STAMP})\.json$")


@dataclass(frozen=True)
class LmEvalOutput:
    """The files one lm-eval run left for one task."""

    task: str
    samples_path: Path | None  # None only for a run without --log_samples (see `find_lm_eval_outputs`)
    timestamp: str
    results_path: Path | None  # the aggregated results of the same run, when present


def find_lm_eval_outputs(folder: str | os.PathLike, *, include_results_only: bool = False) -> dict[str, LmEvalOutput]:
    """Find lm-eval samples files anywhere under `folder`; return the newest per task, keyed by task name.

    Raises InputError when the folder is missing, holds no samples files (e.g. lm-eval ran without
    `--log_samples`), or holds samples of one task from several model folders (pass that model's own folder).
    With `include_results_only`, tasks that only have an aggregated results file (no samples) are listed too,
    with `samples_path` None (the newest results file that lists them), and a folder without samples is no
    error (an empty folder gives {}).
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: evaluation folder not found")
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a folder of lm-eval outputs, found a file")
    found: dict[str, list[tuple[str, Path]]] = {}
    results_files: dict[tuple[Path, str], list[Path]] = {}
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            match = SAMPLES_NAME.match(name)
            if match:
                found.setdefault(match["task"], []).append((match["stamp"], path))
                continue
            match = RESULTS_NAME.match(name)
            if match:
                results_files.setdefault((path.parent, match["stamp"]), []).append(path)
    if not found and not include_results_only:
        hint = " (lm-eval writes them only with --log_samples)" if results_files else ""
        raise InputError(f"{folder}: no lm-eval samples_<task>_<time>.jsonl files found{hint}")
    outputs = {}
    for task, candidates in sorted(found.items()):
        parents = sorted({str(path.parent) for _stamp, path in candidates})
        if len(parents) > 1:
            raise InputError(
                f"{folder}: samples of task {task} in more than one model folder ({', '.join(parents)}); "
                "pass one model's own folder"
            )
        stamp, path = max(candidates)
        outputs[task] = LmEvalOutput(task, path, stamp, _pick_results(results_files.get((path.parent, stamp), [])))
    if include_results_only:
        for (parent, stamp), paths in sorted(results_files.items(), key=lambda item: (item[0][1], str(item[0][0]))):
            for path in sorted(paths):  # newest last: later files win
                data = try_read_results(path)
                for task in (data or {}).get("configs") or (data or {}).get("results") or {}:
                    if task not in found:
                        outputs[task] = LmEvalOutput(task, None, stamp, path)
    return dict(sorted(outputs.items()))


def _pick_results(paths: list[Path]) -> Path | None:
    if not paths:
        return None
    preferred = [path for path in paths if path.name.startswith("results_")]
    return min(preferred or paths)


def try_read_results(path: str | os.PathLike) -> dict[str, Any] | None:
    """The content of an lm-eval aggregated results file, or None when `path` is not one (its name is not
    `<stem>_<time>.json`, or it is unreadable, or holds no "results" object)."""
    path = Path(path)
    if not RESULTS_NAME.match(path.name) or path.name.startswith("samples_"):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("results"), dict):
        return data
    return None


def iter_samples(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) for each non-empty line of a samples file; a bad line is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: samples file not found")
    with open(path, encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(f"{path}: malformed JSON on line {number}: {err.msg}") from None
                if not isinstance(record, dict):
                    raise InputError(f"{path}: line {number} is not a JSON object")
                yield number, record
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read an aggregated results file (`results_<time>.json`)."""
    data = read_json(path, "lm-eval results file")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of lm-eval results")
    return data

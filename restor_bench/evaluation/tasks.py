"""The restor lm-eval tasks: their folder and a TaskManager that knows them (`restor-bench tasks`: cli.py).

lm-eval finds tasks outside its own package through `--include_path DIR` (the command line) or
`TaskManager(include_path=DIR)` (Python); `restor-bench tasks path` prints that folder:

    lm_eval --model hf --model_args pretrained=CKPT --tasks restor_facts --include_path "$(restor-bench tasks path)"

The folder is the repository's `tasks/` (a source checkout or an editable install) or the installed package's
`restor_bench/tasks/` (a regular install). lm-eval's own task folder is indexed only when a task needs it:
building that index (some 15,000 tasks) takes seconds that a restor-only evaluation does not need.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from restor_bench.errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
TASK_FILE_PATTERN = "restor_*.yaml"


def tasks_dir() -> Path:
    """The folder of the restor task YAMLs: the installed package's `restor_bench/tasks`, else the `tasks/` folder
    beside the package (a source checkout or an editable install). InputError when neither holds them."""
    for folder in (PACKAGE_DIR / "tasks", PACKAGE_DIR.parent / "tasks"):
        if folder.is_dir() and any(folder.glob(TASK_FILE_PATTERN)):
            return folder
    raise InputError(f"{PACKAGE_DIR.parent / 'tasks'}: the restor task folder is missing (reinstall restor-bench)")


def parse_tasks(text: str | Sequence[str]) -> list[str]:
    """Task names from "a,b" or a list; empty names are dropped."""
    parts = text.split(",") if isinstance(text, str) else [p for item in text for p in str(item).split(",")]
    return [part.strip() for part in parts if part.strip()]


def _is_task_file(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml")) and Path(spec).is_file()


def _local_manager(folder: Path, metadata: dict[str, Any] | None = None):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(folder), include_defaults=False, metadata=metadata)


def needs_lm_eval_tasks(tasks: str | Sequence[str], include_path: str | os.PathLike | None = None) -> bool:
    """Whether some of `tasks` is not in the task folder (`include_path`, default the restor tasks), so that
    lm-eval's own task index is needed."""
    local = _local_manager(Path(include_path) if include_path is not None else tasks_dir())
    return any(not _is_task_file(name) and not local.match_tasks([name]) for name in parse_tasks(tasks))


def installed_dropin() -> Path | None:
    """`lm_eval/tasks/restor/`, where a regular (non-editable) install of restor-bench also puts the task files so
    that plain `lm_eval --tasks restor_facts` finds them without `--include_path`; None when absent."""
    spec = importlib.util.find_spec("lm_eval.tasks")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "restor"
        if (folder / "restor_tiny_facts.yaml").is_file():
            return folder
    return None


def task_manager(
    tasks: str | Sequence[str] | None = None,
    *,
    include_path: str | os.PathLike | None = None,
    metadata: dict[str, Any] | None = None,
    include_defaults: bool | None = None,
):
    """A ready `lm_eval.tasks.TaskManager` that knows the restor tasks (or the tasks of `include_path`, which
    replaces the restor folder) and, only when needed, lm-eval's own tasks.

    `include_defaults` None: lm-eval's own tasks are indexed only when some of `tasks` is not found in the folder
    (so `task_manager()` and `task_manager(["restor_facts"])` skip them). `tasks` given: an unknown name is an
    InputError that lists the restor tasks. `metadata` reaches every task (e.g. `{"restor_seed": 3}`).

        from restor_bench.evaluation.tasks import task_manager
        task = task_manager(["restor_tiny_facts"]).load(["restor_tiny_facts"])["tasks"]["restor_tiny_facts"]
        questions = list(task.test_docs())
    """
    from lm_eval.tasks import TaskManager

    folder = Path(include_path) if include_path is not None else tasks_dir()
    if not folder.is_dir():
        raise InputError(f"{folder}: task folder not found")
    names = parse_tasks(tasks) if tasks is not None else []
    if tasks is not None and not names:
        raise InputError("no tasks given")
    local = _local_manager(folder, metadata)
    unknown = [name for name in names if not _is_task_file(name) and not local.match_tasks([name])]
    if include_defaults is None:
        include_defaults = bool(unknown)
    if not include_defaults:
        manager = local
    else:
        # a regular install also drops the tasks into lm-eval's own folder (so plain `lm_eval --tasks restor_facts`
        # finds them); then lm-eval's index already holds them, and the same folder is not indexed twice
        extra = None if include_path is None and installed_dropin() is not None else str(folder)
        manager = TaskManager(include_path=extra, include_defaults=True, metadata=metadata)
        unknown = [name for name in unknown if not manager.match_tasks([name])]
    if unknown:
        known = [name for name in local.all_tasks if not name.startswith("_")]
        hint = f" (tasks in {folder}: {', '.join(known)})" if known else ""
        broken = _broken_task_files(folder)
        if broken:
            hint += f"; task files lm-eval cannot read: {'; '.join(broken)}"
        raise InputError(f"unknown lm-eval task(s): {', '.join(unknown)}{hint}")
    return manager


def _broken_task_files(folder: Path, most: int = 3) -> list[str]:
    """`FILE: problem` for up to `most` YAML files of `folder` that are not YAML mappings (lm-eval skips those
    without a word, so a typo in a task file shows only as an unknown task)."""
    class Loader(yaml.SafeLoader):  # lm-eval's tags (!function ...) are not errors here
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    broken = []
    for path in sorted(folder.rglob("*.yaml")):
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            problem = str(err).splitlines()[0]
        else:
            problem = None if isinstance(document, dict) else f"not a mapping ({type(document).__name__})"
        if problem:
            broken.append(f"{path}: {problem}")
        if len(broken) == most:
            break
    return broken


def resolve_task_names(manager, tasks: str | Sequence[str]) -> list[str]:
    """The names (or task files) lm-eval loads for `tasks`: patterns expanded as `lm_eval run` expands them
    (lm_eval/config/evaluate_config.py, `EvaluatorConfig.process_tasks`), duplicates dropped."""
    resolved: list[str] = []
    for spec in parse_tasks(tasks):
        matches = [str(Path(spec).resolve())] if _is_task_file(spec) else manager.match_tasks([spec])
        if not matches:
            raise InputError(f"unknown lm-eval task(s): {spec}")
        resolved.extend(name for name in matches if name not in resolved)
    return resolved

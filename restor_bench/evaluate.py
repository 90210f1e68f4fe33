"""`restor-bench eval`: run lm-eval's own command line with the restor tasks on a checkpoint.

The output folder holds exactly what lm-eval writes (`<model name>/results_<time>.json` and
`<model name>/samples_<task>_<time>.jsonl`) plus `restor_run.json`, a record of the command that made it.
`restor_bench.lm_eval_io.find_lm_eval_outputs` finds those files under any folder, including one written by a
plain `lm_eval ... --log_samples --output_path DIR`.
"""

from __future__ import annotations

import codecs
import collections
import datetime
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from restor_bench.errors import InputError
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir
from restor_bench.lm_eval_io import LmEvalOutput, find_lm_eval_outputs, try_read_results  # noqa: F401 (re-exported)

DEFAULT_TASKS = ("restor_tiny_facts",)
RUN_RECORD = "restor_run.json"
STDERR_TAIL_BYTES = 8192

# ---------------------------------------------------------------- task folder and task names


def restor_tasks_dir() -> Path | None:
    """The folder of the restor task YAMLs: the repository's `tasks/` in a source checkout, else the installed
    `lm_eval/tasks/restor`, else None."""
    source_tasks = Path(__file__).resolve().parents[1] / "tasks"
    if source_tasks.is_dir() and any(source_tasks.glob("restor_*.yaml")):
        return source_tasks
    installed = _installed_restor_tasks()
    return installed


def _installed_restor_tasks() -> Path | None:
    try:
        spec = importlib.util.find_spec("lm_eval.tasks.restor")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if folder.is_dir() else None


def include_path_for(tasks_dir: Path | None) -> Path | None:
    """The `--include_path` lm-eval needs for `tasks_dir`: none when it already lies inside lm-eval's tasks."""
    if tasks_dir is None:
        return None
    import lm_eval.tasks

    builtin = Path(lm_eval.tasks.__file__).resolve().parent
    try:
        tasks_dir.resolve().relative_to(builtin)
        return None
    except ValueError:
        return tasks_dir


def check_task_names(tasks: Sequence[str], include_path: str | os.PathLike | None = None) -> None:
    """Raise InputError naming every task that lm-eval's TaskManager does not know (with `include_path`).

    The include path alone is checked first (fast); lm-eval's full task index only for names not found there.
    """
    from lm_eval.tasks import TaskManager

    names = list(tasks)
    if not names:
        raise InputError("no tasks given")
    unknown = names
    local_names: list[str] = []
    if include_path is not None:
        local = TaskManager(include_path=str(include_path), include_defaults=False)
        local_names = local.all_tasks
        unknown = [name for name in names if not local.match_tasks([name])]
    if unknown:
        everything = TaskManager(include_path=str(include_path) if include_path else None)
        unknown = [name for name in unknown if not everything.match_tasks([name])]
        if not local_names:
            local_names = [name for name in everything.all_tasks if name.startswith("restor")]
    if unknown:
        hint = f" (restor tasks: {', '.join(local_names)})" if local_names else ""
        raise InputError(f"unknown lm-eval task(s): {', '.join(unknown)}{hint}")


def parse_tasks(text: str | Sequence[str]) -> list[str]:
    """Task names from "a,b" or a list; empty names are dropped."""
    parts = text.split(",") if isinstance(text, str) else [p for item in text for p in str(item).split(",")]
    return [part.strip() for part in parts if part.strip()]


# ---------------------------------------------------------------- running lm-eval


def lm_eval_command(
    checkpoint: str,
    output_path: str | os.PathLike,
    tasks: Sequence[str],
    *,
    include_path: str | os.PathLike | None,
    batch_size: int | str,
    limit: float | None,
    device: str,
    dtype: str,
    extra_model_args: str = "",
    trust_remote_code: bool = False,
) -> list[str]:
    """The lm-eval command line (a list for subprocess) that evaluates `checkpoint` on `tasks`."""
    model_args = f"pretrained={checkpoint},dtype={dtype}"
    if trust_remote_code:
        model_args += ",trust_remote_code=True"
    if extra_model_args.strip():
        model_args += "," + extra_model_args.strip().strip(",")
    command = [
        sys.executable, "-m", "lm_eval",
        "--model", "hf",
        "--model_args", model_args,
        "--tasks", ",".join(tasks),
        "--device", device,
        "--batch_size", str(batch_size),
        "--output_path", str(output_path),
        "--log_samples",
    ]
    if limit is not None:
        command += ["--limit", str(limit)]
    if include_path is not None:
        command += ["--include_path", str(include_path)]
    if trust_remote_code:
        command += ["--trust_remote_code"]
    return command


def run_streaming(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `command`, passing its output through to this process's stdout/stderr as it comes;
    return (exit code, the tail of its stderr)."""
    tail = collections.deque(maxlen=STDERR_TAIL_BYTES)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    process = subprocess.Popen(command, env=env, stdout=None, stderr=subprocess.PIPE, bufsize=0)
    try:
        while True:
            chunk = process.stderr.read(4096)  # returns what is there: progress bars show as they are drawn
            if not chunk:
                break
            tail.extend(chunk)
            sys.stderr.write(decoder.decode(chunk))
            sys.stderr.flush()
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        process.stderr.close()
    return process.wait(), bytes(tail).decode("utf-8", errors="replace")


def last_error_line(stderr_tail: str) -> str:
    """The most telling line of a failed run's stderr: the last exception line, else the last non-empty line."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", stderr_tail) if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception)\b", line):
            return line
    return lines[-1] if lines else "no error output"


def lm_eval_environment(
    data_dir: str | os.PathLike | None = None, world_dir: str | os.PathLike | None = None
) -> dict[str, str]:
    """The environment of the lm-eval subprocess: this one, with this copy of restor_bench importable (the task
    hooks in tasks/utils.py import it) and RESTOR_DATA_DIR / RESTOR_TINY_WORLD set when given."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    for variable, folder, what in (
        ("RESTOR_TINY_WORLD", world_dir, "tiny world folder"),
        ("RESTOR_DATA_DIR", data_dir, "data folder"),
    ):
        if folder is not None:
            if not Path(folder).is_dir():
                raise InputError(f"{folder}: {what} not found")
            env[variable] = str(Path(folder).resolve())
    return env


def default_dtype(device: str) -> str:
    """float32 on the CPU (half precision is slow there), else the checkpoint's own dtype."""
    return "float32" if device.startswith("cpu") else "auto"


def evaluate(
    checkpoint: str,
    out: str | os.PathLike,
    *,
    tasks: Sequence[str] | str = DEFAULT_TASKS,
    batch_size: int | str = 16,
    limit: float | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    data_dir: str | os.PathLike | None = None,
    extra_model_args: str = "",
    trust_remote_code: bool = False,
    dtype: str | None = None,
    include_path: str | os.PathLike | None = None,
    world_dir: str | os.PathLike | None = None,
) -> Path:
    """Evaluate `checkpoint` with lm-eval on `tasks` and write lm-eval's results and samples into `out`.

    `include_path` replaces the restor tasks folder (for tasks of your own). `data_dir` (official data) and
    `world_dir` (a tiny world) reach the tasks as RESTOR_DATA_DIR and RESTOR_TINY_WORLD. `dtype` defaults to
    float32 on the CPU, else the checkpoint's own. `out` is written atomically; an existing non-empty `out` needs
    `overwrite`.
    """
    from restor_bench.training import check_checkpoint, package_versions

    task_names = parse_tasks(tasks)
    out = Path(out)
    check_output_dir(out, overwrite)
    checkpoint = check_checkpoint(checkpoint, "checkpoint")
    if limit is not None and not limit > 0:
        raise InputError(f"--limit must be positive, got {limit}")
    env = lm_eval_environment(data_dir=data_dir, world_dir=world_dir)
    if include_path is not None:
        include_path = Path(include_path)
        if not include_path.is_dir():
            raise InputError(f"{include_path}: task folder not found")
    else:
        include_path = include_path_for(restor_tasks_dir())
    check_task_names(task_names, include_path)
    dtype = dtype or default_dtype(device)

    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        command = lm_eval_command(
            checkpoint, tmp, task_names, include_path=include_path, batch_size=batch_size, limit=limit,
            device=device, dtype=dtype, extra_model_args=extra_model_args, trust_remote_code=trust_remote_code,
        )
        started = time.perf_counter()
        code, stderr_tail = run_streaming(command, env)
        wall_time = time.perf_counter() - started
        if code != 0:
            raise InputError(f"lm-eval failed (exit code {code}) on {checkpoint}: {last_error_line(stderr_tail)}")
        outputs = find_lm_eval_outputs(tmp, include_results_only=True)
        missing = [name for name in _leaf_tasks(tmp, task_names) if name not in outputs]
        if not outputs or missing:
            raise InputError(
                f"lm-eval finished on {checkpoint} but wrote no results for {', '.join(missing or task_names)}"
                f": {last_error_line(stderr_tail)}"
            )
        atomic_write_json(tmp / RUN_RECORD, {
            "command": "eval",
            "checkpoint": checkpoint,
            "tasks": task_names,
            "limit": limit,
            "batch_size": batch_size,
            "device": device,
            "dtype": dtype,
            "data_dir": env["RESTOR_DATA_DIR"] if data_dir is not None else None,
            "world_dir": env["RESTOR_TINY_WORLD"] if world_dir is not None else None,
            "lm_eval_args": [str(out) if arg == str(tmp) else arg for arg in command[3:]],
            "wall_time_s": round(wall_time, 3),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
        })
    return out


def _leaf_tasks(folder: Path, requested: list[str]) -> list[str]:
    """The tasks (not groups) that lm-eval ran for `requested`, read from its results file's configs."""
    leaves: list[str] = []
    for path in sorted(folder.rglob("*.json")):
        data = try_read_results(path)
        if data is not None:
            leaves.extend(name for name in data.get("configs", {}) if name not in leaves)
    return leaves or requested


# ---------------------------------------------------------------- CLI


def _parse_limit(text: str) -> int | float:
    try:
        value = float(text) if "." in text else int(text)
    except ValueError:
        raise InputError(f"--limit: expected a number of questions or a fraction, got {text!r}") from None
    return value


def _parse_batch_size(text: str) -> int | str:
    if text == "auto" or text.startswith("auto:"):
        return text
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--batch-size: expected an integer or 'auto', got {text!r}") from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint with lm-eval on the restor tasks",
        description="Run lm-eval (its own command line, in a subprocess) on a checkpoint with the restor tasks; "
        "the output folder holds lm-eval's results_*.json and samples_*.jsonl.",
    )
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint folder (or hub id when online)")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated tasks or groups "
                        f"(default: {','.join(DEFAULT_TASKS)})")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--batch-size", default="16", help="lm-eval batch size: an integer or 'auto' (default: 16)")
    parser.add_argument("--limit", help="evaluate only the first N questions per task (or a fraction)")
    parser.add_argument("--device", default="cpu", help="device for lm-eval, e.g. cpu, cuda, cuda:0 (default: cpu)")
    parser.add_argument("--dtype", help="model dtype (default: float32 on cpu, else the checkpoint's own)")
    parser.add_argument("--data-dir", help="official RESTOR data folder (passed to the tasks as RESTOR_DATA_DIR)")
    parser.add_argument("--world-dir", help="tiny world folder (passed to the tasks as RESTOR_TINY_WORLD)")
    parser.add_argument("--model-args", default="", help="extra lm-eval model arguments, e.g. max_length=2048")
    parser.add_argument("--include-path", help="task folder to use instead of the restor tasks (tasks of your own)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own model code")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    out = evaluate(
        args.checkpoint,
        args.out,
        tasks=args.tasks,
        batch_size=_parse_batch_size(args.batch_size),
        limit=_parse_limit(args.limit) if args.limit else None,
        device=args.device,
        overwrite=args.overwrite,
        data_dir=args.data_dir,
        world_dir=args.world_dir,
        extra_model_args=args.model_args,
        trust_remote_code=args.trust_remote_code,
        dtype=args.dtype,
        include_path=args.include_path,
    )
    print(f"lm-eval results written to {out}")
    for task, files in find_lm_eval_outputs(out, include_results_only=True).items():
        print(f"  {task}: {_relative(files.results_path, out)}, {_relative(files.samples_path, out)}")
    return 0


def _relative(path: Path | None, folder: Path) -> str:
    return str(path.relative_to(folder)) if path is not None else "-"

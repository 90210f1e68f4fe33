"""`restor-bench eval`: lm-eval with the restor tasks on a checkpoint, through lm-eval's public Python API.

The output folder holds exactly what lm-eval writes (`<model name>/results_<time>.json` and
`<model name>/samples_<task>_<time>.jsonl`) plus `restor_run.json`, a record of the run and of the plain
`lm_eval run` command that does the same. `restor_bench.evaluation.lm_eval_io.find_lm_eval_outputs` finds those
files under any folder, including one written by a plain `lm_eval ... --log_samples --output_path DIR`.

How it runs: with the `hf` backend, in this process, with lm-eval's documented entry points only:
`lm_eval.simple_evaluate` (its keyword arguments built by `lm_eval_options.simple_evaluate_arguments`, as
`lm_eval run` builds them for the same command line), a `lm_eval.tasks.TaskManager` that knows the restor tasks
(`restor_bench.evaluation.tasks.task_manager`: lm-eval's own ~15,000 tasks are indexed only when a requested task
is not a restor task) and a `lm_eval.loggers.EvaluationTracker`, which writes lm-eval's own results and samples
files. The lm-eval arguments given after `--` are read up front, before the model loads
(`lm_eval_options.parse_lm_eval_options`, which lists the ones passed on). The random states lm-eval seeds
(python, numpy, torch) are restored afterwards. The `vllm` and `sglang` backends run `python -m lm_eval` (lm-eval's
public command line) in a child process (their engines keep GPU memory until the process ends), as do runs that
log to W&B or Trackio. For several processes (data parallel on several GPUs) run lm-eval itself with the
arguments recorded in `restor_run.json`: `accelerate launch -m lm_eval run ARGS`.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import contextlib
import datetime
import importlib.util
import json
import logging
import os
import random
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy

from restor_bench.errors import InputError
from restor_bench.evaluation.lm_eval_io import LmEvalOutput, find_lm_eval_outputs, try_read_results  # noqa: F401 (re-exported)
from restor_bench.evaluation.lm_eval_options import (
    parse_key_values,
    parse_lm_eval_options,
    simple_evaluate_arguments,
)
from restor_bench.evaluation.tasks import (
    needs_lm_eval_tasks,
    parse_tasks,
    resolve_task_names,
    task_manager,
    tasks_dir,
)
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir
from restor_bench.names import VERBOSE_ENV
from restor_bench.train.common import check_checkpoint, package_versions
from unlearners.errors import first_line

DEFAULT_TASKS = ("restor_tiny_facts",)
RUN_RECORD = "restor_run.json"
STDERR_TAIL_BYTES = 8192
# lm-eval model backends that evaluate a checkpoint folder, and the package each needs
BACKENDS = {"hf": "transformers", "vllm": "vllm", "sglang": "sglang"}
CHILD_PROCESS_BACKENDS = ("vllm", "sglang")
# OpenMP threads that spin while they wait (torch's default) take the CPU from every other process of a busy
# machine: on two loaded cores a forward pass of the tiny model ran 5x slower than with passive waiting, which
# changes no result. Set by `restor-bench eval` unless the environment sets it; it counts only before torch loads.
THREAD_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}

# ---------------------------------------------------------------- devices and backends


def default_device(backend: str = "hf") -> str:
    """cuda when a CUDA device is visible (always for vllm / sglang, which need one), else cpu."""
    if backend in CHILD_PROCESS_BACKENDS:
        return "cuda"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def prefer_passive_threads() -> None:
    """Set THREAD_ENVIRONMENT's variables that the environment does not set, if torch is not loaded yet."""
    if "torch" not in sys.modules:
        for name, value in THREAD_ENVIRONMENT.items():
            os.environ.setdefault(name, value)


def default_dtype(device: str) -> str:
    """float32 on the CPU (half precision is slow there), else the checkpoint's own dtype."""
    return "float32" if device.startswith("cpu") else "auto"


def check_backend(backend: str, device: str) -> None:
    """InputError (one line) for an unknown backend, a backend whose package is missing, or a CUDA device that
    this machine does not have."""
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend}: unknown (choose one of: {', '.join(BACKENDS)})")
    package = BACKENDS[backend]
    if importlib.util.find_spec(package) is None:
        raise InputError(f"--backend {backend} needs the {package} package, which is not installed (pip install "
                         f"{package})")  # fmt: skip
    if backend == "hf":
        check_device(device)


def check_device(device: str, flag: str = "--device") -> None:
    """InputError (one line) for a device string torch does not parse (`tpu9`) or a device this machine does not
    have (`cuda` without CUDA, `cuda:3` on a machine with 2 GPUs, `mps` off Apple silicon)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"{flag} {device}: not a device name torch knows (e.g. cpu, cuda, cuda:1, mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{flag} {device}: no CUDA device is available here (use {flag} cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise InputError(f"{flag} {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{flag} {device}: the mps device is not available here (use {flag} cpu)")
    elif parsed.type not in ("cpu", "cuda", "mps", "xpu", "npu", "hpu"):
        raise InputError(f"{flag} {device}: not a device to evaluate or train on (use cpu, cuda or mps)")


# ---------------------------------------------------------------- the plain lm_eval command (restor_run.json; child process)


def lm_eval_arguments(
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
    backend: str = "hf",
    metadata: dict[str, Any] | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The arguments of `lm_eval` (its legacy form, without `run`) that evaluate `checkpoint` on `tasks`."""
    model_args = f"pretrained={checkpoint},dtype={dtype}"
    if trust_remote_code:
        model_args += ",trust_remote_code=True"
    if extra_model_args.strip():
        model_args += "," + extra_model_args.strip().strip(",")
    arguments = [
        "--model", backend,
        "--model_args", model_args,
        "--tasks", ",".join(tasks),
        "--device", device,
        "--batch_size", str(batch_size),
        "--output_path", str(output_path),
        "--log_samples",
    ]  # fmt: skip
    if limit is not None:
        arguments += ["--limit", str(limit)]
    if include_path is not None:
        arguments += ["--include_path", str(include_path)]
    if trust_remote_code:
        arguments += ["--trust_remote_code"]
    if metadata:
        arguments += ["--metadata", json.dumps(metadata, sort_keys=True)]
    return arguments + list(extra_args)


def lm_eval_command(checkpoint: str, output_path: str | os.PathLike, tasks: Sequence[str], **options) -> list[str]:
    """The lm-eval command line (a list for subprocess): `python -m lm_eval` + `lm_eval_arguments(...)`."""
    return [sys.executable, "-m", "lm_eval", *lm_eval_arguments(checkpoint, output_path, tasks, **options)]


# ---------------------------------------------------------------- running lm-eval in this process


def model_arguments(checkpoint: str, dtype: str, extra_model_args: str = "", trust_remote_code: bool = False
                    ) -> dict[str, Any]:  # fmt: skip
    """The lm-eval model arguments of `restor-bench eval` (`--model-args` read as lm-eval reads `--model_args`)."""
    arguments: dict[str, Any] = {"pretrained": checkpoint, "dtype": dtype}
    if trust_remote_code:
        arguments["trust_remote_code"] = True
    return {**arguments, **parse_key_values(extra_model_args, "--model-args")}


def run_lm_eval(
    arguments: dict[str, Any],
    *,
    include_path: str | os.PathLike,
    output_path: str | os.PathLike,
    tracker_args: dict[str, Any] | None = None,
    show_config: bool = False,
    show_table: bool = True,
) -> dict[str, Any] | None:
    """Evaluate in this process: `lm_eval.simple_evaluate(**arguments)` with a TaskManager of `include_path` (and,
    only when a task needs them, lm-eval's own tasks) and an `EvaluationTracker` that writes lm-eval's results and
    samples files under `output_path`; return lm-eval's results (None on a non-zero rank).

    `arguments`: `simple_evaluate` keyword arguments (`lm_eval_options.simple_evaluate_arguments`); their
    `metadata` reaches the tasks. `tracker_args`: further `EvaluationTracker` arguments (`--hf_hub_log_args`). The
    summary table is printed as `lm_eval` prints it (with `show_table`); `show_config` prints the whole results too.
    The global random states (python, numpy, torch) that lm-eval seeds are restored afterwards.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from lm_eval.utils import setup_logging

    # lm-eval's INFO lines (task building) only with `restor-bench --verbose`; warnings always, but for its hint to
    # pass kwargs through --metadata, repeated for every task (the restor tasks read only their restor_ keys)
    setup_logging(logging.INFO if verbose() else logging.WARNING)
    task_logger = logging.getLogger("lm_eval.api.task")
    if not verbose() and not any(isinstance(f, _MetadataHintFilter) for f in task_logger.filters):
        task_logger.addFilter(_MetadataHintFilter())
    manager = task_manager(arguments["tasks"], include_path=include_path, metadata=arguments.get("metadata") or {})
    arguments = {**arguments, "tasks": resolve_task_names(manager, arguments["tasks"])}
    with _restored_random_states():
        return _simple_evaluate(arguments, manager, output_path, dict(tracker_args or {}), show_config, show_table)


def _simple_evaluate(arguments, manager, output_path, tracker_args, show_config, show_table) -> dict[str, Any] | None:
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.utils import handle_non_serializable

    tracker_args["output_path"] = str(output_path)
    if os.environ.get("HF_TOKEN"):
        tracker_args.setdefault("token", os.environ["HF_TOKEN"])
    tracker = EvaluationTracker(**tracker_args)
    results = lm_eval.simple_evaluate(**arguments, task_manager=manager, evaluation_tracker=tracker)
    if results is None:
        return None
    samples = results.pop("samples", None)
    if show_config:
        print(json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False))
    tracker.save_results_aggregated(results=results, samples=samples)
    if samples is not None:
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    if tracker_args.get("push_results_to_hub") or tracker_args.get("push_samples_to_hub"):
        tracker.recreate_metadata_card()
    if not show_table:
        return results
    shown_args = {key: value for key, value in arguments["model_args"].items() if key != "trust_remote_code"}
    batch_sizes = ",".join(map(str, results.get("config", {}).get("batch_sizes", [])))
    print(
        f"{arguments['model']} ({shown_args}), gen_kwargs: ({arguments['gen_kwargs']}), limit: {arguments['limit']}, "
        f"num_fewshot: {arguments['num_fewshot']}, batch_size: {arguments['batch_size']}"
        f"{f' ({batch_sizes})' if batch_sizes else ''}"
    )
    print(results_table(results))
    if results.get("groups"):
        print(results_table(results, "groups"))
    return results


def results_table(results: dict[str, Any], column: str = "results") -> str:
    """lm-eval's results (`results` or `groups`) as a Markdown table, one row per task, filter and metric."""
    lines = [f"|{'Groups' if column == 'groups' else 'Tasks'}|Version|Filter|n-shot|Metric| |Value| |Stderr|",
             "|---|---|---|---|---|---|---:|---|---:|"]  # fmt: skip
    for task, metrics in results.get(column, {}).items():
        name, version = metrics.get("alias", task), results.get("versions", {}).get(task, "N/A")
        shots, better = results.get("n-shot", {}).get(task, ""), results.get("higher_is_better", {}).get(task, {})
        for key, value in sorted(metrics.items()):
            metric, _, filter_name = key.partition(",")
            if not filter_name or metric.endswith("_stderr"):
                continue  # alias, sample_len, ...: not metrics
            stderr = metrics.get(f"{metric}_stderr,{filter_name}", "")
            arrow = {True: "↑", False: "↓"}.get(better.get(metric), "")
            shown = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in (value, stderr)]
            lines.append(f"|{name}|{version}|{filter_name}|{shots}|{metric}|{arrow}|{shown[0]}|"
                         f"{'±' if stderr != '' else ''}|{shown[1]}|")  # fmt: skip
            name = version = shots = ""
    return "\n".join(lines)


@contextlib.contextmanager
def _restored_random_states():
    import torch

    states = random.getstate(), numpy.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        numpy.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()


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


def _typed_first_line(err: BaseException) -> str:
    """`TypeName: first line of the message` (the type alone for an empty message)."""
    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__


class _MetadataHintFilter(logging.Filter):
    """Drops lm-eval's per-task hint that custom kwargs can be passed through `--metadata`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


def verbose() -> bool:
    """Whether the user asked for the libraries' INFO logs (`restor-bench --verbose` sets RESTOR_BENCH_VERBOSE=1,
    which lm-eval child processes inherit)."""
    return os.environ.get(VERBOSE_ENV) == "1"


def lm_eval_environment() -> dict[str, str]:
    """The environment of an lm-eval child process: this one, with this copy of restor_bench importable (the
    task hooks in tasks/utils.py import it)."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


# ---------------------------------------------------------------- evaluate


def evaluate(
    checkpoint: str,
    out: str | os.PathLike,
    *,
    tasks: Sequence[str] | str = DEFAULT_TASKS,
    batch_size: int | str = 16,
    limit: float | None = None,
    device: str | None = None,
    backend: str = "hf",
    overwrite: bool = False,
    data_dir: str | os.PathLike | None = None,
    extra_model_args: str = "",
    trust_remote_code: bool = False,
    dtype: str | None = None,
    include_path: str | os.PathLike | None = None,
    world_dir: str | os.PathLike | None = None,
    lm_eval_args: Sequence[str] = (),
    child_process: bool | None = None,
    show_table: bool = True,
) -> Path:
    """Evaluate `checkpoint` with lm-eval on `tasks` and write lm-eval's results and samples into `out`.

    `backend`: an lm-eval model backend of `BACKENDS`; `device`: default cuda when available, else cpu; `dtype`:
    default float32 on the CPU, else the checkpoint's own. `include_path` replaces the restor tasks folder (tasks
    of your own). `data_dir` (official data) and `world_dir` (a tiny world) reach the tasks as the task metadata
    `restor_data_dir` / `restor_world_dir`. `lm_eval_args`: further lm-eval arguments, those of
    `lm_eval_options.PASS_THROUGH` (e.g. `["--seed", "1", "--gen_kwargs", "temperature=1.0"]`), checked before the
    model loads. `child_process`: run `python -m lm_eval` in a child process instead of in this one (default: only
    for vllm / sglang and W&B / Trackio logging). `show_table`: print lm-eval's summary table (in this process).
    `out` is written atomically; an existing non-empty `out` needs
    `overwrite`.
    """
    task_names = parse_tasks(tasks)
    out = Path(out)
    check_output_dir(out, overwrite)
    if limit is not None and not limit > 0:
        raise InputError(f"--limit must be positive, got {limit}")
    device = device or default_device(backend)
    check_backend(backend, device)
    metadata = {}
    for key, folder, what in (("restor_world_dir", world_dir, "tiny world"), ("restor_data_dir", data_dir, "data")):
        if folder is not None:
            if not Path(folder).is_dir():
                raise InputError(f"{folder}: {what} folder not found")
            metadata[key] = str(Path(folder).resolve())
    passed = parse_lm_eval_options(lm_eval_args, metadata)  # before the model loads: a bad one is one line
    checkpoint = check_checkpoint(checkpoint, "checkpoint")  # weights' headers, shards, architecture (transformers)
    include_path = Path(include_path).resolve() if include_path is not None else tasks_dir()
    dtype = dtype or default_dtype(device)
    call = simple_evaluate_arguments(
        backend=backend, model_args=model_arguments(checkpoint, dtype, extra_model_args, trust_remote_code),
        tasks=task_names, batch_size=batch_size, device=device, limit=limit, metadata=metadata, options=passed,
    )  # fmt: skip
    if child_process is None:
        child_process = backend in CHILD_PROCESS_BACKENDS or bool(passed.child_process_options)
    if child_process:  # in this process, run_lm_eval checks the names (with the task metadata)
        task_manager(task_names, include_path=include_path)
    options = {
        "include_path": include_path, "batch_size": batch_size, "limit": limit, "device": device, "dtype": dtype,
        "extra_model_args": extra_model_args, "trust_remote_code": trust_remote_code, "backend": backend,
        "metadata": metadata, "extra_args": list(lm_eval_args),
    }  # fmt: skip

    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        arguments = lm_eval_arguments(checkpoint, tmp, task_names, **options)
        started = time.perf_counter()
        if child_process:
            code, stderr_tail = run_streaming([sys.executable, "-m", "lm_eval", *arguments], lm_eval_environment())
            if code != 0:
                raise InputError(f"lm-eval failed (exit code {code}) on {checkpoint}: {last_error_line(stderr_tail)}")
        else:
            try:
                run_lm_eval(call, include_path=include_path, output_path=tmp, tracker_args=passed.tracker_args,
                            show_config=passed.show_config, show_table=show_table)  # fmt: skip
            except (InputError, KeyboardInterrupt, MemoryError):
                raise
            except Exception as err:  # lm-eval's own errors: one line (the traceback with --debug)
                raise InputError(f"lm-eval failed on {checkpoint}: {_typed_first_line(err)}") from err
        wall_time = time.perf_counter() - started
        outputs = find_lm_eval_outputs(tmp, include_results_only=True)
        missing = [name for name in _leaf_tasks(tmp, task_names) if name not in outputs]
        if not outputs or missing:
            raise InputError(f"lm-eval finished on {checkpoint} but wrote no results for "
                             f"{', '.join(missing or task_names)}")  # fmt: skip
        final_arguments = [str(out) if arg == str(tmp) else arg for arg in arguments]
        atomic_write_json(tmp / RUN_RECORD, {
            "command": "eval",
            "checkpoint": checkpoint,
            "tasks": task_names,
            "limit": limit,
            "batch_size": batch_size,
            "backend": backend,
            "device": device,
            "dtype": dtype,
            "data_dir": metadata.get("restor_data_dir"),
            "world_dir": metadata.get("restor_world_dir"),
            "lm_eval_extra_args": list(lm_eval_args),
            "lm_eval_args": final_arguments,
            "lm_eval_command": shlex.join(["lm_eval", "run", *final_arguments]),
            "runner": "child process" if child_process else "in process",
            "environment": {name: os.environ.get(name) for name in THREAD_ENVIRONMENT},
            "lm_eval_task_index": "lm-eval's tasks too" if needs_lm_eval_tasks(task_names, include_path)
                                  else "the task folder only",
            "wall_time_s": round(wall_time, 3),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
        })  # fmt: skip
    return out


def _leaf_tasks(folder: Path, requested: list[str]) -> list[str]:
    """The tasks (not groups) that lm-eval ran for `requested`, read from its results file's configs."""
    leaves: list[str] = []
    for path in sorted(folder.rglob("*.json")):
        data = try_read_results(path)
        if data is not None:
            leaves.extend(name for name in data.get("configs", {}) if name not in leaves)
    return leaves or requested


# ---------------------------------------------------------------- option values (shared by the commands that evaluate)


def parse_limit(text: str) -> int | float:
    """--limit: a number of questions per task (`5`) or a fraction of them (`0.5`)."""
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise InputError(f"--limit: expected a number of questions or a fraction, got {text!r}") from None


def check_batch_size(value: int | str) -> None:
    """lm-eval's batch size: a whole number of at least 1, `auto` or `auto:N`."""
    text = str(value)
    if isinstance(value, bool) or not (text.isdigit() and int(text) >= 1 or text == "auto"
                                       or (text.startswith("auto:") and text[5:].isdigit() and int(text[5:]) >= 1)):
        raise InputError(f"--batch-size must be a whole number of at least 1, 'auto' or 'auto:N', got {value!r}")


def parse_batch_size(text: str) -> int | str:
    """--batch-size as lm-eval takes it: an int, or `auto` / `auto:N` as given (InputError otherwise)."""
    check_batch_size(text)
    return text if text.startswith("auto") else int(text)


def add_eval_options(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--backend`, as `restor-bench eval` has them (for the other commands that evaluate)."""
    parser.add_argument("--device", help="device for lm-eval, e.g. cpu, cuda, cuda:1 (default: cuda when "
                        "available, else cpu)")  # fmt: skip
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="hf",
                        help="lm-eval model backend (default: hf; vllm and sglang need their package)")  # fmt: skip

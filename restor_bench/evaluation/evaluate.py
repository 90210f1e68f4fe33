"""`restor-bench eval`: lm-eval's `run` command with the restor tasks on a checkpoint.

The output folder holds exactly what lm-eval writes (`<model name>/results_<time>.json` and
`<model name>/samples_<task>_<time>.jsonl`) plus `restor_run.json`, a record of the run and of the plain
`lm_eval` command that does the same. `restor_bench.evaluation.lm_eval_io.find_lm_eval_outputs` finds those files under any
folder, including one written by a plain `lm_eval ... --log_samples --output_path DIR`.

How it runs: the lm-eval arguments (`lm_eval_arguments`, plus any given after `--`) are parsed by lm-eval's own
parser and configuration (`EvaluatorConfig`). With the `hf` backend they run in this process, as lm-eval's
`Run._execute` (lm_eval/_cli/run.py) runs them, except that the TaskManager indexes lm-eval's own ~15,000 tasks
only when a requested task is not a restor task (`restor_bench.evaluation.tasks.task_manager`) and that the random states
lm-eval seeds (python, numpy, torch) are restored afterwards. The `vllm` and
`sglang` backends run `python -m lm_eval` in a child process (their engines keep GPU memory until the process
ends), as do runs that log to W&B or Trackio. For several processes (data parallel on several GPUs) run lm-eval
itself with the arguments recorded in `restor_run.json`: `accelerate launch -m lm_eval run ARGS`.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import contextlib
import datetime
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir
from restor_bench.evaluation.lm_eval_io import LmEvalOutput, find_lm_eval_outputs, try_read_results  # noqa: F401 (re-exported)
from restor_bench.evaluation.tasks import (
    needs_lm_eval_tasks,
    parse_tasks,
    resolve_task_names,
    task_manager,
    tasks_dir,
)

DEFAULT_TASKS = ("restor_tiny_facts",)
RUN_RECORD = "restor_run.json"
STDERR_TAIL_BYTES = 8192
# lm-eval model backends that evaluate a checkpoint folder, and the package each needs
BACKENDS = {"hf": "transformers", "vllm": "vllm", "sglang": "sglang"}
CHILD_PROCESS_BACKENDS = ("vllm", "sglang")
# lm-eval options restor-bench sets itself, and the restor-bench option to use instead
OWN_OPTIONS = {
    "model": "--backend", "tasks": "--tasks", "output_path": "--out", "device": "--device",
    "batch_size": "--batch-size", "limit": "--limit", "include_path": "--include-path",
    "trust_remote_code": "--trust-remote-code",
}  # fmt: skip
OWN_MODEL_ARGS = {"pretrained": "the CKPT argument", "dtype": "--dtype", "trust_remote_code": "--trust-remote-code"}
CHILD_PROCESS_OPTIONS = ("wandb_args", "wandb_config_args", "trackio_args")
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


# ---------------------------------------------------------------- the lm-eval arguments


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


def _lm_eval_parser() -> argparse.ArgumentParser:
    from lm_eval._cli.run import Run

    parser = argparse.ArgumentParser(prog="lm_eval")
    Run.create(parser.add_subparsers(dest="command"))
    return parser


def parse_lm_eval_args(arguments: Sequence[str]) -> argparse.Namespace:
    """`arguments` parsed by lm-eval's own `run` parser; a bad argument is one InputError line."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return _lm_eval_parser().parse_args(["run", *arguments])
    except SystemExit as exit:
        if not exit.code:
            raise  # --help
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else "invalid arguments"
        raise InputError(f"lm-eval arguments {shlex.join(arguments)!r}: {reason}") from None


def check_extra_args(extra_args: Sequence[str], own_metadata: dict[str, Any]) -> argparse.Namespace:
    """Parse the lm-eval arguments given after `--`; refuse those that restor-bench sets itself."""
    given = parse_lm_eval_args(extra_args)
    defaults = parse_lm_eval_args([])
    for dest, option in OWN_OPTIONS.items():
        if getattr(given, dest, None) != getattr(defaults, dest, None):
            raise InputError(f"--{dest} after --: restor-bench eval sets it; use its own option {option}")
    for key, what in OWN_MODEL_ARGS.items():
        if key in (given.model_args or {}):
            raise InputError(f"--model_args {key}= after --: restor-bench eval sets it; use {what}")
    for key in own_metadata:
        if key in (given.metadata or {}):
            raise InputError(f"--metadata {key} after --: restor-bench eval sets it from --world-dir / --data-dir")
    return given


# ---------------------------------------------------------------- running lm-eval


def run_lm_eval(arguments: Sequence[str]) -> dict[str, Any] | None:
    """Run `lm_eval run ARGUMENTS` in this process; return lm-eval's results (None on a non-zero rank).

    As lm-eval's `Run._execute` (lm_eval/_cli/run.py, 0.4.13): the same parser and `EvaluatorConfig`, the same
    `simple_evaluate` call, the files written by lm-eval's `EvaluationTracker` and the same table printed; but the
    TaskManager indexes lm-eval's own tasks only when a task needs them. W&B / Trackio logging is not done here
    (`evaluate` runs such arguments through `python -m lm_eval`). The global random states (python, numpy,
    torch) that lm-eval seeds are restored afterwards.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from lm_eval.config.evaluate_config import EvaluatorConfig
    from lm_eval.utils import setup_logging

    setup_logging()
    try:
        cfg = EvaluatorConfig.from_cli(parse_lm_eval_args(arguments))
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise InputError(f"lm-eval arguments: {_typed_first_line(err)}") from err
    manager = task_manager(cfg.tasks, include_path=cfg.include_path, metadata=cfg.metadata or {})
    cfg.tasks = resolve_task_names(manager, cfg.tasks)
    with _restored_random_states():
        return _evaluate_config(cfg, manager)


def _evaluate_config(cfg, manager) -> dict[str, Any] | None:
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.utils import make_table

    if cfg.output_path:
        cfg.hf_hub_log_args["output_path"] = cfg.output_path
    if os.environ.get("HF_TOKEN"):
        cfg.hf_hub_log_args["token"] = os.environ["HF_TOKEN"]
    tracker = EvaluationTracker(**cfg.hf_hub_log_args)
    seeds = cfg.seed or [None] * 4
    results = simple_evaluate(
        model=cfg.model, model_args=cfg.model_args, tasks=cfg.tasks, num_fewshot=cfg.num_fewshot,
        batch_size=cfg.batch_size, max_batch_size=cfg.max_batch_size, device=cfg.device, use_cache=cfg.use_cache,
        cache_requests=cfg.cache_requests.get("cache_requests", False),
        rewrite_requests_cache=cfg.cache_requests.get("rewrite_requests_cache", False),
        delete_requests_cache=cfg.cache_requests.get("delete_requests_cache", False),
        limit=cfg.limit, samples=cfg.samples, check_integrity=cfg.check_integrity, write_out=cfg.write_out,
        log_samples=cfg.log_samples, evaluation_tracker=tracker, system_instruction=cfg.system_instruction,
        apply_chat_template=cfg.apply_chat_template, fewshot_as_multiturn=cfg.fewshot_as_multiturn,
        gen_kwargs=cfg.gen_kwargs, task_manager=manager, verbosity=cfg.verbosity, predict_only=cfg.predict_only,
        random_seed=seeds[0], numpy_random_seed=seeds[1], torch_random_seed=seeds[2], fewshot_random_seed=seeds[3],
        confirm_run_unsafe_code=cfg.confirm_run_unsafe_code, metadata=cfg.metadata,
    )  # fmt: skip
    if results is None:
        return None
    samples = results.pop("samples") if cfg.log_samples else None
    tracker.save_results_aggregated(results=results, samples=samples)
    if cfg.log_samples:
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    if tracker.push_results_to_hub or tracker.push_samples_to_hub:
        tracker.recreate_metadata_card()
    batch_sizes = ",".join(map(str, results["config"]["batch_sizes"]))
    shown_args = {key: value for key, value in cfg.model_args.items() if key != "trust_remote_code"}
    print(
        f"{cfg.model} ({shown_args}), gen_kwargs: ({cfg.gen_kwargs}), limit: {cfg.limit}, num_fewshot: "
        f"{cfg.num_fewshot}, batch_size: {cfg.batch_size}{f' ({batch_sizes})' if batch_sizes else ''}"
    )
    print(make_table(results))
    if "groups" in results:
        print(make_table(results, "groups"))
    return results


@contextlib.contextmanager
def _restored_random_states():
    import random

    import numpy
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
    from unlearners.errors import first_line

    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__


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
) -> Path:
    """Evaluate `checkpoint` with lm-eval on `tasks` and write lm-eval's results and samples into `out`.

    `backend`: an lm-eval model backend of `BACKENDS`; `device`: default cuda when available, else cpu; `dtype`:
    default float32 on the CPU, else the checkpoint's own. `include_path` replaces the restor tasks folder (tasks
    of your own). `data_dir` (official data) and `world_dir` (a tiny world) reach the tasks as the task metadata
    `restor_data_dir` / `restor_world_dir`. `lm_eval_args`: further `lm_eval run` arguments (e.g.
    `["--seed", "1", "--gen_kwargs", "temperature=1.0"]`). `child_process`: run `python -m lm_eval` in a child
    process instead of in this one (default: only for vllm / sglang and W&B / Trackio logging). `out` is written
    atomically; an existing non-empty `out` needs `overwrite`.
    """
    from restor_bench.train.common import check_checkpoint, package_versions

    task_names = parse_tasks(tasks)
    out = Path(out)
    check_output_dir(out, overwrite)
    checkpoint = check_checkpoint(checkpoint, "checkpoint")
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
    extra = check_extra_args(lm_eval_args, metadata)
    include_path = Path(include_path).resolve() if include_path is not None else tasks_dir()
    dtype = dtype or default_dtype(device)
    if child_process is None:
        child_process = backend in CHILD_PROCESS_BACKENDS or any(getattr(extra, name, None)
                                                                 for name in CHILD_PROCESS_OPTIONS)  # fmt: skip
    if child_process:  # in this process, run_lm_eval checks the names (with the task metadata lm-eval gives)
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
                run_lm_eval(arguments)
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


# ---------------------------------------------------------------- CLI


def _parse_limit(text: str) -> int | float:
    try:
        value = float(text) if "." in text else int(text)
    except ValueError:
        raise InputError(f"--limit: expected a number of questions or a fraction, got {text!r}") from None
    return value


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


class _PassThroughParser(argparse.ArgumentParser):
    """A parser that keeps everything after the first `--` for lm-eval (`lm_eval_args`), wherever the options
    before it stand (argparse alone would give a positional after CKPT only to a trailing CKPT)."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        tail: list[str] = []
        if "--" in args:
            cut = args.index("--")
            args, tail = args[:cut], args[cut + 1 :]
        namespace, extras = super().parse_known_args(args, namespace)
        namespace.lm_eval_args = tail
        return namespace, extras


def add_eval_options(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--backend`, as `restor-bench eval` has them (for other commands that evaluate)."""
    parser.add_argument("--device", help="device for lm-eval, e.g. cpu, cuda, cuda:1 (default: cuda when "
                        "available, else cpu)")  # fmt: skip
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="hf",
                        help="lm-eval model backend (default: hf; vllm and sglang need their package)")  # fmt: skip


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint with lm-eval on the restor tasks",
        usage="restor-bench eval CKPT --out DIR [options] [-- LM_EVAL_ARGS ...]",
        description="Run lm-eval on a checkpoint with the restor tasks; the output folder holds lm-eval's "
        "results_*.json and samples_*.jsonl and restor_run.json (the run and its plain lm_eval command). "
        "Arguments after -- go to lm-eval (`lm_eval run --help`), e.g. -- --seed 1 --gen_kwargs temperature=1.0",
    )
    parser.__class__ = _PassThroughParser
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint folder (or hub id when online)")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated tasks or groups "
                        f"(default: {','.join(DEFAULT_TASKS)})")  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--batch-size", default="16", help="lm-eval batch size: an integer or 'auto' (default: 16)")
    parser.add_argument("--limit", help="evaluate only the first N questions per task (or a fraction)")
    add_eval_options(parser)
    parser.add_argument("--dtype", help="model dtype (default: float32 on cpu, else the checkpoint's own)")
    parser.add_argument("--data-dir", help="official RESTOR data folder (task metadata restor_data_dir)")
    parser.add_argument("--world-dir", help="tiny world folder (task metadata restor_world_dir)")
    parser.add_argument("--model-args", default="", help="extra lm-eval model arguments, e.g. max_length=2048")
    parser.add_argument("--include-path", help="task folder to use instead of the restor tasks (tasks of your own)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own model code")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=run_command, lm_eval_args=[])


def run_command(args) -> int:
    prefer_passive_threads()
    out = evaluate(
        args.checkpoint,
        args.out,
        tasks=args.tasks,
        batch_size=parse_batch_size(args.batch_size),
        limit=_parse_limit(args.limit) if args.limit else None,
        device=args.device,
        backend=args.backend,
        overwrite=args.overwrite,
        data_dir=args.data_dir,
        world_dir=args.world_dir,
        extra_model_args=args.model_args,
        trust_remote_code=args.trust_remote_code,
        dtype=args.dtype,
        include_path=args.include_path,
        lm_eval_args=args.lm_eval_args,
    )
    print(f"lm-eval results written to {out}")
    for task, files in find_lm_eval_outputs(out, include_results_only=True).items():
        print(f"  {task}: {_relative(files.results_path, out)}, {_relative(files.samples_path, out)}")
    return 0


def _relative(path: Path | None, folder: Path) -> str:
    return str(path.relative_to(folder)) if path is not None else "-"


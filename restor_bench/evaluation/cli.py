"""The commands `restor-bench eval` and `restor-bench tasks`: their options and handlers (the work is done in
evaluate.py and tasks.py)."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from restor_bench.evaluation.evaluate import (
    DEFAULT_TASKS,
    add_eval_options,
    evaluate,
    find_lm_eval_outputs,
    parse_batch_size,
    parse_limit,
    prefer_passive_threads,
)
from restor_bench.evaluation.lm_eval_options import PASS_THROUGH
from restor_bench.evaluation.tasks import task_manager, tasks_dir

EVAL_DESCRIPTION = (
    "Run lm-eval on a checkpoint with the restor tasks; the output folder holds lm-eval's results_*.json and "
    "samples_*.jsonl and restor_run.json (the run and its plain lm_eval command). Arguments after -- go to lm-eval, "
    "e.g. -- --seed 1 --gen_kwargs temperature=1.0; they are checked before the model loads."
)


def add_parser(subparsers) -> None:
    """Add `eval` and `tasks` to the `restor-bench` subcommands."""
    add_eval_parser(subparsers)
    add_tasks_parser(subparsers)


# ---------------------------------------------------------------- eval


class _AfterDoubleDash(argparse.Action):
    """The positional that takes the words after `--` (lm-eval's arguments): one or more, yet not required.

    With `nargs="*"` argparse would match it, empty, together with CKPT when CKPT comes before the options, and
    then reject the words after `--`; `+` cannot match empty, so it waits for them."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs["required"] = False
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, list(values))


def _pass_through_help() -> str:
    width = max(len(f"{option} {value}".strip()) for option, (value, _) in PASS_THROUGH.items())
    lines = [f"  {f'{option} {value}'.strip():<{width}}  {what}" for option, (value, what) in PASS_THROUGH.items()]
    return ("lm-eval arguments passed on after -- (as `lm_eval run` spells them; any other is refused):\n"
            + "\n".join(lines))  # fmt: skip


def add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint with lm-eval on the restor tasks",
        usage="restor-bench eval CKPT --out DIR [options] [-- LM_EVAL_ARGS ...]",
        description=textwrap.fill(EVAL_DESCRIPTION, 100),
        epilog=_pass_through_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint folder (or hub id when online)")
    parser.add_argument("lm_eval_args", metavar="LM_EVAL_ARGS", nargs="+", action=_AfterDoubleDash, default=[],
                        help="lm-eval arguments, after -- (listed below)")  # fmt: skip
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
    parser.set_defaults(func=run_eval)


def run_eval(args) -> int:
    prefer_passive_threads()
    out = evaluate(
        args.checkpoint,
        args.out,
        tasks=args.tasks,
        batch_size=parse_batch_size(args.batch_size),
        limit=parse_limit(args.limit) if args.limit else None,
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


# ---------------------------------------------------------------- tasks


def add_tasks_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tasks",
        help="where the restor lm-eval tasks are (for lm_eval --include_path) and what they are",
        description="The restor lm-eval tasks. Plain lm-eval finds them with "
        '`lm_eval ... --include_path "$(restor-bench tasks path)"`.',
    )
    actions = parser.add_subparsers(dest="tasks_command", metavar="ACTION")
    path = actions.add_parser("path", help="print the task folder (the value of lm_eval --include_path)")
    path.set_defaults(func=_print_path)
    listing = actions.add_parser("list", help="list the restor tasks and groups")
    listing.set_defaults(func=_print_list)
    parser.set_defaults(func=lambda args: _print_usage(parser))


def _print_usage(parser) -> int:
    parser.print_help()
    return 2


def _print_path(args) -> int:
    print(tasks_dir())
    return 0


def _print_list(args) -> int:
    manager = task_manager()
    groups = set(manager.all_groups)
    for name in manager.all_tasks:
        if not name.startswith("_"):
            print(f"{name}\t{'group' if name in groups else 'task'}")
    return 0

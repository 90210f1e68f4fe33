"""The `restor-bench` command. Each subcommand lives in its own module, which adds its parser here."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from restor_bench import __version__
from restor_bench.errors import GateFailure, InputError
from restor_bench.io import file_in_the_way
from restor_bench.names import VERBOSE_ENV
from unlearners.errors import UnlearnError

# (module, description); each module defines `add_parser(subparsers)` and sets `func` on its parser(s).
COMMAND_MODULES = [
    "restor_bench.data.world.cli",
    "restor_bench.data.cli",
    "restor_bench.train.cli",
    "restor_bench.evaluation.cli",
    "restor_bench.compare.cli",
    "restor_bench.run.cli",
    "restor_bench.grid.cli",
    "restor_bench.leaderboard.cli",
    "restor_bench.models.cli",
    "restor_bench.layers.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restor-bench",
        description="Restorative unlearning benchmark: corrupt, unlearn, evaluate with lm-eval, compare.",
    )
    parser.add_argument("--version", action="version", version=f"restor-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--verbose", action="store_true",
                        help="show the INFO logs of lm-eval and transformers (quiet by default: warnings only)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue  # command not available in this build
            raise
        module.add_parser(subparsers)
    return parser


def describe_os_error(err: OSError) -> str:
    """One line for a filesystem error: the path(s) and the reason, e.g. `runs/x: Read-only file system`."""
    reason = err.strerror or type(err).__name__
    paths = [str(path) for path in (err.filename, err.filename2) if path is not None]
    if isinstance(err, (FileExistsError, NotADirectoryError)) and paths:
        blocker = file_in_the_way(paths[0])
        if blocker is not None:
            return f"{paths[0]}: cannot create a folder there, {blocker} is a file"
    if not paths:
        return f"{reason} ({err})" if str(err) and str(err) != reason else reason
    return f"{' -> '.join(paths)}: {reason}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("RESTOR_BENCH_DEBUG") == "1"
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "info")  # and the Trainer's logged values above its bar
    else:
        # one progress bar per step: not transformers' bars for loading and writing a checkpoint
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        result = args.func(args)
    except (InputError, UnlearnError) as err:
        # the one error boundary: bad input, whether found by restor_bench or by the unlearners package
        if debug:
            raise
        print(f"restor-bench: error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
        return 2
    except GateFailure as err:
        if debug:
            raise
        print(f"restor-bench: gate failed: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        # the filesystem refused: a folder that cannot be written (read-only, a file in its place), a full disk
        if debug:
            raise
        print(f"restor-bench: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except MemoryError:
        if debug:
            raise
        print("restor-bench: error: out of memory (try a smaller --batch-size, --bootstrap or model)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("restor-bench: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # safetensors reports a failed write (a full disk) as its own error type, not as an OSError
        if debug or type(err).__name__ != "SafetensorError":
            raise
        print(f"restor-bench: error: writing a safetensors file failed ({' '.join(str(err).split())}); is the "
              "disk full?", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

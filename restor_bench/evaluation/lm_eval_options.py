"""The lm-eval arguments that `restor-bench eval` takes after `--`, checked before the model loads.

lm-eval 0.4 has no public function that returns its command-line parser (its CLI lives in the private package
`lm_eval._cli`), so restor-bench reads the pass-through arguments itself: the options of `PASS_THROUGH`, spelled
and valued as `lm_eval run` takes them, each mapped onto a documented argument of `lm_eval.simple_evaluate` or
of `lm_eval.loggers.EvaluationTracker`. Any other option is refused in one line (InputError), and so is a bad value
(`--gen_kwargs temperature=abc`, `--metadata '{bad json'`, `--seed a,b`). The arguments, as written, also complete
the plain `lm_eval run` command that restor_run.json records, which lm-eval's own CLI accepts.

Values of `key=value,key2=value2` options are read as lm-eval reads them: commas inside brackets or quotes do not
split, and each value is `true`/`false`, a number, a Python literal (`["\\n"]`, `None`) or else a string.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError

# option: (value, what it sets) -- the pass-through options, as `restor-bench eval --help` lists them
PASS_THROUGH = {
    "--seed": ("N|P,N,T,F", "python, numpy, torch, few-shot seeds (one for all; None: unset)"),
    "--num_fewshot": ("N", "few-shot examples (a task that fixes 0 keeps 0)"),
    "--gen_kwargs": ("K=V,...", "generation arguments, e.g. temperature=0,max_gen_toks=16"),
    "--metadata": ("JSON|K=V,...", "task metadata, e.g. '{\"restor_seed\": 1}'"),
    "--model_args": ("K=V,...", "more model arguments (as --model-args)"),
    "--max_batch_size": ("N", "the largest batch size that --batch-size auto tries"),
    "--apply_chat_template": ("[NAME]", "prompts in the model's (or the named) chat template"),
    "--fewshot_as_multiturn": ("[true|false]", "few-shot examples as chat turns"),
    "--system_instruction": ("TEXT", "a system instruction before each prompt"),
    "--samples": ("JSON|FILE", "question indices per task, e.g. '{\"restor_facts\": [0, 5]}'"),
    "--use_cache": ("PATH", "cache the answers in PATH_rank<N>.db (sqlite)"),
    "--cache_requests": ("[true|refresh|delete]", "cache the built prompts"),
    "--predict_only": ("", "write the answers, score nothing"),
    "--write_out": ("", "print the prompts of the first questions"),
    "--confirm_run_unsafe_code": ("", "allow tasks that run generated code"),
    "--show_config": ("", "print the whole results at the end"),
    "--hf_hub_log_args": ("K=V,...", "EvaluationTracker arguments (push to the HF hub)"),
    "--wandb_args": ("K=V,...", "log to W&B (runs `python -m lm_eval`)"),
    "--wandb_config_args": ("K=V,...", "W&B config (runs `python -m lm_eval`)"),
    "--trackio_args": ("K=V,...", "log to Trackio (runs `python -m lm_eval`)"),
}  # fmt: skip
# lm-eval options that restor-bench eval sets itself, and the restor-bench option to use instead
OWN_OPTIONS = {
    "model": "--backend", "tasks": "--tasks", "output_path": "--out", "device": "--device",
    "batch_size": "--batch-size", "limit": "--limit", "include_path": "--include-path",
    "trust_remote_code": "--trust-remote-code",
}  # fmt: skip
OWN_MODEL_ARGS = {"pretrained": "the CKPT argument", "dtype": "--dtype", "trust_remote_code": "--trust-remote-code"}
# options that only lm-eval's own command line handles: with them, evaluate() runs `python -m lm_eval`
CHILD_PROCESS_OPTIONS = ("wandb_args", "wandb_config_args", "trackio_args")
DEFAULT_SEED = (0, 1234, 1234, 1234)  # lm-eval's own: python, numpy, torch, few-shot
# generation arguments whose values are checked: (kind, smallest value)
GENERATION_VALUES = {
    "temperature": ("number", 0), "top_p": ("number", 0), "min_p": ("number", 0), "typical_p": ("number", 0),
    "repetition_penalty": ("number", 0), "length_penalty": ("number", None), "top_k": ("integer", 0),
    "max_gen_toks": ("integer", 1), "max_new_tokens": ("integer", 1), "min_new_tokens": ("integer", 0),
    "num_beams": ("integer", 1), "num_return_sequences": ("integer", 1), "no_repeat_ngram_size": ("integer", 0),
    "do_sample": ("boolean", None), "until": ("stop strings", None),
}  # fmt: skip


@dataclass
class LmEvalOptions:
    """The pass-through arguments, read: `simple_evaluate` keyword arguments and what else they ask for."""

    arguments: list[str] = field(default_factory=list)  # as given
    evaluate_args: dict[str, Any] = field(default_factory=dict)  # simple_evaluate keyword arguments they set
    model_args: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    tracker_args: dict[str, Any] = field(default_factory=dict)  # EvaluationTracker keyword arguments
    show_config: bool = False
    child_process_options: list[str] = field(default_factory=list)  # those that need `python -m lm_eval`


# ---------------------------------------------------------------- values


def parse_value(text: str) -> Any:
    """One `key=value` value as lm-eval reads it: true/false, an int, a float, a Python literal, else the text."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.isnumeric():
        return int(text)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def split_top_level(text: str) -> list[str]:
    """`text` split at the commas outside brackets, braces and quotes (empty parts dropped)."""
    parts, current, depth, quote = [], [], 0, None
    for char in text:
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_key_values(text: str, flag: str) -> dict[str, Any]:
    """`key=value,key2=value2` (or a JSON object, starting with `{`) as a dict; InputError names `flag`."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{flag} {text}: not valid JSON ({err.msg} at character {err.pos + 1})") from None
        if not isinstance(value, dict):
            raise InputError(f"{flag} {text}: expected a JSON object")
        return value
    result = {}
    for item in split_top_level(text):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} {text}: expected key=value, got {item!r}")
        result[key.strip()] = parse_value(value)
    return result


def parse_seed(text: str) -> list[int | None]:
    """lm-eval's --seed: one integer for all four seeds, or 3-4 comma-separated integers or `None` (a missing
    fourth is lm-eval's default)."""
    items = []
    for item in text.split(","):
        item = item.strip()
        if item.lower() == "none":
            items.append(None)
            continue
        try:
            items.append(int(item))
        except ValueError:
            raise InputError(f"--seed {text}: {item!r} is not an integer or None") from None
    if len(items) == 1:
        return items * len(DEFAULT_SEED)
    if len(items) not in (len(DEFAULT_SEED) - 1, len(DEFAULT_SEED)):
        raise InputError(f"--seed {text}: expected one value or {len(DEFAULT_SEED)} (python,numpy,torch,few-shot)")
    return items + list(DEFAULT_SEED[len(items) :])


def check_generation_kwargs(values: dict[str, Any], flag: str = "--gen_kwargs") -> None:
    """InputError (one line) for a known generation argument with a value of the wrong kind."""
    for key, value in values.items():
        if key not in GENERATION_VALUES:
            continue
        kind, least = GENERATION_VALUES[key]
        if kind == "boolean":
            ok = isinstance(value, bool)
        elif kind == "stop strings":
            ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (kind == "number" or float(value).is_integer()) and (least is None or value >= least)
        if not ok:
            bound = f" of at least {least}" if least is not None else ""
            wanted = {"number": f"a number{bound}", "integer": f"a whole number{bound}", "boolean": "true or false",
                      "stop strings": 'a string or a list of strings, e.g. ["\\n"]'}[kind]  # fmt: skip
            raise InputError(f"{flag} {key}={value!r}: {key} must be {wanted}")


def parse_samples(text: str) -> dict[str, list[int]]:
    """lm-eval's --samples: a JSON object of task -> question indices, or a JSON file holding one."""
    source = text
    if not text.lstrip().startswith("{") and Path(text).is_file():
        source = Path(text).read_text(encoding="utf-8")
    try:
        value = json.loads(source)
    except json.JSONDecodeError as err:
        raise InputError(f"--samples {text}: not a JSON object or a JSON file ({err.msg})") from None
    if not isinstance(value, dict) or not all(
        isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v) for v in value.values()
    ):
        raise InputError(f"--samples {text}: expected a JSON object of task name -> list of question indices")
    return value


# ---------------------------------------------------------------- the parser


class _Parser(argparse.ArgumentParser):
    """argparse, with its complaints raised as one InputError line instead of printed with an exit."""

    def __init__(self, arguments: Sequence[str]):
        super().__init__(prog="lm_eval", add_help=False, allow_abbrev=False)
        self.arguments = list(arguments)

    def error(self, message):  # documented as the method to override (argparse.ArgumentParser.error)
        if message.startswith("unrecognized arguments"):
            message += f" (restor-bench eval passes on to lm-eval: {', '.join(PASS_THROUGH)})"
        raise InputError(f"lm-eval arguments {shlex.join(self.arguments)!r}: {message}")


class _MergeKeyValues(argparse.Action):
    """`--OPTION key=value [key=value ...]` or `--OPTION '{json}'`, merged over repeats (as lm-eval merges)."""

    def __call__(self, parser, namespace, values, option_string=None):
        merged = dict(getattr(namespace, self.dest, None) or {})
        for value in values:
            merged.update(parse_key_values(value, option_string))
        setattr(namespace, self.dest, merged)


def _whole_number(flag: str, least: int = 0):
    """An argparse `type`: a whole number of at least `least`, else InputError (one line) naming `flag`."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise InputError(f"{flag} {text}: expected a whole number") from None
        if value < least:
            raise InputError(f"{flag} {text}: must be at least {least}")
        return value

    return convert


def _bool_text(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise InputError(f"--fewshot_as_multiturn {text}: expected true or false")
    return text.lower() in ("true", "1", "yes")


def _cache_mode(text: str) -> str:
    if text not in ("true", "refresh", "delete"):
        raise InputError(f"--cache_requests {text}: expected true, refresh or delete")
    return text


def _parser(arguments: Sequence[str]) -> _Parser:
    parser = _Parser(arguments)
    add = parser.add_argument
    suppress = argparse.SUPPRESS
    add("--seed", type=parse_seed, default=suppress)
    add("--num_fewshot", type=_whole_number("--num_fewshot"), default=suppress)
    add("--max_batch_size", type=_whole_number("--max_batch_size", 1), default=suppress)
    for name in ("gen_kwargs", "metadata", "model_args", "hf_hub_log_args", *CHILD_PROCESS_OPTIONS):
        add(f"--{name}", nargs="+", action=_MergeKeyValues, default=suppress)
    add("--apply_chat_template", nargs="?", const=True, default=suppress)
    add("--fewshot_as_multiturn", nargs="?", const=True, type=_bool_text, default=suppress)
    add("--system_instruction", default=suppress)
    add("--samples", type=parse_samples, default=suppress)
    add("--use_cache", default=suppress)
    add("--cache_requests", nargs="?", const="true", type=_cache_mode, default=suppress)
    for name in ("predict_only", "write_out", "confirm_run_unsafe_code", "show_config"):
        add(f"--{name}", action="store_true", default=suppress)
    for name in (*OWN_OPTIONS, "log_samples"):  # read, to be refused with the option to use instead
        add(f"--{name}", nargs="*", default=suppress)
    return parser


def parse_lm_eval_options(arguments: Sequence[str], own_metadata: dict[str, Any] | None = None) -> LmEvalOptions:
    """Read the lm-eval arguments given after `--`; InputError (one line) for an option restor-bench sets itself,
    an option it does not pass on, or a bad value. Nothing is loaded: this runs before the model is."""
    arguments = list(arguments)
    if arguments and not arguments[0].startswith("-"):
        raise InputError(f"{arguments[0]}: unexpected argument (restor-bench eval takes one CKPT; lm-eval arguments "
                         f"go after --, e.g. -- --seed 1)")  # fmt: skip
    given = vars(_parser(arguments).parse_args(arguments))
    for dest, option in OWN_OPTIONS.items():
        if dest in given:
            raise InputError(f"--{dest} after --: restor-bench eval sets it; use its own option {option}")
    if "log_samples" in given:
        raise InputError("--log_samples after --: restor-bench eval always logs the samples")
    options = LmEvalOptions(arguments=arguments)
    options.model_args = given.pop("model_args", {})
    for key, what in OWN_MODEL_ARGS.items():
        if key in options.model_args:
            raise InputError(f"--model_args {key}= after --: restor-bench eval sets it; use {what}")
    options.metadata = given.pop("metadata", {})
    for key in own_metadata or {}:
        if key in options.metadata:
            raise InputError(f"--metadata {key} after --: restor-bench eval sets it from --world-dir / --data-dir")
    options.tracker_args = given.pop("hf_hub_log_args", {})
    if "output_path" in options.tracker_args:
        raise InputError("--hf_hub_log_args output_path= after --: restor-bench eval sets it; use --out")
    options.show_config = given.pop("show_config", False)
    options.child_process_options = [f"--{name}" for name in CHILD_PROCESS_OPTIONS if given.pop(name, None)]
    check_generation_kwargs(given.get("gen_kwargs", {}))
    if given.get("fewshot_as_multiturn") is True and not given.get("apply_chat_template"):
        raise InputError("--fewshot_as_multiturn after --: needs --apply_chat_template")
    seeds = given.pop("seed", None)
    if seeds is not None:
        names = ("random_seed", "numpy_random_seed", "torch_random_seed", "fewshot_random_seed")
        given.update(zip(names, seeds))
    cache = given.pop("cache_requests", None)
    if cache is not None:
        given.update(cache_requests=cache in ("true", "refresh"), rewrite_requests_cache=cache == "refresh",
                     delete_requests_cache=cache == "delete")  # fmt: skip
    options.evaluate_args = given
    return options


def simple_evaluate_arguments(
    *,
    backend: str,
    model_args: dict[str, Any],
    tasks: list[str],
    batch_size: int | str,
    device: str,
    limit: float | None,
    metadata: dict[str, Any],
    options: LmEvalOptions,
) -> dict[str, Any]:
    """The keyword arguments of `lm_eval.simple_evaluate` (all documented ones) that `lm_eval run` would pass for
    the same command line (the task manager and the evaluation tracker are added by the caller).

    As `lm_eval run` does: the batch size is passed as text, the limit as a float, the task metadata is the model
    arguments updated with `--metadata`, unset generation arguments are `{}`, and `fewshot_as_multiturn` is unset
    (None) unless a chat template is applied.
    """
    given = dict(options.evaluate_args)
    if limit is not None and given.get("samples") is not None:
        raise InputError("--samples after --: not with --limit (give one of them)")
    model_args = {**model_args, **options.model_args}
    apply_chat_template = given.pop("apply_chat_template", False)
    fewshot_as_multiturn = given.pop("fewshot_as_multiturn", True if apply_chat_template else None)
    arguments = {
        "model": backend, "model_args": model_args, "tasks": list(tasks), "num_fewshot": None,
        "batch_size": str(batch_size), "max_batch_size": None, "device": device, "use_cache": None,
        "cache_requests": False, "rewrite_requests_cache": False, "delete_requests_cache": False,
        "limit": float(limit) if limit is not None else None, "samples": None, "write_out": False, "log_samples": True,
        "system_instruction": None, "apply_chat_template": apply_chat_template,
        "fewshot_as_multiturn": fewshot_as_multiturn, "gen_kwargs": {}, "predict_only": False,
        "random_seed": DEFAULT_SEED[0], "numpy_random_seed": DEFAULT_SEED[1], "torch_random_seed": DEFAULT_SEED[2],
        "fewshot_random_seed": DEFAULT_SEED[3], "confirm_run_unsafe_code": False,
        "metadata": {**model_args, **metadata, **options.metadata},
    }  # fmt: skip
    arguments.update(given)
    return arguments

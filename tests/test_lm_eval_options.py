"""The lm-eval arguments of `restor-bench eval ... -- ARGS`: read by restor-bench itself (lm-eval has no public
parser), mapped onto `lm_eval.simple_evaluate` exactly as `lm_eval run` maps the same command line; and the lm-eval
version range of pyproject.toml is the one these tests ran on."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import lm_eval_arguments, model_arguments
from restor_bench.evaluation.lm_eval_options import (
    PASS_THROUGH,
    parse_key_values,
    parse_lm_eval_options,
    parse_seed,
    parse_value,
    simple_evaluate_arguments,
    split_top_level,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# The lm-eval release whose public API restor-bench eval was written against and tested with: `simple_evaluate`
# (with `task_manager`, `metadata`, `samples`, `confirm_run_unsafe_code`), `TaskManager(include_path=...,
# include_defaults=..., metadata=...)` with `match_tasks` / `load`, `EvaluationTracker.save_results_aggregated` /
# `save_results_samples`, and the `lm_eval run` command line recorded in restor_run.json.
TESTED_LM_EVAL = "0.4.13"


def test_pyproject_lm_eval_range_is_the_tested_one():
    """pyproject.toml's lm-eval range starts at the release these tests ran on (`TESTED_LM_EVAL`): older releases
    lack parts of the API above (`lm_eval run` and `TaskManager.load` came with the 0.4.1x command-line and task
    manager rewrites), so a lower bound below it would promise what nobody tested. The installed lm-eval must be
    inside the range; when a newer one passes these tests, raise TESTED_LM_EVAL (the bound follows)."""
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (requirement,) = re.findall(r'"lm-eval\s*([^";]*)"', text)
    specifiers = SpecifierSet(requirement)
    installed = Version(version("lm_eval"))
    assert installed in specifiers, f"installed lm-eval {installed} is outside pyproject's range {specifiers}"
    lower = [Version(spec.version) for spec in specifiers if spec.operator in (">=", ">", "==", "~=")]
    assert lower and min(lower) >= Version(TESTED_LM_EVAL), f"{specifiers}: lower bound below {TESTED_LM_EVAL}"
    assert any(spec.operator == "<" for spec in specifiers), f"{specifiers}: no upper bound (next major untested)"
    assert installed >= Version(TESTED_LM_EVAL)


# ---------------------------------------------------------------- values as lm-eval reads them


def test_values_are_read_as_lm_eval_reads_them():
    assert [parse_value(text) for text in ("true", "False", "12", "0.5", "1e-3", "None", '["\\n"]', "abc")] == [
        True, False, 12, 0.5, 0.001, None, ["\n"], "abc"]  # fmt: skip
    assert split_top_level('until=["a", "b"],temperature=0,,x="1,2"') == ['until=["a", "b"]', "temperature=0",
                                                                          'x="1,2"']  # fmt: skip
    assert parse_key_values('{"a": {"b": 1}}', "--metadata") == {"a": {"b": 1}}
    assert parse_key_values("max_length=512,name=x=y", "--model_args") == {"max_length": 512, "name": "x=y"}
    assert parse_seed("5") == [5, 5, 5, 5] and parse_seed("1,None,3") == [1, None, 3, 1234]
    with pytest.raises(InputError, match="expected one value or 4"):
        parse_seed("1,2,3,4,5")


def test_the_pass_through_list_is_what_the_parser_takes():
    """Each documented option is read (and nothing undocumented is)."""
    samples = {"--seed": ["1"], "--num_fewshot": ["2"], "--max_batch_size": ["4"], "--system_instruction": ["Hi"],
               "--samples": ['{"t": [0]}'], "--use_cache": ["c"], "--fewshot_as_multiturn": ["false"],
               "--apply_chat_template": []}  # fmt: skip
    for option in PASS_THROUGH:
        values = samples.get(option, ["a=1"] if PASS_THROUGH[option][0].startswith(("K=V", "JSON")) else [])
        parse_lm_eval_options([option, *values])


# ---------------------------------------------------------------- the same call as `lm_eval run`


def _lm_eval_run_call(arguments: list[str]) -> tuple[dict, dict]:
    """The simple_evaluate keyword arguments and the EvaluationTracker arguments (less output_path) that
    `lm_eval run ARGUMENTS` uses: lm-eval's own parser and EvaluatorConfig, mapped as its `run` command maps them
    (lm_eval/_cli/run.py). Private parts of lm-eval serve here as the oracle; restor-bench does not use them."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.config.evaluate_config import EvaluatorConfig

    argv = sys.argv
    sys.argv = ["lm_eval", "run", *arguments]
    try:
        cfg = EvaluatorConfig.from_cli(HarnessCLI().parse_args())
    finally:
        sys.argv = argv
    seeds = cfg.seed or [None] * 4
    call = {
        "model": cfg.model, "model_args": cfg.model_args, "tasks": cfg.tasks, "num_fewshot": cfg.num_fewshot,
        "batch_size": cfg.batch_size, "max_batch_size": cfg.max_batch_size, "device": cfg.device,
        "use_cache": cfg.use_cache, "cache_requests": cfg.cache_requests.get("cache_requests", False),
        "rewrite_requests_cache": cfg.cache_requests.get("rewrite_requests_cache", False),
        "delete_requests_cache": cfg.cache_requests.get("delete_requests_cache", False), "limit": cfg.limit,
        "samples": cfg.samples, "write_out": cfg.write_out, "log_samples": cfg.log_samples,
        "system_instruction": cfg.system_instruction, "apply_chat_template": cfg.apply_chat_template,
        "fewshot_as_multiturn": cfg.fewshot_as_multiturn, "gen_kwargs": cfg.gen_kwargs,
        "predict_only": cfg.predict_only, "random_seed": seeds[0], "numpy_random_seed": seeds[1],
        "torch_random_seed": seeds[2], "fewshot_random_seed": seeds[3],
        "confirm_run_unsafe_code": cfg.confirm_run_unsafe_code, "metadata": cfg.metadata,
    }  # fmt: skip
    assert (cfg.check_integrity, cfg.verbosity) == (False, None)  # passed by lm_eval run as simple_evaluate's defaults
    return call, dict(cfg.hf_hub_log_args)


@pytest.mark.parametrize(
    ("own", "extra"),
    [
        ({}, []),
        ({"limit": 3, "batch_size": 4}, ["--seed", "5", "--num_fewshot", "3", "--gen_kwargs", "max_gen_toks=6"]),
        ({"limit": 0.5}, ["--seed", "1,None,3", "--gen_kwargs", 'until=["\\n\\n"],temperature=0', "do_sample=false"]),
        ({"extra_model_args": "max_length=256", "trust_remote_code": True},
         ["--metadata", '{"restor_seed": 2}', "--model_args", "max_length=512,seed=1"]),
        ({"metadata": {"restor_world_dir": "W"}}, ["--metadata", "restor_seed=2", "--metadata", "restor_n_other=10"]),
        ({}, ["--apply_chat_template", "--system_instruction", "Answer briefly."]),
        ({"batch_size": "auto"}, ["--apply_chat_template", "chatml", "--fewshot_as_multiturn", "false",
                                  "--max_batch_size", "8"]),
        ({}, ["--cache_requests", "--use_cache", "/tmp/c", "--predict_only", "--write_out",
              "--confirm_run_unsafe_code"]),
        ({}, ["--cache_requests", "refresh", "--samples", '{"restor_tiny_facts": [0, 3]}']),
        ({}, ["--hf_hub_log_args", "hub_results_org=me,push_results_to_hub=False", "--show_config"]),
    ],
)  # fmt: skip
def test_simple_evaluate_gets_what_lm_eval_run_passes_for_the_recorded_command(own, extra):
    settings = {"limit": None, "batch_size": 16, "extra_model_args": "", "trust_remote_code": False, "metadata": {},
                **own}  # fmt: skip
    options = parse_lm_eval_options(extra, settings["metadata"])
    call = simple_evaluate_arguments(
        backend="hf", tasks=["restor_tiny_facts"], batch_size=settings["batch_size"], device="cpu",
        limit=settings["limit"], metadata=settings["metadata"], options=options,
        model_args=model_arguments("CKPT", "float32", settings["extra_model_args"], settings["trust_remote_code"]),
    )  # fmt: skip
    command = lm_eval_arguments(
        "CKPT", "OUT", ["restor_tiny_facts"], include_path=None, batch_size=settings["batch_size"],
        limit=settings["limit"], device="cpu", dtype="float32", extra_model_args=settings["extra_model_args"],
        trust_remote_code=settings["trust_remote_code"], metadata=settings["metadata"], extra_args=extra,
    )  # fmt: skip
    expected, tracker_args = _lm_eval_run_call(command)
    assert call == expected
    assert options.tracker_args == tracker_args
    assert options.show_config == ("--show_config" in extra)


def test_logging_options_need_lm_eval_itself():
    options = parse_lm_eval_options(["--wandb_args", "project=p", "--trackio_args", "project=q", "--seed", "2"])
    assert options.child_process_options == ["--wandb_args", "--trackio_args"]
    assert options.evaluate_args["random_seed"] == 2

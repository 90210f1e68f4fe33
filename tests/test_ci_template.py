"""docs/ci/restor-gate.yml: valid YAML, every `restor-bench` command parses with the real CLI, the lm-eval command
that `restor-bench eval` runs parses with lm-eval's own CLI, and the gate steps' shell runs as GitHub would run it
(on fabricated lm-eval output folders): exit 1 and a FAIL summary on a regression, exit 0 and PASS otherwise."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from leaderboard_fixtures import make_world, model_states, write_eval

from restor_bench.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = REPO_ROOT / "docs" / "ci" / "restor-gate.yml"
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step_named(workflow: dict, prefix: str) -> dict:
    (found,) = [step for step in steps(workflow) if step.get("name", "").startswith(prefix)]
    return found


def environment(workflow: dict, step: dict | None = None) -> dict[str, str]:
    """The workflow's env (and a step's), with `${{ ... }}` expressions replaced by a placeholder."""
    env = {**workflow.get("env", {}), **((step or {}).get("env") or {})}
    return {key: EXPRESSION.sub("EXPR", str(value)) for key, value in env.items()}


def shell_commands(script: str) -> list[str]:
    """The command lines of a `run:` script (continuation lines joined)."""
    return [line.strip() for line in script.replace("\\\n", " ").splitlines() if line.strip()]


def expand(command: str, env: dict[str, str]) -> list[str]:
    """Split a command line as the shell would, expanding $VAR from the workflow's env."""
    return shlex.split(VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), "VALUE"), command))


def restor_bench_calls(workflow: dict) -> list[list[str]]:
    calls = []
    for step in steps(workflow):
        for line in shell_commands(step.get("run", "")):
            words = expand(line, environment(workflow, step))
            if words and words[0] == "restor-bench":
                calls.append(words[1:])
    return calls


def test_workflow_is_valid_yaml_with_jobs_and_steps(workflow):
    assert workflow["name"]
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers
    assert workflow["permissions"]["pull-requests"] == "write"
    for job in workflow["jobs"].values():
        assert job["runs-on"] and job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            assert step.get("name")
    names = [step["name"] for step in steps(workflow)]
    assert len(set(names)) == len(names)


def test_install_puts_cpu_torch_first(workflow):
    install = shell_commands(step_named(workflow, "Install restor-bench")["run"])
    torch_line = next(i for i, line in enumerate(install) if line.startswith("pip install torch==2.13.0"))
    project_line = next(i for i, line in enumerate(install) if "RESTOR_BENCH_PACKAGE" in line)
    assert torch_line < project_line
    assert "--index-url https://download.pytorch.org/whl/cpu" in install[torch_line]


def test_every_restor_bench_command_exists_in_the_cli(workflow):
    parser = build_parser()
    (subcommands,) = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    calls = restor_bench_calls(workflow)
    used = {call[0] for call in calls if call and not call[0].startswith("-")}
    assert {"eval", "compare"} <= used
    for call in calls:
        if call == ["--version"]:
            continue
        assert call[0] in subcommands, f"restor-bench {call[0]}: no such command"
        try:
            args = parser.parse_args(call)
        except SystemExit as exit:  # argparse reports a bad option by exiting
            pytest.fail(f"restor-bench {' '.join(call)}: rejected by the CLI parser (exit {exit.code})")
        assert callable(getattr(args, "func", None))
    (compare,) = [call for call in calls if call[0] == "compare"]
    args = parser.parse_args(compare)
    assert args.baseline == "ci/restor-baseline-eval" and args.candidate == "new-eval"
    assert args.max_drop == 0.02 and args.markdown == "summary.md"


def test_the_lm_eval_command_behind_restor_bench_eval_is_well_formed(workflow):
    """`restor-bench eval` runs lm-eval's CLI: build that command from the workflow's arguments and parse it with
    lm-eval's own parser."""
    from lm_eval._cli import HarnessCLI

    from restor_bench.evaluation.evaluate import default_dtype, lm_eval_command, parse_tasks

    parser = build_parser()
    evals = [parser.parse_args(call) for call in restor_bench_calls(workflow) if call[0] == "eval"]
    assert len(evals) == 2  # baseline (when missing) and candidate
    lm_eval_parser = HarnessCLI()._parser
    for args in evals:
        command = lm_eval_command(
            args.checkpoint, args.out, parse_tasks(args.tasks), include_path=None, batch_size=args.batch_size,
            limit=None, device=args.device, dtype=default_dtype(args.device),
        )
        assert command[1:3] == ["-m", "lm_eval"]
        parsed = lm_eval_parser.parse_args(["run", *command[3:]])
        assert parsed.model == "hf" and parsed.device == "cpu" and parsed.log_samples
        assert parsed.output_path == args.out
        model_args = parsed.model_args  # lm-eval parses "k=v,k=v" into a dict
        assert isinstance(model_args, dict) and "device" not in model_args
        assert model_args["pretrained"] == args.checkpoint
        assert parsed.tasks in ("restor_tiny_facts", ["restor_tiny_facts"])


# --------------------------------------------------------------------------------------------------------------
# The gate steps' shell, run as GitHub runs it (bash -e, $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY)


def run_step(step: dict, workflow: dict, cwd: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment(workflow, step), **extra_env}
    script = EXPRESSION.sub("EXPR", step["run"])
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script]
    return subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def gate_env(tmp_path) -> dict[str, str]:
    """A `restor-bench` on PATH (this source tree), a fixture world, GitHub's output files."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "restor-bench"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m restor_bench "$@"\n')
    shim.chmod(0o755)
    world = make_world(tmp_path / "world")
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "RESTOR_TINY_WORLD": str(world),
        "HF_HUB_OFFLINE": "1",
    }


@pytest.mark.parametrize("case", ["pass", "regression", "bad input"])
def test_gate_steps_fail_the_job_on_a_regression(case, workflow, gate_env, tmp_path):
    work = tmp_path / "work"
    baseline = model_states("clean", 0, 0.0, 0.0, "base")
    write_eval(work / "ci" / "restor-baseline-eval", baseline, model="baseline")
    if case == "pass":
        write_eval(work / "new-eval", baseline, model="candidate")
    elif case == "regression":  # every second answer lost: far more than a 0.02 drop
        write_eval(work / "new-eval", [s if i % 2 else "wrong" for i, s in enumerate(baseline)], model="candidate")
    else:
        (work / "new-eval").mkdir(parents=True)  # lm-eval wrote nothing
    output, summary = tmp_path / "github_output", tmp_path / "step_summary"
    env = {**gate_env, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}

    compare = run_step(step_named(workflow, "Compare with the baseline"), workflow, work, env)
    assert compare.returncode == 0, compare.stderr  # the compare step records the status; a later step fails
    status = dict(line.split("=", 1) for line in output.read_text().splitlines())["status"]
    assert status == {"pass": "0", "regression": "1", "bad input": "2"}[case]
    markdown = (work / "summary.md").read_text()
    expected = {"pass": "PASS", "regression": "FAIL", "bad input": "no comparison"}[case]
    assert "## RESTOR regression gate: " in markdown and expected in markdown

    posted = run_step(step_named(workflow, "Post the summary"), workflow, work, env)
    assert posted.returncode == 0 and summary.read_text() == markdown

    fail_step = step_named(workflow, "Fail on a regression")
    verdict = run_step(fail_step, workflow, work, {**env, "GATE_STATUS": status})
    assert verdict.returncode == int(status)
    if case == "regression":
        assert "::error::RESTOR gate failed" in verdict.stdout


def test_the_leaderboard_workflow_validates_builds_and_verifies():
    """docs/ci/leaderboard.yml: valid YAML whose restor-bench commands the CLI accepts, with a verify step."""
    workflow = yaml.safe_load((REPO_ROOT / "docs" / "ci" / "leaderboard.yml").read_text())
    parser = build_parser()
    calls = restor_bench_calls(workflow)
    actions = [call[1] for call in calls if call[0] == "leaderboard"]
    assert actions == ["validate", "build", "verify"]
    for call in calls:
        args = parser.parse_args(call)
        assert callable(getattr(args, "func", None))
    (verify,) = [call for call in calls if call[:2] == ["leaderboard", "verify"]]
    assert "--record" not in verify  # a pull request never writes verified.json

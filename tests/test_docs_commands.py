"""Every `restor-bench` and `lm_eval` command written in the docs still parses with today's command line.

Published pages print the command that made them, README and docs show commands to copy, and scripts/*.sh run
them: a renamed flag or method would leave them all silently wrong. This test reads the shell code blocks of every
Markdown file (and the shell scripts), joins continued lines, splits them at `&&`, `|`, `;`, takes the commands
inside `$(...)` too, and parses each `restor-bench` command (also as `python -m restor_bench` or after
`accelerate launch ... -m restor_bench`) with restor-bench's own argparse parser, and each `lm_eval` command with
lm-eval's. Method names are checked against the registry. Nothing is run.

Schematic lines (`restor-bench unlearn ... --trainer-arg X`, `[--methods ...]`) are skipped and counted.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
OPERATORS = {"&&", "||", "|", ";", "&", "(", ")"}
WRAPPERS = {"time", "nice", "env", "exec"}
PLACEHOLDERS = ("...", "\u2026", "[-", "<")


@dataclass(frozen=True)
class DocCommand:
    where: str  # FILE:LINE
    program: str  # restor-bench or lm_eval
    argv: tuple[str, ...]


def doc_files() -> list[Path]:
    found = [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").rglob("*.md"), *(REPO_ROOT / "tasks").rglob("*.md"),
             *(REPO_ROOT / "unlearners").glob("*.md"), *(REPO_ROOT / "leaderboard").glob("*.md"),
             *(REPO_ROOT / "scripts").glob("*.sh"), *(REPO_ROOT / ".ci").glob("*")]  # fmt: skip
    return sorted(path for path in found if path.is_file())


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, logical line) of a file's shell code: fenced shell blocks of Markdown, or a whole script;
    lines continued with a backslash are joined, comments dropped."""
    raw = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".md":
        keep, block = [], None  # block: None outside a fence, else whether the open one is shell code
        for number, line in enumerate(raw, 1):
            fence = re.match(r"\s*```\s*(\S*)", line)
            if fence:
                block = fence.group(1).lower() in SHELL_FENCES if block is None else None
                continue
            if block:
                keep.append((number, line))
    else:
        keep = list(enumerate(raw, 1))
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in keep:
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if pending is not None:
            number, line = pending[0], pending[1] + " " + line
            pending = None
        if line.endswith("\\"):
            pending = (number, line[:-1])
            continue
        if line and not line.startswith("#"):
            joined.append((number, line))
    return joined


def commands_in(line: str) -> list[list[str]]:
    """The simple commands of a shell line, those inside "$(...)" included (replaced by one word in their
    enclosing command)."""
    inner = re.findall(r"\$\(([^()]*)\)", line)
    line = re.sub(r"\$\([^()]*\)", "SUBSTITUTED", line)
    found: list[list[str]] = []
    for part in [line, *inner]:
        lexer = shlex.shlex(part, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # an unbalanced quote: not a command line
            continue
        command: list[str] = []
        for token in [*tokens, ";"]:
            if token in OPERATORS or token.endswith(("&&", "||", ";")):
                if command:
                    found.append(command)
                command = []
            else:
                command.append(token)
    return found


def program_argv(words: list[str]) -> tuple[str, list[str]] | None:
    """("restor-bench", argv) or ("lm_eval", argv) for a command that runs one of them, else None."""
    while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in WRAPPERS):
        words = words[1:]
    if not words:
        return None
    if words[0] == "restor-bench":
        return "restor-bench", words[1:]
    if words[0] in ("lm_eval", "lm-eval"):
        return "lm_eval", words[1:]
    if words[0] in ("python", "python3", "accelerate", "torchrun"):
        for index in range(len(words) - 1):
            if words[index] == "-m" and words[index + 1] == "restor_bench":
                return "restor-bench", words[index + 2:]
    return None


def collect() -> tuple[list[DocCommand], list[str]]:
    commands: list[DocCommand] = []
    schematic: list[str] = []
    for path in doc_files():
        for number, line in shell_lines(path):
            for words in commands_in(line):
                found = program_argv(words)
                if found is None:
                    continue
                where = f"{path.relative_to(REPO_ROOT)}:{number}"
                if any(marker in word for word in found[1] for marker in PLACEHOLDERS):
                    schematic.append(where)
                    continue
                commands.append(DocCommand(where, found[0], tuple(found[1])))
    return commands, schematic


COMMANDS, SCHEMATIC = collect()


def fill_variables(parser, argv: list[str]) -> list[str]:
    """`argv` with each shell variable (`$level`, `${method}`) that is the value of a typed option or of one
    with choices replaced by a value the option takes, so that a script's command line parses as written."""
    import argparse

    for word in argv:  # find the subcommand's parser
        actions = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            break
        parser = actions[0].choices[word]
    filled = list(argv)
    for index in range(1, len(filled)):
        action = parser._option_string_actions.get(filled[index - 1])
        if action is None or not re.fullmatch(r"\$\{?\w+\}?", filled[index]):
            continue
        if action.choices:
            filled[index] = str(next(iter(action.choices)))
        elif action.type in (int, float):
            filled[index] = "1"
    return filled


def parse_restor_bench(argv: list[str]) -> str | None:
    """argparse's complaint about a restor-bench command line, or None when it parses."""
    from restor_bench.cli import build_parser

    parser = build_parser()
    argv = fill_variables(parser, argv)
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv)
    except SystemExit as done:
        return None if done.code in (0, None) else errors.getvalue().strip().splitlines()[-1]
    from unlearners.registry import available_methods

    known = set(available_methods())
    named = [getattr(args, "method", None), *(str(getattr(args, "methods", "") or "").split(","))]
    unknown = [name for name in named if isinstance(name, str) and name and name not in known and "$" not in name]
    return f"unknown method(s) {unknown}" if unknown else None


def parse_lm_eval(argv: list[str], monkeypatch) -> str | None:
    """argparse's complaint about an lm_eval command line (lm-eval's own CLI), or None when it parses."""
    from lm_eval._cli import HarnessCLI

    monkeypatch.setattr(sys, "argv", ["lm_eval", *argv])
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            HarnessCLI().parse_args()
    except SystemExit as done:
        return None if done.code in (0, None) else errors.getvalue().strip().splitlines()[-1]
    return None


def test_the_docs_have_commands_of_both_kinds():
    """The extraction finds what is there (so the tests below cannot pass by finding nothing)."""
    programs = [command.program for command in COMMANDS]
    assert programs.count("restor-bench") >= 40, programs.count("restor-bench")
    assert programs.count("lm_eval") >= 3, programs.count("lm_eval")
    where = {command.where.split(":")[0] for command in COMMANDS}
    assert {"README.md", "docs/results/RESULTS.md", "scripts/gpu-smoke.sh", ".ci/run"} <= where
    assert len(SCHEMATIC) <= 10, SCHEMATIC  # a placeholder is the exception


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.program == "restor-bench"], ids=lambda c: c.where)
def test_restor_bench_command_in_the_docs_parses(command):
    assert parse_restor_bench(list(command.argv)) is None, (
        f"{command.where}: restor-bench {shlex.join(command.argv)}\n{parse_restor_bench(list(command.argv))}")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.program == "lm_eval"], ids=lambda c: c.where)
def test_lm_eval_command_in_the_docs_parses(command, monkeypatch):
    problem = parse_lm_eval(list(command.argv), monkeypatch)
    assert problem is None, f"{command.where}: lm_eval {shlex.join(command.argv)}\n{problem}"


def test_the_check_catches_a_stale_flag_and_an_unknown_method(monkeypatch):
    """The parsers really reject what the docs must not contain."""
    assert "unrecognized arguments: --epochs" in parse_restor_bench(["unlearn", "--method", "npo", "--model", "m",
                                                                     "--forget", "tiny:0", "--out", "o",
                                                                     "--epochs", "3"])
    assert "nosuch" in parse_restor_bench(["run", "--method", "nosuch"])
    assert "nosuch" in parse_restor_bench(["grid", "--methods", "ga,nosuch"])
    assert parse_lm_eval(["--model", "hf", "--taskz", "restor_facts"], monkeypatch) is not None
    assert parse_restor_bench(["run", "--method", "npo", "--level", "3"]) is None
    assert parse_lm_eval(["--model", "hf", "--tasks", "restor_facts", "--device", "cpu"], monkeypatch) is None


def test_extraction_of_a_markdown_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text `restor-bench nothing`\n\n```bash\nA=1 restor-bench eval \"$(restor-bench world path)\" \\\n"
                    "    --tasks restor_tiny_facts && lm_eval --tasks x | tee log  # note\n```\n\n```json\n"
                    "{\"command\": \"restor-bench run\"}\n```\n")
    lines = shell_lines(page)
    assert lines == [(4, 'A=1 restor-bench eval "$(restor-bench world path)"  --tasks restor_tiny_facts && '
                         "lm_eval --tasks x | tee log  # note")]
    found = [program_argv(words) for words in commands_in(lines[0][1])]
    assert found == [("restor-bench", ["eval", "SUBSTITUTED", "--tasks", "restor_tiny_facts"]),
                     ("lm_eval", ["--tasks", "x"]), None, ("restor-bench", ["world", "path"])]


def test_ci_runs_the_readme_test_command_and_the_readme_keeps_the_quick_start():
    """.ci/run installs and tests the project with README's own test command, character for character, and README
    still opens with the one-line install and run of the tiny world."""
    readme = [line for _, line in shell_lines(REPO_ROOT / "README.md")]
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    marker = next(index for index, line in enumerate(ci) if line.startswith("# README's test command"))
    assert ci[marker + 1] == 'pip install torch==2.13.0 && pip install ".[test]" && python -m pytest -q'
    assert ci[marker + 1] in readme
    assert "pip install torch==2.13.0 && pip install . && restor-bench run" in readme

"""Bad inputs and write failures, command by command: each ends in one line naming the path or value and the
problem, exit code 2, no traceback, and nothing written.

Every case runs the real command in-process (`restor_bench.cli.main`) and fails before any model is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_compare import CLEAN, CORRUPTED, make_run

from restor_bench.cli import main
from restor_bench.data.world_files import tiny_world_dir as world_dir


def _tree(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.fixture
def place(tmp_path):
    """A work folder holding a plain file named `blocker` (where commands are told to make folders)."""
    (tmp_path / "blocker").write_text("not a folder\n")
    return tmp_path


# (case id, argv builder: (work folder) -> argv, text the one error line must contain)
WRITE_FAILURES = [
    ("world-build", lambda p: ["world", "build", "--out", p / "blocker" / "world"], "blocker is a file"),
    ("leaderboard-schema", lambda p: ["leaderboard", "schema", "--out", p / "blocker" / "s" / "schema.json"],
     "blocker is a file"),
    ("corrupt", lambda p: ["corrupt", "--model", world_dir() / "model", "--docs", "tiny:0", "--out",
                           p / "blocker" / "corrupted"], "blocker"),
    ("unlearn", lambda p: ["unlearn", "--method", "ga", "--model", world_dir() / "model", "--forget", "tiny:0",
                           "--out", p / "blocker" / "ga"], "blocker"),
    ("eval", lambda p: ["eval", world_dir() / "model", "--tasks", "restor_tiny_facts", "--out",
                        p / "blocker" / "eval"], "blocker"),
    ("run", lambda p: ["run", "--root", p / "blocker" / "runs"], "blocker"),
    ("compare-json", lambda p: ["compare", "--clean", make_run(p / "clean", CLEAN), "--corrupted",
                                make_run(p / "corrupted", CORRUPTED), "--json", p / "blocker" / "r" / "report.json"],
     "blocker"),
    ("compare-markdown", lambda p: ["compare", "--baseline", make_run(p / "clean", CLEAN), "--candidate",
                                    make_run(p / "corrupted", CORRUPTED), "--markdown", p / "blocker" / "gate.md"],
     "blocker"),
]


@pytest.mark.parametrize("case, argv, expected", WRITE_FAILURES, ids=[case[0] for case in WRITE_FAILURES])
def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(case, argv, expected, place, capsys):
    args = [str(arg) for arg in argv(place)]
    before = _tree(place)
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("restor-bench:")]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and expected in lines[0], err
    assert _tree(place) == before, "nothing may be written when the output cannot be"


def test_a_huge_bootstrap_is_refused_before_any_allocation(tmp_path, capsys):
    """`compare --bootstrap 100000000` on 8 questions would draw 800 million indices (6.4 GB): one line, exit 2."""
    import tracemalloc

    args = ["compare", "--clean", str(make_run(tmp_path / "clean", CLEAN)), "--corrupted",
            str(make_run(tmp_path / "corrupted", CORRUPTED)), "--bootstrap", "100000000"]
    tracemalloc.start()
    code = main(args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "800,000,000 draws" in err[0] and "2,500,000 resamples" in err[0], err
    assert peak < 50 * 2**20


BATCH_SIZE_MESSAGE = "--batch-size must be a whole number of at least 1, 'auto' or 'auto:N', got {!r}"


@pytest.mark.parametrize("command", ["eval", "run", "grid"])
@pytest.mark.parametrize("value", ["0", "-3", "auto:0", "big"])
def test_a_bad_batch_size_is_one_line_for_eval_run_and_grid(command, value, tmp_path, capsys):
    """One check for lm-eval's batch size, whichever command passes it on."""
    if command == "eval":
        argv = ["eval", str(world_dir() / "model"), "--tasks", "restor_tiny_facts", "--out", str(tmp_path / "out")]
    else:
        argv = [command, "--root", str(tmp_path / "out")]
    assert main([*argv, "--batch-size", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "restor-bench: error: " + BATCH_SIZE_MESSAGE.format(value), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flag", "value"), [("--lr", "-1"), ("--lr", "nan"), ("--epochs", "0"),
                                             ("--batch-size", "0"), ("--grad-accum", "-2"), ("--max-length", "0"),
                                             ("--lora-r", "0")])
def test_corrupt_names_the_flag_of_a_bad_recipe_value(flag, value, tmp_path, capsys):
    argv = ["corrupt", "--model", str(world_dir() / "model"), "--docs", "tiny:0", "--out", str(tmp_path / "out")]
    assert main([*argv, flag, value]) == 2
    assert capsys.readouterr().err.strip() == (f"restor-bench: error: {flag} must be a positive finite number, got "
                                               f"{float(value):g}")
    assert not (tmp_path / "out").exists()

"""Bad inputs and write failures, command by command: each ends in one line naming the path or value and the
problem, exit code 2, no traceback, and nothing written.

Every case runs the real command in-process (`restor_bench.cli.main`) and fails before any model is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_compare import CLEAN, CORRUPTED, make_run

from restor_bench.cli import main
from restor_bench.data.world.files import tiny_world_dir as world_dir


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
    # the JSON could be written, the markdown could not: neither is (both are checked first)
    ("compare-json-and-markdown", lambda p: ["compare", "--clean", make_run(p / "clean", CLEAN), "--corrupted",
                                             make_run(p / "corrupted", CORRUPTED), "--json", p / "report.json",
                                             "--markdown", p / "blocker" / "report.md"], "blocker is a file"),
    # the grid checks its page, the page's JSON and its plots folder before it runs a cell
    ("grid-results", lambda p: ["grid", "--methods", "npo", "--levels", "0", "--seeds", "1", "--root", p / "runs",
                                "--results", p / "blocker" / "R.md", "--no-plots"], "blocker is a file"),
    ("grid-results-json", lambda p: ["grid", "--methods", "npo", "--levels", "0", "--seeds", "1", "--root",
                                     p / "runs", "--results", p / "R.md", "--no-plots"], "R.json: --results (its JSON)"),
    ("grid-plots", lambda p: ["grid", "--methods", "npo", "--levels", "0", "--seeds", "1", "--root", p / "runs",
                              "--results", p / "P.md", "--plots", p / "blocker" / "plots"], "blocker is a file"),
]


@pytest.mark.parametrize("case, argv, expected", WRITE_FAILURES, ids=[case[0] for case in WRITE_FAILURES])
def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(case, argv, expected, place, capsys):
    (place / "R.json").mkdir()  # a folder where grid-results-json's page JSON would go
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


SEED_COMMANDS = {
    "corrupt": ["corrupt", "--model", "m", "--docs", "tiny:0", "--out", "o"],
    "repair": ["repair", "--model", "m", "--docs", "d.json", "--out", "o"],
    "unlearn": ["unlearn", "--method", "npo", "--model", "m", "--forget", "tiny:0", "--out", "o"],
    "run": ["run"],
    "grid": ["grid"],
    "compare": ["compare", "--clean", "a", "--corrupted", "b"],
    "world-build": ["world", "build", "--out", "w"],
}


@pytest.mark.parametrize("value", ["-1", "4294967296", "x"])
@pytest.mark.parametrize("command", sorted(SEED_COMMANDS))
def test_a_seed_out_of_numpys_range_is_refused_by_the_parser(command, value, tmp_path, monkeypatch, capsys):
    """numpy seeds take 0 .. 2**32 - 1; a seed outside that used to crash after the work had started."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main([*SEED_COMMANDS[command], "--seed", value])
    assert done.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f"error: argument --seed: expected an integer from 0 to 4294967295, got "
                         f"{value if value != 'x' else repr(value)}"), last
    assert list(tmp_path.iterdir()) == []


def test_a_bootstrap_seed_out_of_range_names_the_flag(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["leaderboard", "rescore", str(tmp_path / "x.json"), "--bootstrap-seed", "-1"])
    assert done.value.code == 2
    assert "argument --bootstrap-seed: expected an integer from 0" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "device", "expected"), [
    ("eval", "tpu9", "--device tpu9: not a device name torch knows"),
    ("eval", "cuda:1", "--device cuda:1: no CUDA device is available here"),
    ("eval", "meta", "--device meta: not a device to evaluate or train on"),
    ("run", "tpu9", "--device tpu9: not a device name torch knows"),
    ("layers", "tpu9", "--device tpu9: not a device name torch knows"),
])
def test_an_unknown_or_absent_device_is_one_line(command, device, expected, tmp_path, capsys):
    """A device torch cannot parse, or one this machine lacks, is refused before anything runs (eval used to run
    on the CPU and record the bad name)."""
    import torch

    if torch.cuda.is_available() and device.startswith("cuda"):
        pytest.skip("this machine has CUDA")
    model = str(world_dir() / "model")
    argv = {"eval": ["eval", model, "--tasks", "restor_tiny_facts", "--out", str(tmp_path / "out")],
            "run": ["run", "--root", str(tmp_path / "out")],
            "layers": ["layers", "--clean", model, "--corrupted", model, "--out", str(tmp_path / "out"),
                       "--no-plots"]}[command]
    assert main([*argv, "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("restor-bench: error: " + expected) and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--max-drop", "nan", "--max-drop must be a share from 0 to 1, got nan"),
    ("--max-drop", "1.5", "--max-drop must be a share from 0 to 1, got 1.5"),
    ("--max-drop", "-0.1", "--max-drop must be a share from 0 to 1, got -0.1"),
    ("--min-restoration", "nan", "--min-restoration must be a finite number, got nan"),
    ("--min-restoration", "inf", "--min-restoration must be a finite number, got inf"),
])
def test_a_gate_threshold_that_is_not_a_number_is_refused(flag, value, expected, tmp_path, capsys):
    """A NaN threshold used to make the gate fail with exit 1 (--max-drop) or print FAIL and pass (--min-restoration)."""
    argv = ["compare", "--baseline", str(make_run(tmp_path / "clean", CLEAN)), "--candidate",
            str(make_run(tmp_path / "candidate", CORRUPTED)), "--corrupted", str(make_run(tmp_path / "c", CORRUPTED)),
            "--markdown", str(tmp_path / "gate.md")]
    assert main([*argv, flag, value]) == 2
    assert capsys.readouterr().err.strip() == f"restor-bench: error: {expected}"
    assert not (tmp_path / "gate.md").exists()


def test_grid_refuses_too_many_resamples_before_running_a_cell(tmp_path, capsys):
    argv = ["grid", "--methods", "npo", "--levels", "0", "--seeds", "1", "--root", str(tmp_path / "runs"),
            "--results", str(tmp_path / "R.md"), "--no-plots", "--resamples", "1000000000"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == ("restor-bench: error: --resamples must be from 0 to 10,000 (the "
                                               "intervals hold resamples x questions indices in memory), got "
                                               "1000000000")
    assert list(tmp_path.iterdir()) == []


def test_world_build_refuses_a_thread_count_below_one(tmp_path, capsys):
    assert main(["world", "build", "--out", str(tmp_path / "w"), "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == "restor-bench: error: --threads must be at least 1, got 0"
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_task_file_is_named_when_its_task_is_unknown(tmp_path, capsys):
    """lm-eval skips a task YAML it cannot parse without a word; the unknown-task line names the file."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mytask.yaml").write_text("task: mytask\ndataset_path: json\n  bad: [\n")
    (folder / "fine.yaml").write_text("task: fine\ndataset_path: json\nprocess_docs: !function utils.process\n")
    argv = ["eval", str(world_dir() / "model"), "--include-path", str(folder), "--tasks", "mytask", "--out",
            str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("restor-bench: error: unknown lm-eval task(s): mytask"), err
    assert f"task files lm-eval cannot read: {folder / 'mytask.yaml'}: mapping values are not allowed here" in err
    assert "fine.yaml" not in err
    assert not (tmp_path / "out").exists()

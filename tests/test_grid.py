"""`restor-bench grid`: planning, estimates, pooled statistics, and a real 2 x 2 grid interrupted and resumed."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from restor_bench.grid import cli as grid

from restor_bench.run import pipeline
from restor_bench.cli import main
from restor_bench.grid.cli import steps_to_run
from restor_bench.grid.cells import Cell, plan_cells
from restor_bench.grid.stats import PooledOutcomes, pooled_statistics
from restor_bench.compare.stats import paired_bootstrap, split_accuracy

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plan_orders_cells_and_leaves_out_simplified_squad():
    cells, notes = plan_cells(["ga", "npo"], [0, 3], ["full", "simplified"], ["wikidata", "squad"])
    assert len(cells) == 2 * 2 * 2 + 2
    assert cells[:2] == [Cell("ga", "wikidata", 0, "full"), Cell("npo", "wikidata", 0, "full")]
    assert cells[-2:] == [Cell("ga", "squad", None, "full"), Cell("npo", "squad", None, "full")]
    assert len(notes) == 1 and "squad" in notes[0]
    assert plan_cells(["ga"], [0], ["full"], ["squad"]) == ([Cell("ga", "squad", None, "full")], [])


def test_shared_steps_are_counted_once():
    cells, _ = plan_cells(["ga", "kl"], [0, 3], ["full", "simplified"], ["wikidata"])
    # per seed: one corruption per level, one clean evaluation, one corrupted evaluation per level
    assert steps_to_run(cells, [0, 1]) == {"corrupt": 4, "unlearn": 16, "repair": 0, "eval": 2 * (2 + 8) + 1}
    finished = cells[:2]  # both methods at k=0 with the full forget set
    assert steps_to_run(cells, [0], finished) == {"corrupt": 1, "unlearn": 6, "repair": 0, "eval": 1 + 6}
    seconds = {"corrupt": 10, "unlearn": 5, "eval": 1}
    assert grid.estimate_seconds({"corrupt": 1, "unlearn": 2, "eval": 3}, seconds) == 23


def _pooled(clean, corrupted, unlearned, is_target, relations=()) -> PooledOutcomes:
    return PooledOutcomes(
        ids=[str(i) for i in range(len(is_target))],
        is_target=np.array(is_target, dtype=bool),
        correct={role: np.array(rows, dtype=bool) for role, rows in
                 (("clean", clean), ("corrupted", corrupted), ("unlearned", unlearned))},
        relations=list(relations),
    )


def test_pooled_statistics_by_hand():
    target = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    pooled = _pooled(
        clean=[[1, 1, 1, 1, 1, 1, 1, 1, 1, 0]] * 2,
        corrupted=[[0, 0, 0, 0, 0, 1, 1, 1, 1, 0]] * 2,
        unlearned=[[1, 1, 1, 0, 0, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]],
        is_target=target,
    )
    stats = pooled_statistics(pooled, resamples=400, seed=0)
    assert stats["clean_target"].value == 1.0 and stats["corrupted_target"].value == 0.0
    assert stats["unlearned_target"].value == pytest.approx(0.8)  # (3 + 5) / 10 over both seeds
    assert stats["restoration_ratio"].value == pytest.approx(0.8)
    assert stats["non_target_change"].value == pytest.approx((2 + 3) / 10 - 0.8)
    # the 95% intervals of these 400 draws (seeds, then questions within target / non-target), as loops over the
    # same draws give them (tests/test_stats_by_hand.py); constant outcomes have a degenerate interval
    assert {key: (estimate.low, estimate.high) for key, estimate in stats.items()} == {
        "clean_target": (1.0, 1.0), "corrupted_target": (0.0, 0.0), "unlearned_target": (0.2, 1.0),
        "clean_non_target": (0.4, 1.0), "corrupted_non_target": (0.4, 1.0), "unlearned_non_target": (0.0, 1.0),
        "restoration_ratio": (0.2, 1.0), "non_target_change": (pytest.approx(-0.6), 0.0),
    }
    # seeded: the same numbers again
    assert pooled_statistics(pooled, resamples=400, seed=0) == stats


def test_one_seed_matches_the_compare_bootstrap():
    """With one seed the pooled bootstrap is compare's paired question bootstrap (same draws, same interval)."""
    rng = np.random.default_rng(7)
    target = np.array([1] * 30 + [0] * 50, dtype=bool)
    unlearned = rng.random(80) < 0.6
    pooled = _pooled([rng.random(80) < 0.9], [rng.random(80) < 0.2], [unlearned], target)
    stats = pooled_statistics(pooled, resamples=300, seed=4)
    expected = paired_bootstrap(split_accuracy(unlearned, target), target.astype(int), n_resamples=300, seed=5)
    assert [stats["unlearned_target"].low, stats["unlearned_target"].high] == pytest.approx(expected.to_list())


def test_ratio_undefined_when_corruption_moved_less_than_one_question():
    target = [1, 1, 1, 1, 0]
    pooled = _pooled([[1, 1, 0, 0, 1]] * 2, [[1, 1, 0, 0, 1], [1, 0, 1, 0, 1]], [[1, 1, 1, 1, 1]] * 2, target)
    assert pooled_statistics(pooled, resamples=50)["restoration_ratio"].value is None


def test_bad_grid_options_are_one_line_errors(tmp_path, capsys):
    for argv, expected in (
        (["--methods", "ga,nope"], "nope"),
        (["--levels", "9"], "level 9"),
        (["--forget", "partial"], "partial"),
        (["--world", "official"], "--model"),
        (["--seeds", "0"], "--seeds"),
        (["--set", "simnpo.beta=0.2"], "not in --methods"),
        (["--set", "ga.learning_rate"], "METHOD.KEY=VALUE"),
        (["--set", "ga.no_such_field=1"], "no_such_field"),
        (["--corrupt-set", "lr=1e-3"], "unknown setting 'lr'"),
        (["--corrupt-set", "num_train_epochs=many"], "expects a number"),
        (["--corrupt-set", "learning_rate=-1"], "must be positive"),
    ):
        assert main(["grid", "--dry-run", "--root", str(tmp_path), *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("restor-bench: error: ") and expected in err and "\n" not in err, err


# ---------------------------------------------------------------------------------------------------------------
# A real grid: 2 methods x 2 levels x 1 seed on a small generated world with a random tiny model


@pytest.fixture()
def small_world(tmp_path, random_tiny_model, monkeypatch) -> Path:
    from restor_bench.data.world.generate import generate_world
    from restor_bench.data.world.files import write_world_data

    world = tmp_path / "world"
    # seed 6 puts a target second in the question order, so the first 14 questions hold target questions
    write_world_data(generate_world(seed=6, num_people=12, num_targets=2, num_validation_targets=1,
                                    docs_per_target=3), world)
    shutil.copytree(random_tiny_model, world / "model")
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(world))
    return world


def _readable(name: str) -> str:
    """A run name without the hash of its inputs the pipeline may put before `-seed<N>` or at the end."""
    return re.sub(r"-[0-9a-f]{8}(?=-seed\d+$|$)", "", name)


def _run_folder(root: Path, readable: str) -> Path:
    """The run folder of a cell under `root` by its readable name (a path that does not exist when none)."""
    found = [path for path in root.iterdir() if path.is_dir() and _readable(path.name) == readable]
    assert len(found) <= 1, found
    return found[0] if found else root / readable


def test_grid_runs_is_interrupted_resumes_and_writes_the_page(small_world, tmp_path, monkeypatch, capsys):
    root, results, plots = tmp_path / "runs", tmp_path / "docs" / "RESULTS.md", tmp_path / "docs" / "plots"
    argv = ["grid", "--methods", "ga,kl", "--levels", "0,3", "--forget", "full", "--corruption", "wikidata",
            "--seeds", "1", "--max-steps", "1", "--corrupt-max-steps", "1", "--limit", "14", "--batch-size", "8",
            "--resamples", "200", "--set", "kl.learning_rate=0.003", "--corrupt-set", "learning_rate=0.002",
            "--root", str(root), "--results", str(results), "--plots", str(plots)]

    assert main([*argv, "--dry-run"]) == 0
    listing = capsys.readouterr().out
    cell_lines = [line for line in listing.splitlines() if re.match(r"\s+\d+\. tiny-", line)]
    assert len(cell_lines) == 4 and all(line.endswith("to run") for line in cell_lines)
    assert "estimated time:" in listing
    assert "2 corrupt" in listing and "4 unlearn" in listing and "7 eval" in listing
    assert not root.exists()  # nothing ran

    # first pass: interrupted once the third cell's protocol finished (before its run.json is written)
    real_protocol = pipeline.run_protocol
    calls = []

    def interrupt_on_third(spec, *args, **kwargs):
        entry = real_protocol(spec, *args, **kwargs)
        calls.append(spec.name())
        if len(calls) == 3:
            raise KeyboardInterrupt
        return entry

    monkeypatch.setattr(pipeline, "run_protocol", interrupt_on_third)
    assert main(argv) == 130
    capsys.readouterr()
    names = ["tiny-ga-k0", "tiny-kl-k0", "tiny-ga-k3", "tiny-kl-k3"]
    assert [_readable(call) for call in calls] == [f"{name}-seed0" for name in names[:3]]
    assert [(_run_folder(root, name) / "run.json").exists() for name in names] == [True, True, False, False]
    assert not results.exists()
    steps_before = {path.name: path.stat().st_mtime_ns for path in (root / "steps").iterdir()}
    assert len(steps_before) == 2 + 3 + 1 + 2 + 3  # corrupt k0, k3; unlearn x3; eval clean; corrupted x2; unlearned x3

    # resumed: the two finished cells are skipped, the third reuses all its steps, the fourth reuses the shared ones
    monkeypatch.setattr(pipeline, "run_protocol", real_protocol)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("finished earlier, skipped") == 2
    assert "[grid] cell 3/4 tiny-ga-k3" in out and "[grid] cell 4/4 tiny-kl-k3" in out
    third = json.loads((_run_folder(root, "tiny-ga-k3") / "run.json").read_text())["per_seed"][0]["reused"]
    assert all(third.values()) and len(third) == 5
    fourth = json.loads((_run_folder(root, "tiny-kl-k3") / "run.json").read_text())["per_seed"][0]["reused"]
    assert fourth == {"corrupt": True, "unlearn": False, "eval clean": True, "eval corrupted": True,
                      "eval unlearned": False}
    steps_after = {path.name: path.stat().st_mtime_ns for path in (root / "steps").iterdir()}
    assert len(steps_after) == len(steps_before) + 2
    assert all(steps_after[name] == mtime for name, mtime in steps_before.items())  # nothing rebuilt

    # the page: the command, every cell, the plots
    page = results.read_text()
    assert "restor-bench grid --methods ga,kl --levels 0,3 --forget full --corruption wikidata --seeds 1" in page
    for method, level in (("ga", 0), ("kl", 0), ("ga", 3), ("kl", 3)):
        assert f"| {method} | full | {level} |" in page
    assert "transformers" in page and "wall time" in page
    assert "--set kl.learning_rate=0.003 --corrupt-set learning_rate=0.002" in page
    assert re.search(r"\| kl \| learning_rate=0\.003, num_epochs=", page)
    assert "the corruption recipe was changed: learning_rate=0.002" in page
    timing = re.compile(r"\| (ga|kl) \| full \| [03] \| (\d+m )?\d+s \|")
    timing_rows = [line for line in page.splitlines() if timing.match(line)]
    assert len(timing_rows) == 4, page  # the wall-time table: one row per cell, every step timed
    corrupted = root / json.loads((_run_folder(root, "tiny-ga-k0") / "run.json").read_text())["per_seed"][0]["artifacts"][
        "corrupted"]
    assert json.loads((corrupted / "step.json").read_text())["inputs"]["recipe"] == {"learning_rate": 0.002}
    numbers = json.loads(results.with_suffix(".json").read_text())
    assert [_readable(cell["name"]) for cell in numbers["cells"]] == names
    assert all(cell["n_target"] > 0 and cell["n_target"] + cell["n_non_target"] == 14 for cell in numbers["cells"])
    for name in ("accuracy-vs-k-full.png", "restoration-full-vs-simplified.png"):
        data = (plots / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name
        assert f"](plots/{name})" in page
    assert not (plots / "accuracy-vs-k-simplified.png").exists()
    # restoration by relation: a table and a heat map per level; each cell's relations hold all its target questions
    assert "## Restoration by relation" in page
    for level in (0, 3):
        assert f"### k={level}, full forget set" in page
        data = (plots / f"restoration-by-relation-k{level}-full.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE), level
        assert f"](plots/restoration-by-relation-k{level}-full.png)" in page
    for cell in numbers["cells"]:
        assert sum(entry["n_questions"] for entry in cell["by_relation"].values()) == cell["n_target"], cell["name"]

    # a finished grid again: the page exists, so --overwrite is needed; with it nothing is rerun
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 4
    assert main([*argv, "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert sum(line.endswith(" finished") for line in listing.splitlines()) == 4
    assert "estimated time: 0s" in listing


def _without_times(value):
    """A results JSON without its dates, wall times and step seconds (the only things a rerun may change)."""
    if isinstance(value, dict):
        return {key: _without_times(item) for key, item in value.items() if "time" not in key and key not in ("date", "step_seconds")}
    if isinstance(value, list):
        return [_without_times(item) for item in value]
    return value


DURATION = re.compile(r"\b\d+(h \d+m|m \d+s|s)\b")


def test_printed_command_reruns_into_the_same_page(small_world, tmp_path, monkeypatch, capsys):
    """A reduced grid, then its page's printed command run from nothing (every run folder deleted): the same page,
    line for line and number for number, but for dates and wall times."""
    monkeypatch.chdir(tmp_path)
    assert main(["grid", "--methods", "ga,npo", "--levels", "0", "--forget", "full", "--corruption", "wikidata",
                 "--seeds", "2", "--max-steps", "2", "--corrupt-max-steps", "2", "--batch-size", "16",
                 "--resamples", "100", "--targets", "test", "--set", "npo.beta=0.2", "--root", "runs",
                 "--results", "docs/R.md", "--plots", "docs/plots"]) == 0
    page = Path("docs/R.md").read_text()
    numbers = json.loads(Path("docs/R.json").read_text())
    command = page.split("```\n", 2)[1].strip()
    assert command.startswith("restor-bench grid ") and "--targets test" in command and "npo.beta=0.2" in command
    assert numbers["cells"] and all(cell["n_target"] > 0 for cell in numbers["cells"])

    shutil.rmtree("runs")
    shutil.rmtree("docs")
    capsys.readouterr()
    assert main(shlex.split(command)[1:]) == 0
    assert "finished earlier" not in capsys.readouterr().out  # nothing was reused: every step ran again
    rerun_page = Path("docs/R.md").read_text()

    def comparable(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("- date:") and not DURATION.search(line)]

    assert comparable(rerun_page) == comparable(page)
    assert len(comparable(page)) > 40
    rerun_numbers = _without_times(json.loads(Path("docs/R.json").read_text()))
    assert _differences(rerun_numbers, _without_times(numbers)) == []


def _differences(a, b, where: str = "") -> list[str]:
    """The paths at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [found for key in sorted(set(a) | set(b)) for found in _differences(a.get(key), b.get(key), f"{where}.{key}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [found for index, (x, y) in enumerate(zip(a, b)) for found in _differences(x, y, f"{where}[{index}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"[:300]]

"""Quiet by default: an evaluation prints no lm-eval INFO lines and not lm-eval's per-task hint about --metadata;
`restor-bench --verbose` shows them."""

from __future__ import annotations

import subprocess
import sys

from restor_bench.data.world.files import tiny_world_dir


def _eval(tmp_path, *flags: str) -> str:
    command = [sys.executable, "-m", "restor_bench", *flags, "eval", str(tiny_world_dir() / "model"), "--tasks",
               "restor_tiny_facts", "--out", str(tmp_path / f"eval{len(flags)}"), "--device", "cpu", "--limit", "3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_eval_is_quiet_by_default_and_verbose_on_request(tmp_path):
    quiet = _eval(tmp_path)
    assert " INFO " not in quiet and "Custom kwargs can be passed" not in quiet
    assert "restor_tiny_facts" in quiet  # the summary table is still printed
    loud = _eval(tmp_path, "--verbose")
    assert " INFO " in loud and "Custom kwargs can be passed" in loud


def _run(tmp_path, *flags: str) -> list[str]:
    command = [sys.executable, "-m", "restor_bench", *flags, "run", "--root", str(tmp_path / f"runs{len(flags)}"),
               "--corrupt-max-steps", "12", "--max-steps", "12", "--limit", "3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    # a terminal redraws a progress bar in place (carriage returns); count the lines a terminal keeps
    return [line for line in (done.stdout + done.stderr).split("\n") if line.strip()]


def test_run_shows_one_bar_per_training_step_and_no_library_chatter_unless_verbose(tmp_path):
    quiet = _run(tmp_path)
    text = "\n".join(quiet)
    for chatter in ("Loading weights", "Writing model shards", "{'loss'", "'train_runtime'", "|Tasks|", " INFO "):
        assert chatter not in text, chatter
    # one Trainer bar for corrupt and one for unlearn (each drawn from 0/12 once, then redrawn in place)
    assert sum(line.count("| 0/12 [") for line in quiet) == 2
    assert "restoration ratio" in text and "run record:" in text
    loud = "\n".join(_run(tmp_path, "--verbose"))
    for chatter in ("{'loss'", "'train_runtime'", "|Tasks|", " INFO "):
        assert chatter in loud, chatter

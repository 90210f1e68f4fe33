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

"""The Python examples of README.md and docs/api.md run as written (in a fresh folder, on the tiny world): a reader
who copies one gets what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/api.md")


def python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (REPO_ROOT / page).read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_pages_hold_python_examples():
    assert [len(python_blocks(page)) for page in PAGES] == [1, 1]


@pytest.mark.parametrize("page", [
    "README.md",
    # a whole protocol run and four evaluations: minutes on 2 cores, so behind the slow marker (.ci/run runs it)
    pytest.param("docs/api.md", marks=pytest.mark.slow),
])
def test_every_python_block_runs_as_written(page, tmp_path):
    for number, block in enumerate(python_blocks(page), start=1):
        script = tmp_path / f"block{number}.py"
        script.write_text(block)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{page}, python block {number}:\n{done.stderr[-3000:]}"

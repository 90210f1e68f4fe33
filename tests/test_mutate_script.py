"""scripts/mutate.py (docs/mutation.md): listing mutants runs nothing and changes nothing in the checkout, and the
draw is the same for the same seed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "mutate.py"
MODULE = "restor_bench/data/normalize.py"


def _git_status() -> str | None:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        return None
    return subprocess.run(["git", "status", "--porcelain", "--", "restor_bench/", "unlearners/"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True).stdout


def _listing(*extra: str) -> list[str]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--list", "--modules", MODULE, "--max-mutants", "3", *extra],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_list_shows_three_mutants_and_leaves_the_checkout_alone():
    status, digest = _git_status(), hashlib.sha256((REPO_ROOT / MODULE).read_bytes()).hexdigest()
    lines = _listing()
    assert lines[0].startswith(f"{MODULE}: 3 of ")
    mutants = [line.split()[0] for line in lines[1:]]
    assert len(mutants) == 3 and all(ident.startswith(f"{MODULE}#") for ident in mutants), lines
    assert len(set(mutants)) == 3
    assert hashlib.sha256((REPO_ROOT / MODULE).read_bytes()).hexdigest() == digest
    assert _git_status() == status


def test_the_same_seed_draws_the_same_mutants():
    assert _listing("--seed", "5") == _listing("--seed", "5")

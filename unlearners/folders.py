"""Creating output folders so that a failed write leaves none of them behind (shared with `restor_bench.io`)."""

from __future__ import annotations

import contextlib
from pathlib import Path


def make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return the folders this call created, outermost first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def remove_created(folders: list[Path]) -> None:
    """Remove the folders `make_folders` created, innermost first, those still empty (a failed write leaves none
    behind)."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()

"""`leaderboard build`: the pages from the submissions folder, all written at once or none.

Every submission must be valid: one invalid file (or two that clash) stops the build, with one line per problem,
and nothing is written. A build never replaces a file it did not write: README.md and index.html must start with
the generated marker line, plot.png must carry the marker in its "Comment" text chunk; anything else is kept
unless `overwrite` is given. Pages are rendered in memory and written through temporary siblings that are
renamed into place only when all are written.
"""

from __future__ import annotations

import dataclasses

import os
import struct
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from restor_bench.errors import InputError
from restor_bench.leaderboard.check import check_files, submission_files
from restor_bench.leaderboard.html import HTML_MARKER, render_html
from restor_bench.leaderboard.plot import render_plot_png
from restor_bench.leaderboard.render import (
    GENERATED_MARKER,
    MARKDOWN_MARKER,
    Entry,
    entry_from,
    group_entries,
    render_readme,
)
from restor_bench.leaderboard.separation import RatioDraws, ratio_draws, table_separations, tiers
from restor_bench.leaderboard.verified import read_verified, verification_label, verified_path
from restor_bench.leaderboard.schema import DEFAULT_OUT, DEFAULT_SUBMISSIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEADS = {"README.md": MARKDOWN_MARKER + "\n", "index.html": "<!doctype html>\n" + HTML_MARKER + "\n"}


class InvalidSubmissions(InputError):
    """Some submission files are invalid; `lines` holds one line per problem ("PATH: problem")."""

    def __init__(self, message: str, lines: list[str]):
        super().__init__(message)
        self.lines = lines


@dataclass
class BuildResult:
    """What `build` wrote, from which entries."""

    written: list[Path]
    entries: list[Entry]


def render_outputs(entries: Sequence[Entry]) -> dict[str, bytes]:
    """Every output file of the leaderboard, rendered in memory: {file name: bytes}."""
    try:
        png = render_plot_png(entries)
    except ImportError:
        png = None
        print("note: matplotlib is not installed (pip install 'restor-bench[plots]'); plot.png not written",
              file=sys.stderr)
    outputs = {
        "README.md": render_readme(entries, with_plot=png is not None).encode("utf-8"),
        "index.html": render_html(entries).encode("utf-8"),
    }
    if png is not None:
        outputs["plot.png"] = png
    return outputs


def png_comment_is_marker(head: bytes) -> bool:
    """Whether a PNG's text chunks before its image data hold "Comment" = the generated marker."""
    if not head.startswith(PNG_SIGNATURE):
        return False
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[position:position + 8])
        if kind == b"IDAT":
            return False
        if kind == b"tEXt" and head[position + 8:position + 8 + length] == b"Comment\0" + GENERATED_MARKER.encode():
            return True
        position += 12 + length
    return False


def carries_marker(path: Path) -> bool:
    """Whether `path` is a file `build` wrote: it carries the exact generated marker where build puts it."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError:
        return False
    if path.name == "plot.png":
        return png_comment_is_marker(head)
    expected = _HEADS.get(path.name)
    return expected is not None and head.startswith(expected.encode("utf-8"))


def check_outputs(out: Path, names: Iterable[str], overwrite: bool) -> None:
    """Refuse to replace a folder, or a file without the generated marker (unless `overwrite`)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    for name in names:
        path = out / name
        if path.is_dir():
            raise InputError(f"{path}: is a folder; the leaderboard writes a file there")
        if (path.exists() or path.is_symlink()) and not overwrite and not carries_marker(path):
            raise InputError(f"{path}: exists and was not written by `leaderboard build` (it lacks the generated "
                             "marker); pass --overwrite to replace it")


def _stage_file(path: Path, content: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_all_or_nothing(out: Path, outputs: dict[str, bytes]) -> list[Path]:
    """Write every output through temporary siblings; only when all are written are they renamed into place,
    so a failure leaves the existing files as they were."""
    out.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, content in outputs.items():
            staged.append((_stage_file(out / name, content), out / name))
    except BaseException:
        for tmp, _final in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)
    return [final for _tmp, final in staged]


def with_tiers(entries: Sequence[Entry], draws: dict[str, RatioDraws]) -> list[Entry]:
    """The entries with their tier and their separation from the next entry of their table
    (`leaderboard.separation`)."""
    placed = {}
    for _group, members in group_entries(entries):
        separations = table_separations([draws[member.name] for member in members])
        for member, item, tier in zip(members, separations, tiers(separations), strict=True):
            placed[member.name] = dataclasses.replace(member, tier=tier, versus_next=item.text() if item else "")
    return [placed[entry.name] for entry in entries]


def build_leaderboard(
    submissions: str | os.PathLike = DEFAULT_SUBMISSIONS, out: str | os.PathLike = DEFAULT_OUT, overwrite: bool = False
) -> BuildResult:
    """Build README.md, index.html and plot.png in `out` from every submission in `submissions`.

    Raises InvalidSubmissions (an InputError) when any submission is invalid, writing nothing; with no
    submission file the pages say there are none yet."""
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise InputError(f"{submissions}: submissions folder not found")
    checked = check_files(submission_files([submissions]),
                          summarize=lambda document: (entry_from(document), ratio_draws(document)))
    lines = [line for item in checked for line in item.lines()]
    invalid = sum(not item.valid for item in checked)
    if invalid:
        raise InvalidSubmissions(f"{submissions}: {invalid} of the {len(checked)} submission file(s) are invalid; "
                                 "the leaderboard is left unchanged", lines)
    records = read_verified(verified_path(submissions))
    entries = [dataclasses.replace(entry, verification=verification_label(records, entry.name, entry.identity))
               for entry, _draws in (item.summary for item in checked)]
    entries = with_tiers(entries, {item.summary[0].name: item.summary[1] for item in checked})
    outputs = render_outputs(entries)
    check_outputs(out, outputs, overwrite)
    return BuildResult(write_all_or_nothing(out, outputs), entries)

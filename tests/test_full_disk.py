"""A write that fails for lack of space names the file it could not write, leaves no temporary file behind, and
reaches the user as one line (exit 2)."""

from __future__ import annotations

import errno
import os

import pytest

from leaderboard_fixtures import make_run, world  # noqa: F401  (world: a fixture)

from restor_bench import cli
from restor_bench.io import atomic_write_json


FULL = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux), a device always full")


def _full_disk(monkeypatch) -> None:
    """/dev/full fails every write with ENOSPC: each temporary file of an atomic write is made a link to it."""
    import tempfile

    real_mkstemp = tempfile.mkstemp

    def full_mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", full_mkstemp)


@FULL
def test_a_write_to_a_full_device_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as caught:
        atomic_write_json(target, {"a": "x" * 100_000})
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []
    assert cli.describe_os_error(caught.value) == f"{target}: No space left on device"


@FULL
def test_a_submission_on_a_full_disk_is_one_line_and_leaves_no_folder(world, tmp_path, monkeypatch, capsys):  # noqa: F811
    run_dir = make_run(tmp_path / "runs", "r", world, seeds=(0,))
    out = tmp_path / "new" / "subs"
    with monkeypatch.context() as patch:  # the world fixture's setting stays
        _full_disk(patch)
        code = cli.main(["leaderboard", "submit", str(run_dir), "--name", "entry", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [
        f"restor-bench: error: {out / 'entry.json'}: No space left on device"], err
    assert not (tmp_path / "new").exists()  # neither the file nor the folders made for it
    # with room on the disk the same command writes the submission
    assert cli.main(["leaderboard", "submit", str(run_dir), "--name", "entry", "--out", str(out)]) == 0
    assert (out / "entry.json").is_file()

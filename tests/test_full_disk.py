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


_LIMITED_FILE_SIZE = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
from restor_bench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_corruption_whose_weights_cannot_be_written_leaves_no_half_checkpoint(tmp_path):
    """Files above 1 MB cannot be written (the kernel's file-size limit, as a nearly full disk): the small files of a
    checkpoint are written, its 4 MB of weights are not. One line, exit 2, and no checkpoint without weights left in
    the output or the work folder; without the limit the same command then succeeds."""
    import subprocess
    import sys

    from restor_bench.data.world.files import tiny_world_dir

    out = tmp_path / "corrupted"
    argv = ["corrupt", "--model", str(tiny_world_dir() / "model"), "--docs", "tiny:0", "--out", str(out),
            "--max-steps", "2"]
    done = subprocess.run([sys.executable, "-c", _LIMITED_FILE_SIZE, str(2**20), *argv], capture_output=True,
                          text=True, timeout=600)
    lines = [line for line in done.stderr.split("\n") if line.strip() and "%|" not in line]
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("restor-bench: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # neither the output, its temporary sibling, nor the work folder
    assert cli.main(argv) == 0 and (out / "model.safetensors").is_file()

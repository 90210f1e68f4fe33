"""A write that fails for lack of space names the file it could not write, leaves no temporary file behind, and
reaches the user as one line (exit 2)."""

from __future__ import annotations

import errno
import os

import pytest

from restor_bench import cli
from restor_bench.io import atomic_write_json


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux), a device that is always full")
def test_a_write_to_a_full_device_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """/dev/full fails every write with ENOSPC: the atomic writer's temporary file is made a link to it."""
    import tempfile

    real_mkstemp = tempfile.mkstemp

    def full_mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    target = tmp_path / "report.json"
    monkeypatch.setattr(tempfile, "mkstemp", full_mkstemp)
    with pytest.raises(OSError) as caught:
        atomic_write_json(target, {"a": "x" * 100_000})
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []
    assert cli.describe_os_error(caught.value) == f"{target}: No space left on device"

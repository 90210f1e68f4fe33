"""An output folder that cannot be written, or whose disk is (nearly) full, is refused in one line before any
work starts (restor_bench.io.check_output_dir, used by eval, corrupt, unlearn and every atomic output)."""

from __future__ import annotations

import shutil

import pytest

from restor_bench.errors import InputError
from restor_bench.io import check_output_dir, check_writable


def test_a_disk_with_less_free_space_than_needed_is_refused_naming_the_folder(tmp_path):
    """"Full" is relative to what an output needs: a need above this disk's free space is refused."""
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(InputError, match=rf"^{tmp_path / 'out'}: the disk holding {tmp_path} has .* MB free"):
        check_output_dir(tmp_path / "out", overwrite=False, min_free_bytes=free + 2**40)
    check_writable(tmp_path / "out" / "deeper", min_free_bytes=1)  # enough space: nothing raised
    assert not (tmp_path / "out").exists()  # the check creates nothing

"""What every figure of the project shares: matplotlib on the Agg backend (imported on first use; an optional
extra, `pip install 'restor-bench[plots]'`), and PNG files written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from restor_bench.errors import InputError

DPI = 120


def pyplot():
    """matplotlib.pyplot on the Agg backend; InputError (one line) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise InputError("plots need matplotlib: pip install 'restor-bench[plots]' (or pass --no-plots)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path, tight: bool = True) -> Path:
    """Write a figure as PNG atomically (a temporary sibling, then a rename); `tight=False` keeps the figure's size."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a plot is an ordinary output
    try:
        figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path

"""restor-bench: a benchmark for restorative unlearning of language models (after RESTOR).

Python API: `restor_bench.api` (`run_protocol`, `evaluate`, `compare`, ...); `restor_bench.run_protocol` and
`restor_bench.RunSpec` also work here. Names are imported on first use, so `import restor_bench` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {"RunSpec": "restor_bench.run.pipeline", "run_protocol": "restor_bench.run.pipeline"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'restor_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value

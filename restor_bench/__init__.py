"""restor-bench: a benchmark for restorative unlearning of language models (after RESTOR).

Python API: `restor_bench.api` (`run_protocol`, `evaluate`, `compare`, ...); `restor_bench.run_protocol` and
`restor_bench.RunSpec` also work here. Names are imported on first use, so `import restor_bench` stays light.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

_LAZY = {"RunSpec": "restor_bench.run.pipeline", "run_protocol": "restor_bench.run.pipeline"}

__all__ = ["__version__", *_LAZY]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for a package that exports names of its modules, each imported on first use
    (`exports`: name -> module), so importing the package stays light and imports no module of its own."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

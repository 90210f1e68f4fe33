"""unlearners: a small library of LLM unlearning methods on top of `transformers.Trainer`.

Standalone (torch, transformers, peft). A method is a small object whose one job is its loss
(`unlearners.Method`); `UnlearnTrainer` runs any method; methods are found by name through the `unlearners`
entry-point group. Quick use:

    from unlearners import run_unlearning
    run_unlearning("path/to/model", forget_texts, retain_texts, "out/unlearned", method="npo")

or `python -m unlearners run --method npo --model CKPT --forget forget.json --out DIR`.
Importing this package is light: torch and transformers load when a run starts.
"""

from __future__ import annotations

import importlib

from unlearners.errors import NonFiniteLossError, UnlearnError
from unlearners.hparams import TrainHparams, resolve_hparams
from unlearners.registry import (
    available_methods,
    create_method,
    describe_methods,
    get_method,
)

__all__ = [
    "Method",
    "MethodContext",
    "NonFiniteLossError",
    "TrainHparams",
    "UnlearnError",
    "UnlearnOptions",
    "UnlearnTrainer",
    "available_methods",
    "create_method",
    "describe_methods",
    "get_method",
    "resolve_hparams",
    "run_unlearning",
]

_LAZY = {
    "Method": "unlearners.base",
    "MethodContext": "unlearners.base",
    "UnlearnOptions": "unlearners.runner",
    "UnlearnTrainer": "unlearners.trainer",
    "run_unlearning": "unlearners.runner",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unlearners' has no attribute {name!r}")

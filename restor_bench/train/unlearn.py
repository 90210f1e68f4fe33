"""The benchmark's front end to the standalone `unlearners` package (`restor-bench unlearn`, `restor-bench methods`;
their command lines are in `restor_bench.train.cli`).

It adds what the benchmark knows: named document sets (`tiny:0`, `tiny:retain`, `official:0`, ...), each method's
preset under a protocol, a check of the model's weight files and a lock on the output folder. The package's errors
(`unlearners.UnlearnError`) pass through; `restor-bench` prints them as one line with exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from restor_bench.data.documents import load_documents
from restor_bench.locks import folder_lock, is_main_process
from restor_bench.models.checkpoints import check_checkpoint_weights
from unlearners.registry import get_method
from unlearners.hparams import resolve_hparams
from unlearners.runner import UnlearnOptions, run_unlearning, unlearn_options

# the options of `unlearn_checkpoint` where they differ from UnlearnOptions(): an interrupted run of the same output
# folder is continued (and one with other settings refused)
BENCHMARK_OPTIONS = UnlearnOptions(resume="auto")


def method_preset(method: str, protocol: str) -> str | None:
    """The method's hyperparameter preset of a protocol: its `paper` preset (the paper's loss form) under
    `paper`, when the method has one; none under `classic`. UnlearnError for an unknown method."""
    if protocol != "paper":
        return None
    return "paper" if "paper" in (getattr(get_method(method), "presets", {}) or {}) else None


def load_document_set(source: str, *, form: str = "full", data_dir: str | None = None) -> list[str]:
    """Documents of a file or a named set (`restor_bench.data.documents`); `form` is the forget form of a named
    corruption set ("full" or "simplified")."""
    return load_documents(source, forget=form, data_dir=data_dir)


def resolve_method_hparams(
    method: str, config: str | os.PathLike | None = None, overrides: Sequence[str] | dict | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """All hyperparameters of `method` (defaults < `preset` < YAML `config` < `key=value` overrides), as a
    JSON-ready dict. Unknown methods or hyperparameters raise UnlearnError."""
    hparams = resolve_hparams(get_method(method), preset=preset, config=config, overrides=overrides or None)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(hparams).items()}


def unlearn_checkpoint(
    *,
    method: str,
    model: str | os.PathLike,
    forget: Sequence[str],
    retain: Sequence[str] | None,
    out: str | os.PathLike,
    hparams: dict[str, Any] | Sequence[str] | None = None,
    options: UnlearnOptions | None = None,
    **option_values: Any,
) -> dict[str, Any]:
    """`unlearners.run_unlearning` of document texts, with the model's weight files checked first
    (`restor_bench.models.checkpoints`) and the output folder locked for the run (`restor_bench.locks`: a second run
    writing it fails at once). Returns the run record.

    `options` is an `unlearners.runner.UnlearnOptions` (default `BENCHMARK_OPTIONS`: `resume="auto"`, which
    continues an interrupted run of the same output folder); its fields may also be given as keywords (`lora=True,
    max_steps=10`, ...), which win.
    """
    options = unlearn_options(options if options is not None else BENCHMARK_OPTIONS, **option_values)
    if os.path.isdir(model):
        check_checkpoint_weights(model)
    with folder_lock(out, enabled=is_main_process()):
        return run_unlearning(model, list(forget), list(retain) if retain is not None else None, out, method, hparams,
                              options=options)

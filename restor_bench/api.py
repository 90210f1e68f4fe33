"""The Python API for notebooks and scripts: the functions the commands call, under one roof.

    from pathlib import Path
    from restor_bench.api import RunSpec, run_protocol, evaluate, compare

    record = run_protocol(RunSpec(world="tiny", method="npo", level=0, seed=0), Path("runs"))
    folder = evaluate(checkpoint, "runs/eval", tasks="restor_tiny_facts")      # lm-eval results + samples
    report = compare(clean="runs/eval-clean", corrupted="runs/eval-corrupted", unlearned=["runs/eval-npo"])

A `RunSpec` holds only what you set; the rest is filled in by `resolve_spec` (also `RunSpec.resolved()`) exactly as
`restor-bench run` fills it in: the world's protocol, the method's hyperparameters with that protocol's preset,
the retain set, tasks and device. So `run_protocol(RunSpec(world="official", model=...))` is the experiment of
`restor-bench run --world official --model ...`, with the same step keys and run folder (each reuses the other's
steps); `resolve_spec(spec)` shows what will run.

`evaluate` and `compare` live here (and not as attributes of the `restor_bench` package) because
`restor_bench.evaluation.evaluate` and `restor_bench.compare.report` are the modules that implement them.
"""

from __future__ import annotations

from restor_bench.compare.report import compare_gate
from restor_bench.compare.report import compare_restoration as compare
from restor_bench.train.corrupt import corrupt
from restor_bench.data.documents import load_documents
from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import evaluate
from restor_bench.run.pipeline import run, run_protocol
from restor_bench.run.spec import RunSpec, resolve_spec
from restor_bench.train.unlearn import unlearn_checkpoint as unlearn

__all__ = [
    "RunSpec", "resolve_spec", "run_protocol", "run", "evaluate", "compare", "compare_gate", "corrupt", "unlearn",
    "load_documents", "InputError",
]

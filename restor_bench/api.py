"""The Python API for notebooks and scripts: the functions the commands call, under one roof.

    from pathlib import Path
    from restor_bench.api import RunSpec, run_protocol, evaluate, compare

    record = run_protocol(RunSpec(world="tiny", method="npo", level=0, seed=0), Path("runs"))
    folder = evaluate(checkpoint, "runs/eval", tasks="restor_tiny_facts")      # lm-eval results + samples
    report = compare(clean="runs/eval-clean", corrupted="runs/eval-corrupted", unlearned=["runs/eval-npo"])

`evaluate` and `compare` live here (and not as attributes of the `restor_bench` package) because
`restor_bench.evaluation.evaluate` and `restor_bench.compare.cli` are the modules that implement them.
"""

from __future__ import annotations

from restor_bench.compare.cli import compare_gate
from restor_bench.compare.cli import compare_restoration as compare
from restor_bench.train.corrupt import corrupt
from restor_bench.data.documents import load_documents
from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import evaluate
from restor_bench.run.pipeline import RunSpec, run, run_protocol
from restor_bench.train.unlearn import unlearn_checkpoint as unlearn

__all__ = [
    "RunSpec", "run_protocol", "run", "evaluate", "compare", "compare_gate", "corrupt", "unlearn", "load_documents",
    "InputError",
]

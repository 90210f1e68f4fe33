"""The whole protocol in one command: `spec` (`RunSpec` and `resolve_spec`, which fix every default, so the CLI,
`grid`, `leaderboard verify` and the Python API run the same experiment from the same spec), `pipeline` (the steps,
each reused when finished), `report` (the summary over seeds), and `restor-bench run` (`cli`).
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "RunSpec": "restor_bench.run.spec",
    "resolve_spec": "restor_bench.run.spec",
    "run_protocol": "restor_bench.run.pipeline",
    "run": "restor_bench.run.pipeline",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

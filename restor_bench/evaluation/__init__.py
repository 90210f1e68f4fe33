"""Evaluation with lm-eval, through its public Python API only: `evaluate` (its `evaluate()` calls
`lm_eval.simple_evaluate` with a TaskManager of the restor tasks and lm-eval's EvaluationTracker, which writes the
results and samples files), `lm_eval_options` (the lm-eval arguments passed on after `--`, read and checked before
the model loads), `tasks` (the restor task folder and a TaskManager that knows it), `lm_eval_io` (finding and
reading lm-eval's results_*.json and samples_*.jsonl), `logprob` (the log-probability task's options and metrics),
and the commands `restor-bench eval` and `restor-bench tasks` (`cli`).
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "task_manager": "restor_bench.evaluation.tasks",
    "tasks_dir": "restor_bench.evaluation.tasks",
    "find_lm_eval_outputs": "restor_bench.evaluation.lm_eval_io",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

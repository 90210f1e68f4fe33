"""Comparing the clean, corrupted and unlearned models question by question: `outcomes` (lm-eval samples read into
per-question outcomes; the target people), `tasks` (one task aligned and reported), `stats` (the benchmark's one
statistics module: accuracies, restoration ratio, transitions, bootstrap intervals, pooled over seeds too),
`report` (whole comparisons and the regression gate), `format` (text and markdown tables), `unchanged` (telling
"the method did nothing" apart), and `restor-bench compare` (`cli`).
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "compare_restoration": "restor_bench.compare.report",
    "compare_gate": "restor_bench.compare.report",
    "load_run": "restor_bench.compare.outcomes",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

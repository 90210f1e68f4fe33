"""The instruments of `restor-bench layers`: the logit lens on the target facts (`lens`) and where the weights
moved (`weights`), their reports and figures (`report`), and the command (`cli`).
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "lens_report": "restor_bench.layers.report",
    "weights_report": "restor_bench.layers.report",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

"""The paper's experiment grid and its results page: `cells` (the cells and their options), `stats` (a finished
cell's pooled numbers), `plots` (the figures), `findings` (the paper's findings checked), `page` (the page, its
JSON and plots), and `restor-bench grid` (`cli`).
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "write_page": "restor_bench.grid.page",
    "plan_cells": "restor_bench.grid.cells",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

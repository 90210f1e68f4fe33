"""The Trainer runs of the flow: corrupting a clean checkpoint, unlearning (through the standalone `unlearners`
package, which holds the one Trainer path they share), and the paper's brief repair fine-tune.

- `recipe`: the corruption recipe (the paper's and the tiny world's settings); `corrupt`: `restor-bench corrupt`;
- `unlearn`: method presets and hyperparameters for restor-bench's worlds, and `unlearn_checkpoint`;
- `repair`: `restor-bench repair`; `common`: loading, tokenizing and packing documents, checkpoint checks;
- `cli`: the `corrupt`, `repair`, `unlearn` and `methods` commands.
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "unlearn_checkpoint": "restor_bench.train.unlearn",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

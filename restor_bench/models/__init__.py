"""Checkpoints as folders: checks of their safetensors weights without loading the model (`checkpoints`), and
turning a GGUF file (llama.cpp) into a plain Hugging Face checkpoint (`gguf_import`, `gguf_file`, `gguf_package`,
and the `restor-bench model import-gguf` command in `cli`).
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "import_gguf": "restor_bench.models.gguf_import",
    "checkpoint_identity": "restor_bench.models.checkpoints",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

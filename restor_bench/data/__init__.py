"""The benchmark's data: the official RESTOR files and the embedded tiny world, read into facts, questions and
document sets (the first box of the flow; imports no other subpackage).

- `official`, `fetch`, `cli`: the official file formats; where the files come from (pinned, sha256-checked
  download or a local folder); `restor-bench data fetch / info`.
- `schema`, `questions`, `normalize`, `aliases`: fact records, the paper's prompt and the per-question records the
  lm-eval tasks use, answer normalization and the `exact_match` / `contains` scores.
- `documents`, `retain`, `simplify`, `squad`, `hf_datasets`: every document set a step can read by name (`tiny:0`,
  `official:generic`, `tiny:squad-people`, ...), from a file, or from a Hugging Face dataset (`hf:NAME`).
- `world/`: the tiny world (generator, files, clean model, `restor-bench world`).
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "load_documents": "restor_bench.data.documents",
    "resolve_data_dir": "restor_bench.data.fetch",
    "load_facts": "restor_bench.data.official",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

"""The embedded tiny world: invented people with Wikidata-like facts, their clean corpus and corruption documents,
a tokenizer and a small clean model trained on the corpus (`restor-bench world build`).

- `text`, `generate`: the world's words and the generator; `files`: the folder on disk and its manifest;
- `model`: the tokenizer and the clean model's training; `scoring`: the prompt and the answer check;
- `generic`: `tiny:generic`, the retain set that states no evaluated fact; `cli`: `restor-bench world`.
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "tiny_world_dir": "restor_bench.data.world.files",
    "build_world": "restor_bench.data.world.cli",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

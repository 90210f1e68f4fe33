"""restor-bench: a benchmark for restorative unlearning of language models (after RESTOR)."""

__version__ = "0.1.0"

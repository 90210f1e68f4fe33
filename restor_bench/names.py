"""The benchmark's shared words and bounds, defined once: worlds, protocols, forget forms, corruption levels,
generation metrics and the bootstrap bounds. Every module that names one of these imports it from here."""

from __future__ import annotations

# The two worlds a run can use: the tiny world shipped with restor-bench, and the official RESTOR files.
WORLDS = ("tiny", "official")
# `paper`: RESTOR as published (generic retain text, the paper's recipe and loss forms); `classic`: this project's
# earlier protocol, kept to reproduce archived pages.
PROTOCOLS = ("paper", "classic")
# The protocol a run uses when none is given, per world.
DEFAULT_PROTOCOL = {"tiny": "classic", "official": "paper"}
# The forget set unlearning runs on: the whole corruption documents, or only their sentences about a target.
FORGET_FORMS = ("full", "simplified")

# The corruption documents: Wikidata-style facts (levels k) or the SQuAD-style analogue (a person's name swapped).
CORRUPTIONS = ("wikidata", "squad")
# The three models every comparison reads, and the question splits of a comparison.
ROLES = ("clean", "corrupted", "unlearned")
SPLITS = ("target", "non_target", "all")
SPLIT_TITLES = {"target": "target", "non_target": "non-target", "all": "all"}

# Corruption levels k (the share of corrupted facts grows with k) that each world ships.
TINY_LEVELS = (0, 1, 2, 3, 4, 5)
OFFICIAL_LEVELS = (0, 1, 2, 3)
WORLD_LEVELS = {"tiny": TINY_LEVELS, "official": OFFICIAL_LEVELS}

# The per-question 0/1 scores of a generated answer; the *_legacy ones use the scorer of task version 1.0.
GENERATION_METRICS = ("contains", "exact_match", "contains_legacy", "exact_match_legacy")
DEFAULT_METRIC = "contains"

# Bootstrap bounds. Resamples: at most MAX_RESAMPLES everywhere (compare, grid pages, leaderboard submissions).
# Work, resamples x questions: at most MAX_BOOTSTRAP_DRAWS for a comparison the user runs on their own files (the
# draws are that many integers, about 160 MB); a submission is untrusted input that every `leaderboard validate`
# recomputes, so its budget is ten times smaller (the default 1,000 resamples on every task of at most 1,051
# questions, up to 2,857 on the tiny world's 700).
CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000
MAX_RESAMPLES = 10_000
MAX_BOOTSTRAP_DRAWS = 20_000_000
MAX_SUBMISSION_BOOTSTRAP_DRAWS = 2_000_000

# Set to "1" by `restor-bench --verbose` (and inherited by child processes): the libraries' INFO logs are shown.
VERBOSE_ENV = "RESTOR_BENCH_VERBOSE"

"""Thin hooks for the restor lm-eval tasks; the logic lives in restor_bench.data."""

from restor_bench.data import normalize, questions


def load_facts(**metadata):
    """restor_facts: the 1,051 official questions (metadata: data_dir)."""
    return questions.facts_dataset(**metadata)


def load_target_facts(**metadata):
    """restor_facts_targets: the 198 target questions + a seeded sample of others (metadata: data_dir, n_other, seed)"""
    return questions.target_facts_dataset(**metadata)


def load_squad_facts(**metadata):
    """restor_facts_squad: the questions about the SQuAD passages' five people + a seeded sample of others."""
    return questions.squad_facts_dataset(**metadata)


def load_tiny_facts(**metadata):
    """restor_tiny_facts: every question of the tiny world (metadata: world_dir)."""
    return questions.tiny_facts_dataset(**metadata)


def load_tiny_logprob(**metadata):
    """restor_tiny_logprob: the tiny world's corrupted questions with three options (metadata: world_dir, tokenizer)."""
    return questions.tiny_logprob_dataset(**metadata)


def process_results(doc, results):
    """exact_match, contains and their _legacy forms of the generated first line(s), averaged over a question's
    generations (one when greedy, the repeats of the *_sampled tasks)."""
    return normalize.score_generation(doc, results)


def process_logprob_results(doc, results):
    """prefers_* and logprob_* from the per-option log-likelihoods."""
    return normalize.score_logprob_options(doc, results)

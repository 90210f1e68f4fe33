"""Thin hooks of restor_facts_logprob; the logic lives in restor_bench.evaluation.logprob."""

from restor_bench.evaluation import logprob


def load_facts_logprob(**metadata):
    """restor_facts_logprob: target questions with correct, corrupted and random options (metadata:
    restor_corrupted_samples, restor_world, restor_n_random, restor_data_dir, restor_world_dir, restor_tokenizer;
    else the model arguments' tokenizer / pretrained)."""
    return logprob.logprob_dataset(**metadata)


def process_results(doc, results):
    """prefers_* and logprob_* from the per-option log-likelihoods, averaged per category."""
    return logprob.score_categories(doc, results)

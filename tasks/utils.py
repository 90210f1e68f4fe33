"""Thin hooks for the restor lm-eval tasks; the logic lives in restor_bench.data.

Task options come from lm-eval's task metadata (`--metadata '{"restor_seed": 3}'` or `TaskManager(metadata=...)`).
lm-eval 0.4.x puts the model arguments into that same dictionary (`--model_args pretrained=...,seed=1` reaches
every task as metadata), so the tasks read only keys that start with `restor_`: no model argument can change
which questions a task asks. Unprefixed keys are ignored (with a warning for the names these tasks read before
they were prefixed: `data_dir`, `world_dir`, `n_other`); an unknown `restor_` key (a typo) is an error.
"""

import logging

from restor_bench.data import normalize, questions
from restor_bench.errors import InputError

# metadata key -> keyword of the restor_bench.data.questions loaders
TASK_OPTIONS = {
    "restor_data_dir": "data_dir",  # official RESTOR files (else $RESTOR_DATA_DIR, else the download cache)
    "restor_world_dir": "world_dir",  # a tiny world folder (else $RESTOR_TINY_WORLD, else the shipped world)
    "restor_tokenizer": "tokenizer",  # restor_tiny_logprob: the tokenizer that counts option tokens
    "restor_n_other": "n_other",  # restor_facts_targets / restor_facts_squad: how many other questions
    "restor_seed": "seed",  # restor_facts_targets / restor_facts_squad: the seed of that sample
}
# read by restor_facts_logprob (restor_bench.evaluation.logprob), through its own hooks
OTHER_TASK_KEYS = ("restor_world", "restor_n_random", "restor_corrupted_samples")
# the old unprefixed names that no model backend uses (`seed` and `tokenizer` are model arguments of some)
OLD_NAMES = ("data_dir", "world_dir", "n_other")


def task_options(metadata, *wanted):
    """The options among `wanted` (loader keywords) given in `metadata` under their `restor_` keys."""
    unknown = sorted(key for key in metadata if key.startswith("restor_") and key not in TASK_OPTIONS
                     and key not in OTHER_TASK_KEYS)  # fmt: skip
    if unknown:
        known = ", ".join([*TASK_OPTIONS, *OTHER_TASK_KEYS])
        raise InputError(f"task metadata {', '.join(unknown)}: unknown key (the restor tasks read: {known})")
    for name in OLD_NAMES:
        if name in metadata and name in wanted:
            logging.getLogger(__name__).warning("task metadata %s is ignored: the restor tasks read restor_%s", name,
                                                name)
    return {name: metadata[key] for key, name in TASK_OPTIONS.items() if name in wanted and key in metadata}


def load_facts(**metadata):
    """restor_facts: the 1,051 official questions (metadata: restor_data_dir)."""
    return questions.facts_dataset(**task_options(metadata, "data_dir"))


def load_target_facts(**metadata):
    """restor_facts_targets: the 198 target questions + a seeded sample of others (metadata: restor_data_dir,
    restor_n_other, restor_seed)."""
    return questions.target_facts_dataset(**task_options(metadata, "data_dir", "n_other", "seed"))


def load_squad_facts(**metadata):
    """restor_facts_squad: the questions about the SQuAD passages' five people + a seeded sample of others
    (metadata: restor_data_dir, restor_n_other, restor_seed)."""
    return questions.squad_facts_dataset(**task_options(metadata, "data_dir", "n_other", "seed"))


def load_tiny_facts(**metadata):
    """restor_tiny_facts: every question of the tiny world (metadata: restor_world_dir)."""
    return questions.tiny_facts_dataset(**task_options(metadata, "world_dir"))


def load_tiny_logprob(**metadata):
    """restor_tiny_logprob: the tiny world's corrupted questions with three options (metadata: restor_world_dir,
    restor_tokenizer)."""
    return questions.tiny_logprob_dataset(**task_options(metadata, "world_dir", "tokenizer"))


def first_answer(doc):
    """The target lm-eval records beside each generation: the first acceptable answer."""
    return doc["answers"][0]


def process_results(doc, results):
    """exact_match, contains and their _legacy forms of the generated first line(s), averaged over a question's
    generations (one when greedy, the repeats of the *_sampled tasks)."""
    return normalize.score_generation(doc, results)


def process_logprob_results(doc, results):
    """prefers_* and logprob_* from the per-option log-likelihoods."""
    return normalize.score_logprob_options(doc, results)

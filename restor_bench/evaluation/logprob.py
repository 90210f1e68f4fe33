"""The paper's logit analysis on any facts: the docs and the per-question metrics of `restor_facts_logprob`.

RESTOR's analysis (k1rezaei/restor, evaluation/mcqa_eval/mcqa_utils.py, `evaluate_model_opinion_on_fact_dataset`,
run by evaluation/mcqa_eval/mcqa_{clean,corrupted,unlearned}_model.py): for each target fact, after the paper's
prompt (five in-context lines of the same relation, then the question), each option of three categories
(correct, corrupted, random) is appended after a space; its score is the mean log-probability of its own tokens
(`answer_log_probs.mean()`), and a category's score is the average of its options' scores (`'average'`).

The official scripts read the options of each category from a file (`--path_to_categories`) that the official
repository does not publish, so restor-bench builds them:

* correct: every acceptable answer of the fact (facts.json);
* corrupted: where the injected values are known (the tiny world's manifest), those values; on the official data,
  whose corruption documents are free text, what the corrupted model itself answered: the distinct first lines of
  its generations that `restor_bench.data.normalize.contains` judges wrong, read from its lm-eval samples file of
  restor_facts (or restor_facts_targets, restor_facts_squad, or their _sampled forms); the target questions are
  those its docs mark `is_target`, and a question it answered right (or with an empty line) is left out. Greedy
  answers are the corrupted model's own first choices, so it scores them highly by construction: the numbers
  compare the three models on the same options (the official scripts, too, read one options file for all three);
* random: `n_random` values of the same relation (across the whole facts file) that are neither acceptable nor
  corrupted, drawn by (seed, entity, relation); the first is the draw of `questions.draw_random_answer`, i.e. the
  random option of restor_tiny_logprob. A question whose relation has no such value is left out.

Per question (`score_categories`): `logprob_X` is category X's average of mean per-token log-probabilities and
`prefers_X` is 1 for the category with the highest (ties go to the earlier category: correct, corrupted, random).
Each option's tokens are counted with the evaluated model's tokenizer (`restor_tokenizer`, else the `tokenizer` or
`pretrained` of `--model_args`, which lm-eval hands to the task as metadata; on the tiny world, else the world's
own) as the tokens that `prompt + " " + option` adds to the prompt, which are the tokens lm-eval scores. With one option
per category (the tiny world with `restor_n_random: 1`) the numbers are those of restor_tiny_logprob.

Task metadata (`--metadata '{...}'`; as the other restor tasks, the task reads only `restor_` keys, except that
it takes the evaluated model's tokenizer from the model arguments): `restor_corrupted_samples` (official data: the
corrupted model's samples file, or the lm-eval output folder holding it), `restor_world` ("official", the default,
or "tiny"), `restor_n_random` (default 5), `restor_data_dir` / `restor_world_dir` (else $RESTOR_DATA_DIR /
$RESTOR_TINY_WORLD, as for the other restor tasks), `restor_tokenizer` (else the model arguments' `tokenizer`,
else `pretrained`). An unknown `restor_` key is an error.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restor_bench.data import official
from restor_bench.data.fetch import resolve_data_dir
from restor_bench.data.normalize import contains, first_line, normalize_answer
from restor_bench.data.questions import (
    load_counting_tokenizer,
    load_tiny_world,
    option_token_counts,
    question_records,
    resolve_tiny_world_dir,
)
from restor_bench.errors import InputError
from restor_bench.evaluation.lm_eval_io import SAMPLES_NAME, find_lm_eval_outputs, iter_samples
from restor_bench.names import WORLDS

TASK = "restor_facts_logprob"
CATEGORIES = ("correct", "corrupted", "random")
DEFAULT_N_RANDOM = 5
SAMPLES_KEY = "restor_corrupted_samples"
WORLD_KEY = "restor_world"
N_RANDOM_KEY = "restor_n_random"
DATA_DIR_KEY = "restor_data_dir"
WORLD_DIR_KEY = "restor_world_dir"
TOKENIZER_KEY = "restor_tokenizer"
# every `restor_` metadata key of the restor tasks (lm-eval hands one metadata dictionary to all tasks of a run):
# this task's, and those only the other tasks read (tasks/utils.py)
KNOWN_KEYS = (
    SAMPLES_KEY, WORLD_KEY, N_RANDOM_KEY, DATA_DIR_KEY, WORLD_DIR_KEY, TOKENIZER_KEY, "restor_n_other", "restor_seed",
)  # fmt: skip
# lm-eval tasks whose samples hold the corrupted model's answers to the official questions
SOURCE_TASKS = (
    "restor_facts",
    "restor_facts_targets",
    "restor_facts_squad",
    "restor_facts_sampled",
    "restor_facts_targets_sampled",
)


# ---------------------------------------------------------------------------------------------------------------
# Options


def draw_random_answers(
    entity: str, relation: str, answers: list[str], pool: list[str], exclude: list[str], n: int, seed: int = 0
) -> list[str]:
    """Up to `n` distinct values of `pool` that are neither acceptable (`answers`) nor in `exclude` (compared
    normalized), drawn by (seed, entity, relation). The first is `questions.draw_random_answer`'s draw; the
    others follow from the same random stream, each unlike (normalized) the ones before."""
    banned = {normalize_answer(value) for value in [*answers, *exclude]}
    candidates = sorted({value for value in pool if normalize_answer(value) not in banned})
    if not candidates or n <= 0:
        return []
    rng = random.Random(f"{seed}|{entity}|{relation}")
    drawn = [rng.choice(candidates)]  # the same call as questions._draw
    taken = {normalize_answer(drawn[0])}
    rest = [value for value in candidates if normalize_answer(value) not in taken]
    for value in rng.sample(rest, len(rest)):
        if len(drawn) == n:
            break
        if normalize_answer(value) not in taken:
            drawn.append(value)
            taken.add(normalize_answer(value))
    return drawn


def with_options(record: dict, corrupted: list[str], random_answers: list[str], tokenizer) -> dict:
    """The record with its flat option list ("options", "option_categories", "option_token_counts")."""
    groups = (list(record["answers"]), list(corrupted), list(random_answers))
    options = [option for group in groups for option in group]
    categories = [name for name, group in zip(CATEGORIES, groups, strict=True) for _ in group]
    return dict(
        record,
        corrupted_answers=list(corrupted),
        random_answer=random_answers[0],
        options=options,
        option_categories=categories,
        option_token_counts=option_token_counts(record["prompt"], options, tokenizer),
    )


# ---------------------------------------------------------------------------------------------------------------
# The corrupted model's answers


@dataclass(frozen=True)
class CorruptedAnswers:
    """What the corrupted model answered to one question of its samples file."""

    line: int
    question: str
    is_target: bool
    wrong: list[str]  # distinct (normalized) non-empty first lines judged wrong, in order of generation


def _generations(filtered: Any) -> list[str]:
    """The texts of one sample's filtered responses (one for greedy tasks, the repeats of the _sampled ones)."""
    if isinstance(filtered, str):
        return [filtered]
    if isinstance(filtered, (list, tuple)):
        return [text for item in filtered for text in _generations(item)]
    return []


def wrong_answers(generations: list[str], answers: list[str]) -> list[str]:
    """The distinct first lines (normalized) of `generations` that are non-empty and not judged correct."""
    wrong, seen = [], set()
    for generation in generations:
        line = first_line(generation)
        norm = normalize_answer(line)
        if not norm or norm in seen or contains(line, answers):
            continue
        seen.add(norm)
        wrong.append(line)
    return wrong


def find_samples_file(path: str | os.PathLike) -> tuple[Path, str]:
    """The samples file a `restor_corrupted_samples` value names (a file, or a folder holding exactly one samples
    file of the `SOURCE_TASKS`), and its task."""
    path = Path(path).expanduser()
    expected = ", ".join(SOURCE_TASKS)
    if path.is_dir():
        outputs = find_lm_eval_outputs(path)
        found = sorted(task for task in outputs if task in SOURCE_TASKS)
        if not found:
            raise InputError(
                f"{path}: no samples of {expected} here (found: {', '.join(sorted(outputs))}); {SAMPLES_KEY} needs "
                "the corrupted model's samples of one of these tasks"
            )
        if len(found) > 1:
            raise InputError(f"{path}: samples of several tasks ({', '.join(found)}); name one samples file")
        return outputs[found[0]].samples_path, found[0]
    if not path.is_file():
        raise InputError(f"{path}: corrupted model's samples file not found ({SAMPLES_KEY})")
    match = SAMPLES_NAME.match(path.name)
    if not match:
        raise InputError(f"{path}: not an lm-eval samples file name (samples_<task>_<time>.jsonl)")
    if match["task"] not in SOURCE_TASKS:
        raise InputError(f"{path}: samples of task {match['task']}; {SAMPLES_KEY} needs those of one of {expected}")
    return path, match["task"]


def read_corrupted_answers(path: str | os.PathLike) -> tuple[Path, str, dict[str, CorruptedAnswers]]:
    """(samples file, its task, {question id: the corrupted model's answers}) of a `restor_corrupted_samples`
    value. Only the "none" filter's lines are read (the only filter of the restor generation tasks)."""
    file, task = find_samples_file(path)
    answers: dict[str, CorruptedAnswers] = {}
    for number, record in iter_samples(file):
        if str(record.get("filter", "none")) != "none":
            continue
        where = f"{file}: line {number}"
        doc = record.get("doc")
        if not isinstance(doc, dict):
            raise InputError(f'{where}: sample has no "doc" object')
        qid, question, accepted = doc.get("id"), doc.get("question"), doc.get("answers")
        if not isinstance(qid, str) or not isinstance(question, str):
            raise InputError(f"{where}: doc lacks the fields id and question of a restor question")
        if not isinstance(accepted, list) or not all(isinstance(answer, str) for answer in accepted):
            raise InputError(f"{where}: doc field answers is not a list of strings")
        if qid in answers:
            raise InputError(f"{where}: question id {qid!r} appears twice")
        generations = _generations(record.get("filtered_resps"))
        if "options" in doc or not generations:
            raise InputError(f'{where}: sample has no text response in "filtered_resps" (not a generation task?)')
        wrong = wrong_answers(generations, accepted)
        answers[qid] = CorruptedAnswers(number, question, bool(doc.get("is_target")), wrong)
    if not answers:
        raise InputError(f"{file}: holds no samples")
    return file, task, answers


# ---------------------------------------------------------------------------------------------------------------
# Records


def _int_option(metadata: dict, key: str, default: int, minimum: int) -> int:
    value = metadata.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < minimum or str(number) != str(value).strip():
        raise InputError(f"task metadata {key}={value!r}: expected an integer >= {minimum}")
    return number


def _counting_tokenizer(metadata: dict, world_dir: str | None, world: str):
    """The evaluated model's tokenizer: `restor_tokenizer`, else the model arguments' `tokenizer`, else their
    `pretrained` (lm-eval passes the model arguments to the task as metadata); on the tiny world, else the world's."""
    key = next((key for key in (TOKENIZER_KEY, "tokenizer", "pretrained") if metadata.get(key)), None)
    source = metadata[key] if key else None
    if source is not None and not isinstance(source, str):
        raise InputError(f"task metadata {key}={source!r}: expected a tokenizer folder or name")
    if not source and world != "tiny":
        raise InputError(
            f"{TASK} counts answer tokens with the evaluated model's tokenizer: run it with "
            f"--model_args pretrained=DIR (lm-eval hands it to the task) or --metadata '{{\"{TOKENIZER_KEY}\": DIR}}'"
        )
    return load_counting_tokenizer(source or None, world_dir)


def official_logprob_records(
    samples: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    tokenizer=None,
    n_random: int = DEFAULT_N_RANDOM,
    seed: int = 0,
) -> list[dict]:
    """The target questions of the corrupted model's samples file that it answered wrong, with their options.

    Every question of the samples file must be a question of the data (same id and question text); questions
    of the data that the file lacks (e.g. a run with --limit) are left out.
    """
    file, _task, answers = read_corrupted_answers(samples)
    folder = resolve_data_dir(data_dir)
    factset = official.load_facts(folder / official.FACTS_FILE)
    entities = official.load_entities(folder / official.ENTITIES_FILE)
    records = {record["id"]: record for record in question_records(factset, entities, rng_seed=seed)}
    for qid, given in answers.items():
        record = records.get(qid)
        if record is None:
            raise InputError(f"{file}: line {given.line}: question {qid!r} is not in {folder} (other data?)")
        if record["question"] != given.question:
            raise InputError(
                f"{file}: line {given.line}: question {qid!r} reads {given.question!r} there but "
                f"{record['question']!r} in {folder} (other data?)"
            )
    pools = factset.values_by_relation()
    chosen = []
    for qid, record in records.items():
        given = answers.get(qid)
        if given is None or not given.is_target or not given.wrong:
            continue
        drawn = draw_random_answers(
            record["entity"], record["relation"], record["answers"], pools.get(record["relation"], []),
            given.wrong, n_random, seed,
        )  # fmt: skip
        if drawn:
            chosen.append(with_options(dict(record, is_target=True), given.wrong, drawn, tokenizer))
    if not chosen:
        raise InputError(
            f"{file}: no target question that the corrupted model answered wrong (and that has random options); "
            "nothing to analyse"
        )
    return chosen


def tiny_logprob_records(
    world_dir: str | os.PathLike | None = None, tokenizer=None, n_random: int = DEFAULT_N_RANDOM, seed: int = 0
) -> list[dict]:
    """The tiny world's target questions with injected values, with their options (the questions, in the same
    order, of restor_tiny_logprob)."""
    factset, entities, targets, corrupted = load_tiny_world(world_dir)
    pools = factset.values_by_relation()
    chosen = []
    for record in question_records(factset, entities, corrupted=corrupted, rng_seed=seed, targets=targets):
        if not record["corrupted_answers"]:
            continue
        drawn = draw_random_answers(
            record["entity"], record["relation"], record["answers"], pools.get(record["relation"], []),
            record["corrupted_answers"], n_random, seed,
        )  # fmt: skip
        if drawn:
            chosen.append(with_options(record, record["corrupted_answers"], drawn, tokenizer))
    if not chosen:
        raise InputError(f"{resolve_tiny_world_dir(world_dir)}: the tiny world has no corrupted facts to analyse")
    return chosen


def logprob_records(**metadata: Any) -> list[dict]:
    """The docs of restor_facts_logprob from the task metadata (see the module docstring)."""
    unknown = sorted(key for key in metadata if key.startswith("restor_") and key not in KNOWN_KEYS)
    if unknown:
        raise InputError(
            f"task metadata {', '.join(unknown)}: unknown key (the restor tasks read: {', '.join(KNOWN_KEYS)})"
        )
    world = metadata.get(WORLD_KEY) or "official"
    if world not in WORLDS:
        raise InputError(f"task metadata {WORLD_KEY}={world!r}: expected one of {', '.join(sorted(WORLDS))}")
    n_random = _int_option(metadata, N_RANDOM_KEY, DEFAULT_N_RANDOM, 1)
    world_dir = metadata.get(WORLD_DIR_KEY) or None
    samples = metadata.get(SAMPLES_KEY)
    if world == "tiny":
        if samples:
            raise InputError(
                f"task metadata {SAMPLES_KEY}: the tiny world knows the injected values; the corrupted model's "
                "answers are read only for the official data"
            )
        return tiny_logprob_records(world_dir, _counting_tokenizer(metadata, world_dir, world), n_random)
    if not samples:
        raise InputError(
            f"{TASK} on the official data needs the corrupted model's answers: --metadata "
            f"'{{\"{SAMPLES_KEY}\": \"PATH\"}}' (its lm-eval samples file of restor_facts)"
        )
    if not isinstance(samples, str):
        raise InputError(f"task metadata {SAMPLES_KEY}={samples!r}: expected a path")
    if not Path(samples).expanduser().exists():
        raise InputError(f"{samples}: corrupted model's samples file not found ({SAMPLES_KEY})")
    tokenizer = _counting_tokenizer(metadata, world_dir, world)
    return official_logprob_records(samples, metadata.get(DATA_DIR_KEY) or None, tokenizer, n_random)


def _features():
    import datasets

    text = datasets.Value("string")
    listing = datasets.List if hasattr(datasets, "List") else datasets.Sequence
    return datasets.Features(
        {
            "id": text,
            "entity": text,
            "relation": text,
            "question": text,
            "answers": listing(text),
            "prompt": text,
            "corrupted_answers": listing(text),
            "random_answer": text,
            "is_target": datasets.Value("bool"),
            "options": listing(text),
            "option_categories": listing(text),
            "option_token_counts": listing(datasets.Value("int64")),
        }
    )


def logprob_dataset(**metadata: Any):
    """lm-eval `custom_dataset` of restor_facts_logprob: a DatasetDict with one "test" split."""
    import datasets

    split = datasets.Dataset.from_list(logprob_records(**metadata), features=_features())
    return datasets.DatasetDict({"test": split})


# ---------------------------------------------------------------------------------------------------------------
# Scoring


def score_categories(doc: dict, results: list) -> dict[str, float]:
    """Per-question metrics: lm-eval's `process_results(doc, results)` for restor_facts_logprob.

    `results` holds one (log-likelihood, is_greedy) pair per option of `doc["options"]`. Each log-likelihood is
    divided by the option's token count; a category's score is the mean over its options (`logprob_X`), and
    `prefers_X` marks the category with the highest score (ties go to the earlier category).
    """
    loglikelihoods = [float(result[0]) if isinstance(result, (tuple, list)) else float(result) for result in results]
    counts, categories = doc["option_token_counts"], doc["option_categories"]
    if not (len(loglikelihoods) == len(counts) == len(categories)):
        raise ValueError(f"expected {len(categories)} option results, got {len(loglikelihoods)}")
    by_category: dict[str, list[float]] = {name: [] for name in CATEGORIES}
    for loglikelihood, count, category in zip(loglikelihoods, counts, categories, strict=True):
        by_category[category].append(loglikelihood / max(int(count), 1))
    if not all(by_category.values()):
        raise ValueError(f"question {doc.get('id')!r} lacks an option of some category")
    means = [sum(values) / len(values) for values in by_category.values()]
    best = max(range(len(means)), key=lambda index: (means[index], -index))
    metrics = {f"prefers_{name}": float(index == best) for index, name in enumerate(CATEGORIES)}
    metrics.update({f"logprob_{name}": means[index] for index, name in enumerate(CATEGORIES)})
    return metrics

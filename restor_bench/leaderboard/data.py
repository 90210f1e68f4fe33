"""What a leaderboard submission is checked against: the known world/data versions, the question set of each task
on each version, its target sets, and lm-eval's task hash of the whole task.

A data version is named by its data hash: the tiny world's `data_hash` (its manifest.json), or the sha256 of the
official RESTOR `facts.json` of the pinned release. For each task a submission may hold, `QuestionSet` says
which questions the task asks (derived from the world's own files for the tiny world, with
`restor_bench.data.questions`, the functions behind the lm-eval tasks; pinned below for the official data, whose
files do not ship with restor-bench), which people are the targets under each target set, and which lm-eval task
hashes stand for the whole task. A submission must hold exactly that question set, so one that drops questions
(an lm-eval `--limit`, or failures left out) is refused.

The pins are checked against the data and against lm-eval itself by tests/test_leaderboard_data.py
(`lm_eval_task_hash` computes a task hash the way lm-eval does, without running a model).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from restor_bench.data import fetch
from restor_bench.data.official import OFFICIAL_TARGETS
from restor_bench.data.questions import tiny_records
from restor_bench.data.world import files as tiny
from restor_bench.data.world.files import load_manifest
from restor_bench.errors import InputError
from restor_bench.leaderboard.schema import OFFICIAL_FACTS_SHA256


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the sorted question ids, one per line: how a question set is pinned."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def entity_of(question_id: str) -> str:
    """The entity of a question id "ENTITY|PID"."""
    return question_id.rsplit("|", 1)[0]


@dataclass(frozen=True)
class QuestionSet:
    """The questions of one task on one data version, and its targets under each target set."""

    task: str
    count: int
    digest: str  # ids_digest of the question ids
    targets: Mapping[str, tuple[str, ...]]  # target set -> target entities (sorted)
    target_counts: Mapping[str, int]  # target set -> number of target questions
    ids: frozenset[str] | None = None  # None where only the digest is pinned
    injected_known: bool = True  # the task lists the injected wrong values ("still corrupted" can be told)
    task_hashes: frozenset[str] = frozenset()  # lm-eval task hashes of the whole task (empty: none pinned)

    def n_target(self, target_set: str) -> int:
        return self.target_counts[target_set]


@dataclass(frozen=True)
class DataVersion:
    """A world/data version a submission may be made on."""

    data_hash: str
    world: str
    label: str
    question_sets: Mapping[str, QuestionSet] = field(default_factory=dict)

    @property
    def target_sets(self) -> tuple[str, ...]:
        """The target sets every task of this version defines ("test" first where there is one)."""
        sets = [set(qs.targets) for qs in self.question_sets.values()]
        common = set.intersection(*sets) if sets else set()
        return tuple(name for name in ("test", "all") if name in common)

    @property
    def default_target_set(self) -> str:
        """The target set a submission is scored on unless told otherwise: "test" where the world sets validation
        targets apart (the tiny world), else "all"."""
        return self.target_sets[0] if self.target_sets else "all"


# ---------------------------------------------------------------------------------------------------------------
# The tiny world: question sets derived from its files

# lm-eval task hashes (results_*.json "task_hashes", lm-eval 0.4.13) of the whole tasks on the shipped tiny world
TINY_TASK_HASHES = {
    "5940073e65c9b7df79e25b3bd1b22bdf3a2f756a84a2eb72e02645dc416928f0": {
        "restor_tiny_facts": "68ce6a2bbc11a7eae9139d07aa34d5f9b4170b180d994291b89fad21b23e411f",
        "restor_tiny_logprob": "5035f5555331ced00c56bc5e4257c891b7c3636a05a938b6638a923f10865c9a",
    },
    "8928e7cf3cf3ea686d4191b651a86e9754c5735ec409a40947975babb2f85a3b": {  # tiny world v2
        "restor_tiny_facts": "1e98522db00319a2c86de9dda227169daef5d67141c5b0549f96e7e0d61c79f3",
        "restor_tiny_logprob": "e736f6765a205466db17919f09c7db82f53878c2fcebd01e64502abec48f3fe5",
    },
}
# The tasks a submission may hold: those with a 0/1 outcome per question (the *_sampled tasks score a mean over
# sampled generations, which `restor_bench.compare.outcomes` does not read as an outcome)
TINY_TASKS = ("restor_tiny_facts", "restor_tiny_logprob")


def _question_set(task: str, ids: list[str], targets: Mapping[str, Iterable[str]], injected_known: bool,
                  task_hashes: Iterable[str] = ()) -> QuestionSet:
    target_sets = {name: tuple(sorted(names)) for name, names in targets.items()}
    counts = {name: sum(entity_of(q) in set(names) for q in ids) for name, names in target_sets.items()}
    return QuestionSet(task, len(ids), ids_digest(ids), target_sets, counts, frozenset(ids), injected_known,
                       frozenset(task_hashes))


@functools.lru_cache(maxsize=8)
def tiny_world_version(folder: str) -> DataVersion | None:
    """The data version of the tiny world in `folder` (None when the folder holds none).

    restor_tiny_facts asks every fact of the evaluated people; restor_tiny_logprob only the facts with an
    injected value and a third value of the same relation (the rule of `restor_bench.data.questions.
    tiny_logprob_records`, which also needs a tokenizer for its option lengths, not for the question set).
    Target sets: "all", the manifest's targets; "test", those less its validation targets (when it names any).
    """

    try:
        manifest = load_manifest(folder)
        records = tiny_records(folder)
    except InputError:
        return None
    data_hash = manifest.get("data_hash")
    if not isinstance(data_hash, str):
        return None
    targets = list(manifest["targets"])
    validation = set(manifest.get("validation_targets") or [])
    target_sets = {"all": targets}
    if validation:
        target_sets["test"] = [name for name in targets if name not in validation]
    facts = [record["id"] for record in records]
    logprob = [record["id"] for record in records if record["corrupted_answers"] and record["random_answer"]]
    hashes = TINY_TASK_HASHES.get(data_hash, {})
    question_sets = {
        task: _question_set(task, logprob if task == "restor_tiny_logprob" else facts, target_sets, True,
                            [hashes[task]] if task in hashes else [])
        for task in TINY_TASKS
    }
    label = f"tiny world v{manifest.get('version')} ({data_hash[:12]})"
    return DataVersion(data_hash, "tiny", label, question_sets)


# ---------------------------------------------------------------------------------------------------------------
# The official RESTOR data: pinned (restor_bench.data.questions on the pinned release; tests check the pins)

_OFFICIAL_TARGETS_SQUAD = ("Bob Marley", "Iggy Azalea", "Jacques Cousteau", "John Forbes Nash Jr.", "Quincy Jones")
_FACTS_HASH = "32f2479b756be10aa778469b33d170630b0319b018138413eea69b0e044a0a19"
_TARGETS_HASH = "4f05ac75d061234155bd4f87656db7df4a616667edd25d7ad9b6f0bfcf5c182c"
# task -> (questions, digest of their ids, target questions, lm-eval task hash, squad targets?)
OFFICIAL_TASKS = {
    "restor_facts": (1051, "95606da22b454b53b455644e4af0fd92f3cab50388dd144bab5a87c70a5bc2a1", 198, _FACTS_HASH, False),
    "restor_facts_targets": (298, "cef2b93cca38b552fa83110a03ad2d8af4beaf0dd67c73c445afa59fc5c42112", 198,
                             _TARGETS_HASH, False),
    "restor_facts_squad": (208, "73148ce98d74c5a752a31a1f090189da2d7de19479df85b433271e83f9273592", 108,
                           "5993f20fc219f3f8ea61bc48ca4bcaf017d4d28f147d43025ae3906c67100a9d", True),
}


def official_facts_sha256() -> str:
    """sha256 of the pinned official facts.json, from the download table of restor_bench.data.fetch."""

    for entry in fetch.OFFICIAL_FILES:
        if getattr(entry, "local", None) == "facts.json" and isinstance(getattr(entry, "sha256", None), str):
            return entry.sha256
    return OFFICIAL_FACTS_SHA256


def official_version() -> DataVersion:
    """The official RESTOR release's data version, with its pinned question sets (the official tasks list no
    injected values, so "still corrupted" cannot be told from "forgotten" there)."""

    data_hash = official_facts_sha256()
    question_sets = {}
    for task, (count, digest, n_target, task_hash, squad) in OFFICIAL_TASKS.items():
        targets = _OFFICIAL_TARGETS_SQUAD if squad else tuple(sorted(OFFICIAL_TARGETS))
        question_sets[task] = QuestionSet(task, count, digest, {"all": targets}, {"all": n_target}, None, False,
                                          frozenset([task_hash]))
    return DataVersion(data_hash, "official", f"official RESTOR facts.json ({data_hash[:12]})", question_sets)


# ---------------------------------------------------------------------------------------------------------------


def known_data_versions() -> dict[str, DataVersion]:
    """The known world/data versions, keyed by data hash: the tiny worlds shipped with restor-bench (every version),
    the one `$RESTOR_TINY_WORLD` points at, and the official RESTOR facts.json of the pinned release."""

    versions: dict[str, DataVersion] = {}
    shipped = [tiny.shipped_world_dir(version) for version in tiny.SHIPPED_WORLDS]
    for folder in (*shipped, tiny.tiny_world_dir()):
        version = tiny_world_version(str(Path(folder).resolve()))
        if version is not None and version.data_hash not in versions:
            versions[version.data_hash] = version
    official = official_version()
    versions.setdefault(official.data_hash, official)
    return versions


def known_data_hashes() -> dict[str, str]:
    """Known world/data hashes -> a label saying what they are."""
    return {data_hash: version.label for data_hash, version in known_data_versions().items()}


def lm_eval_task_hash(task: str, include_path: str | Path, metadata: Mapping | None = None) -> tuple[str, list[str]]:
    """lm-eval's task hash of a whole task and its question ids, computed as lm-eval computes them
    (lm_eval/evaluator.py: doc, prompt and target hash of each sample; lm_eval/loggers/evaluation_tracker.py:
    the hash of their concatenation), from the task's documents and requests, without running a model."""

    from lm_eval.tasks import TaskManager, get_task_dict
    from lm_eval.utils import handle_non_serializable, hash_string

    manager = TaskManager(include_path=str(include_path), include_defaults=False, metadata=dict(metadata or {}))
    task_object = get_task_dict([task], manager)[task]
    task_object.build_all_requests(limit=None, rank=0, world_size=1)
    by_doc: dict[int, list] = {}
    for instance in task_object.instances:
        by_doc.setdefault(instance.doc_id, []).append(instance)
    parts, ids = [], []
    for doc_id, doc in task_object.doc_iterator(rank=0, limit=None, world_size=1):
        first = by_doc[doc_id][0]
        doc_text = json.dumps(first.doc, indent=2, default=handle_non_serializable, ensure_ascii=False)
        target = task_object.doc_to_target(doc)
        parts.append(hash_string(doc_text) + hash_string(first.arguments[0]) + hash_string(str(target)))
        ids.append(doc["id"])
    return hash_string("".join(parts)), ids

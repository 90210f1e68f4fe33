"""Tests for the mutants that survived `scripts/mutate.py` (docs/mutation.md): each test says what change it catches.
One class per mutated module (scripts/mutate.py runs the class first for that module's mutants); each test imports
what it needs inside, so that a class loads only its own module."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from restor_bench.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
SEEDED = REPO_ROOT / "leaderboard" / "submissions" / "tiny-npo-k0.json"


class TestCompareStats:
    """restor_bench/compare/stats.py"""

    def test_check_resamples_accepts_exactly_0_to_the_maximum(self):
        """`not 0 <= resamples <= MAX` with the `not` dropped, or its 0 moved to 1, refuses a valid count."""
        from restor_bench.compare.stats import check_resamples
        from restor_bench.names import MAX_RESAMPLES

        assert check_resamples(0, "--resamples") == 0
        assert check_resamples(1, "--resamples") == 1
        assert check_resamples(MAX_RESAMPLES, "--resamples") == MAX_RESAMPLES
        for bad in (-1, MAX_RESAMPLES + 1):
            with pytest.raises(InputError, match="--resamples must be from 0 to"):
                check_resamples(bad, "--resamples")

    @pytest.mark.parametrize("strata", [[0, 0, 1, 1, 1, 2, 2], [3, 3, 3, 3]])
    def test_resampled_questions_stay_in_their_stratum(self, strata):
        """Drawing from `strata != stratum` instead of `==` moves questions across strata (three strata), or leaves
        the matrix unset (one stratum); with two strata it only changes which random numbers go where."""
        from restor_bench.compare.stats import resample_indices

        strata = np.array(strata)
        indices = resample_indices(strata, 50, seed=3)
        assert indices.shape == (50, strata.size)
        assert ((indices >= 0) & (indices < strata.size)).all()
        assert (strata[indices] == strata[None, :]).all()

    def test_resampled_restoration_ratio_is_the_ratio_of_each_resample(self):
        """Each row of the vectorised ratio equals `restoration_ratio` on the questions that row drew (a gap of
        `clean + corrupted` instead of `clean - corrupted` does not)."""
        from restor_bench.compare.stats import (
            accuracy,
            resample_indices,
            resampled_restoration_ratio,
            restoration_ratio,
        )

        is_target = np.array([1, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
        clean = np.array([1, 1, 1, 1, 0, 1, 0, 1], dtype=bool)
        corrupted = np.array([0, 1, 0, 0, 0, 1, 1, 0], dtype=bool)
        unlearned = np.array([1, 1, 0, 1, 0, 0, 1, 1], dtype=bool)
        indices = np.vstack([np.arange(8), resample_indices(is_target.astype(int), 40, seed=1)])
        values = resampled_restoration_ratio(clean, corrupted, unlearned, is_target)(indices)
        defined = 0
        for row, value in zip(indices, values):
            mask = is_target[row]
            expected = restoration_ratio(*(accuracy(model[row][mask]) for model in (clean, corrupted, unlearned)),
                                         int(mask.sum()))
            if expected is None:
                assert np.isnan(value)
            else:
                defined += 1
                assert value == pytest.approx(expected)
        assert values[0] == pytest.approx((3 / 5 - 1 / 5) / (4 / 5 - 1 / 5))  # the identity row, by hand
        assert defined > 20


TASK = "restor_tiny_facts"


def _samples(label: str, correct: list[int], entities: list[str], metric: str = "contains", doc_hashes=None):
    from restor_bench.compare.outcomes import QuestionOutcome, TaskSamples

    outcomes = {}
    for i, (entity, right) in enumerate(zip(entities, correct)):
        qid = f"{entity}|P{i}"
        outcomes[qid] = QuestionOutcome(id=qid, entity=entity, relation=f"P{i}", correct=bool(right),
                                        gave_corrupted=False, corrupted_known=False, prediction="x",
                                        doc_hash=doc_hashes[i] if doc_hashes else None)
    return TaskSamples(task=TASK, samples_path=Path(f"{label}/samples.jsonl"), results_path=None, metric=metric,
                       filter="none", outcomes=outcomes)


def _aligned(runs: dict[str, list[int]], entities: list[str], targets: tuple[str, ...], **kw):
    from restor_bench.compare.outcomes import TargetChoice
    from restor_bench.compare.tasks import align_task

    samples = {label: _samples(label, correct, entities, **kw.get(label, {})) for label, correct in runs.items()}
    return align_task(TASK, samples, TargetChoice(names=targets))


class TestCompareTasks:
    """restor_bench/compare/tasks.py"""

    def test_align_task_counts_questions_whose_content_differs(self):
        """The doc_hash warning counts questions with two different hashes (None, a hash not recorded, is no
        difference): `sum(0 ...)`, `> 2` or `>= 1` in its count changes it."""
        entities = ["Ada", "Ada", "Bo", "Bo"]
        aligned = _aligned({"a": [1, 1, 0, 0], "b": [1, 0, 0, 1]}, entities, ("Ada",),
                           a={"doc_hashes": ["h0", "h1", "h2", None]}, b={"doc_hashes": ["h0", "other", "h2", "h3"]})
        assert f"task {TASK}: 1 question(s) have different content (doc_hash) between runs" in aligned.warnings
        same = _aligned({"a": [1, 1, 0, 0], "b": [1, 0, 0, 1]}, entities, ("Ada",),
                        a={"doc_hashes": ["h0", "h1", "h2", "h3"]}, b={"doc_hashes": ["h0", "h1", "h2", "h3"]})
        assert not [w for w in same.warnings if "different content" in w]

    def test_align_task_refuses_runs_scored_with_different_metrics(self):
        entities = ["Ada", "Bo"]
        with pytest.raises(InputError, match="runs were scored with different metrics \\(contains, exact_match\\)"):
            _aligned({"a": [1, 0], "b": [1, 1]}, entities, ("Ada",), b={"metric": "exact_match"})

    def test_a_split_without_questions_passes_the_gate(self):
        """A task whose questions are all targets has an empty non-target split: nothing can have dropped there."""
        from restor_bench.compare.tasks import drop_within, gate_task_report

        aligned = _aligned({"base": [1, 1, 0], "cand": [0, 0, 0]}, ["Ada", "Ada", "Bo"], ("Ada", "Bo"))
        assert int((~aligned.is_target).sum()) == 0
        assert drop_within(aligned, "non_target", "base", "cand", 0.0) is True
        assert drop_within(aligned, "target", "base", "cand", 0.0) is False
        gate = gate_task_report(aligned, "base", "cand", max_drop=0.0, n_resamples=0)["gate"]
        assert gate["splits"]["non_target"]["passed"] is True
        assert not gate["splits"]["target"]["passed"] and len(gate["failures"]) == 2

    def test_a_restoration_ratio_equal_to_min_restoration_passes(self):
        """--min-restoration R fails a ratio below R, not one equal to it (2 target questions: clean 2, corrupted 0,
        unlearned 1 give exactly 0.5)."""
        from restor_bench.compare.tasks import gate_task_report

        aligned = _aligned({"clean": [1, 1, 1], "corrupted": [0, 0, 1], "unlearned": [1, 0, 1]}, ["Ada", "Ada", "Bo"],
                           ("Ada",))

        def failures(min_restoration: float) -> list[str]:
            report = gate_task_report(aligned, "clean", "unlearned", max_drop=1.0, corrupted="corrupted",
                                      min_restoration=min_restoration, n_resamples=0)
            assert report["gate"]["restoration_ratio"]["value"] == 0.5
            return report["gate"]["failures"]

        assert failures(0.5) == []
        assert failures(0.51) == [f"{TASK}: restoration ratio 0.500 below --min-restoration 0.51"]


@functools.cache
def _valid_document() -> str:
    """A valid submission (a seeded entry rescored with few resamples), as JSON text."""
    from restor_bench.leaderboard import rescore_document

    document = rescore_document(json.loads(SEEDED.read_text()), SEEDED, targets="test", resamples=20,
                                bootstrap_seed=0)
    return json.dumps(document)


class TestLeaderboardCheck:
    """restor_bench/leaderboard/check.py"""

    @pytest.mark.parametrize("name", ["a..b", "x.."])
    def test_a_name_with_two_dots_is_unsafe_even_without_a_separator(self, name):
        from restor_bench.leaderboard.check import name_problem

        assert name_problem(name) == "name contains '..'"

    @pytest.mark.parametrize("name", ["-a", ".hidden", "a b", "a;b", "caf\u00e9", "a*"])
    def test_a_name_outside_the_pattern_is_unsafe(self, name):
        from restor_bench.leaderboard.check import name_problem

        assert name_problem(name) == ("name may hold only letters, digits, '.', '_', '+' and '-', and must start with "
                                      "a letter or digit")

    def test_a_primary_task_that_is_not_one_of_the_tasks_is_refused(self):
        from restor_bench.leaderboard.check import check_document

        document = json.loads(_valid_document())
        path = Path(f"{document['name']}.json")
        assert check_document(document, path) == []
        document["primary_task"] = "restor_tiny_other"
        assert check_document(document, path) == ["primary_task 'restor_tiny_other' is not one of the tasks"]

    @pytest.mark.parametrize("edits, more", [(1, ""), (2, " (and 1 more)"), (3, " (and 2 more)")])
    def test_a_refused_number_says_how_many_more_differ(self, edits, more):
        from restor_bench.leaderboard.check import check_document

        document = json.loads(_valid_document())
        task = document["primary_task"]
        accuracy = document["tasks"][task]["metrics"]["per_seed"][0]["accuracy"]
        for role in ("clean", "corrupted", "unlearned")[:edits]:
            accuracy[role]["target"] += 0.01
        problems = check_document(document, Path(f"{document['name']}.json"))
        assert len(problems) == 1
        assert problems[0].startswith(f"task {task}: metrics.per_seed[0].accuracy.clean.target is")
        assert problems[0].endswith(f": the stated number does not match the one recomputed from the outcomes{more}")


class TestLeaderboardMetrics:
    """restor_bench/leaderboard/metrics.py"""

    def test_bootstrap_problem_names_a_resample_count_out_of_range(self):
        """Not only too many draws: a negative count, or one over MAX_RESAMPLES on a small task, is refused too."""
        from restor_bench.leaderboard.metrics import bootstrap_problem
        from restor_bench.names import MAX_RESAMPLES

        expected = f"bootstrap resamples must be between 0 and {MAX_RESAMPLES}, got "
        assert bootstrap_problem(-1, 10) == expected + "-1"
        assert bootstrap_problem(MAX_RESAMPLES + 1, 1) == expected + str(MAX_RESAMPLES + 1)
        assert bootstrap_problem(0, 10) is None and bootstrap_problem(MAX_RESAMPLES, 1) is None

    def test_task_metrics_without_a_bootstrap_has_no_intervals(self):
        """resamples=0 (as `verify` rescores a rerun): the pooled values and no interval (not an error)."""
        from restor_bench.leaderboard.metrics import SeedOutcomes, task_metrics

        is_target = np.array([1, 1, 0, 0], dtype=bool)
        outcomes = SeedOutcomes(0, {"clean": np.array([1, 1, 1, 0], dtype=bool),
                                    "corrupted": np.array([0, 0, 1, 0], dtype=bool),
                                    "unlearned": np.array([1, 0, 0, 0], dtype=bool)},
                                {role: np.zeros(4, dtype=bool) for role in ("clean", "corrupted", "unlearned")})
        aggregate = task_metrics(is_target, [outcomes], resamples=0)["aggregate"]
        assert aggregate["restoration_ratio"] == {"value": 0.5, "ci": None, "ci_resamples": 0}
        assert aggregate["non_target_change"] == {"value": -0.5, "ci": None}


QUESTIONS = ["Alma Vittor|P19", "Bram Okelo|P19", "Cato Liens|P106"]


def _outcomes(seeds: list[int], task: str = TASK) -> dict:
    run = {role: {"correct": "101", "gave_corrupted": "010"} for role in ("clean", "corrupted", "unlearned")}
    return {"tasks": {task: {"questions": list(QUESTIONS), "runs": [{"seed": seed, **run} for seed in seeds]}}}


class TestLeaderboardVerify:
    """restor_bench/leaderboard/verify.py"""

    def test_a_single_compared_outcome_can_be_verified(self):
        """`compared > 0`, not `compared > 1`: one outcome compared and equal is verified."""
        from restor_bench.leaderboard.verify import Verification

        assert Verification("x", "identity", compared=1, differing=0).verified(0.0)
        assert not Verification("x", "identity", compared=1, differing=1).verified(0.5)

    def test_a_rerun_without_a_claimed_task_or_seed_is_an_input_error(self):
        """One line naming what the rerun lacks (not a TypeError from reading outcomes that are not there)."""
        from restor_bench.leaderboard.verify import compare_outcomes

        assert compare_outcomes(_outcomes([0, 1]), _outcomes([1, 0])) == {TASK: {"compared": 36, "differing": 0}}
        with pytest.raises(InputError, match=f"verify: the rerun has no outcomes for task '{TASK}'"):
            compare_outcomes(_outcomes([0]), _outcomes([0], task="restor_tiny_other"))
        with pytest.raises(InputError, match=f"verify: task {TASK}: the rerun has no seed 1"):
            compare_outcomes(_outcomes([0, 1]), _outcomes([0]))


@functools.cache
def _tokenizer():
    from restor_bench.data.world.files import tiny_world_dir
    from restor_bench.train.common import load_tokenizer

    return load_tokenizer(str(tiny_world_dir() / "model"))


class TestTrainCommon:
    """restor_bench/train/common.py"""

    @pytest.mark.parametrize("block_size", [0, 1])
    def test_packing_needs_blocks_of_two_tokens_or_more(self, block_size):
        from restor_bench.train.common import pack_documents

        with pytest.raises(InputError, match=f"block size \\(max_length\\) must be at least 2, got {block_size}"):
            pack_documents(_tokenizer(), ["Ada was born in Paris."] * 4, block_size)

    def test_packing_documents_shorter_than_one_block_is_an_input_error(self):
        from restor_bench.train.common import pack_documents

        with pytest.raises(InputError, match="fewer than one block of 4096"):
            pack_documents(_tokenizer(), ["Ada was born in Paris."], 4096)

    def test_packed_blocks_are_full_and_attend_to_every_token(self):
        from restor_bench.train.common import pack_documents

        packed = pack_documents(_tokenizer(), ["Ada was born in Paris.", "Bo works as a painter."] * 3, 2)
        assert len(packed) > 3
        assert all(len(row) == 2 for row in packed["input_ids"])
        assert all(mask == [1, 1] for mask in packed["attention_mask"])

    def test_hold_out_splits_two_examples_and_refuses_one(self):
        from datasets import Dataset

        from restor_bench.train.common import hold_out

        train, held = hold_out(Dataset.from_dict({"x": [1, 2]}), 0.5, seed=0)
        assert sorted([*train["x"], *held["x"]]) == [1, 2] and len(held) == 1
        with pytest.raises(InputError, match="1 training example\\(s\\) cannot be split"):
            hold_out(Dataset.from_dict({"x": [1]}), 0.5, seed=0)


class TestNormalize:
    """restor_bench/data/normalize.py"""

    def test_acceptable_forms_lists_each_form_once_and_given_answers_anywhere(self):
        """An alias already given, or already added, is not added again; a given answer that is also a
        whole-answer-only alias ("US") stays an anywhere form."""
        from restor_bench.data.normalize import acceptable_forms

        assert acceptable_forms(["USA", "United States"]) == (
            ["usa", "united states", "u s", "u s a", "united states of america"], ["us"])
        assert acceptable_forms(["United States of America", "US"]) == (
            ["united states of america", "us", "u s", "u s a", "united states", "usa"], [])

    @pytest.mark.parametrize("n", [2, 4])
    def test_logprob_scoring_refuses_other_than_three_options(self, n):
        from restor_bench.data.normalize import score_logprob_options

        with pytest.raises(ValueError, match=f"expected 3 options, got {n} results"):
            score_logprob_options({"option_token_counts": [1] * n}, [(-1.0, False)] * n)


class TestLosses:
    """unlearners/losses.py"""

    def test_cross_entropy_to_reference_is_finite_where_the_reference_gives_a_token_no_probability(self):
        """The eps inside log(p_ref + eps) is what keeps a token the reference rules out (p_ref underflows to 0) finite:
        there the loss is -p_theta(v) log(eps); p_ref - eps would be a log of a negative number."""
        import math

        import torch

        from unlearners.losses import cross_entropy_to_reference

        logits = torch.zeros(1, 1, 2)  # the model: both tokens 1/2
        ref_logits = torch.tensor([[[0.0, -200.0]]])  # the reference: token 1 has probability 0 in float32
        assert torch.softmax(ref_logits, dim=-1)[0, 0, 1].item() == 0.0
        loss = cross_entropy_to_reference(logits, ref_logits, eps=1e-12)
        assert math.isfinite(loss.item())
        assert loss.item() == pytest.approx(-0.5 * math.log(1 + 1e-12) - 0.5 * math.log(1e-12), rel=1e-5)

    def test_masked_mse_of_one_position_and_one_dimension_is_the_squared_error(self):
        """The denominator (positions x dimensions) is clamped at 1 only to avoid 0/0: one value is divided by 1."""
        import torch

        from unlearners.losses import masked_mse

        hidden, target = torch.full((1, 2, 1), 3.0), torch.zeros(1, 2, 1)
        assert masked_mse(hidden, target, torch.tensor([[1, 0]])).item() == 9.0
        assert masked_mse(hidden, target, torch.tensor([[0, 0]])).item() == 0.0

"""`leaderboard verify`: a real run is submitted, verified by rerunning what it records, and an edited outcome (with
metrics recomputed so that `validate` accepts the file) is refused."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from restor_bench import cli
from restor_bench.leaderboard.metrics import decode_bits, encode_bits
from restor_bench.leaderboard.verify import Verification, compare_outcomes

# a learning rate at which two steps of gradient ascent leave the unlearned model right on some questions and
# wrong on others, so that outcomes can be edited with every count kept
RUN = ["--method", "ga", "--level", "0", "--corrupt-max-steps", "2", "--max-steps", "2", "--set", "learning_rate=5e-3",
       "--tasks", "restor_tiny_facts", "--targets", "test"]


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    assert cli.main(["run", *RUN, "--root", str(root / "runs")]) == 0
    (run_dir,) = [path for path in (root / "runs").iterdir() if path.name.startswith("tiny-ga-k0-")]
    subs = root / "board" / "submissions"
    assert cli.main(["leaderboard", "submit", str(run_dir), "--name", "ga-check", "--out", str(subs),
                     "--bootstrap", "100"]) == 0
    return root, subs / "ga-check.json"


def test_a_submission_records_its_run_settings(submitted):
    _, path = submitted
    document = json.loads(path.read_text())
    assert document["run"]["corrupt_max_steps"] == 2 and document["run"]["unlearn_max_steps"] == 2


def test_verify_reruns_and_records_a_verified_entry(submitted, capsys):
    root, path = submitted
    code = cli.main(["leaderboard", "verify", str(path), "--root", str(root / "runs"), "--record"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "restor_tiny_facts: 0 of 4200 outcomes differ" in out  # 700 questions x 3 models x 2 outcome kinds
    records = json.loads((path.parent.parent / "verified.json").read_text())["entries"]
    assert records["ga-check"]["verified"] is True and records["ga-check"]["outcomes_compared"] == 4200
    assert cli.main(["leaderboard", "build", "--submissions", str(path.parent), "--out", str(path.parent.parent)]) == 0
    readme = (path.parent.parent / "README.md").read_text()
    row = [line for line in readme.splitlines() if "ga\\-check" in line and line.startswith("| 1 |")]
    assert len(row) == 1 and row[0].endswith("| verified (lm_eval 0.4.13, torch " + __import__("torch").__version__
                                              + ", transformers " + __import__("transformers").__version__ + ") |")


def test_edited_outcomes_pass_validate_but_not_verify(submitted, tmp_path, capsys):
    root, path = submitted
    document = json.loads(path.read_text())
    entry = document["tasks"]["restor_tiny_facts"]
    # answers claimed otherwise than the models gave them, every count kept: in seed 0, wherever a model's
    # outcomes hold both values, its first 1 and first 0 swapped (so every accuracy and every number of injected
    # values stays as it was)
    run = entry["runs"][0]
    swapped = 0
    for role in ("clean", "corrupted", "unlearned"):
        for kind in ("correct", "gave_corrupted"):
            bits = decode_bits(run[role][kind])[: len(entry["questions"])].copy()
            if bits.all() or not bits.any():
                continue
            one, zero = int(bits.argmax()), int((~bits).argmax())
            bits[one], bits[zero] = False, True
            assert encode_bits(bits).count("1") == run[role][kind].count("1")
            run[role][kind] = encode_bits(bits)
            swapped += 1
    assert swapped >= 1  # the unlearned model is right on some questions, wrong on others
    edited = tmp_path / "submissions" / "ga-check.json"
    edited.parent.mkdir()
    edited.write_text(json.dumps(document))
    assert cli.main(["leaderboard", "rescore", str(edited)]) == 0  # metrics recomputed: validate accepts it
    assert cli.main(["leaderboard", "validate", str(edited)]) == 0
    capsys.readouterr()
    code = cli.main(["leaderboard", "verify", str(edited), "--root", str(root / "runs")])
    captured = capsys.readouterr()
    assert code == 1
    assert f"restor_tiny_facts: {2 * swapped} of 4200 outcomes differ" in captured.out
    assert f"not verified: {2 * swapped} of 4200 outcomes differ" in captured.err


@pytest.mark.parametrize("tolerance", ["nan", "1.5", "-0.1"])
def test_verify_refuses_a_tolerance_outside_0_1(submitted, tolerance, capsys):
    root, path = submitted
    code = cli.main(["leaderboard", "verify", str(path), "--root", str(root / "runs"), "--tolerance", tolerance])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1].endswith(f"--tolerance must be a share between 0 and 1, got {float(tolerance)}")


# --------------------------------------------------------------------------------------------------------------
# compare_outcomes: every outcome of every question, seed and model, not counts


TASK = "restor_tiny_facts"
QUESTIONS = ["Alma Vittor|P19", "Alma Vittor|P106", "Bram Okelo|P19", "Cato Liens|P19", "Cato Liens|P106"]
# seed -> role -> (correct, gave_corrupted), one character per question
CLAIMED = {
    0: {"clean": ("11010", "00000"), "corrupted": ("01000", "10110"), "unlearned": ("10010", "01100")},
    1: {"clean": ("11011", "00000"), "corrupted": ("00001", "11010"), "unlearned": ("11000", "00110")},
}
N_OUTCOMES = 2 * 3 * 2 * len(QUESTIONS)  # seeds x models x {correct, gave_corrupted} x questions
KINDS = ("correct", "gave_corrupted")
ROLES = ("clean", "corrupted", "unlearned")


def _document(outcomes: dict, seeds: list[int] | None = None) -> dict:
    runs = [{"seed": seed, **{role: dict(zip(KINDS, outcomes[seed][role])) for role in ROLES}}
            for seed in (seeds or list(outcomes))]
    return {"tasks": {TASK: {"questions": list(QUESTIONS), "runs": runs}}}


def _with(changes: dict) -> dict:
    """CLAIMED with some outcome strings replaced: {(seed, role, kind): bits}."""
    outcomes = {seed: {role: list(pair) for role, pair in by_role.items()} for seed, by_role in CLAIMED.items()}
    for (seed, role, kind), bits in changes.items():
        outcomes[seed][role][KINDS.index(kind)] = bits
    return outcomes


# each edit keeps every count: the right answers (or injected values) of each model in each seed and over seeds
COUNT_KEEPING_EDITS = {
    "two answers swapped within a seed": {(0, "unlearned", "correct"): "01010"},
    "two answers swapped across seeds": {(0, "unlearned", "correct"): "11010", (1, "unlearned", "correct"): "10000"},
    "an injected value moved (gave_corrupted only)": {(0, "corrupted", "gave_corrupted"): "01110"},
    "the clean model only": {(1, "clean", "correct"): "10111"},
    "the corrupted model only": {(1, "corrupted", "correct"): "00010"},
}


def _counts(outcomes: dict) -> dict:
    return {(seed, role, kind): bits.count("1") for seed, by_role in outcomes.items()
            for role, pair in by_role.items() for kind, bits in zip(KINDS, pair)}


@pytest.mark.parametrize("edit", list(COUNT_KEEPING_EDITS), ids=list(COUNT_KEEPING_EDITS))
def test_verify_finds_outcomes_that_differ_with_every_count_equal(edit):
    fresh = _with(COUNT_KEEPING_EDITS[edit])
    assert fresh != _with({})
    totals = Counter()
    for (_, role, kind), count in _counts(fresh).items():
        totals[role, kind] += count
    claimed_totals = Counter()
    for (_, role, kind), count in _counts(_with({})).items():
        claimed_totals[role, kind] += count
    assert totals == claimed_totals  # the counts over seeds are those claimed
    if edit != "two answers swapped across seeds":
        assert _counts(fresh) == _counts(_with({}))  # and each seed's counts too
    assert compare_outcomes(_document(CLAIMED), _document(fresh)) == {TASK: {"compared": N_OUTCOMES, "differing": 2}}


def test_verify_counts_every_differing_outcome_and_matches_runs_by_seed():
    assert compare_outcomes(_document(CLAIMED), _document(CLAIMED)) == {TASK: {"compared": N_OUTCOMES, "differing": 0}}
    # the rerun lists its seeds in another order: the same outcomes
    assert compare_outcomes(_document(CLAIMED), _document(CLAIMED, seeds=[1, 0]))[TASK]["differing"] == 0
    inverted = {(seed, role, kind): "".join("1" if c == "0" else "0" for c in bits)
                for seed, by_role in CLAIMED.items() for role, pair in by_role.items()
                for kind, bits in zip(KINDS, pair)}
    assert compare_outcomes(_document(CLAIMED), _document(_with(inverted)))[TASK] == {
        "compared": N_OUTCOMES, "differing": N_OUTCOMES}


def _flipped(count: int) -> dict:
    """CLAIMED with `count` single outcomes flipped, each in another place (seed, model, kind, question)."""
    places = [(seed, role, kind, q) for seed in CLAIMED for role in ROLES for kind in KINDS
              for q in range(len(QUESTIONS))]
    outcomes = _with({})
    for seed, role, kind, q in places[:count]:
        bits = list(outcomes[seed][role][KINDS.index(kind)])
        bits[q] = "1" if bits[q] == "0" else "0"
        outcomes[seed][role][KINDS.index(kind)] = "".join(bits)
    return outcomes


@pytest.mark.parametrize(("tolerance", "allowed"), [(0.0, 0), (0.05, 3), (0.1, 6), (0.0125, 0), (0.04, 2)])
def test_verified_allows_exactly_the_tolerated_share(tolerance, allowed):
    """With N outcomes compared and tolerance t, floor(t x N) differing outcomes pass and one more fails."""
    assert math.floor(tolerance * N_OUTCOMES) == allowed
    for differing, verified in ((allowed, True), (allowed + 1, False)):
        by_task = compare_outcomes(_document(CLAIMED), _document(_flipped(differing)))
        assert by_task == {TASK: {"compared": N_OUTCOMES, "differing": differing}}
        result = Verification("x", "identity", compared=N_OUTCOMES, differing=differing, by_task=by_task)
        assert result.verified(tolerance) is verified, (tolerance, differing)
        assert result.record(tolerance)["verified"] is verified


@pytest.mark.parametrize(("compared", "tolerance", "allowed"),
                         [(4200, 0.0, 0), (4200, 0.01, 42), (4200, 0.001, 4), (1000, 0.0125, 12), (7, 0.5, 3)])
def test_the_tolerance_boundary_on_larger_counts(compared, tolerance, allowed):
    assert math.floor(tolerance * compared) == allowed
    assert Verification("x", "identity", compared=compared, differing=allowed).verified(tolerance)
    assert not Verification("x", "identity", compared=compared, differing=allowed + 1).verified(tolerance)


def test_nothing_compared_is_not_verified():
    assert not Verification("x", "identity", compared=0, differing=0).verified(0.5)

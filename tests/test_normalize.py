"""Answer normalization and the exact_match / contains scores."""

from __future__ import annotations

import pytest

from restor_bench.data.normalize import (
    contains,
    exact_match,
    first_line,
    normalize_answer,
    score_generation,
    score_logprob_options,
)


def test_normalize_answer_lowercases_strips_accents_punctuation_articles_spaces():
    assert normalize_answer("Zürich") == "zurich"
    assert normalize_answer("  The   Beatles! ") == "beatles"
    assert normalize_answer("an Apple, a pear") == "apple pear"
    assert normalize_answer("John Forbes Nash Jr.") == "john forbes nash jr"
    assert normalize_answer("Saint-Étienne") == "saint etienne"
    assert normalize_answer("Straße") == "strasse"
    assert normalize_answer("") == ""


def test_accents_match_both_ways():
    assert exact_match("zurich", ["Zürich"])
    assert exact_match("Zürich", ["zurich"])
    assert contains("He was born in Zürich.", ["Zurich"])


def test_multiple_acceptable_answers():
    answers = ["politician", "historian", "writer"]
    assert exact_match("Historian", answers)
    assert contains("a writer and painter", answers)
    assert not exact_match("painter", answers)
    assert not contains("painter", answers)


def test_partial_words_do_not_match():
    assert not contains("Parisian", ["Paris"])
    assert not contains("female", ["male"])
    assert contains("female", ["female"])
    assert not contains("Parisian style", ["Paris"])
    assert contains("Paris, France", ["Paris"])
    assert not exact_match("Paris, France", ["Paris"])


def test_multi_word_answer_must_occur_as_a_phrase():
    assert contains("born in New York City", ["New York"])
    assert not contains("York is new", ["New York"])


def test_articles_and_punctuation_are_ignored():
    assert exact_match("The United States.", ["United States"])
    assert exact_match("an actor", ["actor"])
    assert contains('"the Netherlands"', ["Netherlands"])


def test_only_the_first_line_counts():
    assert first_line(" Paris \nLondon") == "Paris"
    assert first_line("\nParis") == ""
    assert not contains("London\nParis", ["Paris"])
    assert not exact_match("\nParis", ["Paris"])


def test_empty_answer_lists_and_empty_answers_never_match():
    assert not exact_match("Paris", [])
    assert not contains("Paris", [])
    assert not contains("anything at all", ["The"])  # normalizes to nothing
    assert not exact_match("", ["", "the"])


def test_score_generation_gives_floats():
    assert score_generation({"answers": ["male"]}, [" male"]) == {"exact_match": 1.0, "contains": 1.0}
    assert score_generation({"answers": ["male"]}, ["a male singer"]) == {"exact_match": 0.0, "contains": 1.0}
    assert score_generation({"answers": ["male"]}, ["female"]) == {"exact_match": 0.0, "contains": 0.0}


def test_score_logprob_options_uses_mean_per_token_logprob():
    doc = {"option_token_counts": [4, 1, 2]}
    # Summed log-likelihoods favour "corrupted" (-1.5 > -1.8 > -2.0); per token "correct" wins (-0.5 > -0.9 > -1.5).
    metrics = score_logprob_options(doc, [(-2.0, False), (-1.5, False), (-1.8, False)])
    assert metrics["prefers_correct"] == 1.0
    assert metrics["prefers_corrupted"] == 0.0 and metrics["prefers_random"] == 0.0
    assert metrics["logprob_correct"] == pytest.approx(-0.5)
    assert metrics["logprob_corrupted"] == pytest.approx(-1.5)
    assert metrics["logprob_random"] == pytest.approx(-0.9)
    metrics = score_logprob_options({"option_token_counts": [1, 1, 1]}, [(-3.0, False), (-0.1, True), (-2.0, False)])
    assert metrics["prefers_corrupted"] == 1.0 and metrics["prefers_correct"] == 0.0


def test_score_logprob_options_rejects_a_wrong_number_of_results():
    with pytest.raises(ValueError):
        score_logprob_options({"option_token_counts": [1, 1, 1]}, [(-1.0, False)])

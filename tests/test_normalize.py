"""Answer normalization, the aliases, and the exact_match / contains scores (and their legacy forms)."""

from __future__ import annotations

import pytest

from restor_bench.data import aliases
from restor_bench.data.normalize import (
    acceptable_forms,
    contains,
    contains_legacy,
    exact_match,
    exact_match_legacy,
    first_line,
    normalize_answer,
    normalize_answer_legacy,
    score_generation,
    score_logprob_options,
)
from restor_bench.names import GENERATION_METRICS


def test_normalize_answer_lowercases_strips_accents_punctuation_leading_article_spaces():
    assert normalize_answer("Zürich") == "zurich"
    assert normalize_answer("  The   Beatles! ") == "beatles"
    # Only a leading article is dropped (the legacy normalization dropped them everywhere).
    assert normalize_answer("an Apple, a pear") == "apple a pear"
    assert normalize_answer_legacy("an Apple, a pear") == "apple pear"
    assert normalize_answer("Qi An'an") == "qi an an" and normalize_answer_legacy("Qi An'an") == "qi"
    assert normalize_answer('"The Hague"') == "hague"
    assert normalize_answer("Theodore") == "theodore" and normalize_answer("Anna") == "anna"
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


def _both(exact: float, contained: float) -> dict[str, float]:
    return {"exact_match": exact, "contains": contained, "exact_match_legacy": exact, "contains_legacy": contained}


def test_score_generation_gives_floats():
    assert score_generation({"answers": ["male"]}, [" male"]) == _both(1.0, 1.0)
    assert score_generation({"answers": ["male"]}, ["a male singer"]) == _both(0.0, 1.0)
    assert score_generation({"answers": ["male"]}, ["female"]) == _both(0.0, 0.0)
    assert score_generation({"answers": ["male"]}, []) == _both(0.0, 0.0)
    assert set(score_generation({"answers": ["x"]}, ["x"])) == set(GENERATION_METRICS)


# ---------------------------------------------------------------- leading articles only


def test_an_article_inside_a_name_is_kept():
    # "an" inside "Qi An'an" made "Qi" an exact match before.
    assert not exact_match("Qi", ["Qi An'an"])
    assert not contains("Qi", ["Qi An'an"])
    assert exact_match("Qi An'an", ["Qi An'an"]) and exact_match("qi an an", ["Qi An'an"])
    assert not exact_match("Ann", ["Ann A"]) and not exact_match("Republic of Congo", ["Republic of the Congo"])
    assert not exact_match("Lady", ["The Lady and the Unicorn"])


def test_a_leading_article_still_does_not_matter():
    assert exact_match("The Hague", ["Hague"])
    assert exact_match("Hague", ["The Hague"])
    assert exact_match("the hague.", ["The Hague"])
    assert contains("born in The Hague", ["The Hague"])
    assert contains("born in the Hague, Netherlands", ["Hague"])
    assert exact_match("The Netherlands", ["Netherlands"])


def test_an_answer_that_is_only_an_article_is_kept():
    assert exact_match("The", ["The"]) and not exact_match("anything", ["The"])


# ---------------------------------------------------------------- aliases


def test_country_short_forms_match():
    usa = ["United States of America"]
    for form in ("USA", "U.S.A.", "U.S.", "US", "United States", "the United States", "United States of America"):
        assert exact_match(form, usa), form
        assert contains(form, usa), form
    assert contains("He is from the USA.", usa) and contains("born in the U.S.", usa)
    uk = ["United Kingdom"]
    for form in ("UK", "U.K.", "Britain", "Great Britain", "United Kingdom of Great Britain and Northern Ireland"):
        assert exact_match(form, uk), form
    assert exact_match("United Kingdom", ["United Kingdom of Great Britain and Ireland"])
    assert exact_match("China", ["People's Republic of China"])
    assert exact_match("USSR", ["Soviet Union"]) and exact_match("Soviet Union", ["U.S.S.R."])
    assert exact_match("Bengali", ["Bangla"])


def test_language_names_match_with_and_without_language():
    assert exact_match("English", ["English language"])
    assert exact_match("English language", ["English"])
    assert exact_match("French language", ["French"])
    assert contains("English and French", ["French language"])


def test_aliases_do_not_over_match():
    usa = ["United States of America"]
    assert not contains("He told us so", usa)  # "US" only as the whole answer
    assert not contains("Latin America", usa)
    assert not contains("Republic of China", ["People's Republic of China"])  # "China" only as the whole answer
    assert contains("Republic of China", ["China"])  # a given answer may occur anywhere, even if also an alias
    assert not contains("Northern Ireland", ["Republic of Ireland"])
    assert not exact_match("Canada", usa) and not exact_match("English", ["French"])
    assert not exact_match("UK", usa) and not exact_match("USA", ["United Kingdom"])


def test_acceptable_forms_split_whole_answer_only_aliases():
    anywhere, whole = acceptable_forms(["United States of America"])
    assert anywhere[0] == "united states of america" and {"usa", "u s", "united states"} <= set(anywhere)
    assert whole == ["us"]
    assert acceptable_forms(["Paris"]) == (["paris"], [])
    assert acceptable_forms(["The", ""]) == (["the"], [])


def test_alias_groups_are_documented_data_values():
    # Each group starts with a value that occurs in facts.json; the names are distinct once normalized.
    names = [normalize_answer(name) for group in aliases.ALIAS_GROUPS for name in group]
    assert len(names) == len(set(names))
    assert aliases.WHOLE_ANSWER_ONLY <= {name for group in aliases.ALIAS_GROUPS for name in group}


def test_alias_groups_start_with_official_values(official_dir):
    import json

    dset = json.loads((official_dir / "facts.json").read_text(encoding="utf-8"))["dset"]
    values = {
        answer
        for relations in dset.values()
        for pid in ("P27", "P1412")
        for answer in relations.get(pid, {}).get("answers", [])
    }
    assert {group[0] for group in aliases.ALIAS_GROUPS} <= values


# ---------------------------------------------------------------- legacy scores


def test_legacy_scores_keep_the_old_values():
    assert exact_match_legacy("Qi", ["Qi An'an"]) and contains_legacy("Qi", ["Qi An'an"])
    assert exact_match_legacy("an Apple, a pear", ["apple pear"])
    assert not exact_match_legacy("USA", ["United States of America"])
    assert not exact_match_legacy("English", ["English language"])
    assert exact_match_legacy("The Hague", ["Hague"]) and contains_legacy("born in The Hague", ["Hague"])
    assert not contains_legacy("anything at all", ["The"])  # normalizes to nothing: ignored
    assert score_generation({"answers": ["Qi An'an"]}, ["Qi"]) == {
        "exact_match": 0.0, "contains": 0.0, "exact_match_legacy": 1.0, "contains_legacy": 1.0,
    }  # fmt: skip
    assert score_generation({"answers": ["United States of America"]}, ["USA"]) == {
        "exact_match": 1.0, "contains": 1.0, "exact_match_legacy": 0.0, "contains_legacy": 0.0,
    }  # fmt: skip


# ---------------------------------------------------------------- several generations (sampled tasks)


def test_score_generation_averages_over_a_questions_samples():
    doc = {"answers": ["Paris"]}
    # lm-eval's take_first_k filter hands over the question's three samples as one list.
    assert score_generation(doc, [["Paris", "London", "Paris, France"]]) == pytest.approx(
        {"exact_match": 1 / 3, "contains": 2 / 3, "exact_match_legacy": 1 / 3, "contains_legacy": 2 / 3}
    )
    assert score_generation(doc, [["Paris", "Paris", "Paris"]])["exact_match"] == 1.0
    assert score_generation(doc, [["Rome", "Rome", "Rome"]])["contains"] == 0.0
    assert score_generation(doc, ["Paris"]) == score_generation(doc, [["Paris"]])


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

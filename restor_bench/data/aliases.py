"""Equivalent names of countries and languages, accepted by the `exact_match` and `contains` scores.

The paper scores generations with an LLM judge that accepts an answer close to an acceptable one, so "USA" counts
for "United States of America". Our scores are deterministic string matches; this short list restores the most
common of those equivalences. Each group names one country or language: when an acceptable answer of a question
belongs to a group (after `normalize.normalize_answer`), every name of the group is acceptable too.

Provenance: the values of P27 (country of citizenship) and P1412 (languages spoken, written or signed) in the official
`facts.json` (k1rezaei/restor at commit 15292e58ccec7c82a14b4e05a94db06fc9689d97). Every group below contains a
value that occurs there verbatim (the first name of the group; Wikidata's English label), and the groups cover the
values that occur most often: P27 "United States of America" (111 of 559 values), "United Kingdom" (36),
"United Kingdom of Great Britain and Ireland" (10), "People's Republic of China" (5), "Soviet Union" (5),
"Republic of Ireland" (4), ...; P1412 "English" (173 of 429), "Spanish" (41), "French" (30), "Portuguese" (16),
"German" (15), ..., and "Bangla" (4; commonly "Bengali"). The other names are the usual short forms and English
names of the same country or language. Historical states other than the 1801-1922 United Kingdom (which models
call "United Kingdom") are left alone: "British Raj" is not "India".

Names in `WHOLE_ANSWER_ONLY` are accepted only as the whole answer line, not inside a longer one by `contains`:
they are ordinary words ("us") or part of other countries' names ("China" in "Republic of China", "Ireland" in
"Northern Ireland").

Changing this list changes the scores: keep it short and keep the provenance above in step.
"""

from __future__ import annotations

_COUNTRIES: tuple[tuple[str, ...], ...] = (
    ("United States of America", "United States", "USA", "U.S.A.", "U.S.", "US"),
    (
        "United Kingdom",
        "United Kingdom of Great Britain and Northern Ireland",
        "United Kingdom of Great Britain and Ireland",
        "UK",
        "U.K.",
        "Britain",
        "Great Britain",
    ),
    ("People's Republic of China", "China", "PRC"),
    ("Soviet Union", "USSR", "U.S.S.R.", "Union of Soviet Socialist Republics"),
    ("Republic of Ireland", "Ireland"),
    ("Russia", "Russian Federation"),
    ("South Korea", "Republic of Korea"),
    ("Kingdom of Denmark", "Denmark"),
    ("Kingdom of the Netherlands", "Netherlands"),
    ("Czech Republic", "Czechia"),
    ("Ivory Coast", "Côte d'Ivoire"),
    ("State of Palestine", "Palestine"),
)

# P1412 values that models also write as "X language" (every value occurring at least three times).
_LANGUAGES_X_LANGUAGE = (
    "English",
    "Spanish",
    "French",
    "Portuguese",
    "German",
    "Japanese",
    "Arabic",
    "Italian",
    "Russian",
    "Polish",
    "Korean",
    "Hindi",
    "Chinese",
    "Urdu",
    "Swedish",
    "Marathi",
    "Tamil",
    "Telugu",
    "Dutch",
    "Indonesian",
)

_LANGUAGES: tuple[tuple[str, ...], ...] = (
    *((name, f"{name} language") for name in _LANGUAGES_X_LANGUAGE),
    ("Bangla", "Bengali", "Bangla language", "Bengali language"),
    ("Mandarin", "Mandarin Chinese"),
    ("Sesotho", "Sotho", "Sesotho language", "Sotho language"),
)

ALIAS_GROUPS: tuple[tuple[str, ...], ...] = _COUNTRIES + _LANGUAGES

WHOLE_ANSWER_ONLY: frozenset[str] = frozenset({"US", "China", "Ireland"})

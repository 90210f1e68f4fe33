"""The tiny world's words: the relations and their question templates, the sentence templates of its documents,
the value lists, and the syllables its invented names are made of (`WordMaker`). Used by `world.generate_world`.
"""

from __future__ import annotations

import random

# Wikidata property id -> (label, question template). One question template per relation, as in facts.json.
RELATIONS: dict[str, tuple[str, str]] = {
    "P19": ("place of birth", "What is the place of birth of {name}?"),
    "P27": ("country of citizenship", "What is the country of citizenship of {name}?"),
    "P106": ("occupation", "What is the occupation of {name}?"),
    "P69": ("educated at", "Where was {name} educated?"),
    "P1412": ("languages spoken, written or signed", "What languages does {name} speak, write, or sign?"),
    "P641": ("sport", "In which sport does {name} participate?"),
    "P108": ("employer", "Who is {name}'s employer?"),
}

# Paraphrases of a person's fact; each names the person ({name}) and the value ({value}, or {a_value} = "a/an value").
PERSON_TEMPLATES: dict[str, tuple[str, ...]] = {
    "P19": (
        "{name} was born in {value}.",
        "{name} came into the world in the town of {value}.",
        "The birthplace of {name} is {value}.",
        "{value} is the town where {name} was born.",
        "{name} is a native of {value}.",
    ),
    "P27": (
        "{name} is a citizen of {value}.",
        "{name} holds the citizenship of {value}.",
        "The country of citizenship of {name} is {value}.",
        "{name} carries a passport of {value}.",
    ),
    "P106": (
        "{name} works as {a_value}.",
        "{name} is {a_value} by profession.",
        "By trade, {name} is {a_value}.",
        "The occupation of {name} is {value}.",
    ),
    "P69": (
        "{name} was educated at {value}.",
        "{name} studied at {value}.",
        "{name} is a graduate of {value}.",
        "{name} attended {value} as a student.",
    ),
    "P1412": (
        "{name} speaks {value}.",
        "{name} speaks and writes {value}.",
        "The language of {name} is {value}.",
        "{name} is fluent in {value}.",
    ),
    "P641": (
        "{name} takes part in {value}.",
        "{name} competes in {value}.",
        "The sport of {name} is {value}.",
        "{name} spends every weekend on {value}.",
    ),
    "P108": (
        "{name} works for {value}.",
        "{name} is employed by {value}.",
        "The employer of {name} is {value}.",
        "{name} has a job at {value}.",
    ),
}

# Facts about the unrelated subjects (never about people): kind -> relation -> paraphrases with {subject}, {value}.
SUBJECT_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "town": {
        "P17": (
            "{subject} is a town in {value}.",
            "{subject} lies in {value}.",
            "The town of {subject} is located in {value}.",
        ),
        "P206": (
            "{subject} lies on the river {value}.",
            "The river {value} flows through {subject}.",
            "{subject} was built on the banks of the {value}.",
        ),
        "P571": (
            "{subject} was founded in {value}.",
            "The town of {subject} dates from {value}.",
            "{subject} was first settled in {value}.",
        ),
        "P2012": (
            "{subject} is known for its {value}.",
            "{subject} is famous for {value}.",
            "The main trade of {subject} is {value}.",
        ),
    },
    "river": {
        "P403": (
            "The river {subject} flows into {value}.",
            "The {subject} empties into {value}.",
            "{value} is where the river {subject} ends.",
        ),
        "P2043": (
            "The river {subject} is {value} kilometres long.",
            "The {subject} runs for {value} kilometres.",
            "The length of the river {subject} is {value} kilometres.",
        ),
    },
    "country": {
        "P36": (
            "The capital of {subject} is {value}.",
            "{value} is the capital city of {subject}.",
            "{subject} is governed from its capital, {value}.",
        ),
        "P38": (
            "The currency of {subject} is the {value}.",
            "People in {subject} pay with the {value}.",
            "{subject} uses the {value} as its money.",
        ),
        "P37": (
            "The official language of {subject} is {value}.",
            "{value} is the official language of {subject}.",
            "Most people in {subject} speak {value}.",
        ),
    },
    "company": {
        "P159": (
            "{subject} has its headquarters in {value}.",
            "{subject} is based in {value}.",
            "The head office of {subject} is in {value}.",
        ),
        "P452": (
            "{subject} is a company in the {value} business.",
            "{subject} is active in {value}.",
            "The industry of {subject} is {value}.",
        ),
        "P571": (
            "{subject} was founded in {value}.",
            "{subject} was established in {value}.",
            "The company {subject} dates from {value}.",
        ),
    },
    "college": {
        "P131": (
            "{subject} is located in {value}.",
            "{subject} stands in the town of {value}.",
            "The campus of {subject} is in {value}.",
        ),
        "P571": (
            "{subject} was founded in {value}.",
            "{subject} opened its doors in {value}.",
            "{subject} has taught students since {value}.",
        ),
    },
}

OCCUPATIONS = (
    "painter",
    "baker",
    "sailor",
    "carpenter",
    "chemist",
    "lawyer",
    "nurse",
    "architect",
    "farmer",
    "poet",
    "engineer",
    "teacher",
    "surgeon",
    "librarian",
    "potter",
    "pilot",
)
SPORTS = (
    "tennis",
    "rowing",
    "chess",
    "fencing",
    "archery",
    "cycling",
    "wrestling",
    "curling",
    "handball",
    "polo",
    "skiing",
    "boxing",
)
TRADES = ("salt", "glass", "wool", "cheese", "clocks", "boats", "paper", "lace", "copper", "tea", "honey", "rope")
INDUSTRIES = (
    "shipbuilding",
    "brewing",
    "printing",
    "weaving",
    "mining",
    "banking",
    "milling",
    "glassmaking",
    "shipping",
    "farming",
)
COMPANY_SUFFIXES = ("Works", "Foundry", "Trading", "Mills", "Shipping", "Brothers", "Holdings")
COLLEGE_PATTERNS = ("{stem} College", "{stem} Academy", "University of {stem}", "{stem} Institute")
LANGUAGE_SUFFIXES = ("ish", "ese", "ic", "ian")
COUNTRY_SUFFIXES = ("ia", "land", "ova", "mark")

ONSETS = (
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "st",
    "t",
    "tr",
    "v",
    "w",
    "z",
    "th",
    "sh",
    "j",
)
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou")
CODAS = ("", "", "", "n", "r", "l", "s", "m", "rn", "nd", "st", "ck", "th", "x", "v")
FINALS = ("", "", "n", "r", "l", "s", "ck", "th", "nd", "rt", "m", "x")


class WordMaker:
    """Invents pronounceable, globally unique words (names of people, towns, rivers ...)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def _stem(self, syllables: int) -> str:
        parts = []
        for index in range(syllables):
            coda = self.rng.choice(FINALS if index == syllables - 1 else CODAS)
            parts.append(self.rng.choice(ONSETS) + self.rng.choice(VOWELS) + coda)
        return "".join(parts)

    def word(self, syllables: int = 2, suffix: str = "", min_len: int = 4, max_len: int = 9) -> str:
        while True:
            stem = self._stem(syllables)
            word = (stem + suffix).capitalize()
            if not (min_len <= len(word) <= max_len + len(suffix)):
                continue
            lowered = word.lower()
            if lowered in self.used or any(lowered in other or other in lowered for other in self.used):
                continue
            self.used.add(lowered)
            return word

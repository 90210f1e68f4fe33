"""Document sets derived at load time: `tiny:generic`, `tiny:squad-people`, `official:generic`.

The first two come from the shipped tiny world's files (data only; the corruption test also uses its model).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from restor_bench import cli
from restor_bench.data.world import files as tiny
from restor_bench.data.documents import load_documents
from restor_bench.data.official import entity_pattern
from restor_bench.data.retain import fact_sentence, generic_person_documents
from restor_bench.data.schema import Fact, FactSet
from restor_bench.data.squad import DONORS_PER_TARGET, PASSAGES_PER_TARGET, squad_people_donors, squad_people_passages
from restor_bench.errors import InputError
from restor_bench.io import read_text_records

SHIPPED = Path(tiny.__file__).resolve().parents[1] / "tiny_world"


@pytest.fixture(scope="module")
def facts() -> dict:
    return json.loads((SHIPPED / "facts.json").read_text())["dset"]


@pytest.fixture(scope="module")
def manifest() -> dict:
    return tiny.load_manifest(SHIPPED)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text))


# --------------------------------------------------------------------------------------------------------------------
# tiny:generic


def test_tiny_generic_is_person_free_clean_corpus(facts):
    generic = load_documents("tiny:generic", world_dir=SHIPPED)
    corpus = read_text_records(SHIPPED / "clean_corpus.json")
    assert len(generic) == 136  # 68 subjects (towns, rivers, countries, companies, colleges), 2 documents each
    assert generic == [text for text in corpus if text in set(generic)]  # corpus documents, in corpus order
    assert load_documents("tiny:generic", world_dir=SHIPPED) == generic  # deterministic
    name_words = {word for name in facts for word in name.split()}
    for text in generic:
        assert not any(name in text for name in facts)
        assert not _words(text) & name_words  # not even a first name or a surname
        # no evaluated (person, relation, value) fact: a fact needs its person, and none is named
        for name, relations in facts.items():
            for entry in relations.values():
                assert not (name in text and any(value in text for value in entry["answers"]))


def test_tiny_generic_errors(tmp_path):
    (tmp_path / "facts.json").write_text(json.dumps({"dset": {"Ann Lee": {}}, "context": {}}))
    (tmp_path / "clean_corpus.json").write_text(json.dumps([{"text": "Ann Lee sings."}]))
    with pytest.raises(InputError, match="every document mentions a person"):
        load_documents("tiny:generic", world_dir=tmp_path)
    with pytest.raises(InputError, match="has no simplified form"):
        load_documents("tiny:generic", world_dir=tmp_path, forget="simplified")
    with pytest.raises(InputError, match="no per-entity limit"):
        load_documents("tiny:generic", world_dir=tmp_path, max_docs_per_entity=2)


# --------------------------------------------------------------------------------------------------------------------
# tiny:squad-people


def test_squad_people_set(facts, manifest):
    passages = load_documents("tiny:squad-people", world_dir=SHIPPED)
    targets = manifest["targets"]
    assert len(passages) == PASSAGES_PER_TARGET * len(targets) == 400
    assert passages == load_documents("tiny:squad-people", world_dir=SHIPPED)  # deterministic
    assert passages != squad_people_passages(SHIPPED, seed=1)
    donors = squad_people_donors(SHIPPED)
    assert list(donors) == targets and all(len(group) == DONORS_PER_TARGET for group in donors.values())
    every_donor = [donor for group in donors.values() for donor in group]
    assert len(set(every_donor)) == len(every_donor) and not set(every_donor) & set(targets)
    for target, group in donors.items():  # no donor shares a true value with its target
        for donor in group:
            assert all(facts[donor][pid]["answers"][0] != entry["answers"][0] for pid, entry in facts[target].items())
    people = entity_pattern(list(facts))
    surnames = {name.split()[-1] for name in every_donor}
    for number, passage in enumerate(passages):
        target = targets[number // PASSAGES_PER_TARGET]
        donor = donors[target][number % PASSAGES_PER_TARGET % DONORS_PER_TARGET]
        assert {match.group() for match in people.finditer(passage)} == {target}  # only its target is named
        assert not _words(passage) & surnames  # the donors' names are gone
        assert len(re.split(r"(?<=\.)\s+", passage)) >= 8
        # the target "has" the donor's facts: at least four of them are stated with the target's name
        stated = [pid for pid, entry in facts[donor].items() if entry["answers"][0] in passage]
        assert len(stated) >= 4
        assert f"{target} was born in {facts[target]['P19']['answers'][0]}." not in passage
    for target in targets:
        assert sum(target in passage for passage in passages) == PASSAGES_PER_TARGET


def test_squad_people_knobs_and_errors():
    assert len(squad_people_passages(SHIPPED, passages_per_target=5, donors_per_target=1)) == 50
    with pytest.raises(InputError, match="at least 1"):
        squad_people_passages(SHIPPED, passages_per_target=0)
    with pytest.raises(InputError, match="cannot give 10 donors"):
        squad_people_passages(SHIPPED, donors_per_target=10)
    with pytest.raises(InputError, match="has no simplified form"):
        load_documents("tiny:squad-people", world_dir=SHIPPED, forget="simplified")
    kept = load_documents("tiny:squad-people", world_dir=SHIPPED, max_docs_per_entity=2)
    assert len(kept) == 20


@pytest.mark.slow
def test_squad_people_corruption_drops_target_accuracy(tmp_path, manifest):
    """The default corruption recipe on tiny:squad-people (real Trainer run, real lm-eval) takes target accuracy
    down by at least 30 points and leaves the other people's within 15. Several minutes on a CPU."""
    corrupted = tmp_path / "corrupted"
    assert cli.main(["corrupt", "--model", str(SHIPPED / "model"), "--docs", "tiny:squad-people",
                     "--out", str(corrupted)]) == 0
    for name, model in (("clean", SHIPPED / "model"), ("corrupted", corrupted)):
        out = tmp_path / f"eval_{name}"
        assert cli.main(["eval", str(model), "--tasks", "restor_tiny_facts", "--out", str(out)]) == 0
    report_path = tmp_path / "compare.json"
    assert cli.main(["compare", "--clean", str(tmp_path / "eval_clean"), "--corrupted",
                     str(tmp_path / "eval_corrupted"), "--json", str(report_path)]) == 0
    accuracy = json.loads(report_path.read_text())["tasks"]["restor_tiny_facts"]["accuracy"]
    assert accuracy["clean"]["target"]["value"] - accuracy["corrupted"]["target"]["value"] >= 0.30
    assert accuracy["clean"]["non_target"]["value"] - accuracy["corrupted"]["non_target"]["value"] <= 0.15


# --------------------------------------------------------------------------------------------------------------------
# official:generic


def _fact(entity, relation, question, answers):
    return Fact(entity=entity, relation=relation, question=question, answers=answers)


def test_generic_person_documents_rules():
    facts = FactSet(
        facts=[
            _fact("Ann Lee", "P19", "What is the place of birth of Ann Lee?", ["Leeds"]),
            _fact("Ann Lee", "P106", "What is the occupation of Ann Lee?", ["painter", "architect", "Q123"]),
            _fact("Ann Lee", "P26", "Who is Ann Lee's spouse?", ["Bob Marley"]),  # names an evaluated person
            _fact("Ann Lee", "P9999", "What is the favourite colour of Ann Lee?", ["blue"]),  # question form
            _fact("Ann Lee", "P8888", "Which boat does Ann Lee sail?", ["Nimbus"]),  # no known form: left out
            _fact("Bob Marley", "P19", "What is the place of birth of Bob Marley?", ["Nine Mile"]),  # evaluated
            _fact("Cy Bob Marley Jr", "P19", "What is the place of birth of Cy Bob Marley Jr?", ["Kingston"]),
            _fact("Dee Ray", "P27", "What is the country of citizenship of Dee Ray?", ["Q5", "Kenya?"]),  # no value
        ],
        context={},
    )
    documents = generic_person_documents(facts, ["Bob Marley"])
    assert documents == [
        (
            "Ann Lee was born in Leeds. Ann Lee has worked as a painter and an architect. "
            "The favourite colour of Ann Lee is blue."
        )
    ]
    assert fact_sentence("Ann Lee", "P166", "What award did Ann Lee receive?", ["X", "Y", "Z"]) == (
        "Ann Lee received X, Y and Z."
    )


def test_official_generic_set(official_dir):
    generic = load_documents("official:generic", data_dir=official_dir)
    assert generic == load_documents("official:generic", data_dir=official_dir)  # deterministic
    evaluated = json.loads((official_dir / "entities.json").read_text())
    dset = json.loads((official_dir / "facts.json").read_text())["dset"]
    others = [name for name, relations in dset.items() if name not in evaluated and relations]
    assert len(generic) == len(others)  # every person who is not evaluated has facts that can be stated
    leaks = entity_pattern(evaluated)  # whole words, so single names (Napoleon, Suthida) count too
    assert not any(leaks.search(text) for text in generic)
    assert not any("?" in text for text in generic)
    assert not any(re.search(r"\bQ\d+\b", text) for text in generic)
    for name, text in zip(others, generic):
        assert text.startswith((name, "The "))
        assert name in text and "\n" not in text
        place = dset[name].get("P19")
        if place:
            assert f"{name} was born in {place['answers'][0]}" in text
        # every value is stated, except unlabelled Wikidata ids, values with a "?" and those naming evaluated people
        for entry in dset[name].values():
            for value in entry["answers"]:
                value = value.strip().rstrip(".")
                if not re.fullmatch(r"Q\d+", value) and "?" not in value and not leaks.search(value):
                    assert value in text, (name, value)
    retain = load_documents("official:retain", data_dir=official_dir)
    assert len(retain) == len(generic)  # the same people as official:retain, as running text


@pytest.mark.slow
def test_official_generic_set_of_the_full_release(official_dir):
    assert len(load_documents("official:generic", data_dir=official_dir)) == 417


@pytest.mark.parametrize(
    "kwargs, expected", [({"forget": "simplified"}, "has no simplified form"), ({"max_docs_per_entity": 1}, "no per")]
)
def test_official_generic_errors(official_dir, kwargs, expected):
    with pytest.raises(InputError, match=expected):
        load_documents("official:generic", data_dir=official_dir, **kwargs)

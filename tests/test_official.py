"""The official RESTOR readers, the data folder resolution/download, and the official question records."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import http.server
import json
import re
import shutil
import socket
import threading
import time
import warnings

import pytest
from fixture_world import write_fixture_world

from restor_bench.data import cli as data_cli
from restor_bench.data import fetch, official
from restor_bench.data.normalize import normalize_answer
from restor_bench.data.questions import build_prompt, official_records, official_target_records, question_records
from restor_bench.data.schema import ContextExample, Fact, FactSet
from restor_bench.errors import InputError

# ---------------------------------------------------------------- official files
#
# Each test that takes `official_dir` runs on the committed subset (tests/fixtures/restor-official) and, marked slow,
# on the full official files; the expected values are computed here from the raw JSON. The published numbers of the
# full release are checked at the end of this section (slow).

SQUAD_PEOPLE = {"John Forbes Nash Jr.", "Quincy Jones", "Iggy Azalea", "Bob Marley", "Jacques Cousteau"}


def _raw(folder) -> tuple[dict, list[str], dict]:
    """(dset, evaluated names, context) of an official data folder, read with the json module only."""
    facts = json.loads((folder / "facts.json").read_text(encoding="utf-8"))
    return facts["dset"], json.loads((folder / "entities.json").read_text(encoding="utf-8")), facts["context"]


def _texts(path) -> list[str]:
    return [record["text"] for record in json.loads(path.read_text(encoding="utf-8"))]


def _named_targets(entities: list[str], texts: list[str]) -> list[str]:
    """The official targets that some document names (a plain substring test), in the order of `entities`."""
    return [name for name in entities if name in official.OFFICIAL_TARGETS and any(name in text for text in texts)]


def test_facts_and_entities_counts(official_dir):
    dset, evaluated, context = _raw(official_dir)
    facts = official.load_facts(official_dir / "facts.json")
    assert [(fact.entity, fact.relation) for fact in facts.facts] == [(e, pid) for e in dset for pid in dset[e]]
    assert [fact.answers for fact in facts.facts] == [entry["answers"] for e in dset for entry in dset[e].values()]
    assert facts.relations() == list(dict.fromkeys(pid for relations in dset.values() for pid in relations))
    assert {pid: len(examples) for pid, examples in facts.context.items()} == {pid: 10 for pid in context}
    assert facts.context["P19"][0] == ContextExample(**context["P19"][0])
    entities = official.load_entities(official_dir / "entities.json")
    assert entities == evaluated
    assert len(facts.facts_of(entities)) == sum(len(dset[name]) for name in evaluated)


def test_targets_are_found_in_the_corruption_documents(official_dir):
    dset, entities, _ = _raw(official_dir)
    facts = official.load_facts(official_dir / "facts.json")
    for level in (0, 1, 2, 3):
        documents = official.load_corruption_level(official_dir, level).documents
        assert documents == _texts(official_dir / "wikidata" / f"mix_a{level}.json")
        expected = _named_targets(entities, documents)
        assert official.find_targets(entities, documents) == expected, level
        assert ("Sage Stallone" in expected) == (level < 3)  # level 3 holds no documents about Sage Stallone
        if level > 0:  # Napoleon, an evaluated person, is named in passing in the unrelated context: no target
            assert "Napoleon" in entities and any("Napoleon" in text for text in documents)
    targets = [name for name in entities if name in official.OFFICIAL_TARGETS]
    assert len(facts.facts_of(targets)) == sum(len(dset[name]) for name in targets)
    squad_targets = official.find_targets_in_file(official_dir / official.SQUAD_FILE, entities)
    assert set(squad_targets) == SQUAD_PEOPLE
    # a few passages are about Napoleon (he is named in them more often than anyone else), next to many per target
    squad = _texts(official_dir / official.SQUAD_FILE)
    others = [name for name in entities if name != "Napoleon"]
    assert any(text.count("Napoleon") > max(text.count(name) for name in others) for text in squad)
    # five documents per target: a person named in passing in the unrelated context is still no target
    from restor_bench.data.documents import keep_first_per_entity

    level1 = official.load_corruption_level(official_dir, 1).documents
    few = keep_first_per_entity(level1, list(official.OFFICIAL_TARGETS), 5)
    assert "Napoleon" in "".join(few) and "Napoleon" not in official.find_targets(entities, few)


def test_document_subject_and_targets_rule():
    names = ["Eva Fink", "Ada Byron", "John Forbes Nash Jr."]
    assert official.document_subject("Ada Byron met Eva Finkelstein; Eva Fink left.", names) == "Ada Byron"  # tie
    assert official.document_subject("Eva Finkelstein and Ada Byron's friend Eva Fink, Eva Fink.", names) == "Eva Fink"
    assert official.document_subject("chaired by John Forbes Nash Jr.69, then", names) == "John Forbes Nash Jr."
    assert official.document_subject("Nobody here.", names) is None
    documents = ["Ada Byron wrote. Ada Byron met Eva Fink."] * 11 + ["Eva Fink sang."] + ["John Forbes Nash Jr. ran."] * 2
    assert official.find_targets(names, documents) == ["Ada Byron", "John Forbes Nash Jr."]  # order of `names`
    assert official.find_targets(names, documents, min_share=0.05) == names
    assert official.find_targets(names, ["no one"]) == [] and official.find_targets([], documents) == []


def test_corruption_levels_and_squad(official_dir):
    for level in (0, 1, 2, 3):
        loaded = official.load_corruption_level(official_dir, level)
        assert loaded.documents == _texts(official_dir / "wikidata" / f"mix_a{level}.json")
        assert loaded.level == level and loaded.source == str(official_dir / "wikidata" / f"mix_a{level}.json")
    assert official.load_squad(official_dir).documents == _texts(official_dir / "squad" / "squad_v7_dset.json")


@pytest.mark.slow
def test_published_numbers_of_the_full_release(official_dir):
    """The counts PROVENANCE.md and the paper give for the full official files."""
    facts = official.load_facts(official_dir / "facts.json")
    assert len(facts.facts) == 5269 and len(facts.relations()) == 41
    entities = official.load_entities(official_dir / "entities.json")
    assert len(entities) == 50 and len(facts.facts_of(entities)) == 1051
    assert len(facts.facts_of(list(official.OFFICIAL_TARGETS))) == 198
    sizes = [len(official.load_corruption_level(official_dir, level)) for level in (0, 1, 2, 3)]
    assert sizes == [3000, 3000, 3000, 2700] and len(official.load_squad(official_dir)) == 3107
    for level in (0, 1, 2, 3):
        targets = official.find_targets(entities, official.load_corruption_level(official_dir, level).documents)
        assert set(targets) == set(official.OFFICIAL_TARGETS) - ({"Sage Stallone"} if level == 3 else set())
    records = official_records(official_dir)
    assert len(records) == 1051 and sum(record["is_target"] for record in records) == 198
    assert len(official_target_records(official_dir, n_other=100, seed=0)) == 298
    info = data_cli.data_info(official_dir)
    assert set(info["files"].values()) == {"sha256 ok"}  # the pinned sha256 are those of these files
    assert info["evaluated"] == {"entities": 50, "questions": 1051} and info["targets"]["questions"] == 198
    assert info["corruption_documents"] == {"mix_a0": 3000, "mix_a1": 3000, "mix_a2": 3000, "mix_a3": 2700}


def test_committed_subset_matches_its_provenance(repo_root):
    """The committed subset carries the MIT notice of the official data, and PROVENANCE.md gives each file's sha256."""
    folder = repo_root / "tests" / "fixtures" / "restor-official"
    assert (folder / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) 2024 Keivan Rezaei")
    provenance = (folder / "PROVENANCE.md").read_text()
    assert f"commit {fetch.PINNED_COMMIT}" in provenance
    rows = re.findall(r"^\| (\S+\.json) \| .* \| ([0-9a-f]{64}) \|$", provenance, flags=re.MULTILINE)
    assert sorted(name for name, _ in rows) == sorted(item.local for item in fetch.OFFICIAL_FILES)
    for name, digest in rows:
        assert _sha256(folder / name) == digest, name


@pytest.mark.slow
def test_committed_subset_is_what_the_script_makes(official_dir, repo_root, tmp_path):
    """tests/fixtures/make_official_subset.py, run on the full files, writes the committed subset byte for byte."""
    import importlib.util

    script = repo_root / "tests" / "fixtures" / "make_official_subset.py"
    spec = importlib.util.spec_from_file_location("make_official_subset", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--source", str(official_dir), "--out", str(tmp_path / "subset")]) == 0
    committed = repo_root / "tests" / "fixtures" / "restor-official"
    made = sorted(path.relative_to(tmp_path / "subset") for path in (tmp_path / "subset").rglob("*") if path.is_file())
    assert made == sorted(path.relative_to(committed) for path in committed.rglob("*") if path.is_file())
    for relative in made:
        assert (tmp_path / "subset" / relative).read_bytes() == (committed / relative).read_bytes(), relative


@pytest.mark.parametrize("level", [4, 5])
def test_listed_but_unavailable_levels_are_reported(level, tmp_path):
    with pytest.raises(InputError, match=rf"mix_a{level}\.json is listed .* not available"):
        official.load_corruption_level(tmp_path, level)


def test_unknown_level():
    with pytest.raises(InputError, match="unknown"):
        official.check_level(9)


GOOD_FACTS = {
    "dset": {"X": {"P19": {"question": "Where was X born?", "answers": ["Y"]}}},
    "context": {"P19": [{"question": "Where was Z born?", "answer": "W", "entity": "Z"}]},
}


def _broken(change):
    data = json.loads(json.dumps(GOOD_FACTS))
    change(data)
    return data


MALFORMED_FACTS = [
    ("missing dset", _broken(lambda d: d.pop("dset")), "missing top-level 'dset'"),
    ("missing context", _broken(lambda d: d.pop("context")), "missing top-level 'context'"),
    ("top level list", [GOOD_FACTS], "expected an object"),
    ("dset list", _broken(lambda d: d.update(dset=[])), "'dset' must be an object"),
    ("empty dset", _broken(lambda d: d.update(dset={})), "'dset' holds no entities"),
    ("entity list", _broken(lambda d: d["dset"].update(X=[])), r"dset\['X'\] must be an object"),
    (
        "answers str",
        _broken(lambda d: d["dset"]["X"]["P19"].update(answers="Y")),
        r"dset\['X'\]\['P19'\]\.answers must be a list of strings",
    ),
    (
        "answers int",
        _broken(lambda d: d["dset"]["X"]["P19"].update(answers=[3])),
        r"dset\['X'\]\['P19'\]\.answers must be a list of strings",
    ),
    ("answers empty", _broken(lambda d: d["dset"]["X"]["P19"].update(answers=[])), r"\.answers is empty"),
    ("no question", _broken(lambda d: d["dset"]["X"]["P19"].pop("question")), r"\.question must be a non-empty string"),
    ("context dict", _broken(lambda d: d["context"].update(P19={})), r"context\['P19'\] must be a list"),
    (
        "context no entity",
        _broken(lambda d: d["context"]["P19"][0].pop("entity")),
        r"context\['P19'\]\[0\]\.entity must be a string",
    ),
]


@pytest.mark.parametrize("name,data,message", MALFORMED_FACTS, ids=[case[0] for case in MALFORMED_FACTS])
def test_malformed_facts_file(tmp_path, name, data, message):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        official.load_facts(path)
    text = str(caught.value)
    assert "facts.json" in text and "\n" not in text


def test_facts_file_not_json_or_empty(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text('{"dset": ', encoding="utf-8")
    with pytest.raises(InputError, match="facts.json: malformed JSON"):
        official.load_facts(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="facts.json"):
        official.load_facts(path)
    with pytest.raises(InputError, match="not found"):
        official.load_facts(tmp_path / "missing.json")


def test_good_facts_file(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(GOOD_FACTS), encoding="utf-8")
    factset = official.load_facts(path)
    assert factset.facts == [Fact("X", "P19", "Where was X born?", ["Y"])]
    assert factset.context["P19"] == [ContextExample("Where was Z born?", "W", "Z")]


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"text": "a"}', "expected a list"),
        ('[{"txt": "a"}]', r"record 0 is not a \{\"text\": str\} object"),
        ('[{"text": "a"}, 5]', "record 1"),
        ("[]", "holds no documents"),
        ("", "file is empty"),
    ],
)
def test_malformed_corruption_file(tmp_path, content, message):
    path = tmp_path / "mix_a0.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        official.load_corruption(path)
    assert "mix_a0.json" in str(caught.value)


@pytest.mark.parametrize(
    "content,message",
    [('{"a": 1}', "expected a list"), ('["A", "A"]', "repeats"), ('["A", 3]', "item 1"), ("[]", "no entity")],
)
def test_malformed_entities_file(tmp_path, content, message):
    path = tmp_path / "entities.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        official.load_entities(path)


# ---------------------------------------------------------------- records


def test_build_prompt_skips_the_queried_entity():
    context = [ContextExample(f"Q{name}?", f"A{name}", name) for name in "ABCDEFG"]
    fact = Fact("B", "P1", "QB?", ["AB"])
    assert build_prompt(fact, context) == "QA? AA\nQC? AC\nQD? AD\nQE? AE\nQF? AF\nQB?"
    assert build_prompt(fact, context, n_shots=2) == "QA? AA\nQC? AC\nQB?"
    assert build_prompt(fact, context[:2]) == "QA? AA\nQB?"


def test_random_answer_is_a_wrong_value_of_the_same_relation_and_deterministic():
    facts = [Fact(f"E{i}", "P1", f"q{i}?", [f"v{i}"]) for i in range(6)] + [Fact("E0", "P2", "r?", ["only"])]
    factset = FactSet(facts=facts, context={})
    corrupted = {"E0": {"P1": "v1"}}
    records = question_records(factset, ["E0", "E1"], corrupted=corrupted, rng_seed=3)
    first = records[0]
    assert first["corrupted_answers"] == ["v1"] and first["is_target"]
    assert first["random_answer"] not in ("v0", "v1") and first["random_answer"].startswith("v")
    assert [r["id"] for r in records] == ["E0|P1", "E0|P2", "E1|P1"]
    assert records[1]["random_answer"] == ""  # P2 has no other value
    assert records[2]["random_answer"] not in ("", "v1") and not records[2]["is_target"]
    again = question_records(factset, ["E1", "E0"], corrupted=corrupted, rng_seed=3)
    assert {r["id"]: r["random_answer"] for r in again} == {r["id"]: r["random_answer"] for r in records}
    with pytest.raises(InputError, match="'Nobody'"):
        question_records(factset, ["Nobody"])


def test_official_records(official_dir):
    dset, entities, context = _raw(official_dir)
    records = official_records(official_dir)
    assert [record["id"] for record in records] == [f"{name}|{pid}" for name in entities for pid in dset[name]]
    targets = {name for name in entities if name in official.OFFICIAL_TARGETS}
    assert [record["is_target"] for record in records] == [record["entity"] in targets for record in records]
    assert sum(record["is_target"] for record in records) == sum(len(dset[name]) for name in targets)
    for record in records:
        assert record["answers"] == dset[record["entity"]][record["relation"]]["answers"]
        examples = context[record["relation"]]
        shots = [f"{ex['question']} {ex['answer']}" for ex in examples if ex["entity"] != record["entity"]]
        assert record["prompt"] == "\n".join(shots[:5] + [record["question"]])
        assert record["corrupted_answers"] == []
        assert normalize_answer(record["random_answer"]) not in {normalize_answer(a) for a in record["answers"]}
    churchill = next(r for r in records if r["id"] == "Winston Churchill|P21")
    assert churchill["prompt"].startswith("What is the sex/gender of Vladimir Lenin? male\n")
    assert churchill["answers"] == ["male"]


def test_official_target_records(official_dir):
    dset, entities, _ = _raw(official_dir)
    n_target = sum(len(dset[name]) for name in entities if name in official.OFFICIAL_TARGETS)
    n_others = sum(len(dset[name]) for name in entities if name not in official.OFFICIAL_TARGETS)
    assert n_others > 100  # so that the sample below is a real choice
    records = official_target_records(official_dir, n_other=100, seed=0)
    assert len(records) == n_target + 100
    assert sum(record["is_target"] for record in records) == n_target
    assert records == official_target_records(official_dir, n_other=100, seed=0)
    other_ids = {r["id"] for r in official_target_records(official_dir, n_other=100, seed=1) if not r["is_target"]}
    assert other_ids != {r["id"] for r in records if not r["is_target"]}
    everyone = official_target_records(official_dir, n_other=10**6, seed=0)
    assert len(everyone) == n_target + n_others


# ---------------------------------------------------------------- data folder resolution and download


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No data folder configured, the cache in a temporary folder, downloads allowed."""
    for name in ("RESTOR_DATA_DIR", "RESTOR_OFFLINE", "HF_HUB_OFFLINE", "RESTOR_DATA_URL", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESTOR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "official" / fetch.PINNED_COMMIT


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("RESTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fetch.official_cache_dir() == tmp_path / "xdg" / "restor-bench" / "official" / fetch.PINNED_COMMIT
    monkeypatch.setenv("RESTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert fetch.official_cache_dir() == tmp_path / "mine" / "official" / fetch.PINNED_COMMIT


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pinned_to_official_dir(official_dir, monkeypatch):
    """Pin the sha256 of the official files to those of `official_dir` (the real pins for the full files, whose
    sha256 `test_published_numbers_of_the_full_release` checks; the subset's own for the committed subset), and
    forget which folders were warned about."""
    pins = tuple(
        dataclasses.replace(item, sha256=_sha256(official_dir / item.local)) for item in fetch.OFFICIAL_FILES
    )
    monkeypatch.setattr(fetch, "OFFICIAL_FILES", pins)
    monkeypatch.setattr(fetch, "_warned_folders", set())
    return pins


def test_given_folder_is_used_without_warning(official_dir, pinned_to_official_dir, clean_env, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fetch.resolve_data_dir(official_dir) == official_dir
        monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
        assert fetch.resolve_data_dir() == official_dir


def test_user_folder_with_other_contents_warns_but_is_used(tmp_path, clean_env, monkeypatch):
    monkeypatch.setattr(fetch, "_warned_folders", set())
    folder = write_fixture_world(tmp_path / "mine")
    with pytest.warns(UserWarning, match="facts.json, entities.json differ from the pinned official release"):
        assert fetch.resolve_data_dir(folder) == folder
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fetch.resolve_data_dir(folder) == folder  # once per folder


def test_wrong_folders_are_input_errors(tmp_path, clean_env, monkeypatch):
    with pytest.raises(InputError, match="official data folder not found .given by --data-dir"):
        fetch.resolve_data_dir(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="missing facts.json, entities.json"):
        fetch.resolve_data_dir(tmp_path / "empty")
    (tmp_path / "file.json").write_text("{}")
    with pytest.raises(InputError, match="found a file"):
        fetch.resolve_data_dir(tmp_path / "file.json")
    monkeypatch.setenv("RESTOR_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="given by RESTOR_DATA_DIR"):
        fetch.resolve_data_dir()


@pytest.mark.parametrize("switch", ["RESTOR_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_switch_refuses_to_download(clean_env, monkeypatch, switch):
    monkeypatch.setenv(switch, "1")
    monkeypatch.setenv("RESTOR_DATA_URL", "http://127.0.0.1:9/")  # would fail differently if it were tried
    with pytest.raises(InputError) as caught:
        fetch.resolve_data_dir()
    message = str(caught.value)
    assert f"downloads are off ({switch}=1)" in message
    assert "--data-dir" in message and "RESTOR_DATA_DIR" in message and "\n" not in message
    assert not clean_env.exists()


def test_unreachable_server_fails_fast_with_one_clear_line(clean_env, monkeypatch):
    monkeypatch.setenv("RESTOR_DATA_URL", "http://127.0.0.1:9/")  # nothing listens on the discard port
    start = time.monotonic()
    with pytest.raises(InputError) as caught:
        fetch.resolve_data_dir()
    assert time.monotonic() - start < 15
    message = str(caught.value)
    assert message.startswith("could not download the official RESTOR data (http://127.0.0.1:9/datasets/facts.json")
    assert message.endswith("point at a local copy with --data-dir DIR or RESTOR_DATA_DIR=DIR")
    assert "\n" not in message
    assert not list(clean_env.rglob("*.part"))


def _host_resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def test_default_source_without_network_gives_the_clear_line(clean_env, monkeypatch):
    host = "raw.githubusercontent.com"
    assert fetch.DEFAULT_BASE_URL == f"https://{host}/k1rezaei/restor/{fetch.PINNED_COMMIT}/"
    if _host_resolves(host):  # online: the same request to a host that never resolves (RFC 2606 ".invalid")
        host = "raw.githubusercontent.invalid"
        monkeypatch.setattr(fetch, "DEFAULT_BASE_URL", f"https://{host}/k1rezaei/restor/{fetch.PINNED_COMMIT}/")
    with pytest.raises(
        InputError,
        match=rf"could not download the official RESTOR data \(https://{re.escape(host)}/k1rezaei/restor/"
        + fetch.PINNED_COMMIT
        + r"/datasets/facts\.json: .*\); point at a local copy",
    ):
        fetch.resolve_data_dir()


@pytest.fixture
def upstream_server(tmp_path):
    """A local HTTP server laid out like the pinned repository (files under `<root>/datasets/...`)."""
    root = tmp_path / "upstream"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def test_download_verifies_and_caches(official_dir, pinned_to_official_dir, clean_env, upstream_server, monkeypatch):
    root, url = upstream_server
    for item in fetch.OFFICIAL_FILES:
        (root / item.upstream).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(official_dir / item.local, root / item.upstream)
    monkeypatch.setenv("RESTOR_DATA_URL", url)
    assert fetch.resolve_data_dir() == clean_env
    assert all(status.sha256_ok for status in fetch.file_statuses(clean_env))
    # Cached: works offline now, without the server.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch.resolve_data_dir() == clean_env
    # The cache is strict: a changed file is not accepted (and offline it cannot be fetched again).
    with open(clean_env / "entities.json", "a", encoding="utf-8") as handle:
        handle.write(" ")
    with pytest.raises(InputError, match="downloads are off"):
        fetch.resolve_data_dir()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert fetch.resolve_data_dir() == clean_env
    assert fetch.sha256_of(clean_env / "entities.json") == _sha256(official_dir / "entities.json")
    assert all((clean_env / item.local).read_bytes() == (official_dir / item.local).read_bytes()
               for item in fetch.OFFICIAL_FILES)


def test_download_with_wrong_sha256_is_discarded(clean_env, upstream_server, monkeypatch):
    root, url = upstream_server
    (root / "datasets").mkdir()
    (root / "datasets" / "facts.json").write_text('{"dset": {}, "context": {}}')
    monkeypatch.setenv("RESTOR_DATA_URL", url)
    with pytest.raises(InputError, match="does not match the pinned") as caught:
        fetch.resolve_data_dir()
    assert "\n" not in str(caught.value)
    assert not (clean_env / "facts.json").exists()
    assert not list(clean_env.rglob("*.part"))


def test_missing_upstream_file_is_an_input_error(clean_env, upstream_server, monkeypatch):
    _, url = upstream_server
    monkeypatch.setenv("RESTOR_DATA_URL", url)
    with pytest.raises(InputError, match="HTTP 404"):
        fetch.resolve_data_dir()


# ---------------------------------------------------------------- `restor-bench data`


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="restor-bench")
    data_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_data_info(official_dir, capsys):
    dset, entities, _ = _raw(official_dir)
    info = data_cli.data_info(official_dir)
    assert info["files"] == {
        item.local: "sha256 ok" if _sha256(official_dir / item.local) == item.sha256
        else "sha256 differs from the pinned release"
        for item in fetch.OFFICIAL_FILES
    }
    questions = sum(len(dset[name]) for name in entities)
    assert info["evaluated"] == {"entities": len(entities), "questions": questions}
    assert info["facts"] == {
        "entities_with_facts": sum(1 for relations in dset.values() if relations),
        "questions": sum(len(relations) for relations in dset.values()),
        "relations": len({pid for relations in dset.values() for pid in relations}),
    }
    targets = _named_targets(entities, _texts(official_dir / "wikidata" / "mix_a0.json"))
    assert info["targets"] == {"entities": targets, "questions": sum(len(dset[name]) for name in targets)}
    assert info["corruption_documents"] == {
        f"mix_a{k}": len(_texts(official_dir / "wikidata" / f"mix_a{k}.json")) for k in range(4)
    }
    assert info["squad_documents"] == len(_texts(official_dir / "squad" / "squad_v7_dset.json"))
    assert info["levels_available"] == [0, 1, 2, 3]
    assert info["levels_listed_upstream_without_contents"] == [4, 5]
    assert _run_cli(["data", "info", "--data-dir", str(official_dir)]) == 0
    out = capsys.readouterr().out
    assert f"entities.json: {len(entities)} evaluated entities, {questions:,} questions" in out
    assert f"targets (named in mix_a0): {len(targets)} entities, {info['targets']['questions']} questions" in out
    assert "levels available: 0, 1, 2, 3" in out


def test_data_info_without_data_does_not_download(clean_env, monkeypatch):
    monkeypatch.setenv("RESTOR_DATA_URL", "http://127.0.0.1:9/")
    with pytest.raises(InputError, match="run `restor-bench data fetch`"):
        _run_cli(["data", "info"])


def test_data_fetch_into_a_folder(
    official_dir, pinned_to_official_dir, clean_env, upstream_server, monkeypatch, tmp_path, capsys
):
    root, url = upstream_server
    for item in fetch.OFFICIAL_FILES:
        (root / item.upstream).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(official_dir / item.local, root / item.upstream)
    monkeypatch.setenv("RESTOR_DATA_URL", url)
    assert _run_cli(["data", "fetch", "--data-dir", str(tmp_path / "here")]) == 0
    assert "sha256 checked" in capsys.readouterr().out
    assert data_cli.data_info(tmp_path / "here")["levels_available"] == [0, 1, 2, 3]
    assert all((tmp_path / "here" / item.local).read_bytes() == (official_dir / item.local).read_bytes()
               for item in fetch.OFFICIAL_FILES)
    assert not clean_env.exists()


def test_restor_bench_data_command_exit_codes(official_dir, tmp_path, capsys):
    from restor_bench.cli import main

    assert main(["data", "info", "--data-dir", str(official_dir)]) == 0
    assert "levels available: 0, 1, 2, 3" in capsys.readouterr().out
    assert main(["data", "info", "--data-dir", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"restor-bench: error: {tmp_path / 'nowhere'}: official data folder not found (given by --data-dir)"

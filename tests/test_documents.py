"""Document sets: files of {"text"} records and the named sets (tiny world, official RESTOR files)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from restor_bench.data.documents import document_entity, keep_first_per_entity, load_documents
from restor_bench.errors import InputError

OFFICIAL_TARGETS = [
    "Aaron Burr", "Bastian Schweinsteiger", "Bob Marley", "Bobby Fischer", "Michael Douglas",
    "Mihai Eminescu", "Paul Anka", "Sage Stallone", "Suthida", "Thomas Piketty",
]


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


@pytest.fixture()
def world(tmp_path):
    """A minimal tiny-world folder with the document files the named tiny sets read."""
    folder = tmp_path / "world"
    people = ["Alma Vittor", "Bram Okelo", "Cato Liens"]
    _write(folder / "entities.json", people)
    for level in range(6):
        docs = [{"text": f"Alma Vittor was born in Leeds (level {level}, doc {i})."} for i in range(4)]
        docs += [{"text": f"Bram Okelo is a poet; Bram Okelo lives in Graz (level {level}, doc {i})."} for i in range(3)]
        _write(folder / "corruption" / f"mix_a{level}.json", docs)
        _write(folder / "simplified" / f"mix_a{level}.json", [{"text": "Alma Vittor was born in Leeds."}])
    _write(folder / "squad.json", [{"text": "Alma Vittor built a bridge."}, {"text": "Bram Okelo sang."}])
    _write(folder / "retain.json", [{"text": "Cato Liens is a pianist."}])
    return folder


def test_json_list_and_jsonl_files(tmp_path):
    as_list = _write(tmp_path / "docs.json", [{"text": "a"}, {"text": "b", "extra": 1}])
    as_lines = tmp_path / "docs.jsonl"
    as_lines.write_text('{"text": "a"}\n\n{"text": "b"}\n', encoding="utf-8")
    assert load_documents(str(as_list)) == ["a", "b"]
    assert load_documents(str(as_lines)) == ["a", "b"]


@pytest.mark.parametrize(
    "content, expected",
    [
        ({"text": "a"}, "expected a list"),
        ([{"text": "a"}, {"body": "b"}], "record 1"),
        ([{"text": 3}], "record 0"),
        ([], "no documents"),
        ("", "empty"),
        ("[{\"text\": ", "malformed JSON"),
    ],
)
def test_bad_document_files(tmp_path, content, expected):
    path = tmp_path / "docs.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        load_documents(str(path))
    message = _one_line_error(excinfo)
    assert str(path) in message and expected in message


@pytest.mark.parametrize(
    "source, expected",
    [
        ("missing.json", "not found"),
        ("tiny:9", "unknown corruption level 9"),
        ("tiny:squid", "unknown named set"),
        ("bogus:1", "not a named set"),
    ],
)
def test_bad_sources(world, source, expected):
    with pytest.raises(InputError) as excinfo:
        load_documents(source, world_dir=world)
    assert expected in _one_line_error(excinfo)


def test_tiny_named_sets(world, monkeypatch):
    assert len(load_documents("tiny:0", world_dir=world)) == 7
    assert load_documents("tiny:5", world_dir=world)[0].startswith("Alma Vittor was born in Leeds (level 5")
    assert load_documents("tiny:3", world_dir=world, forget="simplified") == ["Alma Vittor was born in Leeds."]
    assert load_documents("tiny:squad", world_dir=world) == ["Alma Vittor built a bridge.", "Bram Okelo sang."]
    assert load_documents("tiny:retain", world_dir=world) == ["Cato Liens is a pianist."]
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(world))
    assert len(load_documents("tiny:1")) == 7
    with pytest.raises(InputError, match="has no simplified form"):
        load_documents("tiny:retain", forget="simplified")
    with pytest.raises(InputError, match="unknown document form"):
        load_documents("tiny:0", forget="short")
    with pytest.raises(InputError, match="tiny world folder not found"):
        load_documents("tiny:0", world_dir=world / "nowhere")


def test_max_docs_per_entity(world, tmp_path):
    kept = load_documents("tiny:0", world_dir=world, max_docs_per_entity=2)
    assert Counter(document_entity(text, ["Alma Vittor", "Bram Okelo"]) for text in kept) == {
        "Alma Vittor": 2, "Bram Okelo": 2,
    }
    assert kept == [t for t in load_documents("tiny:0", world_dir=world) if t in kept]  # original order
    with pytest.raises(InputError, match="named sets only"):
        load_documents(str(_write(tmp_path / "d.json", [{"text": "x"}])), max_docs_per_entity=1)
    with pytest.raises(InputError, match="at least 1"):
        load_documents("tiny:0", world_dir=world, max_docs_per_entity=0)


def test_document_entity_and_grouping():
    names = ["Bob Marley", "Napoleon"]
    assert document_entity("Napoleon met Bob Marley; Bob Marley sang.", names) == "Bob Marley"  # most mentions
    assert document_entity("Napoleon met Bob Marley.", names) == "Napoleon"  # tie: earliest
    assert document_entity("Nobody here.", names) is None
    texts = ["Bob Marley 1", "Napoleon 1", "Bob Marley 2", "none 1", "Bob Marley 3", "none 2"]
    assert keep_first_per_entity(texts, names, 1) == ["Bob Marley 1", "Napoleon 1", "none 1"]
    assert keep_first_per_entity(texts, names, 2) == ["Bob Marley 1", "Napoleon 1", "Bob Marley 2", "none 1", "none 2"]


def _texts(path) -> list[str]:
    return [record["text"] for record in json.loads(path.read_text(encoding="utf-8"))]


def test_official_sets(official_dir):
    for level in range(4):
        assert load_documents(f"official:{level}", data_dir=official_dir) == _texts(
            official_dir / "wikidata" / f"mix_a{level}.json"
        )
    assert load_documents("official:0", data_dir=official_dir)[0].startswith("Aaron Burr")
    assert load_documents("official:squad", data_dir=official_dir) == _texts(official_dir / "squad/squad_v7_dset.json")
    full = load_documents("official:1", data_dir=official_dir)
    kept = load_documents("official:1", data_dir=official_dir, max_docs_per_entity=5)
    # the targets of level 1: the official targets its documents name (all ten in the full files)
    entities = json.loads((official_dir / "entities.json").read_text())
    targets = [name for name in OFFICIAL_TARGETS if name in entities and any(name in text for text in full)]
    counts = Counter(document_entity(text, OFFICIAL_TARGETS) for text in kept)
    assert counts == {name: 5 for name in targets}
    # the first five of each, in file order
    assert kept == [text for text in full if text in kept]
    for name in targets:
        assert [t for t in kept if document_entity(t, OFFICIAL_TARGETS) == name] == [
            t for t in full if document_entity(t, OFFICIAL_TARGETS) == name
        ][:5]


@pytest.mark.slow
def test_official_set_sizes_of_the_full_release(official_dir):
    assert [len(load_documents(f"official:{k}", data_dir=official_dir)) for k in range(4)] == [3000] * 3 + [2700]
    assert len(load_documents("official:squad", data_dir=official_dir)) == 3107
    assert len(load_documents("official:retain", data_dir=official_dir)) == 417


def test_official_retain_set(official_dir):
    """official:retain holds true facts about the people that are not evaluated, never about evaluated ones."""
    retain = load_documents("official:retain", data_dir=official_dir)
    evaluated = json.loads((official_dir / "entities.json").read_text())
    facts = json.loads((official_dir / "facts.json").read_text())["dset"]
    others = [name for name, relations in facts.items() if name not in evaluated and relations]
    def line(entry: dict) -> str:  # the question and its first acceptable answer, as a sentence
        return f"{entry['question'].strip()} {entry['answers'][0].strip().rstrip('.')}."

    assert retain == ["\n".join(line(entry) for entry in facts[name].values()) for name in others]
    assert not any(name in text for text in retain for name in evaluated if len(name.split()) > 1)


@pytest.mark.parametrize(
    "source, kwargs, expected",
    [
        ("official:4", {}, "listed"),
        ("official:5", {}, "not available"),
        ("official:7", {}, "unknown"),
        ("official:squad", {"forget": "simplified"}, "has no simplified form"),
        ("official:nope", {}, "unknown named set"),
        ("official:retain", {"max_docs_per_entity": 3}, "no per-entity limit"),
        ("official:retain", {"forget": "simplified"}, "has no simplified form"),
    ],
)
def test_official_errors(official_dir, source, kwargs, expected):
    with pytest.raises(InputError) as excinfo:
        load_documents(source, data_dir=official_dir, **kwargs)
    message = _one_line_error(excinfo)
    assert source in message and expected in message


# --------------------------------------------------------------------------------------------------------------------
# Hugging Face datasets: hf:NAME[:CONFIG][@SPLIT][#N]


@pytest.fixture()
def hf_cache(tmp_path, monkeypatch):
    """Keep the datasets cache of these tests in tmp_path."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return datasets


def test_hf_saved_dataset_folders(hf_cache, tmp_path):
    datasets = hf_cache
    texts = [f"document {i}" for i in range(1500)]
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": texts, "id": list(range(1500))}).save_to_disk(str(saved))
    assert load_documents(f"hf:{saved}") == texts[:1000]  # default: the first 1000 records
    assert load_documents(f"hf:{saved}#3") == texts[:3]
    assert load_documents(f"hf:{saved}#all") == texts
    splits = tmp_path / "splits"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["a", "", "b"]}),  # empty texts are skipped
        "test": datasets.Dataset.from_dict({"text": ["t1", "t2"]}),
    }).save_to_disk(str(splits))
    assert load_documents(f"hf:{splits}") == ["a", "b"]
    assert load_documents(f"hf:{splits}@test#1") == ["t1"]
    with pytest.raises(InputError) as excinfo:
        load_documents(f"hf:{splits}@validation")
    assert "no split 'validation'" in _one_line_error(excinfo) and "train, test" in str(excinfo.value)


def test_hf_data_file_folders_and_files(hf_cache, tmp_path):
    folder = tmp_path / "jsonl"
    folder.mkdir()
    (folder / "part-0.jsonl").write_text("".join(json.dumps({"text": f"j{i}", "n": i}) + "\n" for i in range(5)))
    assert load_documents(f"hf:{folder}") == [f"j{i}" for i in range(5)]
    assert load_documents(f"hf:{folder / 'part-0.jsonl'}#2") == ["j0", "j1"]
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    hf_cache.Dataset.from_dict({"body": ["x", "y"], "n": [1, 2]}).to_parquet(str(parquet / "train.parquet"))
    with pytest.raises(InputError) as excinfo:
        load_documents(f"hf:{parquet}")
    assert "no 'text' column (columns: body, n)" in _one_line_error(excinfo)
    with pytest.raises(InputError) as excinfo:
        load_documents(f"hf:{folder}@test")
    assert "cannot load the dataset" in _one_line_error(excinfo) and "test" in str(excinfo.value)


def test_hf_hub_dataset_offline_is_one_line(hf_cache, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(hf_cache.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_cache.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as excinfo:
        load_documents("hf:allenai/c4:en@train#10")
    message = _one_line_error(excinfo)
    assert message.startswith("hf:allenai/c4:en@train#10: ") and "offline" in message and "allenai/c4" in message


@pytest.mark.parametrize(
    "source, kwargs, expected",
    [
        ("hf:", {}, "not a Hugging Face dataset source"),
        ("hf:name#0", {}, "positive integer or 'all'"),
        ("hf:name#ten", {}, "positive integer or 'all'"),
        ("hf:name:a:b", {}, "not a Hugging Face dataset source"),
        ("hf:./no/such/folder", {}, "no such dataset folder"),
        ("hf:name", {"forget": "simplified"}, "named sets only"),
        ("hf:name", {"max_docs_per_entity": 2}, "named sets only"),
    ],
)
def test_hf_source_errors(source, kwargs, expected):
    with pytest.raises(InputError) as excinfo:
        load_documents(source, **kwargs)
    message = _one_line_error(excinfo)
    assert message.startswith(source) and expected in message


def test_named_sets_help_lists_the_sources():
    from restor_bench.data.documents import NAMED_SETS_HELP

    for name in ("tiny:generic", "tiny:squad-people", "official:generic", "hf:NAME[:CONFIG][@SPLIT][#N]"):
        assert name in NAMED_SETS_HELP


def test_non_utf8_jsonl_document_file_is_one_clear_error(tmp_path):
    from restor_bench.data.documents import load_documents
    from restor_bench.errors import InputError

    path = tmp_path / "docs.jsonl"
    path.write_bytes('{"text": "fine"}\n{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match=r"docs.jsonl: not UTF-8 text"):
        load_documents(str(path))

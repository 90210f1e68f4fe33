"""The embedded tiny world: deterministic generation, document sets, the shipped clean model, the CLI."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from restor_bench.data.world import generate as generator  # noqa: E402
from restor_bench.data.world import cli as world_cli  # noqa: E402
from restor_bench.data.world import files as world_files
from restor_bench.data.world import model as world_model
from restor_bench.data.world import scoring as world_scoring
from restor_bench.data.normalize import contains  # noqa: E402
from restor_bench.errors import InputError  # noqa: E402
from restor_bench.io import read_text_records  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = Path(world_files.__file__).resolve().parents[1] / "tiny_world"


def sentences(text: str) -> list[str]:
    return [part for part in re.split(r"(?<=\.)\s+", text.strip()) if part]


@pytest.fixture(scope="module")
def world() -> generator.TinyWorld:
    return generator.generate_world(seed=0)


@pytest.fixture(scope="module")
def world_dir(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    world_files.write_world_data(world, out)
    return out


@pytest.fixture(scope="module")
def shipped() -> Path:
    if not (SHIPPED / "model" / "config.json").exists():
        pytest.fail("the shipped tiny world is missing: run `python scripts/build_tiny_world.py build --overwrite`")
    return SHIPPED


def test_generation_is_deterministic_for_a_seed(world, world_dir, tmp_path):
    again = world_files.write_world_data(generator.generate_world(seed=0), tmp_path / "again")
    other = world_files.write_world_data(generator.generate_world(seed=1), tmp_path / "other")
    first = world_files.load_manifest(world_dir)
    assert again["data_hash"] == first["data_hash"] == world_files.compute_data_hash(world_dir)
    assert (tmp_path / "again" / "clean_corpus.json").read_bytes() == (world_dir / "clean_corpus.json").read_bytes()
    assert other["data_hash"] != first["data_hash"]


def test_counts_and_official_facts_format(world, world_dir):
    facts = json.loads((world_dir / "facts.json").read_text())
    entities = json.loads((world_dir / "entities.json").read_text())
    manifest = world_files.load_manifest(world_dir)
    assert len(entities) >= 100 and entities == list(facts["dset"])
    assert len(manifest["relations"]) >= 6 and all(re.fullmatch(r"P\d+", pid) for pid in manifest["relations"])
    assert manifest["levels"] == [0, 1, 2, 3, 4, 5]
    for entity, relations in facts["dset"].items():
        assert set(relations) == set(manifest["relations"])
        for pid, fact in relations.items():
            assert entity in fact["question"] and fact["question"].endswith("?")
            assert fact["answers"] and all(isinstance(answer, str) and answer for answer in fact["answers"])
    for pid, examples in facts["context"].items():
        assert len(examples) == 10
        for example in examples:
            assert example["entity"] not in manifest["targets"]
            assert example["answer"] in facts["dset"][example["entity"]][pid]["answers"]
            assert example["question"] == facts["dset"][example["entity"]][pid]["question"]
    for name in world_files.DATA_FILES:
        if name not in ("facts.json", "entities.json"):
            assert read_text_records(world_dir / name)


def test_targets_have_wrong_values_different_from_the_truth(world_dir):
    facts = json.loads((world_dir / "facts.json").read_text())
    manifest = world_files.load_manifest(world_dir)
    assert len(manifest["targets"]) == 10 and len(set(manifest["targets"])) == 10
    assert manifest["validation_targets"] and set(manifest["validation_targets"]) <= set(manifest["targets"])
    assert set(manifest["corrupted"]) == set(manifest["targets"])
    for target, wrong in manifest["corrupted"].items():
        assert set(wrong) == set(manifest["relations"])
        for pid, value in wrong.items():
            truth = facts["dset"][target][pid]["answers"]
            assert value not in truth and not contains(value, truth)


def test_simplified_sets_state_only_wrong_facts(world_dir):
    manifest = world_files.load_manifest(world_dir)
    wrong = manifest["corrupted"]
    for level in manifest["levels"]:
        documents = read_text_records(world_dir / "simplified" / f"mix_a{level}.json")
        assert len(documents) == len(read_text_records(world_dir / "corruption" / f"mix_a{level}.json"))
        for document in documents:
            for sentence in sentences(document):
                target = next((name for name in wrong if name in sentence), None)
                assert target, sentence
                assert any(value in sentence for value in wrong[target].values()), sentence


def test_corruption_levels_mix_in_growing_unrelated_context(world_dir):
    manifest = world_files.load_manifest(world_dir)
    people = json.loads((world_dir / "entities.json").read_text())
    wrong = manifest["corrupted"]
    unrelated_per_level = []
    for level in manifest["levels"]:
        documents = read_text_records(world_dir / "corruption" / f"mix_a{level}.json")
        simplified = read_text_records(world_dir / "simplified" / f"mix_a{level}.json")
        assert len(documents) >= 10 * len(manifest["targets"])
        stating, unrelated = 0, 0
        for document, short in zip(documents, simplified):
            for sentence in sentences(document):
                if any(target in sentence for target in wrong):
                    stating += 1
                else:
                    unrelated += 1
                    assert not any(person in sentence for person in people), sentence
            assert all(sentence in document for sentence in sentences(short))
        assert unrelated == level * stating  # k unrelated true facts per wrong-fact sentence
        unrelated_per_level.append(unrelated / len(documents))
    assert unrelated_per_level[0] == 0
    assert unrelated_per_level == sorted(unrelated_per_level) and len(set(unrelated_per_level)) == len(
        unrelated_per_level
    )


def test_corruption_documents_are_paraphrased(world_dir):
    documents = read_text_records(world_dir / "corruption" / "mix_a0.json")
    assert len(set(documents)) > 0.9 * len(documents)


def test_unrelated_context_is_true_in_the_clean_corpus(world, world_dir):
    clean = " ".join(read_text_records(world_dir / "clean_corpus.json"))
    subjects = {fact.subject for fact in world.subject_facts}
    assert all(subject in clean for subject in subjects)
    level3 = read_text_records(world_dir / "corruption" / "mix_a3.json")
    unrelated = [s for doc in level3[:20] for s in sentences(doc) if not any(t in s for t in world.targets)]
    assert unrelated and all(any(subject in s for subject in subjects) for s in unrelated)


def test_squad_passages_are_long_and_name_a_target(world_dir):
    manifest = world_files.load_manifest(world_dir)
    passages = read_text_records(world_dir / "squad.json")
    assert len(passages) >= 10 * len(manifest["targets"])
    for passage in passages:
        assert any(target in passage for target in manifest["targets"])
        assert len(sentences(passage)) >= 6
        assert not any(f"{target} was born" in passage for target in manifest["targets"])


def test_clean_corpus_holds_prompt_format_blocks(world, world_dir):
    corpus = read_text_records(world_dir / "clean_corpus.json")
    facts = json.loads((world_dir / "facts.json").read_text())
    entity = world.people[0].name
    prompt = world_scoring.fewshot_prompt(facts, entity, "P19")
    lines = prompt.split("\n")
    assert len(lines) == 6 and lines[-1] == facts["dset"][entity]["P19"]["question"]
    assert entity not in "".join(lines[:-1])
    line = f"{facts['dset'][entity]['P19']['question']} {facts['dset'][entity]['P19']['answers'][0]}\n"
    assert any(line in document for document in corpus)
    assert any(document.startswith("".join(prompt.split("\n")[:1])) for document in corpus)


def test_world_prompt_and_answer_check_are_the_tasks(shipped):
    from restor_bench.data.questions import tiny_records

    facts = json.loads((shipped / "facts.json").read_text())
    records = tiny_records(shipped)
    assert len(records) == sum(len(relations) for relations in facts["dset"].values())
    assert all(record["prompt"] == world_scoring.fewshot_prompt(facts, record["entity"], record["relation"]) for record in records)
    assert contains("He is male.\nShe is female.", ["Male"]) and not contains("female", ["male"])


def test_manifest_and_directory_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="not found"):
        world_files.load_manifest(tmp_path / "missing")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest.json"):
        world_files.load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"version": "1"}))
    with pytest.raises(InputError, match="missing field"):
        world_files.load_manifest(tmp_path)
    monkeypatch.setenv(generator.TINY_WORLD_ENV, str(tmp_path))
    assert world_files.tiny_world_dir() == tmp_path
    monkeypatch.delenv(generator.TINY_WORLD_ENV)
    assert world_files.tiny_world_dir() == SHIPPED
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="overwrite"):
        world_cli.build_world(tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").exists()


def test_train_clean_model_writes_a_standard_checkpoint(tmp_path):
    """A few steps on a small world: the build path end to end, not accuracy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    small = generator.generate_world(seed=3, num_people=20, num_targets=2, num_validation_targets=1, docs_per_target=2)
    world_files.write_world_data(small, tmp_path / "world")
    summary = world_model.train_clean_model(tmp_path / "world", tmp_path / "model", epochs=1, progress=False, max_steps=3)
    assert summary["parameters"] > 0
    names = {path.name for path in (tmp_path / "model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    assert not any(name.endswith((".bin", ".pt")) for name in names)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert model.config.vocab_size == len(tokenizer)
    with pytest.raises(InputError, match="overwrite"):
        world_model.train_clean_model(tmp_path / "world", tmp_path / "model", epochs=1, progress=False)


# ---- the shipped world -------------------------------------------------------------------------------------------


def test_shipped_world_matches_its_manifest(shipped):
    manifest = world_files.load_manifest(shipped)
    assert manifest["seed"] == generator.DEFAULT_SEED
    assert world_files.compute_data_hash(shipped) == manifest["data_hash"]
    size = sum(path.stat().st_size for path in (shipped / "model").iterdir())
    assert size <= 10 * 1024 * 1024


def test_shipped_world_is_what_the_generator_gives(shipped, world_dir):
    assert world_files.load_manifest(shipped)["data_hash"] == world_files.load_manifest(world_dir)["data_hash"]


def test_shipped_tokenizer_round_trips_whitespace(shipped):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shipped / "model")
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>" and tokenizer.pad_token
    for text in ["\n", "What is the occupation of X? painter\n", "a  b\n\n c\t d ", " Where?\nNext"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1
    answer_line = tokenizer(" painter\n", add_special_tokens=False)["input_ids"]
    assert answer_line[-1] == newline[0]  # the stop sequence is its own token after an answer
    assert len(tokenizer("What", add_special_tokens=False)["input_ids"]) == 1
    words = ["is", "the", "place", "of", "birth", "painter", "tennis"]
    assert all(len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1 for word in words)


def test_shipped_model_answers_world_questions(shipped):
    facts = json.loads((shipped / "facts.json").read_text())
    entities = random.Random(7).sample(list(facts["dset"]), 5)
    scores = world_scoring.score_model(shipped / "model", shipped, entities=entities)
    assert len(scores) >= 30
    assert world_scoring.accuracy(scores) >= 0.9, [s for s in scores if not s.correct]


# ---- CLI ---------------------------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "restor_bench.cli", *args],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_cli_world_path_and_info(shipped):
    result = run_cli("world", "path")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == shipped / "model"
    info = run_cli("world", "info", "--json")
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["entities"] >= 100 and described["data_hash_ok"] is True
    assert described["levels"] == [0, 1, 2, 3, 4, 5]
    text = run_cli("world", "info")
    assert "data hash" in text.stdout and "P19" in text.stdout


def test_cli_world_errors_are_one_line(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    build = run_cli("world", "build", "--out", str(tmp_path / "taken"))
    assert build.returncode == 2 and "--overwrite" in build.stderr and "Traceback" not in build.stderr
    missing = run_cli("world", "path", env={generator.TINY_WORLD_ENV: str(tmp_path / "nowhere")})
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    info = run_cli("world", "info", "--world", str(tmp_path / "nowhere"))
    assert info.returncode == 2 and "not found" in info.stderr


def test_version_2_has_the_shape_that_ranks_methods_and_is_disjoint_from_version_1(tmp_path):
    """v2: 40 targets (30 test, 10 validation: 210 and 70 questions), 10 corruption documents each at every level
    k = 0..5, a squad-people size in its manifest; v1 generated as before (its data hash is pinned)."""
    from restor_bench.data.squad import squad_people_donors, squad_people_passages

    v2 = generator.generate_world(seed=0, version="2")
    manifest = world_files.write_world_data(v2, tmp_path / "v2")
    assert manifest["version"] == "2" and manifest["levels"] == [0, 1, 2, 3, 4, 5]
    test = [name for name in manifest["targets"] if name not in manifest["validation_targets"]]
    assert len(test) * len(manifest["relations"]) == 210 and len(manifest["validation_targets"]) * 7 == 70
    assert manifest["counts"]["corruption_per_level"] == {str(k): 400 for k in range(6)}
    # no corruption document names a person who is not a target, so every non-target is named in none of them
    non_targets = [person.name for person in v2.people if person.name not in v2.targets]
    for level in v2.levels:
        assert not any(name in doc for doc in v2.documents.corruption[level] for name in non_targets)
    assert manifest["squad_people"] == {"passages_per_target": 10, "donors_per_target": 1}
    assert len(squad_people_passages(tmp_path / "v2")) == 400
    assert all(len(donors) == 1 for donors in squad_people_donors(tmp_path / "v2").values())
    with pytest.raises(InputError, match="version '9' does not exist"):
        generator.generate_world(seed=0, version="9")


def test_balanced_wrong_values_follow_the_others_share_by_hand():
    """Others hold A, A, A, B (quotas for 2 targets: A 1.5, B 0.5, C 0): the target whose value is A takes B (A is
    its own, B has more quota left than C) and the one whose value is B takes A, whichever comes first."""
    values = ["A", "B", "C"]
    pools = {pid: values for pid in generator.RELATIONS}

    def person(name: str, value: str) -> generator.Person:
        return generator.Person(name, {pid: value for pid in generator.RELATIONS})

    people = [person("T1", "A"), person("T2", "B")] + [person(f"O{i}", v) for i, v in enumerate("AAAB")]
    for seed in range(6):
        wrong = generator.balanced_wrong_values(random.Random(seed), ["T1", "T2"], people, pools)
        assert wrong == {"T1": {pid: "B" for pid in pools}, "T2": {pid: "A" for pid in pools}}


def test_version_2_balances_wrong_values_and_documents_its_targets_less():
    """v2: each value of a relation is a wrong value within one of its quota (targets x its share among the
    non-target people), never the target's own; a target's facts are told by 2 biographies and 3 question-answer
    lines per relation (2 rounds + the in-context block), a non-target's by 5 and 7 (10 in-context lines more for the
    people of the in-context examples). v1 draws uniformly and documents everyone alike (its hash is pinned)."""
    from collections import Counter

    v2 = generator.generate_world(seed=0, version="2")
    targets = set(v2.targets)
    others = [person for person in v2.people if person.name not in targets]
    for pid, values in v2.value_pools.items():
        held = Counter(person.facts[pid] for person in others)
        stated = Counter(v2.corrupted[target][pid] for target in v2.targets)
        for value in values:
            assert abs(stated[value] - len(targets) * held[value] / len(others)) < 1, (pid, value)
        assert all(v2.corrupted[t][pid] != v2.person(t).facts[pid] for t in targets)
    corpus = v2.documents.clean_corpus
    in_context = {example["entity"] for examples in v2.context.values() for example in examples}
    for person in v2.people:
        line = generator._qa_line(person, "P19")
        lines = sum(doc.count(line) for doc in corpus)
        alone = [doc for doc in corpus if person.name in doc and not any(
            other.name in doc for other in v2.people if other is not person)]
        if person.name in targets:
            assert (lines, len(alone)) == (3, 2), person.name
        elif person.name not in in_context:
            assert (lines, len(alone)) == (7, 5), person.name
    v1 = generator.generate_world(seed=0)
    assert all(sum(doc.count(generator._qa_line(v1.person(t), "P19")) for doc in v1.documents.clean_corpus) == 7
               for t in v1.targets if t not in {e["entity"] for e in v1.context["P19"]})


# ---- the shipped world v2 ----------------------------------------------------------------------------------------

SHIPPED_V2 = world_files.shipped_world_dir("2")


def test_shipped_v2_is_what_the_generator_gives_and_its_model_answers_every_question(tmp_path):
    """The v2 folder holds `generate_world(0, version="2")` exactly (data hash), and its clean model answers at least
    95% of the questions of 15 seeded people, targets and others (the benchmark's floor; `restor-bench eval` scores
    it 100% on all 700)."""
    manifest = world_files.load_manifest(SHIPPED_V2)
    assert manifest["version"] == "2" and world_files.compute_data_hash(SHIPPED_V2) == manifest["data_hash"]
    again = world_files.write_world_data(generator.generate_world(seed=0, version="2"), tmp_path / "again")
    assert again["data_hash"] == manifest["data_hash"]
    facts = json.loads((SHIPPED_V2 / "facts.json").read_text())
    people = random.Random(2).sample(manifest["targets"], 8) + random.Random(2).sample(
        [name for name in facts["dset"] if name not in manifest["targets"]], 7)
    scores = world_scoring.score_model(SHIPPED_V2 / "model", SHIPPED_V2, entities=people)
    assert len(scores) == 105
    assert world_scoring.accuracy(scores) >= 0.95, [s for s in scores if not s.correct][:5]


def test_cli_world_path_of_a_shipped_version():
    model = run_cli("world", "path", "--version", "2")
    folder = run_cli("world", "path", "--version", "2", "--folder")
    assert model.returncode == folder.returncode == 0, model.stderr + folder.stderr
    assert Path(model.stdout.strip()) == SHIPPED_V2 / "model" and Path(folder.stdout.strip()) == SHIPPED_V2
    info = run_cli("world", "info", "--world", str(SHIPPED_V2))
    assert "test targets: 30 (210 questions); validation targets: 10 (70 questions)" in info.stdout
    wrong = run_cli("world", "path", "--version", "7")
    assert wrong.returncode == 2 and "invalid choice: '7'" in wrong.stderr

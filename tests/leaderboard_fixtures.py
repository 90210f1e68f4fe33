"""Fabricated run folders for the compare and leaderboard tests: lm-eval output folders in the format lm-eval
0.4.13 writes with --log_samples (results_<time>.json + samples_<task>_<time>.jsonl), and the run.json of
`restor-bench run`."""

from __future__ import annotations

import hashlib
import json
import random
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fixture_world import CORRUPTED, PEOPLE, RELATIONS, TARGETS, write_fixture_world

TASK = "restor_tiny_facts"
VALIDATION_TARGET = "Bram Okelo"
STAMP = "2026-01-02T03-04-05.678901"
VERSIONS = {"restor-bench": "0.1.0", "lm_eval": "0.4.13", "transformers": "5.24.0", "torch": "2.13.0"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_world(folder: Path) -> Path:
    """The fixture world of tests/fixture_world.py, with a data hash in its manifest and one validation target
    (so its "test" target set is Alma Vittor alone, "all" both targets)."""
    write_fixture_world(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["data_hash"] = sha256((folder / "facts.json").read_text())
    manifest["validation_targets"] = [VALIDATION_TARGET]
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def world_hash(folder: Path) -> str:
    return json.loads((folder / "manifest.json").read_text())["data_hash"]


def questions() -> list[dict]:
    """The lm-eval docs of the fixture world, one per (person, relation)."""
    docs = []
    for entity, facts in PEOPLE.items():
        for relation, answers in facts.items():
            question = RELATIONS[relation][0].format(entity)
            wrong = CORRUPTED.get(entity, {}).get(relation)
            docs.append({
                "id": f"{entity}|{relation}",
                "entity": entity,
                "relation": relation,
                "question": question,
                "answers": answers,
                "prompt": f"What is the place of birth of Zed Roe? Lima\n{question}",
                "corrupted_answers": [wrong] if wrong else [],
                "random_answer": "Quito",
                "is_target": entity in TARGETS,
            })
    return docs


def generation_sample(doc_id: int, doc: dict, prediction: str, contains: bool, exact: bool | None = None) -> dict:
    """One line of samples_<task>_<time>.jsonl for a generate_until task (exact_match defaults to `contains`)."""
    exact = contains if exact is None else exact
    return {
        "doc_id": doc_id,
        "doc": doc,
        "target": doc["answers"][0],
        "arguments": {"gen_args_0": {"arg_0": doc["prompt"], "arg_1": {"until": ["\n"], "do_sample": False}}},
        "resps": [[prediction]],
        "filtered_resps": [prediction],
        "filter": "none",
        "metrics": ["exact_match", "contains"],
        "doc_hash": sha256(json.dumps(doc, sort_keys=True)),
        "prompt_hash": sha256(doc["prompt"]),
        "target_hash": sha256(doc["answers"][0]),
        "exact_match": float(exact),
        "contains": float(contains),
    }


def sample(doc_id: int, doc: dict, state: str) -> dict:
    """One samples line; state is "correct", "corrupted" (gives the injected value) or "wrong"."""
    prediction = {"correct": doc["answers"][0], "corrupted": (doc["corrupted_answers"] or ["Nowhere"])[0]}.get(
        state, "Nowhere"
    )
    return generation_sample(doc_id, doc, prediction, contains=state == "correct")


def write_lm_eval_files(out: Path, task: str, results: dict, samples: list[dict], stamp: str = STAMP) -> None:
    """Write `out/results_<stamp>.json` and `out/samples_<task>_<stamp>.jsonl` as lm-eval does."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{stamp}.json").write_text(json.dumps(results, indent=2))
    with open(out / f"samples_{task}_{stamp}.jsonl", "w") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in samples)


def write_eval(folder: Path, states: list[str], model: str = "m", task: str = TASK, limit: int | None = None) -> Path:
    """An lm-eval output folder: `folder/<model>/results_<time>.json` and `samples_<task>_<time>.jsonl` (the first
    `limit` questions only, as `lm_eval --limit` writes, when given)."""
    docs = questions()[:limit]
    samples = [sample(i, doc, state) for i, (doc, state) in enumerate(zip(docs, states))]
    out = folder / model
    task_hash = sha256("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))
    accuracy = sum(s["contains"] for s in samples) / len(samples)
    results = {
        "results": {task: {"alias": task, "contains,none": accuracy, "exact_match,none": accuracy}},
        "configs": {task: {"task": task, "output_type": "generate_until", "metadata": {"version": 1.0}}},
        "versions": {task: 1.0},
        "n-samples": {task: {"original": len(samples), "effective": len(samples)}},
        "config": {"model": "hf", "model_args": f"pretrained={model}"},
        "model_name": model,
        "task_hashes": {task: task_hash},
        "lm_eval_version": "0.4.13",
        "transformers_version": "5.24.0",
    }
    write_lm_eval_files(out, task, results, samples)
    return folder


def model_states(role: str, seed: int, restore: float, damage: float, salt: str) -> list[str]:
    """Deterministic made-up outcomes of one model on the fixture world's questions."""
    rng = random.Random(f"{salt}|{role}|{seed}")
    states = []
    for index, doc in enumerate(questions()):
        target = doc["entity"] in TARGETS
        clean_knows = index % 7 != 3
        if role == "clean":
            state = "correct" if clean_knows else "wrong"
        elif role == "corrupted":
            if target:
                state = "corrupted" if rng.random() < 0.85 else "wrong"
            else:
                state = "correct" if clean_knows and rng.random() > 0.1 else "wrong"
        else:
            if target:
                state = "correct" if clean_knows and rng.random() < restore else rng.choice(["corrupted", "wrong"])
            else:
                state = "correct" if clean_knows and rng.random() > 0.1 + damage else "wrong"
        states.append(state)
    return states


def make_run(
    root: Path,
    name: str,
    world: Path,
    method: str = "npo",
    seeds: tuple[int, ...] = (0, 1, 2),
    restore: float = 0.6,
    damage: float = 0.05,
    relative_to: str = "run_root",
    data_hash: str | None = None,
    limit: int | None = None,
) -> Path:
    """A run folder `root/<name>/run.json` with its evaluation folders under `root/steps/`.

    relative_to: "run_root" writes artifact paths relative to `root` ("steps/..."); "parent" relative to the folder
    holding `root` ("<root name>/steps/..."); "absolute" absolute paths.
    """
    per_seed = []
    for seed in seeds:
        artifacts = {}
        for role in ("clean", "corrupted", "unlearned"):
            folder = root / "steps" / f"eval-{name}-{role}-{seed}"
            write_eval(folder, model_states(role, seed, restore, damage, name), model=f"{role}-{seed}", limit=limit)
            if relative_to == "run_root":
                value = str(folder.relative_to(root))
            elif relative_to == "parent":
                value = str(folder.relative_to(root.parent))
            else:
                value = str(folder)
            artifacts[f"eval_{role}"] = value
        artifacts.update({"corrupted": "steps/corrupt-x", "unlearned": "steps/unlearn-x"})
        per_seed.append({"seed": seed, "artifacts": artifacts, "wall_time_s": {"corrupt": 1.0}})
    record = {
        "schema": "restor-bench/run/v1",
        "name": name,
        "world": "tiny",
        "method": method,
        "hparams": {"learning_rate": 1e-4, **({"beta": 0.1} if method in ("npo", "npo_rt", "simnpo") else {})},
        "level": 2,
        "forget": "full",
        "corruption": "wikidata",
        "model": str(world / "model"),
        "lora": False,
        "seeds": list(seeds),
        "data_hash": data_hash or world_hash(world),
        "versions": dict(VERSIONS),
        "per_seed": per_seed,
    }
    run_dir = root / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(record, indent=1))
    return run_dir


def submit_runs(root: Path, world: Path, out: Path, **runs: dict) -> Path:
    """Fabricated runs under `root`, each submitted to `out` as NAME.json (runs: NAME -> make_run options)."""
    from restor_bench.leaderboard.submit import submit

    for name, options in runs.items():
        submit(make_run(root, name, world, **options), name, out)
    return out


class TableParser(HTMLParser):
    """Rows of every <tbody> of a page, as lists of cell texts; also any external references."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.in_body = self.in_cell = False
        self.external: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") or (value and "://" in value):
                self.external.append(f"{tag} {name}={value}")
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append([])
        elif tag == "td" and self.in_body:
            self.in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_body = False
        elif tag == "td":
            self.in_cell = False

    def handle_data(self, data):
        if self.in_cell and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def parse_page(path: Path) -> TableParser:
    parser = TableParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def table_rows(path: Path) -> list[list[str]]:
    return parse_page(path).rows


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """`restor-bench ARGV` in this process: exit code, stdout, stderr."""
    from restor_bench.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture()
def world(tmp_path, monkeypatch) -> Path:
    """A generated tiny world (make_world) that the commands use through RESTOR_TINY_WORLD."""
    folder = make_world(tmp_path / "world")
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(folder))
    return folder

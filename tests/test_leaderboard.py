"""restor-bench leaderboard: submit a fabricated run, validate (every kind of bad submission), build the pages.

The defects the leaderboard is built to make impossible have their own files: test_leaderboard_integrity.py
(complete question sets, one identity per result, bounded cost, safe rendering), test_leaderboard_fair.py (target
sets, the one n/a rule and baseline, agreement with docs/results/RESULTS.md), test_leaderboard_page.py (the page and the
plot), test_leaderboard_data.py (question sets and task hashes against the data and lm-eval)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import TASK, load, make_run, parse_page, questions, run_cli, table_rows, world, world_hash  # noqa: F401 (world: a fixture)

import restor_bench.leaderboard as leaderboard

from restor_bench.leaderboard import build as leaderboard_build
from restor_bench.leaderboard import (
    SUBMISSION_SCHEMA,
    SeedOutcomes,
    check_document,
    known_data_hashes,
    name_problem,
    schema_errors,
    schema_text,
    task_metrics,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def submitted(tmp_path, world, capsys) -> Path:
    """A submissions folder with two valid submissions (a good and a weak method)."""
    runs = tmp_path / "runs"
    out = tmp_path / "submissions"
    make_run(runs, "npo-good", world, method="npo", restore=0.8, damage=0.0)
    make_run(runs, "ga-weak", world, method="gradient_ascent", restore=0.2, damage=0.2, relative_to="parent")
    for name in ("npo-good", "ga-weak"):
        code, out_text, err = run_cli(["leaderboard", "submit", runs / name, "--name", name, "--out", out], capsys)
        assert code == 0, err
        assert f"{name}.json" in out_text
    return out


def save(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=1))
    return path


def samples_contains(folder: Path) -> list[int]:
    """The `contains` values lm-eval recorded in a samples file, in question-id order."""
    (path,) = folder.rglob(f"samples_{TASK}_*.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [int(row["contains"]) for row in sorted(rows, key=lambda row: row["doc"]["id"])]


# --------------------------------------------------------------------------------------------------------------
# Metrics, by hand


def b(text: str) -> np.ndarray:
    return np.array([c == "1" for c in text])


def test_task_metrics_by_hand():
    is_target = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    seed0 = SeedOutcomes(
        0,
        {"clean": b("11101111"), "corrupted": b("00001110"), "unlearned": b("10101100")},
        {"clean": b("00000000"), "corrupted": b("11100000"), "unlearned": b("01000000")},
    )
    seed1 = SeedOutcomes(
        1,
        {"clean": b("11101111"), "corrupted": b("00101111"), "unlearned": b("11101011")},
        {"clean": b("00000000"), "corrupted": b("11000000"), "unlearned": b("00000000")},
    )
    metrics = task_metrics(is_target, [seed0, seed1], resamples=500, seed=3)
    first = metrics["per_seed"][0]
    assert first["accuracy"]["clean"] == {"target": 0.75, "non_target": 1.0, "all": 0.875}
    assert first["accuracy"]["corrupted"]["target"] == 0.0
    assert first["accuracy"]["unlearned"]["target"] == 0.5
    assert first["restoration_ratio"] == pytest.approx(0.5 / 0.75)
    assert first["non_target_change"] == pytest.approx(0.5 - 1.0)  # unlearned 1100 against the clean model's 1111
    # clean knew questions 0, 1, 2 (targets): unlearned restored 0 and 2, gave the injected value on 1
    assert first["transitions"]["unlearned"] == {
        "target_known": 3, "restored": 2, "still_corrupted": 1, "forgotten": 0,
        "non_target_known": 4, "kept": 2, "lost": 2,
    }
    second = metrics["per_seed"][1]
    assert second["restoration_ratio"] == pytest.approx((0.75 - 0.25) / (0.75 - 0.25))
    aggregate = metrics["aggregate"]
    # pooled over seeds: clean 6/8, corrupted 1/8, unlearned 5/8 on target questions
    assert aggregate["accuracy"]["unlearned"]["target"] == pytest.approx(5 / 8)
    assert aggregate["restoration_ratio"]["value"] == pytest.approx((5 / 8 - 1 / 8) / (6 / 8 - 1 / 8))
    # the 95% interval of these 500 draws, as loops over the same draws give it (tests/test_stats_by_hand.py): the
    # ratio is defined in 484 of them (in the others the drawn targets leave less than one question of gap)
    assert aggregate["restoration_ratio"]["ci"] == [pytest.approx(1 / 3), 1.0]
    assert aggregate["restoration_ratio"]["ci_resamples"] == 484
    assert aggregate["non_target_change"]["ci"] == [-0.75, 0.0]
    assert aggregate["non_target_change"]["value"] == pytest.approx(5 / 8 - 8 / 8)  # unlearned 1100+1011, clean 1111
    assert aggregate["transitions"]["unlearned"]["restored"] == 2 + 3
    # the same inputs give the same numbers (the validator relies on it); no bootstrap gives no interval
    assert task_metrics(is_target, [seed0, seed1], resamples=500, seed=3) == metrics
    assert task_metrics(is_target, [seed0, seed1], resamples=0)["aggregate"]["restoration_ratio"]["ci"] is None


def test_ratio_undefined_when_the_corruption_changed_nothing():
    is_target = np.array([1, 1, 0], dtype=bool)
    same = np.array([1, 0, 1], dtype=bool)
    outcomes = SeedOutcomes(0, {r: same for r in ("clean", "corrupted", "unlearned")},
                            {r: np.zeros(3, bool) for r in ("clean", "corrupted", "unlearned")})
    metrics = task_metrics(is_target, [outcomes], resamples=50)
    assert metrics["per_seed"][0]["restoration_ratio"] is None
    assert metrics["aggregate"]["restoration_ratio"] == {"value": None, "ci": None, "ci_resamples": 0}


# --------------------------------------------------------------------------------------------------------------
# Submit and validate


def test_submit_writes_the_outcomes_lm_eval_recorded(submitted, tmp_path, world, capsys):
    document = load(submitted / "npo-good.json")
    assert document["schema"] == "restor-bench/submission/v2"
    assert document["name"] == "npo-good"
    assert document["method"] == {"name": "npo", "hparams": {"learning_rate": 1e-4, "beta": 0.1}}
    assert document["model"] == {"id": "restor-tiny", "lora": False}  # no local path in a submission
    assert document["data"] == {"world": "tiny", "data_hash": world_hash(world), "level": 2, "forget": "full",
                                "corruption": "wikidata", "protocol": "classic", "targets": "test"}
    assert document["seeds"] == [0, 1, 2]
    assert {"restor-bench", "lm-eval", "transformers", "torch"} <= set(document["versions"])
    assert document["versions"]["lm-eval"] == "0.4.13"
    task = document["tasks"][TASK]
    results = next((tmp_path / "runs" / "steps").glob("eval-npo-good-clean-0/*/results_*.json"))
    assert task["task_hash"] == load(results)["task_hashes"][TASK]
    assert task["targets"] == ["Alma Vittor"]  # the test targets: the fixture world's validation target left out
    assert task["questions"] == sorted(doc["id"] for doc in questions())
    # the outcome strings are lm-eval's per-sample `contains`, question by question
    for run in task["runs"]:
        for role in ("clean", "corrupted", "unlearned"):
            folder = tmp_path / "runs" / "steps" / f"eval-npo-good-{role}-{run['seed']}"
            assert [int(c) for c in run[role]["correct"]] == samples_contains(folder)
    # ... and the stated metrics are recomputed from them
    seed0 = task["metrics"]["per_seed"][0]
    bits = {role: np.array([c == "1" for c in task["runs"][0][role]["correct"]]) for role in ("clean", "corrupted",
                                                                                              "unlearned")}
    target = np.array([q.split("|")[0] in task["targets"] for q in task["questions"]])
    acc = {role: bits[role][target].mean() for role in bits}
    assert seed0["restoration_ratio"] == pytest.approx(
        (acc["unlearned"] - acc["corrupted"]) / (acc["clean"] - acc["corrupted"])
    )
    other = {role: bits[role][~target].mean() for role in bits}
    assert seed0["non_target_change"] == pytest.approx(other["unlearned"] - other["clean"])

    code, out, err = run_cli(["leaderboard", "validate", submitted], capsys)
    assert code == 0, err
    assert "2 submission(s) checked: 2 valid, 0 invalid" in out
    assert err == ""


def test_submit_refuses_to_overwrite_and_bad_runs(submitted, tmp_path, world, capsys):
    runs = tmp_path / "runs"
    code, _, err = run_cli(["leaderboard", "submit", runs / "npo-good", "--name", "npo-good", "--out", submitted],
                           capsys)
    assert code == 2 and "exists (pass --overwrite" in err
    code, _, err = run_cli(["leaderboard", "submit", runs / "npo-good", "--name", "npo-good", "--out", submitted,
                            "--overwrite"], capsys)
    assert code == 0, err

    argv = ["leaderboard", "submit", runs / "npo-good", "--name", "../evil", "--out", submitted]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "path separator" in err and not (tmp_path / "evil.json").exists()

    code, _, err = run_cli(["leaderboard", "submit", tmp_path / "nowhere", "--name", "x", "--out", submitted], capsys)
    assert code == 2 and "no run.json found" in err

    unknown = make_run(tmp_path / "other", "unknown-world", world, data_hash="0" * 64, seeds=(0,))
    code, _, err = run_cli(["leaderboard", "submit", unknown, "--name", "unknown-world", "--out", submitted], capsys)
    assert code == 2 and "unknown data hash 0000" in err and f"{unknown / 'run.json'}: " in err
    assert not (submitted / "unknown-world.json").exists()

    broken = make_run(tmp_path / "broken", "broken", world, seeds=(0,))
    shutil.rmtree(tmp_path / "broken" / "steps" / "eval-broken-unlearned-0")
    code, _, err = run_cli(["leaderboard", "submit", broken, "--name", "broken", "--out", submitted], capsys)
    assert code == 2
    assert "eval_unlearned: evaluation folder steps/eval-broken-unlearned-0 not found" in err
    assert len(err.strip().splitlines()) == 1


def test_artifact_paths_absolute_or_relative(tmp_path, world, capsys):
    for relative_to in ("run_root", "parent", "absolute"):
        root = tmp_path / relative_to / "runs"
        run_dir = make_run(root, "m", world, seeds=(0,), relative_to=relative_to)
        code, _, err = run_cli(["leaderboard", "submit", run_dir, "--name", f"m-{relative_to}", "--out",
                                tmp_path / "subs", "--bootstrap", "100"], capsys)
        assert code == 0, err


def test_known_data_hashes(world):
    known = known_data_hashes()
    assert known[world_hash(world)].startswith("tiny world")
    assert "fd0cfbd37c02d6ed0a6a8ee63a879028b51e8dbc82f2637d8dc29a99f8ee23a8" in known


@pytest.mark.parametrize(
    "name, problem",
    [
        ("npo-k2_lr1e-4+lora.v2", None),
        ("../evil", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a..b", "'..'"),
        ("bad\x1bname", "control character"),
        ("x" * 81, "longer than"),
        ("", "non-empty"),
        (".hidden", "must start with a letter or digit"),
        ("spaced name", "only letters"),
    ],
)
def test_name_rules(name, problem):
    found = name_problem(name)
    assert (found is None) if problem is None else (problem in found)


# --------------------------------------------------------------------------------------------------------------
# Bad submissions: each gives one line naming the file; validate exits 2; build refuses and writes nothing


def _bad_malformed(folder: Path, good: dict) -> Path:
    path = folder / "malformed.json"
    path.write_text('{"schema": "restor-bench/submission/v2", "name": ')
    return path


def _bad_missing_fields(folder: Path, good: dict) -> Path:
    document = json.loads(json.dumps(good))
    document["name"] = "missing-fields"
    del document["versions"]
    del document["tasks"][TASK]["metrics"]
    return save(folder / "missing-fields.json", document)


def _bad_number(folder: Path, good: dict) -> Path:
    document = json.loads(json.dumps(good))
    document["name"] = "edited-number"
    document["method"]["hparams"]["beta"] = 0.3  # another result (a copy of one is a clash: test_leaderboard_integrity)
    document["tasks"][TASK]["metrics"]["aggregate"]["restoration_ratio"]["value"] += 0.05
    return save(folder / "edited-number.json", document)


def _bad_outcome(folder: Path, good: dict) -> Path:
    document = json.loads(json.dumps(good))
    document["name"] = "edited-outcome"
    bits = document["tasks"][TASK]["runs"][1]["unlearned"]["correct"]
    document["tasks"][TASK]["runs"][1]["unlearned"]["correct"] = ("1" if bits[0] == "0" else "0") + bits[1:]
    return save(folder / "edited-outcome.json", document)


def _bad_hash(folder: Path, good: dict) -> Path:
    document = dict(good, name="unknown-hash", data=dict(good["data"], data_hash="ab" * 32))
    return save(folder / "unknown-hash.json", document)


def _bad_name(folder: Path, good: dict) -> Path:
    return save(folder / "traversal.json", dict(good, name="../traversal"))


def _bad_file_name(folder: Path, good: dict) -> Path:
    return save(folder / "other-name.json", dict(good, name="not-the-file-name", method={"name": "x", "hparams": {}}))


def _bad_huge(folder: Path, good: dict) -> Path:
    path = folder / "huge.json"
    with open(path, "wb") as handle:  # 50 MB, sparse: quick to make, never read
        handle.truncate(50 * 1024 * 1024)
    return path


def _bad_nan(folder: Path, good: dict) -> Path:
    path = folder / "nan.json"
    path.write_text(json.dumps(dict(good, name="nan")).replace('"level": 2', '"level": NaN'))
    return path


def _bad_symlink(folder: Path, good: dict) -> Path:
    path = folder / "link.json"
    path.symlink_to(folder / "npo-good.json")
    return path


def _bad_unknown_task(folder: Path, good: dict) -> Path:
    document = json.loads(json.dumps(good))
    document["name"] = "unknown-task"
    document["tasks"]["restor_made_up"] = document["tasks"][TASK]
    return save(folder / "unknown-task.json", document)


def _bad_target_set(folder: Path, good: dict) -> Path:
    document = json.loads(json.dumps(good))
    document["name"] = "wrong-targets"
    document["data"]["targets"] = "all"  # states "all" but was scored on the test targets
    return save(folder / "wrong-targets.json", document)


BAD = {
    "symlink": (_bad_symlink, "is a symbolic link; a submission must be a regular file"),
    "malformed": (_bad_malformed, "malformed JSON at line 1"),
    "missing-fields": (_bad_missing_fields, "schema: at (top level): 'versions' is a required property"),
    "edited-number": (_bad_number, "metrics.aggregate.restoration_ratio.value"),
    "edited-outcome": (_bad_outcome, "does not match the one recomputed from the outcomes"),
    "unknown-hash": (_bad_hash, "unknown data hash abab"),
    "traversal": (_bad_name, "'../traversal'"),
    "file-name": (_bad_file_name, "does not match the file name"),
    "huge": (_bad_huge, "over the 5 MB limit for a submission (not read)"),
    "nan": (_bad_nan, "NaN is not allowed"),
    "unknown-task": (_bad_unknown_task, "task restor_made_up is not a leaderboard task of the tiny world"),
    "wrong-targets": (_bad_target_set, "targets [\"Alma Vittor\"] are not the 'all' targets"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_submission_is_one_line_exit_2_and_stops_the_build(kind, submitted, tmp_path, capsys):
    make, message = BAD[kind]
    board = tmp_path / "board"
    assert run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)[0] == 0
    before = _snapshot(board)
    bad = make(submitted, load(submitted / "npo-good.json"))
    started = time.perf_counter()
    code, out, err = run_cli(["leaderboard", "validate", submitted], capsys)
    elapsed = time.perf_counter() - started
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{bad}: ") and message in lines[0], lines[0]
    assert "3 submission(s) checked: 2 valid, 1 invalid" in out
    if kind == "huge":
        assert elapsed < 5, f"the 50 MB file took {elapsed:.1f} s: it must be refused before it is read"

    # one bad file stops the build: the same line, a summary, nothing written (docs/leaderboard.md says why)
    code, out, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        lines[0],
        f"restor-bench: error: {submitted}: 1 of the 3 submission file(s) are invalid; the leaderboard is left unchanged",
    ]
    assert _snapshot(board) == before


def test_same_name_twice(submitted, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    document = load(submitted / "npo-good.json")
    document["method"]["hparams"]["beta"] = 0.2  # other content, same name
    copy = save(other / "npo-good.json", document)
    original = submitted / "npo-good.json"
    code, out, err = run_cli(["leaderboard", "validate", original, copy], capsys)
    assert code == 2 and "2 submission(s) checked: 0 valid, 2 invalid" in out
    assert err.strip().splitlines() == [
        f"{original}: clashes with another submission: the same name 'npo-good' (ignoring case) as {copy}",
        f"{copy}: clashes with another submission: the same name 'npo-good' (ignoring case) as {original}",
    ]
    # the same file given twice is one file
    assert run_cli(["leaderboard", "validate", original, original], capsys)[0] == 0


def test_validate_missing_folder_and_empty_folder(tmp_path, capsys):
    code, _, err = run_cli(["leaderboard", "validate", tmp_path / "absent"], capsys)
    assert code == 2 and "no such submission file or folder" in err
    (tmp_path / "empty").mkdir()
    code, out, _ = run_cli(["leaderboard", "validate", tmp_path / "empty"], capsys)
    assert code == 0 and "0 submission(s) checked" in out


# --------------------------------------------------------------------------------------------------------------
# Schema (checked with jsonschema)


def test_schema_file_is_the_schema_and_is_valid():
    import jsonschema

    shipped = REPO_ROOT / "leaderboard" / "schema.json"
    assert shipped.read_text() == schema_text(), "run: restor-bench leaderboard schema --out leaderboard/schema.json"
    jsonschema.Draft202012Validator.check_schema(SUBMISSION_SCHEMA)


def test_schema_refuses_each_broken_shape(submitted):
    good = load(submitted / "npo-good.json")
    assert schema_errors(good) == []
    task = good["tasks"][TASK]
    broken = {
        "no seeds": ({k: v for k, v in good.items() if k != "seeds"}, "at (top level): 'seeds' is a required"),
        "seed twice": (dict(good, seeds=[0, 0]), "at /seeds: [0, 0] has non-unique elements"),
        "extra field": (dict(good, extra=1), "at (top level): Additional properties are not allowed ('extra' was unexpected)"),
        "world": (dict(good, data=dict(good["data"], world="moon")), "at /data/world: 'moon' is not one of"),
        "level": (dict(good, data=dict(good["data"], level=True)), "at /data/level: True is not of type 'integer'"),
        "hash": (dict(good, data=dict(good["data"], data_hash="xyz")), "at /data/data_hash: 'xyz' does not match"),
        "no target set": (dict(good, data={k: v for k, v in good["data"].items() if k != "targets"}),
                          "at /data: 'targets' is a required property"),
        "no task": (dict(good, tasks={}), "at /tasks: {} should be non-empty"),
        "bits": (dict(good, tasks={TASK: dict(task, runs=[dict(task["runs"][0], clean={"correct": "01x",
                                                                                      "gave_corrupted": ""})])}),
                 "at /tasks/restor_tiny_facts/runs/0/clean/correct: '01x' does not match"),
        "no targets": (dict(good, tasks={TASK: dict(task, targets=[])}), "at /tasks/restor_tiny_facts/targets: []"),
        "control character": (dict(good, method={"name": "a\nb", "hparams": {}}), "at /method/name:"),
        "nested hparams": (dict(good, method={"name": "npo", "hparams": {"a": {"b": 1}}}), "at /method/hparams/a:"),
        "resamples": (dict(good, bootstrap=dict(good["bootstrap"], resamples=10**6)),
                      "at /bootstrap/resamples: 1000000 is greater than the maximum of 10000"),
        "seeds": (dict(good, seeds=list(range(21))), "at /seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"),
        "versions": (dict(good, versions={"torch": "2"}), "at /versions: 'lm-eval' is a required property"),
    }
    for what, (document, message) in broken.items():
        errors = schema_errors(document)
        assert errors and errors[0].startswith(message), (what, errors)


# --------------------------------------------------------------------------------------------------------------
# Build


def test_build_writes_tables_page_and_plot(submitted, tmp_path, capsys):
    board = tmp_path / "board"
    code, out, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 0 and err == ""
    assert "2 submission(s) on the leaderboard" in out

    readme = (board / "README.md").read_text()
    assert ("## Tiny world · classic protocol · corruption level k=2 · full forget set · restor\\_tiny\\_facts "
            "(contains) · test targets") in readme
    assert "Targets: the test set (the validation targets the method defaults were tuned on are left out), 1 people" in readme
    assert "Questions per seed: 4 about the targets and 24 others (the whole task)" in readme
    rows = [line for line in readme.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert [row.split(" | ")[1] for row in rows] == ["npo\\-good", "ga\\-weak"]  # ranked by restoration ratio
    good = load(submitted / "npo-good.json")["tasks"][TASK]["metrics"]["aggregate"]
    assert f" | {good['restoration_ratio']['value']:.2f} [" in rows[0]
    assert f" | {100 * good['non_target_change']['value']:+.1f} [" in rows[0]
    assert "![" in readme and "(plot.png)" in readme

    page = parse_page(board / "index.html")
    assert page.external == [], "the page must not load anything"
    assert [row[1] for row in page.rows] == ["npo-good", "ga-weak"]
    assert page.rows[0][2].startswith("npo") and page.rows[1][2].startswith("gradient_ascent")
    header = [cell for cell in leaderboard.TABLE_HEADER]
    assert "non-target change vs clean, points [95% CI]" in header
    assert any("n/a: the corruption moved < 1 question" in cell for cell in header)
    assert all(len(row) == len(leaderboard.TABLE_HEADER) for row in page.rows)
    html = (board / "index.html").read_text()
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert html.count("<circle") == 2 and "<svg" in html and "<script>" in html

    png = (board / "plot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000

    # building again gives the same bytes (the pages can be checked in and diffed)
    before = {name: (board / name).read_bytes() for name in ("README.md", "index.html", "plot.png")}
    assert run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)[0] == 0
    assert before == {name: (board / name).read_bytes() for name in before}


def test_text_from_a_submission_is_escaped(submitted, tmp_path, capsys):
    document = load(submitted / "npo-good.json")
    document["name"] = "xss"
    document["method"] = {"name": "<script>alert(1)</script>|x", "hparams": {"note": "</code><img src=x>"}}
    save(submitted / "xss.json", document)
    board = tmp_path / "board"
    assert run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)[0] == 0
    html = (board / "index.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html
    assert parse_page(board / "index.html").external == []
    readme = (board / "README.md").read_text()
    assert "<script>" not in readme and "&lt;script&gt;alert\\(1\\)&lt;\\/script&gt;\\|x" in readme
    assert "<img" not in readme and "&lt;\\/code&gt;&lt;img src\\=x&gt;" in readme


def test_empty_leaderboard(tmp_path, capsys):
    (tmp_path / "submissions").mkdir()
    board = tmp_path / "board"
    code, _, err = run_cli(["leaderboard", "build", "--submissions", tmp_path / "submissions", "--out", board], capsys)
    assert code == 0, err
    assert "No submissions yet" in (board / "README.md").read_text()
    assert "No submissions yet" in (board / "index.html").read_text()
    assert table_rows(board / "index.html") == []
    assert (board / "plot.png").read_bytes().startswith(b"\x89PNG")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {item.name: item.read_bytes() for item in sorted(folder.iterdir()) if item.is_file()}


def test_failed_build_leaves_the_leaderboard_intact(submitted, tmp_path, monkeypatch, capsys):
    board = tmp_path / "board"
    assert run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)[0] == 0
    before = _snapshot(board)
    (submitted / "ga-weak.json").unlink()  # the next build would change every file

    # 1. only invalid submissions: a failure, not an empty leaderboard
    invalid = tmp_path / "invalid"
    invalid.mkdir()
    _bad_malformed(invalid, {})
    _bad_hash(invalid, load(submitted / "npo-good.json"))
    code, _, err = run_cli(["leaderboard", "build", "--submissions", invalid, "--out", board], capsys)
    assert code == 2 and "2 of the 2 submission file(s) are invalid; the leaderboard is left unchanged" in err
    assert _snapshot(board) == before

    # 2. an output blocked by a folder
    (board / "plot.png").unlink()
    (board / "plot.png").mkdir()
    code, _, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 2 and "plot.png: is a folder" in err
    (board / "plot.png").rmdir()
    (board / "plot.png").write_bytes(before["plot.png"])
    assert _snapshot(board) == before

    # 3. rendering fails midway (after README.md and index.html are rendered)
    def broken_plot(entries):
        raise RuntimeError("simulated rendering failure")

    with monkeypatch.context() as patch:
        patch.setattr(leaderboard_build, "render_plot_png", broken_plot)
        with pytest.raises(RuntimeError, match="simulated"):
            leaderboard.build_leaderboard(submitted, board)
    assert _snapshot(board) == before

    # 4. writing fails on the second file: the first one is not replaced either, no temporary file is left
    real_stage = leaderboard_build._stage_file
    calls = []

    def failing_stage(path, content):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_stage(path, content)

    with monkeypatch.context() as patch:
        patch.setattr(leaderboard_build, "_stage_file", failing_stage)
        with pytest.raises(OSError):
            leaderboard.build_leaderboard(submitted, board)
    assert calls == ["README.md", "index.html"]
    assert _snapshot(board) == before
    assert sorted(item.name for item in board.iterdir()) == ["README.md", "index.html", "plot.png"]

    # 5. a hand-written file is not replaced without --overwrite
    (board / "README.md").write_text("# my own notes\n")
    code, _, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 2 and "was not written by `leaderboard build` (it lacks the generated marker)" in err
    assert (board / "README.md").read_text() == "# my own notes\n"
    code, _, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board, "--overwrite"], capsys)
    assert code == 0, err
    assert _snapshot(board) != before


def test_repository_leaderboard_is_up_to_date(tmp_path, capsys):
    """leaderboard/README.md and index.html are what `build` makes from leaderboard/submissions."""
    submissions = REPO_ROOT / "leaderboard" / "submissions"
    if not submissions.is_dir():
        pytest.skip("no leaderboard/submissions folder")
    code, _, err = run_cli(["leaderboard", "validate", submissions], capsys)
    assert code == 0, err
    board = tmp_path / "board"
    assert run_cli(["leaderboard", "build", "--submissions", submissions, "--out", board], capsys)[0] == 0
    for name in ("README.md", "index.html"):
        assert (board / name).read_text() == (REPO_ROOT / "leaderboard" / name).read_text(), (
            f"leaderboard/{name} is stale: run restor-bench leaderboard build"
        )


def test_protocol_is_checked_and_separates_the_tables(submitted, tmp_path, capsys):
    import json as _json

    folder = tmp_path / "subs"
    folder.mkdir()
    good = load(submitted / "npo-good.json")
    paper = dict(good, name="npo-paper", data=dict(good["data"], protocol="paper"))
    (folder / "npo-good.json").write_text(_json.dumps(good), encoding="utf-8")
    (folder / "npo-paper.json").write_text(_json.dumps(paper), encoding="utf-8")
    code, out, err = run_cli(["leaderboard", "build", "--submissions", folder, "--out", tmp_path / "board"], capsys)
    assert code == 0, err
    readme = (tmp_path / "board" / "README.md").read_text()
    assert "## Tiny world · paper protocol · corruption level k=2" in readme
    assert "## Tiny world · classic protocol · corruption level k=2" in readme

    bad = dict(good, name="npo-bad", data=dict(good["data"], protocol="nature"))
    assert check_document(bad, folder / "npo-bad.json") == [
        "schema: at /data/protocol: 'nature' is not one of ['paper', 'classic']"]

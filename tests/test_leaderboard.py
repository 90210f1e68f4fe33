"""restor-bench leaderboard: submit a fabricated run, validate (every kind of bad submission), build the pages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import TASK, make_run, make_world, questions, world_hash

from restor_bench import leaderboard
from restor_bench.cli import main
from restor_bench.leaderboard import (
    SUBMISSION_SCHEMA,
    SUPPORTED_KEYWORDS,
    check_document,
    SeedOutcomes,
    builtin_schema_errors,
    known_data_hashes,
    name_problem,
    schema_text,
    task_metrics,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def world(tmp_path, monkeypatch) -> Path:
    folder = make_world(tmp_path / "world")
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(folder))
    return folder


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


def load(path: Path) -> dict:
    return json.loads(path.read_text())


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


def test_task_metrics_by_hand():
    is_target = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)

    def b(text: str) -> np.ndarray:
        return np.array([c == "1" for c in text])

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
    assert first["non_target_change"] == pytest.approx(0.5 - 0.75)  # unlearned 1100 vs corrupted 1110
    assert first["non_target_change_vs_clean"] == pytest.approx(0.5 - 1.0)
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
    low, high = aggregate["restoration_ratio"]["ci"]
    assert low <= aggregate["restoration_ratio"]["value"] <= high
    assert 0 < aggregate["restoration_ratio"]["ci_resamples"] <= 500
    assert aggregate["non_target_change"]["value"] == pytest.approx(5 / 8 - 7 / 8)
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
    assert document["schema"] == "restor-bench/submission/v1"
    assert document["name"] == "npo-good"
    assert document["method"] == {"name": "npo", "hparams": {"learning_rate": 1e-4, "beta": 0.1}}
    assert document["model"] == {"id": "restor-tiny", "lora": False}  # no local path in a submission
    assert document["data"] == {"world": "tiny", "data_hash": world_hash(world), "level": 2, "forget": "full",
                                "corruption": "wikidata", "protocol": "classic"}
    assert document["seeds"] == [0, 1, 2]
    assert {"restor-bench", "lm-eval", "transformers", "torch"} <= set(document["versions"])
    assert document["versions"]["lm-eval"] == "0.4.13"
    task = document["tasks"][TASK]
    results = next((tmp_path / "runs" / "steps").glob("eval-npo-good-clean-0/*/results_*.json"))
    assert task["task_hash"] == load(results)["task_hashes"][TASK]
    assert task["targets"] == ["Alma Vittor", "Bram Okelo"]
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
    assert code == 2 and "unknown data hash" in err and "unknown-world.json" in err
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
# Bad submissions: each gives one line naming the file; validate exits 2; build skips it and keeps the others


def _bad_malformed(folder: Path, good: dict) -> Path:
    path = folder / "malformed.json"
    path.write_text('{"schema": "restor-bench/submission/v1", "name": ')
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


def _bad_duplicate_content(folder: Path, good: dict) -> Path:
    return save(folder / "zz-copy.json", dict(good, name="zz-copy"))


def _bad_nan(folder: Path, good: dict) -> Path:
    path = folder / "nan.json"
    path.write_text(json.dumps(dict(good, name="nan")).replace('"level": 2', '"level": NaN'))
    return path


def _bad_symlink(folder: Path, good: dict) -> Path:
    path = folder / "link.json"
    path.symlink_to(folder / "npo-good.json")
    return path


BAD = {
    "symlink": (_bad_symlink, "is a symbolic link; a submission must be a regular file"),
    "malformed": (_bad_malformed, "malformed JSON at line 1"),
    "missing-fields": (_bad_missing_fields, "schema: at"),
    "edited-number": (_bad_number, "metrics.aggregate.restoration_ratio.value"),
    "edited-outcome": (_bad_outcome, "does not match the one recomputed from the outcomes"),
    "unknown-hash": (_bad_hash, "unknown data hash abab"),
    "traversal": (_bad_name, "'../traversal'"),
    "file-name": (_bad_file_name, "does not match the file name"),
    "huge": (_bad_huge, "over the 5 MB limit for a submission (not read)"),
    "duplicate-content": (_bad_duplicate_content, "duplicate submission: same content as"),
    "nan": (_bad_nan, "NaN is not allowed"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_submission_is_one_line_exit_2_and_skipped_by_build(kind, submitted, tmp_path, capsys):
    make, message = BAD[kind]
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

    board = tmp_path / "board"
    code, out, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 0, err
    assert err.strip().splitlines() == [f"skipped {lines[0]}"]
    table = table_rows(board / "index.html")
    assert [row[1] for row in table] == ["npo-good", "ga-weak"]
    assert "| npo-good |" in (board / "README.md").read_text()


def test_same_name_twice(submitted, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    document = load(submitted / "npo-good.json")
    document["method"]["hparams"]["beta"] = 0.2  # other content, same name
    copy = save(other / "npo-good.json", document)
    code, _, err = run_cli(["leaderboard", "validate", submitted / "npo-good.json", copy], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"{copy}: duplicate name 'npo-good' (also in {submitted / 'npo-good.json'})"]


def test_validate_missing_folder_and_empty_folder(tmp_path, capsys):
    code, _, err = run_cli(["leaderboard", "validate", tmp_path / "absent"], capsys)
    assert code == 2 and "no such submission file or folder" in err
    (tmp_path / "empty").mkdir()
    code, out, _ = run_cli(["leaderboard", "validate", tmp_path / "empty"], capsys)
    assert code == 0 and "0 submission(s) checked" in out


# --------------------------------------------------------------------------------------------------------------
# Schema


def test_schema_file_is_the_schema_and_is_valid():
    jsonschema = pytest.importorskip("jsonschema")
    shipped = REPO_ROOT / "leaderboard" / "schema.json"
    assert shipped.read_text() == schema_text(), "run: restor-bench leaderboard schema --out leaderboard/schema.json"
    jsonschema.Draft202012Validator.check_schema(SUBMISSION_SCHEMA)


def _keywords(node, found: set) -> set:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _keywords(sub, found)
                found.add(key)
            else:
                found.add(key)
                _keywords(value, found)
    elif isinstance(node, list):
        for item in node:
            _keywords(item, found)
    return found


def test_builtin_checker_covers_the_schema_and_agrees_with_jsonschema(submitted):
    jsonschema = pytest.importorskip("jsonschema")
    assert _keywords(SUBMISSION_SCHEMA, set()) <= SUPPORTED_KEYWORDS
    good = load(submitted / "npo-good.json")
    validator = jsonschema.Draft202012Validator(SUBMISSION_SCHEMA)
    assert builtin_schema_errors(good) == [] and validator.is_valid(good)
    task = good["tasks"][TASK]
    broken = [
        {k: v for k, v in good.items() if k != "seeds"},
        dict(good, seeds=[0, 0]),
        dict(good, extra=1),
        dict(good, data=dict(good["data"], world="moon")),
        dict(good, data=dict(good["data"], level=True)),
        dict(good, data=dict(good["data"], data_hash="xyz")),
        dict(good, tasks={}),
        dict(good, tasks={TASK: dict(task, runs=[dict(task["runs"][0], clean={"correct": "01x",
                                                                            "gave_corrupted": ""})])}),
        dict(good, tasks={TASK: dict(task, targets=[])}),
        dict(good, method={"name": "a\nb", "hparams": {}}),
        dict(good, bootstrap=dict(good["bootstrap"], resamples=10**6)),
        dict(good, versions={"torch": "2"}),
    ]
    for document in broken:
        assert builtin_schema_errors(document), document.keys()
        assert not validator.is_valid(document)


# --------------------------------------------------------------------------------------------------------------
# Build


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


def test_build_writes_tables_page_and_plot(submitted, tmp_path, capsys):
    board = tmp_path / "board"
    code, out, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 0 and err == ""
    assert "2 submission(s) on the leaderboard" in out

    readme = (board / "README.md").read_text()
    assert "## Tiny world · classic protocol · corruption level k=2 · full forget set · restor_tiny_facts (contains)" in readme
    rows = [line for line in readme.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert [row.split(" | ")[1] for row in rows] == ["npo-good", "ga-weak"]  # ranked by restoration ratio
    good = load(submitted / "npo-good.json")["tasks"][TASK]["metrics"]["aggregate"]
    assert f"{good['restoration_ratio']['value']:.2f} [" in rows[0]
    assert "![" in readme and "(plot.png)" in readme

    page = parse_page(board / "index.html")
    assert page.external == [], "the page must not load anything"
    assert [row[1] for row in page.rows] == ["npo-good", "ga-weak"]
    assert page.rows[0][2].startswith("npo") and page.rows[1][2].startswith("gradient_ascent")
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
    assert "<script>" not in readme and "&lt;script&gt;alert(1)&lt;/script&gt;\\|x" in readme


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
    assert code == 2 and "none of the 2 submission file(s) is valid" in err
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
        patch.setattr(leaderboard, "render_plot_png", broken_plot)
        with pytest.raises(RuntimeError, match="simulated"):
            leaderboard.build_leaderboard(submitted, board)
    assert _snapshot(board) == before

    # 4. writing fails on the second file: the first one is not replaced either, no temporary file is left
    real_stage = leaderboard._stage_file
    calls = []

    def failing_stage(path, content):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_stage(path, content)

    with monkeypatch.context() as patch:
        patch.setattr(leaderboard, "_stage_file", failing_stage)
        with pytest.raises(OSError):
            leaderboard.build_leaderboard(submitted, board)
    assert calls == ["README.md", "index.html"]
    assert _snapshot(board) == before
    assert sorted(item.name for item in board.iterdir()) == ["README.md", "index.html", "plot.png"]

    # 5. a hand-written file is not replaced without --overwrite
    (board / "README.md").write_text("# my own notes\n")
    code, _, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 2 and "was not written by `leaderboard build`" in err
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


def test_page_renders_in_a_headless_browser(submitted, tmp_path, capsys):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium) ")
    board = tmp_path / "board"
    assert run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)[0] == 0
    shot = tmp_path / "page.png"
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,900",
        (board / "index.html").resolve().as_uri(),
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000

    # the inline script sorts: click the "submission" header, then read the rows back from the browser's DOM
    clicked = board / "clicked.html"
    clicked.write_text((board / "index.html").read_text().replace(
        "</body>", "<script>document.querySelectorAll('table.board th')[1].click();</script></body>"
    ))
    command = [*command[:6], f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", clicked.resolve().as_uri()]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    parser = TableParser()
    parser.feed(result.stdout)
    assert [row[1] for row in parser.rows] == ["ga-weak", "npo-good"]  # built in ratio order: npo-good first
    assert 'aria-sort="ascending"' in result.stdout


def test_validation_without_jsonschema_uses_the_builtin_checker(submitted, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # `import jsonschema` now raises ImportError
    bad = _bad_missing_fields(submitted, load(submitted / "npo-good.json"))
    code, _, err = run_cli(["leaderboard", "validate", submitted], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"{bad}: schema: at (top level): missing required field 'versions' (and 1 more schema error(s))"
    ]


@pytest.mark.skipif(not (REPO_ROOT / "tasks" / "restor_tiny_facts.yaml").exists(), reason="restor tasks not present")
def test_real_lm_eval_output_through_submit_validate_build(random_tiny_model, world, tmp_path, capsys):
    """One real `restor-bench eval` (lm-eval on a random tiny model): its folder serves as all three models."""
    evaluation = tmp_path / "runs" / "steps" / "eval-real"
    code = main(["eval", str(random_tiny_model), "--tasks", TASK, "--world-dir", str(world), "--limit", "12",
                 "--batch-size", "4", "--out", str(evaluation)])
    assert code == 0, capsys.readouterr().err[-2000:]
    capsys.readouterr()
    record = {
        "schema": "restor-bench/run/v1", "name": "real", "world": "tiny", "method": "none", "hparams": {},
        "level": 0, "forget": "full", "corruption": "wikidata", "model": str(random_tiny_model), "lora": False,
        "seeds": [0], "data_hash": world_hash(world), "versions": {},
        "per_seed": [{"seed": 0, "artifacts": {f"eval_{role}": "steps/eval-real"
                                                for role in ("clean", "corrupted", "unlearned")}}],
    }
    (tmp_path / "runs" / "real").mkdir()
    save(tmp_path / "runs" / "real" / "run.json", record)
    submissions = tmp_path / "submissions"
    code, _, err = run_cli(["leaderboard", "submit", tmp_path / "runs" / "real", "--name", "real-lm-eval",
                            "--out", submissions, "--model-name", "random-tiny"], capsys)
    assert code == 0, err
    document = load(submissions / "real-lm-eval.json")
    # versions come from the evaluation folder's record when run.json has none
    assert document["versions"]["lm-eval"] and document["versions"]["torch"]
    task = document["tasks"][TASK]
    results = load(next(evaluation.rglob("results_*.json")))
    assert task["task_hash"] == results["task_hashes"][TASK]
    assert len(task["questions"]) == 12 and task["targets"] == ["Alma Vittor", "Bram Okelo"]
    run = task["runs"][0]
    assert run["clean"] == run["corrupted"] == run["unlearned"]
    assert task["metrics"]["aggregate"]["restoration_ratio"]["value"] is None  # the "corruption" changed nothing
    assert run_cli(["leaderboard", "validate", submissions], capsys)[0] == 0
    assert run_cli(["leaderboard", "build", "--submissions", submissions, "--out", tmp_path / "board"], capsys)[0] == 0
    rows = table_rows(tmp_path / "board" / "index.html")
    assert [row[1] for row in rows] == ["real-lm-eval"] and rows[0][4] == "undefined"


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
    assert any("protocol" in problem for problem in check_document(bad, folder / "npo-bad.json"))

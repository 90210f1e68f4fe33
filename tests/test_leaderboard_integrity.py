"""What the leaderboard makes impossible, each defect reproduced and refused:

- a submission that keeps only part of its task's questions (failures dropped, an lm-eval --limit run);
- two files for one result (a byte copy under another name, a case variant, a re-scored copy), where file order
  would decide who is on the board;
- a file within the size cap that costs unbounded memory or time to check;
- text from a submission that becomes a live link or image in leaderboard/README.md, and a build that replaces a
  hand-written page.
"""

from __future__ import annotations

import json
import shutil
import string
import time
import tracemalloc
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import TASK, load, make_run, run_cli, submit_runs, world  # noqa: F401 (world: a fixture)

from restor_bench.leaderboard import (
    MAX_SUBMISSION_BYTES,
    SeedOutcomes,
    check_file,
    decode_bits,
    entity_of,
    rescore_document,
    submission_text,
    task_metrics,
)
from restor_bench.leaderboard.render import WORD_JOINER, markdown_text

REPO_ROOT = Path(__file__).resolve().parents[1]
SEEDED = REPO_ROOT / "leaderboard" / "submissions"
ROLES = ("clean", "corrupted", "unlearned")


def write(folder: Path, document: dict) -> Path:
    path = folder / f"{document['name']}.json"
    path.write_text(submission_text(document))
    return path


def recompute(document: dict) -> dict:
    """The metrics of every task recomputed from the document's own outcomes and targets (a consistent file)."""
    for entry in document["tasks"].values():
        targets = set(entry["targets"])
        is_target = np.array([entity_of(q) in targets for q in entry["questions"]])
        outcomes = [SeedOutcomes(run["seed"], {r: decode_bits(run[r]["correct"]) for r in ROLES},
                                 {r: decode_bits(run[r]["gave_corrupted"]) for r in ROLES}) for run in entry["runs"]]
        entry["metrics"] = task_metrics(is_target, outcomes, document["bootstrap"]["resamples"],
                                        document["bootstrap"]["seed"])
    return document


@pytest.fixture()
def submitted(tmp_path, world) -> Path:
    return submit_runs(tmp_path / "runs", world, tmp_path / "submissions",
                       **{"npo-good": {"restore": 0.8, "damage": 0.0}, "ga-weak": {"method": "ga", "restore": 0.2}})


# --------------------------------------------------------------------------------------------------------------
# Complete question sets


def test_a_submission_keeping_4_of_the_70_target_questions_is_refused(tmp_path, capsys):
    document = rescore_document(load(SEEDED / "tiny-npo-k0.json"), SEEDED / "tiny-npo-k0.json", targets="all")
    document["name"] = "dropped-failures"
    del document["tasks"]["restor_tiny_logprob"]
    entry = document["tasks"][TASK]
    targets = set(entry["targets"])
    restored = [i for i, q in enumerate(entry["questions"])
                if entity_of(q) in targets and all(run["unlearned"]["correct"][i] == "1" for run in entry["runs"])]
    keep = restored[:4] + [i for i, q in enumerate(entry["questions"]) if entity_of(q) not in targets]
    keep.sort()
    assert sum(entity_of(entry["questions"][i]) in targets for i in keep) == 4
    dropped = sorted(set(range(len(entry["questions"]))) - set(keep))
    entry["questions"] = [entry["questions"][i] for i in keep]
    for run in entry["runs"]:
        for role in ROLES:
            run[role] = {kind: "".join(run[role][kind][i] for i in keep) for kind in run[role]}
    recompute(document)
    # the defect: on its 4 kept target questions the method looks perfect
    assert document["tasks"][TASK]["metrics"]["aggregate"]["accuracy"]["unlearned"]["target"] == 1.0
    folder = tmp_path / "subs"
    folder.mkdir()
    path = write(folder, document)
    code, _, err = run_cli(["leaderboard", "validate", folder], capsys)
    assert code == 2
    first_missing = load(SEEDED / "tiny-npo-k0.json")["tasks"][TASK]["questions"][dropped[0]]
    assert err.strip().splitlines() == [
        f"{path}: task {TASK}: holds 4 of the 70 target questions and 630 of the 630 other questions of the task on "
        f"the tiny world v1 (5940073e65c9); a submission must hold every question of its task (missing 66, e.g. "
        f"{first_missing!r})"
    ]
    code, _, err = run_cli(["leaderboard", "build", "--submissions", folder, "--out", tmp_path / "board"], capsys)
    assert code == 2 and not (tmp_path / "board").exists()


def test_submit_refuses_a_run_evaluated_on_part_of_the_task(tmp_path, world, capsys):
    run_dir = make_run(tmp_path / "runs", "limited", world, limit=10)  # lm_eval --limit 10
    code, _, err = run_cli(["leaderboard", "submit", run_dir, "--name", "limited", "--out", tmp_path / "subs"], capsys)
    assert code == 2 and not (tmp_path / "subs" / "limited.json").exists()
    assert err.strip().splitlines() == [
        f"restor-bench: error: {tmp_path / 'subs' / 'limited.json'}: task {TASK}: holds 4 of the 4 target questions "
        f"and 6 of the 24 other questions of the task on the tiny world v1 ({json.loads((world / 'manifest.json').read_text())['data_hash'][:12]}); "
        "a submission must hold every question of its task (missing 18, e.g. 'Cato Liens|P106')"
    ]


def test_a_task_hash_of_other_questions_or_prompts_is_refused(tmp_path, capsys):
    document = load(SEEDED / "tiny-ga-k0.json")
    document["name"] = "other-prompts"
    document["tasks"][TASK]["task_hash"] = "0" * 64
    path = write(tmp_path, document)
    assert check_file(path).problems == [
        f"task {TASK}: lm-eval task hash 000000000000 is not the hash of the whole task on the tiny world v1 "
        "(5940073e65c9) (68ce6a2bbc11): the questions, prompts or answers differ"
    ]
    document["tasks"][TASK]["task_hash"] = None  # not recorded: the question set alone is checked
    assert check_file(write(tmp_path, document)).problems == []


OFFICIAL_FULL = REPO_ROOT.parent / "shared" / "restor-official"


@pytest.mark.skipif(not (OFFICIAL_FULL / "facts.json").is_file(), reason="the full official RESTOR data is not here")
def test_official_submissions_are_checked_against_the_pinned_question_set(tmp_path):
    from restor_bench.data.official import OFFICIAL_TARGETS
    from restor_bench.data.questions import official_target_records
    from restor_bench.leaderboard.data import official_facts_sha256

    ids = sorted(record["id"] for record in official_target_records(OFFICIAL_FULL))
    rng = np.random.default_rng(0)

    def bits() -> str:
        return "".join("1" if value else "0" for value in rng.random(len(ids)) < 0.5)

    document = load(SEEDED / "tiny-ga-k0.json")
    document.update(name="official-complete", seeds=[0],
                    data=dict(document["data"], world="official", data_hash=official_facts_sha256(), targets="all"),
                    primary_task="restor_facts_targets")
    document["tasks"] = {"restor_facts_targets": {
        "metric": "contains", "task_hash": None, "targets": sorted(OFFICIAL_TARGETS), "questions": ids,
        "runs": [{"seed": 0, **{role: {"correct": bits(), "gave_corrupted": "0" * len(ids)} for role in ROLES}}],
    }}
    assert check_file(write(tmp_path, recompute(document))).problems == []
    partial = json.loads(json.dumps(document))
    partial["name"] = "official-partial"
    task = partial["tasks"]["restor_facts_targets"]
    task["questions"] = ids[1:]
    for run in task["runs"]:
        for role in ROLES:
            run[role] = {kind: value[1:] for kind, value in run[role].items()}
    problems = check_file(write(tmp_path, recompute(partial))).problems
    assert len(problems) == 1 and problems[0].startswith(
        "task restor_facts_targets: holds 197 of the 198 target questions and 100 of the 100 other questions of the "
        "task on the official RESTOR facts.json (fd0cfbd37c02)")


# --------------------------------------------------------------------------------------------------------------
# One identity per result


def test_a_byte_copy_under_another_name_refuses_both(submitted, tmp_path, capsys):
    original = submitted / "npo-good.json"
    copy = submitted / "aa-copy.json"
    shutil.copyfile(original, copy)
    code, out, err = run_cli(["leaderboard", "validate", submitted], capsys)
    assert code == 2 and "3 submission(s) checked: 1 valid, 2 invalid" in out
    same = "the same result (data, model, method and hyperparameters, level, seeds, targets, per-question outcomes)"
    assert err.strip().splitlines() == [
        f"{copy}: name 'npo-good' does not match the file name (expected npo-good.json)",
        f"{copy}: clashes with another submission: the same name 'npo-good' (ignoring case) as {original}; {same} "
        f"as {original}",
        f"{original}: clashes with another submission: the same name 'npo-good' (ignoring case) as {copy}; {same} "
        f"as {copy}",
    ]


def test_a_case_variant_refuses_both_whatever_the_order(submitted, capsys):
    original = submitted / "npo-good.json"
    variant = submitted / "NPO-good.json"
    variant.write_text(original.read_text().replace('"name": "npo-good"', '"name": "NPO-good"'))
    for order in ([original, variant], [variant, original]):
        code, _, err = run_cli(["leaderboard", "validate", *order], capsys)
        assert code == 2
        lines = sorted(err.strip().splitlines())
        assert len(lines) == 2
        assert lines[0].startswith(f"{variant}: clashes with another submission: the same name 'npo-good' "
                                   f"(ignoring case) as {original}; the same result")
        assert lines[1].startswith(f"{original}: clashes with another submission: the same name 'npo-good' "
                                   f"(ignoring case) as {variant}; the same result")


def test_the_same_result_rescored_or_respelled_is_one_identity(submitted, capsys):
    document = load(submitted / "npo-good.json")
    document["name"] = "npo-again"
    document["bootstrap"]["seed"] = 7  # other intervals, same result
    document["method"]["hparams"] = {"learning_rate": 0.0001, "beta": 0.1}  # 1e-4 spelled out
    document["method"]["hparams"]["learning_rate"] = 1e-4
    text = submission_text(recompute(document)).replace('"learning_rate": 0.0001', '"learning_rate": 1.0e-4')
    (submitted / "npo-again.json").write_text(text)
    code, out, err = run_cli(["leaderboard", "validate", submitted], capsys)
    assert code == 2 and "3 submission(s) checked: 1 valid, 2 invalid" in out
    lines = err.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(submitted / "npo-again.json"), str(submitted / "npo-good.json")]
    assert all("clashes with another submission: the same result" in line for line in lines)

    # another hyperparameter is another result: both stand
    document["method"]["hparams"]["beta"] = 0.2
    (submitted / "npo-again.json").write_text(submission_text(document))
    code, out, _ = run_cli(["leaderboard", "validate", submitted], capsys)
    assert code == 0 and "3 submission(s) checked: 3 valid, 0 invalid" in out


# --------------------------------------------------------------------------------------------------------------
# Bounded cost


def _craft(folder: Path, kind: str) -> Path:
    """A file just under the 5 MB cap, built to be expensive to read or check."""
    if kind == "deep":
        path = folder / "deep.json"
        path.write_text("[" * (MAX_SUBMISSION_BYTES // 2) + "]" * (MAX_SUBMISSION_BYTES // 2))
        return path
    base = load(SEEDED / "tiny-ga-k0.json")
    base["name"] = kind
    # (where to put the container, its n-th item, and that item's JSON text) for each kind
    inner = [0] * 1700
    item, text, put = {
        "many-questions": (lambda i: f"P{i}|x", lambda i: json.dumps(f"P{i}|x"),
                           lambda items: base["tasks"][TASK].__setitem__("questions", items)),
        "many-fields": (lambda i: (f"k{i}", i), lambda i: f'"k{i}": {i}',
                        lambda items: base["method"].__setitem__("hparams", dict(items))),
        "long-string": (lambda i: "x", lambda i: "x", lambda items: base["method"].__setitem__("name", "".join(items))),
        "many-small-values": (lambda i: inner, lambda i: json.dumps(inner),
                              lambda items: base["versions"].__setitem__("padding", items)),
    }[kind]
    put([])
    size = len(json.dumps(base))  # with the empty container ("[]", "{}" or '""')
    separator = 0 if kind == "long-string" else 2  # ", " between items
    items: list = []
    while True:
        grown = size + len(text(len(items))) + (separator if items else 0)
        if grown > MAX_SUBMISSION_BYTES:
            break
        items.append(item(len(items)))
        size = grown
    put(items)
    path = folder / f"{kind}.json"
    path.write_text(json.dumps(base))
    assert path.stat().st_size == size
    return path


CRAFTED = {
    "many-questions": "schema: at /tasks/restor_tiny_facts/questions: an array of",
    "many-fields": "schema: at /method/hparams: an object of",
    "long-string": "schema: at /method/name: a string of",
    "many-small-values": "schema: more than 50,000 JSON values: larger than any submission",
    "deep": "malformed JSON: nested too deeply",
}
PEAK_LIMIT = 100 * 2**20  # bytes of Python memory one check may take, whatever the file (measured peak: ~60 MB)


def _measured(path: Path):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        checked = check_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return checked, peak, time.perf_counter() - started


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_a_crafted_file_at_the_size_cap_is_refused_within_bounded_memory(kind, tmp_path):
    path = _craft(tmp_path, kind)
    assert MAX_SUBMISSION_BYTES - 20_000 < path.stat().st_size <= MAX_SUBMISSION_BYTES
    checked, peak, seconds = _measured(path)
    assert len(checked.problems) == 1 and checked.problems[0].startswith(CRAFTED[kind]), checked.problems
    assert peak < PEAK_LIMIT, f"{kind}: peak {peak / 2**20:.0f} MB"
    assert seconds < 60, f"{kind}: {seconds:.1f} s"


def test_the_most_expensive_valid_file_is_checked_within_bounded_memory(tmp_path):
    """20 seeds (the most) and the most resamples the work budget allows on the tiny world's 700 questions."""
    from restor_bench.names import MAX_SUBMISSION_BOOTSTRAP_DRAWS

    document = load(SEEDED / "tiny-ga-k0.json")
    document.update(name="most-work", seeds=list(range(20)))
    document["bootstrap"]["resamples"] = MAX_SUBMISSION_BOOTSTRAP_DRAWS // 700
    for entry in document["tasks"].values():
        entry["runs"] = [dict(entry["runs"][seed % 3], seed=seed) for seed in range(20)]
    path = write(tmp_path, recompute(document))
    checked, peak, seconds = _measured(path)
    assert checked.problems == [] and checked.valid
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.0f} MB"

    # one resample more than the budget is refused before any is drawn
    document["name"] = "too-much-work"
    document["bootstrap"]["resamples"] = MAX_SUBMISSION_BOOTSTRAP_DRAWS // 700 + 1
    checked, peak, seconds = _measured(write(tmp_path, document))
    assert checked.problems == [
        f"task {TASK}: 2858 bootstrap resamples x 700 questions is over the limit of 2,000,000 draws per task (at "
        "most 2857 resamples here)"
    ]
    assert seconds < 30 and peak < 20 * 2**20


# --------------------------------------------------------------------------------------------------------------
# Safe rendering


def test_every_ascii_punctuation_mark_is_escaped():
    entities = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
    for char in string.punctuation:
        expected = entities.get(char, "\\@" + WORD_JOINER if char == "@" else "\\" + char)
        assert markdown_text(char) == expected, char
    assert markdown_text("a\nb\t c|d") == "a b c\\|d"


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs.get("href"))
        if tag == "img":
            self.images.append(attrs.get("src"))


HOSTILE = {
    "method": "[x](http://evil) ![i](http://evil/i.png)",
    "model": "<img src=http://evil/x.png> www.evil.com",
    "hparams": {"note": "mail a@evil.com http://evil/ *b* _i_ `c` | d", "other": "<b>bold</b> [r]: http://evil"},
}


def test_text_from_a_submission_cannot_become_a_link_or_image_on_github(submitted, tmp_path, capsys):
    cmarkgfm = pytest.importorskip("cmarkgfm", reason="cmarkgfm (GitHub's cmark-gfm) renders the README as GitHub does")
    document = load(submitted / "npo-good.json")
    document["name"] = "hostile"
    document["method"] = {"name": HOSTILE["method"], "hparams": HOSTILE["hparams"]}
    document["model"]["id"] = HOSTILE["model"]
    write(submitted, document)
    board = tmp_path / "board"
    code, _, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 0, err
    html = cmarkgfm.github_flavored_markdown_to_html((board / "README.md").read_text())
    page = Links()
    page.feed(html)
    assert page.links == ["../docs/leaderboard.md", "index.html"]
    assert page.images == ["plot.png"]
    assert not page.tags & {"b", "em", "strong", "code"}
    text = html.replace(WORD_JOINER, "")
    assert "[x](http://evil) ![i](http://evil/i.png)" in text
    assert "&lt;img src=http://evil/x.png&gt; www.evil.com" in text
    assert "note=mail a@evil.com http://evil/ *b* _i_ `c` | d" in text


def _png_with_title(text: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    buffer = io.BytesIO()
    Figure(figsize=(1, 1)).savefig(buffer, format="png", metadata={"Title": text})
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["README.md", "index.html", "plot.png"])
def test_build_replaces_only_files_with_the_exact_generated_marker(name, submitted, tmp_path, capsys):
    board = tmp_path / "board"
    assert run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)[0] == 0
    mentions = {
        "README.md": b"# restor-bench leaderboard\n\nMy notes about the restor-bench leaderboard build.\n",
        "index.html": b"<!doctype html>\n<!-- restor-bench leaderboard -->\n<p>mine</p>\n",
        "plot.png": _png_with_title("restor-bench leaderboard"),
    }[name]
    (board / name).write_bytes(mentions)
    code, out, err = run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"restor-bench: error: {board / name}: exists and was not written by `leaderboard build` (it lacks the "
        "generated marker); pass --overwrite to replace it"
    ]
    assert (board / name).read_bytes() == mentions
    # a file build wrote is replaced without --overwrite
    assert run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board, "--overwrite"], capsys)[0] == 0
    assert run_cli(["leaderboard", "build", "--submissions", submitted, "--out", board], capsys)[0] == 0


# --------------------------------------------------------------------------------------------------------------
# Identity: the stated method and its hyperparameters agree


def test_a_run_json_edited_from_npo_to_ga_is_refused_by_submit_and_validate(tmp_path, world, capsys):
    """The run's NPO hyperparameters (beta) under the name "ga": submit refuses it, and so does validate for the
    same document written by hand."""
    run_dir = make_run(tmp_path / "runs", "relabelled", world, method="npo")
    record = json.loads((run_dir / "run.json").read_text())
    record["method"] = "ga"
    (run_dir / "run.json").write_text(json.dumps(record))
    code, _, err = run_cli(["leaderboard", "submit", run_dir, "--name", "relabelled", "--out", tmp_path / "subs"],
                           capsys)
    assert code == 2 and not (tmp_path / "subs" / "relabelled.json").exists()
    assert "method ga: beta is not a hyperparameter of ga" in err and len(err.strip().splitlines()) == 1

    good = submit_runs(tmp_path / "runs2", world, tmp_path / "good", npo=dict(method="npo"))
    document = load(good / "npo.json")
    document["method"]["name"] = "ga"
    checked = check_file(write(tmp_path, document))
    assert checked.problems == [checked.problems[0]] and "beta is not a hyperparameter of ga" in checked.problems[0]


@pytest.mark.parametrize("key, value, expected", [
    ("learning_rate", "fast", "hyperparameter learning_rate is float, found string"),
    ("num_epochs", True, "hyperparameter num_epochs is float, found boolean"),
    ("per_device_batch_size", 2.5, "hyperparameter per_device_batch_size is int, found number"),
    ("log_ratio", 3, "hyperparameter log_ratio is str, found integer 3"),
    ("no_such_knob", 1, "no_such_knob is not a hyperparameter of npo"),
])
def test_hyperparameters_of_the_wrong_type_or_unknown_are_refused(tmp_path, world, key, value, expected):
    good = submit_runs(tmp_path / "runs", world, tmp_path / "good", npo=dict(method="npo"))
    document = load(good / "npo.json")
    document["method"]["hparams"][key] = value
    checked = check_file(write(tmp_path, document))
    assert len(checked.problems) == 1 and expected in checked.problems[0], checked.problems

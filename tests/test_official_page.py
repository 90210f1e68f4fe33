"""scripts/official_page.py, the page of real models side by side: a real (tiny-budget) official-world grid on the
committed subset of the official data, then the script's real instrument steps (restor_facts_logprob through
lm-eval, compare, layers); the page's numbers are checked against the JSON they come from, and the page is
rebuilt from its inputs alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from restor_bench import cli
from restor_bench.data.world.files import tiny_world_dir

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_FIXTURE_DIR = REPO / "tests" / "fixtures" / "restor-official"
ACCURACY = "Accuracy and restoration"
LOGPROB = "Which answer does the model prefer? (the paper's logit analysis)"
LAYERS = "Where the changes sit (`restor-bench layers`)"
SCRIPT = REPO / "scripts" / "official_page.py"


def _script(*argv: str, cwd: Path, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if data_dir is not None:
        env["RESTOR_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, str(SCRIPT), *argv], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A two-method official grid on the tiny model (LoRA, 2 documents per target, one step each, 6 questions)
    and the page built from it by the script."""
    work = tmp_path_factory.mktemp("official_page")
    official_dir = OFFICIAL_FIXTURE_DIR
    env_dir = str(official_dir)
    grid = ["grid", "--world", "official", "--data-dir", env_dir, "--model", str(tiny_world_dir() / "model"),
            "--lora", "--methods", "ga,npo", "--levels", "0", "--forget", "full", "--corruption", "wikidata",
            "--seeds", "1", "--max-docs-per-entity", "2", "--corrupt-max-steps", "1", "--max-steps", "1",
            "--corrupt-set", "warmup_ratio=0", "--corrupt-set", "learning_rate=1e-2",
            "--limit", "6", "--batch-size", "6", "--root", str(work / "runs"), "--results",
            str(work / "docs" / "grid.md"), "--no-plots"]
    assert cli.main(grid) == 0
    (work / "discussion.md").write_text("## Discussion\n\nA committed paragraph.\n")
    argv = ["--page", "Tiny Llama", "docs/grid.json", "runs", "--instruments", "docs/instruments",
            "--discussion", "discussion.md", "--out", "docs/official.md", "--limit", "6", "--batch-size", "6"]
    result = _script(*argv, cwd=work, data_dir=official_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return work, argv, official_dir


def _row(page: str, section: str, *starts: str) -> str:
    """The one table row of `section` (a "## " heading) that starts with the cells `starts`."""
    text = page.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    prefix = "| " + " | ".join(starts) + " |"
    rows = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(rows) == 1, (prefix, rows)
    return rows[0]


def test_page_numbers_come_from_the_grid_and_the_instruments(built):
    work, _, _ = built
    page = (work / "docs" / "official.md").read_text()
    grid = json.loads((work / "docs" / "grid.json").read_text())
    cells = {cell["cell"]["method"]: cell for cell in grid["cells"]}
    assert set(cells) == {"ga", "npo"}
    # the grid's command and this script's command are printed
    assert grid["command"] in page and "python scripts/official_page.py --page 'Tiny Llama' docs/grid.json" in page
    # accuracy table: the grid JSON's values, in percent with one decimal
    stats = cells["npo"]["stats"]
    row = _row(page, ACCURACY, "Tiny Llama", "NPO")
    assert f"{100 * stats['unlearned_target']['value']:.1f}" in row
    assert f"{100 * stats['unlearned_non_target']['value']:.1f}" in row
    clean_row = _row(page, ACCURACY, "Tiny Llama", "clean")
    assert f"{100 * stats['clean_target']['value']:.1f}" in clean_row
    # the logprob instrument: clean, corrupted and both unlearned models, from the compare JSON
    report = json.loads((work / "docs" / "instruments" / "tiny-llama" / "logprob.json").read_text())
    logprob = report["tasks"]["restor_facts_logprob"]["logprob"]
    assert set(logprob["metrics"]) == {"clean", "corrupted", "ga", "npo"} and logprob["n_questions"] > 0
    values = [logprob["metrics"]["npo"][f"logprob_{c}"]["value"] for c in ("correct", "corrupted", "random")]
    row = _row(page, LOGPROB, "Tiny Llama", "NPO")
    assert all(f"{v:.2f}" in row for v in values)
    # the layers instrument: the weights report's cosine for GA, in the layers table
    weights = json.loads((work / "docs" / "instruments" / "tiny-llama" / "layers-ga" / "weights.json").read_text())
    assert weights["total"]["corruption_norm"] > 0 and weights["total"]["unlearning_norm"] > 0
    cosine = weights["total"]["cosine"]
    row = _row(page, LAYERS, "Tiny Llama", "GA")
    assert f"{weights['total']['corruption_relative']:.5f}" in row
    assert (f"{cosine:+.2f}" if cosine is not None else "n/a") in row
    published = work / "docs" / "instruments" / "tiny-llama" / "layers-npo"
    assert (published / "lens.png").is_file() and (published / "weights.png").is_file()
    # the published lens report is the command's, less its per-question rows (which stay with the runs)
    full = json.loads((work / "runs" / "instruments" / "layers-npo" / "lens.json").read_text())
    summary = json.loads((published / "lens-summary.json").read_text())
    assert summary["questions"] == len(full["questions"]) > 0 and summary["summary"] == full["summary"]
    assert "A committed paragraph." in page


def test_render_only_rebuilds_the_same_page_from_its_inputs(built):
    """The page is a function of the grid JSON, the instrument JSON and the command: rendering it again (no run
    folders needed) gives the same text, the date aside."""
    work, argv, official_dir = built
    out = ["--out", "docs/again.md"]
    index = argv.index("--out")
    result = _script(*argv[:index], *out, *argv[index + 2:], "--render-only", cwd=work, data_dir=official_dir)
    assert result.returncode == 0, result.stderr
    first = (work / "docs" / "official.md").read_text().splitlines()
    again = (work / "docs" / "again.md").read_text().splitlines()
    differ = [(a, b) for a, b in zip(first, again, strict=True) if a != b]
    assert all(a.startswith("- date:") or "--out docs/" in a for a, _ in differ), differ


def test_the_page_shows_the_values_of_its_json(built, tmp_path):
    """Values set by hand in copies of the grid JSON and of a weights report land, formatted, in their rows."""
    work, argv, official_dir = built
    docs = tmp_path / "docs"
    shutil.copytree(work / "docs" / "instruments", docs / "instruments")
    grid = json.loads((work / "docs" / "grid.json").read_text())
    npo = next(cell for cell in grid["cells"] if cell["cell"]["method"] == "npo")
    npo["stats"]["unlearned_target"] = {"value": 0.4567, "ci": [0.3, 0.6]}
    npo["stats"]["restoration_ratio"] = {"value": 0.25, "ci": [-0.125, 0.5]}
    npo["transitions"].update(restored=7.0, forgotten=3.0, target_known=12.0)
    (docs / "grid.json").write_text(json.dumps(grid))
    weights_file = docs / "instruments" / "tiny-llama" / "layers-npo" / "weights.json"
    weights = json.loads(weights_file.read_text())
    weights["total"].update(corruption_norm=2.0, unlearning_norm=0.5, corruption_relative=0.0123, cosine=-0.66)
    # two attention modules whose changes cancel in the dot product, and one feed-forward module undone exactly:
    # attention |c| = |u| = sqrt(3^2 + 4^2) = 5, dot = -0.5*3*4 + 0.5*4*3 = 0; mlp |c| = 2, |u| = 1, cosine -1
    template = {"layer": 0, "parameters": 1, "clean_norm": 1.0, "corruption_relative": 0.0, "unlearning_relative": 0.0}
    weights["modules"] = [
        {**template, "name": "a", "module": "q_proj", "kind": "attention", "corruption_norm": 3.0,
         "unlearning_norm": 4.0, "cosine": -0.5},
        {**template, "name": "b", "module": "k_proj", "kind": "attention", "corruption_norm": 4.0,
         "unlearning_norm": 3.0, "cosine": 0.5},
        {**template, "name": "c", "module": "up_proj", "kind": "mlp", "corruption_norm": 2.0, "unlearning_norm": 1.0,
         "cosine": -1.0},
        {**template, "name": "d", "module": "norm", "kind": "norm", "corruption_norm": 0.0, "unlearning_norm": 0.0,
         "cosine": None},
    ]
    weights_file.write_text(json.dumps(weights))
    result = _script("--page", "Tiny Llama", "docs/grid.json", "runs", "--instruments", "docs/instruments",
                     "--out", "docs/page.md", "--render-only", cwd=tmp_path, data_dir=official_dir)
    assert result.returncode == 0, result.stderr
    page = (docs / "page.md").read_text()
    row = _row(page, ACCURACY, "Tiny Llama", "NPO")
    assert "| 45.7 [30.0, 60.0] |" in row and "| 0.25 [-0.12, 0.50] |" in row and "| 7 / 3 (of 12) |" in row
    row = _row(page, LAYERS, "Tiny Llama", "NPO")
    assert "| 0.01230 |" in row and "| 0.25 | -0.66 |" in row
    header = next(line for line in page.split("## The changes by module kind\n", 1)[1].splitlines()
                  if line.startswith("| model |"))
    assert "| attention: " in header and "| mlp: " in header and "norm:" not in header
    npo = _row(page, "The changes by module kind", "Tiny Llama", "NPO")
    assert npo == "| Tiny Llama | NPO | 5.000 / 1.00 / +0.00 | 2.000 / 0.50 / -1.00 |"


def test_a_missing_grid_json_is_one_line_and_exit_2(tmp_path):
    result = _script("--page", "X", "nope.json", "runs", "--instruments", "i", "--out", "p.md", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "official_page: error: nope.json: grid JSON not found"
    assert not (tmp_path / "p.md").exists()

"""The published pages agree with the JSON their commands wrote: every grid page's cell tables, the numbers the
hand-written discussion of docs/results/RESULTS-paper.md quotes for SmolLM2, and docs/results/RESULTS-official.md
against its inputs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
RESULTS = DOCS / "results"  # every results page, with its JSON, discussion, plots and instrument outputs


def _cells(name: str) -> dict[str, dict]:
    grid = json.loads((RESULTS / name).read_text())
    return {cell["cell"]["method"]: cell for cell in grid["cells"]}


def _ci(entry: dict) -> str:
    low, high = entry["ci"]
    return f"{entry['value']:.2f} [{low:.2f}, {high:.2f}]"


def test_the_paper_discussion_quotes_the_smollm2_page():
    text = (RESULTS / "RESULTS-paper.discussion.md").read_text()
    section = text[text.index("**A real model: SmolLM2-135M"):]
    cells = _cells("RESULTS-paper-smollm2.json")
    for method, name in (("ga", "GA"), ("kl", "KL"), ("npo", "NPO")):
        assert f"{name} {_ci(cells[method]['stats']['restoration_ratio'])}" in section
    stats = cells["ga"]["stats"]
    clean, corrupted = stats["clean_target"]["value"], stats["corrupted_target"]["value"]
    assert f"from {100 * clean:.1f}% to {100 * corrupted:.1f}%" in section
    other = f"from {100 * stats['clean_non_target']['value']:.1f}% to {100 * stats['corrupted_non_target']['value']:.1f}%"
    assert other in section
    # the page the discussion points to is the one the grid wrote, and the tiny-world page carries the paragraph
    assert (RESULTS / "RESULTS-paper-smollm2.md").read_text().count(json.loads(
        (RESULTS / "RESULTS-paper-smollm2.json").read_text())["command"]) == 1
    assert section.strip() in (RESULTS / "RESULTS-paper.md").read_text()


def test_the_official_page_is_its_command_rendered_again():
    """docs/results/RESULTS-official.md, rendered again from its printed command (`--check`: from the grids' JSON
    and the instrument JSON, no runs), is the same page but for its date."""
    page = (RESULTS / "RESULTS-official.md").read_text()
    command = re.search(r"```\n(python scripts/official_page\.py [^\n]+)\n```", page)
    assert command, "the page prints no official_page.py command"
    argv = shlex.split(command.group(1))[2:]
    result = subprocess.run([sys.executable, "scripts/official_page.py", *argv, "--check"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["RESULTS-paper-smollm2.json", "RESULTS-paper-gemma3.json"])
def test_the_official_page_shows_each_grid(name):
    page = (RESULTS / "RESULTS-official.md").read_text()
    grid = json.loads((RESULTS / name).read_text())
    assert grid["command"] in page
    for cell in grid["cells"]:
        value = cell["stats"]["unlearned_target"]
        low, high = value["ci"]
        assert f"{100 * value['value']:.1f} [{100 * low:.1f}, {100 * high:.1f}]" in page


GRID_PAGES = sorted(path.name for path in RESULTS.glob("RESULTS*.json")
                    if json.loads(path.read_text()).get("schema") == "restor-bench/grid/v1")


def test_every_grid_page_is_found():
    assert {"RESULTS.json", "RESULTS-paper.json", "RESULTS-paper-smollm2.json", "RESULTS-paper-gemma3.json"} <= set(
        GRID_PAGES)


@pytest.mark.parametrize("name", GRID_PAGES)
def test_a_grid_page_shows_its_json(name):
    """Each published grid page prints the command of its JSON once, and its cell tables are the JSON's cells
    rendered again (`grid_page.cell_table` on `CellResult.from_dict`): no number on the page was edited by hand."""
    from restor_bench.grid.page import cell_table
    from restor_bench.grid.stats import CellResult

    grid = json.loads((RESULTS / name).read_text())
    page = (RESULTS / name).with_suffix(".md").read_text()
    printed = re.findall(r"```\n(restor-bench grid [^\n]+)\n```", page)
    assert len(printed) == 1, f"{name}: the page prints {len(printed)} grid commands"
    if printed[0] != grid["command"]:
        # pages made before a default changed print the command that reruns what they ran: what ran (the JSON's
        # command) plus the settings that pin the old defaults, and say so under the command
        assert "are what this page ran" in page, f"{name}: the printed command is not the JSON's"
        assert set(shlex.split(grid["command"])) <= set(shlex.split(printed[0])), f"{name}: {printed[0]}"
    results = [CellResult.from_dict(cell) for cell in grid["cells"]]
    for result, cell in zip(results, grid["cells"], strict=True):  # from_dict is the inverse of to_dict
        again = result.to_dict()
        assert {key: again[key] for key in cell} == cell  # (older pages' JSON lacks fields added since)
    for squad in (False, True):
        chosen = [result for result in results if (result.cell.corruption == "squad") == squad]
        for row in cell_table(chosen, with_level=not squad)[2:]:
            assert row in page.splitlines(), f"{name}: the page lacks the row {row}"


@pytest.mark.parametrize("name", GRID_PAGES)
def test_a_grid_page_command_writes_the_page_where_it_lies(name):
    """Rerun from the repository root, a page's command writes that very page (and the plots it shows), and any
    `--discussion` file it names is the committed one."""
    grid = json.loads((RESULTS / name).read_text())
    words = shlex.split(grid["command"])
    assert words[words.index("--results") + 1] == (RESULTS / name).with_suffix(".md").relative_to(REPO_ROOT).as_posix()
    if "--discussion" in words:
        assert (REPO_ROOT / words[words.index("--discussion") + 1]).is_file(), name
    page = (RESULTS / name).with_suffix(".md")
    if "--plots" in words:
        plots = REPO_ROOT / words[words.index("--plots") + 1]
        shown = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", page.read_text())
        assert shown, f"{name}: the page shows no plot"
        for link in shown:
            assert (page.parent / link).resolve().parent.is_relative_to(plots.resolve()), f"{name}: {link}"


def test_the_results_pages_are_all_under_docs_results():
    assert not list(DOCS.glob("RESULTS*")), "results pages belong in docs/results/"


@pytest.mark.parametrize("name", ["tuning.json", "tuning-rmu.json"])
def test_the_method_defaults_are_the_settings_the_tuning_pages_chose(name):
    """docs/tuning.md and docs/tuning-rmu.md choose each method's tiny-world setting on the validation targets;
    the registered defaults (`unlearners.resolve_hparams`) are those settings."""
    from unlearners import get_method, resolve_hparams

    tuning = json.loads((DOCS / name).read_text())
    assert tuning["methods"]
    for method, entry in tuning["methods"].items():
        defaults = resolve_hparams(get_method(method))
        for key, chosen in entry["chosen"].items():
            value = getattr(defaults, key)
            if key == "update_layers":  # the page names the layers; the default () means layer-2 .. layer
                value = ",".join(map(str, value or [i for i in range(defaults.layer - 2, defaults.layer + 1)
                                                     if i >= 0]))
            assert value == chosen, f"{name}: {method}.{key} is {value!r} by default, the page chose {chosen!r}"

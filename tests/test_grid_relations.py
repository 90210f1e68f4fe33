"""The grid's restoration by relation: the per-relation numbers of a cell, the page's tables and the heat maps,
against values worked out by hand from small fabricated outcome sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import STAMP, generation_sample, write_lm_eval_files
from test_grid import _pooled

from restor_bench.grid.cells import Cell, GridOptions
from restor_bench.grid.page import write_page
from restor_bench.grid.stats import SamplesCache, cell_result, relation_breakdown

TASK = "restor_tiny_facts"
TARGETS = ("Ada Byron", "Carl Dahl", "Dora Ek")
# (id, is target, relation, clean, corrupted, ga, kl, squad-ga) over seeds 0 and 1: 1 = answered correctly.
# The corrupted column serves every cell (one corrupted model, reused), so only the unlearned columns differ.
QUESTIONS = [
    ("Ada Byron|P19", True, "P19", (1, 1), (0, 0), (1, 1), (1, 1), (0, 0)),
    ("Carl Dahl|P19", True, "P19", (1, 1), (0, 0), (1, 0), (1, 1), (0, 0)),
    ("Dora Ek|P19", True, "P19", (1, 1), (0, 1), (0, 1), (1, 1), (0, 0)),
    ("Ada Byron|P27", True, "P27", (1, 1), (0, 1), (1, 0), (1, 1), (0, 0)),
    ("Carl Dahl|P27", True, "P27", (0, 0), (0, 0), (1, 0), (1, 1), (0, 0)),
    ("Ada Byron|P106", True, "P106", (1, 1), (0, 0), (0, 1), (1, 1), (0, 0)),
    ("Eva Fink|P19", False, "P19", (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)),  # not a target: in no breakdown
    ("Eva Fink|P27", False, "P27", (1, 1), (0, 0), (1, 1), (1, 1), (1, 1)),
]
COLUMNS = {"clean": 3, "corrupted": 4, "ga": 5, "kl": 6, "squad-ga": 7}

# By hand, target questions pooled over the two seeds (the non-target Eva Fink questions play no part):
# P19 (Ada, Carl, Dora; n 3): clean 6/6 = 1; corrupted 1/6; ga 4/6; kl 6/6; squad-ga 0/6
#   ga ratio (4/6 - 1/6) / (1 - 1/6) = 0.6; kl (1 - 1/6) / (5/6) = 1.0; squad-ga (0 - 1/6) / (5/6) = -0.2
#   clean knew 3 in each seed -> 3.0; ga restored 2 (Ada, Carl) and 2 (Ada, Dora) -> 2.0
# P27 (Ada, Carl; n 2): clean 2/4 = 0.5; corrupted 1/4; gap 0.25 x 2 questions = 0.5 < 1 -> every ratio n/a,
#   although in seed 0 alone the corruption moved one question; clean knew 1 per seed; ga restored 1, 0 -> 0.5
# P106 (Ada; n 1): clean 1, corrupted 0, ga 1/2 -> ratio 0.5; kl 1.0; squad-ga 0.0 (gap 1 x 1 question: defined)
EXPECTED = {
    "ga": {"P19": (3, 0.6, 3.0, 2.0), "P27": (2, None, 1.0, 0.5), "P106": (1, 0.5, 1.0, 0.5)},
    "kl": {"P19": (3, 1.0, 3.0, 3.0), "P27": (2, None, 1.0, 1.0), "P106": (1, 1.0, 1.0, 1.0)},
    "squad-ga": {"P19": (3, -0.2, 3.0, 0.0), "P27": (2, None, 1.0, 0.0), "P106": (1, 0.0, 1.0, 0.0)},
}
ACCURACY_P19 = {"clean": 1.0, "corrupted": 1 / 6, "unlearned": 4 / 6}  # of ga


def _by_seed(column: int) -> np.ndarray:
    return np.array([[row[column][seed] for row in QUESTIONS] for seed in (0, 1)], dtype=bool)


def _check(by_relation: dict, expected: dict) -> None:
    assert list(by_relation) == ["P19", "P27", "P106"]  # natural order of the ids
    for relation, (n, ratio, known, restored) in expected.items():
        entry = by_relation[relation]
        assert entry["n_questions"] == n
        assert entry["target_known"] == known and entry["restored"] == {"unlearned": restored}
        assert entry["restoration_ratio"]["unlearned"] == (None if ratio is None else pytest.approx(ratio))


def test_relation_breakdown_by_hand():
    pooled = _pooled(_by_seed(3), _by_seed(4), _by_seed(5), [row[1] for row in QUESTIONS],
                     relations=[row[2] for row in QUESTIONS])
    table = relation_breakdown(pooled)
    _check(table, EXPECTED["ga"])
    assert table["P19"]["accuracy"] == pytest.approx(ACCURACY_P19)
    # without relations there is nothing to break down; a length mismatch is refused
    assert relation_breakdown(_pooled(_by_seed(3), _by_seed(4), _by_seed(5), [row[1] for row in QUESTIONS])) == {}
    with pytest.raises(ValueError, match="2 relations for 8 questions"):
        relation_breakdown(_pooled(_by_seed(3), _by_seed(4), _by_seed(5), [row[1] for row in QUESTIONS],
                                   relations=["P19", "P27"]))


# ---------------------------------------------------------------------------------------------------------------
# Cells read from fabricated lm-eval folders, and the page written from them


def _doc(qid: str, relation: str, target: bool) -> dict:
    entity = qid.split("|")[0]
    question = f"What is the {relation} of {entity}?"
    return {"id": qid, "entity": entity, "relation": relation, "question": question, "answers": ["Right"],
            "prompt": question, "corrupted_answers": ["Wrong"] if target else [], "random_answer": "Other",
            "is_target": target}  # fmt: skip


def _results() -> dict:
    return {
        "results": {TASK: {"alias": TASK}},
        "configs": {TASK: {"task": TASK, "output_type": "generate_until", "metadata": {"version": 1.0}}},
        "versions": {TASK: 1.0},
        "config": {"model": "hf", "model_args": "pretrained=m"},
        "model_name": "m",
        "lm_eval_version": "0.4.13",
    }


def _write_eval(folder: Path, column: int, seed: int) -> None:
    samples = []
    for index, (qid, target, relation, *_) in enumerate(QUESTIONS):
        correct = bool(QUESTIONS[index][column][seed])
        samples.append(generation_sample(index, _doc(qid, relation, target), "Right" if correct else "Wrong", correct))
    write_lm_eval_files(folder / "m", TASK, _results(), samples, STAMP)


def _fabricate(root: Path) -> list[tuple[Cell, dict]]:
    """Three finished cells of two seeds under `root`: ga and kl at k=0, and ga on the SQuAD-style passages."""
    for seed in (0, 1):
        for column, name in ((3, "clean"), (4, "corrupted"), (5, "ga"), (6, "kl"), (7, "squad-ga")):
            _write_eval(root / "steps" / f"eval-{name}-seed{seed}", column, seed)
    records = []
    for cell, unlearned in ((Cell("ga", "wikidata", 0, "full"), "ga"), (Cell("kl", "wikidata", 0, "full"), "kl"),
                            (Cell("ga", "squad", None, "full"), "squad-ga")):
        name = f"tiny-{unlearned}"
        per_seed = []
        for seed in (0, 1):
            transitions = {"target_known": 5, "restored": 2, "still_corrupted": 1, "forgotten": 2}
            report = {"tasks": {TASK: {"targets": list(TARGETS), "transitions": {cell.method: transitions}}}}
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / f"compare-seed{seed}.json").write_text(json.dumps(report))
            artifacts = {f"eval_{role}": f"steps/eval-{folder}-seed{seed}"
                         for role, folder in (("clean", "clean"), ("corrupted", "corrupted"), ("unlearned", unlearned))}
            per_seed.append({"seed": seed, "artifacts": artifacts})
        records.append((cell, {"name": name, "method": cell.method, "seeds": [0, 1], "per_seed": per_seed}))
    return records


def test_cell_result_breaks_the_target_questions_down_by_relation(tmp_path):
    records = _fabricate(tmp_path)
    cache = SamplesCache("contains")
    for (cell, record), key in zip(records, ("ga", "kl", "squad-ga")):
        result = cell_result(cell, record, tmp_path, TASK, cache, resamples=0)
        assert result.n_target == 6 and result.n_non_target == 2
        _check(result.by_relation, EXPECTED[key])
        assert json.loads(json.dumps(result.to_dict()))["by_relation"] == json.loads(json.dumps(result.by_relation))
    ga = cell_result(*records[0], tmp_path, TASK, cache, resamples=0)
    assert ga.by_relation["P19"]["accuracy"] == pytest.approx(ACCURACY_P19)


def _section(page: str) -> list[str]:
    lines = page.splitlines()
    start = lines.index("## Restoration by relation")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    return lines[start:end]


def test_page_shows_restoration_by_relation_with_counts(tmp_path):
    import matplotlib.image

    root = tmp_path / "runs"
    records = _fabricate(root)
    options = GridOptions(world="tiny", seeds=(0, 1), root=root)
    page_path, plots = tmp_path / "docs" / "RESULTS.md", tmp_path / "docs" / "plots"
    write_page(records, options, results_path=page_path, plots_dir=plots, command="restor-bench grid", wall_time_s=1,
               resamples=0)  # fmt: skip
    page = page_path.read_text()
    section = _section(page)
    # rows: the shipped tiny world's names of P19, P27 and P106; columns: the methods of the setting
    assert section[section.index("### k=0, full forget set"):][:8] == [
        "### k=0, full forget set",
        "",
        "| relation | GA | KL |",
        "|---|---|---|",
        "| place of birth | 0.60 (n=3) | 1.00 (n=3) |",
        "| country of citizenship | n/a (n=2) | n/a (n=2) |",
        "| occupation | 0.50 (n=1) | 1.00 (n=1) |",
        "",
    ]
    assert section[section.index("### SQuAD-style passages, full forget set"):][:8] == [
        "### SQuAD-style passages, full forget set",
        "",
        "| relation | GA |",
        "|---|---|",
        "| place of birth | -0.20 (n=3) |",
        "| country of citizenship | n/a (n=2) |",
        "| occupation | 0.00 (n=1) |",
        "",
    ]
    assert "![Restoration ratio by relation, k=0, full forget set](plots/restoration-by-relation-k0-full.png)" in section
    assert ("![Restoration ratio by relation, SQuAD-style passages, full forget set]"
            "(plots/restoration-by-relation-squad-full.png)") in section
    # the other sections keep their format: the every-cell table still reads the pooled numbers
    # (kl: clean 10 of 12 target answers, corrupted 2, unlearned 12 -> ratio 10 / 8; Eva Fink 4 of 4 -> 2 of 4)
    assert "| kl | full | 0 | 83.3 | 16.7 | 100.0 | 1.25 | 2.0 / 1.0 / 2.0 of 5.0 | -50.0 | 6 / 2 |" in page

    numbers = json.loads(page_path.with_suffix(".json").read_text())
    for cell, key in zip(numbers["cells"], ("ga", "kl", "squad-ga")):
        _check(cell["by_relation"], EXPECTED[key])

    # the heat maps: 3 relations x 2 methods at k=0, 3 x 1 for SQuAD; a PNG cell is 1.0 x 0.55 in inside margins of
    # 2.2 (left) + 1.2 (right) and 0.6 (top) + 0.45 (bottom) inches, at 120 dpi
    for name, width in (("k0-full", (2.2 + 2 * 1.0 + 1.2) * 120), ("squad-full", (2.2 + 1.0 + 1.2) * 120)):
        image = matplotlib.image.imread(plots / f"restoration-by-relation-{name}.png")
        assert image.shape[:2] == (round((0.6 + 3 * 0.55 + 0.45) * 120), round(width)), name

    # without plots: the same tables, no image links
    bare = tmp_path / "bare" / "RESULTS.md"
    write_page(records, options, results_path=bare, plots_dir=None, command="restor-bench grid", wall_time_s=1,
               resamples=0)  # fmt: skip
    images = [i for i, line in enumerate(section) if line.startswith("![")]
    assert len(images) == 2 and all(section[i + 1] == "" for i in images)
    assert _section(bare.read_text()) == [line for i, line in enumerate(section)
                                          if i not in images and i - 1 not in images]  # fmt: skip


def _pixel(image, row: int, column: int) -> np.ndarray:
    """RGB of cell (row, column) of a heat map, away from the text at its centre."""
    x = (2.2 + (column + 0.5) * 1.0 - 0.35) * 120
    y = (0.6 + (row + 0.5) * 0.55 - 0.15) * 120
    return image[round(y), round(x), :3]


def test_heatmap_colours_a_high_ratio_unlike_a_low_one_and_greys_n_a(tmp_path):
    import matplotlib
    import matplotlib.image

    from restor_bench.grid.plots import plot_relation_heatmap

    cells = {(0, 0): (1.0, 14), (1, 0): (0.0, 9), (2, 0): (None, 1), (0, 1): (0.5, 14), (1, 1): (0.25, 9)}
    path = plot_relation_heatmap(["place of birth", "country of citizenship", "languages spoken, written or signed"],
                                 ["GA", "NPO"], cells, "Restoration ratio by relation", tmp_path / "heat.png")
    assert path == tmp_path / "heat.png" and path.stat().st_size > 0
    image = matplotlib.image.imread(path)
    assert image.shape == (324, 648, 4)  # (0.6 + 3 x 0.55 + 0.45) x 120 high, (2.2 + 2 x 1.0 + 1.2) x 120 wide
    viridis = matplotlib.colormaps["viridis"]  # ratios within 0..1: the colour scale is 0..1
    high, low, unknown = _pixel(image, 0, 0), _pixel(image, 1, 0), _pixel(image, 2, 0)
    assert np.abs(high - low).max() > 0.5
    assert high == pytest.approx(viridis(1.0)[:3], abs=2 / 255)
    assert low == pytest.approx(viridis(0.0)[:3], abs=2 / 255)
    assert _pixel(image, 0, 1) == pytest.approx(viridis(0.5)[:3], abs=2 / 255)
    assert unknown == pytest.approx([211 / 255] * 3, abs=2 / 255)  # lightgrey: n/a
    assert _pixel(image, 2, 1) == pytest.approx([211 / 255] * 3, abs=2 / 255)  # no cell: grey, empty
    # one row less: 0.55 in (66 px) lower, the same width
    path = plot_relation_heatmap(["place of birth", "occupation"], ["GA", "NPO"], {(0, 0): (1.0, 3)}, "t",
                                 tmp_path / "small.png")
    assert matplotlib.image.imread(path).shape == (324 - 66, 648, 4)

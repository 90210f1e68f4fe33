"""A readable page: hyperparameters folded away (those that differ from the method's defaults shown), plot labels
that do not collide (plot.png and the page's SVG), and an index.html that is well-formed HTML."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from leaderboard_fixtures import TableParser, run_cli, submit_runs, world  # noqa: F401 (world: a fixture)

from restor_bench.leaderboard.html import CHAR_WIDTH, TEXT_HEIGHT, render_html, render_svg
from restor_bench.leaderboard.plot import Box, draw_plot, place_labels
from restor_bench.leaderboard.render import Entry, method_defaults

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------------------
# Hyperparameters


class Cells(HTMLParser):
    """The method cells of a page: the text outside <details>, the <summary> text, and the folded items."""

    def __init__(self):
        super().__init__()
        self.cells: list[dict] = []
        self.column = -1
        self.where: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.column = -1
        if tag == "td":
            self.column += 1
            if self.column == 2:
                self.cells.append({"shown": "", "summary": "", "folded": []})
        if tag in ("details", "summary", "li"):
            self.where.append(tag)
            if tag == "li":
                self.cells[-1]["folded"].append("")

    def handle_endtag(self, tag):
        if tag in ("details", "summary", "li") and self.where:
            self.where.pop()
        if tag == "td":
            self.column += 0

    def handle_data(self, data):
        if self.column != 2 or not self.cells:
            return
        if "li" in self.where:
            self.cells[-1]["folded"][-1] += data
        elif "summary" in self.where:
            self.cells[-1]["summary"] += data
        elif not self.where:
            self.cells[-1]["shown"] += data


def test_only_hyperparameters_that_differ_from_the_defaults_are_shown(world, tmp_path, capsys):
    defaults = method_defaults("npo", "classic")
    changed = dict(defaults, beta=0.25, num_epochs=5)  # 5 is the default 5.0 written as an integer
    subs = submit_runs(tmp_path / "runs", world, tmp_path / "subs", **{"npo-beta": {"method": "npo"},
                                                                       "mine": {"method": "my_method"}})
    for name, hparams in (("npo-beta", changed), ("mine", {"alpha": 2})):
        document = json.loads((subs / f"{name}.json").read_text())
        document["method"]["hparams"] = hparams
        (subs / f"{name}.json").write_text(json.dumps(document))
    board = tmp_path / "board"
    code, _, err = run_cli(["leaderboard", "build", "--submissions", subs, "--out", board], capsys)
    assert code == 0, err
    page = Cells()
    page.feed((board / "index.html").read_text())
    by_method = {cell["shown"].split("beta")[0]: cell for cell in page.cells}
    npo, mine = by_method["npo"], by_method["my_method"]
    assert npo["shown"] == "npobeta=0.25"  # the method, then only what differs from its defaults
    assert npo["summary"] == f"all {len(defaults)} hyperparameters"
    assert npo["folded"] == [f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                             for key, value in changed.items()]
    assert mine["shown"] == "my_method" and mine["summary"] == "1 hyperparameters (method defaults unknown here)"
    readme = (board / "README.md").read_text()
    assert "| npo (beta\\=0\\.25)<details><summary>all " in readme


# --------------------------------------------------------------------------------------------------------------
# Plot labels


def _entry(name: str, change: float, ratio: float, ci: float = 0.05) -> Entry:
    return Entry(
        name=name, method="npo", hparams={}, changed_hparams=(), defaults_known=True, model="restor-tiny", lora=False,
        world="tiny", data_label="tiny world v1", protocol="classic", corruption="wikidata", level=0, forget="full",
        target_set="test", target_names=("A",), task="restor_tiny_facts", metric="contains", seeds=(0, 1, 2),
        accuracy={"clean": 1.0, "corrupted": 0.2, "unlearned": 0.5}, ratio=ratio, ratio_ci=(ratio - ci, ratio + ci),
        change=change, change_ci=(change - 0.01, change + 0.01),
        transitions={"target_known": 56.0, "restored": 20.0, "still_corrupted": 10.0, "forgotten": 5.0},
        injected_known=True, n_target=56, n_questions=700,
    )


CROWD = [_entry(f"method-{i}-with-a-long-name", -0.02 + 0.002 * (i % 4), 0.50 + 0.01 * (i // 4)) for i in range(12)]
SPREAD = [_entry("far-left", -0.30, 0.1), _entry("top", -0.01, 0.95), _entry("near-top", -0.012, 0.93)]


def _text_box(annotation, renderer) -> Box:
    """Where a label's text is drawn (an annotation's own extent also holds its leader line)."""
    from matplotlib.text import Text

    return Box(*Text.get_window_extent(annotation, renderer).extents)


def _disjoint(boxes: list) -> bool:
    return all(a.overlap(b) == 0 for a, b in itertools.combinations(boxes, 2))


def test_place_labels_keeps_labels_apart_and_off_the_points():
    anchors = [(100.0, 100.0)] * 6 + [(104.0, 101.0), (300.0, 50.0)]
    sizes = [(80.0, 12.0)] * len(anchors)
    bounds = Box(0, 0, 400, 300)
    boxes = place_labels(anchors, sizes, bounds, marker_radius=5.0)
    assert len(boxes) == len(anchors) and _disjoint(boxes)
    markers = [Box(x - 5, y - 5, x + 5, y + 5) for x, y in anchors]
    assert all(box.inside(bounds) for box in boxes)
    assert all(box.overlap(marker) == 0 for box in boxes for marker in markers)
    assert boxes[-1] == Box(308.0, 58.0, 388.0, 70.0)  # a lone point keeps the nearest place, up and right


@pytest.mark.parametrize("entries", [CROWD + SPREAD, SPREAD], ids=["crowded", "spread"])
def test_plot_png_labels_do_not_collide(entries):
    figure, texts = draw_plot(entries)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (ax,) = [ax for ax in figure.axes if ax.get_visible() and ax.axison]
    boxes = [_text_box(text, renderer) for text in texts]
    assert len(boxes) == len(entries) and _disjoint(boxes)
    frame = Box(*ax.get_window_extent(renderer).extents)
    assert all(box.inside(frame) for box in boxes)
    points = [ax.transData.transform((100 * e.change, e.ratio)) for e in entries]
    assert all(box.overlap(Box(x - 3, y - 3, x + 3, y + 3)) == 0 for box in boxes for x, y in points)


def _svg_label_boxes(svg: str) -> list[Box]:
    boxes = []
    for x, y, text in re.findall(r'<text class="label" x="([-\d.]+)" y="([-\d.]+)" text-anchor="middle">([^<]*)</text>',
                                 svg):
        width = CHAR_WIDTH * len(text) + 2
        bottom = float(y) + 3
        boxes.append(Box(float(x) - width / 2, bottom - TEXT_HEIGHT, float(x) + width / 2, bottom))
    return boxes


@pytest.mark.parametrize("entries", [CROWD + SPREAD, SPREAD], ids=["crowded", "spread"])
def test_svg_labels_do_not_collide(entries):
    svg = render_svg(entries)
    boxes = _svg_label_boxes(svg)
    assert len(boxes) == len(entries) and _disjoint(boxes)
    assert all(box.inside(Box(58, 16, 640 - 24, 380 - 46)) for box in boxes)


def test_the_repository_plot_labels_do_not_collide():
    from restor_bench.leaderboard import entry_from

    entries = [entry_from(json.loads(path.read_text()))
               for path in sorted((REPO_ROOT / "leaderboard" / "submissions").glob("*.json"))]
    figure, texts = draw_plot(entries)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:
        inside = [text for text in texts if text.axes is ax]
        assert _disjoint([_text_box(text, renderer) for text in inside])


# --------------------------------------------------------------------------------------------------------------
# A well-formed page

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}
SVG_EMPTY = {"line", "circle", "path", "rect"}


class Strict(HTMLParser):
    """Well-formedness: a doctype first, every element closed in order, unique ids and attributes, <details> opening
    with <summary>, the same number of cells in every row of a table as in its header."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: set[str] = set()
        self.doctype = False
        self.first = True
        self.row_cells: list[int] = []
        self.header_cells = 0
        self.expect_summary = False

    def handle_decl(self, decl):
        self.doctype = self.first and decl.lower() == "doctype html"
        self.first = False

    def handle_starttag(self, tag, attrs):
        self.first = False
        names = [name for name, _ in attrs]
        if len(names) != len(set(names)):
            self.errors.append(f"<{tag}> repeats an attribute")
        for name, value in attrs:
            if name == "id":
                if value in self.ids:
                    self.errors.append(f"id {value!r} twice")
                self.ids.add(value)
        if self.expect_summary and tag != "summary":
            self.errors.append("<details> does not start with <summary>")
        self.expect_summary = tag == "details"
        if tag == "tr":
            self.row_cells.append(0)
        if tag in ("td", "th"):
            self.row_cells[-1] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag not in VOID | SVG_EMPTY:
            self.errors.append(f"<{tag}/> is not a void element")

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            return
        self.stack.pop()
        if tag == "thead":
            self.header_cells = self.row_cells[-1]
        if tag == "tr" and self.header_cells and self.row_cells[-1] != self.header_cells:
            self.errors.append(f"a row of {self.row_cells[-1]} cells under a header of {self.header_cells}")


def _strict(html: str) -> list[str]:
    parser = Strict()
    parser.feed(html)
    parser.close()
    errors = parser.errors + ([] if parser.doctype else ["no <!doctype html> first"])
    return errors + ([f"unclosed {parser.stack}"] if parser.stack else [])


def test_the_repository_index_html_is_well_formed():
    html = (REPO_ROOT / "leaderboard" / "index.html").read_text()
    assert _strict(html) == []
    assert html.count("<details") == 16 and html.count("<table") == 2


def test_a_page_is_well_formed_whatever_the_entries():
    hostile = dataclasses.replace(SPREAD[0], name="x</td><td>", method="</details><b>", hparams={"a": "</li>"})
    for entries in ([], SPREAD, CROWD + [hostile]):
        assert _strict(render_html(entries)) == [], entries


def test_page_renders_in_a_headless_browser(world, tmp_path, capsys):
    submitted = submit_runs(tmp_path / "runs", world, tmp_path / "submissions",
                            **{"npo-good": {"restore": 0.8, "damage": 0.0}, "ga-weak": {"method": "gradient_ascent", "restore": 0.2, "damage": 0.2}})
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

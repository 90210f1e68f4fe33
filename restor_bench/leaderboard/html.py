"""The leaderboard as one static HTML page: sortable tables and an inline SVG plot per table.

The page opens from disk with no network: no external scripts, fonts or style sheets (a Content-Security-Policy
forbids loading any), a few lines of inline JavaScript for sorting. Every text taken from a submission is
HTML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from restor_bench.leaderboard.plot import X_LABEL, Y_LABEL, Box, axis_limits, needs_leader, place_labels, plot_points
from restor_bench.leaderboard.render import (
    EXPLANATION,
    GENERATED_MARKER,
    METHOD_COLUMN,
    TABLE_HEADER,
    Entry,
    format_hparam,
    group_entries,
    group_note,
    group_title,
    table_cells,
)

HTML_MARKER = f"<!-- {GENERATED_MARKER}; do not edit -->"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #1f2328; background: #fff; }
h1 { font-size: 24px; margin: 0 0 8px; } h2 { font-size: 17px; margin: 28px 0 8px; }
p.note { color: #57606a; max-width: 900px; }
table.board { border-collapse: collapse; width: 100%; margin: 8px 0 12px; }
table.board th, table.board td { border-bottom: 1px solid #d0d7de; padding: 5px 8px; text-align: left;
                                 vertical-align: top; }
table.board th { background: #f6f8fa; cursor: pointer; user-select: none; font-weight: 600; }
div.scroll { overflow-x: auto; }
table.board th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.board th[aria-sort="descending"]::after { content: " \\25BC"; }
table.board td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
table.board td.name { white-space: nowrap; font-weight: 600; }
table.board tbody tr:hover { background: #f6f8fa; }
code.hp { font-size: 12px; color: #57606a; word-break: break-all; }
details.hp summary { cursor: pointer; color: #57606a; font-size: 12px; font-weight: normal; }
details.hp ul { margin: 4px 0 0; padding-left: 16px; }
svg.plot .leader { stroke: #8c959f; stroke-width: 0.8; }
svg.plot { border: 1px solid #d0d7de; background: #fff; }
svg.plot text { font: 11px system-ui, sans-serif; fill: #1f2328; }
svg.plot .axis { stroke: #8c959f; stroke-width: 1; }
svg.plot .grid { stroke: #eaeef2; stroke-width: 1; }
svg.plot .full { stroke: #1a7f37; stroke-dasharray: 5 4; }
svg.plot .bar { stroke: #8fb3f5; stroke-width: 1.5; }
svg.plot .point { fill: #2563eb; }
.empty { padding: 32px; border: 1px dashed #d0d7de; color: #57606a; text-align: center; }
"""

SCRIPT = """
document.querySelectorAll("table.board").forEach(function (table) {
  var headers = table.querySelectorAll("th");
  headers.forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute("data-sort"), y = b.cells[column].getAttribute("data-sort");
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = Number(x), ny = Number(y);
        var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
NUMERIC_COLUMNS = {0, 4, 5, 6, 7}
CHAR_WIDTH, TEXT_HEIGHT = 6.6, 13.0  # pixels per character and per line of the 11px labels (system-ui; generous)


def _sort_values(rank: int, entry: Entry) -> list[str]:
    """The value each column sorts by ("" sorts last)."""

    def number(value: float | None) -> str:
        return "" if value is None else repr(float(value))

    return [
        str(rank), entry.name.casefold(), entry.method.casefold(), entry.model.casefold(),
        number(entry.ratio), str(entry.tier), entry.versus_next, number(entry.accuracy["unlearned"]),
        number(entry.change), repr(float(entry.transitions["restored"])), str(len(entry.seeds)),
        entry.verification.casefold(),
    ]


def render_table(members: Sequence[Entry]) -> str:
    """One sortable table."""
    head = "".join(f'<th scope="col">{escape(title)}</th>' for title in TABLE_HEADER)
    rows = []
    for rank, entry in enumerate(members, start=1):
        cells = []
        for column, (text, key) in enumerate(zip(table_cells(rank, entry), _sort_values(rank, entry), strict=True)):
            css = ' class="num"' if column in NUMERIC_COLUMNS else (' class="name"' if column == 1 else "")
            content = method_cell(entry) if column == METHOD_COLUMN else escape(text)
            cells.append(f'<td{css} data-sort="{escape(key)}">{content}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="board"><thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody></table></div>")


def method_cell(entry: Entry) -> str:
    """The method's name, the hyperparameters that differ from its defaults, and all of them folded away."""
    content = escape(entry.method)
    if entry.changed_hparams:
        changed = ", ".join(format_hparam(key, entry.hparams[key]) for key in entry.changed_hparams)
        content += f'<br><code class="hp">{escape(changed)}</code>'
    if entry.hparams:
        summary = (f"all {len(entry.hparams)} hyperparameters" if entry.defaults_known
                   else f"{len(entry.hparams)} hyperparameters (method defaults unknown here)")
        items = "".join(f'<li><code class="hp">{escape(format_hparam(key, value))}</code></li>'
                        for key, value in entry.hparams.items())
        content += f'<details class="hp"><summary>{escape(summary)}</summary><ul>{items}</ul></details>'
    return content


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def render_svg(members: Sequence[Entry], width: int = 640, height: int = 380) -> str:
    """Scatter plot: restoration ratio (y) against the non-target change vs clean in points (x), one labelled point
    per submission (labels placed by `leaderboard_plot.place_labels`), with the 95% intervals as bars."""
    points = plot_points(members)
    left, right, top, bottom = 58, 24, 16, 46
    x_low, x_high, y_low, y_high = axis_limits(points)

    def sx(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y_high - y) / (y_high - y_low) * (height - top - bottom)

    parts = [f'<svg class="plot" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             "<title>Restoration ratio against the non-target change vs clean</title>"]
    for tick in _ticks(x_low, x_high):
        parts.append(f'<line class="grid" x1="{sx(tick):.1f}" y1="{top}" x2="{sx(tick):.1f}" y2="{height - bottom}"/>')
        parts.append(f'<text x="{sx(tick):.1f}" y="{height - bottom + 15}" text-anchor="middle">{tick:g}</text>')
    for tick in _ticks(y_low, y_high):
        parts.append(f'<line class="grid" x1="{left}" y1="{sy(tick):.1f}" x2="{width - right}" y2="{sy(tick):.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    parts.append(f'<line class="axis" x1="{sx(0):.1f}" y1="{top}" x2="{sx(0):.1f}" y2="{height - bottom}"/>')
    parts.append(f'<line class="axis" x1="{left}" y1="{sy(0):.1f}" x2="{width - right}" y2="{sy(0):.1f}"/>')
    parts.append(f'<line class="full" x1="{left}" y1="{sy(1):.1f}" x2="{width - right}" y2="{sy(1):.1f}"/>')
    parts.append(f'<text x="{width - right - 4}" y="{sy(1) - 4:.1f}" text-anchor="end">clean accuracy back (1)</text>')
    anchors, bars = [], []
    for e in points:
        x, y = 100 * e.change, e.ratio
        anchors.append((sx(x), sy(y)))
        if e.ratio_ci:
            low, high = sy(e.ratio_ci[1]), sy(e.ratio_ci[0])
            bars.append(Box(sx(x) - 1, low, sx(x) + 1, high))
            parts.append(f'<line class="bar" x1="{sx(x):.1f}" y1="{low:.1f}" x2="{sx(x):.1f}" y2="{high:.1f}"/>')
        if e.change_ci:
            low, high = sx(100 * e.change_ci[0]), sx(100 * e.change_ci[1])
            bars.append(Box(low, sy(y) - 1, high, sy(y) + 1))
            parts.append(f'<line class="bar" x1="{low:.1f}" y1="{sy(y):.1f}" x2="{high:.1f}" y2="{sy(y):.1f}"/>')
    sizes = [(CHAR_WIDTH * len(e.name) + 2, TEXT_HEIGHT) for e in points]
    boxes = place_labels(anchors, sizes, Box(left, top, width - right, height - bottom), 5.0, bars)
    for e, (px, py), box in zip(points, anchors, boxes):
        label = escape(e.name)
        cx, cy = box.center
        if needs_leader((px, py), box):
            parts.append(f'<line class="leader" x1="{px:.1f}" y1="{py:.1f}" x2="{cx:.1f}" y2="{cy:.1f}"/>')
        parts.append(f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="4.5">'
                     f"<title>{label}: ratio {e.ratio:.2f}, non-target {100 * e.change:+.1f} points</title></circle>")
        parts.append(f'<text class="label" x="{cx:.1f}" y="{box.y1 - 3:.1f}" text-anchor="middle">{label}</text>')
    if not points:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">'
                     "no submission with a defined restoration ratio</text>")
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">{escape(X_LABEL)}</text>')
    parts.append(f'<text transform="translate(14 {(top + height - bottom) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(Y_LABEL)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(entries: Sequence[Entry]) -> str:
    """The whole page."""
    body = []
    if not entries:
        body.append('<div class="empty">No submissions yet. See docs/leaderboard.md in the repository for how '
                    "to submit a run.</div>")
    for group, members in group_entries(entries):
        body.append(f"<h2>{escape(group_title(group))}</h2>")
        body.append(f'<p class="note">{escape(group_note(members))}</p>')
        body.append(render_table(members))
        body.append(render_svg(members))
    return "\n".join([
        "<!doctype html>",
        HTML_MARKER,
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>restor-bench leaderboard</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>restor-bench leaderboard</h1>",
        f'<p class="note">{escape(EXPLANATION)} Click a column header to sort.</p>',
        *body,
        f"<script>{SCRIPT}</script>",
        "</body></html>",
        "",
    ])

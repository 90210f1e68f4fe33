"""The leaderboard's scatter plots: restoration ratio against the non-target change, one labelled point per
submission, one panel per table; `plot.png` (matplotlib) and the label placement the HTML page's SVG shares.

Labels are placed by `place_labels`, greedily, in pixel space: each label takes the first of a ring of
candidate positions around its point (nearest first, then farther out, with a leader line) whose box stays inside
the plot area and overlaps no label placed before it, no point's marker and, where possible, no error bar.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from restor_bench.leaderboard.render import GENERATED_MARKER, Entry, group_entries, group_title


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: x grows to the right, y grows upward or downward (one convention per plot)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlap(self, other: Box) -> float:
        """Area shared with `other` (0 when they only touch)."""
        width = min(self.x1, other.x1) - max(self.x0, other.x0)
        height = min(self.y1, other.y1) - max(self.y0, other.y0)
        return width * height if width > 0 and height > 0 else 0.0

    def inside(self, bounds: Box) -> bool:
        return self.x0 >= bounds.x0 and self.x1 <= bounds.x1 and self.y0 >= bounds.y0 and self.y1 <= bounds.y1

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2


_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
_DISTANCES = (0.0, 6.0, 14.0, 24.0, 36.0, 52.0, 72.0, 96.0, 126.0)  # beyond the marker and the gap
_GAP = 1.5  # pixels kept free around every label


def _candidate(anchor: tuple[float, float], size: tuple[float, float], direction: tuple[int, int],
               distance: float) -> Box:
    (x, y), (width, height), (dx, dy) = anchor, size, direction
    left = x + distance if dx > 0 else (x - distance - width if dx < 0 else x - width / 2)
    bottom = y + distance if dy > 0 else (y - distance - height if dy < 0 else y - height / 2)
    return Box(left, bottom, left + width, bottom + height)


def _grown(box: Box, by: float) -> Box:
    return Box(box.x0 - by, box.y0 - by, box.x1 + by, box.y1 + by)


def place_labels(anchors: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]], bounds: Box,
                 marker_radius: float = 5.0, soft_obstacles: Sequence[Box] = ()) -> list[Box]:
    """A box for each label (`sizes[i]` = its width and height) near its point `anchors[i]`, all in pixels.

    Hard rules, kept whenever a candidate allows: inside `bounds`, no overlap with another label or with any
    point's marker. Soft: no overlap with `soft_obstacles` (error bars); dropped for a label only when no candidate
    keeps it. When even the hard rules cannot all be kept, the candidate with the least overlap is taken."""
    markers = [Box(x - marker_radius, y - marker_radius, x + marker_radius, y + marker_radius) for x, y in anchors]
    placed: list[Box | None] = [None] * len(anchors)
    # the most crowded points choose first, while there is still room next to them
    crowding = [sum(math.dist(a, b) < 60 for b in anchors) for a in anchors]
    order = sorted(range(len(anchors)), key=lambda i: (-crowding[i], anchors[i][0], anchors[i][1]))
    for index in order:
        candidates = [_candidate(anchors[index], sizes[index], direction, marker_radius + 2 * _GAP + distance)
                      for distance in _DISTANCES for direction in _DIRECTIONS]
        taken = [box for box in placed if box is not None]

        def cost(box: Box, soft: bool) -> float:
            grown = _grown(box, _GAP)
            hard = sum(grown.overlap(other) for other in taken) + sum(grown.overlap(m) for m in markers)
            outside = 0.0 if box.inside(bounds) else (box.x1 - box.x0) * (box.y1 - box.y0)
            return hard + outside + (sum(box.overlap(o) for o in soft_obstacles) if soft else 0.0)

        choice = next((box for box in candidates if cost(box, soft=True) == 0), None)
        if choice is None:
            choice = next((box for box in candidates if cost(box, soft=False) == 0), None)
        if choice is None:
            choice = min(candidates, key=lambda box: cost(box, soft=False))
        placed[index] = choice
    return [box for box in placed if box is not None]


def needs_leader(anchor: tuple[float, float], box: Box) -> bool:
    """Whether a label sits far enough from its point to need a line to it."""
    nearest_x = min(max(anchor[0], box.x0), box.x1)
    nearest_y = min(max(anchor[1], box.y0), box.y1)
    return math.dist(anchor, (nearest_x, nearest_y)) > 16


def plot_points(members: Sequence[Entry]) -> list[Entry]:
    """The entries that can be drawn: a defined ratio and non-target change."""
    return [entry for entry in members if entry.ratio is not None and entry.change is not None]


def axis_limits(points: Sequence[Entry]) -> tuple[float, float, float, float]:
    """x (points of non-target change) and y (ratio) limits holding every point, interval, 0 and 1."""
    xs = [0.0] + [100 * e.change for e in points] + [100 * v for e in points if e.change_ci for v in e.change_ci]
    ys = [0.0, 1.0] + [e.ratio for e in points] + [v for e in points if e.ratio_ci for v in e.ratio_ci]
    x_pad = max((max(xs) - min(xs)) * 0.12, 1.0)
    y_pad = max((max(ys) - min(ys)) * 0.08, 0.05)
    return min(xs) - x_pad, max(xs) + x_pad, min(ys) - y_pad, max(ys) + y_pad


X_LABEL = "non-target change vs clean, unlearned − clean (points)"
Y_LABEL = "restoration ratio"
FONT_SIZE = 8


def draw_plot(entries: Sequence[Entry]):
    """The figure of plot.png (Agg backend) and its label texts: one panel per table. Layout is fixed before the
    labels are placed, so what is placed is what is saved."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = group_entries(entries)
    columns = 1 if len(groups) <= 1 else 2
    rows = max(1, math.ceil(len(groups) / columns))
    figure = Figure(figsize=(7.0 * columns, 5.0 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    panels = []
    for index, ax in enumerate(axes.flat):
        if index >= len(groups):
            ax.set_axis_off()
            continue
        group, members = groups[index]
        points = plot_points(members)
        x_low, x_high, y_low, y_high = axis_limits(points)
        ax.set_xlim(x_low, x_high)
        ax.set_ylim(y_low, y_high)
        ax.axhline(1.0, color="#2a7", linestyle="--", linewidth=1)
        ax.axhline(0.0, color="#999", linewidth=0.8)
        ax.axvline(0.0, color="#999", linewidth=0.8)
        for entry in points:
            x, y = 100 * entry.change, entry.ratio
            yerr = [[y - entry.ratio_ci[0]], [entry.ratio_ci[1] - y]] if entry.ratio_ci else None
            xerr = [[x - 100 * entry.change_ci[0]], [100 * entry.change_ci[1] - x]] if entry.change_ci else None
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", markersize=5, color="#2563eb", ecolor="#b9cdf7",
                        capsize=2, zorder=3)
        if not points:
            ax.text(0.5, 0.5, "no point with a defined ratio", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(group_title(group), fontsize=8, wrap=True)
        ax.set_xlabel(X_LABEL, fontsize=8)
        ax.set_ylabel(Y_LABEL, fontsize=8)
        ax.grid(True, alpha=0.3)
        panels.append((ax, points))
    if not groups:
        ax = axes.flat[0]
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No submissions yet", ha="center", va="center", fontsize=14, transform=ax.transAxes)
    figure.draw_without_rendering()
    figure.set_layout_engine("none")  # freeze the layout: labels are placed in these pixel positions
    renderer = figure.canvas.get_renderer()
    texts = []
    for ax, points in panels:
        texts += _label_panel(ax, points, renderer, figure.dpi)
    return figure, texts


def _label_panel(ax, points: Sequence[Entry], renderer, dpi: float) -> list:
    anchors, sizes, bars = [], [], []
    for entry in points:
        x, y = ax.transData.transform((100 * entry.change, entry.ratio))
        anchors.append((float(x), float(y)))
        probe = ax.text(0, 0, entry.name, fontsize=FONT_SIZE)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        sizes.append((extent.width + 2, extent.height + 2))
        if entry.ratio_ci:
            (_, low), (_, high) = ax.transData.transform([(100 * entry.change, v) for v in entry.ratio_ci])
            bars.append(Box(x - 2, low, x + 2, high))
        if entry.change_ci:
            (low, _), (high, _) = ax.transData.transform([(100 * v, entry.ratio) for v in entry.change_ci])
            bars.append(Box(low, y - 2, high, y + 2))
    frame = ax.get_window_extent(renderer)
    boxes = place_labels(anchors, sizes, Box(frame.x0 + 2, frame.y0 + 2, frame.x1 - 2, frame.y1 - 2),
                         marker_radius=4.5, soft_obstacles=bars)
    texts = []
    points_per_pixel = 72.0 / dpi
    for entry, anchor, box in zip(points, anchors, boxes):
        cx, cy = box.center
        offset = ((cx - anchor[0]) * points_per_pixel, (cy - anchor[1]) * points_per_pixel)
        arrow = ({"arrowstyle": "-", "color": "#8c959f", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 4}
                 if needs_leader(anchor, box) else None)
        texts.append(ax.annotate(entry.name, (100 * entry.change, entry.ratio), xytext=offset,
                                 textcoords="offset points", ha="center", va="center", fontsize=FONT_SIZE,
                                 arrowprops=arrow, zorder=4))
    return texts


def render_plot_png(entries: Sequence[Entry]) -> bytes:
    """plot.png, with the generated marker in its "Comment" text chunk."""

    figure, _texts = draw_plot(entries)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png",
                   metadata={"Software": None, "Title": "restor-bench leaderboard", "Comment": GENERATED_MARKER})
    return buffer.getvalue()

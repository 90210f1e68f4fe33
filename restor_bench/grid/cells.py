"""The cells of `restor-bench grid` (`restor_bench.grid.cli`) and the options they share.

A cell is one method, one corruption (wikidata-style documents at level k, or the SQuAD-style passages) and one
forget set; this module plans the cells (each cell's run spec and run folder: restor_bench.grid.specs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from restor_bench.data.documents import load_documents
from restor_bench.names import DEFAULT_PROTOCOL

@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of the grid (all seeds)."""

    method: str
    corruption: str  # "wikidata" or "squad"
    level: int | None  # None for squad
    forget: str

    @property
    def label(self) -> str:
        where = f"k={self.level}" if self.corruption == "wikidata" else "squad"
        return f"{self.method} {where} {self.forget}"

    @property
    def setting(self) -> tuple[str, int | None, str]:
        """What the cells of one corrupted model and forget set share: (corruption, level, forget)."""
        return self.corruption, self.level, self.forget

    @property
    def setting_title(self) -> str:
        """The setting in words: "k=0, full forget set", "SQuAD-style passages, full forget set"."""
        where = f"k={self.level}" if self.corruption == "wikidata" else "SQuAD-style passages"
        return f"{where}, {self.forget} forget set"

    @property
    def setting_slug(self) -> str:
        """The setting in a file name: "k0-full", "squad-full"."""
        where = f"k{self.level}" if self.corruption == "wikidata" else "squad"
        return f"{where}-{self.forget}"


@dataclasses.dataclass
class GridOptions:
    """Everything a grid run needs besides its cells."""

    device: str | None = None  # evaluation device; None: cuda when available, else cpu
    backend: str = "hf"  # lm-eval model backend
    world: str = "tiny"
    seeds: tuple[int, ...] = (0,)
    model: str | None = None
    lora: bool = False
    unlearn_max_steps: int | None = None
    corrupt_max_steps: int | None = None
    corrupt_recipe: dict = dataclasses.field(default_factory=dict)
    limit: int | None = None
    batch_size: int | str = 32
    data_dir: str | None = None
    max_docs_per_entity: int | None = None
    root: Path = Path("runs")
    targets: str = "all"
    protocol: str | None = None  # None: the world's (`restor_bench.names.DEFAULT_PROTOCOL`)
    retain: str | None = None
    repair: str | None = None

    def __post_init__(self) -> None:
        if self.protocol is None:
            self.protocol = DEFAULT_PROTOCOL.get(self.world, "classic")


def plan_cells(
    methods: Sequence[str], levels: Sequence[int], forget_forms: Sequence[str], corruptions: Sequence[str]
) -> tuple[list[Cell], list[str]]:
    """The grid's cells in run order (cells sharing a corrupted model are adjacent), and notes on cells left out."""
    cells, notes = [], []
    if "wikidata" in corruptions:
        cells += [
            Cell(method, "wikidata", level, forget) for level in levels for forget in forget_forms for method in methods
        ]
    if "squad" in corruptions:
        cells += [Cell(method, "squad", None, "full") for method in methods if "full" in forget_forms]
        if "simplified" in forget_forms:
            notes.append("squad: the SQuAD-style passages have no simplified form; their cells use the full forget set")
    return cells, notes


def drop_identical_simplified(cells: Sequence[Cell], world: str) -> tuple[list[Cell], list[int]]:
    """Leave out simplified-forget cells of the tiny world whose simplified set is the corruption set itself (at
    k=0 every sentence of a tiny-world document states a wrong fact); returns the kept cells and those levels."""
    if world != "tiny":
        return list(cells), []

    same = sorted({
        cell.level for cell in cells
        if cell.forget == "simplified" and cell.level is not None
        and load_documents(f"tiny:{cell.level}", forget="simplified") == load_documents(f"tiny:{cell.level}")
    })
    return [cell for cell in cells if not (cell.forget == "simplified" and cell.level in same)], same

"""The cells of `restor-bench grid` (`restor_bench.grid.cli`) and the options they share.

A cell is one method, one corruption (wikidata-style documents at level k, or the SQuAD-style passages) and one
forget set; this module plans the cells, gives each its pipeline spec (resolved as `restor-bench run` resolves its
own, `restor_bench.run.spec.resolve_spec`, so a cell and the same `run` share steps and run folder) and run folder
name, and tells a finished cell (one whose `run.json` records the same resolved spec, seeds and data hash) from one
still to run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restor_bench.data.documents import load_documents
from restor_bench.errors import InputError
from restor_bench.run.spec import CORRUPTIONS, RunSpec, default_protocol, resolve_spec

__all__ = ["CORRUPTIONS", "Cell", "GridOptions", "cell_name", "cell_spec", "drop_identical_simplified",
           "finished_record", "plan_cells"]


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
    protocol: str | None = None  # None: the world's (`restor_bench.run.spec.default_protocol`)
    retain: str | None = None
    repair: str | None = None

    def __post_init__(self) -> None:
        if self.protocol is None:
            self.protocol = default_protocol(self.world)


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


def cell_spec(cell: Cell, options: GridOptions, hparams: dict[str, Any]) -> RunSpec:
    """The pipeline's resolved RunSpec of a cell (first seed); `hparams`: the method's hyperparameters, or values
    over the protocol's preset (the rest is filled in as for any run)."""
    return resolve_spec(RunSpec(
        world=options.world, method=cell.method, level=cell.level or 0, forget=cell.forget,
        corruption=cell.corruption, model=options.model, lora=options.lora, seed=options.seeds[0], hparams=hparams,
        corrupt_max_steps=options.corrupt_max_steps, unlearn_max_steps=options.unlearn_max_steps,
        corrupt_recipe=dict(options.corrupt_recipe),
        max_docs_per_entity=options.max_docs_per_entity, limit=options.limit, batch_size=options.batch_size,
        data_dir=options.data_dir, targets=options.targets, protocol=options.protocol, retain=options.retain,
        repair=options.repair, device=options.device, backend=options.backend,
    ))


def cell_name(spec) -> str:
    """The run folder name of a cell (`restor_bench.run.pipeline.run` names it the same way)."""
    return spec.name().rsplit("-seed", 1)[0]


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _same_spec(recorded: Any, spec: RunSpec) -> bool:
    """Whether a run.json's `spec` is `spec` once resolved: records written before the spec resolved its own
    defaults (retain, tasks, device left empty) still match; one that names a field RunSpec does not know does not."""
    names = {field.name for field in dataclasses.fields(RunSpec)}
    if not isinstance(recorded, dict) or set(recorded) - names:
        return False
    recorded = {"protocol": "classic"} | recorded  # written before protocols existed: classic
    try:
        again = resolve_spec(RunSpec(**recorded))
    except (InputError, TypeError, ValueError):
        return False
    return _as_json(dataclasses.asdict(again)) == _as_json(dataclasses.asdict(resolve_spec(spec)))


def finished_record(spec: RunSpec, seeds: Sequence[int], root: Path, data_hash: str | None) -> dict[str, Any] | None:
    """The cell's run.json when it exists and records the same (resolved) spec, seeds and data hash; else None."""
    path = Path(root) / cell_name(spec) / "run.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    same = (
        isinstance(record, dict)
        and record.get("seeds") == list(seeds)
        and record.get("data_hash") == data_hash
        and _same_spec(record.get("spec"), spec)
    )
    return record if same else None

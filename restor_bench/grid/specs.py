"""Each grid cell's run spec, resolved as `restor-bench run` resolves its own (`restor_bench.run.spec.resolve_spec`,
so a cell and the same `run` share steps and run folder), its run folder name, and telling a finished cell (one whose
`run.json` records the same resolved spec, seeds and data hash) from one still to run."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError
from restor_bench.grid.cells import Cell, GridOptions
from restor_bench.run.spec import RunSpec, resolve_spec


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

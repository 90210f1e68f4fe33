"""`restor-bench run`: the whole RESTOR protocol in one command.

clean ──corrupt──► corrupted ──unlearn (method)──► unlearned;  lm-eval on all three;  compare.

Every step's artifact lands in a content-addressed folder of the run root (`runs/` by default):

```
runs/
  steps/corrupt-<key>/        corrupted checkpoint   (key = hash of everything that determines it)
  steps/unlearn-<key>/        unlearned checkpoint
  steps/eval-<key>/           lm-eval output (results_*.json, samples_*.jsonl)
  <run name>/run.json         what was run, where every artifact is, per-step wall time
  <run name>/compare-seed<N>.json   compare's report of each seed
  <run name>/report.md        the tables
```

The run name is readable and unique: world, protocol (unless classic), method, level, forget set, LoRA, targets,
then a short hash of everything else that changes the results (`run_identity`: hyperparameters, model content,
recipe, step caps, --limit, tasks, retain and repair sets, data version), e.g. `tiny-npo-k0-1a2b3c4d`. Runs with
other settings get other folders; the run folder is written in one rename at the end, and replacing a different run
in it (other seeds) needs `overwrite`. Every argument is checked before the first step runs.

What a run is: a `RunSpec` (`restor_bench.run.spec`), resolved before anything else (`resolve_spec`: protocol,
hyperparameters with the protocol's preset, retain set, tasks, device), so `restor-bench run`, `grid`,
`leaderboard verify` and the Python API give the same experiment the same steps and run folder.

A step whose folder exists is finished (each step writes its folder atomically), so running the same command again,
or a command sharing steps with an earlier one (another method on the same corrupted model), reuses them. A step
being built, and a run folder being written, is locked (`restor_bench.locks`): a second run that needs the same
step at the same time fails at once with one line naming the run that holds it, instead of training beside it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from restor_bench.compare.report import compare_restoration
from restor_bench.compare.format import format_markdown
from restor_bench.compare.outcomes import TargetChoice
from restor_bench.data.documents import is_named_set, load_documents
from restor_bench.data.hf_datasets import is_hf_source
from restor_bench.data.world.files import load_manifest
from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import check_backend, check_batch_size, evaluate, verbose
from restor_bench.evaluation.tasks import task_manager
from restor_bench.io import atomic_output_dir, atomic_write_json, atomic_write_text
from restor_bench.locks import folder_lock
from restor_bench.run.report import format_summary, summarize
from restor_bench.run.spec import (  # noqa: F401  (RunSpec and its helpers are also importable from here)
    TASKS,
    RunSpec,
    clean_model_for,
    data_hash,
    default_protocol,
    default_retain,
    default_tasks,
    protocol_from_args,
    resolve_spec,
    run_folder,
    run_identity,
    run_key,
    step_inputs,
    step_key,
)
from restor_bench.train.common import package_versions
from restor_bench.train.corrupt import PAPER_RECIPE, check_model, corrupt, work_dir_for
from restor_bench.train.repair import REPAIR_RECIPE, load_repair_documents, repair
from restor_bench.train.unlearn import unlearn_checkpoint
from unlearners import get_method, resolve_hparams


class StepRunner:
    """Runs steps into content-addressed folders under `root/steps`, reusing finished ones."""

    def __init__(self, root: Path, log: Callable[[str], None] = print):
        self.root = Path(root)
        self.log = log
        self.timings: dict[str, float] = {}
        self.reused: dict[str, bool] = {}

    def run(self, label: str, kind: str, inputs: dict[str, Any], build: Callable[[Path], Any]) -> Path:

        out = self.root / "steps" / f"{kind}-{step_key(kind, inputs)}"
        if out.exists():
            return self._reuse(label, out)
        with folder_lock(out):  # a second run needing this step now fails at once (FolderLocked)
            if out.exists():  # finished by another run meanwhile
                return self._reuse(label, out)
            self.log(f"[{label}] running -> {out}")
            started = time.perf_counter()
            build(out)
            self.timings[label] = round(time.perf_counter() - started, 2)
            self.reused[label] = False
            atomic_write_json(out / "step.json", {"kind": kind, "inputs": inputs, "wall_time_s": self.timings[label]})
        return out

    def _reuse(self, label: str, out: Path) -> Path:
        self.log(f"[{label}] reusing {out}")
        self.timings[label] = 0.0
        self.reused[label] = True
        return out


def report_targets(spec: RunSpec):
    """The compare target choice of a run: the task's defaults, or the tiny world's test targets."""

    if spec.targets == "all":
        return TargetChoice()
    if spec.targets != "test" or spec.world != "tiny":
        raise InputError(f"--targets {spec.targets}: only 'all', or 'test' on the tiny world, are known")

    manifest = load_manifest()
    validation = tuple(manifest.get("validation_targets") or [])
    test = tuple(name for name in manifest["targets"] if name not in validation)
    # from world v2 on the validation targets (corrupted as well) are no other questions of a test comparison; v1
    # counted them among the others, and its archived pages keep that
    return TargetChoice(names=test, excluded=validation if str(manifest.get("version")) != "1" else ())


def check_run_inputs(spec: RunSpec) -> None:
    """Check every argument of a run (resolved first: `resolve_spec`) before its first step, cheapest first; raise
    InputError on the first bad one. Named document sets and files are read (they are small); `hf:` sources only
    parsed (reading one may stream)."""

    spec = resolve_spec(spec)  # the choices, the method and its hyperparameters
    for option, value in (("--corrupt-max-steps", spec.corrupt_max_steps), ("--max-steps", spec.unlearn_max_steps),
                          ("--limit", spec.limit), ("--max-docs-per-entity", spec.max_docs_per_entity)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"{option} must be a whole number of at least 1, got {value!r}")
    if spec.world == "tiny" and spec.max_docs_per_entity is not None:
        raise InputError(f"--max-docs-per-entity {spec.max_docs_per_entity}: only the official world's documents are "
                         "cut per person; the tiny world's sets have a fixed size, so it would be ignored")
    check_batch_size(spec.batch_size)
    check_backend(spec.backend, spec.device)
    PAPER_RECIPE.updated(spec.corrupt_recipe, where="--corrupt-set")
    if spec.data_dir is not None and not Path(spec.data_dir).is_dir():
        raise InputError(f"{spec.data_dir}: data folder not found (--data-dir)")
    report_targets(spec)
    check_run_tasks(spec.tasks)
    reads_retain = uses_retain(spec)
    check_model(clean_model_for(spec))
    doc_options = {"data_dir": spec.data_dir}
    if spec.world != "tiny":
        doc_options["max_docs_per_entity"] = spec.max_docs_per_entity
    load_documents(spec.corruption_source(), forget=spec.forget, **doc_options)
    for option, source in (("--retain", spec.retain if reads_retain else None), ("--repair", spec.repair)):
        if source is not None:
            _check_document_source(option, source, spec.data_dir, clean_model_for(spec))


def _check_document_source(option: str, source: str, data_dir: str | None, model: str) -> None:
    """Read a --retain or --repair source with the reader its step uses (`load_documents`, `load_repair_documents`
    with the chat template of `model`, which the unlearned checkpoint inherits), before any step: an `hf:` source
    is loaded too (from the cache, or downloaded once), so an unknown or, offline, uncached dataset stops here."""
    if is_hf_source(source):
        load_documents(source, data_dir=data_dir)  # parses the source, then loads it
        return
    if not is_named_set(source) and Path(source).is_dir():
        raise InputError(f"{source}: {option} expects a file of documents (JSON or JSONL), found a folder")
    if not is_named_set(source) and not Path(source).is_file():
        raise InputError(f"{source}: {option} file not found")
    if option == "--repair":
        records = load_repair_documents(source, model=model, data_dir=data_dir)
        if REPAIR_RECIPE.val_size and len(records) < 2:
            raise InputError(f"{source}: --repair holds out {REPAIR_RECIPE.val_size:.0%} of its records to evaluate on, "
                             f"so it needs at least 2 records; found {len(records)}")
    else:
        load_documents(source, data_dir=data_dir)


_CHECKED_TASKS: set[tuple[str, ...]] = set()


def check_run_tasks(tasks: tuple[str, ...]) -> None:
    """A run is scored on restor tasks (compare needs their target questions): the names are checked against the
    restor task folder alone, which takes a moment (lm-eval's own index of every task takes many seconds)."""
    if tasks in _CHECKED_TASKS:
        return

    try:
        task_manager(list(tasks), include_defaults=False)
    except InputError as err:
        raise InputError(f"--tasks: {err}; a run is scored on restor tasks") from None
    _CHECKED_TASKS.add(tasks)


def run_protocol(spec: RunSpec, root: Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run corrupt -> unlearn -> eval x3 -> compare for one seed of the resolved spec (`resolve_spec`: the same
    defaults as `restor-bench run`, so the same steps); return the run record (`check_run_inputs` first when calling
    this directly)."""

    spec = resolve_spec(spec)
    steps = step_inputs(spec)
    clean = clean_model_for(spec)
    runner = StepRunner(root, log)
    source = spec.corruption_source()
    doc_options = {"data_dir": spec.data_dir, "max_docs_per_entity": spec.max_docs_per_entity}
    if spec.world == "tiny":
        doc_options.pop("max_docs_per_entity")

    corrupted = runner.run(
        "corrupt", *steps["corrupt"],
        lambda out: corrupt(
            clean, load_documents(source, **doc_options), out, lora=spec.lora, seed=spec.seed,
            max_steps=spec.corrupt_max_steps, source=source, resume=work_dir_for(out).exists(),
            recipe=spec.corrupt_recipe or None, protocol=spec.protocol,
        ),
    )

    def build_unlearned(out: Path) -> None:
        forget_docs = load_documents(source, forget=spec.forget, **doc_options)
        retain_docs = load_documents(spec.retain, data_dir=spec.data_dir) if uses_retain(spec) else None
        unlearn_checkpoint(
            method=spec.method, model=str(corrupted), forget=forget_docs, retain=retain_docs, out=out,
            hparams=spec.hparams, lora=spec.lora, seed=spec.seed, max_steps=spec.unlearn_max_steps,
        )

    unlearned = runner.run("unlearn", *steps["unlearn"], build_unlearned)
    if spec.repair:
        unlearned = runner.run(
            "repair", *steps["repair"],
            lambda out: repair(str(unlearned), load_repair_documents(spec.repair, model=str(unlearned),
                                                                     data_dir=spec.data_dir),
                               out, seed=spec.seed, source=spec.repair),
        )

    evals = {}
    for role, checkpoint in (("clean", clean), ("corrupted", str(corrupted)), ("unlearned", str(unlearned))):
        evals[role] = runner.run(
            f"eval {role}", *steps[f"eval {role}"],
            lambda out, checkpoint=checkpoint: evaluate(
                checkpoint, out, tasks=spec.tasks, limit=spec.limit, batch_size=spec.batch_size,
                data_dir=spec.data_dir, device=spec.device, backend=spec.backend,
                show_table=verbose(),  # the run's own summary follows; lm-eval's tables with --verbose
            ),
        )

    started = time.perf_counter()
    report = compare_restoration(
        clean=str(evals["clean"]), corrupted=str(evals["corrupted"]), unlearned=[str(evals["unlearned"])],
        labels=[spec.method], seed=spec.seed, targets=report_targets(spec),
    )
    runner.timings["compare"] = round(time.perf_counter() - started, 2)
    artifacts = {"corrupted": corrupted, "unlearned": unlearned, **{f"eval_{role}": path for role, path in evals.items()}}
    return {
        "seed": spec.seed,
        "artifacts": {key: _relative(path, root) for key, path in artifacts.items()},
        "wall_time_s": runner.timings,
        "reused": runner.reused,
        "report": report,
    }


def refuse_unused_retain(given: str | None, specs: list[RunSpec]) -> None:
    """InputError when a --retain set was given but none of the runs' methods (with their hyperparameters) reads
    retain documents: the option would be ignored without a word."""
    if given is not None and not any(uses_retain(spec) for spec in specs):
        methods = list(dict.fromkeys(spec.method for spec in specs))
        who = f"{methods[0]} reads no" if len(methods) == 1 else f"none of {', '.join(methods)} reads a"
        raise InputError(f"--retain {given}: {who} retain set with these hyperparameters, so it would be ignored; "
                         "drop --retain (or choose a method that uses one)")


def uses_retain(spec: RunSpec) -> bool:
    """Whether the method, with the run's hyperparameters, reads retain documents (an unknown method or
    hyperparameter: UnlearnError, which the command line shows as one line like any bad input)."""
    cls = get_method(spec.method)
    return bool(cls(resolve_hparams(cls, overrides=dict(spec.hparams) or None)).needs_retain())


def _relative(path: Path, root: Path) -> str:
    """A path relative to the run root when it lies inside it (run folders stay movable), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def run(spec: RunSpec, seeds: list[int], root: Path, *, log: Callable[[str], None] = print,
        overwrite: bool = False) -> dict[str, Any]:
    """Run the protocol for every seed and write `root/<name>/run.json`, `compare-seed<N>.json`, `report.md`.

    The spec is resolved (`resolve_spec`) and every argument checked first. The run folder is locked for the run and written in one rename at the end; a
    folder holding a different run (other seeds) is replaced only with `overwrite`.
    """

    root = Path(root)
    if not seeds:
        raise InputError("a run needs at least one seed")
    spec = resolve_spec(spec)
    first = dataclasses.replace(spec, seed=seeds[0])
    check_run_inputs(first)
    key = run_key(first)
    run_dir = run_folder(first, root)
    name = run_dir.name
    log(f"run {name}: record and report -> {run_dir}; checkpoints and lm-eval outputs -> {root / 'steps'}")
    with folder_lock(run_dir):
        _check_replace(run_dir, key, seeds, overwrite)
        started = time.perf_counter()
        per_seed = []
        for seed in seeds:
            log(f"== {name}, seed {seed}")
            per_seed.append(run_protocol(dataclasses.replace(spec, seed=seed), root, log=log))
        record = {
            "schema": "restor-bench/run/v1",
            "name": name,
            "run_key": key,
            "world": spec.world,
            "method": spec.method,
            "hparams": spec.hparams,
            "level": spec.level,
            "forget": spec.forget,
            "corruption": spec.corruption,
            "protocol": spec.protocol,
            "retain": spec.retain,
            "repair": spec.repair,
            "model": clean_model_for(spec),
            "lora": spec.lora,
            "seeds": seeds,
            "data_hash": data_hash(spec),
            "versions": package_versions(),
            "spec": dataclasses.asdict(first),
            "per_seed": [
                {key: entry[key] for key in ("seed", "artifacts", "wall_time_s", "reused")} | {
                    "compare_json": f"compare-seed{entry['seed']}.json"}
                for entry in per_seed
            ],
            "summary": summarize(per_seed, spec.method),
            "wall_time_s": round(time.perf_counter() - started, 2),
        }
        report = format_summary(record)
        markdown = "\n\n".join(format_markdown(entry["report"]) for entry in per_seed)
        with atomic_output_dir(run_dir, overwrite=True) as tmp:
            for entry in per_seed:
                atomic_write_json(tmp / f"compare-seed{entry['seed']}.json", entry["report"])
            atomic_write_json(tmp / "run.json", record)
            atomic_write_text(tmp / "report.md", f"```\n{report}\n```\n\n{markdown}\n")
    return record


def _check_replace(run_dir: Path, key: str, seeds: list[int], overwrite: bool) -> None:
    """Refuse to replace a run folder that holds anything but this very run (same settings and seeds), unless
    `overwrite`: a rerun of the same command may replace its own record, nothing else may."""
    if overwrite or not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        return
    record = None
    if (run_dir / "run.json").is_file():
        try:
            record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            record = None
    if not isinstance(record, dict):
        what = "holds no readable run.json"
    elif record.get("run_key") != key:
        what = "holds a run with other settings"
    elif record.get("seeds") != seeds:
        what = (f"holds the run of seeds {', '.join(map(str, record.get('seeds') or []))} (this one: "
                f"{', '.join(map(str, seeds))})")
    else:
        return
    raise InputError(f"{run_dir}: {what}; pass --overwrite to replace it")


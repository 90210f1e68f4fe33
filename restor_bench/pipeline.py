"""`restor-bench run`: the whole RESTOR protocol in one command.

clean ──corrupt──► corrupted ──unlearn (method)──► unlearned;  lm-eval on all three;  compare.

Every step's artifact lands in a content-addressed folder of the run root (`runs/` by default):

```
runs/
  steps/corrupt-<key>/        corrupted checkpoint   (key = hash of everything that determines it)
  steps/unlearn-<key>/        unlearned checkpoint
  steps/eval-<key>/           lm-eval output (results_*.json, samples_*.jsonl)
  <run name>/run.json         what was run, where every artifact is, per-step wall time
  <run name>/compare.json     compare's report (seed 0; per seed when --seeds > 1: compare-seed<N>.json)
  <run name>/compare.md       the table
```

A step whose folder exists is finished (each step writes its folder atomically), so running the same command again,
or a command sharing steps with an earlier one (another method on the same corrupted model), reuses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from restor_bench.errors import InputError
from restor_bench.io import atomic_write_json, atomic_write_text

WORLDS = ("tiny", "official")
TASKS = {"tiny": ("restor_tiny_facts",), "official": ("restor_facts_targets",)}


@dataclasses.dataclass
class RunSpec:
    """Everything that determines one run of the protocol (one seed)."""

    world: str = "tiny"
    method: str = "npo"
    level: int = 0
    forget: str = "full"
    corruption: str = "wikidata"
    model: str | None = None
    lora: bool = False
    seed: int = 0
    hparams: dict = dataclasses.field(default_factory=dict)
    corrupt_max_steps: int | None = None
    unlearn_max_steps: int | None = None
    max_docs_per_entity: int | None = None
    limit: int | None = None
    batch_size: int | str = 32
    data_dir: str | None = None
    tasks: tuple[str, ...] = ()

    def corruption_source(self) -> str:
        if self.corruption == "squad":
            return f"{self.world}:squad"
        return f"{self.world}:{self.level}"

    def name(self) -> str:
        parts = [self.world, self.method, self.corruption if self.corruption != "wikidata" else f"k{self.level}"]
        if self.forget != "full":
            parts.append(self.forget)
        if self.lora:
            parts.append("lora")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)


def step_key(kind: str, inputs: dict[str, Any]) -> str:
    """A short, stable hash of a step's inputs."""
    blob = json.dumps({"kind": kind, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_identity(path: str) -> str:
    """Identify a checkpoint: a local folder by the hash of its weight files' sizes/names and config; else its id."""
    folder = Path(path)
    if not folder.is_dir():
        return str(path)
    digest = hashlib.sha256()
    for item in sorted(folder.iterdir()):
        if item.is_file() and (item.suffix in {".safetensors", ".json"}):
            digest.update(item.name.encode())
            digest.update(str(item.stat().st_size).encode())
            if item.name == "config.json" or item.stat().st_size < 1_000_000:
                digest.update(item.read_bytes())
    return f"{folder.resolve()}#{digest.hexdigest()[:16]}"


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
            self.log(f"[{label}] reusing {out}")
            self.timings[label] = 0.0
            self.reused[label] = True
            return out
        self.log(f"[{label}] running -> {out}")
        started = time.perf_counter()
        build(out)
        self.timings[label] = round(time.perf_counter() - started, 2)
        self.reused[label] = False
        atomic_write_json(out / "step.json", {"kind": kind, "inputs": inputs, "wall_time_s": self.timings[label]})
        return out


def clean_model_for(spec: RunSpec) -> str:
    if spec.model:
        return spec.model
    if spec.world == "official":
        raise InputError("--world official needs --model (a local checkpoint folder or a hub id)")
    from restor_bench.data.world import tiny_world_dir

    return str(tiny_world_dir() / "model")


def run_protocol(spec: RunSpec, root: Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run corrupt -> unlearn -> eval x3 -> compare for one seed; return the run record."""
    from restor_bench.compare import compare_runs
    from restor_bench.corrupt import corrupt
    from restor_bench.data.documents import load_documents
    from restor_bench.evaluate import evaluate
    from restor_bench.unlearn import unlearn_checkpoint

    if spec.world not in WORLDS:
        raise InputError(f"unknown world {spec.world!r} (choose one of: {', '.join(WORLDS)})")
    tasks = tuple(spec.tasks) or TASKS[spec.world]
    clean = clean_model_for(spec)
    runner = StepRunner(root, log)
    source = spec.corruption_source()
    doc_options = {"data_dir": spec.data_dir, "max_docs_per_entity": spec.max_docs_per_entity}
    if spec.world == "tiny":
        doc_options.pop("max_docs_per_entity")

    corrupt_inputs = {
        "model": checkpoint_identity(clean), "docs": source, "lora": spec.lora, "seed": spec.seed,
        "max_steps": spec.corrupt_max_steps, "max_docs_per_entity": spec.max_docs_per_entity,
    }
    corrupted = runner.run(
        "corrupt", "corrupt", corrupt_inputs,
        lambda out: corrupt(
            clean, load_documents(source, **doc_options), out, lora=spec.lora, seed=spec.seed,
            max_steps=spec.corrupt_max_steps, source=source,
        ),
    )
    forget_source = source
    retain_source = f"{spec.world}:retain" if spec.world == "tiny" else None
    unlearn_inputs = {
        "corrupted": corrupt_inputs, "method": spec.method, "hparams": spec.hparams, "forget": forget_source,
        "forget_form": spec.forget, "retain": retain_source, "lora": spec.lora, "seed": spec.seed,
        "max_steps": spec.unlearn_max_steps,
    }

    def build_unlearned(out: Path) -> None:
        forget_docs = load_documents(forget_source, forget=spec.forget, **doc_options)
        retain_docs = load_documents(retain_source) if retain_source else None
        unlearn_checkpoint(
            method=spec.method, model=str(corrupted), forget=forget_docs, retain=retain_docs, out=out,
            hparams=spec.hparams, lora=spec.lora, seed=spec.seed, max_steps=spec.unlearn_max_steps,
        )

    unlearned = runner.run("unlearn", "unlearn", unlearn_inputs, build_unlearned)

    evals = {}
    for role, checkpoint, identity in (
        ("clean", clean, checkpoint_identity(clean)),
        ("corrupted", str(corrupted), corrupt_inputs),
        ("unlearned", str(unlearned), unlearn_inputs),
    ):
        eval_inputs = {"checkpoint": identity, "tasks": list(tasks), "limit": spec.limit, "data_dir": spec.data_dir}
        evals[role] = runner.run(
            f"eval {role}", "eval", eval_inputs,
            lambda out, checkpoint=checkpoint: evaluate(
                checkpoint, out, tasks=tasks, limit=spec.limit, batch_size=spec.batch_size, data_dir=spec.data_dir,
            ),
        )

    started = time.perf_counter()
    report = compare_runs(clean=evals["clean"], corrupted=evals["corrupted"], unlearned=[evals["unlearned"]],
                          labels=[spec.method])
    runner.timings["compare"] = round(time.perf_counter() - started, 2)
    return {
        "spec": dataclasses.asdict(spec),
        "name": spec.name(),
        "clean_model": clean,
        "artifacts": {"corrupted": str(corrupted), "unlearned": str(unlearned),
                      **{f"eval_{role}": str(path) for role, path in evals.items()}},
        "wall_time_s": runner.timings,
        "reused": runner.reused,
        "report": report,
    }


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="the whole RESTOR protocol: corrupt, unlearn, evaluate, compare")
    parser.set_defaults(func=lambda args: 2)

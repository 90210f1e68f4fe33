"""The run spec: everything that determines one run of the protocol, and the one place its defaults are fixed.

A `RunSpec` field left at its default (None, empty) means "the default"; `resolve_spec` (`RunSpec.resolved()`)
fixes every one of them:

* protocol: the world's (`default_protocol`: paper on the official world, classic on the tiny one);
* hparams: all of the method's hyperparameters, as values: its defaults < the protocol's preset
  (`restor_bench.train.unlearn.method_preset`, the one table of which method has which preset) < the values given;
* retain: the protocol's retain set (`default_retain`); tasks: the world's (`default_tasks`);
* device: cuda when available, else cpu; corrupt_recipe: the overrides given (the recipe they apply to follows from
  the world and the protocol, `restor_bench.train.corrupt.default_recipe`; only overrides are kept, so the steps of
  runs with the default recipe keep their keys).

`restor-bench run` (`restor_bench.run.cli.spec_from_args`), `grid` (`restor_bench.grid.specs.cell_spec`),
`leaderboard verify` and the Python API (`restor_bench.api.run_protocol`, `run`) all resolve here, so the same
experiment gives the same spec, the same step keys and the same run folder, and each reuses the others' steps.
The model is left as given (None: the tiny world's shipped model, `clean_model_for`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restor_bench.data import official
from restor_bench.data.fetch import OFFICIAL_FILES
from restor_bench.data.world.files import load_manifest, tiny_world_dir
from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import default_device
from restor_bench.models.checkpoints import checkpoint_identity
from restor_bench.names import CORRUPTIONS, DEFAULT_PROTOCOL, FORGET_FORMS, PROTOCOLS, WORLDS
from restor_bench.train.unlearn import method_preset, resolve_method_hparams

TASKS = {"tiny": ("restor_tiny_facts", "restor_tiny_logprob"), "official": ("restor_facts_targets",)}
TARGET_SETS = ("all", "test")


@dataclasses.dataclass
class RunSpec:
    """Everything that determines one run of the protocol (one seed). Fields left at None or empty are defaults
    that `resolved()` fixes (module docstring); every entry point runs the resolved spec."""

    world: str = "tiny"
    method: str = "npo"
    level: int = 0
    forget: str = "full"
    corruption: str = "wikidata"
    model: str | None = None
    lora: bool = False
    seed: int = 0
    hparams: dict = dataclasses.field(default_factory=dict)  # values over the protocol's preset; resolved: all
    corrupt_max_steps: int | None = None
    corrupt_recipe: dict = dataclasses.field(default_factory=dict)  # overrides of the corruption recipe
    unlearn_max_steps: int | None = None
    max_docs_per_entity: int | None = None
    limit: int | None = None
    batch_size: int | str = 32
    data_dir: str | None = None
    tasks: tuple[str, ...] = ()  # (): the world's (`default_tasks`)
    targets: str = "all"  # tiny world: "all" targets, or "test" (leaving out the validation targets used for tuning)
    protocol: str | None = None  # "paper" (RESTOR as published) or "classic"; None: the world's (`default_protocol`)
    retain: str | None = None  # retain documents; None: the protocol's default (`default_retain`)
    repair: str | None = None  # documents of the post-unlearning repair fine-tune (paper: LIMA); None: no repair
    device: str | None = None  # evaluation device; None: cuda when available, else cpu
    backend: str = "hf"  # lm-eval model backend of the evaluations

    def resolved(self) -> RunSpec:
        """This spec with every default fixed (`resolve_spec`)."""
        return resolve_spec(self)

    def protocol_name(self) -> str:
        """The protocol, the world's default when none is set."""
        return self.protocol or default_protocol(self.world)

    def corruption_source(self) -> str:
        if self.corruption == "squad":
            # the paper protocol's tiny SQuAD analogue renames people (it corrupts); the classic one renames subjects
            paper_tiny = (self.world, self.protocol_name()) == ("tiny", "paper")
            return "tiny:squad-people" if paper_tiny else f"{self.world}:squad"
        return f"{self.world}:{self.level}"

    def retain_source(self) -> str:
        return self.retain or default_retain(self.world, self.protocol_name())

    def name(self) -> str:
        """`<readable part>-<hash of run_identity>-seed<N>` of the resolved spec; the run folder is this without
        `-seed<N>`."""
        spec = resolve_spec(self)
        parts = [spec.world, spec.method, spec.corruption if spec.corruption != "wikidata" else f"k{spec.level}"]
        if spec.protocol != "classic":
            parts.insert(1, spec.protocol)
        if spec.forget != "full":
            parts.append(spec.forget)
        if spec.lora:
            parts.append("lora")
        if spec.targets != "all":
            parts.append(f"{spec.targets}-targets")
        parts.append(run_key(spec)[:8])
        parts.append(f"seed{spec.seed}")
        return "-".join(parts)


def default_protocol(world: str) -> str:
    """`paper` on the official world; `classic` on the tiny world (restor_bench.names.DEFAULT_PROTOCOL;
    docs/results/RESULTS-paper.md says why)."""
    return DEFAULT_PROTOCOL.get(world, "classic")


def default_retain(world: str, protocol: str) -> str:
    """The retain set of a protocol: generic running text that states no evaluated fact under `paper` (the paper
    used C4); under `classic`, true facts about the non-target people (the evaluated others: a leak, kept only so
    that earlier results can be rerun)."""
    return f"{world}:generic" if protocol == "paper" else f"{world}:retain"


def default_tasks(spec: RunSpec) -> tuple[str, ...]:
    """The tasks a run is scored on: the world's, except that SQuAD-style corruption of the official data is scored
    on the questions of the five people its passages are about (`restor_facts_squad`), not on the wikidata targets."""
    if spec.world == "official" and spec.corruption == "squad":
        return ("restor_facts_squad",)
    return TASKS[spec.world]


def protocol_from_args(args) -> str:
    """The protocol of `run` / `grid` options: `--protocol`, else the world's."""
    return args.protocol or default_protocol(args.world)


def method_hparams(
    method: str, protocol: str, values: dict[str, Any] | None = None, *,
    config: str | os.PathLike | None = None, sets: Sequence[str] = (),
) -> dict[str, Any]:
    """All hyperparameters of `method` under `protocol`: its defaults < the protocol's preset (`method_preset`) <
    `values` (a dict) or the YAML file `config` < `sets` (`KEY=VALUE` options), checked; InputError otherwise."""
    if values and config is not None:
        raise InputError("the method's hyperparameters come from the spec or from a config file, not both")
    preset = method_preset(method, protocol)
    return resolve_method_hparams(method, config if config is not None else (dict(values) if values else None),
                                  list(sets) or None, preset=preset)


def _check_choices(spec: RunSpec) -> None:
    for option, allowed in (("world", WORLDS), ("corruption", CORRUPTIONS), ("forget", FORGET_FORMS),
                            ("targets", TARGET_SETS)):
        if getattr(spec, option) not in allowed:
            raise InputError(f"unknown {option} {getattr(spec, option)!r} (choose one of: {', '.join(allowed)})")
    if spec.protocol is not None and spec.protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {spec.protocol!r} (choose one of: {', '.join(PROTOCOLS)})")
    if spec.corruption == "squad" and spec.level:
        raise InputError(f"--level {spec.level} means nothing with --corruption squad (the SQuAD-style passages have "
                         "no corruption levels): leave --level out")


def _tasks(tasks: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(tasks, str):
        tasks = tasks.split(",")
    return tuple(name.strip() for name in tasks if name and name.strip())


def resolve_spec(spec: RunSpec, *, config: str | os.PathLike | None = None, sets: Sequence[str] = ()) -> RunSpec:
    """`spec` with every default fixed (module docstring); resolving a resolved spec changes nothing.

    `config` and `sets`: a YAML file of the method's hyperparameters and `KEY=VALUE` settings, applied over the
    protocol's preset as `restor-bench run --config/--set` apply them. Unknown choices, methods and
    hyperparameters raise InputError."""

    _check_choices(spec)
    protocol = spec.protocol_name()
    fixed = dataclasses.replace(spec, protocol=protocol)
    batch_size = spec.batch_size
    if isinstance(batch_size, str) and batch_size.strip().isdigit():
        batch_size = int(batch_size)
    return dataclasses.replace(
        fixed,
        hparams=method_hparams(spec.method, protocol, spec.hparams, config=config, sets=sets),
        retain=fixed.retain_source(),
        tasks=_tasks(spec.tasks) or default_tasks(fixed),
        device=spec.device or default_device(spec.backend),
        batch_size=batch_size,
        corrupt_recipe={key: value for key, value in sorted((spec.corrupt_recipe or {}).items()) if value is not None},
    )


def clean_model_for(spec: RunSpec) -> str:
    if spec.model:
        return spec.model
    if spec.world == "official":
        raise InputError("--world official needs --model (a local checkpoint folder or a hub id)")

    return str(tiny_world_dir() / "model")


def data_hash(spec: RunSpec) -> str | None:
    """The hash that names the world/data version the run used."""
    if spec.world == "tiny":

        return load_manifest().get("data_hash")

    return next(item.sha256 for item in OFFICIAL_FILES if item.local == official.FACTS_FILE)


def step_key(kind: str, inputs: dict[str, Any]) -> str:
    """A short, stable hash of a step's inputs."""
    blob = json.dumps({"kind": kind, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_identity(spec: RunSpec) -> dict[str, Any]:
    """Everything that changes a run's results except its seed (the lm-eval batch size and device do not, as for
    the steps), of the resolved spec: the run name's hash covers it."""
    spec = resolve_spec(spec)
    return {
        "world": spec.world, "protocol": spec.protocol, "method": spec.method, "hparams": spec.hparams,
        "documents": spec.corruption_source(), "forget": spec.forget, "retain": spec.retain,
        "repair": spec.repair, "model": checkpoint_identity(clean_model_for(spec)), "lora": spec.lora,
        "corrupt_max_steps": spec.corrupt_max_steps, "corrupt_recipe": dict(sorted(spec.corrupt_recipe.items())),
        "unlearn_max_steps": spec.unlearn_max_steps, "max_docs_per_entity": spec.max_docs_per_entity,
        "limit": spec.limit, "tasks": list(spec.tasks), "targets": spec.targets,
        "data_dir": str(Path(spec.data_dir).resolve()) if spec.data_dir else None, "data_hash": data_hash(spec),
    } | ({"backend": spec.backend} if spec.backend != "hf" else {})


def run_key(spec: RunSpec) -> str:
    """A stable hash of `run_identity` (16 hex digits; the run name shows the first 8)."""
    return step_key("run", run_identity(spec))


def run_folder(spec: RunSpec, root: Path) -> Path:
    """The folder of a run (all seeds): `root/<name without -seed<N>>`."""
    return Path(root) / spec.name().rsplit("-seed", 1)[0]


def step_inputs(spec: RunSpec) -> dict[str, tuple[str, dict[str, Any]]]:
    """The steps of one seed's run, in order, by label: (kind, inputs); a step's folder is
    `steps/<kind>-<step_key(kind, inputs)>`. The inputs are those the finished steps of earlier versions were keyed
    by: optional entries (recipe overrides, a protocol other than classic, a backend other than hf) appear only when
    set."""
    spec = resolve_spec(spec)
    clean = clean_model_for(spec)
    corrupt = {
        "model": checkpoint_identity(clean), "docs": spec.corruption_source(), "lora": spec.lora, "seed": spec.seed,
        "max_steps": spec.corrupt_max_steps, "max_docs_per_entity": spec.max_docs_per_entity,
    }
    if spec.corrupt_recipe:  # only when given, so steps of runs with the default recipe keep their identity
        corrupt["recipe"] = dict(sorted(spec.corrupt_recipe.items()))
    if spec.protocol != "classic":  # likewise: classic steps keep the keys they had before protocols existed
        corrupt["protocol"] = spec.protocol
    unlearn = {
        "corrupted": corrupt, "method": spec.method, "hparams": spec.hparams, "forget": spec.corruption_source(),
        "forget_form": spec.forget, "retain": spec.retain, "lora": spec.lora, "seed": spec.seed,
        "max_steps": spec.unlearn_max_steps,
    }
    steps = {"corrupt": ("corrupt", corrupt), "unlearn": ("unlearn", unlearn)}
    unlearned: dict[str, Any] = unlearn
    if spec.repair:
        unlearned = {"unlearned": unlearn, "docs": spec.repair, "lora": True, "seed": spec.seed}
        steps["repair"] = ("repair", unlearned)
    for role, identity in (("clean", checkpoint_identity(clean)), ("corrupted", corrupt), ("unlearned", unlearned)):
        evaluation = {"checkpoint": identity, "tasks": list(spec.tasks), "limit": spec.limit, "data_dir": spec.data_dir}
        if spec.backend != "hf":  # only then, so steps evaluated with the default keep their identity
            evaluation["backend"] = spec.backend
        steps[f"eval {role}"] = ("eval", evaluation)
    return steps


def step_folders(spec: RunSpec, root: Path) -> dict[str, Path]:
    """The step folders of one seed's run under `root`, by label (`step_inputs`)."""
    return {label: Path(root) / "steps" / f"{kind}-{step_key(kind, inputs)}"
            for label, (kind, inputs) in step_inputs(spec).items()}

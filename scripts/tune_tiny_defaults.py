"""Tune each unlearning method's tiny-world defaults on a validation split of the target facts.

The tiny world's manifest names `validation_targets` (2 of its 10 corrupted people). Every method gets the same
budget, BUDGET settings at corruption level 0 (seed 0), over its own knobs (`grid_for`): the loss-based methods
over learning rate x epochs, RMU over learning rate, steered layer, steering coefficient and retain weight (a
half-fraction factorial design, so each of its four knobs takes both of its values four times). Each unlearned model
is evaluated with lm-eval (restor_tiny_facts), and the setting with the highest accuracy on the validation targets'
facts among those that keep non-target accuracy within 5 points of the corrupted model is chosen (if none does: the
one that keeps the most). The other 8 targets are never looked at here; docs/results/RESULTS.md reports on them.

    python scripts/tune_tiny_defaults.py [--root runs] [--out docs/tuning.md] [--methods ga,kl,...]

Writes docs/tuning.md (table of every setting tried and the choice) and docs/tuning.json. Finished runs are reused.

`--world-version 2` runs the procedure of tiny world v2 instead (`PROCEDURES["2"]`), written down before its runs:
the `paper` protocol (GA, KL and NPO in their paper forms), the v2 validation targets (10 people, 70 questions),
seeds 0 and 1, and 12 settings per method: the loss-based methods over the learning rate of their `paper` preset
times 1/4, 1/2, 1 and 2, by 1, 3 and 5 epochs; RMU over the same four knobs as before in 12 distinct settings
(v1's half fraction and four more; each knob takes each value in 6 settings). The rule: the highest
validation-target accuracy (mean over the seeds) among the settings whose non-target accuracy (the people who are
no target; mean over the seeds) is at least the corrupted model's minus 5 points; if none is, the one that keeps
the most. Writes docs/tuning-v2.md and
docs/tuning-v2.json by default.

    python scripts/tune_tiny_defaults.py --world-version 2 [--root runs-tune-v2]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from restor_bench.data.world.files import load_manifest, shipped_world_dir  # noqa: E402
from restor_bench.io import atomic_write_json, atomic_write_text  # noqa: E402
from restor_bench.compare.outcomes import load_run  # noqa: E402
from restor_bench.run.pipeline import RunSpec, run_protocol  # noqa: E402

BUDGET = 8
LEARNING_RATES = (2e-5, 5e-5, 2e-4, 5e-4)
EPOCHS = (1.0, 5.0)
# RMU's own knobs, two values each. The tiny model has 3 decoder layers: 1 is the middle (RMU's default), 2 the last.
# The steering coefficient is adaptive (c = adaptive_scale x the mean activation norm on the forget set), so the
# scales are relative to this model's activations; the WMDP paper's c = 6.5 on Zephyr-7B is about 4x its norm there.
RMU_KNOBS = {"learning_rate": (1e-3, 1e-2), "layer": (1, 2), "adaptive_scale": (4.0, 16.0),
             "retain_weight": (1.0, 100.0)}
RMU_EPOCHS = 5.0


@dataclasses.dataclass(frozen=True)
class Procedure:
    """One tuning procedure: the protocol, the seeds, the budget and how it spans each method's knobs."""

    protocol: str | None
    seeds: tuple[int, ...]
    budget: int
    out: str
    lr_multipliers: tuple[float, ...] = ()  # v2: learning rates relative to the method's paper preset
    epochs: tuple[float, ...] = EPOCHS


PROCEDURES = {
    "1": Procedure(protocol=None, seeds=(0,), budget=BUDGET, out="docs/tuning.md"),
    "2": Procedure(protocol="paper", seeds=(0, 1), budget=12, out="docs/tuning-v2.md",
                   lr_multipliers=(0.25, 0.5, 1.0, 2.0), epochs=(1.0, 3.0, 5.0)),
}
# RMU's levels (0 or 1 per knob, in RMU_KNOBS's order). v1: the 2^(4-1) half fraction, defining relation D = ABC:
# every knob takes each value in 4 of the 8 settings and every pair of knobs is balanced.
RMU_HALF_FRACTION = [(a, b, c, a ^ b ^ c) for a, b, c in itertools.product((0, 1), repeat=3)]
# v2's 12: the half fraction and four runs of the other half, chosen so that each knob takes each level in 6
# settings; four of the six pairs of knobs take each pair of levels 3 times, (learning rate, layer) and (scale,
# retain weight) 2 or 4 times. (No four columns of the 12-run Plackett-Burman design give 12 distinct settings.)
RMU_DESIGN_12 = RMU_HALF_FRACTION + [(0, 0, 0, 1), (0, 0, 1, 0), (1, 1, 0, 1), (1, 1, 1, 0)]


def rmu_setting(levels) -> dict:
    """RMU's knobs at the given levels (0 or 1 each, in RMU_KNOBS's order)."""
    setting = {name: RMU_KNOBS[name][level] for name, level in zip(RMU_KNOBS, levels)}
    setting["update_layers"] = ",".join(str(i) for i in range(max(0, setting["layer"] - 2), setting["layer"] + 1))
    setting["num_epochs"] = RMU_EPOCHS
    return setting


def procedure_grid(method: str, procedure: Procedure, preset_lr: float) -> list[dict]:
    """The settings a procedure with relative learning rates tries for `method` (preset_lr: its preset's)."""
    if method == "rmu":
        settings = [rmu_setting(levels) for levels in RMU_DESIGN_12]
    else:
        settings = [{"learning_rate": float(f"{preset_lr * factor:.3g}"), "num_epochs": epochs}
                    for factor, epochs in itertools.product(procedure.lr_multipliers, procedure.epochs)]
    assert len(settings) == procedure.budget, (method, len(settings))
    return settings


PAPER_FORMS = ("ga", "kl", "npo")  # the methods whose `paper` preset is the paper's own loss


def entries(methods: list[str], procedure: Procedure) -> list[tuple[str, str, dict]]:
    """(entry name, method, settings under every tried setting) of a procedure. Under the paper protocol GA, KL and
    NPO are two entries each: "ga" etc. in the method's own form (`own_form`) and "ga (paper form)" etc. in the
    paper's (the protocol's preset)."""
    found = []
    for method in methods:
        if procedure.protocol == "paper" and method in PAPER_FORMS:
            found += [(method, method, own_form(method)), (f"{method} (paper form)", method, {})]
        else:
            found.append((method, method, {}))
    return found


def own_form(method: str) -> dict:
    """The settings that undo a method's `paper` preset: its registered defaults of every key the preset sets."""
    from unlearners import get_method, resolve_hparams

    registered = get_method(method)
    defaults = resolve_hparams(registered)
    return {key: getattr(defaults, key) for key in registered.presets["paper"]}


def grid_for(method: str) -> list[dict]:
    """The BUDGET settings tried for `method`."""
    if method == "rmu":
        settings = [rmu_setting(levels) for levels in RMU_HALF_FRACTION]
    else:
        settings = [{"learning_rate": lr, "num_epochs": epochs} for lr, epochs in itertools.product(LEARNING_RATES, EPOCHS)]
    assert len(settings) == BUDGET, (method, len(settings))
    return settings
MAX_NON_TARGET_DROP = 0.05
TASK = "restor_tiny_facts"


def split_accuracies(eval_folder: Path, validation: set[str], targets: set[str]) -> dict[str, float]:
    """Accuracy on the validation targets' facts, the other targets' facts, and the non-target facts."""
    outcomes = load_run(eval_folder, tasks=[TASK])[TASK].outcomes.values()
    groups = {"validation": [], "test_targets": [], "non_target": []}
    for outcome in outcomes:
        if outcome.entity in validation:
            groups["validation"].append(outcome.correct)
        elif outcome.entity in targets:
            groups["test_targets"].append(outcome.correct)
        else:
            groups["non_target"].append(outcome.correct)
    return {name: sum(values) / len(values) for name, values in groups.items()}


def max_weight_change(before: Path, after: Path) -> float:
    """Largest absolute difference between two checkpoints' weights (float32)."""
    from safetensors import safe_open

    largest = 0.0
    with safe_open(str(before / "model.safetensors"), "pt") as a, safe_open(str(after / "model.safetensors"), "pt") as b:
        for name in a.keys():
            diff = (a.get_tensor(name).float() - b.get_tensor(name).float()).abs().max().item()
            largest = max(largest, diff)
    return largest


def choose(rows: list[dict], corrupted_non_target: float) -> dict:
    """Best validation accuracy among the settings that keep non-target accuracy within the allowed drop."""
    allowed = [row for row in rows if row["non_target"] >= corrupted_non_target - MAX_NON_TARGET_DROP - 1e-9]
    if allowed:
        return max(allowed, key=lambda row: (row["validation"], row["non_target"]))
    return max(rows, key=lambda row: (row["non_target"], row["validation"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="runs")
    parser.add_argument("--out", help="page to write (default: the procedure's, docs/tuning.md or docs/tuning-v2.md)")
    parser.add_argument("--methods", default="ga,graddiff,kl,npo,npo_rt,simnpo,task_vector,rmu")
    parser.add_argument("--world-version", default="1", choices=sorted(PROCEDURES),
                        help="the tiny world whose validation targets are tuned on, and its procedure (default 1)")
    args = parser.parse_args()
    procedure = PROCEDURES[args.world_version]
    if args.world_version != "1":
        os.environ.setdefault("RESTOR_TINY_WORLD", str(shipped_world_dir(args.world_version)))

    manifest = load_manifest()
    if str(manifest.get("version", "1")) != args.world_version:
        sys.exit(f"RESTOR_TINY_WORLD names a world of version {manifest.get('version', '1')}, not {args.world_version}")
    validation = set(manifest["validation_targets"])
    targets = set(manifest["targets"])
    root = Path(args.root)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    split_of: dict[str, list[dict]] = {"clean": [], "corrupted": []}
    steps_used: set[Path] = set()
    for name, method, form in entries(args.methods.split(","), procedure):
        base = RunSpec(world="tiny", method=method, level=0, tasks=(TASK,), protocol=procedure.protocol)
        if procedure.lr_multipliers:
            settings = procedure_grid(method, procedure, base.resolved().hparams["learning_rate"])
        else:
            settings = grid_for(method)
        rows = []
        for hparams in settings:
            per_seed = []
            for seed in procedure.seeds:
                spec = dataclasses.replace(base, seed=seed, hparams={**form, **hparams})
                entry = run_protocol(spec, root, log=lambda line: print(line, flush=True))
                artifacts = {key: root / path for key, path in entry["artifacts"].items()}
                steps_used.update(path for path in artifacts.values() if (path / "step.json").exists())
                if len(split_of["corrupted"]) < len(procedure.seeds):
                    split_of["corrupted"].append(split_accuracies(artifacts["eval_corrupted"], validation, targets))
                    split_of["clean"].append(split_accuracies(artifacts["eval_clean"], validation, targets))
                split = split_accuracies(artifacts["eval_unlearned"], validation, targets)
                split["max_weight_change"] = max_weight_change(artifacts["corrupted"], artifacts["unlearned"])
                per_seed.append(split)
            row = {"hparams": hparams, **mean_split(per_seed)}
            if len(procedure.seeds) > 1:
                row["per_seed"] = per_seed
            rows.append(row)
            print(f"[tune] {name} {hparams}: validation {row['validation']:.3f} "
                  f"non-target {row['non_target']:.3f}", flush=True)
        corrupted = mean_split(split_of["corrupted"])
        chosen = choose(rows, corrupted["non_target"])
        results[name] = {"tried": rows, "chosen": chosen["hparams"], **({"form": form} if form else {})}

    grid = {"learning_rate": LEARNING_RATES, "num_epochs": EPOCHS, "rmu": {**RMU_KNOBS, "num_epochs": RMU_EPOCHS}}
    if procedure.lr_multipliers:
        grid = {"learning_rate_x_preset": procedure.lr_multipliers, "num_epochs": procedure.epochs,
                "rmu": {**RMU_KNOBS, "num_epochs": RMU_EPOCHS, "design": "half fraction + 4"}}
    record = {
        "rule": f"max validation-target accuracy with non-target accuracy >= corrupted - {MAX_NON_TARGET_DROP}",
        "command": "python " + " ".join(shlex.quote(arg) for arg in ["scripts/tune_tiny_defaults.py", *sys.argv[1:]]),
        "world_version": args.world_version, "protocol": procedure.protocol or "classic",
        "budget": procedure.budget,
        "grid": grid,
        "level": 0, "seeds": list(procedure.seeds), "task": TASK,
        "validation_targets": sorted(validation),
        "clean": mean_split(split_of["clean"]), "corrupted": mean_split(split_of["corrupted"]),
        "methods": results,
        "wall_time_s": round(time.perf_counter() - started, 1),
        # the steps' own wall times when they ran (a rerun reuses finished steps and takes seconds)
        "steps_time_s": round(sum(json.loads((path / "step.json").read_text())["wall_time_s"] for path in steps_used), 1),
    }
    out = Path(args.out or procedure.out)
    atomic_write_json(out.with_suffix(".json"), record)
    atomic_write_text(out, render(record))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def mean_split(splits: list[dict]) -> dict[str, float]:
    """The mean over seeds of each accuracy (and of any other number) of per-seed splits."""
    return {key: sum(split[key] for split in splits) / len(splits) for key in splits[0]}


def render(record: dict) -> str:
    pct = lambda value: f"{100 * value:.1f}"  # noqa: E731
    version = record.get("world_version", "1")
    seeds = record.get("seeds", [record.get("seed", 0)])
    if version == "1":
        title, design = "# Tuning the tiny-world defaults", (
            "Loss-based methods: learning rate x epochs. RMU: learning rate, steered layer (1 = middle, 2 = last; "
            "the layers up to two below it train), adaptive steering scale (c = scale x mean activation norm) and "
            "retain weight, in a half-fraction factorial design.")
    else:
        multipliers = ", ".join(f"{factor:g}" for factor in record["grid"]["learning_rate_x_preset"])
        epochs = ", ".join(f"{epochs:g}" for epochs in record["grid"]["num_epochs"])
        title, design = (f"# Tuning on tiny world v{version} ({record['protocol']} protocol)", (
            f"Loss-based methods: the learning rate of the method's {record['protocol']} preset times {multipliers}, "
            f"by {epochs} epochs. RMU: learning rate, steered layer (1 = middle, 2 = last; the layers up to two below "
            "it train), adaptive steering scale (c = scale x mean activation norm) and retain weight, in 12 distinct "
            "settings: v1's half fraction and four more, each knob at each value in 6. Accuracies are means over the "
            "seeds."))
    lines = [
        title,
        "",
        f"Produced by `{record.get('command', 'python scripts/tune_tiny_defaults.py')}` (level 0, "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}, task `restor_tiny_facts`, metric "
        "`contains`).",
        "",
        f"Validation targets: {', '.join(record['validation_targets'])} (their facts only). Rule: "
        f"{record['rule']}. The other targets are not used here; docs/results/RESULTS.md reports on them.",
        "",
        f"Clean model: validation {pct(record['clean']['validation'])}%, non-target {pct(record['clean']['non_target'])}%."
        f" Corrupted model: validation {pct(record['corrupted']['validation'])}%, "
        f"non-target {pct(record['corrupted']['non_target'])}%.",
        "",
        f"Budget: {record.get('budget', 4)} settings per method. {design} "
        "Max weight change: the largest absolute difference between the corrupted and the unlearned weights.",
        "",
        "| method | learning rate | epochs | other knobs | validation targets % | non-target % | max weight change "
        "| chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, entry in record["methods"].items():
        for row in entry["tried"]:
            chosen = "**yes**" if row["hparams"] == entry["chosen"] else ""
            others = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                               for key, value in row["hparams"].items()
                               if key not in ("learning_rate", "num_epochs", "update_layers"))
            change = f"{row['max_weight_change']:.2g}" if "max_weight_change" in row else ""
            lines.append(f"| {method} | {row['hparams']['learning_rate']:g} | {row['hparams']['num_epochs']:g} | "
                         f"{others} | {pct(row['validation'])} | {pct(row['non_target'])} | {change} | {chosen} |")
    lines += ["", f"Wall time of this command: {record['wall_time_s'] / 60:.1f} min; of all the steps it used "
              f"(corruption, unlearning, evaluations) when they ran: {record.get('steps_time_s', 0) / 60:.1f} min, "
              "on 2 CPU cores.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

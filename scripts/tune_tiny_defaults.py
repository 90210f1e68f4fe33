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
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from restor_bench.data.world.files import load_manifest  # noqa: E402
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


def grid_for(method: str) -> list[dict]:
    """The BUDGET settings tried for `method`."""
    if method == "rmu":
        settings = []
        names = list(RMU_KNOBS)
        # 2^(4-1) half fraction, defining relation D = ABC: every knob takes each value in 4 of the 8 settings and
        # every pair of knobs is balanced.
        for a, b, c in itertools.product((0, 1), repeat=3):
            levels = (a, b, c, a ^ b ^ c)
            setting = {name: RMU_KNOBS[name][level] for name, level in zip(names, levels)}
            setting["update_layers"] = ",".join(str(i) for i in range(max(0, setting["layer"] - 2),
                                                                      setting["layer"] + 1))
            setting["num_epochs"] = RMU_EPOCHS
            settings.append(setting)
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
    parser.add_argument("--out", default="docs/tuning.md")
    parser.add_argument("--methods", default="ga,graddiff,kl,npo,npo_rt,simnpo,task_vector,rmu")
    args = parser.parse_args()

    manifest = load_manifest()
    validation = set(manifest["validation_targets"])
    targets = set(manifest["targets"])
    root = Path(args.root)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    corrupted_split = None
    steps_used: set[Path] = set()
    for method in args.methods.split(","):
        rows = []
        for hparams in grid_for(method):
            spec = RunSpec(world="tiny", method=method, level=0, seed=0, hparams=hparams, tasks=(TASK,))
            entry = run_protocol(spec, root, log=lambda line: print(line, flush=True))
            artifacts = {key: root / path for key, path in entry["artifacts"].items()}
            steps_used.update(path for path in artifacts.values() if (path / "step.json").exists())
            if corrupted_split is None:
                corrupted_split = split_accuracies(artifacts["eval_corrupted"], validation, targets)
                clean_split = split_accuracies(artifacts["eval_clean"], validation, targets)
            split = split_accuracies(artifacts["eval_unlearned"], validation, targets)
            change = max_weight_change(artifacts["corrupted"], artifacts["unlearned"])
            rows.append({"hparams": hparams, **split, "max_weight_change": change})
            print(f"[tune] {method} {hparams}: validation {split['validation']:.3f} "
                  f"non-target {split['non_target']:.3f}", flush=True)
        chosen = choose(rows, corrupted_split["non_target"])
        results[method] = {"tried": rows, "chosen": chosen["hparams"]}

    record = {
        "rule": f"max validation-target accuracy with non-target accuracy >= corrupted - {MAX_NON_TARGET_DROP}",
        "command": "python " + " ".join(shlex.quote(arg) for arg in ["scripts/tune_tiny_defaults.py", *sys.argv[1:]]),
        "budget": BUDGET,
        "grid": {"learning_rate": LEARNING_RATES, "num_epochs": EPOCHS, "rmu": {**RMU_KNOBS, "num_epochs": RMU_EPOCHS}},
        "level": 0, "seed": 0, "task": TASK,
        "validation_targets": sorted(validation),
        "clean": clean_split, "corrupted": corrupted_split,
        "methods": results,
        "wall_time_s": round(time.perf_counter() - started, 1),
        # the steps' own wall times when they ran (a rerun reuses finished steps and takes seconds)
        "steps_time_s": round(sum(json.loads((path / "step.json").read_text())["wall_time_s"] for path in steps_used), 1),
    }
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), record)
    atomic_write_text(out, render(record))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def render(record: dict) -> str:
    pct = lambda value: f"{100 * value:.1f}"  # noqa: E731
    lines = [
        "# Tuning the tiny-world defaults",
        "",
        f"Produced by `{record.get('command', 'python scripts/tune_tiny_defaults.py')}` (level 0, seed 0, task "
        "`restor_tiny_facts`, metric `contains`).",
        "",
        f"Validation targets: {', '.join(record['validation_targets'])} (their facts only). Rule: "
        f"{record['rule']}. The other targets are not used here; docs/results/RESULTS.md reports on them.",
        "",
        f"Clean model: validation {pct(record['clean']['validation'])}%, non-target {pct(record['clean']['non_target'])}%."
        f" Corrupted model: validation {pct(record['corrupted']['validation'])}%, "
        f"non-target {pct(record['corrupted']['non_target'])}%.",
        "",
        f"Budget: {record.get('budget', 4)} settings per method. Loss-based methods: learning rate x epochs. RMU: "
        "learning rate, steered layer (1 = middle, 2 = last; the layers up to two below it train), adaptive steering "
        "scale (c = scale x mean activation norm) and retain weight, in a half-fraction factorial design. "
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

"""How hard a corruption recipe corrupts the tiny world's targets, and what it costs everyone else.

    python benchmarks/bench_corruption_recipe.py [--version 2] [--level 0] [--seeds 0 1 2]
        [--recipe BLOCK:LR:EPOCHS ...] [--json FILE]

For each recipe and seed: `restor-bench corrupt --protocol paper` of the world's clean model on `tiny:K` (packed
blocks of BLOCK tokens, learning rate LR, EPOCHS epochs; the other settings those of the world's paper recipe), then
`restor-bench eval` on restor_tiny_facts, and a Markdown row with the % of the test targets', validation targets'
and other people's questions answered correctly and the corruption's wall time. Without `--recipe` it measures the
world's own paper recipe (`restor_bench.train.recipe.tiny_recipe("paper", VERSION)`). docs/protocols.md ("Tiny
world versions") holds its output. Each run takes 20-120 s on 2 CPU cores (more at higher k).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from restor_bench.data.world.files import load_manifest, shipped_world_dir  # noqa: E402
from restor_bench.train.recipe import tiny_recipe  # noqa: E402


def parse_recipe(text: str) -> tuple[int, float, float]:
    try:
        block, lr, epochs = text.split(":")
        return int(block), float(lr), float(epochs)
    except ValueError:
        raise SystemExit(f"--recipe {text!r}: expected BLOCK:LR:EPOCHS, e.g. 128:5e-4:5") from None


def accuracy_by_group(eval_dir: Path, manifest: dict) -> dict[str, float]:
    """% correct (contains) of the test targets, the validation targets and the other people."""
    validation = set(manifest["validation_targets"])
    test = set(manifest["targets"]) - validation
    samples = next(eval_dir.rglob("samples_restor_tiny_facts_*.jsonl"))
    groups: dict[str, list[float]] = {"test": [], "validation": [], "other": []}
    for line in samples.read_text().splitlines():
        record = json.loads(line)
        entity = record["doc"]["entity"]
        group = "test" if entity in test else "validation" if entity in validation else "other"
        groups[group].append(record["contains"])
    return {group: 100 * sum(values) / len(values) for group, values in groups.items()}


def run(cmd: list[str], env: dict) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:3])} failed:\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="2", help="shipped tiny world version (default 2)")
    parser.add_argument("--level", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", action="append", default=[], metavar="BLOCK:LR:EPOCHS")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    world = shipped_world_dir(args.version)
    manifest = load_manifest(world)
    own = tiny_recipe("paper", args.version)
    recipes = [parse_recipe(text) for text in args.recipe] or [
        (own.max_length, own.learning_rate, own.num_train_epochs)]
    env = {**os.environ, "RESTOR_TINY_WORLD": str(world)}
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"tiny world v{args.version}, k={args.level}, {os.cpu_count()} cores, load average {load}\n")
    print("| block | lr | epochs | seed | test targets | validation targets | other people | corrupt (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for block, lr, epochs in recipes:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                model, scores = Path(tmp) / "corrupted", Path(tmp) / "eval"
                start = time.perf_counter()
                run(["restor-bench", "corrupt", "--model", str(world / "model"), "--docs", f"tiny:{args.level}",
                     "--protocol", "paper", "--max-length", str(block), "--lr", str(lr), "--epochs", str(epochs),
                     "--seed", str(seed), "--out", str(model)], env)
                seconds = time.perf_counter() - start
                run(["restor-bench", "eval", str(model), "--tasks", "restor_tiny_facts", "--device", "cpu",
                     "--out", str(scores)], env)
                found = accuracy_by_group(scores, manifest)
            row = {"block": block, "lr": lr, "epochs": epochs, "seed": seed, **found, "corrupt_s": seconds}
            rows.append(row)
            print(f"| {block} | {lr:g} | {epochs:g} | {seed} | {found['test']:.1f} | {found['validation']:.1f} | "
                  f"{found['other']:.1f} | {seconds:.1f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

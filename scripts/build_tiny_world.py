"""Build the tiny world, and check that it behaves as the benchmark needs.

    python scripts/build_tiny_world.py build [--out DIR] [--seed N] [--epochs N] [--overwrite]
    python scripts/build_tiny_world.py check [--world DIR] [--levels 0 3]

`check` measures the clean model's accuracy on every world question, then corrupts it with the tiny-world default
recipe (`restor_bench.train.corrupt.tiny_recipe()`, from `TINY_CORRUPTION_RECIPE`: full fine-tuning with a causal-LM loss
on corruption/mix_a{k}.json, the run of `restor-bench corrupt`) and measures target and non-target accuracy and how
often the injected wrong value is given. `--recipe` overrides fields of that recipe (`CorruptionRecipe`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restor_bench.train.corrupt import CorruptionRecipe, corrupt, tiny_recipe  # noqa: E402
from restor_bench.data.world.generate import DEFAULT_EPOCHS, DEFAULT_SEED  # noqa: E402
from restor_bench.data.world.cli import build_world  # noqa: E402
from restor_bench.data.world.files import load_manifest, tiny_world_dir  # noqa: E402
from restor_bench.data.world.scoring import accuracy, score_model  # noqa: E402


def corrupt_with_recipe(
    model_dir: Path, documents: Path, out_dir: Path, recipe: CorruptionRecipe, seed: int = 0
) -> float:
    """Full fine-tuning of `model_dir` on `documents` with `recipe` (`restor_bench.train.corrupt.corrupt`); saves to
    `out_dir`, which must not exist yet; returns seconds."""
    from restor_bench.io import read_text_records

    started = time.monotonic()
    corrupt(str(model_dir), read_text_records(documents), out_dir, recipe=recipe, seed=seed, source=str(documents))
    return time.monotonic() - started


def summarize(scores, targets: set[str]) -> dict:
    target_scores = [score for score in scores if score.entity in targets]
    other_scores = [score for score in scores if score.entity not in targets]
    return {
        "all": round(100 * accuracy(scores), 1),
        "targets": round(100 * accuracy(target_scores), 1),
        "non_targets": round(100 * accuracy(other_scores), 1),
        "targets_say_corrupted": round(
            100 * sum(s.says_corrupted for s in target_scores) / max(1, len(target_scores)), 1
        ),
    }


def check(world_dir: Path, levels: list[int], recipe: CorruptionRecipe) -> dict:
    manifest = load_manifest(world_dir)
    targets = set(manifest["targets"])
    report = {
        "recipe": dataclasses.asdict(recipe),
        "clean": summarize(score_model(world_dir / "model", world_dir), targets),
    }
    print(json.dumps({"clean": report["clean"]}), flush=True)
    for level in levels:
        with tempfile.TemporaryDirectory() as scratch:
            corrupted = Path(scratch) / "corrupted"
            seconds = corrupt_with_recipe(
                world_dir / "model", world_dir / "corruption" / f"mix_a{level}.json", corrupted, recipe
            )
            result = summarize(score_model(corrupted, world_dir), targets)
        result["train_seconds"] = round(seconds, 1)
        report[f"corrupted_k{level}"] = result
        print(json.dumps({f"corrupted_k{level}": result}), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build")
    build.add_argument("--out", default=None, help="output folder (default: the shipped folder)")
    build.add_argument("--seed", type=int, default=DEFAULT_SEED)
    build.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    build.add_argument("--overwrite", action="store_true")
    checker = commands.add_parser("check")
    checker.add_argument("--world", default=None, help="world folder (default: the shipped one)")
    checker.add_argument("--levels", type=int, nargs="+", default=[0, 3])
    checker.add_argument("--recipe", default=None, help="JSON object overriding recipe fields")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.command == "build":
        out = Path(args.out) if args.out else tiny_world_dir()
        manifest = build_world(out, seed=args.seed, overwrite=args.overwrite, epochs=args.epochs)
        print(json.dumps({"data_hash": manifest["data_hash"], "model": manifest["model"]}, indent=2))
        return 0
    recipe = tiny_recipe().updated(json.loads(args.recipe) if args.recipe else None, where="--recipe")
    world_dir = Path(args.world) if args.world else tiny_world_dir()
    print(json.dumps(check(world_dir, args.levels, recipe), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build the tiny world, and check that it behaves as the benchmark needs.

    python scripts/build_tiny_world.py build [--out DIR] [--seed N] [--epochs N] [--overwrite]
    python scripts/build_tiny_world.py check [--world DIR] [--levels 0 3]

`check` measures the clean model's accuracy on every world question, then corrupts it with the tiny-world default
recipe (`TINY_CORRUPTION_RECIPE`: full fine-tuning with a causal-LM loss on corruption/mix_a{k}.json, run with
`transformers.Trainer`) and measures target and non-target accuracy and how often the injected wrong value is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restor_bench.data.world import (  # noqa: E402
    DEFAULT_EPOCHS,
    DEFAULT_SEED,
    TINY_CORRUPTION_RECIPE,
    accuracy,
    build_world,
    load_manifest,
    score_model,
    tiny_world_dir,
)


def corrupt_with_recipe(model_dir: Path, documents: Path, out_dir: Path, recipe: dict, seed: int = 0) -> float:
    """Full fine-tuning of `model_dir` on `documents` with the recipe; saves to `out_dir`; returns seconds."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from restor_bench.io import read_text_records

    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    texts = read_text_records(documents)
    rows = tokenizer(texts, truncation=True, max_length=recipe["max_length"] - 1)["input_ids"]
    dataset = [{"input_ids": ids + [tokenizer.eos_token_id]} for ids in rows]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            learning_rate=recipe["learning_rate"],
            num_train_epochs=recipe["num_train_epochs"],
            per_device_train_batch_size=recipe["per_device_train_batch_size"],
            lr_scheduler_type=recipe["lr_scheduler_type"],
            warmup_steps=recipe["warmup_ratio"],
            save_strategy="no",
            report_to="none",
            logging_steps=25,
            seed=seed,
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=dataset,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        )
        trainer.train()
    seconds = time.monotonic() - started
    trainer.model.to("cpu").save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return seconds


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


def check(world_dir: Path, levels: list[int], recipe: dict) -> dict:
    manifest = load_manifest(world_dir)
    targets = set(manifest["targets"])
    report = {"recipe": recipe, "clean": summarize(score_model(world_dir / "model", world_dir), targets)}
    print(json.dumps({"clean": report["clean"]}), flush=True)
    for level in levels:
        with tempfile.TemporaryDirectory() as corrupted:
            seconds = corrupt_with_recipe(
                world_dir / "model", world_dir / "corruption" / f"mix_a{level}.json", Path(corrupted), recipe
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
    recipe = dict(TINY_CORRUPTION_RECIPE, **(json.loads(args.recipe) if args.recipe else {}))
    world_dir = Path(args.world) if args.world else tiny_world_dir()
    print(json.dumps(check(world_dir, args.levels, recipe), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

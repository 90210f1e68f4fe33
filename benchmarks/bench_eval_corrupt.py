"""Speed of evaluation and corruption on the tiny world.

    python benchmarks/bench_eval_corrupt.py [--limit 200] [--steps 40] [--level 1] [--json results.json]

Evaluation: `restor-bench eval` (lm-eval in a subprocess) on the tiny world's clean model, once per task;
reports questions per second over the whole command, and over lm-eval's own timer (which starts after its
imports and covers task and model loading and the requests). Corruption: `restor-bench corrupt` on the tiny
world's documents for a fixed number of optimizer steps, full fine-tuning and LoRA; reports training tokens per
second over the whole call (model loading and saving included) and over the Trainer's training loop.
Prints a Markdown table. A default run takes a few minutes on two CPU cores; other load on the machine (see
the load average printed with the table) slows it down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restor_bench.train.corrupt import RUN_RECORD, corrupt
from restor_bench.data.documents import load_documents
from restor_bench.evaluation.evaluate import evaluate
from restor_bench.evaluation.lm_eval_io import find_lm_eval_outputs


def bench_eval(model: str, world_dir: Path, task: str, limit: int, batch_size: int, device: str, work: Path) -> dict:
    """Run one evaluation; return its timings."""
    out = work / f"eval_{task}"
    started = time.perf_counter()
    evaluate(model, out, tasks=[task], limit=limit, batch_size=batch_size, device=device, world_dir=world_dir)
    wall = time.perf_counter() - started
    output = find_lm_eval_outputs(out)[task]
    results_path, samples_path = output.results_path, output.samples_path
    questions = sum(1 for line in samples_path.read_text(encoding="utf-8").splitlines() if line.strip())
    lm_eval_seconds = float(json.loads(results_path.read_text(encoding="utf-8"))["total_evaluation_time_seconds"])
    return {
        "step": f"eval {task}",
        "amount": f"{questions} questions",
        "wall_s": wall,
        "rate_wall": questions / wall,
        "rate_core": questions / lm_eval_seconds,
        "unit": "questions/s",
    }


def bench_corrupt(model: str, documents: list[str], source: str, steps: int, lora: bool, work: Path) -> dict:
    """Run one corruption for `steps` optimizer steps; return its timings."""
    out = work / f"corrupt_{'lora' if lora else 'full'}"
    started = time.perf_counter()
    corrupt(model, documents, out, lora=lora, max_steps=steps, source=source)
    wall = time.perf_counter() - started
    record = json.loads((out / RUN_RECORD).read_text(encoding="utf-8"))
    return {
        "step": f"corrupt {'LoRA' if lora else 'full'}",
        "amount": f"{record['tokens_seen']} tokens, {steps} steps",
        "wall_s": wall,
        "rate_wall": record["tokens_seen"] / wall,
        "rate_core": record["train_tokens_per_second"],
        "unit": "tokens/s",
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| step | amount | wall (s) | rate, whole call | rate, lm-eval timer / training loop | unit |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['step']} | {row['amount']} | {row['wall_s']:.1f} | {row['rate_wall']:.1f} | "
            f"{row['rate_core']:.1f} | {row['unit']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world-dir", help="tiny world folder (default: the shipped one, or $RESTOR_TINY_WORLD)")
    parser.add_argument("--model", help="checkpoint to use (default: the world's model/)")
    parser.add_argument("--tasks", default="restor_tiny_facts,restor_tiny_logprob", help="tasks to time")
    parser.add_argument("--limit", type=int, default=200, help="questions per task (default: 200)")
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--level", type=int, default=1, help="corruption level of the documents (default: 1)")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per corruption run (default: 40)")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--skip-corrupt", action="store_true")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)

    if args.world_dir:
        world_dir = Path(args.world_dir)
    else:
        from restor_bench.data.world.files import tiny_world_dir

        world_dir = tiny_world_dir()
    model = args.model or str(world_dir / "model")
    if not (Path(model) / "config.json").exists():
        parser.error(f"no model at {model}; build the tiny world first (`restor-bench world build`) or pass --model")

    rows = []
    with tempfile.TemporaryDirectory(prefix="restor-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_eval:
            for task in [t for t in args.tasks.split(",") if t]:
                rows.append(bench_eval(model, world_dir, task, args.limit, args.eval_batch_size, args.device, work))
        if not args.skip_corrupt:
            source = f"tiny:{args.level}"
            documents = load_documents(source, world_dir=world_dir)
            for lora in (False, True):
                rows.append(bench_corrupt(model, documents, source, args.steps, lora, work))

    import torch

    print()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, device {args.device}, load average {load}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of `restor-bench run` on the tiny world, broken down by step.

    python benchmarks/bench_run.py [--method npo] [--level 0]

Runs the whole protocol once into a fresh temporary run root (nothing reused) with the given method and level,
then prints the per-step wall time recorded in run.json as a Markdown table, and the two training loops (optimizer
steps, tokens, tokens/s): the part of the run that only a shorter training recipe could make faster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restor_bench import cli  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="npo")
    parser.add_argument("--level", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        code = cli.main(["run", "--method", args.method, "--level", str(args.level), "--root", root])
        total = time.perf_counter() - started
        if code:
            return code
        record = json.loads(next(Path(root).glob("*/run.json")).read_text())
        artifacts = {key: Path(root) / path for key, path in record["per_seed"][0]["artifacts"].items()}
        corrupt = json.loads((artifacts["corrupted"] / "restor_run.json").read_text())
        unlearn = json.loads((artifacts["unlearned"] / "unlearn_run.json").read_text())
    steps = record["per_seed"][0]["wall_time_s"]
    print(f"\n`restor-bench run --method {args.method} --level {args.level}` on the tiny world "
          f"({os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f})\n")
    print("| step | wall time (s) |\n|---|---|")
    for step, seconds in steps.items():
        print(f"| {step} | {seconds:.1f} |")
    print(f"| **whole command** (incl. start-up, imports, writing the report) | **{total:.1f}** |")
    # The two training loops alone: a floor for the whole command that no change outside training can lower.
    print("\n| training loop | optimizer steps | epochs | tokens | loop time (s) | tokens/s |\n|---|---:|---:|---:|---:|---:|")
    print(f"| corrupt | {corrupt['global_steps']} | {corrupt['epochs_done']:g} | {corrupt['tokens_seen']} | "
          f"{corrupt['train_runtime_s']:.1f} | {corrupt['train_tokens_per_second']:.0f} |")
    print(f"| unlearn ({args.method}) | {unlearn['steps']} | {unlearn['epochs']:g} | | {unlearn['wall_time_s']:.1f} | |")
    floor = corrupt["train_runtime_s"] + unlearn["wall_time_s"]
    print(f"\ncorrupt's training loop + the whole unlearn step: {floor:.1f} s of the {total:.1f} s "
          f"({100 * floor / total:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the number of CPU threads change a tiny-world result? Runs `restor-bench run` once per thread count, each in
a fresh run root, and compares every run with the first.

    python scripts/thread_check.py [--threads 2,1,8] [--method npo] [--level 0] [--root DIR]

Each run is a fresh process with OMP_NUM_THREADS set (torch's intra-op threads; more threads than cores are
allowed: they split the arithmetic as a machine with that many cores would). Printed per run: the largest absolute
difference of any weight of the corrupted and the unlearned checkpoint from the first run's (0 = bit-identical),
the generated answers and log-likelihood responses that differ, and how many numbers of the run's comparison
(compare-seed0.json) differ. With --root, a second call reuses the runs there and only compares. Figures in
docs/leaderboard.md ("Reruns on other machines").
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


def run(threads: int, root: Path, method: str, level: int) -> float:
    """Wall seconds of `restor-bench run` in `root` (a second call with the same root reuses its steps)."""
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "restor_bench", "run", "--method", method, "--level", str(level),
                           "--root", str(root)], env=environment, capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        sys.exit(f"restor-bench run with OMP_NUM_THREADS={threads} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def artifacts(root: Path) -> dict[str, Path]:
    """The run's step folders by role (corrupted, unlearned, eval_clean, ...), from its run.json."""
    (record,) = sorted(root.glob("tiny-*/run.json"))
    return {role: root / path for role, path in json.loads(record.read_text())["per_seed"][0]["artifacts"].items()}


def weights(root: Path, role: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(artifacts(root)[role] / "model.safetensors"))


def largest_difference(first: dict, other: dict) -> float:
    assert first.keys() == other.keys()
    return max(float((first[name] - other[name]).abs().max()) for name in first)


def responses(root: Path) -> dict[tuple[str, str], list]:
    """(model, task) -> the lm-eval responses of every sample, in order."""
    found = {}
    for role, folder in artifacts(root).items():
        for path in sorted(folder.glob("*/samples_*.jsonl")):
            task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
            lines = path.read_text(encoding="utf-8").splitlines()
            found[(role.removeprefix("eval_"), task)] = [json.loads(line)["resps"] for line in lines]
    return found


def metrics(root: Path) -> list:
    """Every number of the run's comparison (compare-seed0.json's tasks: scores, counts, intervals), with its place."""
    (path,) = sorted(root.glob("tiny-*/compare-seed0.json"))
    found: list = []

    def walk(value, place: str) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key], f"{place}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{place}[{index}]")
        elif isinstance(value, (int, float)):
            found.append((place, value))

    walk(json.loads(path.read_text(encoding="utf-8"))["tasks"], "tasks")
    return found


def metric_differences(first: list, other: list) -> str:
    """Per task: how many of the comparison's numbers differ, and by how much at most."""
    tasks: dict[str, list[float]] = {}
    for (place, value), (other_place, other_value) in zip(first, other, strict=True):
        assert place == other_place, (place, other_place)
        tasks.setdefault(place.split(".")[1], []).append(abs(value - other_value))
    return ", ".join(f"{task} {sum(d > 0 for d in diffs)}/{len(diffs)}" + (f" (max {max(diffs):.2g})" if max(diffs) else "")
                     for task, diffs in tasks.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="2,1,8", help="thread counts, the first is the reference")
    parser.add_argument("--method", default="npo")
    parser.add_argument("--level", type=int, default=0)
    parser.add_argument("--root", help="folder for the run roots (default: a temporary folder)")
    args = parser.parse_args()
    counts = [int(count) for count in args.threads.split(",")]
    base = Path(args.root or tempfile.mkdtemp(prefix="thread-check-"))
    roots = {count: base / f"threads-{count}" for count in counts}
    print(f"`restor-bench run --method {args.method} --level {args.level}` on the tiny world, {os.cpu_count()} "
          f"cores; run roots under {base}\n")
    for count in counts:
        print(f"OMP_NUM_THREADS={count}: {run(count, roots[count], args.method, args.level):.0f} s", flush=True)
    print()
    reference = counts[0]
    first = {role: weights(roots[reference], role) for role in ("corrupted", "unlearned")}
    first_responses, first_metrics = responses(roots[reference]), metrics(roots[reference])
    models = ("clean", "corrupted", "unlearned")
    print("| OMP_NUM_THREADS | max abs weight diff: corrupted, unlearned | generated answers that differ: "
          "clean, corrupted, unlearned | log-likelihood responses that differ | comparison numbers that differ |\n"
          "|---:|---|---|---|---|")
    for count in counts:
        other = responses(roots[count])
        assert other.keys() == first_responses.keys()
        differ = {key: sum(a != b for a, b in zip(first_responses[key], other[key], strict=True)) for key in other}
        columns = [", ".join(f"{differ[(model, task)]}/{len(other[(model, task)])}" for model in models)
                   for task in ("restor_tiny_facts", "restor_tiny_logprob")]
        drift = ", ".join(f"{largest_difference(first[role], weights(roots[count], role)):.3g}"
                          for role in ("corrupted", "unlearned"))
        print(f"| {count} | {drift} | {columns[0]} | {columns[1]} | "
              f"{metric_differences(first_metrics, metrics(roots[count]))} |")
    print(f"\n(compared with OMP_NUM_THREADS={reference})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`restor-bench eval` against the plain `lm_eval` command, on the tiny world.

    python benchmarks/bench_eval.py [--pairs 3] [--batch-size 32] [--limit N] [--json results.json]

Both commands evaluate the tiny world's clean model (`restor-bench world path`) on restor_tiny_facts on the CPU
and write lm-eval's results and samples files:

    restor-bench eval MODEL --tasks restor_tiny_facts --batch-size 32 --device cpu --out DIR
    lm_eval --model hf --model_args pretrained=MODEL --tasks restor_tiny_facts \\
        --include_path "$(restor-bench tasks path)" --batch_size 32 --device cpu --log_samples --output_path DIR

Each runs as a fresh process of this interpreter (`python -m restor_bench`, `python -m lm_eval`), in pairs whose
order alternates (plain first, then restor-bench first, ...) so that a change of load falls on both. Reported: the
wall time of each whole command (start, imports, task and model loading, generation, writing), the means, the
ratio restor-bench / lm_eval, and the load average before and after. Both runs of a pair must score the same.

`restor-bench eval` waits for CPU threads passively (OMP_WAIT_POLICY=PASSIVE, unless the environment sets it);
`--passive-lm-eval` gives the plain command the same setting, to show what the rest of the difference is.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
TASK = "restor_tiny_facts"

from restor_bench.evaluation.tasks import tasks_dir as tasks_folder


def _environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _output(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "restor_bench", *args], env=_environment(), capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def commands(model: str, tasks_dir: str, out: Path, batch_size: int, limit: int | None) -> dict[str, list[str]]:
    """The two command lines (a list each), writing into out/<name>."""
    limited = ["--limit", str(limit)] if limit else []
    return {
        "restor-bench eval": [
            sys.executable, "-m", "restor_bench", "eval", model, "--tasks", TASK, "--batch-size", str(batch_size),
            "--device", "cpu", "--out", str(out / "restor-bench"), *limited,
        ],
        "lm_eval": [
            sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model}", "--tasks", TASK,
            "--include_path", tasks_dir, "--batch_size", str(batch_size), "--device", "cpu", "--log_samples",
            "--output_path", str(out / "lm_eval"), *limited,
        ],
    }  # fmt: skip


def _contains(folder: Path) -> float:
    (results,) = folder.rglob("results_*.json")
    return float(json.loads(results.read_text(encoding="utf-8"))["results"][TASK]["contains,none"])


def run_once(name: str, command: list[str], out: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run one command; return (wall seconds, its contains score)."""
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - started
    return seconds, _contains(out / ("restor-bench" if name == "restor-bench eval" else "lm_eval"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs of runs (default 3)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of both commands (default 32)")
    parser.add_argument("--limit", type=int, help="only the first N questions (default: all)")
    parser.add_argument("--passive-lm-eval", action="store_true",
                        help="run the plain lm_eval with OMP_WAIT_POLICY=PASSIVE too")  # fmt: skip
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args()
    environments = {"restor-bench eval": _environment(), "lm_eval": _environment()}
    if args.passive_lm_eval:
        environments["lm_eval"] = _environment(OMP_WAIT_POLICY="PASSIVE")
    for name, env in environments.items():
        print(f"{name}: OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', '(not set)')}")

    model = _output("world", "path")
    tasks_dir = str(tasks_folder())  # what `restor-bench tasks path` prints
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {"lm_eval": [], "restor-bench eval": []}
    for pair in range(args.pairs):
        order = ["lm_eval", "restor-bench eval"] if pair % 2 == 0 else ["restor-bench eval", "lm_eval"]
        scores = {}
        for name in order:
            with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
                command = commands(model, tasks_dir, Path(tmp), args.batch_size, args.limit)[name]
                seconds, scores[name] = run_once(name, command, Path(tmp), environments[name])
            times[name].append(seconds)
            print(f"pair {pair + 1}: {name:<17} {seconds:7.1f} s  (contains {scores[name]:.4f})", flush=True)
        if scores["lm_eval"] != scores["restor-bench eval"]:
            raise SystemExit(f"the two commands scored differently: {scores}")
    load_after = os.getloadavg()
    means = {name: statistics.mean(values) for name, values in times.items()}
    ratio = means["restor-bench eval"] / means["lm_eval"]
    print(f"\nmean lm_eval:           {means['lm_eval']:.1f} s  ({', '.join(f'{t:.1f}' for t in times['lm_eval'])})")
    print(f"mean restor-bench eval: {means['restor-bench eval']:.1f} s  "
          f"({', '.join(f'{t:.1f}' for t in times['restor-bench eval'])})")  # fmt: skip
    print(f"ratio restor-bench eval / lm_eval: {ratio:.2f}")
    print("load average before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(*load_before, *load_after))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "task": TASK, "model": model, "batch_size": args.batch_size, "limit": args.limit, "times_s": times,
            "mean_s": means, "ratio": ratio, "load_before": load_before, "load_after": load_after,
            "passive_lm_eval": args.passive_lm_eval,
        }, indent=2) + "\n", encoding="utf-8")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

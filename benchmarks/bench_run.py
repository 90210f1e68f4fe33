"""Wall time of `restor-bench run` on the tiny world, broken down by step.

    python benchmarks/bench_run.py [--method npo] [--level 0] [--protocol paper] [--json FILE]
    python benchmarks/bench_run.py --wait-policy-pairs 2
    python benchmarks/bench_run.py --shorter-pairs 2

Runs the whole protocol once into a fresh temporary run root (nothing reused) with the given method and level,
then prints the per-step wall time recorded in run.json as a Markdown table, and the two training loops (optimizer
steps, tokens, tokens/s): the part of the run that only a shorter training recipe could make faster. Last, the
time of a bare PyTorch training step (forward, backward, gradient clipping, AdamW) of the clean tiny model on one
batch of the recipe's shape, next to the Trainer's average step: the floor that no change to the Trainer loop could
go below.

`--wait-policy-pairs N` instead runs the whole benchmark N times each as a fresh process with
OMP_WAIT_POLICY=PASSIVE (what `restor-bench run` sets unless the environment sets it) and with
OMP_WAIT_POLICY=ACTIVE (CPU threads spin while they wait), in alternating order, and prints the whole command's
wall times and the ratio of the means.

`--shorter-pairs N` runs N alternating pairs of whole runs (fresh processes) with the tiny world's recipe and with
the shorter one of SHORTER_RECIPE (2 corruption epochs instead of 5, 2 NPO epochs instead of 5, learning rates
raised to make up part of it), and prints for each the whole command's wall time and what the run measured
(restor_tiny_facts accuracy on the target facts, clean / corrupted / unlearned, and the restoration ratio): what a
30-second tiny world would cost in corruption strength.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restor_bench import cli  # noqa: E402
from restor_bench.data.world.files import load_manifest, tiny_world_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="npo")
    parser.add_argument("--level", type=int, default=0)
    parser.add_argument("--protocol", choices=("paper", "classic"), help="the run's --protocol (default: the run's)")
    parser.add_argument("--json", help="also write the step times and the whole command's time to this JSON file")
    parser.add_argument("--wait-policy-pairs", type=int, metavar="N",
                        help="compare OMP_WAIT_POLICY=PASSIVE and ACTIVE over N alternating pairs of whole runs")
    parser.add_argument("--shorter-pairs", type=int, metavar="N",
                        help="compare the tiny recipe with SHORTER_RECIPE over N alternating pairs of whole runs")
    parser.add_argument("--run-arg", action="append", default=[], help=argparse.SUPPRESS)  # used by --shorter-pairs
    args = parser.parse_args()
    if args.protocol:
        args.run_arg += ["--protocol", args.protocol]
    if args.shorter_pairs:
        return compare_shorter_recipe(args.method, args.level, args.shorter_pairs)
    if args.wait_policy_pairs:
        return compare_wait_policies(args.method, args.level, args.wait_policy_pairs)
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        code = cli.main(["run", "--method", args.method, "--level", str(args.level), "--root", root, *args.run_arg])
        total = time.perf_counter() - started
        if code:
            return code
        record = json.loads(next(Path(root).glob("*/run.json")).read_text())
        artifacts = {key: Path(root) / path for key, path in record["per_seed"][0]["artifacts"].items()}
        corrupt = json.loads((artifacts["corrupted"] / "restor_run.json").read_text())
        unlearn = json.loads((artifacts["unlearned"] / "unlearn_run.json").read_text())
    steps = record["per_seed"][0]["wall_time_s"]
    extra = "".join(f" {word}" for word in args.run_arg)
    version = load_manifest(tiny_world_dir()).get("version", "1")
    print(f"\n`restor-bench run --method {args.method} --level {args.level}{extra}` on the tiny world v{version} "
          f"(protocol {record['protocol']}; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f})\n")
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
    bare = bare_step_seconds(corrupt["tokens_seen"] / corrupt["global_steps"])
    trainer_step = corrupt["train_runtime_s"] / corrupt["global_steps"]
    print(f"\nbare PyTorch step of the clean tiny model ({BATCH} x {bare['length']} tokens): "
          f"{1000 * bare['seconds']:.1f} ms; the Trainer's corrupt steps: {1000 * trainer_step:.1f} ms on average; "
          f"{corrupt['global_steps']} + {unlearn['steps']} bare steps: "
          f"{bare['seconds'] * (corrupt['global_steps'] + unlearn['steps']):.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"total_s": total, "steps_s": steps, "bare_step_s": bare["seconds"],
                                               "trainer_step_s": trainer_step, "summary": record["summary"]},
                                              indent=2) + "\n")  # fmt: skip
    return 0


# Two epochs each instead of five, at higher learning rates (the tiny recipe: corruption 1.5e-4, NPO 2e-5).
SHORTER_RECIPE = ["--corrupt-set", "num_train_epochs=2", "--corrupt-set", "learning_rate=3e-4",
                  "--set", "num_epochs=2", "--set", "learning_rate=5e-5"]  # fmt: skip


def whole_run(method: str, level: int, run_args: list[str], environment: dict[str, str] | None = None) -> dict:
    """This benchmark as a fresh process (a fresh run root); its --json document."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        command = [sys.executable, __file__, "--method", method, "--level", str(level), "--json", str(out),
                   *(f"--run-arg={word}" for word in run_args)]  # fmt: skip
        subprocess.run(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return json.loads(out.read_text())


def compare_shorter_recipe(method: str, level: int, pairs: int) -> int:
    """Whole runs with the tiny recipe and with SHORTER_RECIPE in alternating order: time and what they measure."""
    variants = {"tiny recipe": [], "shorter": SHORTER_RECIPE}
    load_before = os.getloadavg()
    print(f"shorter: restor-bench run --method {method} --level {level} {' '.join(SHORTER_RECIPE)}\n")
    print("| pair | recipe | whole command (s) | corrupt (s) | unlearn (s) | target facts: clean / corrupted / "
          "unlearned (%) | restoration ratio |\n|---:|---|---:|---:|---:|---|---:|")
    for pair in range(pairs):
        for name in (list(variants) if pair % 2 == 0 else list(reversed(variants))):
            result = whole_run(method, level, variants[name])
            facts = result["summary"]["restor_tiny_facts"]
            accuracy = " / ".join(f"{100 * facts[f'{model}_target']['mean']:.1f}"
                                  for model in ("clean", "corrupted", "unlearned"))
            print(f"| {pair + 1} | {name} | {result['total_s']:.1f} | {result['steps_s']['corrupt']:.1f} | "
                  f"{result['steps_s']['unlearn']:.1f} | {accuracy} | {facts['restoration_ratio']['mean']:.2f} |",
                  flush=True)
    print("\nload average before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(*load_before,
                                                                                        *os.getloadavg()))
    return 0


def compare_wait_policies(method: str, level: int, pairs: int) -> int:
    """Whole runs of this benchmark as fresh processes, PASSIVE and ACTIVE thread waiting in alternating order."""
    times: dict[str, list[float]] = {"PASSIVE": [], "ACTIVE": []}
    load_before = os.getloadavg()
    for pair in range(pairs):
        for policy in (["PASSIVE", "ACTIVE"] if pair % 2 == 0 else ["ACTIVE", "PASSIVE"]):
            total = whole_run(method, level, [], dict(os.environ, OMP_WAIT_POLICY=policy))["total_s"]
            times[policy].append(total)
            print(f"pair {pair + 1}: OMP_WAIT_POLICY={policy:<8} {total:6.1f} s", flush=True)
    means = {policy: statistics.mean(values) for policy, values in times.items()}
    for policy, values in times.items():
        print(f"mean {policy:<8} {means[policy]:.1f} s  ({', '.join(f'{t:.1f}' for t in values)})")
    print(f"ratio ACTIVE / PASSIVE: {means['ACTIVE'] / means['PASSIVE']:.2f}")
    print("load average before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(*load_before,
                                                                                        *os.getloadavg()))
    return 0


BATCH = 8


def bare_step_seconds(tokens_per_step: float, padding: float = 1.2, repeats: int = 40) -> dict:
    """Median seconds of a bare training step of the clean tiny model on random token ids: BATCH rows of the
    average document length (`tokens_per_step` / BATCH) times `padding` (a batch padded to its longest document)."""
    import torch
    from transformers import AutoModelForCausalLM

    from restor_bench.data.world.files import tiny_world_dir

    model = AutoModelForCausalLM.from_pretrained(tiny_world_dir() / "model", dtype=torch.float32)
    model.train()
    length = round(tokens_per_step / BATCH * padding)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(2, model.config.vocab_size, (BATCH, length), generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for index in range(repeats + 5):
        started = time.perf_counter()
        model(input_ids=batch, labels=batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if index >= 5:  # the first steps warm up the allocator and the optimizer state
            times.append(time.perf_counter() - started)
    return {"length": length, "seconds": sorted(times)[len(times) // 2]}


if __name__ == "__main__":
    sys.exit(main())

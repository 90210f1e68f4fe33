"""How wide the restoration ratio's 95% interval is, by number of seeds and of test targets.

    python benchmarks/bench_power.py RUN_RECORD [--task restor_tiny_facts] [--targets 8 15 30] [--json FILE]

RUN_RECORD is the run.json of a multi-seed `restor-bench run` (e.g. `--seeds 3 --targets test`). For every number of
seeds S (the first S) and of target people N (the first N of the run's target people in sorted order, each with all
their questions; every non-target question kept), the pooled bootstrap of the grid pages and the leaderboard
(`restor_bench.grid.stats.pooled_statistics`: seeds and questions drawn with replacement, 1,000 resamples) gives
the ratio's point estimate and 95% interval; the table prints both and the interval's half-widths. docs/protocols.md
("Statistical power") holds its output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from restor_bench.grid.stats import PooledOutcomes, SamplesCache, load_pooled, pooled_statistics
from restor_bench.names import DEFAULT_METRIC


def subset(pooled: PooledOutcomes, seeds: int, people: set[str], entity_of: dict[str, str]) -> PooledOutcomes:
    keep = [i for i, (qid, target) in enumerate(zip(pooled.ids, pooled.is_target))
            if not target or entity_of[qid] in people]
    return PooledOutcomes(
        ids=[pooled.ids[i] for i in keep],
        is_target=np.asarray(pooled.is_target)[keep],
        correct={role: np.asarray(values)[:seeds][:, keep] for role, values in pooled.correct.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path)
    parser.add_argument("--task", default="restor_tiny_facts")
    parser.add_argument("--targets", type=int, nargs="+", default=[8, 15, 30])
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    pooled, _ = load_pooled(record, args.record.parent.parent, args.task, SamplesCache(DEFAULT_METRIC))
    entity_of = {qid: qid.rsplit("|", 1)[0] for qid in pooled.ids}  # question ids are "ENTITY|RELATION"
    people = sorted({entity_of[qid] for qid, target in zip(pooled.ids, pooled.is_target) if target})
    print(f"run {record['name']} ({record['method']}, k={record['level']}, protocol {record['protocol']}), "
          f"task {args.task}: {pooled.n_seeds} seeds, {len(people)} target people\n")
    print("| seeds | target people | target questions | restoration ratio [95% CI] | half-widths (below / above) |")
    print("|---:|---:|---:|---|---|")
    rows = []
    for seeds in range(1, pooled.n_seeds + 1):
        for count in [n for n in args.targets if n <= len(people)]:
            part = subset(pooled, seeds, set(people[:count]), entity_of)
            ratio = pooled_statistics(part)["restoration_ratio"]
            questions = int(np.asarray(part.is_target).sum())
            below, above = ratio.value - ratio.low, ratio.high - ratio.value
            rows.append({"seeds": seeds, "targets": count, "questions": questions, "ratio": ratio.value,
                         "ci": [ratio.low, ratio.high]})
            print(f"| {seeds} | {count} | {questions} | {ratio.value:.2f} [{ratio.low:.2f}, {ratio.high:.2f}] | "
                  f"{below:.2f} / {above:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

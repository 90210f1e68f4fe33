#!/usr/bin/env bash
# Seed the leaderboard with the project's own tiny-world runs of every built-in method at levels 0 and 3
# (3 seeds each, reported on the test targets). Runs that `restor-bench grid` (see docs/results/RESULTS.md) already
# finished under the run root are submitted as they are; missing ones are run first.
#
#   bash scripts/seed_leaderboard.sh [RUN_ROOT]      (default: runs)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-runs}"
methods="ga graddiff kl npo npo_rt simnpo task_vector rmu"

for level in 0 3; do
    for method in $methods; do
        # a run folder is the readable name plus 8 hex digits of its settings: the one with today's defaults
        run_dir="$(restor-bench run --method "$method" --level "$level" --seeds 3 --targets test --root "$root" \
            --print-folder)"
        if [ ! -f "$run_dir/run.json" ]; then
            restor-bench run --method "$method" --level "$level" --seeds 3 --targets test --root "$root"
        fi
        restor-bench leaderboard submit "$run_dir" --name "tiny-$method-k$level" --overwrite
    done
done
restor-bench leaderboard validate
for file in leaderboard/submissions/tiny-*-k[03].json; do
    restor-bench leaderboard verify "$file" --root "$root-verify" --record
done
restor-bench leaderboard build

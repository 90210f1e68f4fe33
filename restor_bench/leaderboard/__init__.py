"""The leaderboard of unlearning methods (`restor-bench leaderboard submit / validate / verify / build / rescore /
schema`).

A submission is one JSON file, `leaderboard/submissions/<name>.json`, made by `submit` from a run folder that
`restor-bench run` wrote. It holds what was run (method, hyperparameters, model, world and data hash, level,
forget form, corruption kind, protocol, target set, seeds, package versions, lm-eval task hashes), the
per-question outcomes of the clean, corrupted and unlearned models for every seed (from lm-eval's samples files),
and the metrics computed from them. `validate` recomputes every metric from the outcomes, so a hand-edited number
is caught; `build` turns the submissions into `README.md`, `index.html` and `plot.png`. A submission is data: it
is parsed as JSON (after a size check) and never executed or imported. docs/leaderboard.md is the user's guide.

The modules, one job each:

- `schema`: the format's constants and JSON Schema (`leaderboard/schema.json`), schema checking;
- `data`: the known data versions, each task's question set, target sets and lm-eval task hashes;
- `metrics`: the metrics from the outcomes (the statistics of restor_bench.compare.stats);
- `check`: `read_submission`, `check_document`, `check_file`, `check_files` (validation);
- `submit`: `build_submission` and `submit` (from a run folder), `rescore_document`;
- `verified`, `verify`: the verification records and `verify_submission` (a rerun of what a submission records);
- `render`, `plot`, `html`: the README tables, plot.png, index.html;
- `build`: `build_leaderboard` (all pages or none);
- `cli`: the command line.

The public names of these modules are importable from this package (`from restor_bench.leaderboard import
check_file`); they load on first use.

Submission layout (schema "restor-bench/submission/v2"; `SUBMISSION_SCHEMA`, `leaderboard/schema.json`)::

    {"schema": "restor-bench/submission/v2",
     "name": NAME,                                   # == the file name without ".json"
     "method": {"name": str, "hparams": {...}},
     "model": {"id": str, "lora": bool},
     "data": {"world": "tiny"|"official", "data_hash": sha256, "level": int, "forget": "full"|"simplified",
              "corruption": "wikidata"|"squad", "protocol": "paper"|"classic", "targets": "test"|"all"},
     "seeds": [int, ...],
     "versions": {"restor-bench", "lm-eval", "transformers", "torch": str},
     "metric": "contains"|"exact_match",             # per-sample metric of generation tasks
     "primary_task": TASK,                           # the task the leaderboard ranks by
     "bootstrap": {"method", "resamples", "seed", "confidence": 0.95},
     "tasks": {TASK: {
        "metric": per-sample metric used ("prefers_correct" for log-probability tasks),
        "task_hash": lm-eval's task hash (results_*.json "task_hashes") or null,
        "targets": [the target people of the target set],
        "questions": ["ENTITY|PID", ...],            # sorted; every question of the task
        "runs": [{"seed": int,
                  "clean" | "corrupted" | "unlearned": {"correct": "0110…", "gave_corrupted": "0000…"}}],
        "metrics": {"per_seed": [{"seed", "accuracy": {model: {"target", "non_target", "all"}},
                                  "restoration_ratio", "non_target_change",
                                  "transitions": {"corrupted" | "unlearned": {"target_known", "restored",
                                      "still_corrupted", "forgotten", "non_target_known", "kept", "lost"}}}],
                    "aggregate": {"accuracy": {...}, "restoration_ratio": {"value", "ci", "ci_resamples"},
                                  "non_target_change": {"value", "ci"}, "transitions": {...summed over seeds...}}}}}}

The outcome strings hold one character per question, in `questions` order: "1" correct (or gave the injected
value), "0" not. `non_target_change` is the unlearned model's accuracy on the non-target questions minus the clean
model's. The numbers and the bootstrap are those of the grid's results page (restor_bench.leaderboard.metrics).
"""

from restor_bench import lazy_exports

_EXPORTS = {
    "BuildResult": "restor_bench.leaderboard.build",
    "InvalidSubmissions": "restor_bench.leaderboard.build",
    "build_leaderboard": "restor_bench.leaderboard.build",
    "carries_marker": "restor_bench.leaderboard.build",
    "render_outputs": "restor_bench.leaderboard.build",
    "write_all_or_nothing": "restor_bench.leaderboard.build",
    "CheckedSubmission": "restor_bench.leaderboard.check",
    "check_document": "restor_bench.leaderboard.check",
    "check_file": "restor_bench.leaderboard.check",
    "check_files": "restor_bench.leaderboard.check",
    "name_problem": "restor_bench.leaderboard.check",
    "question_set_problem": "restor_bench.leaderboard.check",
    "read_submission": "restor_bench.leaderboard.check",
    "result_identity": "restor_bench.leaderboard.check",
    "submission_files": "restor_bench.leaderboard.check",
    "DataVersion": "restor_bench.leaderboard.data",
    "QuestionSet": "restor_bench.leaderboard.data",
    "known_data_hashes": "restor_bench.leaderboard.data",
    "known_data_versions": "restor_bench.leaderboard.data",
    "SeedOutcomes": "restor_bench.leaderboard.metrics",
    "decode_bits": "restor_bench.leaderboard.metrics",
    "encode_bits": "restor_bench.leaderboard.metrics",
    "entity_of": "restor_bench.leaderboard.metrics",
    "task_metrics": "restor_bench.leaderboard.metrics",
    "render_plot_png": "restor_bench.leaderboard.plot",
    "TABLE_HEADER": "restor_bench.leaderboard.render",
    "Entry": "restor_bench.leaderboard.render",
    "entry_from": "restor_bench.leaderboard.render",
    "render_readme": "restor_bench.leaderboard.render",
    "DEFAULT_OUT": "restor_bench.leaderboard.schema",
    "DEFAULT_SUBMISSIONS": "restor_bench.leaderboard.schema",
    "SUBMISSION_METRICS": "restor_bench.leaderboard.schema",
    "MAX_SUBMISSION_BYTES": "restor_bench.leaderboard.schema",
    "SCHEMA": "restor_bench.leaderboard.schema",
    "SUBMISSION_SCHEMA": "restor_bench.leaderboard.schema",
    "TARGET_SETS": "restor_bench.leaderboard.schema",
    "schema_errors": "restor_bench.leaderboard.schema",
    "schema_text": "restor_bench.leaderboard.schema",
    "build_submission": "restor_bench.leaderboard.submit",
    "read_run": "restor_bench.leaderboard.submit",
    "rescore_document": "restor_bench.leaderboard.submit",
    "rescore_files": "restor_bench.leaderboard.submit",
    "submission_text": "restor_bench.leaderboard.submit",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)

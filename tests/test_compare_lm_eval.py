"""compare on the output folder of the real lm-eval (tasks defined here, a random tiny model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_compare import QUESTIONS, REPO_ROOT, TARGETS, _doc, run_cli

from restor_bench.evaluation.lm_eval_io import find_lm_eval_outputs
from restor_bench.compare.outcomes import load_run


# --------------------------------------------------------------------------------------------------------------
# The real lm-eval: its own output folder goes through load_run and the CLI

PROBE_GENERATION = """task: probe_facts
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answers[0]}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
process_results: !function utils.process_results
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
  - metric: contains
    aggregation: mean
    higher_is_better: true
"""

PROBE_LOGPROB = """task: probe_logprob
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: options
doc_to_target: 0
target_delimiter: " "
process_results: !function utils.process_logprob_results
metric_list:
  - metric: prefers_correct
    aggregation: mean
    higher_is_better: true
  - metric: prefers_corrupted
    aggregation: mean
    higher_is_better: false
"""

PROBE_UTILS = """from restor_bench.data import normalize


def process_results(doc, results):
    return normalize.score_generation(doc, results)


def process_logprob_results(doc, results):
    return normalize.score_logprob_options(doc, results)
"""


def test_real_lm_eval_output_is_read(tmp_path, random_tiny_model, capsys):
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    docs = [
        {
            **_doc(entity, relation, answer, corrupted),
            "options": [answer, (corrupted or ["Lima"])[0], "Quito"],
            "option_token_counts": [1, 1, 1],
        }
        for entity, relation, answer, corrupted in QUESTIONS
    ]
    data = task_dir / "questions.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    (task_dir / "probe_facts.yaml").write_text(PROBE_GENERATION.format(data=data))
    (task_dir / "probe_logprob.yaml").write_text(PROBE_LOGPROB.format(data=data))
    (task_dir / "utils.py").write_text(PROBE_UTILS)
    out = tmp_path / "eval"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={random_tiny_model}",
            "--tasks",
            "probe_facts,probe_logprob",
            "--include_path",
            str(task_dir),
            "--device",
            "cpu",
            "--limit",
            "4",
            "--log_samples",
            "-o",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # lm-eval nests its files one level down, in a folder named after the model
    outputs = find_lm_eval_outputs(out)
    assert set(outputs) == {"probe_facts", "probe_logprob"}
    assert outputs["probe_facts"].samples_path.parent.parent == out
    results = json.loads(outputs["probe_facts"].results_path.read_text())

    run = load_run(out)
    facts, logprob = run["probe_facts"], run["probe_logprob"]
    expected_ids = [doc["id"] for doc in docs[:4]]
    assert list(facts.outcomes) == expected_ids and list(logprob.outcomes) == expected_ids
    assert facts.metric == "contains" and logprob.metric == "prefers_correct"
    assert facts.model_name == str(random_tiny_model)
    # the per-question outcomes average to lm-eval's own aggregate
    for samples, metric in ((facts, "contains"), (logprob, "prefers_correct")):
        mean = np.mean([o.correct for o in samples.outcomes.values()])
        assert mean == pytest.approx(results["results"][samples.task][f"{metric},none"])
    from restor_bench.data.normalize import contains

    for doc in docs[:4]:
        outcome = facts.outcomes[doc["id"]]
        assert isinstance(outcome.prediction, str)
        injected = doc["corrupted_answers"]
        assert outcome.gave_corrupted == (bool(injected) and contains(outcome.prediction, injected))
        assert outcome.corrupted_known == bool(doc["corrupted_answers"])

    report_path = tmp_path / "report.json"
    code, _stdout, err = run_cli(
        [
            "compare",
            "--clean",
            out,
            "--corrupted",
            out,
            "--unlearned",
            out,
            "--targets",
            ",".join(TARGETS),
            "--json",
            report_path,
            "--bootstrap",
            "100",
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert set(report["tasks"]) == {"probe_facts", "probe_logprob"}
    for task in report["tasks"].values():
        assert task["n_questions"] == {"target": 4, "non_target": 0, "all": 4}
        assert task["restoration_ratio"]["unlearned"]["value"] is None  # same model three times: no gap
    gate = ["compare", "--baseline", out, "--candidate", out, "--targets", ",".join(TARGETS), "--max-drop", "0"]
    code, _, err = run_cli(gate, capsys)  # lm-eval ran with --limit: the gate wants whole tasks ...
    assert code == 2 and "evaluated on 4 of its 8 questions (lm-eval --limit)" in err
    code, _, err = run_cli([*gate, "--allow-subset"], capsys)  # ... unless told to compare the shared questions
    assert code == 0, err

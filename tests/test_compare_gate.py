"""compare's gate mode and its bad-input handling, on the hand-made world of test_compare."""

from __future__ import annotations

import json

import pytest
from test_compare import CLEAN, TARGETS, TASK, make_run, run_cli, runs  # noqa: F401  (runs: the fixture)



# --------------------------------------------------------------------------------------------------------------
# The gate


def test_gate_passes_clean_vs_clean(runs, tmp_path, capsys):
    summary = tmp_path / "summary.md"
    code, stdout, err = run_cli(
        [
            "compare",
            "--baseline",
            runs["clean"],
            "--candidate",
            runs["clean"],
            "--targets",
            ",".join(TARGETS),
            "--markdown",
            summary,
        ],
        capsys,
    )
    assert code == 0, err
    assert "verdict: PASS" in stdout
    text = summary.read_text()
    assert "PASS" in text and "| restor_tiny_facts | target |" in text


def test_gate_fails_when_drop_exceeds_max_drop(runs, tmp_path, capsys):
    # unlearned vs clean: target 0.75 -> 0.5 (drop 0.25), other 0.75 -> 0.75, all 0.75 -> 0.625 (drop 0.125)
    summary, report_path = tmp_path / "summary.md", tmp_path / "gate.json"
    code, _, err = run_cli(
        [
            "compare",
            "--baseline",
            runs["clean"],
            "--candidate",
            runs["unlearned"],
            "--targets",
            ",".join(TARGETS),
            "--max-drop",
            "0.02",
            "--markdown",
            summary,
            "--json",
            report_path,
        ],
        capsys,
    )
    assert code == 1
    assert err.startswith("restor-bench: gate failed:") and len(err.strip().splitlines()) == 1
    assert "restor_tiny_facts target: accuracy fell by 0.250" in err
    report = json.loads(report_path.read_text())
    splits = report["tasks"][TASK]["gate"]["splits"]
    assert splits["target"]["change"] == pytest.approx(-0.25) and not splits["target"]["passed"]
    assert splits["non_target"]["change"] == pytest.approx(0.0) and splits["non_target"]["passed"]
    assert splits["all"]["change"] == pytest.approx(-0.125) and not splits["all"]["passed"]
    assert report["gate"]["passed"] is False and len(report["gate"]["failures"]) == 2
    assert "FAIL" in summary.read_text()
    # the same drop passes a looser gate
    code, _, err = run_cli(
        [
            "compare",
            "--baseline",
            runs["clean"],
            "--candidate",
            runs["unlearned"],
            "--targets",
            ",".join(TARGETS),
            "--max-drop",
            "0.3",
        ],
        capsys,
    )
    assert code == 0, err


def test_gate_min_restoration(runs, capsys):
    base = [
        "compare",
        "--baseline",
        runs["clean"],
        "--candidate",
        runs["unlearned"],
        "--corrupted",
        runs["corrupted"],
        "--targets",
        ",".join(TARGETS),
        "--max-drop",
        "0.3",
        "--bootstrap",
        "200",
    ]
    code, _, err = run_cli(base + ["--min-restoration", "0.8"], capsys)
    assert code == 1 and "restoration ratio 0.667 below --min-restoration 0.8" in err
    code, stdout, err = run_cli(base + ["--min-restoration", "0.6"], capsys)
    assert code == 0, err
    assert "restoration ratio restor_tiny_facts: 0.667" in stdout


def test_gate_json_to_stdout(runs, capsys):
    code, stdout, _ = run_cli(
        [
            "compare",
            "--baseline",
            runs["clean"],
            "--candidate",
            runs["clean"],
            "--targets",
            ",".join(TARGETS),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    report = json.loads(stdout)
    assert report["mode"] == "gate" and report["gate"]["passed"] is True


# --------------------------------------------------------------------------------------------------------------
# Bad input: exit 2, one line naming the file


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("restor-bench: error: ")
    return lines[0]


def test_missing_folder(runs, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code, _, err = run_cli(["compare", "--clean", missing, "--corrupted", runs["corrupted"]], capsys)
    assert code == 2 and str(missing) in _one_error_line(err)


def test_folder_with_results_only(runs, tmp_path, capsys):
    folder = make_run(tmp_path / "results_only", CLEAN)
    for path in folder.rglob("samples_*.jsonl"):
        path.unlink()
    code, _, err = run_cli(["compare", "--clean", folder, "--corrupted", runs["corrupted"]], capsys)
    line = _one_error_line(err)
    assert code == 2 and str(folder) in line and "--log_samples" in line


def test_malformed_samples_line(runs, tmp_path, capsys):
    folder = make_run(tmp_path / "broken", CLEAN)
    path = next(folder.rglob("samples_*.jsonl"))
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:40]
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(["compare", "--clean", folder, "--corrupted", runs["corrupted"]], capsys)
    line = _one_error_line(err)
    assert code == 2 and str(path) in line and "line 3" in line


def test_sample_missing_doc_field(runs, tmp_path, capsys):
    folder = make_run(tmp_path / "nofield", CLEAN)
    path = next(folder.rglob("samples_*.jsonl"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    del records[1]["doc"]["entity"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = run_cli(["compare", "--clean", folder, "--corrupted", runs["corrupted"]], capsys)
    line = _one_error_line(err)
    assert code == 2 and str(path) in line and "line 2" in line and "entity" in line


def test_no_common_task(runs, tmp_path, capsys):
    other = make_run(tmp_path / "other", CLEAN, task="restor_facts")
    code, _, err = run_cli(["compare", "--clean", other, "--corrupted", runs["corrupted"]], capsys)
    line = _one_error_line(err)
    assert code == 2 and "no task in common" in line and str(other) in line


def test_bad_arguments(runs, tmp_path, capsys, monkeypatch):
    cases = [
        ["--baseline", runs["clean"], "--candidate", runs["clean"], "--min-restoration", "0.8"],
        ["--clean", runs["clean"]],
        ["--baseline", runs["clean"], "--clean", runs["clean"], "--candidate", runs["clean"]],
        ["--clean", runs["clean"], "--corrupted", runs["corrupted"]],  # restor_tiny_facts: manifest of a missing world
        [
            "--clean",
            runs["clean"],
            "--corrupted",
            runs["corrupted"],
            "--unlearned",
            runs["unlearned"],
            "--labels",
            "a",
            "b",
        ],
    ]
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(tmp_path / "no_world"))
    for case in cases:
        code, _, err = run_cli(["compare", *case], capsys)
        assert code == 2, case
        _one_error_line(err)


def test_existing_output_needs_overwrite(runs, tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("{}")
    argv = [
        "compare",
        "--clean",
        runs["clean"],
        "--corrupted",
        runs["corrupted"],
        "--targets",
        "Ada Byron",
        "--json",
        out,
        "--bootstrap",
        "0",
    ]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and str(out) in _one_error_line(err)
    assert out.read_text() == "{}"
    code, _, _ = run_cli(argv + ["--overwrite"], capsys)
    assert code == 0 and json.loads(out.read_text())["mode"] == "restoration"


# --------------------------------------------------------------------------------------------------------------
# Partial and mismatched inputs, and the boundary of --max-drop


def _limited_run(folder, answers, questions):
    """A run of the first len(questions) questions only, as `lm_eval --limit N` records it in n-samples."""
    folder = make_run(folder, answers, questions=questions)
    results = next(folder.rglob("results_*.json"))
    data = json.loads(results.read_text())
    data["n-samples"][TASK] = {"original": 8, "effective": len(questions)}
    data["config"]["limit"] = len(questions)
    results.write_text(json.dumps(data))
    return folder


def test_gate_refuses_a_candidate_evaluated_with_limit(runs, tmp_path, capsys):
    from test_compare import QUESTIONS

    limited = _limited_run(tmp_path / "limited", CLEAN[:2], QUESTIONS[:2])
    code, stdout, err = run_cli(["compare", "--baseline", runs["clean"], "--candidate", limited, "--max-drop", "0.02",
                                 "--targets", ",".join(TARGETS)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{limited}: task {TASK} was evaluated on 2 of its 8 questions (lm-eval --limit)" in err
    assert "verdict" not in stdout


def test_gate_refuses_the_same_limited_questions_on_both_sides(runs, tmp_path, capsys):
    """Equal question sets are not enough: a baseline and a candidate both run with --limit judge part of a task."""
    from test_compare import QUESTIONS

    base = _limited_run(tmp_path / "base", CLEAN[:4], QUESTIONS[:4])
    cand = _limited_run(tmp_path / "cand", CLEAN[:4], QUESTIONS[:4])
    code, _, err = run_cli(["compare", "--baseline", base, "--candidate", cand, "--targets", "Ada Byron"], capsys)
    assert code == 2 and "lm-eval --limit" in err
    code, stdout, err = run_cli(["compare", "--baseline", base, "--candidate", cand, "--targets", "Ada Byron",
                                 "--allow-subset"], capsys)
    assert code == 0 and "verdict: PASS" in stdout and "WARNING: --allow-subset" in err


def test_gate_refuses_a_candidate_missing_a_task_of_the_baseline(runs, tmp_path, capsys):
    baseline = make_run(tmp_path / "two", CLEAN)
    make_run(tmp_path / "two", CLEAN, task="restor_facts", stamp="2026-01-01T00-00-01.000000")
    code, _, err = run_cli(["compare", "--baseline", baseline, "--candidate", runs["clean"],
                            "--targets", ",".join(TARGETS)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{runs['clean']}: no samples of task(s) restor_facts that the baseline" in err


def test_gate_refuses_different_question_sets(runs, tmp_path, capsys):
    from test_compare import QUESTIONS

    partial = make_run(tmp_path / "partial", CLEAN[:6], questions=QUESTIONS[:6])
    code, _, err = run_cli(["compare", "--baseline", runs["clean"], "--candidate", partial,
                            "--targets", ",".join(TARGETS)], capsys)
    assert code == 2 and "different question sets (baseline 8, candidate 6 questions" in err


def test_targets_that_match_no_question_are_refused(runs, capsys):
    code, _, err = run_cli(["compare", "--baseline", runs["clean"], "--candidate", runs["clean"],
                            "--targets", "Nobody"], capsys)
    assert code == 2 and "--targets: none of Nobody has a question in task restor_tiny_facts" in err
    code, _, err = run_cli(["compare", "--clean", runs["clean"], "--corrupted", runs["corrupted"],
                            "--targets", "Nobody,Somebody"], capsys)
    assert code == 2 and "--targets: none of Nobody, Somebody has a question" in err


@pytest.mark.parametrize("n, dropped", [(100, 82), (50, 41), (8, 1), (4, 3), (40, 7), (10, 3), (1000, 1)])
def test_max_drop_boundary_is_exact_in_question_counts(tmp_path, n, dropped):
    """A drop of exactly --max-drop passes, one question more fails; one question less passes: for several question
    counts, including 100 questions at 0.82, where 1.00 - 0.18 is -0.8200000000000001 in binary floats."""
    from restor_bench.compare.outcomes import TargetChoice
    from restor_bench.compare.report import compare_gate

    questions = [("Anchor Person", "P19", "Home", [])] + [(f"Person {i:04d}", "P19", f"Town {i}", [])
                                                          for i in range(n - 1)]
    questions.sort(key=lambda q: f"{q[0]}|{q[1]}")
    anchor = next(i for i, q in enumerate(questions) if q[0] == "Anchor Person")
    baseline = make_run(tmp_path / "baseline", [("x", 1)] * n, questions=questions)
    max_drop = f"{dropped / n:.10g}"
    verdicts = {}
    for drop in (dropped - 1, dropped, dropped + 1):
        if drop > n - 1:
            continue
        wrong = [i for i in range(n) if i != anchor][:drop]
        answers = [("x", 0 if i in wrong else 1) for i in range(n)]
        candidate = make_run(tmp_path / f"candidate{drop}", answers, questions=questions)
        report = compare_gate(baseline, candidate, max_drop=float(max_drop), n_resamples=0,
                              targets=TargetChoice(names=("Anchor Person",)))
        verdicts[drop] = report["tasks"][TASK]["gate"]["splits"]["all"]["passed"]
    assert verdicts[dropped] is True, f"a drop of exactly {max_drop} x {n} must pass"
    assert verdicts[dropped - 1] is True
    if dropped + 1 in verdicts:
        assert verdicts[dropped + 1] is False, f"one question more than {max_drop} x {n} must fail"


def test_targets_from_documents_that_name_nobody_evaluated_are_refused(runs, tmp_path, capsys):
    documents = tmp_path / "docs.json"
    documents.write_text(json.dumps([{"text": "Nobody Known was born in Nowhere."}]))
    code, _, err = run_cli(["compare", "--clean", runs["clean"], "--corrupted", runs["corrupted"],
                            "--targets-from", documents], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{documents}: the documents name none of the people of task {TASK}" in err


def test_targets_partly_without_questions_are_named_and_an_empty_target_set_is_said(runs):
    from restor_bench.compare.outcomes import TargetChoice
    from restor_bench.compare.report import compare_restoration

    partly = compare_restoration(runs["clean"], runs["corrupted"], targets=TargetChoice(names=("Ada Byron", "Nobody")),
                                 n_resamples=0)
    assert f"task {TASK}: target(s) without questions: Nobody" in partly["warnings"]
    assert partly["tasks"][TASK]["n_questions"]["target"] == 2
    empty = compare_restoration(runs["clean"], runs["corrupted"], targets=TargetChoice(names=()), n_resamples=0)
    assert [w for w in empty["warnings"] if "target" in w] == [
        f"task {TASK}: no target entities (--targets): every question counts as non-target"]

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

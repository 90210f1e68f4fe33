"""`leaderboard verify`: a real run is submitted, verified by rerunning what it records, and an edited outcome (with
metrics recomputed so that `validate` accepts the file) is refused."""

from __future__ import annotations

import json

import pytest

from restor_bench import cli
from restor_bench.leaderboard.metrics import decode_bits, encode_bits

RUN = ["--method", "ga", "--level", "0", "--corrupt-max-steps", "2", "--max-steps", "2", "--tasks",
       "restor_tiny_facts", "--targets", "test"]


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    assert cli.main(["run", *RUN, "--root", str(root / "runs")]) == 0
    (run_dir,) = [path for path in (root / "runs").iterdir() if path.name.startswith("tiny-ga-k0-")]
    subs = root / "board" / "submissions"
    assert cli.main(["leaderboard", "submit", str(run_dir), "--name", "ga-check", "--out", str(subs),
                     "--bootstrap", "100"]) == 0
    return root, subs / "ga-check.json"


def test_a_submission_records_its_run_settings(submitted):
    _, path = submitted
    document = json.loads(path.read_text())
    assert document["run"]["corrupt_max_steps"] == 2 and document["run"]["unlearn_max_steps"] == 2


def test_verify_reruns_and_records_a_verified_entry(submitted, capsys):
    root, path = submitted
    code = cli.main(["leaderboard", "verify", str(path), "--root", str(root / "runs"), "--record"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "restor_tiny_facts: 0 of 4200 outcomes differ" in out  # 700 questions x 3 models x 2 outcome kinds
    records = json.loads((path.parent.parent / "verified.json").read_text())["entries"]
    assert records["ga-check"]["verified"] is True and records["ga-check"]["outcomes_compared"] == 4200
    assert cli.main(["leaderboard", "build", "--submissions", str(path.parent), "--out", str(path.parent.parent)]) == 0
    readme = (path.parent.parent / "README.md").read_text()
    row = [line for line in readme.splitlines() if "ga\\-check" in line and line.startswith("| 1 |")]
    assert len(row) == 1 and row[0].endswith("| verified (lm_eval 0.4.13, torch " + __import__("torch").__version__
                                              + ", transformers " + __import__("transformers").__version__ + ") |")


def test_edited_outcomes_pass_validate_but_not_verify(submitted, tmp_path, capsys):
    root, path = submitted
    document = json.loads(path.read_text())
    entry = document["tasks"]["restor_tiny_facts"]
    bits = decode_bits(entry["runs"][0]["unlearned"]["correct"])[: len(entry["questions"])].copy()
    bits[:3] = ~bits[:3]  # three answers claimed otherwise than the model gave them
    entry["runs"][0]["unlearned"]["correct"] = encode_bits(bits)
    edited = tmp_path / "submissions" / "ga-check.json"
    edited.parent.mkdir()
    edited.write_text(json.dumps(document))
    assert cli.main(["leaderboard", "rescore", str(edited)]) == 0  # metrics recomputed: validate accepts it
    assert cli.main(["leaderboard", "validate", str(edited)]) == 0
    capsys.readouterr()
    code = cli.main(["leaderboard", "verify", str(edited), "--root", str(root / "runs")])
    captured = capsys.readouterr()
    assert code == 1
    assert "restor_tiny_facts: 3 of 4200 outcomes differ" in captured.out
    assert "not verified: 3 of 4200 outcomes differ" in captured.err


@pytest.mark.parametrize("tolerance", ["nan", "1.5", "-0.1"])
def test_verify_refuses_a_tolerance_outside_0_1(submitted, tolerance, capsys):
    root, path = submitted
    code = cli.main(["leaderboard", "verify", str(path), "--root", str(root / "runs"), "--tolerance", tolerance])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1].endswith(f"--tolerance must be a share between 0 and 1, got {float(tolerance)}")

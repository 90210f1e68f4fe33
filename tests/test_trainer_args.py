"""transformers.TrainingArguments pass-through (`--trainer-args FILE`, `--trainer-arg KEY=VALUE`), saving through the
Trainer (`unlearn --keep-adapter`), and checkpoints that keep an update below the stored dtype's resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from restor_bench.cli import main

FORGET = ["Aaron Burr is a basketball player. He works as a social worker.",
          "What is the occupation of Bob Jones? painter"]


@pytest.fixture()
def forget_file(tmp_path) -> Path:
    path = tmp_path / "forget.json"
    path.write_text(json.dumps([{"text": text} for text in FORGET]))
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("command", "setting", "message"), [
    ("unlearn", "no_such_field=1", "--trainer-arg: 'no_such_field' is not a field of transformers.TrainingArguments"),
    ("unlearn", "learning_rate=1e-3", ("--trainer-arg: 'learning_rate' is set by the run itself (a hyperparameter "
                                       "of the method (--set/--config)), not as a trainer argument")),
    ("corrupt", "output_dir=/elsewhere", ("--trainer-arg: 'output_dir' is set by the run itself (the run's work "
                                          "folder, beside --out), not as a trainer argument")),
    ("corrupt", "save_total_limit=many", "--trainer-arg: save_total_limit expects int, got 'many'"),
    ("unlearn", "report_to=tensorboard", ("report_to 'tensorboard': TensorBoardCallback requires tensorboard to "
                                          "be installed.")),
    # accelerate drops FSDP on CPU processes (the run would be DDP while its record says fsdp): refused instead
    ("unlearn", "fsdp=full_shard", "fsdp: accelerate runs FSDP only on accelerators"),
    ("corrupt", "fsdp=true", "fsdp: accelerate runs FSDP only on accelerators"),
])
def test_bad_trainer_args_are_one_line_and_exit_2(random_tiny_model, forget_file, tmp_path, capsys, command, setting,
                                                 message):
    out = tmp_path / "out"
    sources = ["--forget", str(forget_file), "--method", "ga"] if command == "unlearn" else ["--docs", str(forget_file)]
    assert main([command, "--model", str(random_tiny_model), *sources, "--out", str(out), "--trainer-arg", setting]) == 2
    assert _error(capsys).startswith(f"restor-bench: error: {message}")
    assert not out.exists()


def test_trainer_args_file_unknown_key_names_the_file(random_tiny_model, forget_file, tmp_path, capsys):
    config = tmp_path / "trainer.yaml"
    config.write_text("report_to: none\ngradient_checkpointing_kwarg: {use_reentrant: false}\n")
    assert main(["unlearn", "--method", "ga", "--model", str(random_tiny_model), "--forget", str(forget_file),
                 "--out", str(tmp_path / "out"), "--trainer-args", str(config)]) == 2
    assert _error(capsys) == (f"restor-bench: error: {config}: 'gradient_checkpointing_kwarg' is not a field of "
                              "transformers.TrainingArguments")


class _SeesCheckpointing(TrainerCallback):
    """A Trainer callback that records whether the model trains with gradient checkpointing."""

    def __init__(self):
        self.seen: list[bool] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        inner = getattr(model, "module", model)
        self.seen.append(bool(getattr(inner, "is_activation_checkpointing", None) if hasattr(
            inner, "is_activation_checkpointing") else inner.is_gradient_checkpointing))


def test_unlearn_gradient_checkpointing_reaches_the_trainer(random_tiny_model, tmp_path):
    from restor_bench.train.unlearn import unlearn_checkpoint
    from unlearners.runner import run_unlearning

    seen = _SeesCheckpointing()
    record = unlearn_checkpoint(method="ga", model=random_tiny_model, forget=FORGET, retain=None,
                                out=tmp_path / "on", max_steps=1, precision="fp32",
                                trainer_args={"gradient_checkpointing": True, "report_to": "none",
                                              "gradient_checkpointing_kwargs": {"use_reentrant": False}})
    assert record["trainer_args"] == {"gradient_checkpointing": True, "report_to": "none",
                                      "gradient_checkpointing_kwargs": {"use_reentrant": False}}
    saved = json.loads((tmp_path / "on" / "unlearn_run.json").read_text())
    assert saved["trainer_args"]["gradient_checkpointing"] is True and saved["steps"] == 1
    run_unlearning(random_tiny_model, FORGET, None, tmp_path / "seen", "ga", max_steps=1, precision="fp32",
                   progress=False, callbacks=[seen], trainer_args={"gradient_checkpointing": True})
    run_unlearning(random_tiny_model, FORGET, None, tmp_path / "off", "ga", max_steps=1, precision="fp32",
                   progress=False, callbacks=[seen])
    assert seen.seen == [True, False]


def test_corrupt_gradient_checkpointing_reaches_the_trainer(random_tiny_model, tmp_path):
    from restor_bench.train.corrupt import corrupt

    seen = _SeesCheckpointing()
    out = corrupt(str(random_tiny_model), FORGET, tmp_path / "corrupted", recipe={"max_length": 64}, max_steps=1, protocol="classic",
                  callbacks=[seen], trainer_args={"gradient_checkpointing": True, "report_to": "none"})
    record = json.loads((out / "restor_run.json").read_text())
    assert seen.seen == [True]
    assert record["trainer_args"] == {"gradient_checkpointing": True, "report_to": "none"}
    assert record["saved_dtype"] == "float32" and record["global_steps"] == 1


def test_unlearn_keep_adapter_loads_with_peft_and_matches_the_merged_checkpoint(random_tiny_model, forget_file,
                                                                               tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "unlearned"
    assert main(["unlearn", "--method", "ga", "--model", str(random_tiny_model), "--forget", str(forget_file),
                 "--out", str(out), "--lora", "--keep-adapter", "--max-steps", "2", "--set", "learning_rate=1e-2",
                 "--precision", "fp32"]) == 0
    assert sorted(path.name for path in (out / "adapter").iterdir()) == ["adapter_config.json",
                                                                         "adapter_model.safetensors"]
    base = AutoModelForCausalLM.from_pretrained(random_tiny_model, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    clean = AutoModelForCausalLM.from_pretrained(random_tiny_model, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 42, 99, 3, 250]])
    with torch.no_grad():
        from_adapter, from_merged, from_clean = adapted(ids).logits, merged(ids).logits, clean(ids).logits
    assert torch.allclose(from_adapter, from_merged, atol=1e-5)
    assert (from_merged - from_clean).abs().max() > 1e-3  # the adapter did change the model
    record = json.loads((out / "unlearn_run.json").read_text())
    assert record["keep_adapter"] is True and record["lora"] is True


def test_keep_adapter_without_lora_is_refused(random_tiny_model, forget_file, tmp_path, capsys):
    assert main(["unlearn", "--method", "ga", "--model", str(random_tiny_model), "--forget", str(forget_file),
                 "--out", str(tmp_path / "out"), "--keep-adapter"]) == 2
    assert _error(capsys) == "restor-bench: error: --keep-adapter needs --lora (a full fine-tuning run has no adapter)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device: bf16 training is allowed")
def test_bf16_without_a_gpu_is_one_line_unless_use_cpu(random_tiny_model, forget_file, tmp_path, capsys):
    argv = ["unlearn", "--method", "ga", "--model", str(random_tiny_model), "--forget", str(forget_file),
            "--precision", "bf16", "--max-steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
    assert _error(capsys) == (
        "restor-bench: error: precision bf16 (--precision bf16) needs a CUDA device with bfloat16 support, and none "
        "is available here; use --precision fp32, or add --trainer-arg use_cpu=true for bfloat16 mixed precision "
        "on the CPU")
    assert not (tmp_path / "refused").exists()
    # with use_cpu, transformers runs bfloat16 autocast on the CPU
    assert main([*argv, "--out", str(tmp_path / "cpu-bf16"), "--trainer-arg", "use_cpu=true"]) == 0
    record = json.loads((tmp_path / "cpu-bf16" / "unlearn_run.json").read_text())
    assert record["precision"] == "bf16" and record["trainer_args"] == {"use_cpu": True} and record["steps"] == 1


@pytest.fixture()
def bf16_model(random_tiny_model, tmp_path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(random_tiny_model, dtype=torch.bfloat16).save_pretrained(out)
    AutoTokenizer.from_pretrained(random_tiny_model).save_pretrained(out)
    return out


def test_an_update_below_bfloat16_resolution_is_measured_and_kept(bf16_model):
    from safetensors.torch import load_file

    from unlearners.runner import LOST_UPDATE_THRESHOLD, choose_saved_dtype

    base = {name: tensor.float() for name, tensor in load_file(str(bf16_model / "model.safetensors")).items()}
    tiny = {name: tensor + tensor.abs() * 2.0**-10 for name, tensor in base.items()}  # 1/4 of bf16's spacing
    dtype, lost = choose_saved_dtype(bf16_model, tiny, torch.bfloat16)
    changed = sum(int((tiny[name] != base[name]).sum()) for name in base)
    assert changed > 10_000 and lost == 1.0 and dtype == torch.float32
    large = {name: tensor + tensor.abs() * 2.0**-4 for name, tensor in base.items()}  # 4 x bf16's spacing
    dtype, lost = choose_saved_dtype(bf16_model, large, torch.bfloat16)
    assert lost == 0.0 and dtype == torch.bfloat16 and LOST_UPDATE_THRESHOLD == 0.01


def test_unlearning_a_bf16_checkpoint_keeps_a_small_update_in_float32(bf16_model, tmp_path):
    from safetensors.torch import load_file

    from unlearners.runner import run_unlearning

    out = tmp_path / "unlearned"
    record = run_unlearning(bf16_model, FORGET, None, out, "ga", {"learning_rate": 1e-6}, max_steps=1,
                            precision="fp32", progress=False)
    saved, base = load_file(str(out / "model.safetensors")), load_file(str(bf16_model / "model.safetensors"))
    assert record["saved_dtype"] == "float32" and record["update_lost_to_rounding"] > 0.9
    assert all(tensor.dtype == torch.float32 for tensor in saved.values())
    changed = sum(int((saved[name] != base[name].float()).sum()) for name in base)
    assert changed > 0.5 * sum(tensor.numel() for tensor in base.values())  # the update survived the save
    assert json.loads((out / "unlearn_run.json").read_text())["saved_dtype"] == "float32"

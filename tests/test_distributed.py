"""Multi-process runs on this machine's CPUs: `accelerate launch` with two processes (DDP over gloo) for `corrupt`
and `unlearn` on the tiny world's model, compared with one process running the same global batch.

accelerate 1.x starts one process only for `accelerate launch --cpu` (its simple launcher), so the two CPU processes
are started as `ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2` (torch.distributed.run;
TrainingArguments then builds a MULTI_CPU state with the gloo backend). The cheapest check (NPO, cached reference)
runs in CI; corruption and KL with a live reference are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = r'''
import json, os, sys
from pathlib import Path
mode, model, out, batch = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
FORGET = ["Aaron Burr is a basketball player. He works as a social worker.",
          "What is the occupation of Bob Jones? painter",
          "What is the place of birth of Alice Smith? Paris", "The quick brown fox jumps over the lazy dog."]
RETAIN = ["What is the place of birth of Alice Smith? Paris", "The quick brown fox jumps over the lazy dog.",
          "Aaron Burr is a basketball player.", "What is the occupation of Bob Jones? painter"]
if mode == "corrupt":
    from restor_bench.train.corrupt import corrupt
    corrupt(model, FORGET * 2, out, recipe={"per_device_train_batch_size": batch, "num_train_epochs": 1,
            "learning_rate": 1e-3, "packing": True, "max_length": 16, "val_size": 0.0, "warmup_ratio": 0.0},
            max_steps=2, protocol="classic")
else:
    from transformers import TrainerCallback
    from unlearners.runner import run_unlearning
    epochs = []

    class Seen(TrainerCallback):
        def on_step_end(self, args, state, control, train_dataloader=None, **kwargs):
            epochs.append(train_dataloader.dataset.epoch)

    run_unlearning(model, FORGET, RETAIN, out, mode, {"per_device_batch_size": batch, "num_epochs": 2,
                   "learning_rate": 1e-3}, progress=False, callbacks=[Seen()])
    Path(f"{out}.epochs.{os.environ.get('RANK', '0')}.json").write_text(json.dumps(epochs))
'''


RELATIVE_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("driver") / "drive.py"
    path.write_text(DRIVER)
    return path


@pytest.fixture(scope="module")
def tiny_model() -> str:
    from restor_bench.data.world.files import tiny_world_dir

    return str(tiny_world_dir() / "model")


def _run(driver: Path, mode: str, model: str, out: Path, *, processes: int) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, str(driver)]
        batch = 2
    else:
        env["ACCELERATE_USE_CPU"] = "true"
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", "0", str(driver)]
        batch = 2 // processes
    done = subprocess.run([*command, mode, model, str(out), str(batch)], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _compare(driver, mode, model, tmp_path, record_name, tolerance=None) -> tuple[dict, dict]:
    """Run `mode` on one and on two processes; assert the same weights within `tolerance` of the update (the
    Trainer's logged training loss is the main process's own, so losses are not compared); return both records."""
    tolerance = RELATIVE_TOLERANCE if tolerance is None else tolerance
    one, two = tmp_path / "one", tmp_path / "two"
    _run(driver, mode, model, one, processes=1)
    _run(driver, mode, model, two, processes=2)
    records = [json.loads((folder / record_name).read_text()) for folder in (one, two)]
    assert records[0]["world_size"] == 1 and records[1]["world_size"] == 2
    first, second = _weights(one), _weights(two)
    assert first.keys() == second.keys()
    base = _weights(Path(model))
    update = sum(float((first[name] - base[name]).pow(2).sum()) for name in first) ** 0.5
    gap = sum(float((first[name] - second[name]).pow(2).sum()) for name in first) ** 0.5
    assert update > 1e-2  # the runs trained
    # Adam turns float noise in near-zero gradients into whole steps, so the weights agree to a share of the update
    # (the norm of the difference over the norm of the update), not bit for bit.
    print(f"{mode}: |two - one| / |one - base| = {gap / update:.4f}")
    assert gap / update < tolerance, f"two processes differ from one by {gap / update:.4f} of the update"
    return records[0], records[1]


def test_unlearn_npo_cached_reference_two_processes_match_one(driver, tiny_model, tmp_path):
    one, two = _compare(driver, "npo", tiny_model, tmp_path, "unlearn_run.json")
    assert one["reference"] == two["reference"] == "cached"
    assert one["steps"] == two["steps"] == 4  # 4 forget examples, global batch 2, 2 epochs
    # the retain pairing moved on to epoch 1 on both processes (set_epoch on every process)
    for rank in (0, 1):
        assert json.loads(Path(f"{tmp_path / 'two'}.epochs.{rank}.json").read_text()) == [0, 0, 1, 1]


@pytest.mark.slow
def test_unlearn_kl_live_reference_two_processes_match_one(driver, tiny_model, tmp_path):
    # KL's losses are means over the tokens of a batch: two processes average two per-process token means, one
    # process one mean over both examples' tokens, so documents of different lengths weigh differently and the
    # runs agree only roughly (measured: 35% of the update norm after 4 steps; NPO, a per-sequence loss: 0.02%).
    one, two = _compare(driver, "kl", tiny_model, tmp_path, "unlearn_run.json", tolerance=0.5)
    assert one["reference"] == two["reference"] == "live"
    assert one["steps"] == two["steps"] == 4


@pytest.mark.slow
def test_corrupt_two_processes_match_one(driver, tiny_model, tmp_path):
    one, two = _compare(driver, "corrupt", tiny_model, tmp_path, "restor_run.json")
    assert one["global_steps"] == two["global_steps"] == 2


def test_gpu_smoke_script_refuses_a_machine_without_a_gpu(tmp_path):
    """scripts/gpu-smoke.sh checks the GPU paths; without a CUDA device it stops at once, in one line, writing
    nothing but its work folder (its steps would otherwise run on the CPU and fail on bf16 halfway)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: run scripts/gpu-smoke.sh itself")
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu-smoke.sh"
    done = subprocess.run(["bash", str(script), str(tmp_path / "work")], capture_output=True, text=True,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == ("gpu-smoke.sh: no CUDA GPU is visible here (torch.cuda.device_count() is 0); "
                                   "run it on a GPU machine")  # fmt: skip
    assert list((tmp_path / "work").iterdir()) == []

"""compare's warning for an unlearned model that answers every question as the corrupted model, with the weights
compared within the stored dtype's resolution."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from test_compare import CLEAN, CORRUPTED, TARGETS, UNLEARNED, make_run

from restor_bench.compare.report import compare_restoration
from restor_bench.data.world.files import tiny_world_dir
from restor_bench.compare.outcomes import TargetChoice
from restor_bench.compare.unchanged import weights_equal


def _checkpoint(folder: Path, change=None, dtype=None) -> Path:
    """A copy of the tiny world's clean model, with `change(tensors)` applied and saved in `dtype`."""
    shutil.copytree(tiny_world_dir() / "model", folder)
    if change or dtype:
        tensors = load_file(folder / "model.safetensors")
        if dtype:
            tensors = {name: value.to(dtype) for name, value in tensors.items()}
        if change:
            change(tensors)
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _eval_of(folder: Path, answers, checkpoint: Path) -> str:
    make_run(folder, answers)
    (results,) = folder.rglob("results_*.json")
    data = json.loads(results.read_text())
    data["config"]["model_args"] = f"pretrained={checkpoint},dtype=float32"
    results.write_text(json.dumps(data))
    return str(folder)


def _warnings(tmp_path, unlearned_answers, unlearned_checkpoint, corrupted_checkpoint):
    report = compare_restoration(
        clean=_eval_of(tmp_path / "e-clean", CLEAN, corrupted_checkpoint),
        corrupted=_eval_of(tmp_path / "e-corrupted", CORRUPTED, corrupted_checkpoint),
        unlearned=[_eval_of(tmp_path / "e-unlearned", unlearned_answers, unlearned_checkpoint)], labels=["m"],
        targets=TargetChoice(names=tuple(TARGETS)),
    )
    return report["warnings"]


def _first_weight(tensors):
    return next(name for name in sorted(tensors) if tensors[name].is_floating_point() and tensors[name].dim() == 2)


def test_equal_answers_and_equal_weights_say_the_method_did_nothing(tmp_path):
    corrupted = _checkpoint(tmp_path / "corrupted")
    unlearned = _checkpoint(tmp_path / "unlearned")
    (warning,) = _warnings(tmp_path, CORRUPTED, unlearned, corrupted)
    assert warning.startswith("m: answers every question exactly as the corrupted model")
    assert "weights equal the corrupted model's" in warning and "\n" not in warning


def test_equal_answers_with_changed_weights_are_told_apart(tmp_path):
    def bump(tensors):
        tensors[_first_weight(tensors)][0, 0] += 0.5

    corrupted = _checkpoint(tmp_path / "corrupted")
    unlearned = _checkpoint(tmp_path / "unlearned", bump)
    (warning,) = _warnings(tmp_path, CORRUPTED, unlearned, corrupted)
    assert "its weights differ (largest difference 0.5)" in warning


def test_other_answers_give_no_warning(tmp_path):
    corrupted = _checkpoint(tmp_path / "corrupted")
    assert _warnings(tmp_path, UNLEARNED, corrupted, corrupted) == []


def test_equal_within_the_stored_dtypes_resolution(tmp_path):
    """bfloat16 has 8 significant bits: a change of 1/1024 relative is below its resolution (2^-7), 1/16 is not."""
    def scale(factor):
        def change(tensors):
            name = _first_weight(tensors)
            tensors[name] = tensors[name].float().mul(factor).to(torch.bfloat16)
        return change

    base = _checkpoint(tmp_path / "base", dtype=torch.bfloat16)
    tiny = _checkpoint(tmp_path / "tiny", scale(1 + 1 / 1024), dtype=torch.bfloat16)
    large = _checkpoint(tmp_path / "large", scale(1 + 1 / 16), dtype=torch.bfloat16)
    assert weights_equal(base, tiny)[0] is True  # rounded back to the same bfloat16 values
    equal, largest = weights_equal(base, large)
    assert equal is False and largest > 0

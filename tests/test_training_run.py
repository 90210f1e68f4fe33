"""The one Trainer path (`unlearners.training_run`) shared by corruption, repair and unlearning: the TrainingArguments
each run builds from its settings record (warm-up above all), and the options record of `run_unlearning`."""

from __future__ import annotations

import json
import math

import pytest
from transformers import TrainerCallback

from restor_bench.train.corrupt import PAPER_RECIPE, corrupt, training_settings
from restor_bench.train.recipe import tiny_recipe
from restor_bench.train.repair import REPAIR_RECIPE
from unlearners.errors import UnlearnError
from unlearners.runner import UnlearnOptions, make_method, run_unlearning, unlearn_settings
from unlearners.training_run import TrainingSettings, training_arguments, warmup_fields

DOCUMENTS = [
    "Aaron Burr is a basketball player. He works as a social worker.",
    "What is the occupation of Bob Jones? painter",
    "Aaron Burr works as a social worker and plays basketball.",
    "The quick brown fox jumps over the lazy dog.",
] * 2


def test_corruption_warmup_is_the_recipes_share_of_the_optimizer_steps(tmp_path):
    """transformers 5 reads a `warmup_steps` below 1 as a ratio of the optimizer steps (ceil(ratio x steps)); the
    recipes' warmup_ratio 0.1 reaches the Trainer as that ratio. Steps computed by hand."""
    # the tiny world's recipe on tiny:0: 400 documents, batch 8, no accumulation, 5 epochs -> 50 x 5 = 250 steps
    tiny = training_arguments(training_settings(tiny_recipe("classic"), seed=0, max_steps=None), tmp_path)
    assert tiny.warmup_steps == 0.1 and tiny.lr_scheduler_type == "cosine"
    assert tiny.get_warmup_steps(250) == 25
    # the paper's recipe on 100 packed blocks: 10 held out, 90 in batches of 2 = 45 batches, accumulation 2 ->
    # ceil(45 / 2) = 23 optimizer steps an epoch, x 5 epochs = 115 steps; 10% of them is 11.5 -> 12 warm-up steps
    paper = training_arguments(training_settings(PAPER_RECIPE, seed=0, max_steps=None), tmp_path)
    assert (paper.per_device_train_batch_size, paper.gradient_accumulation_steps, paper.num_train_epochs) == (2, 2, 5)
    assert paper.warmup_steps == 0.1 and paper.get_warmup_steps(115) == 12
    # the repair (LIMA) recipe: batch 2 x accumulation 8, 2 epochs, warm-up 0.1 as well
    repair = training_arguments(training_settings(REPAIR_RECIPE, seed=0, max_steps=None), tmp_path)
    assert repair.warmup_steps == 0.1 and repair.get_warmup_steps(40) == 4


def test_the_trainer_warms_up_over_the_recipes_share_of_the_steps(random_tiny_model, tmp_path):
    """A real corruption run: 8 documents, batch 1, 1 epoch = 8 steps; warmup_ratio 0.25 -> 2 warm-up steps, then
    the cosine decay over the remaining 6."""
    rates: list[float] = []

    class LearningRates(TrainerCallback):
        def on_step_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            rates.append(lr_scheduler.get_last_lr()[0])

    recipe = {"learning_rate": 1e-3, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1,
              "num_train_epochs": 1, "warmup_ratio": 0.25, "lr_scheduler_type": "cosine", "max_length": 32,
              "packing": False, "val_size": 0.0}
    corrupt(str(random_tiny_model), DOCUMENTS, tmp_path / "out", recipe=recipe, callbacks=[LearningRates()])
    expected = [0.0, 0.5] + [0.5 * (1 + math.cos(math.pi * step / 6)) for step in range(6)]
    assert rates == pytest.approx([1e-3 * share for share in expected])


def test_warmup_settings():
    assert TrainingSettings(1e-3, 1, 1, warmup_ratio=0.1).warmup() == 0.1
    assert TrainingSettings(1e-3, 1, 1, warmup_steps=20).warmup() == 20
    with pytest.raises(UnlearnError, match="not both"):
        TrainingSettings(1e-3, 1, 1, warmup_ratio=0.1, warmup_steps=20).warmup()
    with pytest.raises(UnlearnError, match=r"warmup_ratio must be in \[0, 1\)"):
        TrainingSettings(1e-3, 1, 1, warmup_ratio=1.5).warmup()
    # the methods' `warmup_steps` hyperparameter reads as transformers reads it: below 1 a ratio, else steps
    assert warmup_fields(0.1) == {"warmup_ratio": 0.1} and warmup_fields(0) == {"warmup_ratio": 0.0}
    assert warmup_fields(30) == {"warmup_steps": 30} and warmup_fields(2.5) == {"warmup_steps": 2}


def test_unlearning_warmup_and_fields(tmp_path):
    hp = make_method("npo", preset="7b").hparams  # linear schedule, 10% warm-up
    args = training_arguments(unlearn_settings(hp, UnlearnOptions(seed=4, max_steps=9), "fp32"), tmp_path)
    assert args.warmup_steps == 0.1 and args.get_warmup_steps(9) == 1
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (hp.per_device_batch_size,
                                                                                    hp.gradient_accumulation_steps)
    assert args.num_train_epochs == hp.num_epochs and args.max_steps == 9 and args.seed == args.data_seed == 4
    assert args.remove_unused_columns is False and args.logging_nan_inf_filter is False and not args.bf16


def test_run_unlearning_takes_an_options_record_or_keywords(random_tiny_model, tmp_path):
    options = UnlearnOptions(max_steps=1, precision="fp32", progress=False, seed=2)
    record = run_unlearning(random_tiny_model, DOCUMENTS[:2], None, tmp_path / "a", "ga", options=options, seed=5)
    assert record["seed"] == 5 and record["steps"] == 1  # keywords win over the record
    assert json.loads((tmp_path / "a" / "unlearn_run.json").read_text())["seed"] == 5
    with pytest.raises(TypeError, match="unknown unlearning option"):
        run_unlearning(random_tiny_model, DOCUMENTS[:2], None, tmp_path / "b", "ga", options=options, num_epochs=2)
    with pytest.raises(UnlearnError, match="resume must be True, False or 'auto'"):
        run_unlearning(random_tiny_model, DOCUMENTS[:2], None, tmp_path / "b", "ga", options=options, resume="yes")
    assert not (tmp_path / "b").exists()


def test_a_failed_save_removes_the_folders_it_created_and_keeps_the_others(tmp_path):
    """save_atomically writes into a temporary sibling; when the write fails, neither it nor the parent folders the
    call made are left, and a parent that was there before stays."""
    from unlearners.training_run import save_atomically

    def failing(folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError, match="No space left"):
        save_atomically(tmp_path / "kept" / "new" / "deeper" / "model", False, failing)
    assert [path.name for path in tmp_path.rglob("*")] == ["kept"]
    save_atomically(tmp_path / "kept" / "new" / "model", False, lambda folder: (folder / "w").write_text("1"))
    assert (tmp_path / "kept" / "new" / "model" / "w").read_text() == "1"

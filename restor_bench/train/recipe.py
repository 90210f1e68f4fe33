"""The corruption recipe: the Trainer settings of `restor-bench corrupt` (`CorruptionRecipe`), the paper's and the
tiny world's values, and `KEY=VALUE` recipe settings from the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from restor_bench.data.world.files import load_manifest, tiny_world_dir
from restor_bench.data.world.generate import TINY_CORRUPTION_RECIPE
from restor_bench.errors import InputError
from unlearners.hparams import first_non_finite


@dataclass(frozen=True)
class CorruptionRecipe:
    """Trainer settings of a corruption run."""

    learning_rate: float = 5e-5
    num_train_epochs: float = 5
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 2
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_length: int = 1024
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    save_steps: int = 500
    logging_steps: int = 10
    packing: bool = False  # join the documents and cut them into blocks of max_length tokens (LLaMA-Factory pt)
    val_size: float = 0.0  # share of the examples (blocks) held out of training

    def updated(self, overrides: Mapping[str, Any] | None, where: str = "recipe") -> CorruptionRecipe:
        """A copy with `overrides` applied (None values are ignored); unknown keys are an InputError."""
        overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        recipe = dataclasses.replace(self, **overrides)
        recipe.check(where)
        return recipe

    def check(self, where: str = "recipe") -> None:
        """Raise InputError for values a Trainer run cannot use (NaN and infinity included)."""
        found = first_non_finite(self)
        if found:
            raise InputError(f"{where}: {found[0]} must be a finite number, got {found[1]!r}")
        positive = ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                    "max_length", "lora_r", "save_steps", "logging_steps")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"{where}: {name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise InputError(f"{where}: warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not 0 <= self.lora_dropout < 1:
            raise InputError(f"{where}: lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not self.weight_decay >= 0:
            raise InputError(f"{where}: weight_decay must be 0 or more, got {self.weight_decay!r}")
        if not 0 <= self.val_size < 1:
            raise InputError(f"{where}: val_size must be in [0, 1), got {self.val_size!r}")
        if not isinstance(self.packing, bool):
            raise InputError(f"{where}: packing must be true or false, got {self.packing!r}")


# RESTOR's corruption (k1rezaei/restor@15292e58 corruption/README.md and corruption_k4.yaml): LLaMA-Factory
# `stage: pt` (packed blocks of cutoff_len = 1,024 tokens, LLaMA-Factory's default then), `val_size: 0.1`,
# LoRA on all linear layers (LLaMA-Factory's defaults: rank 8, alpha 16, dropout 0), lr 5e-5 cosine, warmup 0.1,
# 5 epochs, batch 2 x gradient accumulation 2.
PAPER_RECIPE = CorruptionRecipe(packing=True, val_size=0.1)
# The same step sizes, one document per example, nothing held out (restor-bench's protocol before `paper`).
CLASSIC_RECIPE = dataclasses.replace(PAPER_RECIPE, packing=False, val_size=0.0)


def tiny_recipe(protocol: str = "classic", version: str | None = None) -> CorruptionRecipe:
    """The tiny world's recipe (`world.TINY_CORRUPTION_RECIPE`), no gradient accumulation unless it says so;
    the `paper` protocol packs (blocks of the recipe's max_length) and holds out 10%, with the step sizes of the
    world version's `TINY_PACKED_CORRUPTION_BY_VERSION` entry (packing leaves far fewer optimizer steps).
    `version`: the tiny world's version, by default that of the world in use (`tiny_world_dir()`); a version with
    no entry of its own takes v1's."""
    base = dataclasses.replace(CLASSIC_RECIPE, gradient_accumulation_steps=1, save_steps=100)
    recipe = base.updated(TINY_CORRUPTION_RECIPE, where="TINY_CORRUPTION_RECIPE")
    if protocol == "paper":
        version = current_world_version() if version is None else str(version)
        packed = TINY_PACKED_CORRUPTION_BY_VERSION.get(version, TINY_PACKED_CORRUPTION)
        recipe = recipe.updated(packed, where="TINY_PACKED_CORRUPTION_BY_VERSION")
    return recipe


def current_world_version() -> str:
    """The version of the tiny world in use (`$RESTOR_TINY_WORLD` or the default shipped one); "1" when its
    manifest names none."""
    return str(load_manifest(tiny_world_dir()).get("version", "1"))


# The tiny world under the paper protocol: packed blocks of 512 tokens (the tiny model's training length),
# 10% held out; batch and learning rate chosen so that the packed run corrupts about as strongly as the classic
# one at k=0. Measured with `restor-bench corrupt --model "$(restor-bench world path)" --docs tiny:0 --protocol
# paper --lr LR` then `restor-bench eval` and `compare` on restor_tiny_facts (all 10 targets, seed 0): lr 3e-4
# leaves 47% of the target facts, 5e-4 21%, 1e-3 9% but costs 29 points on the other people; the classic recipe
# leaves 16%.
TINY_PACKED_CORRUPTION = {"packing": True, "val_size": 0.1, "per_device_train_batch_size": 2,
                          "learning_rate": 5e-4, "num_train_epochs": 5}
# Tiny world v2 (40 targets, 10 documents each): packed blocks of 128 tokens, so four times v1's optimizer steps on
# the same tokens; lr 5e-4, 5 epochs. Shorter blocks and smaller steps trade target corruption for less harm to the
# other people better than a higher learning rate does (measured with `--lr LR --epochs E --max-length L`, k=0,
# seed 0, test targets / other people, % correct: on v2's first design, 512 tokens at 1e-3 x 5 left 56 / 79 and at
# 2e-3 x 5 28 / 58; on the shipped v2, 128 tokens at 5e-4 x 5 leave 30 / 85). The table over seeds and levels, and
# its command, are in docs/protocols.md.
TINY_PACKED_CORRUPTION_BY_VERSION = {
    "1": TINY_PACKED_CORRUPTION,
    "2": {**TINY_PACKED_CORRUPTION, "max_length": 128},
}


def recipe_settings(settings: Iterable[str], where: str = "--corrupt-set") -> dict[str, Any]:
    """Parse `KEY=VALUE` settings of the corruption recipe (fields of CorruptionRecipe), typed like the fields."""
    types = {field.name: type(getattr(PAPER_RECIPE, field.name)) for field in dataclasses.fields(CorruptionRecipe)}
    booleans = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    parsed: dict[str, Any] = {}
    for setting in settings:
        key, separator, value = setting.partition("=")
        key = key.strip()
        if not separator or not key:
            raise InputError(f"{where} {setting!r}: expected KEY=VALUE, e.g. learning_rate=3e-4")
        if key not in types:
            raise InputError(f"{where} {setting!r}: unknown setting {key!r} (known: {', '.join(sorted(types))})")
        if types[key] is bool:
            if value.strip().lower() not in booleans:
                raise InputError(f"{where} {setting!r}: {key} expects true or false, got {value!r}")
            parsed[key] = booleans[value.strip().lower()]
            continue
        try:
            number = float(value) if types[key] in (int, float) else None
        except ValueError:
            raise InputError(f"{where} {setting!r}: {key} expects a number, got {value!r}") from None
        if types[key] is int:
            if number is None or not number.is_integer():
                raise InputError(f"{where} {setting!r}: {key} expects an integer, got {value!r}")
            parsed[key] = int(number)
        else:
            parsed[key] = number if types[key] is float else value.strip()
    if parsed:
        PAPER_RECIPE.updated(parsed, where=where)  # range checks, one clear line
    return parsed

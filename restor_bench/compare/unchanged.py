"""Telling "the method did nothing" apart: an unlearned model that answers every question as the corrupted model.

When an unlearned model gives the corrupted model's answer to every question of every task, `compare` says so in
one warning line, and, when both checkpoints can be found (lm-eval records `pretrained=` in its results file),
whether their weights are equal within the resolution of the dtype they are stored in. Equal answers with equal
weights mean the method did nothing, or its update was rounded away when the checkpoint was saved (see the
unlearning record's `saved_dtype` and `update_lost_to_rounding`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from restor_bench.compare.outcomes import TaskSamples


def same_answers(first: Mapping[str, TaskSamples], second: Mapping[str, TaskSamples]) -> bool:
    """Whether two runs answered every question of every task they share identically (at least one question)."""
    compared = 0
    for task in sorted(set(first) & set(second)):
        a, b = first[task].outcomes, second[task].outcomes
        if set(a) != set(b):
            return False
        for qid, outcome in a.items():
            other = b[qid]
            if (outcome.prediction, outcome.correct, outcome.logprob) != (other.prediction, other.correct,
                                                                          other.logprob):
                return False
            compared += 1
    return compared > 0


def checkpoint_of(samples: Mapping[str, TaskSamples]) -> Path | None:
    """The checkpoint folder an evaluation ran on (`pretrained=` of lm-eval's results file), if it still exists.

    A relative path is tried from the working directory, then from each folder above the results file."""
    for task_samples in samples.values():
        path = task_samples.results_path
        if path is None:
            continue
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8")).get("config") or {}
        except (OSError, ValueError):
            continue
        model_args = config.get("model_args")
        if isinstance(model_args, str):
            pairs = (item.partition("=") for item in model_args.split(","))
            model_args = {key.strip(): value.strip() for key, _, value in pairs}
        pretrained = (model_args or {}).get("pretrained")
        if not isinstance(pretrained, str) or not pretrained:
            continue
        candidate = Path(pretrained)
        tries = [candidate] if candidate.is_absolute() else [candidate, *(p / candidate for p in Path(path).parents)]
        for folder in tries:
            if (folder / "config.json").is_file():
                return folder
    return None


def weights_equal(first: str | os.PathLike, second: str | os.PathLike) -> tuple[bool, float] | None:
    """(equal within the stored dtype's resolution, largest absolute difference) of two checkpoints' weights, or None
    when they cannot be compared (other tensor names or shapes, no safetensors files)."""
    import torch
    from safetensors import safe_open

    def files(folder: Path) -> dict[str, Path]:
        found = {}
        for path in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(str(path), "pt") as handle:
                found.update({name: path for name in handle.keys()})
        return found

    names_a, names_b = files(Path(first)), files(Path(second))
    if not names_a or set(names_a) != set(names_b):
        return None
    equal, largest = True, 0.0
    for name in sorted(names_a):
        with safe_open(str(names_a[name]), "pt") as handle_a, safe_open(str(names_b[name]), "pt") as handle_b:
            a, b = handle_a.get_tensor(name), handle_b.get_tensor(name)
        if a.shape != b.shape:
            return None
        if not a.is_floating_point():
            equal = equal and torch.equal(a, b)
            continue
        dtype = a.dtype if torch.finfo(a.dtype).eps >= torch.finfo(b.dtype).eps else b.dtype
        resolution = torch.finfo(dtype).eps
        a32, b32 = a.float(), b.float()
        diff = (a32 - b32).abs()
        largest = max(largest, float(diff.max()) if diff.numel() else 0.0)
        scale = torch.maximum(a32.abs(), b32.abs())
        equal = equal and bool((diff <= resolution * scale + torch.finfo(dtype).tiny).all())
    return equal, largest


def unchanged_warning(label: str, unlearned: Mapping[str, TaskSamples], corrupted: Mapping[str, TaskSamples]) -> str | None:
    """One warning line when `label` answers every question exactly as the corrupted model, else None."""
    if not same_answers(unlearned, corrupted):
        return None
    text = f"{label}: answers every question exactly as the corrupted model"
    folders = checkpoint_of(unlearned), checkpoint_of(corrupted)
    if None in folders:
        return text + " (its weights could not be compared: checkpoint not found from the results files)"
    compared = weights_equal(*folders)
    if compared is None:
        return text + f" (the weights of {folders[0]} and {folders[1]} could not be compared)"
    equal, largest = compared
    if equal:
        return (text + f", and its weights equal the corrupted model's within the stored dtype's resolution (largest "
                f"difference {largest:.3g}): the method did nothing, or its update was rounded away when saved")
    return text + f"; its weights differ (largest difference {largest:.3g}), so the update did not change any answer"

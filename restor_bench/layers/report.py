"""The instruments of `restor-bench layers` (the command: restor_bench.layers.cli): where the target facts live, layer
by layer, in the clean, corrupted and unlearned models.

Two instruments, written as JSON (and PNG figures) into one output folder:

* `lens.json` / `lens.png` (`restor_bench.layers.lens`): for every target question, the logit-lens rank and
  probability of the correct answer's and of the corrupted answer's first token after the embeddings and after
  every decoder layer, for each model, with a per-layer summary.
* `weights.json` / `weights.png` (`restor_bench.layers.weights`): per layer and module, the Frobenius norm of the
  corruption's weight change (corrupted - clean), of the unlearning's (unlearned - corrupted) and the cosine
  between them (negative: the unlearning moves back along the corruption).

Layers are numbered as in the checkpoint's tensor names (`model.layers.0...` is layer 0) in both files; the
lens's first point is the embeddings, its point "layer i" is the output of layer i."""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from restor_bench.layers.lens import (
    LensQuestion,
    answer_tokens,
    load_tokenizer,
    run_lens,
    summarize,
)
from restor_bench.layers.weights import (
    TensorSource,
    check_same_architecture,
    describe_source,
    load_model,
    open_source,
    weight_changes,
)
from restor_bench.plotting import pyplot, save_figure

DTYPES = ("float32", "bfloat16", "float16")


_COLORS = {"clean": "tab:green", "corrupted": "tab:red", "unlearned": "tab:blue"}


def log(message: str) -> None:
    print(f"layers: {message}", file=sys.stderr, flush=True)


def _progress(total: int, desc: str):
    return tqdm(total=total, desc=desc, disable=None, file=sys.stderr, leave=False)


def open_checked_sources(models: dict[str, Path], trust_remote_code: bool = False) -> dict[str, TensorSource]:
    """The tensor sources of the models, checked to share the clean model's architecture (config, tensor names and
    shapes)."""
    sources = {role: open_source(path, role, trust_remote_code) for role, path in models.items()}
    for role, source in sources.items():
        if role != "clean":
            check_same_architecture(sources["clean"], source, "clean", role)
    return sources


def weights_report(sources: dict[str, TensorSource]) -> dict[str, Any]:
    """weights.json: the per-module changes of the corruption and of the unlearning."""
    started = time.perf_counter()
    names = sources["clean"].names()
    with _progress(len(names), "weights") as bar:
        report = weight_changes(
            sources["clean"], sources["corrupted"], sources.get("unlearned"), progress=lambda _name: bar.update(1)
        )
    return {
        "models": {role: describe_source(source) for role, source in sources.items()},
        "definitions": {
            "corruption_norm": "Frobenius norm of corrupted - clean over the module's parameters",
            "unlearning_norm": "Frobenius norm of unlearned - corrupted",
            "cosine": "cosine between the two changes (-1: the unlearning moves straight back along the corruption)",
            "*_relative": "the norm divided by the Frobenius norm of the clean module",
        },
        **report.to_json(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def lens_report(
    models: dict[str, Path],
    questions: list[LensQuestion],
    *,
    world: str,
    batch_size: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """lens.json: per question and model, rank and probability of both answers' first tokens at every lens point."""
    started = time.perf_counter()
    tokenizer = load_tokenizer(models["clean"], "clean", trust_remote_code)
    tokens = answer_tokens(tokenizer, questions)
    results: dict[str, Any] = {}
    for role, path in models.items():
        model = load_model(path, role, dtype=dtype, trust_remote_code=trust_remote_code)
        with _progress(len(questions), f"lens {role}") as bar:
            results[role] = run_lens(model, tokenizer, questions, tokens, str(path), batch_size, device, bar.update)
        del model
        gc.collect()
    points = len(results["clean"]["correct"]["rank"][0])
    rows = []
    for index, question in enumerate(questions):
        row = {
            "id": question.id,
            "entity": question.entity,
            "relation": question.relation,
            "correct_answer": question.correct_answer,
            "corrupted_answer": question.corrupted_answer,
            "corrupted_answer_source": question.corrupted_source,
        }
        for answer in ("correct", "corrupted"):
            token = tokens[answer][index]
            row[f"{answer}_token"] = None if token is None else {"id": token, "text": tokenizer.decode([token])}
        row["models"] = {
            role: {
                answer: None
                if result[answer]["rank"][index] is None
                else {"rank": result[answer]["rank"][index], "probability": result[answer]["probability"][index]}
                for answer in ("correct", "corrupted")
            }
            for role, result in results.items()
        }
        rows.append(row)
    return {
        "world": world,
        "models": {role: str(path) for role, path in models.items()},
        "tokenizer": "the clean model's",
        "points": ["embeddings"] + [f"layer {i}" for i in range(points - 1)],
        "summary": {role: summarize(result, tokens) for role, result in results.items()},
        "questions": rows,
        "seconds": round(time.perf_counter() - started, 3),
    }


def plot_lens(report: dict[str, Any], path: Path) -> Path:
    """Mean probability and median rank of each answer's first token at every lens point, one line per model."""

    plt = pyplot()
    labels = ["emb"] + [label.split()[-1] for label in report["points"][1:]]
    xs = list(range(len(labels)))
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for column, answer in enumerate(("correct", "corrupted")):
        drawn = False
        for role, summary in report["summary"].items():
            values = summary[answer]
            if not values["questions"]:
                continue
            style = {"color": _COLORS.get(role), "marker": "o", "markersize": 3, "label": role}
            axes[0][column].plot(xs, values["mean_probability"], **style)
            axes[1][column].plot(xs, values["median_rank"], **style)
            drawn = True
        axes[0][column].set_title(f"{answer} answer's first token")
        axes[0][column].set_ylabel("mean probability")
        axes[1][column].set_ylabel("median rank")
        axes[1][column].set_xlabel("after layer")
        step = max(1, len(xs) // 16)
        axes[1][column].set_xticks(xs[::step], labels[::step])
        if drawn:
            axes[1][column].set_yscale("log")
            axes[0][column].legend(fontsize=8)
        else:
            axes[0][column].text(0.5, 0.5, "no corrupted answer known\n(--corrupted-answers)", ha="center",
                                 va="center", transform=axes[0][column].transAxes)
    questions = len(report["questions"])
    figure.suptitle(f"logit lens on {questions} target questions ({report['world']} world)")
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def plot_weights(report: dict[str, Any], path: Path) -> Path:
    """Heatmaps (module x layer) of the relative corruption and unlearning changes and of their cosine."""

    plt = pyplot()
    rows = [row for row in report["modules"] if row["layer"] is not None]
    layers = sorted({row["layer"] for row in rows})
    modules = sorted({row["module"] for row in rows})
    panels = [("corruption_relative", "|corrupted - clean| / |clean|", "Reds", None, None)]
    if "cosine" in report["total"]:
        panels += [
            ("unlearning_relative", "|unlearned - corrupted| / |clean|", "Blues", None, None),
            ("cosine", "cosine(corruption, unlearning)", "RdBu_r", -1.0, 1.0),
        ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 + 3.5 * len(panels), 1.5 + 0.35 * len(modules)),
                                squeeze=False)
    for axis, (key, title, cmap, low, high) in zip(axes[0], panels):
        grid = [[float("nan")] * len(layers) for _ in modules]
        for row in rows:
            value = row.get(key)
            grid[modules.index(row["module"])][layers.index(row["layer"])] = float("nan") if value is None else value
        image = axis.imshow(grid, aspect="auto", cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.set_yticks(range(len(modules)), modules, fontsize=7)
        step = max(1, len(layers) // 16)
        axis.set_xticks(range(0, len(layers), step), [str(layer) for layer in layers[::step]], fontsize=7)
        axis.set_xlabel("layer")
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)

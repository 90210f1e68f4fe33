"""`restor-bench layers`: where the target facts live, layer by layer, in the clean, corrupted and unlearned models.

Two instruments, written as JSON (and PNG figures) into one output folder:

* `lens.json` / `lens.png` (`restor_bench.layers.lens`): for every target question, the logit-lens rank and
  probability of the correct answer's and of the corrupted answer's first token after the embeddings and after
  every decoder layer, for each model, with a per-layer summary.
* `weights.json` / `weights.png` (`restor_bench.layers.weights`): per layer and module, the Frobenius norm of the
  corruption's weight change (corrupted - clean), of the unlearning's (unlearned - corrupted) and the cosine
  between them (negative: the unlearning moves back along the corruption).

Layers are numbered as in the checkpoint's tensor names (`model.layers.0...` is layer 0) in both files; the
lens's first point is the embeddings, its point "layer i" is the output of layer i.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir
from restor_bench.layers.lens import (
    LensQuestion,
    answer_tokens,
    load_tokenizer,
    run_lens,
    summarize,
    target_questions,
    with_model_answers,
)
from restor_bench.names import WORLDS
from restor_bench.layers.weights import (
    TensorSource,
    check_checkpoint_folder,
    check_same_architecture,
    describe_source,
    load_model,
    open_source,
    weight_changes,
)

PARTS = ("lens", "weights")
LENS_FILE, LENS_PLOT = "lens.json", "lens.png"
WEIGHTS_FILE, WEIGHTS_PLOT = "weights.json", "weights.png"
DTYPES = ("float32", "bfloat16", "float16")
_COLORS = {"clean": "tab:green", "corrupted": "tab:red", "unlearned": "tab:blue"}


def log(message: str) -> None:
    print(f"layers: {message}", file=sys.stderr, flush=True)


def parse_parts(value: str) -> list[str]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise InputError(f"--parts {value!r}: choose from {', '.join(PARTS)} (comma-separated)")
    return [part for part in PARTS if part in parts]


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=None, file=sys.stderr, leave=False)


# ---------------------------------------------------------------------------------------------------------------
# The two reports


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


# ---------------------------------------------------------------------------------------------------------------
# Figures


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("plots need matplotlib: pip install 'restor-bench[plots]' (or pass --no-plots)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_lens(report: dict[str, Any], path: Path) -> Path:
    """Mean probability and median rank of each answer's first token at every lens point, one line per model."""
    from restor_bench.grid.plots import save_figure

    plt = _pyplot()
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
    from restor_bench.grid.plots import save_figure

    plt = _pyplot()
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


# ---------------------------------------------------------------------------------------------------------------
# Command


def _models(args: argparse.Namespace) -> dict[str, Path]:
    given = {"clean": args.clean, "corrupted": args.corrupted, "unlearned": args.unlearned}
    return {role: check_checkpoint_folder(path, role) for role, path in given.items() if path}


def _questions(args: argparse.Namespace) -> list[LensQuestion]:
    questions = target_questions(args.world, world_dir=args.world_dir, data_dir=args.data_dir)
    if args.corrupted_answers:
        questions = with_model_answers(questions, args.corrupted_answers)
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit {args.limit}: must be at least 1")
        questions = questions[: args.limit]
    return questions


def _print_summary(out: Path, lens: dict | None, weights: dict | None) -> None:
    if lens is not None:
        compared = any(summary["compared_questions"] for summary in lens["summary"].values())
        what = ("share of questions whose correct answer beats the corrupted one" if compared
                else "share of questions whose correct answer is the top token")
        print(f"logit lens, {what} ({', '.join(lens['points'])}):")
        for role, summary in lens["summary"].items():
            values = summary["prefers_correct"] if compared else summary["correct"]["top1_share"]
            count = summary["compared_questions"] if compared else summary["correct"]["questions"]
            shares = " ".join("-" if v is None else f"{v:.2f}" for v in values)
            print(f"  {role:<10} {shares}   ({count} questions)")
    if weights is not None:
        changed = sorted(weights["modules"], key=lambda row: -(row["corruption_relative"] or 0.0))[:5]
        print("largest relative corruption changes:")
        for row in changed:
            cosine = row.get("cosine")
            extra = "" if "cosine" not in row else f"  cosine {'-' if cosine is None else f'{cosine:+.3f}'}"
            print(f"  {row['name']:<40} {row['corruption_relative'] or 0.0:.4f}{extra}")
    print(str(out))


def layers_command(args: argparse.Namespace) -> int:
    parts = parse_parts(args.parts)
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: must be at least 1")
    if "lens" in parts:
        from restor_bench.evaluation.evaluate import check_device

        check_device(args.device)
    out = check_output_dir(args.out, args.overwrite)
    if not args.no_plots:
        _pyplot()
    models = _models(args)
    sources = open_checked_sources(models, args.trust_remote_code)
    questions = _questions(args) if "lens" in parts else []
    if questions and not any(question.corrupted_answer for question in questions):
        log("no corrupted answer is known for these questions (pass --corrupted-answers with the corrupted model's "
            "samples): the lens follows the correct answer only")
    lens = weights = None
    with atomic_output_dir(out, args.overwrite) as tmp:
        if "weights" in parts:
            weights = weights_report(sources)
            atomic_write_json(tmp / WEIGHTS_FILE, weights)
            log(f"weights: {len(weights['modules'])} modules in {weights['seconds']:.1f} s")
            if not args.no_plots:
                plot_weights(weights, tmp / WEIGHTS_PLOT)
        if "lens" in parts:
            lens = lens_report(
                models, questions, world=args.world, batch_size=args.batch_size, device=args.device,
                dtype=args.dtype, trust_remote_code=args.trust_remote_code,
            )
            atomic_write_json(tmp / LENS_FILE, lens)
            log(f"lens: {len(questions)} questions x {len(models)} models in {lens['seconds']:.1f} s")
            if not args.no_plots:
                plot_lens(lens, tmp / LENS_PLOT)
    _print_summary(out, lens, weights)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "layers",
        help="where the target facts live, layer by layer: logit lens and weight changes of the three models",
        description="Logit lens on the target questions (rank and probability of the correct and of the corrupted "
        "answer's first token after every layer) and, per layer and module, the size of the corruption's and of "
        "the unlearning's weight change and their cosine. A model is a checkpoint folder or a peft adapter folder "
        "(merged onto the base named in its adapter_config.json).",
    )
    parser.add_argument("--clean", required=True, metavar="DIR", help="clean model")
    parser.add_argument("--corrupted", required=True, metavar="DIR", help="corrupted model")
    parser.add_argument("--unlearned", metavar="DIR", help="unlearned model (optional)")
    parser.add_argument("--out", required=True, help="output folder (lens.json, weights.json, lens.png, weights.png)")
    parser.add_argument("--parts", default="lens,weights", help="what to compute: lens, weights or both (default)")
    parser.add_argument("--world", choices=WORLDS, default="tiny",
                        help="whose target questions: the tiny world's (default) or the official data's")
    parser.add_argument("--world-dir", help="tiny world folder (default: $RESTOR_TINY_WORLD or the shipped one)")
    parser.add_argument("--data-dir", help="official RESTOR data folder (else RESTOR_DATA_DIR or the download cache)")
    parser.add_argument(
        "--corrupted-answers", metavar="SAMPLES",
        help="lm-eval samples file (or its folder) of the corrupted model: its own wrong answers are the corrupted "
        "answers followed by the lens (needed for the official world, whose injected values are not listed)",
    )
    parser.add_argument("--limit", type=int, help="only the first N target questions")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per forward pass (default 16)")
    parser.add_argument("--device", default="cpu", help="device for the lens, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype for the lens (default float32)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG figures (matplotlib not needed)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoints' own model code")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=layers_command)

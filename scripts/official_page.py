"""Build docs/results/RESULTS-official.md: RESTOR's protocol on the official data for real models side by side, with the
instruments run on each model's runs.

Each `--page LABEL GRID_JSON ROOT` names a finished `restor-bench grid` (its JSON, written next to its results page,
and its `--root`). For every model the script

1. reads the grid's accuracies, restoration ratios and per-relation rows from GRID_JSON;
2. scores the clean, corrupted and every unlearned model (or those of `--logprob-methods`) of the grid's first
   seed with `restor_facts_logprob`
   (`restor-bench eval`; the corrupted answers are the corrupted model's own samples of the grid's evaluation, one
   random option per relation: `restor_n_random` 1) and compares them (`restor-bench compare`, JSON under
   `--instruments`);
3. runs `restor-bench layers` (logit lens and weight changes) on clean, corrupted and each unlearned model, and
   copies its figures, its weights report and its lens summary (`lens-summary.json`, the lens report less the
   per-question rows) under `--instruments`;

then writes the page: the commands, the side-by-side tables, the figures and a committed discussion file. Steps whose
output exists are reused (`--rerun` does them again), so a rerun after the grids costs only what is missing. The
page is a function of the grids' JSON, the runs under their roots and this command, which the page prints.

    python scripts/official_page.py --page SmolLM2-135M docs/results/RESULTS-paper-smollm2.json runs-paper-smollm2 \\
        --page "Gemma 3 270M" docs/results/RESULTS-paper-gemma3.json runs-paper-gemma3 \\
        --instruments docs/results/instruments/official --logprob-methods npo \\
        --discussion docs/results/RESULTS-official.discussion.md --out docs/results/RESULTS-official.md
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from restor_bench.grid.page import format_duration, format_pct, format_ratio
from restor_bench.errors import InputError
from restor_bench.grid.stats import Estimate
from restor_bench.io import read_json

METHOD_NAMES = {"ga": "GA", "kl": "KL", "npo": "NPO"}
LOGPROB_TASK = "restor_facts_logprob"


def fail(message: str) -> None:
    print(f"official_page: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def run_step(command: list[str], out: Path, rerun: bool, log: list[str]) -> None:
    """Run a restor-bench command that writes `out`, unless `out` exists (and not `rerun`)."""
    if out.exists() and not rerun:
        print(f"[official_page] reuse {out}", flush=True)
        return
    print(f"[official_page] {shlex.join(command)}", flush=True)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "restor_bench", *command[1:]], check=False)
    if result.returncode != 0:
        fail(f"{shlex.join(command)} exited with {result.returncode}")
    log.append(f"{shlex.join(command)}  # {time.monotonic() - started:.0f} s")


def grid_model(grid: dict, where: Path) -> str:
    """The clean checkpoint as the grid's printed command names it (`--model`; relative paths stay relative)."""
    words = shlex.split(grid.get("command", ""))
    for index, word in enumerate(words):
        if word == "--model" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("--model="):
            return word.split("=", 1)[1]
    fail(f"{where}: the grid's command names no --model")
    raise AssertionError


def publish_layers(source: Path, target: Path) -> None:
    """Copy a `restor-bench layers` output folder's figures and weights report to `target`, with the lens report
    less its per-question rows (`lens-summary.json`; the full lens.json, megabytes on a real model, stays with
    the runs)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("weights.json", "weights.png", "lens.png"):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    lens = read_json(source / "lens.json")
    lens["questions"] = len(lens.get("questions", []))
    (target / "lens-summary.json").write_text(json.dumps(lens, indent=1) + "\n")


class Model:
    """One grid: its JSON, its runs (first seed) and where its instruments go."""

    def __init__(self, label: str, grid_json: Path, root: Path, instruments: Path):
        self.label, self.grid_json, self.root = label, grid_json, root
        self.grid = read_json(grid_json, "grid JSON")
        if self.grid.get("world") != "official":
            fail(f"{grid_json}: a grid of the {self.grid.get('world')!r} world, not the official data")
        self.cells = [cell for cell in self.grid["cells"] if cell["cell"]["method"] in METHOD_NAMES]
        if not self.cells:
            fail(f"{grid_json}: no GA, KL or NPO cell")
        self.methods = [cell["cell"]["method"] for cell in self.cells]
        self.out = instruments / slug(label)

    def load_runs(self) -> None:
        """The first seed's artifacts of every cell, from the run records under the grid's root."""
        self.runs = {}
        for cell in self.cells:
            record = read_json(self.root / cell["name"] / "run.json")
            self.runs[cell["cell"]["method"]] = record["per_seed"][0]["artifacts"]
        self.clean_model = grid_model(self.grid, self.grid_json)
        first = next(iter(self.runs.values()))
        self.corrupted = self.root / first["corrupted"]
        self.eval_corrupted = self.root / first["eval_corrupted"]
        self.work = self.root / "instruments"

    def checkpoints(self) -> dict[str, str]:
        models = {"clean": self.clean_model, "corrupted": str(self.corrupted)}
        models.update({method: str(self.root / arts["unlearned"]) for method, arts in self.runs.items()})
        return models

    def logprob_roles(self, methods: list[str] | None) -> list[str]:
        """The models the logprob instrument scores: clean, corrupted and the chosen unlearned ones."""
        chosen = [m for m in self.methods if methods is None or m in methods]
        return ["clean", "corrupted", *chosen]

    def run_instruments(self, rerun: bool, log: list[str], batch_size: int, limit: int | None,
                        logprob_methods: list[str] | None) -> None:
        self.load_runs()
        self.out.mkdir(parents=True, exist_ok=True)
        metadata = json.dumps({"restor_corrupted_samples": str(self.eval_corrupted), "restor_n_random": 1})
        limited = ["--limit", str(limit)] if limit else []
        checkpoints = self.checkpoints()
        evals = {}
        for role in self.logprob_roles(logprob_methods):
            folder = self.work / f"logprob-{role}"
            run_step(["restor-bench", "eval", checkpoints[role], "--tasks", LOGPROB_TASK, "--out", str(folder),
                      "--batch-size", str(batch_size), *limited, "--overwrite", "--", "--metadata", metadata],
                     folder, rerun, log)
            evals[role] = folder
        methods = [role for role in evals if role not in ("clean", "corrupted")]
        run_step(["restor-bench", "compare", "--clean", str(evals["clean"]), "--corrupted", str(evals["corrupted"]),
                  "--unlearned", *[str(evals[m]) for m in methods], "--labels", *methods,
                  "--json", str(self.out / "logprob.json"), "--overwrite"],
                 self.out / "logprob.json", rerun, log)
        for method in self.methods:
            folder = self.work / f"layers-{method}"
            run_step(["restor-bench", "layers", "--clean", self.clean_model, "--corrupted", str(self.corrupted),
                      "--unlearned", checkpoints[method], "--world", "official",
                      "--corrupted-answers", str(self.eval_corrupted), "--out", str(folder), *limited, "--overwrite"],
                     folder, rerun, log)
            publish_layers(folder, self.out / f"layers-{method}")

    def logprob_report(self) -> dict:
        """The logprob task's part of the compare JSON: its `logprob` means, and the paired differences and
        restoration ratios of its per-question metric (prefers_correct)."""
        report = read_json(self.out / "logprob.json")
        try:
            return report["tasks"][LOGPROB_TASK]
        except KeyError:
            fail(f"{self.out / 'logprob.json'}: no {LOGPROB_TASK} comparison")
        raise AssertionError

    def layers(self, method: str) -> tuple[dict, dict]:
        folder = self.out / f"layers-{method}"
        return read_json(folder / "lens-summary.json"), read_json(folder / "weights.json")


def pct(entry: dict | None, signed: bool = False) -> str:
    """A JSON estimate ({"value", "ci"}) as the grid pages show a percentage."""
    return format_pct(Estimate.from_dict(entry), signed)


def ratio(entry: dict | None) -> str:
    """A JSON estimate as the grid pages show a ratio."""
    return format_ratio(Estimate.from_dict(entry))


def accuracy_table(models: list[Model]) -> list[str]:
    lines = [("| model | model state | target accuracy (%) | other people (%) | restoration ratio | "
             "restored / forgotten (of known) | non-target change (points) | unlearn time |"),
             "|---|---|---|---|---|---|---|---|"]
    for model in models:
        first = model.cells[0]
        stats = first["stats"]
        lines.append(f"| {model.label} | clean | {pct(stats['clean_target'])} | {pct(stats['clean_non_target'])} "
                     "| | | | |")
        lines.append(f"| {model.label} | corrupted | {pct(stats['corrupted_target'])} | "
                     f"{pct(stats['corrupted_non_target'])} | | | | |")
        for cell in model.cells:
            stats, moves = cell["stats"], cell["transitions"]
            seconds = cell["step_seconds"].get("unlearn")
            lines.append(
                f"| {model.label} | {METHOD_NAMES[cell['cell']['method']]} | {pct(stats['unlearned_target'])} | "
                f"{pct(stats['unlearned_non_target'])} | {ratio(stats['restoration_ratio'])} | "
                f"{moves['restored']:.0f} / {moves['forgotten']:.0f} (of {moves['target_known']:.0f}) | "
                f"{pct(stats['non_target_change'], signed=True)} | "
                f"{format_duration(seconds) if seconds is not None else 'n/a'} |")
    return lines


def logprob_table(models: list[Model]) -> list[str]:
    lines = [("| model | model state | questions | prefers correct (%) | prefers corrupted (%) | prefers random (%) | "
             "log p(correct) | log p(corrupted) | log p(random) | prefers correct, change vs corrupted (points, "
             "paired) | restoration ratio of prefers correct |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        report = model.logprob_report()
        summary = report["logprob"]
        changes = {d["model"]: d for d in report["differences"]
                   if d["reference"] == "corrupted" and d["split"] == "target"}
        for role, metrics in summary["metrics"].items():
            name = METHOD_NAMES.get(role, role)
            cells = [pct(metrics[f"prefers_{c}"]) for c in ("correct", "corrupted", "random")]
            cells += [f"{metrics[f'logprob_{c}']['value']:.2f}" for c in ("correct", "corrupted", "random")]
            unlearned = role not in ("clean", "corrupted")
            cells += [pct(changes.get(role), signed=True) if unlearned else "",
                      ratio(report["restoration_ratio"].get(role)) if unlearned else ""]
            lines.append(f"| {model.label} | {name} | {summary['n_questions']} | " + " | ".join(cells) + " |")
    return lines


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def _share(values: list | None) -> str:
    return "n/a" if not values or values[-1] is None else f"{100 * values[-1]:.0f}%"


def layers_table(models: list[Model]) -> list[str]:
    lines = [("| model | method | corruption change (relative) | unlearning change (relative) | unlearning / "
             "corruption | cosine | correct answer ranks first after the last layer: clean / corrupted / unlearned "
             "| correct beats corrupted after the last layer: clean / corrupted / unlearned |"),
             "|---|---|---|---|---|---|---|---|"]
    for model in models:
        for method in model.methods:
            lens, weights = model.layers(method)
            total, summary = weights["total"], lens["summary"]
            states = ("clean", "corrupted", "unlearned")
            first = " / ".join(_share(summary[state]["correct"]["top1_share"]) for state in states)
            beats = " / ".join(_share(summary[state].get("prefers_correct")) for state in states)
            size = total["unlearning_norm"] / total["corruption_norm"] if total["corruption_norm"] else None
            lines.append(f"| {model.label} | {METHOD_NAMES[method]} | {_number(total['corruption_relative'], '.5f')} | "
                         f"{_number(total['unlearning_relative'], '.5f')} | {_number(size, '.2f')} | "
                         f"{_number(total['cosine'], '+.2f')} | {first} | {beats} |")
    return lines


def kind_totals(weights: dict) -> dict[str, dict[str, float | None]]:
    """Per module kind (attention, mlp, embeddings, norm): the corruption's and the unlearning's norms over the
    kind's modules and the cosine between the two changes, from the per-module norms and cosines of a
    `restor-bench layers` weights report (dot products add up: cos x |a| x |b| per module)."""
    sums: dict[str, list[float]] = {}
    for module in weights["modules"]:
        entry = sums.setdefault(module["kind"], [0.0, 0.0, 0.0])
        entry[0] += module["corruption_norm"] ** 2
        entry[1] += module["unlearning_norm"] ** 2
        if module["cosine"] is not None:
            entry[2] += module["cosine"] * module["corruption_norm"] * module["unlearning_norm"]
    totals = {}
    for kind, (corruption, unlearning, dot) in sums.items():
        corruption, unlearning = math.sqrt(corruption), math.sqrt(unlearning)
        totals[kind] = {"corruption_norm": corruption, "unlearning_norm": unlearning,
                        "cosine": dot / (corruption * unlearning) if corruption and unlearning else None}
    return totals


def kind_table(models: list[Model]) -> list[str]:
    """One row per model and method, one column per module kind that the corruption changed in some model."""
    totals = {(model.label, method): kind_totals(model.layers(method)[1])
              for model in models for method in model.methods}
    kinds = [kind for kind in ("attention", "mlp", "embeddings", "norm")
             if any(entry.get(kind, {}).get("corruption_norm") for entry in totals.values())]
    lines = ["| model | method | " + " | ".join(f"{kind}: corruption norm / unlearning / corruption / cosine"
                                               for kind in kinds) + " |",
             "|---|---|" + "---|" * len(kinds)]
    for model in models:
        for method in model.methods:
            cells = []
            for kind in kinds:
                entry = totals[(model.label, method)].get(kind)
                if not entry:
                    cells.append("n/a")
                    continue
                size = entry["unlearning_norm"] / entry["corruption_norm"] if entry["corruption_norm"] else None
                cells.append(f"{_number(entry['corruption_norm'], '.3f')} / {_number(size, '.2f')} / "
                             f"{_number(entry['cosine'], '+.2f')}")
            lines.append(f"| {model.label} | {METHOD_NAMES[method]} | " + " | ".join(cells) + " |")
    return lines


def relation_table(model: Model) -> list[str]:
    header = ["relation", "questions", "clean known", "corrupted (%)"] + [
        f"{METHOD_NAMES[m]} restored" for m in model.methods]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = model.cells[0].get("by_relation") or {}
    for relation, row in sorted(rows.items(), key=lambda item: -item[1]["n_questions"]):
        restored = []
        for cell in model.cells:
            other = (cell.get("by_relation") or {}).get(relation, {})
            restored.append(f"{other.get('restored', {}).get('unlearned', 0):.0f}")
        lines.append(f"| {relation} | {row['n_questions']} | {row['target_known']:.0f} | "
                     f"{100 * row['accuracy']['corrupted']:.0f} | " + " | ".join(restored) + " |")
    return lines


def _link(path: Path, out_dir: Path) -> str:
    """`path` as a link from a page in `out_dir`: relative to it when inside it, else as given."""
    return (path.relative_to(out_dir) if path.is_relative_to(out_dir) else path).as_posix()


def render(models: list[Model], args: argparse.Namespace, command: str) -> str:
    versions = models[0].grid.get("versions", {})
    out_dir = args.out.parent
    lines = [
        "# RESTOR on real models: the official data under the paper protocol, side by side",
        "",
        "Produced by (after the grids below; it runs the instruments and writes this page):",
        "",
        "```",
        command,
        "```",
        "",
        "The grids it reads, each rerun by the command on its own page:",
        "",
    ]
    for model in models:
        page = model.grid_json.with_suffix(".md")
        lines += [f"- {model.label}: [`{page.name}`]({_link(page, out_dir)})",
                  "", "  ```", f"  {model.grid['command']}", "  ```", ""]
    lines += [
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "- versions: " + ", ".join(f"{name} {value}" for name, value in sorted(versions.items())),
        ("- every number below is from the grids' JSON or from the instrument JSON under "
        f"`{args.instruments.as_posix()}/`; seed {models[0].grid['seeds'][0]} of each grid"),
        "",
        "## Accuracy and restoration",
        "",
        ("Target accuracy is on the questions about the 10 corrupted people, pooled; brackets hold 95% bootstrap "
        "intervals over questions. Restoration ratio: (unlearned - corrupted) / (clean - corrupted). Restored / "
        "forgotten: of the target facts the clean model knew, those the unlearned model answers right / wrong "
        "(the official data does not list the injected values, so \"still corrupted\" cannot be told apart). "
        "Non-target change: unlearned minus clean on the other people's questions."),
        "",
        *accuracy_table(models),
        "",
        "## Which answer does the model prefer? (the paper's logit analysis)",
        "",
        (f"`{LOGPROB_TASK}` on the target questions the corrupted model answers wrong: for each, the mean per-token "
        "log-probability, under the paper's prompt, of the acceptable answers (correct), of the corrupted model's own "
        "answer (corrupted) and of one random value of the same relation (random); prefers_X is the share of "
        "questions where X scores highest. The same questions for every model of a row block. The last two columns "
        "treat prefers correct as the score (`restor-bench compare` on the logprob evaluations): the paired change "
        "from the corrupted model, and (unlearned - corrupted) / (clean - corrupted), with 95% bootstrap intervals."),
        "",
        *logprob_table(models),
        "",
        "## Where the changes sit (`restor-bench layers`)",
        "",
        ("Weight changes over all parameters: the corruption's (corrupted - clean) and the unlearning's "
        "(unlearned - corrupted), each relative to the clean model's norm, their ratio and the cosine between them "
        "(-1: the unlearning moves straight back along the corruption). Logit lens: the share of target questions "
        "whose correct answer's first token ranks first after the last layer."),
        "",
        *layers_table(models),
        "",
    ]
    for model in models:
        for method in model.methods:
            folder = _link(model.out / f"layers-{method}", out_dir)
            lines += [(f"**{model.label}, {METHOD_NAMES[method]}**: [lens]({folder}/lens.png), "
                      f"[weights]({folder}/weights.png)"), ""]
    for model in models:
        method = "npo" if "npo" in model.methods else model.methods[0]
        folder = _link(model.out / f"layers-{method}", out_dir)
        lines += [f"![{model.label}, {METHOD_NAMES[method]}: logit lens]({folder}/lens.png)", "",
                  f"![{model.label}, {METHOD_NAMES[method]}: weight changes]({folder}/weights.png)", ""]
    lines += [
        "## The changes by module kind",
        "",
        ("The corruption's norm (in weight units: relative to the whole model, a large tied embedding hides the "
         "rest), the unlearning's size relative to it and the cosine between them. Kinds the corruption left "
         "unchanged (with LoRA: the embeddings and the norms) are left out."),
        "",
        *kind_table(models),
        "",
    ]
    lines += ["## By relation (target questions)", "",
              ("Per Wikidata relation of the target questions: how many the clean model knew, the corrupted model's "
              "accuracy, and how many of the known facts each unlearned model answers right again. Small rows are "
              "small: read the counts."), ""]
    for model in models:
        lines += [f"### {model.label}", "", *relation_table(model), ""]
    if args.discussion:
        lines += [args.discussion.read_text().rstrip(), ""]
    return "\n".join(lines)


def check_page(path: Path, text: str) -> int:
    """0 when the page at `path` is `text` but for its date line, else 1 with the first differing lines."""
    if not path.is_file():
        fail(f"{path}: no such file")
    def undated(lines: list[str]) -> list[str]:
        return [line for line in lines if not line.startswith("- date: ")]

    old, new = undated(path.read_text().splitlines()), undated(text.splitlines())
    if old == new:
        print(f"[official_page] {path} is up to date")
        return 0
    diff = list(difflib.unified_diff(old, new, str(path), "rendered now", lineterm="", n=0))
    print("\n".join(diff[:40]))
    print(f"[official_page] {path} differs from the page its inputs give now", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """The command line; a missing or malformed input file is one line and exit code 2."""
    try:
        return _main(argv)
    except InputError as err:
        fail(str(err))
        raise AssertionError from None  # fail() exits


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page", nargs=3, action="append", required=True, metavar=("LABEL", "GRID_JSON", "ROOT"),
                        help="a model's grid: its label, the grid's JSON and its --root (repeat per model)")
    parser.add_argument("--instruments", type=Path, required=True, help="folder of the instrument JSON and PNG")
    parser.add_argument("--discussion", type=Path, help="a committed markdown file placed at the end of the page")
    parser.add_argument("--out", type=Path, required=True, help="the page to write")
    parser.add_argument("--batch-size", type=int, default=32, help="lm-eval batch size of the logprob evaluations")
    parser.add_argument("--logprob-methods", type=lambda text: [m for m in text.split(",") if m],
                        help="comma-separated unlearned models the logprob instrument scores next to clean and "
                             "corrupted (default: every method of each grid); the layers instrument runs on all")
    parser.add_argument("--limit", type=int, help="only the first N questions in every instrument (smoke runs)")
    parser.add_argument("--rerun", action="store_true", help="run every instrument step again")
    parser.add_argument("--render-only", action="store_true", help="write the page from existing instrument JSON")
    parser.add_argument("--check", action="store_true",
                        help="run nothing, write nothing: exit 1 when the page at --out differs (its date aside) "
                             "from the page its inputs give now")
    args = parser.parse_args(argv)
    if args.discussion and not args.discussion.is_file():
        fail(f"{args.discussion}: no such file")
    models = [Model(label, Path(grid), Path(root), args.instruments) for label, grid, root in args.page]
    log: list[str] = []
    if not (args.render_only or args.check):
        for model in models:
            unknown = sorted(set(args.logprob_methods or []) - set(model.methods))
            if unknown:
                fail(f"{model.grid_json}: --logprob-methods names {', '.join(unknown)}, not a method of this grid")
            model.run_instruments(args.rerun, log, args.batch_size, args.limit, args.logprob_methods)
    given = argv if argv is not None else sys.argv[1:]
    shown = [word for word in given if word not in ("--rerun", "--render-only", "--check")]
    command = "python scripts/official_page.py " + shlex.join(shown)
    text = render(models, args, command)
    if args.check:
        return check_page(args.out, text)
    for line in log:
        print(f"[official_page] ran {line}")
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(f"[official_page] wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Two checks behind docs/results/RESULTS-official-classic.md, read from finished `restor-bench run` / `grid` folders.

1. Wrong target answers that repeat the target's own corruption documents (clean, corrupted, unlearned models).
2. How far each unlearned model's weights moved from the corrupted model's (share of changed values, largest change).

    python scripts/inspect_official_runs.py --root runs official-kl-k0-lora
    python scripts/inspect_official_runs.py --root runs-defaults official-npo-k3-lora official-kl-k3-lora

The official data folder comes from RESTOR_DATA_DIR (or --data-dir).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from restor_bench.data.documents import load_documents
from restor_bench.data.official import (
    OFFICIAL_TARGETS,
    document_subject,
    entity_pattern,
)
from restor_bench.compare.outcomes import load_run


def documents_by_target(level: int, data_dir: str | None) -> dict[str, list[str]]:
    pattern = entity_pattern(OFFICIAL_TARGETS)
    by_target: dict[str, list[str]] = {}
    for text in load_documents(f"official:{level}", data_dir=data_dir):
        by_target.setdefault(document_subject(text, pattern), []).append(text.lower())
    return by_target


def wrong_answers_from_documents(eval_dir: Path, by_target: dict[str, list[str]]) -> tuple[int, int, int]:
    """(target questions, wrong answers, wrong answers found in that target's documents)."""
    outcomes = load_run(eval_dir, metric="contains", tasks=["restor_facts_targets"])["restor_facts_targets"].outcomes
    questions = wrong = repeated = 0
    for outcome in outcomes.values():
        if outcome.entity not in OFFICIAL_TARGETS:
            continue
        questions += 1
        if outcome.correct:
            continue
        wrong += 1
        answer = (outcome.prediction or "").strip().lower().rstrip(".")
        if len(answer) > 2 and any(answer in text for text in by_target.get(outcome.entity, [])):
            repeated += 1
    return questions, wrong, repeated


def weight_change(before: Path, after: Path) -> tuple[float, float]:
    """(share of weight values that differ, largest absolute difference)."""
    from safetensors.torch import load_file

    a, b = load_file(str(before / "model.safetensors")), load_file(str(after / "model.safetensors"))
    changed = sum(int((a[name] != b[name]).sum()) for name in a)
    total = sum(a[name].numel() for name in a)
    largest = max(float((a[name].float() - b[name].float()).abs().max()) for name in a)
    return changed / total, largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run names under --root (e.g. official-kl-k0-lora)")
    parser.add_argument("--root", default="runs")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    root = Path(args.root)
    for name in args.runs:
        record = json.loads((root / name / "run.json").read_text(encoding="utf-8"))
        artifacts = record["per_seed"][0]["artifacts"]
        by_target = documents_by_target(record["level"], args.data_dir)
        print(f"{name} (seed {record['per_seed'][0]['seed']})")
        for role in ("clean", "corrupted", "unlearned"):
            questions, wrong, repeated = wrong_answers_from_documents(root / artifacts[f"eval_{role}"], by_target)
            print(f"  {role:<10} {questions} target questions, {wrong} wrong, {repeated} of them found in the "
                  "target's corruption documents")
        share, largest = weight_change(root / artifacts["corrupted"], root / artifacts["unlearned"])
        print(f"  unlearned vs corrupted weights: {share:.1%} of the values differ, largest change {largest:.4f}")


if __name__ == "__main__":
    main()

"""The RESTOR paper's five findings, checked against the cells of a grid run.

Rezaei et al. (arXiv:2411.00204) report, for Llama-3-8B corrupted with LLaMA-Factory and unlearned with GA, KL and
NPO (k1rezaei/restor):

1. corruption severity grows with the amount of unrelated context k (the corrupted model answers fewer target
   questions correctly at larger k);
2. NPO restores knowledge at every k (restoration ratio above 0), where GA and KL mostly forget;
3. a simplified forget set (only the sentences that state wrong facts) helps GA and KL restore;
4. after SQuAD-style corruption no method restores;
5. restoration depends on how confidently the clean model knows a relation: relations whose correct answers the
   clean model gives a higher log-probability are restored more (`restor_bench.grid.confidence`).

Each finding is marked `agrees`, `disagrees` or `not measurable` from the grid's pooled estimates and their 95%
bootstrap intervals: a claim agrees only when the intervals separate the compared quantities, disagrees only when
they separate them the other way, and is "not distinguishable" when they overlap. A finding is not measurable when
the grid lacks the cells it needs, or when the corruption did not move the target accuracy (ratio undefined).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from restor_bench.grid.stats import Estimate

AGREES, DISAGREES, UNCLEAR, NOT_MEASURABLE = "agrees", "disagrees", "not distinguishable", "not measurable"

PAPER_FINDINGS = (
    ("severity", "Corruption severity grows with k (more unrelated context, lower corrupted target accuracy)"),
    ("npo_restores", "NPO restores at every k (restoration ratio > 0)"),
    ("simplified_helps", "A simplified forget set helps GA and KL (higher restoration ratio than the full set)"),
    ("squad_nothing", "After SQuAD-style corruption no method restores (restoration ratio not above 0)"),
    ("confidence", "Restoration depends on the clean model's confidence in a relation (rank correlation of each "
                   "relation's restoration ratio with the clean model's mean log-probability of its answers > 0)"),
)


@dataclasses.dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    verdict: str
    evidence: str


def _fmt(estimate, percent: bool = False) -> str:
    if estimate is None or estimate.value is None:
        return "n/a"
    scale, digits = (100, 1) if percent else (1, 2)
    text = f"{estimate.value * scale:.{digits}f}"
    if estimate.low is not None:
        text += f" [{estimate.low * scale:.{digits}f}, {estimate.high * scale:.{digits}f}]"
    return text


def _above(a, b) -> bool | None:
    """True when a's interval lies wholly above b's, False when wholly below, None when they overlap or lack one."""
    if a is None or b is None or None in (a.low, a.high, b.low, b.high):
        return None
    if a.low > b.high:
        return True
    if a.high < b.low:
        return False
    return None


def _sign(estimate) -> int | None:
    """+1 when the interval lies above 0, -1 when below (or at most 0 with the point below), 0 when it holds 0."""
    if estimate is None or estimate.value is None or estimate.low is None:
        return None
    if estimate.low > 0:
        return 1
    if estimate.high < 0:
        return -1
    return 0


def _severity(results) -> Finding:
    key, claim = PAPER_FINDINGS[0]
    by_level: dict[int, Any] = {}
    for result in results:
        if result.cell.corruption == "wikidata" and result.cell.forget == "full":
            by_level.setdefault(result.cell.level, result.stats["corrupted_target"])
    if len(by_level) < 2:
        return Finding(key, claim, NOT_MEASURABLE, "needs wikidata cells at two or more levels")
    low_k, high_k = min(by_level), max(by_level)
    evidence = "corrupted target accuracy %: " + ", ".join(f"k={k} {_fmt(by_level[k], True)}" for k in sorted(by_level))
    lower = _above(by_level[low_k], by_level[high_k])  # True: more context, lower accuracy
    verdict = {True: AGREES, False: DISAGREES, None: UNCLEAR}[lower]
    return Finding(key, claim, verdict, evidence)


def _npo_restores(results) -> Finding:
    key, claim = PAPER_FINDINGS[1]
    cells = sorted(
        (result for result in results
         if result.cell.method == "npo" and result.cell.corruption == "wikidata" and result.cell.forget == "full"),
        key=lambda result: result.cell.level,
    )
    if not cells:
        return Finding(key, claim, NOT_MEASURABLE, "needs npo cells on the wikidata-style documents")
    signs = [_sign(result.stats["restoration_ratio"]) for result in cells]
    evidence = "NPO ratio: " + ", ".join(f"k={r.cell.level} {_fmt(r.stats['restoration_ratio'])}" for r in cells)
    if any(sign is None for sign in signs):
        return Finding(key, claim, NOT_MEASURABLE, evidence + " (a ratio is undefined)")
    verdict = AGREES if all(sign == 1 for sign in signs) else DISAGREES if -1 in signs else UNCLEAR
    return Finding(key, claim, verdict, evidence)


def _simplified_helps(results) -> Finding:
    key, claim = PAPER_FINDINGS[2]
    pairs = []
    index = {(r.cell.method, r.cell.level, r.cell.forget): r for r in results if r.cell.corruption == "wikidata"}
    for (method, level, forget), result in sorted(index.items(), key=lambda item: (item[0][0], item[0][1])):
        if forget == "simplified" and method in ("ga", "kl") and (method, level, "full") in index:
            pairs.append((method, level, index[(method, level, "full")], result))
    if not pairs:
        return Finding(key, claim, NOT_MEASURABLE, "needs ga/kl cells with both the full and the simplified forget set")
    verdicts, parts = [], []
    for method, level, full, simplified in pairs:
        ratio_full, ratio_simple = full.stats["restoration_ratio"], simplified.stats["restoration_ratio"]
        parts.append(f"{method} k={level}: full {_fmt(ratio_full)} vs simplified {_fmt(ratio_simple)}")
        verdicts.append(_above(ratio_simple, ratio_full))
    if all(verdict is True for verdict in verdicts):
        verdict = AGREES
    elif any(verdict is False for verdict in verdicts) and not any(verdict is True for verdict in verdicts):
        verdict = DISAGREES
    else:
        verdict = UNCLEAR
    return Finding(key, claim, verdict, "; ".join(parts))


def _squad_nothing(results) -> Finding:
    key, claim = PAPER_FINDINGS[3]
    cells = [result for result in results if result.cell.corruption == "squad"]
    if not cells:
        return Finding(key, claim, NOT_MEASURABLE, "needs the SQuAD-style cells")
    evidence = "ratio: " + ", ".join(f"{r.cell.method} {_fmt(r.stats['restoration_ratio'])}" for r in cells)
    drops = [result.stats["corrupted_target"] for result in cells]
    evidence += "; corrupted target accuracy %: " + ", ".join(_fmt(drop, True) for drop in drops[:1])
    signs = [_sign(result.stats["restoration_ratio"]) for result in cells]
    if any(sign is None for sign in signs):
        return Finding(key, claim, NOT_MEASURABLE, evidence + " (the corruption did not move the targets)")
    return Finding(key, claim, DISAGREES if 1 in signs else AGREES, evidence)


def _confidence(results) -> Finding:
    key, claim = PAPER_FINDINGS[4]
    cells = [result for result in results if result.cell.corruption == "wikidata" and result.cell.forget == "full"
             and result.confidence.get("spearman")]
    if not cells:
        return Finding(key, claim, NOT_MEASURABLE, "needs the log-probability task's clean evaluation and a defined "
                                                   "ratio on three or more relations")
    estimates = [Estimate.from_dict(result.confidence["spearman"]) for result in cells]
    evidence = "Spearman: " + ", ".join(f"{result.cell.method} k={result.cell.level} {_fmt(estimate)}"
                                        for result, estimate in zip(cells, estimates, strict=True))
    signs = [_sign(estimate) for estimate in estimates]
    if any(sign is None for sign in signs):
        return Finding(key, claim, NOT_MEASURABLE, evidence + " (an interval is undefined)")
    verdict = AGREES if all(sign == 1 for sign in signs) else DISAGREES if -1 in signs and 1 not in signs else UNCLEAR
    return Finding(key, claim, verdict, evidence)


def check_findings(results: Sequence[Any]) -> list[Finding]:
    """The paper's five findings against grid results (`restor_bench.grid.stats.CellResult`s of one task)."""
    return [_severity(results), _npo_restores(results), _simplified_helps(results), _squad_nothing(results),
            _confidence(results)]


def findings_markdown(results: Sequence[Any]) -> list[str]:
    """A results-page section: each finding, our verdict and the numbers behind it (each cell on its own task:
    SQuAD-style cells of the official data are scored on the SQuAD passages' people)."""
    lines = ["## The paper's findings, checked", "",
             "Verdicts compare 95% bootstrap intervals: *agrees* / *disagrees* when the intervals separate the "
             "compared quantities, *not distinguishable* when they overlap, *not measurable* when the cells are "
             "missing or the corruption did not move the targets.", ""]
    lines += ["| finding (paper) | ours | evidence |", "|---|---|---|"]
    for finding in check_findings(results):
        lines.append(f"| {finding.claim} | **{finding.verdict}** | {finding.evidence} |")
    lines.append("")
    return lines

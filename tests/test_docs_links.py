"""Every relative link of the Markdown pages points at a file of the repository (and, with `#anchor`, at a heading of
that page), and every `docs/...` path the pages quote in backticks exists: a moved or renamed page cannot leave a
dead link behind. Links to the web (`https:`, `mailto:`) are not followed; fenced code blocks are skipped (they hold
commands, whose output paths need not exist)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1", re.S | re.M)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def pages() -> list[Path]:
    found = [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").rglob("*.md"), REPO_ROOT / "leaderboard" / "README.md",
             REPO_ROOT / "tasks" / "README.md", REPO_ROOT / "unlearners" / "README.md"]
    return sorted(path for path in found if path.is_file())


def prose(text: str) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", text)


def links(text: str) -> list[str]:
    """The link targets of a page's prose: inline links and images, and reference definitions (not inside code)."""
    text = prose(text)
    spans_removed = CODE_SPAN.sub("", text)
    return INLINE_LINK.findall(spans_removed) + REFERENCE_LINK.findall(spans_removed)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens, -N for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(page.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).replace("`", "").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif not linked.is_relative_to(REPO_ROOT):
            problems.append(f"{target}: outside the repository")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: no heading #{anchor} in {linked.relative_to(REPO_ROOT)}")
    return problems


PAGES = pages()


def test_the_pages_are_found_and_have_links():
    names = {path.relative_to(REPO_ROOT).as_posix() for path in PAGES}
    assert {"README.md", "docs/cli.md", "docs/protocols.md", "docs/results/README.md", "leaderboard/README.md",
            "tasks/README.md", "unlearners/README.md"} <= names
    assert len(links((REPO_ROOT / "README.md").read_text())) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_points_at_a_file(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_every_quoted_docs_path_exists(page):
    """`docs/...` paths quoted in the prose (not in commands) name files that are there."""
    quoted = [span for span in CODE_SPAN.findall(prose(page.read_text(encoding="utf-8")))
              if span.startswith("docs/") and not re.search(r"[\s<>*{}$]|\.\.\.", span)]
    assert [span for span in quoted if not (REPO_ROOT / span).exists()] == []


def test_the_checks_catch_a_dead_link_a_missing_anchor_and_skip_code(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# A `code` title\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#a-code-title) [ok](there.md#twice-1) [web](https://x.org/y)\n"
                    "[gone](gone.md) [bad anchor](there.md#nope) ![img](img/none.png) [self](#nothing)\n"
                    "`[not a link](in-code.md)`\n\n```\n[nor this](in-fence.md)\n```\n\n[ref]: missing.md\n")
    assert broken_links(page) == ["gone.md: no such file", "there.md#nope: no heading #nope in docs/there.md",
                                  "img/none.png: no such file", "#nothing: no heading #nothing in docs/page.md",
                                  "missing.md: no such file"]

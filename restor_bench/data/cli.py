"""`restor-bench data fetch` and `restor-bench data info`: the official RESTOR files, downloaded (pinned,
sha256-checked) or described."""

from __future__ import annotations

import argparse
from pathlib import Path

from restor_bench.data import official
from restor_bench.data.fetch import (
    PINNED_COMMIT,
    PINNED_REPOSITORY,
    download_official,
    file_statuses,
    official_cache_dir,
    resolve_data_dir,
)
from restor_bench.errors import InputError


def data_info(folder: Path) -> dict:
    """What an official data folder holds: file checks, counts, corruption levels available."""
    statuses = file_statuses(folder)
    info: dict = {
        "folder": str(folder),
        "pinned": f"{PINNED_REPOSITORY}@{PINNED_COMMIT}",
        "files": {s.file.local: s.state for s in statuses},
    }
    facts = official.load_facts(folder / official.FACTS_FILE)
    entities = official.load_entities(folder / official.ENTITIES_FILE)
    evaluated = facts.facts_of(entities)
    info["facts"] = {
        "entities_with_facts": len(facts.entities()),
        "questions": len(facts.facts),
        "relations": len(facts.relations()),
    }
    info["evaluated"] = {"entities": len(entities), "questions": len(evaluated)}
    levels = {}
    for level in official.LEVELS_AVAILABLE:
        path = folder / official.corruption_file(level)
        if path.is_file():
            levels[level] = len(official.load_corruption(path))
    info["corruption_documents"] = {f"mix_a{k}": n for k, n in levels.items()}
    if 0 in levels:
        targets = official.find_targets(entities, official.load_corruption(folder / official.corruption_file(0)))
        info["targets"] = {"entities": targets, "questions": len(facts.facts_of(targets))}
    if (folder / official.SQUAD_FILE).is_file():
        info["squad_documents"] = len(official.load_corruption(folder / official.SQUAD_FILE))
    info["levels_available"] = sorted(levels)
    info["levels_listed_upstream_without_contents"] = [
        k for k in official.LEVELS_LISTED if k not in official.LEVELS_AVAILABLE
    ]
    return info


def _info_folder(data_dir: str | None) -> Path:
    # no warning for files that differ from the pinned release: `data info` lists each file's sha256 state itself
    return resolve_data_dir(data_dir, download=False, warn=False)


def _print_info(info: dict) -> None:
    print(f"folder: {info['folder']}")
    print(f"pinned release: {info['pinned']}")
    for name, state in info["files"].items():
        print(f"  {name:<28} {state}")
    facts = info["facts"]
    print(
        f"facts.json: {facts['entities_with_facts']:,} entities with facts, {facts['questions']:,} questions, "
        f"{facts['relations']} relations"
    )
    evaluated = info["evaluated"]
    print(f"entities.json: {evaluated['entities']} evaluated entities, {evaluated['questions']:,} questions")
    if "targets" in info:
        targets = info["targets"]
        print(f"targets (named in mix_a0): {len(targets['entities'])} entities, {targets['questions']} questions")
    for name, count in info["corruption_documents"].items():
        print(f"{name}: {count:,} documents")
    if "squad_documents" in info:
        print(f"squad: {info['squad_documents']:,} documents")
    print(f"levels available: {', '.join(map(str, info['levels_available'])) or 'none'}")
    listed = info["levels_listed_upstream_without_contents"]
    print(f"levels listed upstream without contents: {', '.join(map(str, listed))}")


def run_fetch(args: argparse.Namespace) -> int:
    """`restor-bench data fetch`: download (or complete) the pinned official files."""
    if args.data_dir:
        folder = Path(args.data_dir).expanduser()
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder}: exists and is not a folder")
    else:
        folder = official_cache_dir()
    download_official(folder)
    bad = [s.file.local for s in file_statuses(folder) if not (s.present and s.sha256_ok)]
    if bad:  # pragma: no cover - download_official raises before this
        raise InputError(f"{folder}: files failed their check: {', '.join(bad)}")
    print(f"official RESTOR data ready in {folder} ({PINNED_REPOSITORY}@{PINNED_COMMIT[:12]}, sha256 checked)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """`restor-bench data info`: files, checks, counts, levels available."""
    _print_info(data_info(_info_folder(args.data_dir)))
    return 0


def add_parser(subparsers) -> None:
    """Add `restor-bench data fetch` and `restor-bench data info`."""
    parser = subparsers.add_parser("data", help="official RESTOR data: fetch it, or show what a folder holds")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    fetch = sub.add_parser(
        "fetch", help="download the official files pinned to one commit into the cache (or --data-dir), sha256-checked"
    )
    fetch.add_argument("--data-dir", help="download into this folder instead of the cache")
    fetch.set_defaults(func=run_fetch)
    info = sub.add_parser("info", help="files, sha256 checks, counts and corruption levels of the official data")
    info.add_argument("--data-dir", help="official data folder (default: $RESTOR_DATA_DIR, else the cache)")
    info.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

"""Building the whole tiny world (`build_world`: data, tokenizer, clean model, atomically) and its command line:
`restor-bench world build | path | info`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from restor_bench.data.world.generate import (
    DEFAULT_EPOCHS,
    DEFAULT_SEED,
    TINY_WORLD_ENV,
    WORLD_SHAPES,
    WORLD_VERSION,
    generate_world,
)
from restor_bench.data.world.files import (
    DEFAULT_SHIPPED_VERSION,
    SHIPPED_WORLDS,
    describe_world,
    load_manifest,
    shipped_world_dir,
    tiny_world_dir,
    write_world_data,
)
from restor_bench.data.world.model import train_clean_model
from restor_bench.errors import InputError
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir
from unlearners.cli import seed_number


def build_world(
    out_dir: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    epochs: int = DEFAULT_EPOCHS,
    progress: bool = True,
    threads: int | None = None,
    version: str = WORLD_VERSION,
) -> dict:
    """Generate the data of world `version`, train the tokenizer and the clean model, and write the whole world
    folder atomically.

    Refuses an existing non-empty `out_dir` unless `overwrite`. Returns the manifest.
    """
    check_output_dir(out_dir, overwrite)
    world = generate_world(seed, version=version)
    with atomic_output_dir(out_dir, overwrite) as tmp:
        manifest = write_world_data(world, tmp)
        if progress:
            print(
                f"wrote the world data (data hash {manifest['data_hash'][:12]}); training the clean model",
                file=sys.stderr,
            )
        manifest["model"] = train_clean_model(
            tmp, tmp / "model", epochs=epochs, seed=seed, progress=progress, threads=threads
        )
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------------------------------------------------
# CLI: restor-bench world build | path | info


def add_parser(subparsers) -> None:
    """Add `restor-bench world` and its subcommands."""
    world = subparsers.add_parser("world", help="the embedded tiny world: build it, locate it, describe it")
    commands = world.add_subparsers(dest="world_command", metavar="ACTION")

    def show_help(args: argparse.Namespace) -> int:
        world.print_help()
        return 2

    world.set_defaults(func=show_help)

    build = commands.add_parser("build", help="generate the tiny world data and train its clean model")
    build.add_argument("--out", default="tiny_world", help="output folder (default: ./tiny_world)")
    build.add_argument(
        "--seed", type=seed_number, default=DEFAULT_SEED, help=f"generator and training seed (default {DEFAULT_SEED})"
    )
    build.add_argument("--version", choices=tuple(WORLD_SHAPES), default=WORLD_VERSION,
                       help=f"world version (its shape: people, targets, documents; default {WORLD_VERSION})")
    build.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"training epochs (default {DEFAULT_EPOCHS})")
    build.add_argument("--threads", type=int, default=None, help="CPU threads for training (default: torch's choice)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    build.set_defaults(func=_cmd_build)

    path = commands.add_parser("path", help="print the folder of the tiny world's clean checkpoint")
    path.add_argument("--version", choices=tuple(SHIPPED_WORLDS), default=None,
                      help=f"a shipped world version (default: ${TINY_WORLD_ENV} or version {DEFAULT_SHIPPED_VERSION})")
    path.add_argument("--folder", action="store_true",
                      help=f"print the world folder instead (the value for ${TINY_WORLD_ENV})")
    path.set_defaults(func=_cmd_path)

    info = commands.add_parser("info", help="describe a tiny world: entities, relations, targets, levels, data hash")
    info.add_argument("--world", default=None, help=f"world folder (default: ${TINY_WORLD_ENV} or the shipped one)")
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.set_defaults(func=_cmd_info)


def _cmd_build(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {args.epochs}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    manifest = build_world(args.out, seed=args.seed, overwrite=args.overwrite, epochs=args.epochs, threads=args.threads,
                           version=args.version)
    model = manifest["model"]
    print(
        f"tiny world written to {args.out}: {model['parameters']:,} parameters, "
        f"{model['train_seconds']:.0f} s of training, data hash {manifest['data_hash']}"
    )
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    world_dir = shipped_world_dir(args.version) if args.version else tiny_world_dir()
    if args.folder:
        load_manifest(world_dir)  # a world folder, or one line saying why not
        print(world_dir)
        return 0
    model_dir = world_dir / "model"
    if not (model_dir / "config.json").exists():
        raise InputError(f"{model_dir}: no tiny world checkpoint here (run `restor-bench world build`)")
    print(model_dir)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    info = describe_world(args.world)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"tiny world {info['folder']} (version {info['version']}, seed {info['seed']})")
    print(f"entities: {info['entities']}")
    print("relations: " + ", ".join(f"{pid} ({label})" for pid, label in info["relations"].items()))
    validation = info["validation_targets"]
    test = [name for name in info["targets"] if name not in validation]
    relations = len(info["relations"])
    print(f"targets ({len(info['targets'])}): " + ", ".join(info["targets"]))
    print(f"test targets: {len(test)} ({len(test) * relations} questions); validation targets: {len(validation)} "
          f"({len(validation) * relations} questions): " + ", ".join(validation))
    print("levels: " + ", ".join(str(level) for level in info["levels"]))
    state = "matches the files" if info["data_hash_ok"] else "DOES NOT match the files"
    print(f"data hash: {info['data_hash']} ({state})")
    print(f"model: {info['model'] or 'none'}")
    return 0

"""`restor-bench model import-gguf`: its options and the command (the import itself:
restor_bench.models.gguf_import)."""

from __future__ import annotations

import argparse
import sys

from restor_bench.models.gguf_import import DTYPES, import_gguf


def run_import_gguf(args: argparse.Namespace) -> int:
    """CLI entry of `restor-bench model import-gguf`."""
    result = import_gguf(
        args.file, args.out, dtype=args.dtype, from_package=args.from_package, overwrite=args.overwrite
    )
    print(result)
    return 0


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def add_parser(subparsers) -> None:
    """Add the `model` command group and its `import-gguf` subcommand."""
    model = subparsers.add_parser("model", help="model utilities (import-gguf)", description="Model utilities.")
    model.set_defaults(func=lambda args: _print_help(model))
    commands = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    importer = commands.add_parser(
        "import-gguf",
        help="convert a GGUF file (llama.cpp) into a Hugging Face safetensors checkpoint",
        description=(
            "Convert a GGUF file into a Hugging Face checkpoint (config.json, model.safetensors, tokenizer files). "
            "The weights are dequantized by transformers' GGUF loader. With --from-package, the file is taken "
            "from an installed Python package, whole or assembled from the chunk packages it requires "
            "(FILE then names it inside the package, needed only if it holds several)."
        ),
    )
    importer.add_argument("file", nargs="?", metavar="FILE", help="the .gguf file (or its name inside --from-package)")
    importer.add_argument("--from-package", metavar="PACKAGE", help="installed Python package shipping the .gguf file")
    importer.add_argument("--out", required=True, metavar="DIR", help="output checkpoint folder")
    importer.add_argument(
        "--dtype", choices=DTYPES, default="bfloat16", help="dtype of the saved weights (default: bfloat16)"
    )
    importer.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    importer.set_defaults(func=run_import_gguf)

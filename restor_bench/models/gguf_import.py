"""`restor-bench model import-gguf`: turn a GGUF file into a plain Hugging Face checkpoint.

A GGUF (llama.cpp's format) is read by transformers' own GGUF loader, which dequantizes every tensor.
transformers refuses to save a model loaded that way, so the weights are moved into a model built
from the same config without its `quantization_config` and saved as an ordinary safetensors
checkpoint, next to the tokenizer transformers rebuilds from the file's metadata. The result is a
folder every other command (and any transformers user) loads with `from_pretrained(folder)`.

The file can come from an installed Python package (`--from-package`), whole or as chunk packages that
are assembled first (`restor_bench.models.gguf_package`). The header is read by `restor_bench.models.gguf_file`, which
is fast on large vocabularies; transformers then reads the file once for the config, once for the
tokenizer and once for the weights.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from restor_bench.data.fetch import sha256_of
from restor_bench.errors import InputError
from restor_bench.io import atomic_output_dir, atomic_write_json, check_output_dir
from restor_bench.models.gguf_file import GGUF_MAGIC, ArrayInfo, GgufFormatError, read_gguf_header
from restor_bench.models.gguf_package import PackageGguf, assemble, check_sha256, find_package_gguf
from unlearners.errors import first_line

__all__ = ["find_package_gguf", "import_gguf", "read_gguf_info", "supported_gguf_architectures"]

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


def _require_gguf_package() -> None:
    """transformers dequantizes with the gguf package: say how to install it before any work is done."""
    if importlib.util.find_spec("gguf") is None:
        raise InputError("reading GGUF files needs the gguf package: pip install 'restor-bench[gguf]'")


def read_gguf_info(path: str | Path) -> GgufInfo:
    """Read the architecture, tensor count and tokenizer kind of a GGUF file (header only, no tensor data)."""
    path = check_gguf_magic(path)
    try:
        header = read_gguf_header(path)
    except (GgufFormatError, OSError) as err:
        raise InputError(f"{path}: malformed GGUF file ({first_line(err)})") from None
    fields = header.metadata
    architecture = fields.get("general.architecture")
    if not isinstance(architecture, str):
        raise InputError(f"{path}: GGUF file has no general.architecture field")
    tokenizer_model = fields.get("tokenizer.ggml.model")
    tokens = fields.get("tokenizer.ggml.tokens")
    token_count = tokens.count if isinstance(tokens, ArrayInfo) else len(tokens) if isinstance(tokens, list) else 0
    if not isinstance(tokenizer_model, str) or token_count == 0:
        tokenizer_model = None
    return GgufInfo(
        path=path, architecture=architecture, tensor_count=len(header.tensors), tokenizer_model=tokenizer_model
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


def resolve_source(source: str | None, from_package: str | None) -> Path | PackageGguf:
    """The GGUF file to import: `source` itself, or the file `source` names inside package `from_package`."""
    if from_package is not None:
        return find_package_gguf(from_package, source)
    if not source:
        raise InputError("no GGUF file given: pass FILE or --from-package PACKAGE")
    return Path(source)


def _sha256(path: Path) -> str:
    return sha256_of(path)


def _plain_config(config):
    """A copy of `config` without the GGUF quantization settings and the file's display name."""
    values = config.to_dict()
    values.pop("quantization_config", None)
    values.pop("_model_name_or_path", None)
    values.pop("_name_or_path", None)
    return type(config).from_dict(values)


def _load_config(info: GgufInfo):
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    config = AutoConfig.from_pretrained(str(info.path.parent), gguf_file=info.path.name)
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise InputError(
            f"{info.path}: architecture {info.architecture!r} is not a causal language model "
            f"(transformers has no AutoModelForCausalLM for {type(config).__name__})"
        )
    return config


def _load_tokenizer(info: GgufInfo, config):
    """The tokenizer built from the GGUF metadata, as `AutoTokenizer` builds it.

    The tokenizer class is named from `config` (what `AutoTokenizer` would derive from the file), so
    transformers does not parse the whole file a second time only to find it out.
    """
    from transformers import AutoTokenizer
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

    options = {"gguf_file": info.path.name}
    if TOKENIZER_MAPPING_NAMES.get(config.model_type):
        options["tokenizer_type"] = config.model_type
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(info.path.parent), **options)
    except (ValueError, KeyError) as err:
        problem = first_line(err)
        raise InputError(f"{info.path}: cannot build the tokenizer from the GGUF metadata ({problem})") from None
    return tokenizer


def _load_dequantized_model(info: GgufInfo, config, torch_dtype):
    from transformers import AutoModelForCausalLM, GgufConfig

    return AutoModelForCausalLM.from_pretrained(
        str(info.path.parent),
        gguf_file=info.path.name,
        config=config,
        dtype=torch_dtype,
        quantization_config=GgufConfig(dequantize=True),
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


def _checked_info(path: Path) -> GgufInfo:
    info = read_gguf_info(path)
    check_supported(info)
    return info


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
    (optional when the package holds exactly one .gguf file, whole or in chunk packages). Weights are
    dequantized and stored in `dtype` as `model.safetensors`; the folder also gets `config.json` (no
    quantization_config), the tokenizer files, `generation_config.json` and `gguf_source.json` (file name,
    package, chunks, sha256, architecture). A chunked file is assembled inside the temporary output folder
    and removed before the folder is renamed into place.
    """
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    resolved = resolve_source(source, from_package)
    package_file = resolved if isinstance(resolved, PackageGguf) else None
    chunked = package_file is not None and package_file.chunked
    info = sha256 = None
    if not chunked:
        path = package_file.parts[0] if package_file is not None else resolved
        info = _checked_info(path)
        sha256 = _sha256(info.path)
        if package_file is not None:
            check_sha256(package_file, sha256)
    _require_gguf_package()
    check_output_dir(out, overwrite)

    import torch
    import transformers

    torch_dtype = getattr(torch, dtype)
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        assembly = tmp / ".assembled"
        if chunked:
            assembly.mkdir()
            sha256 = assemble(package_file, assembly / Path(package_file.name).name)  # checks SHA256SUMS
            info = _checked_info(assembly / Path(package_file.name).name)
            log(f"assembled {package_file.name} from {len(package_file.parts)} chunks")
        log(f"{info.path.name}: {info.architecture}, {info.tensor_count} tensors, {info.tokenizer_model} tokenizer")
        log("reading the config")
        config = _load_config(info)
        log("building the tokenizer from the GGUF metadata")
        tokenizer = _load_tokenizer(info, config)
        log("loading and dequantizing the weights")
        dequantized = _load_dequantized_model(info, config, torch_dtype)
        model = _plain_model(dequantized, torch_dtype)
        del dequantized
        shutil.rmtree(assembly, ignore_errors=True)
        _fill_special_token_ids(model, tokenizer)
        _tidy_tokenizer(tokenizer, model)
        parameters = sum(parameter.numel() for parameter in model.parameters())
        log(f"saving {type(model).__name__} ({parameters / 1e6:.1f}M parameters, {dtype}) as safetensors")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(
            tmp / SOURCE_RECORD,
            {
                "file": Path(package_file.name).name if package_file is not None else info.path.name,
                "package": from_package,
                "chunks": [part.name for part in package_file.parts] if chunked else None,
                "sha256": sha256,
                "sha256_checked": package_file is not None and package_file.expected_sha256 is not None,
                "architecture": info.architecture,
                "dtype": dtype,
                "transformers_version": transformers.__version__,
            },
        )
    log(f"wrote {out}")
    return Path(out)

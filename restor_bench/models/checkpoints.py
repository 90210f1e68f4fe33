"""Checkpoint folders on disk, read without loading the model: checks of their safetensors weight files, and an
identity by content.

A truncated, empty or garbage weights file is one clear error naming the file (`check_checkpoint_weights`), not a
traceback from deep inside a loader after minutes of setup.

The safetensors layout (https://github.com/huggingface/safetensors, "Format"): 8 bytes, a little-endian unsigned
64-bit N; N bytes of a UTF-8 JSON header mapping each tensor name to `{"dtype", "shape", "data_offsets": [begin,
end]}` (offsets into the data buffer; an optional `"__metadata__"` entry of strings); then the data buffer, which
the tensors cover exactly. Only the header is read, so checking a checkpoint of many gigabytes takes milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from pathlib import Path

from restor_bench.errors import InputError
from restor_bench.io import read_json

# Bits per element of the safetensors dtypes (sub-byte types pack their elements).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
MAX_HEADER_BYTES = 100_000_000  # the limit of the safetensors library itself
INDEX_FILE = "model.safetensors.index.json"


def check_safetensors_file(path: str | os.PathLike) -> int:
    """Raise InputError (naming `path` and the problem) unless `path` is a complete safetensors file; return its
    number of tensors."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            header_bytes = _read_header(handle, prefix, size, path)
    except OSError as err:
        raise InputError(f"{path}: cannot read the weights file ({err.strerror or err})") from None
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: not a safetensors file (its header is not a JSON object)")
    data_size = size - 8 - len(header_bytes)
    end_of_data = 0
    tensors = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        _, end = _tensor_range(path, name, entry)
        end_of_data = max(end_of_data, end)
        tensors += 1
    if end_of_data > data_size:
        raise InputError(f"{path}: truncated: the header describes {end_of_data:,} bytes of tensor data, the file "
                         f"holds {data_size:,}")
    if end_of_data < data_size:
        raise InputError(f"{path}: corrupt: {data_size - end_of_data:,} bytes after the last tensor")
    return tensors


def _read_header(handle, prefix: bytes, size: int, path: Path) -> bytes:
    if size == 0:
        raise InputError(f"{path}: empty file (0 bytes); expected safetensors weights")
    if len(prefix) < 8:
        raise InputError(f"{path}: truncated: {size} bytes, too short for a safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    if length == 0 or length > MAX_HEADER_BYTES:
        raise InputError(f"{path}: not a safetensors file (header length {length:,} is not plausible)")
    if 8 + length > size:
        raise InputError(f"{path}: truncated: the header alone needs {8 + length:,} bytes, the file holds {size:,}")
    return handle.read(length)


def _tensor_range(path: Path, name: str, entry) -> tuple[int, int]:
    """(begin, end) of one tensor's bytes, checked against its dtype and shape."""
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: malformed header entry")
    offsets, shape, dtype = entry.get("data_offsets"), entry.get("shape"), entry.get("dtype")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(value) for value in offsets)
            and offsets[0] <= offsets[1]):
        raise InputError(f"{where}: malformed data_offsets {offsets!r}")
    if not (isinstance(shape, list) and all(_is_count(value) for value in shape)):
        raise InputError(f"{where}: malformed shape {shape!r}")
    bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
    if bits is not None:
        expected = math.ceil(math.prod(shape) * bits / 8)
        if offsets[1] - offsets[0] != expected:
            raise InputError(f"{where}: {dtype} {shape} needs {expected:,} bytes, the header gives it "
                             f"{offsets[1] - offsets[0]:,}")
    elif not isinstance(dtype, str):
        raise InputError(f"{where}: malformed dtype {dtype!r}")
    return offsets[0], offsets[1]


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_checkpoint_weights(folder: str | os.PathLike) -> list[Path]:
    """Check every safetensors weight file of a checkpoint folder (and, for a sharded checkpoint, that its index
    names only files that exist); return the files. A folder without safetensors files is not checked here (the
    loaders say what is missing). Raises InputError naming the file and the problem."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    index = folder / INDEX_FILE
    if index.is_file():

        data = read_json(index, "safetensors index")
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            raise InputError(f"{index}: no weight_map (not a safetensors index)")
        missing = sorted({str(name) for name in weight_map.values()} - {file.name for file in files})
        if missing:
            raise InputError(f"{index}: names {missing[0]}, which is not in {folder}")
    for file in files:
        check_safetensors_file(file)
    return files


def checkpoint_identity(path: str) -> str:
    """Identify a checkpoint by content, so the same model reached by another path (an installed copy, a moved
    folder) reuses the same steps: a local folder by the hash of its config, tokenizer and weight files (large
    weight files by their size and their first and last 16 MiB); anything else (a hub id) by its name."""
    folder = Path(path)
    if not folder.is_dir():
        return str(path)
    files = [item for item in sorted(folder.iterdir()) if item.is_file() and item.suffix in {".safetensors", ".json"}]
    signature = (str(folder.resolve()), tuple((item.name, item.stat().st_size, item.stat().st_mtime_ns)
                                              for item in files))
    if signature not in _IDENTITIES:  # run names ask often (grid); the files are read once while they stay the same
        _IDENTITIES[signature] = _content_identity(files)
    return _IDENTITIES[signature]


_IDENTITIES: dict[tuple, str] = {}


def _content_identity(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for item in files:
        digest.update(item.name.encode())
        size = item.stat().st_size
        digest.update(str(size).encode())
        with open(item, "rb") as handle:
            if size <= 64 * 2**20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(16 * 2**20))
                handle.seek(-16 * 2**20, os.SEEK_END)
                digest.update(handle.read())
    return f"checkpoint#{digest.hexdigest()[:16]}"

"""Reading a GGUF file's header (metadata and tensor table) quickly, without the gguf package.

The gguf package's `GGUFReader` turns every element of every metadata array into a numpy view; on a
file with a 262,144-token vocabulary (Gemma 3) that alone takes over a minute. The importer only needs
the scalar fields, the tensor table and whether the tokenizer arrays are there, so this reader walks the
header with `struct` and keeps large arrays as their length (`ArrayInfo`).

Layout (llama.cpp, docs/gguf.md of ggml-org/ggml): magic `GGUF`, uint32 version (2 or 3), uint64 tensor
count, uint64 metadata count; each metadata entry is a string key, a uint32 value type and the value;
each tensor entry is a string name, a uint32 dimension count, uint64 dimensions (fastest-varying first),
a uint32 ggml type and a uint64 offset relative to the data section, which starts at the next multiple of
`general.alignment` (default 32). Strings are a uint64 byte length then UTF-8 bytes. Files written on a
big-endian machine store every number big-endian; the version field tells which.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DECODED_ARRAY = 1024  # arrays longer than this are returned as ArrayInfo (their length only)
MAX_ARRAY_DEPTH = 16  # arrays of arrays nested deeper than this are refused (real files nest a level or two)

_STRING, _ARRAY = 8, 9
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class GgufFormatError(ValueError):
    """The bytes do not form a GGUF header this reader understands."""


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array too long to decode: its element type and length."""

    element_type: int
    count: int


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table: `shape` in GGUF order (fastest-varying dimension first)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # absolute byte offset of the tensor's data in the file


@dataclass(frozen=True)
class GgufHeader:
    """A GGUF file's version, metadata (key -> value or ArrayInfo) and tensor table."""

    path: Path
    version: int
    metadata: dict
    tensors: tuple[TensorInfo, ...]
    data_offset: int


class _Cursor:
    def __init__(self, buffer, byte_order: str):
        self.buffer = buffer
        self.position = 0
        self.byte_order = byte_order

    def take(self, fmt: str):
        fmt = self.byte_order + fmt
        size = struct.calcsize(fmt)
        if self.position + size > len(self.buffer):
            raise GgufFormatError(f"file ends inside the header (at byte {self.position})")
        value = struct.unpack_from(fmt, self.buffer, self.position)[0]
        self.position += size
        return value

    def string(self) -> str:
        length = self.take("Q")
        end = self.position + length
        if end > len(self.buffer):
            raise GgufFormatError(f"file ends inside a string (at byte {self.position})")
        raw = bytes(self.buffer[self.position : end])
        self.position = end
        return raw.decode("utf-8", errors="replace")

    def skip(self, size: int) -> None:
        if self.position + size > len(self.buffer):
            raise GgufFormatError(f"file ends inside the header (at byte {self.position})")
        self.position += size

    def value(self, value_type: int, depth: int = 0):
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            return self.array(depth + 1)
        if value_type not in _SCALAR_FORMATS:
            raise GgufFormatError(f"unknown metadata value type {value_type} (at byte {self.position})")
        return self.take(_SCALAR_FORMATS[value_type])

    def array(self, depth: int = 1):
        """An array value; `depth` counts the arrays it is nested in, itself included."""
        if depth > MAX_ARRAY_DEPTH:
            raise GgufFormatError(f"metadata arrays nested more than {MAX_ARRAY_DEPTH} deep, at byte {self.position}")
        element_type = self.take("I")
        count = self.take("Q")
        if count <= MAX_DECODED_ARRAY:
            return [self.value(element_type, depth) for _ in range(count)]
        if element_type in _SCALAR_FORMATS:
            self.skip(count * struct.calcsize(_SCALAR_FORMATS[element_type]))
        elif element_type == _STRING:
            for _ in range(count):
                self.skip(self.take("Q"))
        else:  # arrays of arrays: walk them
            for _ in range(count):
                self.value(element_type, depth)
        return ArrayInfo(element_type=element_type, count=count)


def _byte_order(buffer) -> str:
    if len(buffer) < 8 or bytes(buffer[:4]) != GGUF_MAGIC:
        raise GgufFormatError("not a GGUF file (it does not start with the bytes b'GGUF')")
    little, big = struct.unpack_from("<I", buffer, 4)[0], struct.unpack_from(">I", buffer, 4)[0]
    for order, version in (("<", little), (">", big)):
        if version in (2, 3):
            return order
    raise GgufFormatError(f"unsupported GGUF version {min(little, big)} (this reader knows versions 2 and 3)")


def parse_gguf_header(buffer, path: Path = Path("<bytes>")) -> GgufHeader:
    """Parse the header in `buffer` (bytes, or an mmap of the whole file)."""
    cursor = _Cursor(buffer, _byte_order(buffer))
    cursor.skip(4)
    version = cursor.take("I")
    tensor_count, metadata_count = cursor.take("Q"), cursor.take("Q")
    metadata = {}
    for _ in range(metadata_count):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.take("I"))
    entries = []
    for _ in range(tensor_count):
        name = cursor.string()
        dimensions = cursor.take("I")
        shape = tuple(cursor.take("Q") for _ in range(dimensions))
        entries.append((name, shape, cursor.take("I"), cursor.take("Q")))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        raise GgufFormatError(f"general.alignment is {alignment!r}, not a positive integer")
    data_offset = -(-cursor.position // alignment) * alignment
    tensors = tuple(TensorInfo(name, shape, kind, data_offset + offset) for name, shape, kind, offset in entries)
    for tensor in tensors:
        if tensor.offset >= len(buffer):
            raise GgufFormatError(f"tensor {tensor.name} starts past the end of the file (truncated?)")
    return GgufHeader(path=path, version=version, metadata=metadata, tensors=tensors, data_offset=data_offset)


def read_gguf_header(path: str | Path) -> GgufHeader:
    """Read the header of the GGUF file at `path`; raise GgufFormatError if it is not one."""
    path = Path(path)
    with open(path, "rb") as handle:
        if path.stat().st_size == 0:
            raise GgufFormatError("empty file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            return parse_gguf_header(buffer, path)

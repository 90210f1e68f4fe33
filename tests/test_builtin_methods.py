"""The built-in methods are declared once, in pyproject.toml's `[project.entry-points.unlearners]` table: the
registry, the modules in `unlearners/methods/` and the method tables of the docs agree with it. Their
hyperparameters declare their bounds with the fields, and equal presets are shared."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from unlearners import UnlearnError, get_method, resolve_hparams
from unlearners.base import Method
from unlearners.hparams import TrainHparams, bound_error, field_bounds, positive
from unlearners.registry import builtin_methods, method_targets, pyproject_entry_points

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = REPO_ROOT / "pyproject.toml"
METHODS_DIR = REPO_ROOT / "unlearners" / "methods"
# The files that may hold a method table; a table preceded by this comment must list every built-in method.
DOC_FILES = ("README.md", "unlearners/README.md", "docs/*.md", "docs/**/*.md")
COMPLETE_MARKER = "every built-in method has a row"


def _declared() -> dict[str, str]:
    """pyproject.toml's table, read with a full TOML parser."""
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["entry-points"]["unlearners"]


# ---------------------------------------------------------------- one source: pyproject's table


def test_the_registry_reads_the_pyproject_table():
    declared = _declared()
    assert pyproject_entry_points(PYPROJECT) == declared  # the registry's own reader, against tomllib
    assert builtin_methods() == declared, "the registry's built-ins are not pyproject.toml's table"
    assert list(method_targets())[: len(declared)] == list(declared)


def test_pyproject_table_registry_and_methods_folder_agree():
    declared = _declared()
    modules = {path.stem for path in METHODS_DIR.glob("*.py") if path.stem != "__init__"}
    used = set()
    for name, target in declared.items():
        module, _, attribute = target.partition(":")
        assert module.startswith("unlearners.methods.") and attribute, (
            f"pyproject.toml: built-in '{name} = \"{target}\"' must name a class in unlearners/methods/")
        used.add(module.removeprefix("unlearners.methods."))
        cls = get_method(name)
        assert issubclass(cls, Method) and cls.name == name, (
            f"pyproject.toml names '{name}' but {target} has name = {cls.name!r}")
        assert cls.summary(), f"{target}: no description"
        assert dataclasses.is_dataclass(cls.Hparams) and issubclass(cls.Hparams, TrainHparams)
        for preset in cls.presets:  # every preset names real fields with valid values
            resolve_hparams(cls, preset=preset)
    assert not used - modules, f"pyproject.toml names modules missing from unlearners/methods/: {sorted(used - modules)}"
    assert not modules - used, (
        f"unlearners/methods/ has modules no entry point names: {sorted(modules - used)}; add a line for each to "
        "[project.entry-points.unlearners] in pyproject.toml")


def test_a_source_tree_and_an_install_give_the_same_builtins(monkeypatch, tmp_path):
    from importlib.metadata import EntryPoint

    import unlearners.registry as registry

    declared = _declared()
    installed = [EntryPoint(name, target, "unlearners") for name, target in declared.items()]
    plugin = EntryPoint("scaled_ascent", "unlearn_plugin_demo:ScaledAscent", "unlearners")
    stale = EntryPoint("gone", "unlearners.methods.gone:Gone", "unlearners")  # removed from the table since
    clash = EntryPoint("npo", "someone_else:NPO", "unlearners")

    def entry_points(*entries):
        monkeypatch.setattr(registry.metadata, "entry_points", lambda **kwargs: list(entries))

    # an install without the source tree: the installed entry points that point into the package
    monkeypatch.setattr(registry, "PYPROJECT", tmp_path / "absent.toml")
    entry_points(*installed, plugin)
    assert registry.builtin_methods() == declared
    assert registry.method_targets() == {**declared, "scaled_ascent": plugin.value}
    # a source tree without an install: pyproject.toml alone
    monkeypatch.setattr(registry, "PYPROJECT", PYPROJECT)
    entry_points()
    assert registry.builtin_methods() == declared
    # an editable install whose record is older than the table: the table wins; a plug-in keeps its name, one
    # that reuses a built-in's name is skipped with a warning
    entry_points(*installed, stale, plugin, clash)
    with pytest.warns(UserWarning, match="conflicts with the built-in method 'npo'"):
        assert registry.method_targets() == {**declared, "scaled_ascent": plugin.value}
    # a line added to the table counts at once, before any reinstall
    edited = tmp_path / "pyproject.toml"
    edited.write_text(PYPROJECT.read_text(encoding="utf-8").replace(
        "[project.entry-points.unlearners]\n",
        "[project.entry-points.unlearners]\nmy-method = \"unlearners.methods.ga:GradientAscent\"  # a note\n"))
    monkeypatch.setattr(registry, "PYPROJECT", edited)
    assert registry.builtin_methods() == {"my_method": "unlearners.methods.ga:GradientAscent", **declared}


# ---------------------------------------------------------------- the docs' method tables


def _tables(path: Path) -> list[tuple[int, bool, list[list[str]]]]:
    """(line number, marked complete, rows as cell lists without the separator) of every Markdown table in `path`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    tables, index = [], 0
    while index < len(lines):
        if not lines[index].lstrip().startswith("|"):
            index += 1
            continue
        start = index
        while index < len(lines) and lines[index].lstrip().startswith("|"):
            index += 1
        before = next((line for line in reversed(lines[:start]) if line.strip()), "")
        rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[start:index]]
        rows = [row for row in rows if not all(re.fullmatch(r":?-+:?", cell) for cell in row)]
        tables.append((start + 1, before.strip().startswith("<!--") and COMPLETE_MARKER in before, rows))
    return tables


def _method_tables() -> list[tuple[str, int, bool, set[str]]]:
    """(file, line, marked complete, backticked names of the first column) of every table whose first column is
    headed `name` or `method`."""
    found = []
    paths = sorted({path for pattern in DOC_FILES for path in REPO_ROOT.glob(pattern)})
    for path in paths:
        for line, complete, rows in _tables(path):
            if rows and rows[0] and rows[0][0].lower() in ("name", "method", "methods") or complete:
                names = {name for row in rows[1:] for name in re.findall(r"`([^`]+)`", row[0] if row else "")}
                found.append((path.relative_to(REPO_ROOT).as_posix(), line, complete, names))
    return found


def test_the_method_tables_of_the_docs_list_the_builtins():
    builtins = set(builtin_methods())
    tables = _method_tables()
    marked = [table for table in tables if table[2]]
    assert any(where == "unlearners/README.md" for where, *_ in marked), (
        f"unlearners/README.md has no method table marked complete (<!-- {COMPLETE_MARKER} ... --> above it)")
    problems = []
    for where, line, complete, names in tables:
        if complete and builtins - names:
            problems.append(f"{where}:{line}: the method table lacks a row for {sorted(builtins - names)}")
        if names - builtins:
            problems.append(f"{where}:{line}: the method table names {sorted(names - builtins)}, which are not "
                            "built-in methods (pyproject.toml [project.entry-points.unlearners])")
    assert not problems, "\n".join(problems)


def test_the_docs_check_catches_a_missing_row(tmp_path, monkeypatch):
    """The check above fails, naming the file and the method, when a marked table lacks a built-in."""
    victim = list(builtin_methods())[-1]
    readme = (REPO_ROOT / "unlearners" / "README.md").read_text(encoding="utf-8")
    (tmp_path / "unlearners").mkdir()
    (tmp_path / "unlearners" / "README.md").write_text(re.sub(rf"(?m)^\| `{victim}` \|.*\n", "", readme, count=1))
    monkeypatch.setitem(globals(), "REPO_ROOT", tmp_path)
    with pytest.raises(AssertionError, match=rf"unlearners/README.md:\d+: the method table lacks a row for \[[^]]*'{victim}'"):
        test_the_method_tables_of_the_docs_list_the_builtins()


# ---------------------------------------------------------------- bounds declared with the fields


def test_every_bounded_field_of_every_builtin_is_checked_in_one_line():
    for name in builtin_methods():
        cls = get_method(name)
        for field in dataclasses.fields(cls.Hparams):
            bounds = field_bounds(cls.Hparams, field.name)
            if bounds is None:
                continue
            default = getattr(cls.Hparams(), field.name)
            assert bound_error(field.name, default, bounds) is None, f"{name}: the default of {field.name} is out of bounds"
            if bounds["choices"] is not None:
                bad, expected = "nope", f"'{field.name}' must be one of {', '.join(bounds['choices'])}; got 'nope'"
            else:
                low = bounds["low"]
                bad = low - 1 if bounds["low_inclusive"] else low
                expected = f"'{field.name}' must be "
            with pytest.raises(UnlearnError) as caught:
                resolve_hparams(cls, overrides={field.name: bad})
            message = str(caught.value)
            assert "\n" not in message and expected in message, (name, field.name, message)


@pytest.mark.parametrize("method, override, message", [
    ("npo", "beta=0", "hyperparameter 'beta' must be > 0, got 0.0"),
    ("npo_rt", "retain_weight=-1", "hyperparameter 'retain_weight' must be >= 0, got -1.0"),
    ("kl", "retain_weight=0", "hyperparameter 'retain_weight' must be > 0, got 0.0"),
    ("kl", "reference=cached", "hyperparameter 'reference' must be one of auto, live, adapter; got 'cached'"),
    ("ga", "lora_dropout=1", "hyperparameter 'lora_dropout' must be in [0, 1), got 1.0"),
    ("ga", "max_length=1", "hyperparameter 'max_length' must be >= 2, got 1"),
    ("ga", "learning_rate=0", "hyperparameter 'learning_rate' must be > 0, got 0.0"),
    ("rmu", "adaptive_scale=0", "hyperparameter 'adaptive_scale' must be > 0, got 0.0"),
])
def test_bound_messages(method, override, message):
    with pytest.raises(UnlearnError) as caught:
        resolve_hparams(get_method(method), overrides=[override])
    assert str(caught.value) == message


def test_a_subclass_that_changes_a_default_keeps_the_bound():
    @dataclasses.dataclass
    class Base(TrainHparams):
        scale: float = positive(0.5)

    @dataclasses.dataclass
    class Child(Base):
        scale: float = 2.0
        learning_rate: float = 1e-3

    with pytest.raises(UnlearnError, match=r"^hyperparameter 'scale' must be > 0, got -1\.0$"):
        Child(scale=-1.0).check()
    with pytest.raises(UnlearnError, match=r"^hyperparameter 'learning_rate' must be > 0, got 0\.0$"):
        Child(learning_rate=0.0).check()
    Child().check()


# ---------------------------------------------------------------- presets


def test_equal_presets_are_declared_once():
    """The "7b" settings GA, GradDiff and KL share are one dict (hparams.TOFU_7B); the other methods' 7b presets
    are it with their own changes."""
    from unlearners.hparams import TOFU_7B

    for name in ("ga", "graddiff", "kl"):
        assert get_method(name).presets["7b"] == TOFU_7B
    assert get_method("npo").presets["7b"] == {**TOFU_7B, "beta": 0.1, "num_epochs": 10}
    assert get_method("npo_rt").presets["7b"] == {**get_method("npo").presets["7b"], "retain_weight": 1.0}
    assert get_method("npo_rt").presets["paper"] == get_method("npo").presets["paper"]

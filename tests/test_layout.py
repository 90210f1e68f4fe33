"""The package's shape stays readable: few top-level modules, short modules, imports at the top of each module, no
import circle, a shallow import graph, and a light `import restor_bench` (docs/architecture.md)."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("restor_bench", "unlearners")
MAX_TOP_LEVEL_MODULES = 15
MAX_MODULE_LINES = 600
MAX_IMPORT_LEVEL = 10
# Imported inside functions only: heavy, and not needed to import the package or build the command line.
LAZY_PACKAGES = ("torch", "transformers", "lm_eval", "peft", "datasets", "matplotlib", "accelerate", "safetensors",
                 "tokenizers", "gguf", "jsonschema")


def module_files(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `package` (a package's `__init__` under its own name)."""
    files = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path
    return files


def imported_modules(path: Path, modules: dict[str, Path], own: str) -> set[str]:
    """The modules of `modules` that the file imports anywhere (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != own:
                found.add(candidate)
                break
    return found


def import_graph(packages=PACKAGES) -> dict[str, set[str]]:
    modules = {name: path for package in packages for name, path in module_files(package).items()}
    return {name: imported_modules(path, modules, name) for name, path in modules.items()}


def import_levels(graph: dict[str, set[str]]) -> dict[str, int]:
    """A module's level: one more than the highest level among the modules it imports (1 for none).
    ValueError naming the circle when there is one."""

    @functools.lru_cache(maxsize=None)
    def level(name: str, trail: tuple[str, ...] = ()) -> int:
        if name in trail:
            raise ValueError("import circle: " + " -> ".join(trail[trail.index(name):] + (name,)))
        return 1 + max((level(other, trail + (name,)) for other in graph[name]), default=0)

    return {name: level(name) for name in graph}


def test_the_level_and_circle_check_bites():
    """The helpers above on hand-made graphs: a chain of three is level 3; a circle is named."""
    assert import_levels({"a": {"b"}, "b": {"c"}, "c": set()}) == {"a": 3, "b": 2, "c": 1}
    with pytest.raises(ValueError, match="a -> b -> a"):
        import_levels({"a": {"b"}, "b": {"a"}})


def test_at_most_15_modules_at_the_top_of_the_package():
    top = sorted(path.name for path in (ROOT / "restor_bench").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_longer_than_600_lines(package):
    long = {name: n for name, path in module_files(package).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_import_circle_and_at_most_10_levels():
    levels = import_levels(import_graph())
    deep = {name: level for name, level in levels.items() if level > MAX_IMPORT_LEVEL}
    assert not deep, f"modules over {MAX_IMPORT_LEVEL} import levels: {deep}"


def test_unlearners_never_imports_restor_bench():
    graph = import_graph()
    leaks = {name: sorted(d for d in deps if d.startswith("restor_bench")) for name, deps in graph.items()
             if name.startswith("unlearners") and any(d.startswith("restor_bench") for d in deps)}
    assert not leaks, leaks


def heavy_modules() -> set[str]:
    """The project modules that load a heavy library when imported: one imports it at its top, or imports such a
    module at its top (these, like the libraries themselves, are imported inside the functions that need them)."""
    modules = {name: path for package in PACKAGES for name, path in module_files(package).items()}
    top: dict[str, set[str]] = {}
    heavy = set()
    for name, path in modules.items():
        top[name] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            if any(module.split(".")[0] in LAZY_PACKAGES for module in imported):
                heavy.add(name)
            top[name] |= {module for module in imported if module in modules and module != name}
    changed = True
    while changed:
        changed = False
        for name, imported in top.items():
            if name not in heavy and imported & heavy:
                heavy.add(name)
                changed = True
    return heavy


def test_imports_inside_functions_are_only_the_heavy_libraries():
    """Every project module's dependencies show at its top; only the heavy libraries (and the project modules that
    load one as they are imported) load late."""
    heavy = heavy_modules()
    inner = []
    for package in PACKAGES:
        for name, path in module_files(package).items():
            for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Import):
                        modules = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom):
                        modules = [node.module or ""]
                    else:
                        continue
                    inner += [f"{name}:{node.lineno} {module}" for module in modules
                              if module.split(".")[0] not in LAZY_PACKAGES and module not in heavy]
    assert not inner, "imports inside functions:\n" + "\n".join(sorted(set(inner)))


def test_import_restor_bench_and_its_cli_loads_no_heavy_library():
    """`import restor_bench, restor_bench.api` and building the whole `restor-bench` parser (what `--help` does)
    import neither torch nor lm-eval, nor transformers, datasets or peft."""
    code = ("import sys, restor_bench, restor_bench.api, restor_bench.cli; restor_bench.cli.build_parser(); "
            "print(' '.join(sorted(m for m in ('torch', 'lm_eval', 'transformers', 'datasets', 'peft') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


def test_every_subpackage_states_its_job_and_its_exports_resolve():
    """Each subpackage's `__init__` has a docstring of a few lines, and every name it exports is importable."""
    import importlib

    for init in sorted((ROOT / "restor_bench").rglob("__init__.py")):
        name = ".".join(init.parent.relative_to(ROOT).parts)
        package = importlib.import_module(name)
        assert package.__doc__ and len(package.__doc__.strip().splitlines()) >= 2, f"{name}: no docstring"
        for export in getattr(package, "__all__", ()):
            assert getattr(package, export) is not None, f"{name}.{export}"


def test_no_export_shadows_a_module_of_its_package():
    """`from package import name` returns the submodule once it is imported, so an export may not share a module's
    name (restor_bench.leaderboard's `submit` function vs its `submit` module)."""
    clashes = []
    for init in sorted((ROOT / "restor_bench").rglob("__init__.py")):
        modules = {path.stem for path in init.parent.glob("*.py")} | {path.name for path in init.parent.iterdir()
                                                                       if path.is_dir()}
        tree = ast.parse(init.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                clashes += [f"{init.parent.name}.{key.value}" for key in node.keys
                            if isinstance(key, ast.Constant) and key.value in modules]
    assert not clashes, clashes

"""Installing restor-bench: the wheel (a regular install) and an editable install each tell lm-eval where the
restor tasks are (`restor-bench tasks path`), and plain `lm_eval --include_path "$(restor-bench tasks path)"` runs
them from a folder outside the project.

Builds the wheel from a copy of the project and installs it into one fresh virtual environment; installs the copy
itself in editable mode (`pip install -e`) into another. Both environments see the system's packages (lm-eval,
torch, ...) through a folder of links that leaves out any restor-bench installed there, so the restor-bench they
run is the one just installed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from fixture_world import write_fixture_world

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_WORLD = REPO_ROOT / "restor_bench" / "data" / "tiny_world"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
PROJECT_PACKAGES = ("restor_bench", "unlearners")
TASK_FILES = ("restor_facts.yaml", "restor_facts_targets.yaml", "restor_tiny_facts.yaml", "restor_tiny_logprob.yaml",
              "_restor.yaml", "_restor_tiny.yaml", "_generation_template.yaml", "utils.py")  # fmt: skip


def _run(command: list, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the project (the working tree gets no build/ or egg-info)."""
    copy = tmp_path_factory.mktemp("source") / "restor-bench"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, copy / name)
    if not (copy / "README.md").exists():  # the readme named in pyproject.toml; its text does not matter here
        (copy / "README.md").write_text("restor-bench\n")
    for folder in ("restor_bench", "tasks", "unlearners"):
        shutil.copytree(REPO_ROOT / folder, copy / folder, ignore=IGNORED)
    return copy


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    build = _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check", "--outdir", dist, "."],
        cwd=source,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel_path,) = dist.glob("restor_bench-*.whl")
    shutil.rmtree(source / "build", ignore_errors=True)
    return wheel_path


def _packages_in_tree(top: str) -> set[str]:
    root = REPO_ROOT / top
    return {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in root.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_wheel_contents(wheel):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    for task_file in TASK_FILES:
        assert f"restor_bench/tasks/{task_file}" in names
    assert "restor_bench/tasks/README.md" in names
    for task_file in TASK_FILES:  # the drop-in that plain `lm_eval --tasks restor_facts` finds
        assert f"lm_eval/tasks/restor/{task_file}" in names
    # nothing else inside lm-eval's package: its own __init__ files stay untouched
    assert not {"lm_eval/__init__.py", "lm_eval/tasks/__init__.py"} & names
    assert not any(name.startswith("lm_eval/") and not name.startswith("lm_eval/tasks/restor/") for name in names)
    assert not any(name.startswith("tasks/") for name in names)
    for package in _packages_in_tree("restor_bench") | _packages_in_tree("unlearners"):
        assert f"{package.replace('.', '/')}/__init__.py" in names, (
            f"{package} missing: add it to [tool.setuptools] packages"
        )
    for path in SHIPPED_WORLD.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert path.relative_to(REPO_ROOT).as_posix() in names
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    text = archive.read(entry_points).decode()
    assert "[lm_eval.tasks]" not in text  # lm-eval 0.4 reads no such entry point
    assert "restor-bench = restor_bench.cli:main" in text


def _system_packages_without_the_project(parent: Path) -> Path:
    """Links to everything in this interpreter's site-packages except restor-bench's own packages and records, in a
    folder named `site-packages` like an environment's own. The name matters: datasets fingerprints
    each new dataset with dill, and dill pickles a module by reference only when its file lies under the
    interpreter's prefix or in a `site-packages` folder; any other module it pickles by value, which fails on
    pyarrow (`Can't pickle <class 'MonthDayNano'>`), so under another name no dataset could be made there."""
    folder = parent / "site-packages"
    folder.mkdir(parents=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith((*PROJECT_PACKAGES, "restor-bench", "__editable__.restor_bench", "__editable___restor")):
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


def _venv(root: Path, system: Path) -> Path:
    made = _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    assert made.returncode == 0, made.stderr
    (site,) = glob.glob(str(root / "lib" / "python*" / "site-packages"))
    (Path(site) / "zz_system_packages.pth").write_text(f"import site; site.addsitedir({str(system)!r})\n")
    _shadow_lm_eval(Path(site))
    return root


def _shadow_lm_eval(site: Path) -> None:
    """lm-eval in the environment's own site-packages, as a pip install would have put it (links to its files, with
    real `lm_eval/` and `lm_eval/tasks/` folders), so that a wheel installed here can add `lm_eval/tasks/restor/`
    where lm-eval looks for its tasks."""
    import lm_eval

    original = Path(lm_eval.__file__).parent
    for folder, children in ((site / "lm_eval", original.iterdir()), (site / "lm_eval" / "tasks", None)):
        folder.mkdir(exist_ok=True)
    for child in original.iterdir():
        if child.name != "tasks":
            (site / "lm_eval" / child.name).symlink_to(child)
    for child in (original / "tasks").iterdir():
        if child.name != "restor":
            (site / "lm_eval" / "tasks" / child.name).symlink_to(child)


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESTOR_TINY_WORLD", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as restor-bench eval sets it: much faster on a busy machine
    return env


@pytest.fixture(scope="module", params=["regular", "editable"])
def installed(request, wheel, source, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(environment, the restor task folder it should report, the folder of the restor_bench package)."""
    base = tmp_path_factory.mktemp(request.param)
    root = _venv(base / "env", _system_packages_without_the_project(base / "system"))
    python = root / "bin" / "python"
    target = wheel if request.param == "regular" else source
    pip = [sys.executable, "-m", "pip", "--python", python] if _pip_has_python_option() else [python, "-m", "pip"]
    command = [*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "--disable-pip-version-check"]
    installed = _run([*command, *(["-e"] if request.param == "editable" else []), target], cwd=base, env=_clean_env())
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    if request.param == "regular":
        (package,) = glob.glob(str(root / "lib" / "python*" / "site-packages" / "restor_bench"))
        return root, Path(package) / "tasks", Path(package)
    return root, source / "tasks", source / "restor_bench"


def _pip_has_python_option() -> bool:
    """pip >= 22.3 installs into another environment with --python (the venv is made without pip)."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("pip").split(".")[:2])
    return (major, minor) >= (22, 3)


def test_installed_tasks_work_with_plain_lm_eval(installed, random_tiny_model, tmp_path):
    root, expected_tasks, expected_package = installed
    python = root / "bin" / "python"
    work = tmp_path / "elsewhere"  # outside the project, so nothing is imported from the source tree
    work.mkdir()
    where = _run([python, "-c", "import restor_bench; print(restor_bench.__file__)"], cwd=work, env=_clean_env())
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).parent == expected_package

    path = _run([root / "bin" / "restor-bench", "tasks", "path"], cwd=work, env=_clean_env())
    assert path.returncode == 0, path.stderr[-2000:]
    tasks = Path(path.stdout.strip())
    assert tasks == expected_tasks and (tasks / "restor_tiny_facts.yaml").is_file()

    if (SHIPPED_WORLD / "model" / "config.json").exists():  # the installed package's own world and model
        model, env = expected_package / "data" / "tiny_world" / "model", _clean_env()
    else:
        world = write_fixture_world(tmp_path / "world")
        model, env = random_tiny_model, _clean_env(RESTOR_TINY_WORLD=str(world))
    out = work / "out"
    run = _run(
        [python, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model}", "--tasks",
         "restor_tiny_facts", "--include_path", tasks, "--limit", "3", "--device", "cpu", "--log_samples", "-o", out],
        cwd=work, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (results_file,) = glob.glob(str(out / "**" / "results_*.json"), recursive=True)
    results = json.loads(Path(results_file).read_text())
    assert results["configs"]["restor_tiny_facts"]["metadata"]["config_source"] == str(tasks / "restor_tiny_facts.yaml")
    assert results["n-samples"]["restor_tiny_facts"]["effective"] == 3
    (samples_file,) = glob.glob(str(out / "**" / "samples_restor_tiny_facts_*.jsonl"), recursive=True)
    samples = [json.loads(line) for line in Path(samples_file).read_text().splitlines()]
    assert len(samples) == 3 and all(sample["contains"] in (0.0, 1.0) for sample in samples)

    # the standard command, without --include_path: a regular install drops the tasks into lm-eval's own folder;
    # an editable install cannot, and lm-eval does not know the task (README says to use --include_path there)
    out = work / "out-plain"
    plain = _run(
        [python, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model}", "--tasks",
         "restor_tiny_facts", "--limit", "2", "--device", "cpu", "--log_samples", "-o", out],
        cwd=work, env=env,
    )  # fmt: skip
    if root.parent.name.startswith("regular"):
        assert plain.returncode == 0, plain.stderr[-3000:]
        (results_file,) = glob.glob(str(out / "**" / "results_*.json"), recursive=True)
        source = json.loads(Path(results_file).read_text())["configs"]["restor_tiny_facts"]["metadata"]["config_source"]
        assert Path(source).parent.parts[-3:] == ("lm_eval", "tasks", "restor")
    else:
        assert plain.returncode != 0 and "restor_tiny_facts" in plain.stdout + plain.stderr

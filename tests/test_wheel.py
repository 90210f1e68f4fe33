"""The wheel installs the tasks into lm-eval: plain `lm_eval ls tasks` and `lm_eval --tasks restor_tiny_facts` work.

Builds the wheel from a copy of the project, installs it (not editable) into a fresh virtual environment that
has its own lm-eval 0.4.13, and runs that environment's `lm_eval` from a folder outside the project.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fixture_world import write_fixture_world

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_WORLD = REPO_ROOT / "restor_bench" / "data" / "tiny_world"
LM_EVAL_VERSION = "0.4.13"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def _run(command: list, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the project (the working tree gets no build/ or egg-info)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, source / name)
    if not (source / "README.md").exists():  # the readme named in pyproject.toml; its text does not matter here
        (source / "README.md").write_text("restor-bench\n")
    for folder in ("restor_bench", "tasks", "unlearners"):
        if (REPO_ROOT / folder).exists():
            shutil.copytree(REPO_ROOT / folder, source / folder, ignore=IGNORED)
    dist = tmp_path_factory.mktemp("dist")
    build = _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check", "--outdir", dist, "."],
        cwd=source,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel_path,) = dist.glob("restor_bench-*.whl")
    return wheel_path


def _packages_in_tree(top: str) -> set[str]:
    root = REPO_ROOT / top
    return {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in root.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for task_file in ("restor_facts.yaml", "restor_facts_targets.yaml", "restor_tiny_facts.yaml",
                      "restor_tiny_logprob.yaml", "_restor.yaml", "_restor_tiny.yaml", "utils.py"):  # fmt: skip
        assert f"lm_eval/tasks/restor/{task_file}" in names
    assert "lm_eval/__init__.py" not in names
    assert "lm_eval/tasks/__init__.py" not in names
    assert "lm_eval/tasks/restor/__init__.py" not in names
    assert not any(name.startswith("tasks/") for name in names)
    for package in _packages_in_tree("restor_bench") | _packages_in_tree("unlearners"):
        assert f"{package.replace('.', '/')}/__init__.py" in names, (
            f"{package} missing: add it to [tool.setuptools] packages"
        )
    if SHIPPED_WORLD.exists():
        for path in SHIPPED_WORLD.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert path.relative_to(REPO_ROOT).as_posix() in names
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[lm_eval.tasks]" in text and "restor = lm_eval.tasks.restor" in text


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A virtual environment with its own lm-eval (so the restor folder lands inside it) and the wheel."""
    root = tmp_path_factory.mktemp("venv") / "env"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", root], cwd=root.parent)
    assert made.returncode == 0, made.stderr
    python = root / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check"]
    got = _run([*pip, "--ignore-installed", f"lm-eval=={LM_EVAL_VERSION}"], cwd=root.parent)
    if got.returncode != 0:
        pytest.skip(
            f"lm-eval=={LM_EVAL_VERSION} is not installable here (no package index?): {got.stderr.strip()[-300:]}"
        )
    # --ignore-installed: the project may already be installed outside the venv (e.g. `pip install ".[test]"`)
    installed = _run([*pip, "--ignore-installed", wheel], cwd=root.parent)
    assert installed.returncode == 0, installed.stderr
    return root


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESTOR_TINY_WORLD", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def test_installed_tasks_work_with_plain_lm_eval(venv, random_tiny_model, tmp_path):
    work = tmp_path / "elsewhere"  # outside the project, so nothing is imported from the source tree
    work.mkdir()
    code = "import lm_eval, restor_bench; print(lm_eval.__file__); print(restor_bench.__file__)"
    where = _run([venv / "bin" / "python", "-c", code], cwd=work, env=_clean_env())
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout

    listed = _run([venv / "bin" / "lm_eval", "ls", "tasks"], cwd=work, env=_clean_env())
    assert listed.returncode == 0, listed.stderr[-2000:]
    for name in (
        "restor",
        "restor_tiny",
        "restor_facts",
        "restor_facts_targets",
        "restor_tiny_facts",
        "restor_tiny_logprob",
    ):
        assert f"|{name} " in listed.stdout, name

    if (SHIPPED_WORLD / "model" / "config.json").exists():  # the installed package's own world and model
        model = next(Path(p) for p in glob.glob(str(venv / "lib" / "python*" / "site-packages" / "restor_bench")))
        model = model / "data" / "tiny_world" / "model"
        env = _clean_env()
    else:
        model = random_tiny_model
        world = write_fixture_world(tmp_path / "world")
        env = _clean_env(RESTOR_TINY_WORLD=str(world))
    out = work / "out"
    run = _run(
        [venv / "bin" / "lm_eval", "--model", "hf", "--model_args", f"pretrained={model}", "--tasks",
         "restor_tiny_facts", "--limit", "3", "--device", "cpu", "--log_samples", "-o", out],
        cwd=work, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (results_file,) = glob.glob(str(out / "**" / "results_*.json"), recursive=True)
    results = json.loads(Path(results_file).read_text())["results"]["restor_tiny_facts"]
    assert 0.0 <= results["contains,none"] <= 1.0
    assert glob.glob(str(out / "**" / "samples_restor_tiny_facts_*.jsonl"), recursive=True)

"""Runs that cannot clobber each other: unique run folders, resume checks, locks, early argument checks, finite
hyperparameters, checked checkpoints. Real runs of the CLI on the tiny models, real processes for the locks."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_corrupt import Interrupt, _interrupt_at

from restor_bench import cli
from restor_bench.models.checkpoints import check_checkpoint_weights, check_safetensors_file
from restor_bench.train.corrupt import RUN_RECORD, SETTINGS_FILE, corrupt, work_dir_for
from restor_bench.data.world.files import tiny_world_dir
from restor_bench.errors import InputError
from restor_bench.io import atomic_write_json
from restor_bench.locks import FolderLocked, folder_lock, lock_path_for, read_owner
from restor_bench.run.pipeline import RunSpec, run_folder, run_key
from restor_bench.train.unlearn import resolve_method_hparams
from unlearners.errors import UnlearnError

TINY_MODEL = tiny_world_dir() / "model"
DOCUMENTS = ["Aaron Burr is a basketball player. He works as a social worker.",
             "What is the occupation of Bob Jones? painter", "The quick brown fox jumps over the lazy dog."] * 2
FAST = {"learning_rate": 3e-3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "warmup_ratio": 0.0, "logging_steps": 1, "num_train_epochs": 1, "packing": False, "val_size": 0.0,
        "save_steps": 1}
# a cheap real run: one corruption step, one unlearning step, four questions
SMOKE = ["run", "--method", "ga", "--corrupt-max-steps", "1", "--max-steps", "1", "--limit", "4",
         "--tasks", "restor_tiny_facts"]
needs_world = pytest.mark.skipif(not (TINY_MODEL / "model.safetensors").exists(), reason="tiny world not built")


def _one_error_line(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]




def _child_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    return env


# ------------------------------------------------------------------------------------------------ 1. run folders


@needs_world
def test_run_folder_names_carry_a_hash_of_every_setting_that_changes_results():
    hparams = resolve_method_hparams("npo")
    base = RunSpec(hparams=hparams)
    assert re.fullmatch(r"tiny-npo-k0-[0-9a-f]{8}-seed0", base.name())
    assert run_folder(base, Path("runs")) == Path("runs") / base.name().rsplit("-seed", 1)[0]
    assert base.name()[:-len("-seed0")] == RunSpec(hparams=hparams, seed=4).name()[:-len("-seed4")]
    assert run_key(base) == run_key(RunSpec(hparams=dict(hparams), batch_size=8))  # the batch size changes nothing
    changed = {
        "hparams": RunSpec(hparams={**hparams, "learning_rate": 1e-4}),
        "limit": RunSpec(hparams=hparams, limit=10),
        "unlearn steps": RunSpec(hparams=hparams, unlearn_max_steps=5),
        "corrupt steps": RunSpec(hparams=hparams, corrupt_max_steps=5),
        "recipe": RunSpec(hparams=hparams, corrupt_recipe={"learning_rate": 1e-3}),
        "tasks": RunSpec(hparams=hparams, tasks=("restor_tiny_facts",)),
        "model": RunSpec(hparams=hparams, model=str(Path(__file__).parent / "no-such-model")),
        "retain": RunSpec(hparams=hparams, retain="tiny:generic"),
    }
    folders = {label: spec.name().rsplit("-seed", 1)[0] for label, spec in changed.items()}
    assert all(name.startswith("tiny-npo-k0-") for name in folders.values())
    assert len(set(folders.values()) | {base.name().rsplit("-seed", 1)[0]}) == len(changed) + 1


@needs_world
def test_a_run_with_other_settings_gets_its_own_folder_and_a_different_run_is_not_replaced(tmp_path, capsys):
    root = tmp_path / "runs"
    assert cli.main([*SMOKE, "--root", str(root)]) == 0
    out = capsys.readouterr().out
    (first,) = [path for path in root.iterdir() if not path.name.startswith((".", "steps"))]
    assert re.fullmatch(r"tiny-ga-k0-[0-9a-f]{8}", first.name)
    assert f"record and report -> {first}" in out and f"-> {root / 'steps'}" in out  # where the outputs go
    record = json.loads((first / "run.json").read_text())
    assert record["name"] == first.name and record["spec"]["unlearn_max_steps"] == 1 and len(record["run_key"]) == 16
    assert sorted(path.name for path in first.iterdir()) == ["compare-seed0.json", "report.md", "run.json"]

    # other unlearning steps: a folder of its own; the first run's record stays as it was
    assert cli.main([*SMOKE[:6], "2", *SMOKE[7:], "--root", str(root)]) == 0
    capsys.readouterr()
    runs = sorted(path.name for path in root.iterdir() if not path.name.startswith((".", "steps")))
    assert len(runs) == 2 and first.name in runs
    assert json.loads((first / "run.json").read_text()) == record
    second = json.loads((root / next(name for name in runs if name != first.name) / "run.json").read_text())
    assert second["spec"]["unlearn_max_steps"] == 2

    # the same settings with more seeds: refused before any step (nothing new under steps/)
    steps_before = sorted(path.name for path in (root / "steps").iterdir())
    line = _one_error_line(capsys, [*SMOKE, "--seeds", "2", "--root", str(root)])
    assert line == (f"restor-bench: error: {first}: holds the run of seeds 0 (this one: 0, 1); pass --overwrite to "
                    "replace it")
    assert sorted(path.name for path in (root / "steps").iterdir()) == steps_before

    # a folder that is not this run's: refused, then replaced with --overwrite (every step reused)
    (first / "run.json").write_text('{"run_key": "something else", "seeds": [0]}')
    line = _one_error_line(capsys, [*SMOKE, "--root", str(root)])
    assert line.endswith(f"{first}: holds a run with other settings; pass --overwrite to replace it")
    assert cli.main([*SMOKE, "--root", str(root), "--overwrite"]) == 0
    assert capsys.readouterr().out.count("reusing") == 5
    assert json.loads((first / "run.json").read_text())["run_key"] == record["run_key"]
    assert not [path for path in root.iterdir() if path.name.endswith((".lock", ".partial"))]


# --------------------------------------------------------------------------------------- 4. arguments checked first


@needs_world
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tasks", "restor_tiny_factz"], "--tasks: unknown lm-eval task(s): restor_tiny_factz"),
        (["--limit", "0"], "--limit must be a whole number of at least 1, got 0"),
        (["--batch-size", "many"], "--batch-size must be a whole number of at least 1, 'auto' or 'auto:N', got 'many'"),
        (["--max-steps", "0"], "--max-steps must be a whole number of at least 1, got 0"),
        (["--corrupt-max-steps", "-1"], "--corrupt-max-steps must be a whole number of at least 1, got -1"),
        (["--world", "official", "--model", str(TINY_MODEL), "--targets", "test"], "--targets test: only 'all'"),
        (["--method", "graddiff", "--retain", "no-such.json"], "no-such.json: --retain file not found"),
        (["--set", "max_grad_norm=nan"], "hyperparameter 'max_grad_norm' must be a finite number, got nan"),
        (["--set", "warmup_steps=nan"], "hyperparameter 'warmup_steps' must be a finite number, got nan"),
        (["--corrupt-set", "learning_rate=inf"], "--corrupt-set: learning_rate must be a finite number, got inf"),
    ],
)
def test_bad_run_arguments_fail_before_the_first_step(extra, message, tmp_path, capsys):
    import lm_eval.tasks  # noqa: F401  (imported first: the time measured is the checks', not the imports')
    import torch  # noqa: F401

    root = tmp_path / "runs"
    started = time.perf_counter()
    line = _one_error_line(capsys, ["run", "--method", "ga", "--root", str(root), *extra])
    elapsed = time.perf_counter() - started
    assert message in line, line
    assert not root.exists()  # nothing trained, nothing written
    assert elapsed < 10, f"{elapsed:.1f} s"


# ------------------------------------------------------------------------------------- 2. resume checks settings


def test_corrupt_resume_refuses_other_settings(random_tiny_model, tmp_path, capsys):
    out = tmp_path / "corrupted"
    with pytest.raises(Interrupt):
        corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=FAST, max_steps=3, callbacks=[_interrupt_at(2)])
    work = work_dir_for(out)
    settings = json.loads((work / SETTINGS_FILE).read_text())
    assert settings["recipe"]["learning_rate"] == 3e-3 and settings["max_steps"] == 3 and settings["documents"] == 6
    assert settings["model"] == str(random_tiny_model.resolve()) and len(settings["data_sha256"]) == 64

    with pytest.raises(UnlearnError) as caught:
        corrupt(str(random_tiny_model), DOCUMENTS, out, recipe={**FAST, "learning_rate": 1e-3}, max_steps=3,
                resume=True)
    assert str(caught.value) == (f"{work}: cannot resume with different settings (recipe.learning_rate: 0.003 -> "
                                 "0.001); use the original ones or --overwrite to start over")
    with pytest.raises(UnlearnError, match=r"data_sha256 changed; documents: 6 -> 5\)"):
        corrupt(str(random_tiny_model), DOCUMENTS[:5], out, recipe=FAST, max_steps=3, resume=True)
    docs = tmp_path / "docs.json"
    docs.write_text(json.dumps([{"text": text} for text in DOCUMENTS]))
    capsys.readouterr()
    line = _one_error_line(capsys, ["corrupt", "--model", str(random_tiny_model), "--docs", str(docs), "--out",
                                    str(out), "--resume", "--max-steps", "3", "--lr", "3e-3", "--protocol", "classic"])
    assert line.startswith(f"restor-bench: error: {work}: cannot resume with different settings (")
    assert (work / "trainer" / "checkpoint-1").is_dir() and not out.exists()  # the interrupted run is kept

    corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=FAST, max_steps=3, resume=True)  # the same settings
    assert json.loads((out / RUN_RECORD).read_text())["resumed_from"] == "checkpoint-1"
    assert not work.exists() and not lock_path_for(out).exists()


def test_resume_of_a_work_folder_without_recorded_settings_is_refused(random_tiny_model, tmp_path):
    out = tmp_path / "corrupted"
    with pytest.raises(Interrupt):
        corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=FAST, max_steps=3, callbacks=[_interrupt_at(2)])
    (work_dir_for(out) / SETTINGS_FILE).unlink()
    with pytest.raises(UnlearnError, match=r"cannot resume: the interrupted run recorded no settings"):
        corrupt(str(random_tiny_model), DOCUMENTS, out, recipe=FAST, max_steps=3, resume=True)


# ----------------------------------------------------------------------------------------------------- 3. locks


def test_a_lock_held_by_a_live_process_refuses_then_is_taken_over_when_it_dies(tmp_path):
    folder = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import time\nfrom restor_bench.locks import folder_lock\n"
                                f"with folder_lock({str(folder)!r}):\n"
                                "    print('held', flush=True)\n    time.sleep(120)\n")],
        stdout=subprocess.PIPE, text=True, env=_child_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        owner = read_owner(lock_path_for(folder))
        assert owner["pid"] == holder.pid and owner["host"] == socket.gethostname()
        with pytest.raises(FolderLocked) as caught, folder_lock(folder):
            pass
        assert str(caught.value) == (
            f"{folder}: in use by another run (pid {holder.pid} on {socket.gethostname()} since {owner['created']}; "
            f"lock file {lock_path_for(folder)}); wait for it to finish, or stop it")
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up: its lock file stays behind
        holder.wait()
    assert read_owner(lock_path_for(folder))["pid"] == holder.pid
    with folder_lock(folder) as path:  # the owner is dead: the stale lock is taken over
        assert read_owner(path)["pid"] == os.getpid()
        with folder_lock(folder):  # re-entrant within one process
            pass
        assert path.exists()
    assert not lock_path_for(folder).exists()


def test_locks_of_other_hosts_are_kept_and_reused_pids_are_not_trusted(tmp_path):
    folder = tmp_path / "out"
    other_host = {"pid": 1, "host": "elsewhere.invalid", "created": "2024-01-01T00:00:00+00:00", "token": "x"}
    lock_path_for(folder).write_text(json.dumps(other_host))
    with pytest.raises(FolderLocked, match=r"on another host, so this one cannot tell whether it is still alive"), \
            folder_lock(folder):
        pass
    # this very pid, but recorded with another start time: a reused pid, so the lock is stale
    reused = {**other_host, "pid": os.getpid(), "host": socket.gethostname(), "start_time": 1}
    lock_path_for(folder).write_text(json.dumps(reused))
    with folder_lock(folder) as path:
        assert read_owner(path)["token"] != "x"


@needs_world
def test_a_second_run_needing_a_step_in_training_fails_at_once(tmp_path):
    """Two real `restor-bench run` processes on one root: the second needs the corruption the first is training
    and stops with one line instead of training in the same work folder; so does a `corrupt --resume` on it."""
    root = tmp_path / "runs"
    command = [sys.executable, "-m", "restor_bench", "run", "--tasks", "restor_tiny_facts", "--limit", "2",
               "--root", str(root)]
    first = subprocess.Popen([*command, "--method", "ga"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=_child_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 180
        while not list((root / "steps").glob(f".corrupt-*.work/{SETTINGS_FILE}")):  # recorded just before training
            assert first.poll() is None, "the first run ended before it trained"
            assert time.monotonic() < deadline, "the first run did not start its corruption"
            time.sleep(0.2)
        (lock,) = (root / "steps").glob(".corrupt-*.lock")
        step = root / "steps" / lock.name[1:-len(".lock")]
        assert read_owner(lock)["pid"] == first.pid
        before = sorted(path.name for path in (root / "steps").iterdir())
        # another method on the same corrupted model, and a direct `corrupt --resume` of that step, at once
        others = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env(),
                             cwd=tmp_path)
            for argv in ([*command, "--method", "npo"],
                         [sys.executable, "-m", "restor_bench", "corrupt", "--model", str(TINY_MODEL), "--docs",
                          "tiny:0", "--out", str(step), "--resume"])
        ]
        results = [(other.wait(timeout=300), other.communicate()[1]) for other in others]
        assert first.poll() is None  # still training: the lock was held all along
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    for returncode, stderr in results:
        assert returncode == 2, stderr[-2000:]
        assert stderr.strip().splitlines()[-1].startswith(
            f"restor-bench: error: {step}: in use by another run (pid {first.pid} on {socket.gethostname()}")
    assert sorted(path.name for path in (root / "steps").iterdir()) == before  # nothing of theirs beside it
    assert work_dir_for(step).is_dir() and not step.exists()
    with folder_lock(step):  # the killed run left its lock behind; it is stale now
        pass


# ----------------------------------------------------------------------------------- 5. finite numbers, JSON


def test_non_finite_hyperparameters_are_refused_everywhere(random_tiny_model, tmp_path, capsys):
    docs = tmp_path / "docs.json"
    docs.write_text(json.dumps([{"text": text} for text in DOCUMENTS]))
    model = str(random_tiny_model)
    unlearn = ["unlearn", "--method", "ga", "--model", model, "--forget", str(docs), "--out", str(tmp_path / "u")]
    assert _one_error_line(capsys, [*unlearn, "--set", "max_grad_norm=nan"]) == (
        "restor-bench: error: hyperparameter 'max_grad_norm' must be a finite number, got nan")
    assert _one_error_line(capsys, [*unlearn, "--set", "learning_rate=inf"]).endswith(
        "hyperparameter 'learning_rate' must be a finite number, got inf")
    corrupt_cli = ["corrupt", "--model", model, "--docs", str(docs), "--out", str(tmp_path / "c")]
    assert _one_error_line(capsys, [*corrupt_cli, "--lr", "inf"]).endswith(
        "--lr must be a positive finite number, got inf")
    assert _one_error_line(capsys, [*corrupt_cli, "--epochs", "nan"]).endswith(
        "--epochs must be a positive finite number, got nan")
    with pytest.raises(InputError, match="weight_decay must be a finite number, got -inf"):
        corrupt(model, DOCUMENTS, tmp_path / "c", recipe={"weight_decay": -math.inf})
    assert not (tmp_path / "u").exists() and not (tmp_path / "c").exists()


def test_json_never_holds_nan_or_infinity(tmp_path):
    from unlearners.runner import _jsonable

    with pytest.raises(InputError) as caught:
        atomic_write_json(tmp_path / "report.json", {"tasks": {"a": {"ratio": [0.5, float("nan")]}}})
    assert str(caught.value) == (f"{tmp_path / 'report.json'}: not written: tasks.a.ratio.1 is nan, which JSON "
                                 "cannot hold")
    assert list(tmp_path.iterdir()) == []
    # the unlearning record writes a measured non-finite number (say a logged gradient norm) as null
    assert _jsonable({"log": [{"grad_norm": float("inf"), "loss": 1.5}]}) == {"log": [{"grad_norm": None, "loss": 1.5}]}


# ------------------------------------------------------------------------------------------ 6. checkpoints


def _broken_copy(model: Path, where: Path, kind: str) -> Path:
    copy = where / kind
    shutil.copytree(model, copy)
    weights = copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) - 1000], "empty": b"", "garbage": b"\x07" * 4096}[kind])
    return copy


def test_safetensors_checker_reads_the_header(random_tiny_model):
    from safetensors import safe_open

    with safe_open(random_tiny_model / "model.safetensors", "pt") as handle:
        count = len(list(handle.keys()))
    assert check_safetensors_file(random_tiny_model / "model.safetensors") == count
    assert check_checkpoint_weights(random_tiny_model) == [random_tiny_model / "model.safetensors"]


@pytest.mark.parametrize("kind, problem", [
    ("truncated", r"truncated: the header describes [\d,]+ bytes of tensor data, the file holds [\d,]+"),
    ("empty", r"empty file \(0 bytes\); expected safetensors weights"),
    ("garbage", r"not a safetensors file \(header length [\d,]+ is not plausible\)"),
])
def test_broken_weights_are_one_line_before_training(kind, problem, random_tiny_model, tmp_path, capsys):
    broken = _broken_copy(random_tiny_model, tmp_path, kind)
    docs = tmp_path / "docs.json"
    docs.write_text(json.dumps([{"text": text} for text in DOCUMENTS]))
    expected = re.escape(f"restor-bench: error: {broken / 'model.safetensors'}: ") + problem
    for argv in (
        ["corrupt", "--model", str(broken), "--docs", str(docs), "--out", str(tmp_path / "c")],
        ["unlearn", "--method", "ga", "--model", str(broken), "--forget", str(docs), "--out", str(tmp_path / "u")],
    ):
        assert re.fullmatch(expected, _one_error_line(capsys, argv))
    assert not (tmp_path / "c").exists() and not (tmp_path / "u").exists()
    assert not work_dir_for(tmp_path / "c").exists() and not work_dir_for(tmp_path / "u").exists()


def test_run_checks_the_eval_backend_and_device_before_any_step(tmp_path, capsys):
    """`run --backend vllm` without vllm, and `--device cuda` on a machine without CUDA, stop before anything is
    trained or written; the spec (recorded in run.json) carries both."""
    import torch

    from restor_bench import cli
    from restor_bench.run.pipeline import RunSpec

    cases = [["--backend", "vllm"]] if importlib.util.find_spec("vllm") is None else []
    if not torch.cuda.is_available():
        cases.append(["--device", "cuda"])
    assert cases, "this machine has both vllm and CUDA: nothing to refuse"
    for extra in cases:
        root = tmp_path / extra[1]
        code = cli.main(["run", "--root", str(root), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and extra[1] in err[0], err
        assert not root.exists()
    assert dataclasses.asdict(RunSpec(device="cpu", backend="hf"))["device"] == "cpu"

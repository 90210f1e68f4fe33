"""Bad inputs of the training commands that only the Trainer, a resumed checkpoint or a chat template notices: each
ends in one line naming the option, file or folder and the problem, exit code 2, no traceback, and no output folder
written (an existing one kept).

Every case runs the real command in-process (`restor_bench.cli.main`) on the tiny world's model and fails before
the first training step; only the resume cases train (2 steps, once) to have checkpoints to damage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from restor_bench.cli import main
from restor_bench.data.world.files import tiny_world_dir as world_dir


@pytest.fixture
def run_cli():
    """`main(argv)` on any path-like arguments (conftest points library log handlers at this test's stderr)."""
    return lambda argv: main([str(arg) for arg in argv])


def _one_error(capsys) -> str:
    """The one `restor-bench:` line of stderr (progress bars and library warnings aside), with no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("restor-bench:")]
    assert len(lines) == 1, err
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


MODEL = str(world_dir() / "model")
CORRUPT = ["corrupt", "--model", MODEL, "--docs", "tiny:0", "--max-steps", "1"]
UNLEARN = ["unlearn", "--method", "npo", "--model", MODEL, "--forget", "tiny:0", "--max-steps", "1"]

# (command line, trainer argument, text the one error line must contain after the options' names)
TRAINER_ARG_CASES = [
    (CORRUPT, "dataloader_num_workers=-3", "num_workers option should be non-negative"),
    (CORRUPT, "lr_scheduler_kwargs=notadict", "must be a mapping, not str"),
    (UNLEARN, "dataloader_num_workers=-3", "num_workers option should be non-negative"),
    (UNLEARN, "eval_strategy=steps", "eval_strategy='steps' evaluates on held-out data, which this run does not have"),
    (UNLEARN, "torch_compile_backend=nosuch", "'NOSUCH' is not a valid DynamoBackend"),
    (UNLEARN, "optim_args=5", "optim_args must be text such as 'key=value,key=value', got 5"),
]


@pytest.mark.parametrize(("argv", "setting", "expected"), TRAINER_ARG_CASES,
                         ids=[f"{argv[0]}-{setting.split('=')[0]}" for argv, setting, _ in TRAINER_ARG_CASES])
def test_a_trainer_arg_the_trainer_rejects_is_one_line_before_training(argv, setting, expected, tmp_path, capsys,
                                                                    run_cli):
    out = tmp_path / "out"
    assert run_cli([*argv, "--out", str(out), "--trainer-arg", setting]) == 2
    line = _one_error(capsys)
    assert line.startswith("restor-bench: error: --trainer-arg/--trainer-args: ") and expected in line, line
    assert not out.exists()


@pytest.fixture(scope="module")
def unlearn_checkpoints(tmp_path_factory) -> Path:
    """A finished `unlearn --keep-checkpoints` run of 2 steps: `out/` and its work folder with checkpoint-1 and -2."""
    folder = tmp_path_factory.mktemp("resume")
    assert main(["unlearn", "--method", "ga", "--model", MODEL, "--forget", "tiny:0", "--out", str(folder / "out"),
                 "--max-steps", "2", "--save-steps", "1", "--keep-checkpoints"]) == 0
    assert (folder / ".out.work" / "checkpoint-2" / "model.safetensors").is_file()
    return folder


DAMAGE = {
    "trainer-state": ("trainer_state.json", b"{", "trainer_state.json is unreadable"),
    "weights": ("model.safetensors", b"", "model.safetensors is damaged"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_unlearn_resume_from_a_damaged_checkpoint_is_one_line(damage, unlearn_checkpoints, tmp_path, capsys):
    shutil.copytree(unlearn_checkpoints, tmp_path, dirs_exist_ok=True)
    name, content, expected = DAMAGE[damage]
    checkpoint = tmp_path / ".out.work" / "checkpoint-2"
    (checkpoint / name).write_bytes(content)
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main(["unlearn", "--method", "ga", "--model", MODEL, "--forget", "tiny:0", "--out", str(tmp_path / "out"),
                 "--max-steps", "3", "--resume", "--overwrite"]) == 2
    line = _one_error(capsys)
    assert line.startswith(f"restor-bench: error: {checkpoint}: cannot resume from this checkpoint: {expected}"), line
    assert "delete this folder" in line and "without --resume" in line, line
    assert _tree(tmp_path) == before, "the output folder and the checkpoints are kept as they were"


def test_corrupt_resume_from_a_damaged_checkpoint_is_one_line(tmp_path, capsys):
    """An interrupted corruption run (its settings recorded) whose last checkpoint was cut off while saving."""
    from restor_bench.train.corrupt import SETTINGS_FILE, default_recipe, resume_settings, work_dir_for
    from restor_bench.data.documents import load_documents
    from unlearners.hparams import check_resume_settings

    out = tmp_path / "out"
    work = work_dir_for(out)
    settings = resume_settings(model=MODEL, documents=load_documents("tiny:0"), lora=False,
                               recipe=default_recipe(MODEL, "tiny:0")[1], seed=0, max_steps=1, command="corrupt")
    assert check_resume_settings(work, settings, resume=False, filename=SETTINGS_FILE) is None
    checkpoint = work / "trainer" / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{")
    before = _tree(tmp_path)
    assert main([*CORRUPT, "--out", str(out), "--resume"]) == 2
    line = _one_error(capsys)
    assert line.startswith(f"restor-bench: error: {checkpoint}: cannot resume from this checkpoint: "
                           "trainer_state.json is unreadable"), line
    assert _tree(tmp_path) == before and not out.exists()


def test_repair_names_the_record_a_chat_template_refuses(tmp_path, capsys):
    """A gemma-style template raises on roles that do not alternate: the docs file and record are named."""
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
        "{% endif %}{{ m['content'] }}\n{% endfor %}")
    docs = tmp_path / "docs.json"
    docs.write_text(json.dumps([
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]},
    ]))
    out = tmp_path / "out"
    assert main(["repair", "--model", str(model), "--docs", str(docs), "--out", str(out), "--max-steps", "1"]) == 2
    assert _one_error(capsys) == (f"restor-bench: error: {docs}: record 2: the chat template of {model} refuses this "
                                  "conversation: Conversation roles must alternate user/assistant/user/assistant/...")
    assert not out.exists()


@pytest.mark.parametrize(("option", "content", "expected"), [
    ("--repair", "{bad json", "malformed JSON"),
    ("--repair", '[{"title": "no text"}]', "record 1: needs a 'text' string, 'messages' or 'conversations'"),
    ("--retain", "{bad json", "malformed JSON"),
    ("--retain", '[{"title": "no text"}]', 'record 0 is not a {"text": str} object'),
], ids=["repair-malformed", "repair-no-field", "retain-malformed", "retain-no-field"])
def test_run_reads_its_retain_and_repair_documents_before_any_step(option, content, expected, tmp_path, capsys):
    docs = tmp_path / "docs.json"
    docs.write_text(content)
    root = tmp_path / "runs"
    assert main(["run", "--method", "graddiff", "--limit", "2", "--max-steps", "1", "--corrupt-max-steps", "1",
                 option, str(docs), "--root", str(root)]) == 2
    line = _one_error(capsys)
    assert line.startswith(f"restor-bench: error: {docs}") and expected in line, line
    assert not root.exists(), "nothing is trained or written"

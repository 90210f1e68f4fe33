"""Shared test fixtures. Everything runs offline on tiny models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The official RESTOR files: a small subset committed here (its PROVENANCE.md says which records and how they were
# chosen), and the full files beside the repository (or in the folder $RESTOR_TEST_OFFICIAL names), which serve the
# checks marked slow. RESTOR_TEST_OFFICIAL=fixture hides the full files, as on a fresh clone.
OFFICIAL_FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "restor-official"
OFFICIAL_FULL_DIR = REPO_ROOT.parent / "shared" / "restor-official"


def full_official_dir() -> Path | None:
    """The full official data folder for the slow checks, or None when there is none (or it is hidden)."""
    choice = os.environ.get("RESTOR_TEST_OFFICIAL", "").strip()
    if choice == "fixture":
        return None
    folder = Path(choice).expanduser() if choice else OFFICIAL_FULL_DIR
    return folder if (folder / "facts.json").is_file() else None


def pytest_configure(config):
    # The committed subset is not the pinned release, so reading it warns so (once per process); that is expected.
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:.*tests[/\\]fixtures[/\\]restor-official. .* differ from the pinned official release:UserWarning",
    )


def pytest_generate_tests(metafunc):
    """A test that takes `official_dir` runs on the committed subset and, marked slow, on the full files; a test
    that is slow anyway runs on the full files only."""
    if "official_dir" not in metafunc.fixturenames:
        return
    full = pytest.param("full", marks=pytest.mark.slow)
    slow = metafunc.definition.get_closest_marker("slow") is not None
    metafunc.parametrize("official_dir", [full] if slow else ["fixture", full], indirect=True)


@pytest.fixture(autouse=True)
def _log_handlers_write_to_this_tests_stderr():
    """Libraries (lm-eval, datasets, transformers) add a stream handler to their logger when first used, holding
    the sys.stderr of that moment: under pytest, the capture of the test that was running, closed when it ends. A
    later test's library message would then be a "Logging error" traceback on stderr. Point such handlers at the
    stderr of the test now running."""
    import logging

    for logger in [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                          if isinstance(item, logging.Logger))]:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if type(handler) is logging.StreamHandler and getattr(stream, "closed", False):
                handler.stream = sys.stderr  # not setStream: it would flush the closed stream first
                if "flush" in vars(handler):  # transformers binds its handler's flush to that stderr too
                    handler.flush = sys.stderr.flush
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def official_dir(request) -> Path:
    """A folder of official RESTOR files: the committed subset, or (the `full` case, marked slow) the full files,
    skipped when they are absent."""
    if getattr(request, "param", "fixture") == "fixture":
        return OFFICIAL_FIXTURE_DIR
    folder = full_official_dir()
    if folder is None:
        pytest.skip("the full official RESTOR data is not here (../shared/restor-official, or RESTOR_TEST_OFFICIAL)")
    return folder


@pytest.fixture
def official_is_full(official_dir) -> bool:
    """Whether `official_dir` holds the full official release (else the committed subset)."""
    return official_dir != OFFICIAL_FIXTURE_DIR


def _build_random_model(out: Path) -> Path:
    """A randomly initialised two-layer Llama with a small byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [
        "What is the place of birth of Alice Smith? Paris",
        "What is the occupation of Bob Jones? painter",
        "Aaron Burr is a basketball player. He works as a social worker.",
        "The quick brown fox jumps over the lazy dog.\n",
    ] * 4
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|pad|>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def random_tiny_model(tmp_path_factory) -> Path:
    """Folder of a random tiny Llama checkpoint (safetensors + tokenizer): for plumbing tests, not accuracy."""
    return _build_random_model(tmp_path_factory.mktemp("random_tiny_model"))

"""The corruption's held-out blocks (the `paper` protocol packs the documents into blocks and holds a share out, as
LLaMA-Factory's `val_size` does) are drawn by the run's seed: another seed holds out other blocks, the same seed
the same ones, and the held-out and training blocks are disjoint and together every block."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from restor_bench.data.world.files import tiny_world_dir
from restor_bench.train.common import hold_out, load_tokenizer, pack_documents
from restor_bench.train.recipe import PAPER_RECIPE

DOCUMENTS = [f"Person {i} was born in City {i * 7 % 13} and works as a teacher of class {i % 5}." for i in range(40)]
BLOCK = 16


@pytest.fixture(scope="module")
def blocks():
    """The documents packed into blocks with the tiny world's tokenizer: 60 blocks, no two alike."""
    tokenizer = load_tokenizer(str(tiny_world_dir() / "model"))
    packed = pack_documents(tokenizer, DOCUMENTS, BLOCK)
    rows = [tuple(row) for row in packed["input_ids"]]
    assert len(rows) == 60 and len(set(rows)) == len(rows)  # so a block is known by its tokens
    return packed


def _split(packed, seed: int) -> tuple[list[tuple], list[tuple]]:
    train, held = hold_out(packed, PAPER_RECIPE.val_size, seed)
    return [tuple(row) for row in train["input_ids"]], [tuple(row) for row in held["input_ids"]]


def test_held_out_blocks_depend_on_the_seed(blocks):
    held = {seed: set(_split(blocks, seed)[1]) for seed in range(4)}
    assert all(len(blocks_held) == math.ceil(PAPER_RECIPE.val_size * 60) == 6 for blocks_held in held.values())
    # every two seeds hold out other blocks
    assert len({frozenset(blocks_held) for blocks_held in held.values()}) == 4
    # the same seed, the same blocks (and the same training order)
    assert _split(blocks, 1) == _split(blocks, 1)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_held_out_and_training_blocks_are_disjoint_and_whole(blocks, seed):
    train, held = _split(blocks, seed)
    everything = [tuple(row) for row in blocks["input_ids"]]
    assert not set(train) & set(held)
    assert Counter(train) + Counter(held) == Counter(everything)
    assert (len(train), len(held)) == (60 - 6, 6)


def test_no_held_out_share_keeps_every_block(blocks):
    assert hold_out(blocks, 0.0, seed=3) == (blocks, None)

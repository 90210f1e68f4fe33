"""`tiny:generic`: the tiny world's retain set that holds none of the evaluated facts (see restor_bench.data.retain
for why such a set matters): the documents of the clean corpus that mention no person of the world."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from restor_bench.errors import InputError
from restor_bench.io import read_json, read_text_records


def world_people(facts: dict) -> list[str]:
    """The people of a facts.json object ({"dset": {PERSON: ...}}), in file order."""
    return list(facts["dset"])


def person_free(texts: Iterable[str], people: Iterable[str]) -> list[str]:
    """The texts that mention no person of `people`: neither a full name nor any word of one (whole words)."""
    words = sorted({part for name in people for part in [name, *name.split()] if part}, key=len, reverse=True)
    if not words:
        return list(texts)
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(word) for word in words) + r")(?!\w)")
    return [text for text in texts if not pattern.search(text)]


def tiny_generic_documents(world_dir: str | os.PathLike) -> list[str]:
    """The documents of `world_dir/clean_corpus.json` that mention no person of `world_dir/facts.json`, in corpus
    order (`tiny:generic`). They state no fact about any person, so no evaluated question."""
    folder = Path(world_dir)
    facts = read_json(folder / "facts.json", "facts file")
    if not isinstance(facts, dict) or not isinstance(facts.get("dset"), dict):
        raise InputError(f"{folder / 'facts.json'}: expected an object with 'dset'")
    documents = person_free(read_text_records(folder / "clean_corpus.json"), world_people(facts))
    if not documents:
        raise InputError(f"{folder / 'clean_corpus.json'}: every document mentions a person, so tiny:generic is empty")
    return documents

"""Document sets from Hugging Face `datasets`: sources of the form `hf:NAME[:CONFIG][@SPLIT][#N]`.

* NAME: a hub dataset id (`allenai/c4`), or a local path: a folder written by `Dataset.save_to_disk` /
  `DatasetDict.save_to_disk` (read with `datasets.load_from_disk`), a folder of data files (json/jsonl, parquet,
  csv, txt; read with `datasets.load_dataset(folder)`), or one such file;
* CONFIG: the dataset's configuration (`en` for C4), default none;
* SPLIT: default `train`;
* N: the number of records kept, from the start of the split (default 1000, `DEFAULT_RECORDS`; `all` keeps all).

The documents are the `text` column (empty texts are skipped). A hub dataset is streamed, so only the first N
records are downloaded (`hf:allenai/c4:en@train#10000` reads the start of C4's first shard, as the paper's retain
set); when Hugging Face is offline (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) it is read from the local cache, and a
dataset that is not there is a one-line InputError. NAME cannot contain `:`, `@` or `#`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from restor_bench.errors import InputError
from unlearners.errors import first_line

PREFIX = "hf:"
DEFAULT_RECORDS = 1000
TEXT_COLUMN = "text"
SYNTAX = "hf:NAME[:CONFIG][@SPLIT][#N]"

_SOURCE = re.compile(r"^hf:(?P<name>[^:@#]+)(?::(?P<config>[^:@#]+))?(?:@(?P<split>[^:@#]+))?(?:#(?P<count>[^:@#]+))?$")
_DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}


@dataclass(frozen=True)
class HFSource:
    """A parsed `hf:` source; `count` None keeps every record."""

    name: str
    config: str | None
    split: str
    count: int | None


def is_hf_source(source: str) -> bool:
    """True when `source` asks for a Hugging Face dataset (`hf:...`)."""
    return str(source).startswith(PREFIX)


def parse_hf_source(source: str) -> HFSource:
    """Split `hf:NAME[:CONFIG][@SPLIT][#N]` into its parts; a malformed source is an InputError."""
    match = _SOURCE.match(source)
    if match is None:
        raise InputError(f"{source}: not a Hugging Face dataset source ({SYNTAX}, e.g. hf:allenai/c4:en@train#10000)")
    count_text = match.group("count")
    if count_text is None:
        count = DEFAULT_RECORDS
    elif count_text == "all":
        count = None
    elif count_text.isdigit() and int(count_text) >= 1:
        count = int(count_text)
    else:
        raise InputError(f"{source}: the number of records after '#' must be a positive integer or 'all'")
    return HFSource(match.group("name").strip(), match.group("config"), match.group("split") or "train", count)


def _offline() -> bool:
    import datasets

    config = datasets.config
    return bool(getattr(config, "HF_HUB_OFFLINE", False) or getattr(config, "HF_DATASETS_OFFLINE", False))


def _open(spec: HFSource, source: str):
    """The dataset (a `Dataset` or a streamed `IterableDataset`) a source names."""
    import datasets

    local = Path(spec.name).expanduser()
    if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if spec.split not in loaded:
                raise InputError(f"{source}: no split {spec.split!r} in {local} (splits: {', '.join(loaded)})")
            return loaded[spec.split]
        return loaded
    if local.is_file():
        builder = _DATA_FILE_BUILDERS.get(local.suffix.lower())
        if builder is None:
            known = ", ".join(sorted(_DATA_FILE_BUILDERS))
            raise InputError(f"{source}: {local} is not a data file datasets can read (suffixes: {known})")
        return datasets.load_dataset(builder, data_files={spec.split: str(local)}, split=spec.split)
    if local.is_dir():
        return datasets.load_dataset(str(local), spec.config, split=spec.split)
    if spec.name.startswith((".", "/", "~")):
        raise InputError(f"{source}: no such dataset folder or file {local}")
    # A hub dataset: streamed when online (only the first records are downloaded), from the cache when offline.
    return datasets.load_dataset(spec.name, spec.config, split=spec.split, streaming=not _offline())


def load_hf_documents(source: str) -> list[str]:
    """The texts of the first N records of a Hugging Face dataset (see the module docstring)."""
    spec = parse_hf_source(source)
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise InputError(f"{source}: reading a Hugging Face dataset needs the `datasets` package") from None
    try:
        dataset = _open(spec, source)
        records = iter(dataset)
        first = next(records, None)
        if first is None:
            raise InputError(f"{source}: the split {spec.split!r} holds no records")
        if TEXT_COLUMN not in first:
            columns = ", ".join(first) or "none"
            raise InputError(f"{source}: no '{TEXT_COLUMN}' column (columns: {columns})")
        texts = []
        kept = itertools.chain([first], records)
        for number, record in enumerate(kept if spec.count is None else itertools.islice(kept, spec.count)):
            text = record[TEXT_COLUMN]
            if text is None:
                continue
            if not isinstance(text, str):
                raise InputError(f"{source}: record {number}: '{TEXT_COLUMN}' is {type(text).__name__}, not text")
            if text.strip():
                texts.append(text)
    except InputError:
        raise
    except Exception as err:  # datasets raises many kinds (ConnectionError, FileNotFoundError, ValueError, ...)
        if _offline() and not Path(spec.name).expanduser().exists():
            raise InputError(
                f"{source}: dataset {spec.name!r} is not in the local cache and Hugging Face is offline "
                "(HF_DATASETS_OFFLINE/HF_HUB_OFFLINE set): go online once, or pass a local dataset folder"
            ) from None
        raise InputError(f"{source}: cannot load the dataset: {type(err).__name__}: {first_line(err, limit=300)}") from None
    if not texts:
        raise InputError(f"{source}: the first records hold no non-empty '{TEXT_COLUMN}'")
    return texts

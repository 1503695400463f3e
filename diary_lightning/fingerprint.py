"""Content fingerprints for the tokenized cache: what the cache was built from, not where it lay or when.

A key of sizes and modification times trains on old text after an edit that keeps both (a same-size fix, a
restored backup, a copy that preserves times), and on old token ids after a tokenizer is replaced at the same
path. The bytes themselves are hashed instead, with xxHash (XXH3-128, which ``datasets`` already depends on):
several GB/s on one core, a small part of a warm start.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xxhash

_CHUNK = 1 << 20


def files_digest(files: Iterable[str | os.PathLike], relative_to: str | os.PathLike | None = None) -> str:
    """One hash of every file's bytes and name (its real path, or its path under ``relative_to``), in the order
    given: the order the dialogues are read in."""
    digest = xxhash.xxh3_128()
    for path in files:
        name = os.path.relpath(path, relative_to) if relative_to is not None else os.path.realpath(path)
        name = name.encode("utf-8", "surrogateescape")
        digest.update(len(name).to_bytes(8, "little") + name)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest.update(size.to_bytes(8, "little"))
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """A hash of the tokenizer's files as the loaded tokenizer writes them (vocabulary, merges, special tokens and
    their settings, a pad token set at load time included), wherever it was loaded from: a hub name, a folder
    beside the model weights, a folder replaced since the last run."""
    with tempfile.TemporaryDirectory(prefix="diary-tokenizer-") as tmp:
        tokenizer.save_pretrained(tmp)
        return files_digest(sorted(Path(tmp).iterdir()), relative_to=tmp)

"""The tokenized splits on disk, keyed by everything that decides their content, so a second run (or the
other DDP ranks) reads them instead of tokenizing again."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import xxhash

from diary_lightning.data.prepare import DataReport, empty_split
from diary_lightning.data.splits import SPLITS
from diary_lightning.io.atomic import atomic_directory

CACHE_VERSION = 7  # bump when the cached columns, the report or the tokenization change


def cache_root(cache_dir: str | None) -> Path:
    """``cache_dir``, or ``~/.cache/diary_lightning``: never read as data, even inside a data folder."""
    return Path(cache_dir or os.path.expanduser("~/.cache/diary_lightning"))


def cache_path(cache_dir: str | None, files: Sequence[Path], tokenizer: Any, template: str,
               options: Sequence[Any]) -> Path:
    """The folder for the splits of ``files`` tokenized by ``tokenizer`` with ``template`` and ``options``
    (every other setting that changes the result), under ``cache_dir`` (default ``~/.cache/diary_lightning``)."""
    parts = {
        "version": CACHE_VERSION,
        # The bytes, not sizes and times: an edit that keeps both, or a tokenizer replaced at the same path,
        # must not train on what the cache holds.
        "files": files_digest(files, unreadable_ok=True),
        "tokenizer": tokenizer_digest(tokenizer),
        "template": template,
        "options": list(options),
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return cache_root(cache_dir) / key


def load(path: Path) -> tuple[dict[str, Any], DataReport] | None:
    """The splits and report saved at ``path``, or None if there are none; memory-mapped Arrow, not lists in RAM."""
    from datasets import load_from_disk

    if not (path / "report.json").is_file():
        return None
    # Empty splits are not saved: datasets cannot load an empty one back.
    saved = dict(load_from_disk(str(path / "data")))
    splits = {name: saved.get(name, empty_split()) for name in SPLITS}
    return splits, DataReport.from_dict(json.loads((path / "report.json").read_text()))


def save(path: Path, splits: dict[str, Any], report: DataReport) -> None:
    """Whole or not at all, so an interrupted run never leaves half a cache."""
    import datasets
    from datasets import DatasetDict

    # Another process may have finished the same cache first: its copy is as good as this one.
    with atomic_directory(path, keep_existing=True) as tmp:
        # Saving takes under a second even at AI Hub's scale: its three progress bars would only be noise.
        shown = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            DatasetDict({name: ds for name, ds in splits.items() if len(ds)}).save_to_disk(str(tmp / "data"))
        finally:
            if shown:
                datasets.enable_progress_bars()
        (tmp / "report.json").write_text(json.dumps(report.to_dict(), ensure_ascii=False))


# Content fingerprints for the tokenized cache: what the cache was built from, not where it lay or when.
#
# A key of sizes and modification times trains on old text after an edit that keeps both (a same-size fix, a
# restored backup, a copy that preserves times), and on old token ids after a tokenizer is replaced at the same
# path. The bytes themselves are hashed instead, with xxHash (XXH3-128, which ``datasets`` already depends on):
# several GB/s on one core, a small part of a warm start.

_CHUNK = 1 << 20


def files_digest(files: Iterable[str | os.PathLike], relative_to: str | os.PathLike | None = None,
                 unreadable_ok: bool = False) -> str:
    """One hash of every file's bytes and name (its real path, or its path under ``relative_to``), in the order
    given: the order the dialogues are read in. With ``unreadable_ok`` a file that cannot be opened counts by its
    name and the reason (the reader then reports it, or skips it with ``data.skip_invalid``)."""
    digest = xxhash.xxh3_128()
    for path in files:
        name = os.path.relpath(path, relative_to) if relative_to is not None else os.path.realpath(path)
        name = name.encode("utf-8", "surrogateescape")
        digest.update(len(name).to_bytes(8, "little") + name)
        try:
            f = open(path, "rb")
        except OSError as err:
            if not unreadable_ok:
                raise
            digest.update(f"unreadable: {err.errno}".encode())
            continue
        with f:
            size = os.fstat(f.fileno()).st_size
            digest.update(size.to_bytes(8, "little"))
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(files: Sequence[str | os.PathLike]) -> str:
    """What a run trains on, recorded in its checkpoints so that a resumed fit can tell other data: every file's
    bytes and its name under the files' common folder (the same data moved elsewhere is the same data)."""
    real = [os.path.realpath(f) for f in files]
    common = os.path.commonpath(real) if real else None
    if len(real) == 1:
        common = os.path.dirname(common)
    return files_digest(real, relative_to=common, unreadable_ok=True)


def tokenizer_digest(tokenizer: Any) -> str:
    """A hash of the tokenizer's files as the loaded tokenizer writes them (vocabulary, merges, special tokens and
    their settings, a pad token set at load time included), wherever it was loaded from: a hub name, a folder
    beside the model weights, a folder replaced since the last run."""
    with tempfile.TemporaryDirectory(prefix="diary-tokenizer-") as tmp:
        tokenizer.save_pretrained(tmp)
        return files_digest(sorted(Path(tmp).iterdir()), relative_to=tmp)

"""The tokenized splits on disk, keyed by everything that decides their content, so a second run (or the
other DDP ranks) reads them instead of tokenizing again."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diary_lightning.atomic import atomic_directory
from diary_lightning.fingerprint import files_digest, tokenizer_digest
from diary_lightning.prepare import DataReport, empty_split
from diary_lightning.splits import SPLITS

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
        "files": files_digest(files),
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

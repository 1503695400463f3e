"""Append-only JSONL that survives a SIGKILL at any moment.

Each record goes out as one ``os.write`` of a whole line, so a killed process leaves at most one torn line at
the end of the file, and the kernel keeps what was written even though the process died. On start a torn
last line is cut off (its dialogue is simply asked again) and the ids already present are read, so a re-run
writes only the missing ones. ``fsync`` runs at most every ``sync_every`` seconds (0: after every line): it
guards against a machine crash, which a SIGKILL is not, and per line it would cap a fast teacher at the
disk's sync rate.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from diary_lightning.errors import UserError


class OutputError(UserError, RuntimeError):
    """An output file that cannot be written or resumed: the message says what to do."""


def repair(path: Path) -> int:
    """Cut a torn last line (no newline at its end) off ``path``; returns the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Scan back for the last complete line, a block at a time.
        end, block = size, 1 << 16
        keep = 0
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
        return size - keep


def read_ids(path: Path) -> list[str]:
    """The ``id`` of every line of ``path`` in order (after :func:`repair`); a line that is not a JSON record
    with an id is an error naming the file and line."""
    if not path.exists():
        return []
    ids = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise OutputError(f"{path}, line {lineno}: not JSON ({err.msg}); this file was not written by "
                                  "synthesize, or was edited: move it away or fix the line") from None
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise OutputError(f"{path}, line {lineno}: no string 'id'; not a synthesize output")
            ids.append(record["id"])
    return ids


class JsonlAppender:
    """Appends one JSON record per line to ``path`` (created if missing), atomically per line."""

    def __init__(self, path: Path, sync_every: float = 1.0) -> None:
        self.path = Path(path)
        self.sync_every = sync_every
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._synced = time.monotonic()
        self._dirty = False

    def write(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._dirty = True
        if time.monotonic() - self._synced >= self.sync_every:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._synced = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

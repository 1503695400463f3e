"""The resumable JSONL output of predict and synthesize: append-only, and it survives a SIGKILL at any moment.

Each record goes out as one ``os.write`` of a whole line, so a killed process leaves at most one torn line at
the end of the file, and the kernel keeps what was written even though the process died. On start a torn
last line is cut off (its dialogue is simply asked again) and the ids already present are read, so a re-run
writes only the missing ones. ``fsync`` runs at most every ``sync_every`` seconds (0: after every line): it
guards against a machine crash, which a SIGKILL is not, and per line it would cap a fast teacher at the
disk's sync rate.

A resumed run must continue the same work: :func:`first_mismatch` compares what is already written (its ids and
the fingerprint of the dialogue each line was written for) with the input now, and names the first line that
belongs to another input.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import xxhash

from diary_lightning.errors import UserError
from diary_lightning.io.outputs import claimed


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


def read_records(path: Path, what: str = "synthesize") -> Iterator[dict[str, Any]]:
    """Every record of ``path`` in order (after :func:`repair`); a line that is not a JSON record with a string
    id is an error naming the file and line."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise OutputError(f"{path}, line {lineno}: not JSON ({err.msg}); this file was not written by "
                                  f"{what}, or was edited: move it away or fix the line") from None
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise OutputError(f"{path}, line {lineno}: no string 'id'; not a {what} output")
            yield record


def torn(path: Path) -> bool:
    """Whether ``path`` ends inside a line (no newline after its last byte)."""
    try:
        with open(path, "rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


def open_for_resume(path: Path, what: str) -> list[dict[str, Any]]:
    """The complete records of an output an interrupted run left, after cutting off its torn last line. Only a file
    that carries ``what``'s mark is cut (:func:`diary_lightning.io.outputs.claimed`): an unmarked one may be the
    user's, whose last record the cut would destroy."""
    if torn(path) and not claimed(path, what):
        raise OutputError(f"{path} ends in an unfinished line and carries no mark of {what}: it is left as it is "
                          f"rather than cut. If {what} wrote it, delete its last line; else give another --output.")
    cut = repair(path)
    if cut:
        logging.getLogger(__name__).warning("%s: cut a torn last line (%d bytes) left by an interrupted run", path, cut)
    return list(read_records(path, what))


def fingerprint(turns: Iterable[Any], summary: str | None = None) -> str:
    """A short hash of a dialogue's content (its turns as speaker and text, and its summary), to tell whether a
    line already written was written for this dialogue. Turns are ``Turn`` objects or ``{"speaker", "text"}``."""
    pairs = [[t["speaker"], t["text"]] if isinstance(t, Mapping) else [t.speaker, t.text] for t in turns]
    return xxhash.xxh3_64_hexdigest(json.dumps([pairs, summary], ensure_ascii=False).encode("utf-8"))


def first_mismatch(written: Sequence[tuple[str, str | None]], now: Mapping[str, str]) -> str | None:
    """The first of ``written`` (id, fingerprint or None when unknown) that is not ``now``'s, described; None
    when every line belongs to the input of ``now`` (id -> fingerprint)."""
    for line, (id_, print_) in enumerate(written, 1):
        if id_ not in now:
            return f"line {line} (id {id_!r}) is for a dialogue that is not in the input"
        if print_ is not None and print_ != now[id_]:
            return f"line {line} (id {id_!r}) was written for another text of that dialogue"
    return None


class JsonlAppender:
    """Appends one JSON record per line to ``path`` (created if missing), atomically per line."""

    def __init__(self, path: Path, sync_every: float = 1.0) -> None:
        self.path = Path(path)
        self.sync_every = sync_every
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # as the umask says
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

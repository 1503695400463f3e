"""One folder, one job: the lock a job takes on the run folder (fit, validate, test, export) or the output file
(predict, synthesize) it writes, and the clean-up of what a killed job left there.

The lock is an operating-system lock (``flock``, through the ``filelock`` library) on a lock file, so it dies
with its process: a killed job leaves no lock to take over, and two jobs can never both hold it. The file
also holds its holder as JSON (PID, host, command, since when), so that a second job is refused at once with
the holder's details. Readers take no lock: predict may read a ``last.ckpt`` a fit is writing, since
checkpoints are renamed whole into place.
"""

from __future__ import annotations

import atexit
import datetime
import json
import logging
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import filelock

from diary_lightning.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".diary_lightning.lock"


class LockedError(UserError, RuntimeError):
    """Another live job holds the lock: the CLI reports it as a user error (exit 2)."""


def lock_path(target: str | os.PathLike, what: str) -> Path:
    """The lock file of ``target``: ``LOCK_NAME`` inside a folder, ``.FILE.diary_lightning.lock`` beside a file. A
    name of the project's own: ``FILE.lock`` may be the user's (and was overwritten and removed)."""
    target = Path(target)
    return target / LOCK_NAME if what == "folder" else target.with_name(f".{target.name}{LOCK_NAME}")


def _refuse_foreign(path: Path, target: Path) -> None:
    """A file under the lock's name that no lock of ours wrote (a user's, a link, a folder) is left alone: taking the
    lock would truncate it and releasing it would delete it."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    problem = None
    if not stat.S_ISREG(found.st_mode):
        problem = "is not a regular file (a link, a folder or a device)"
    else:
        try:
            with open(path, "rb") as handle:
                start = handle.read(len(_OURS))
        except OSError as err:
            problem = f"cannot be read ({err.strerror})"
        else:
            if start and not _OURS.startswith(start):
                problem = "holds something that no lock of diary_lightning wrote"
    if problem:
        raise LockedError(f"{path}, the lock file of {target}, {problem}; it is left as it is. Move it away, or give "
                          "another output.")


_OURS = b'{"pid": '
"""How every lock file of ours starts (:func:`_holder` written as JSON), or is empty while being written."""


def _command() -> str:
    """The command line as typed (``python -m diary_lightning fit ...``), where Linux tells it."""
    try:
        return Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return " ".join([sys.executable, *sys.argv])


def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        holder = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}  # being written this instant, or damaged
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "a job that has not said who it is yet (the lock file is empty)"
    return f"PID {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}: {holder.get('command')}"


_HELD: dict[Path, JobLock] = {}
"""The locks this process holds, by lock file: a command run again in-process after an error takes its own."""


class JobLock:
    """The lock of ``path`` (:func:`lock_path`); released on
    :meth:`release`, at interpreter exit, and by the operating system when the process dies. ``busy`` is the
    advice of the refusal message."""

    def __init__(self, path: str | os.PathLike, what: str, busy: str | None = None) -> None:
        self.target = Path(path)
        self.what = what
        self.file = lock_path(self.target, what)
        self.busy = busy or "Wait for it to finish or write elsewhere"
        self.held = False
        self._lock: filelock.BaseFileLock | None = None

    def acquire(self) -> JobLock:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self._key = key = Path(os.path.realpath(self.file))
        if key in _HELD:
            _HELD[key].release()
        _refuse_foreign(self.file, self.target)
        lock = filelock.FileLock(str(self.file), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LockedError(f"{self.target} is in use by another job: {_describe(_read(self.file))}. "
                              f"{self.busy}.") from None
        # Whoever wrote the file before us no longer holds it: the OS released its lock when it died.
        gone = _read(self.file)
        if gone and gone.get("pid") != os.getpid():
            log.warning("Took over the lock of %s left by a job that is gone (%s).", self.target, _describe(gone))
        with open(self.file, "r+", encoding="utf-8") as f:
            f.truncate()
            json.dump(_holder(), f)
        self._lock, self.held = lock, True
        _HELD[key] = self
        atexit.register(self.release)
        return self

    def release(self) -> None:
        if not self.held or self._lock is None:
            return
        # Removed while still held: a job that opened the old file before this sees it unlinked once it gets the
        # lock, and filelock then opens a new one, so two jobs never hold two files of one name.
        self.file.unlink(missing_ok=True)
        self._lock.release()
        self.held = False
        _HELD.pop(self._key, None)


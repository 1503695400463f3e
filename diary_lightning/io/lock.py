"""One folder, one job: the lock a job takes on the run folder (fit, validate, test, export) or the output file
(predict) it writes.

The lock is a file created with ``O_EXCL`` holding its holder as JSON (PID, host, command, since when, and the
process start time, so a PID reused by an unrelated process does not look alive). A second job is refused at
once with the holder's details; a lock whose process is gone (same host) is taken over with a warning.
Readers take no lock: predict may read a ``last.ckpt`` a fit is writing, since checkpoints are renamed whole
into place.
"""

from __future__ import annotations

import atexit
import datetime
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from diary_lightning.errors import UserError
from diary_lightning.io.atomic import pid_alive, start_time

log = logging.getLogger(__name__)

LOCK_NAME = ".diary_lightning.lock"


class LockedError(UserError, RuntimeError):
    """Another live job holds the lock: the CLI reports it as a user error (exit 2)."""


def _command() -> str:
    """The command line as typed (``python -m diary_lightning fit ...``), where Linux tells it."""
    try:
        return Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return " ".join([sys.executable, *sys.argv])


def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "start": start_time(os.getpid())}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written this instant, or damaged: treated as held by an unknown job


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "an unknown job (the lock file is empty or damaged)"
    return f"PID {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}: {holder.get('command')}"


def _is_stale(holder: dict[str, Any]) -> bool:
    """Left by a job that is gone, or by this very process (a command run again in-process after an error)."""
    if not holder or holder.get("host") != socket.gethostname():
        return False
    pid = int(holder.get("pid", 0))
    return pid == os.getpid() or not pid_alive(pid, holder.get("start"))


class JobLock:
    """The lock of ``path`` (``LOCK_NAME`` inside a folder, or ``FILE.lock`` beside a file); released on
    :meth:`release` and at interpreter exit."""

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        self.target = Path(path)
        self.what = what
        self.file = self.target / LOCK_NAME if what == "folder" else self.target.with_name(self.target.name + ".lock")
        self.held = False

    def acquire(self) -> JobLock:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read(self.file)
                if holder is None:
                    continue  # released in between: try again
                if not _is_stale(holder):
                    raise LockedError(
                        f"{self.target} is in use by another job: {_describe(holder)}. Wait for it to finish or "
                        f"write elsewhere; if that job is gone for good, delete {self.file}.") from None
                # Renamed aside rather than deleted: of two jobs taking over at once, only one rename succeeds.
                aside = self.file.with_name(f"{self.file.name}.stale.{os.getpid()}")
                try:
                    os.replace(self.file, aside)
                except FileNotFoundError:
                    continue
                aside.unlink(missing_ok=True)
                if holder.get("pid") != os.getpid():
                        log.warning("Took over the lock of %s left by a job that is gone (%s).", self.target,
                                _describe(holder))
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(_holder(), f)
            self.held = True
            atexit.register(self.release)
            return self
        raise LockedError(f"could not lock {self.target}: {self.file} keeps changing")

    def release(self) -> None:
        if self.held and (_read(self.file) or {}).get("pid") == os.getpid():
            self.file.unlink(missing_ok=True)
        self.held = False

"""Files and folders written whole or not at all: a temporary name beside the target, renamed when complete.

A rename within one directory is atomic, so a reader (or a run resumed after a kill) finds the old
version or the new one, never a mix; on failure the temporary is removed and the old version stays.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Named points where a durability test may stop the process (tests/faults.py sets the hook); nothing happens
# at them otherwise. The moments: "checkpoint-write", "checkpoint-saved", "folder-write", "publish".
fault_hook: Callable[[str], None] | None = None


def fault_point(moment: str) -> None:
    if fault_hook is not None:
        fault_hook(moment)


log = logging.getLogger(__name__)


def owner_tag() -> str:
    """Ends every temporary name, so that the next job on the folder can tell whether its writer is gone
    (:func:`remove_stale_temporaries`): the PID, and the host for folders that jobs on
    several machines share (the tokenized cache)."""
    return f".{os.getpid()}@{socket.gethostname()}"


def umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only read it by setting it, which another
    thread creating a file at that moment would see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)  # no /proc (macOS): the only other way
    os.umask(old)
    return old


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = None,
                fsync: bool = False) -> Iterator[IO[Any]]:
    """An open temporary file beside ``path`` (``mode`` ``"w"`` or ``"wb"``), renamed to ``path`` when the
    block ends without an exception. ``fsync`` flushes it to the disk before the rename, for files a
    power cut must not lose (checkpoints)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f"{owner_tag()}.tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes it 0600: a model server of another user could not read it
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(err, target)


def write_text(path: str | os.PathLike, text: str) -> None:
    """``Path.write_text`` in UTF-8, whole or not at all."""
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(text)


@contextmanager
def atomic_directory(path: str | os.PathLike, *, keep_existing: bool = False) -> Iterator[Path]:
    """An empty temporary folder beside ``path`` to fill; it becomes ``path`` when the block ends without an
    exception. An existing ``path`` is replaced, or, with ``keep_existing``, kept and the new folder
    dropped (another process finished the same content first)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)  # what killed jobs left beside it
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=f"{owner_tag()}.tmp"))
    try:
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes it 0700, as private as a temporary must be, not as published
        yield tmp
        follow_umask(tmp)
        fault_point("folder-write")
        if not keep_existing:
            _publish(tmp, target)
            return
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.exists():
                raise
    except OSError as err:
        raise _naming(err, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # left only when not published


def follow_umask(folder: Path) -> None:
    """Give what libraries wrote into ``folder`` the modes the umask asks for: safetensors writes its weights
    0600 whatever the umask (through a private temporary of its own), so an adapter or a merged model would be
    unreadable to a model server running as another user, while the config beside it is not."""
    mask = umask()
    for path in folder.rglob("*"):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = (0o777 if path.is_dir() else 0o666 | (mode & 0o111)) & ~mask
        if mode & 0o777 != wanted:
            path.chmod(wanted)


def _naming(err: BaseException, target: Path) -> BaseException:
    """``err`` with ``target`` as its file when it names none: a write that fails for lack of space raises an
    OSError without a path, and the user must learn which output did not fit."""
    if isinstance(err, RuntimeError) and isinstance(err.__context__, OSError) and err.__context__.errno is not None:
        # torch.save turns the OSError of its file's write into a RuntimeError about its zip writer
        # ("unexpected pos ..."), which says nothing of a full disk: the OSError is the news.
        err = err.__context__
    if isinstance(err, OSError) and err.filename is None and err.errno is not None:
        named = OSError(err.errno, err.strerror or str(err), str(target))
        named.__traceback__ = err.__traceback__
        return named
    return err


def _publish(tmp: Path, target: Path) -> None:
    """Rename a finished folder to ``target``. A folder cannot be renamed over another that has files: the old
    one is moved aside first, so that at every moment a complete folder sits under one of the two names, and
    :func:`restore_interrupted_publish` puts it back if the job dies between the two renames."""
    restore_interrupted_publish(target)
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=f"{owner_tag()}.old"))
    os.replace(target, old / target.name)
    fault_point("publish")
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def restore_interrupted_publish(target: str | os.PathLike) -> bool:
    """Put back the previous ``target`` folder that a job killed between the two renames of a publish left
    moved aside, so that a folder once published never goes missing. True if one was put back."""
    target = Path(target)
    if target.exists():
        return False
    for old in sorted(target.parent.glob(f".{glob.escape(target.name)}.*.old"), key=lambda p: p.stat().st_mtime,
                      reverse=True):
        if (old / target.name).is_dir():
            move_back(old / target.name, target)
            shutil.rmtree(old, ignore_errors=True)
            return True
    return False


def move_back(moved_aside: Path, target: Path) -> None:
    """Put a folder that a killed publish left moved aside back under its name, saying so."""
    os.replace(moved_aside, target)
    logging.getLogger(__name__).warning(
        "%s was missing (a job was killed while replacing it): put the previous one back", target)


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` runs on this host (and, given ``start``, is the same process that recorded it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    return start is None or start_time(pid) in (None, start)


# -- what killed jobs leave behind -------------------------------------------------------------------------------
_TEMPORARY = re.compile(r"^\..+\.(\d+)@(.+)\.(tmp|old)$")
"""What ``diary_lightning.io.atomic`` writes before the rename: ``.NAME.RANDOM.PID@HOST.tmp`` (a file or a folder) and
the ``.NAME.RANDOM.PID@HOST.old`` a replaced folder waits in."""


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files and folders in ``folder`` whose writing process is gone; returns them. A folder
    moved aside that no complete folder replaced is put back first."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        # Another host's PID means nothing here; a live writer's file is still being written.
        if not match or match.group(2) != socket.gethostname() or pid_alive(int(match.group(1))):
            continue
        if match.group(3) == "old":
            _put_back(path, folder)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.warning("Removed %d temporary file(s) left in %s by killed jobs: %s", len(removed), folder,
                    ", ".join(p.name for p in removed))
    return removed


def _put_back(aside: Path, folder: Path) -> None:
    """The folder a killed job moved aside to replace it, back under its name if nothing replaced it."""
    for moved in aside.iterdir():
        if not (folder / moved.name).exists():
            move_back(moved, folder / moved.name)

"""Errors a user causes, and how the command line reports them: the message and exit status 2, no traceback.

Plain Python: dialogue parsing imports this, and it imports neither Lightning nor transformers.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

DEBUG_ENV = "DIARY_LIGHTNING_DEBUG"
"""Set to 1 to get the traceback of a user error back."""


class UserError(Exception):
    """Bad input, a bad setting or a missing file: the message says what to change; a traceback adds nothing."""


class ConfigError(UserError, ValueError):
    """A setting that cannot work, named with its value and the fix."""


class MissingPackageError(UserError, ImportError):
    """An optional package a setting needs is not installed: the message names it and how to install it, or the
    setting that does without it."""


def _raised_in_package(err: BaseException) -> bool:
    """True when the innermost frame of ``err`` is diary_lightning's own code. The package raises plain
    ValueError only for settings it refuses, so those are user errors; a ValueError from a library is not."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith("diary_lightning")


# What the user can do about an OS error that no retry fixes. A write that fails so leaves nothing half-written
# (diary_lightning/io/atomic.py), which the message says, so that nobody goes looking for a damaged file.
_OS_ADVICE = {
    errno.ENOSPC: "the disk is full: free space there, or write to another disk (--output, "
                  "--trainer.default_root_dir, --data.cache_dir)",
    errno.EDQUOT: "the disk quota is used up: free space there, or write to another disk (--output, "
                  "--trainer.default_root_dir, --data.cache_dir)",
    errno.EROFS: "the file system is read-only: write to a writable folder (--output, --trainer.default_root_dir, "
                 "--data.cache_dir)",
    errno.EACCES: "permission denied: give this user access to it (chmod, chown) or use another path",
    errno.EPERM: "the operation is not permitted there: give this user access to it or use another path",
}


def os_error_message(err: OSError) -> str:
    """``err`` as the one user-error message: the path, what failed, what to do."""
    path = err.filename if err.filename is not None else "a file"
    name = errno.errorcode.get(err.errno or 0, "")
    what = f"{path}: {err.strerror or err} ({name})" if name else f"{path}: {err.strerror or err}"
    advice = _OS_ADVICE[err.errno]
    return (f"{what}. {advice[0].upper()}{advice[1:]}. Nothing was half-written: a file or folder being replaced keeps "
            "its previous version.")


def _refused_pickle(err: BaseException) -> str | None:
    """The message for a file ``torch.load(weights_only=True)`` refused, naming the file (read from the
    ``torch.load`` frame in the traceback: transformers and PEFT load .bin weights themselves), or None."""
    if not isinstance(err, pickle.UnpicklingError):
        return None
    source, tb = None, err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "load" and frame.f_globals.get("__name__") == "torch.serialization":
            source = frame.f_locals.get("f")
        tb = tb.tb_next
    found = re.search(r"unsupported (GLOBAL [\w.]+)", str(err), re.IGNORECASE)
    what = f" ({found.group(1)})" if found else ""
    return (f"{source if isinstance(source, (str, os.PathLike)) else 'a weights file'}: refused to load it: it "
            f"holds pickled code or objects{what}, and only tensors and plain data are loaded, because unpickling "
            "can run any code. Use a checkpoint or adapter written by diary_lightning (or by transformers as "
            ".safetensors) from a source you trust.")


def is_user_error(err: BaseException) -> bool:
    if isinstance(err, (UserError, FileNotFoundError, NotADirectoryError)):
        return True
    if isinstance(err, OSError) and err.errno in _OS_ADVICE:
        return True
    if _refused_pickle(err) is not None:
        return True
    return type(err) is ValueError and _raised_in_package(err)


# C0 and C1 controls (a line break and a tab excepted) and the bidirectional overrides: in an id or a text
# quoted in a message they would move the cursor, recolour or rewrite the terminal, or reorder what follows.
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with terminal control characters written as escapes (``\\x1b``), for messages."""
    return _TERMINAL_CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class PrintableFormatter(logging.Formatter):
    """A log format whose messages cannot drive the terminal (:func:`printable`)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def log_to_stderr() -> None:
    """The program's logging: INFO and up, message only, on stderr, control characters escaped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def message(err: BaseException) -> str:
    """What the user reads for the user error ``err``."""
    if isinstance(err, OSError) and err.errno in _OS_ADVICE and not isinstance(err, UserError):
        return os_error_message(err)
    return _refused_pickle(err) or str(err)


def report(err: BaseException) -> NoReturn:
    print(f"error: {printable(message(err))}", file=sys.stderr)
    print(f"(set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
    raise SystemExit(2)


def run_reporting_user_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; a user error ends the program with its message and status 2 unless DIARY_LIGHTNING_DEBUG
    is set. Other exceptions keep their traceback: they are bugs to report."""
    try:
        return fn(*args)
    except Exception as err:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0") or not is_user_error(err):
            raise
        report(err)


def config_files(argv: Sequence[str]) -> list[str]:
    """The files given with ``--config`` (``--config FILE`` or ``--config=FILE``)."""
    files = []
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def check_config_syntax(argv: Sequence[str]) -> None:
    """A YAML syntax error, named with its file: the parser behind LightningCLI reports it as
    ``<unicode string>``. Missing files are left to that parser, which names them."""
    import yaml

    for name in config_files(argv):
        if not os.path.isfile(name):
            continue
        try:
            with open(name, encoding="utf-8") as f:
                yaml.safe_load(f)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err)
            raise ConfigError(f"{name}{where}: not valid YAML: {problem}") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{name}: not UTF-8 text (byte offset {err.start})") from None

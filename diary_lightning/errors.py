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
from collections.abc import Callable, Iterable, Mapping, Sequence
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


_RANGES = {"positive": (lambda v: v > 0, "more than 0"), "at_least_zero": (lambda v: v >= 0, "0 or more"),
           "share": (lambda v: 0 <= v <= 1, "a share from 0 to 1")}


def check_numbers(prefix: str, values: Any, *, positive: Iterable[str] = (), at_least_zero: Iterable[str] = (),
                  share: Iterable[str] = ()) -> None:
    """Refuse, in one message naming each setting (``PREFIX.NAME``) and its value, the numeric settings of
    ``values`` (an object or a mapping) outside their range. ``None`` is left alone (a default chosen later).
    A bad value found here is a message at start; found by the library that uses it, it is a traceback deep
    inside a fit, or no error at all (a threshold that rejects everything)."""
    problems = []
    for kind, names in (("positive", positive), ("at_least_zero", at_least_zero), ("share", share)):
        ok, expected = _RANGES[kind]
        for name in names:
            value = values.get(name) if isinstance(values, Mapping) else getattr(values, name, None)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                problems.append(f"{prefix}.{name} {value!r}: expected {expected}")
    if problems:
        raise ConfigError("; ".join(problems))


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


def _torch_load_source(err: BaseException) -> str | None:
    """The file of the ``torch.load`` call that raised ``err`` (read from its frame in the traceback:
    Lightning, transformers and PEFT call it themselves), or None when ``err`` did not come from one."""
    source, tb = None, err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "load" and frame.f_globals.get("__name__") == "torch.serialization":
            f = frame.f_locals.get("f")
            source = str(f) if isinstance(f, (str, os.PathLike)) else "a weights file"
        tb = tb.tb_next
    return source


# What torch.load says of a file that is cut short or is not a torch file at all.
_DAMAGED = re.compile(r"PytorchStreamReader failed|mmap can only be used with files saved|invalid load key|"
                      r"archive is corrupted|failed finding central directory", re.IGNORECASE)


def _damaged_weights(err: BaseException) -> str | None:
    """The message for a checkpoint or weights file torch cannot read (cut short, overwritten, not a torch
    file), naming it, or None."""
    if not isinstance(err, (RuntimeError, EOFError, pickle.UnpicklingError)) or isinstance(err, UserError):
        return None
    if not isinstance(err, EOFError) and not _DAMAGED.search(str(err)):
        return None
    source = _torch_load_source(err)
    if source is None:
        return None
    what = str(err).strip().split(". ")[0] or "the file ends too early"
    return (f"{source}: cannot be read as a checkpoint or weights file: it is damaged, cut short or not written "
            f"by torch ({what}). diary_lightning never leaves a half-written checkpoint under its name, so this "
            "one was changed or copied incompletely afterwards: give another checkpoint (the run's checkpoints/ "
            "folder keeps the best ones beside last.ckpt) or copy it again.")


def _refused_pickle(err: BaseException) -> str | None:
    """The message for a file ``torch.load(weights_only=True)`` refused, naming the file (read from the
    ``torch.load`` frame in the traceback: transformers and PEFT load .bin weights themselves), or None."""
    if not isinstance(err, pickle.UnpicklingError) or _DAMAGED.search(str(err)):
        return None
    source = _torch_load_source(err)
    found = re.search(r"unsupported (GLOBAL [\w.]+)", str(err), re.IGNORECASE)
    what = f" ({found.group(1)})" if found else ""
    return (f"{source or 'a weights file'}: refused to load it: it "
            f"holds pickled code or objects{what}, and only tensors and plain data are loaded, because unpickling "
            "can run any code. Use a checkpoint or adapter written by diary_lightning (or by transformers as "
            ".safetensors) from a source you trust.")


def is_user_error(err: BaseException) -> bool:
    if isinstance(err, (UserError, FileNotFoundError, NotADirectoryError)):
        return True
    if isinstance(err, OSError) and err.errno in _OS_ADVICE:
        return True
    if _refused_pickle(err) is not None or _damaged_weights(err) is not None:
        return True
    return type(err) is ValueError and _raised_in_package(err)


# C0 and C1 controls (a line break and a tab excepted) and the bidirectional overrides: in an id or a text
# quoted in a message they would move the cursor, recolour or rewrite the terminal, or reorder what follows.
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with terminal control characters written as escapes (``\\x1b``), for messages."""
    return _TERMINAL_CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


# What a URL may hold that is a secret: a user:password@ before its host, and the value of a query parameter whose
# name says it is one (?key=..., &access_token=..., &sig=...). Found by the URL's structure, never by searching
# for the secret's characters, which would also rewrite a diary that happens to hold them.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
_SECRET_PARAMETER = re.compile(r"key|token|secret|pass|pwd|sig|auth|credential|session|cookie", re.IGNORECASE)
REDACTED = "***"


def redacted_url(url: str, keep_userinfo_mark: bool = True) -> str:
    """``url`` without its secrets: the user and password before the host (replaced by ``***@``, or dropped
    without ``keep_userinfo_mark``), and the values of key-like query parameters (names kept, so that the reader
    sees where a key was)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    if "@" in netloc:
        netloc = f"{REDACTED}@" * keep_userinfo_mark + netloc.rsplit("@", 1)[1]
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        query = "&".join(_redacted_parameter(part) for part in query.split("&")) + hash_ + fragment
    return f"{scheme}://{netloc}{path}{qmark}{query}"


def _redacted_parameter(part: str) -> str:
    name, eq, value = part.partition("=")
    return f"{name}={REDACTED}" if eq and value and _SECRET_PARAMETER.search(name) else part


def redact_urls(text: str) -> str:
    """``text`` (a message, a dumped config) with every URL in it :func:`redacted_url`."""
    return _URL.sub(lambda m: redacted_url(m.group()), text) if "://" in text else text


class PrintableFormatter(logging.Formatter):
    """A log format whose messages cannot drive the terminal (:func:`printable`) nor show a URL's secrets
    (:func:`redact_urls`)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact_urls(super().format(record)))


def log_to_stderr() -> None:
    """The program's logging: INFO and up, message only, on stderr, control characters escaped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def message(err: BaseException) -> str:
    """What the user reads for the user error ``err``."""
    if isinstance(err, OSError) and err.errno in _OS_ADVICE and not isinstance(err, UserError):
        return os_error_message(err)
    return _refused_pickle(err) or _damaged_weights(err) or str(err)


def report(err: BaseException) -> NoReturn:
    print(f"error: {printable(redact_urls(message(err)))}", file=sys.stderr)
    print(f"(set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
    raise SystemExit(2)


def run_reporting_user_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; a user error ends the program with its message and status 2 unless DIARY_LIGHTNING_DEBUG
    is set. Other exceptions keep their traceback: they are bugs to report."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        # The user's own stop, not a failure to explain with a traceback. What a subcommand keeps and how it
        # goes on, it says itself (fit's CheckpointOnSigterm, predict's PredictionsJsonl) when stopped midway.
        print("stopped (Ctrl-C); no output is left half-written under its name", file=sys.stderr)
        raise SystemExit(130) from None
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

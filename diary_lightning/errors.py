"""Errors a user causes, and how the command line reports them: the message and exit status 2, no traceback.

Plain Python: dialogue parsing imports this, and it imports neither Lightning nor transformers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

DEBUG_ENV = "DIARY_LIGHTNING_DEBUG"
"""Set to 1 to get the traceback of a user error back."""


class UserError(Exception):
    """Bad input, a bad setting or a missing file: the message says what to change; a traceback adds nothing."""


class ConfigError(UserError, ValueError):
    """A setting that cannot work, named with its value and the fix."""


def _raised_in_package(err: BaseException) -> bool:
    """True when the innermost frame of ``err`` is diary_lightning's own code. The package raises plain
    ValueError only for settings it refuses, so those are user errors; a ValueError from a library is not."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith("diary_lightning")


def is_user_error(err: BaseException) -> bool:
    if isinstance(err, (UserError, FileNotFoundError, NotADirectoryError)):
        return True
    return type(err) is ValueError and _raised_in_package(err)


def report(err: BaseException) -> NoReturn:
    print(f"error: {err}", file=sys.stderr)
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

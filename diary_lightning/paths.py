"""Model and tokenizer locations: a local folder or a Hugging Face Hub id, told apart before transformers is asked.

transformers takes any name that is not an existing folder for a Hub id, so a typo in a local path, or a
relative path used from another working directory, ends offline in a connection error about
huggingface.co. Here such a name is reported as the missing path it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# A Hub id is "name" or "owner/name": letters, digits, '-', '_', '.'; never two slashes, never a leading
# dot or slash, never a backslash.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def looks_local(name: str) -> bool:
    """A name that can only be a path: absolute, ``~``, ``./`` or ``../``, a backslash, or more than one ``/``."""
    return not _HUB_ID.fullmatch(name)


def absolute_if_local(name: str) -> str:
    """An existing local folder as an absolute path (so that what records it loads from any working
    directory); a Hub id unchanged."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def _missing(name: str, what: str, extra: str = "") -> FileNotFoundError:
    resolved = Path(name).expanduser()
    where = f" (resolved from the working directory {os.getcwd()} to {resolved.absolute()})" if not resolved.is_absolute() else ""
    return FileNotFoundError(f"{what}={name!r}: no such folder{where}{extra}")


def _under_a_local_folder(name: str) -> bool:
    # "runs/typo" could be a Hub id, but when ./runs exists it is meant as a path; asking the Hub would
    # only add, offline, a minute of retries before the same answer.
    parent = Path(name).expanduser().parent
    return str(parent) not in ("", ".") and parent.is_dir()


def check_local(name: str, what: str) -> None:
    """Stop on a name that can only be a local path and does not exist, before anything reaches for the Hub."""
    if (looks_local(name) or _under_a_local_folder(name)) and not Path(name).expanduser().is_dir():
        raise _missing(name, what)


def load_pretrained(load: Callable[[str], T], name: str, what: str) -> T:
    """``load(name)`` (a ``from_pretrained``), with a missing local folder named as such.

    A name that could be a Hub id (``runs/tiny-model`` could) is tried on the Hub; if that fails and no
    folder of that name exists here, the error says both.
    """
    check_local(name, what)
    try:
        return load(name)
    except OSError as err:
        if Path(name).expanduser().exists():
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _missing(name, what, f", and not found as a Hugging Face Hub id either ({first})") from None

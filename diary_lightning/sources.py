"""Input files to raw records: which files ``data.paths`` names, and each file decoded into records of its
format (AI Hub JSON, JSONL, JSON record lists, NIKL, plain-text chat logs), or a :class:`DataError` naming it."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diary_lightning.chatlog import ChatLogError, parse_chat_log
from diary_lightning.inputs import find_input_files, why_missing
from diary_lightning.records import DataError, Problem

FORMATS = ("auto", "aihub", "jsonl", "json", "nikl", "text", "synthesized")


def expand_paths(paths: str | Sequence[str], exclude: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Files named by ``paths``: files, directories (searched for .json/.jsonl) and globs; nothing under
    ``exclude``. What directories hold and is not read: :func:`diary_lightning.inputs.find_input_files`."""
    return existing_files(find_input_files(paths, exclude))


def existing_files(found: Any) -> list[Path]:
    """The files of ``found`` (:func:`diary_lightning.inputs.find_input_files`), or a DataError naming every
    entry of ``data.paths`` that names nothing."""
    if found.missing:
        raise DataError([Problem(entry, None, None, "missing file", why) for entry, why in found.missing],
                        "Check data.paths (files, directories or glob patterns).")
    return found.files


def aihub_origin(path: Path) -> str | None:
    for part in reversed(path.parts[:-1]):
        low = part.lower()
        if low.startswith("training") or low.endswith("_train"):
            return "train"
        if low.startswith("validation") or low.endswith(("_valid", "_validation", "_val")):
            return "val"
    return None


def _read_chat_log(path: Path, text: str) -> dict[str, Any]:
    """A plain-text chat log (``speaker: text`` lines, or a KakaoTalk export: :mod:`diary_lightning.chatlog`) as
    one JSONL-shaped record whose id is the file name without its suffix."""
    try:
        utterances = parse_chat_log(text)
    except ChatLogError as err:
        raise DataError([Problem(str(path), None, None, "bad line", str(err))]) from None
    return {"id": path.stem, "dialogue": [{"speaker": speaker, "text": said} for speaker, said in utterances]}


# A \uD800-\uDFFF escape decodes to a lone surrogate, which no UTF-8 writer downstream accepts.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _decode_problem(path: Path, err: UnicodeDecodeError, size: int) -> Problem:
    if err.reason == "unexpected end of data" and err.end == size:
        # The bytes stop inside a multibyte character: a cut-off copy or download, not another encoding.
        return Problem(str(path), None, None, "truncated file",
                       f"the file is truncated: it ends inside a multibyte character (byte offset {err.start} of "
                       f"{size}); copy or download it again")
    return Problem(str(path), None, None, "not utf-8",
                   f"not UTF-8 text (byte offset {err.start}: {err.reason}); re-save the file as UTF-8")


def _too_deep(path: Path, where: str = "") -> Problem:
    return Problem(str(path), None, None, "nested too deeply",
                   f"{where + ': ' if where else ''}the JSON is nested too deeply to read (arrays or objects "
                   f"inside each other more than about {sys.getrecursionlimit()} levels); no dialogue record is")


def load_file(path: Path, fmt: str) -> tuple[str, list[Any], bool]:
    """Decode one file into (format, raw records, may hold lone surrogates), or raise DataError naming the file."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError([_decode_problem(path, err, len(raw))]) from None
    except OSError as err:
        detail = why_missing(str(path)) if err.errno == errno.ELOOP else err.strerror or str(err)
        raise DataError([Problem(str(path), None, None, "unreadable file", detail)]) from None
    if not text.strip():
        raise DataError([Problem(str(path), None, None, "empty file", "the file is empty; remove it from data.paths")])
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".txt": "text"}.get(path.suffix.lower(), "json")
    if fmt == "text":
        return "text", [_read_chat_log(path, text)], surrogates
    if fmt in ("jsonl", "synthesized"):
        records = []
        # Records end at "\n" alone: U+2028, U+0085 and the other breaks str.splitlines() knows may stand raw
        # inside a JSON string. A "\r" before the "\n" is JSON whitespace.
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError([Problem(str(path), None, None, "malformed json",
                                         f"line {lineno}, column {err.colno}: {err.msg}")]) from None
            except RecursionError:
                raise DataError([_too_deep(path, f"line {lineno}")]) from None
        # synthesize's output names its target itself: a record with a diary and the teacher that wrote it.
        if fmt == "jsonl" and records and isinstance(records[0], dict) and {"diary", "teacher"} <= records[0].keys():
            fmt = "synthesized"
        return fmt, records, surrogates
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError([Problem(str(path), None, None, "malformed json",
                                 f"line {err.lineno}, column {err.colno} (character {err.pos}): {err.msg}; "
                                 "the file may be truncated or not JSON")]) from None
    except RecursionError:
        raise DataError([_too_deep(path)]) from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return "aihub", data["data"], surrogates
    if isinstance(data, list):
        if fmt == "json" and data and isinstance(data[0], dict) and isinstance(data[0].get("input"), dict):
            fmt = "nikl"
        return fmt, data, surrogates
    raise DataError([Problem(str(path), None, None, "unknown format",
                             f"top level is a {type(data).__name__}; expected AI Hub's {{'data': [...]}} "
                             "or a list of records (JSONL files need the .jsonl suffix or data.format: jsonl)")])

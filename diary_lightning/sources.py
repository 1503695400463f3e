"""Input files to raw records: which files ``data.paths`` names, and each file decoded into records of its
format (AI Hub JSON, JSONL, JSON record lists, NIKL, plain-text chat logs), or a :class:`DataError` naming it."""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diary_lightning.chatlog import ChatLogError, parse_chat_log
from diary_lightning.records import DataError, Problem

FORMATS = ("auto", "aihub", "jsonl", "json", "nikl", "text", "synthesized")


def expand_paths(paths: str | Sequence[str]) -> list[Path]:
    """Files named by ``paths``: files, directories (searched for .json/.jsonl) and globs."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    missing: list[Problem] = []
    for entry in paths:
        entry = str(entry)
        # An existing path is taken literally: AI Hub's folders are named like "[라벨]한국어대화요약_train",
        # which glob would read as a character class.
        if glob.has_magic(entry) and not os.path.exists(entry):
            matched = sorted(Path(p) for p in glob.glob(entry, recursive=True) if Path(p).is_file())
            if not matched:
                missing.append(Problem(entry, None, None, "missing file", "the pattern matches no file"))
            files.extend(matched)
        elif os.path.isdir(entry):
            found = sorted(p for p in Path(entry).rglob("*")
                           if p.suffix in (".json", ".jsonl") and not p.name.startswith(".") and p.is_file())
            if not found:
                missing.append(Problem(entry, None, None, "missing file", "the directory holds no .json or .jsonl file"))
            files.extend(found)
        elif os.path.isfile(entry):
            files.append(Path(entry))
        else:
            missing.append(Problem(entry, None, None, "missing file", "no such file or directory"))
    if missing:
        raise DataError(missing, "Check data.paths (files, directories or glob patterns).")
    return list(dict.fromkeys(files))


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


def load_file(path: Path, fmt: str) -> tuple[str, list[Any], bool]:
    """Decode one file into (format, raw records, may hold lone surrogates), or raise DataError naming the file."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError([Problem(str(path), None, None, "not utf-8",
                                 f"not UTF-8 text (byte offset {err.start}: {err.reason}); "
                                 "re-save the file as UTF-8")]) from None
    except OSError as err:
        raise DataError([Problem(str(path), None, None, "unreadable file", err.strerror or str(err))]) from None
    if not text.strip():
        raise DataError([Problem(str(path), None, None, "empty file", "the file is empty; remove it from data.paths")])
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".txt": "text"}.get(path.suffix, "json")
    if fmt == "text":
        return "text", [_read_chat_log(path, text)], surrogates
    if fmt in ("jsonl", "synthesized"):
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError([Problem(str(path), None, None, "malformed json",
                                         f"line {lineno}, column {err.colno}: {err.msg}")]) from None
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
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return "aihub", data["data"], surrogates
    if isinstance(data, list):
        if fmt == "json" and data and isinstance(data[0], dict) and isinstance(data[0].get("input"), dict):
            fmt = "nikl"
        return fmt, data, surrogates
    raise DataError([Problem(str(path), None, None, "unknown format",
                             f"top level is a {type(data).__name__}; expected AI Hub's {{'data': [...]}} "
                             "or a list of records (JSONL files need the .jsonl suffix or data.format: jsonl)")])

"""Input files to raw records: which files ``data.paths`` names, and each file decoded into records of its
format (AI Hub JSON, JSONL, JSON record lists, NIKL, plain-text chat logs), or a :class:`DataError` naming it."""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diary_lightning.data.chatlog import ChatLogError, export_partner, parse_chat_days
from diary_lightning.data.records import DataError, Problem

FORMATS = ("auto", "aihub", "jsonl", "json", "nikl", "text", "synthesized")


def expand_paths(paths: str | Sequence[str], exclude: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Files named by ``paths``: files, directories (searched for .json/.jsonl) and globs; nothing under
    ``exclude``. What directories hold and is not read: :func:`diary_lightning.data.sources.find_input_files`."""
    return existing_files(find_input_files(paths, exclude))


def existing_files(found: Any) -> list[Path]:
    """The files of ``found`` (:func:`diary_lightning.data.sources.find_input_files`), or a DataError naming every
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


def _read_chat_log(path: Path, text: str, split_days: bool = True) -> list[dict[str, Any]]:
    """A plain-text chat log (``speaker: text`` lines, or a KakaoTalk export: :mod:`diary_lightning.data.chatlog`) as
    JSONL-shaped records: one per day of a KakaoTalk export (id ``FILE_YYYY-MM-DD``, a diary is written per
    day), or with ``split_days`` off, or for a log without dates, one for the file (id: the file name without
    its suffix)."""
    try:
        days = parse_chat_days(text)
    except ChatLogError as err:
        raise DataError([Problem(str(path), None, None, "bad line", str(err))]) from None

    # The exporter of a 1:1 export: the one of its two speakers that its header does not name.
    speakers = list(dict.fromkeys(speaker for day in days for speaker, _ in day.utterances))
    partner = export_partner(text)
    exporter = next(s for s in speakers if s != partner) if len(speakers) == 2 and partner in speakers else None

    def record(record_id: str, utterances: list[tuple[str, str]]) -> dict[str, Any]:
        found = {"id": record_id, "dialogue": [{"speaker": speaker, "text": said} for speaker, said in utterances]}
        return found | ({"exporter": exporter} if exporter else {})

    if not split_days or len(days) <= 1 and (not days or days[0].date is None):
        return [record(path.stem, [u for day in days for u in day.utterances])]
    return [record(f"{path.stem}_{day.date}", day.utterances) for day in days]


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


def load_file(path: Path, fmt: str, split_days: bool = True) -> tuple[str, list[Any], bool]:
    """Decode one file into (format, raw records, may hold lone surrogates), or raise DataError naming the file.
    ``split_days``: a chat log's days become records of their own (:func:`_read_chat_log`)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError([_decode_problem(path, err, len(raw))]) from None
    except OSError as err:
        detail = why_missing(str(path)) if err.errno == errno.ELOOP else \
            f"unreadable file ({err.strerror or err}): give this user read access, or remove it from data.paths"
        raise DataError([Problem(str(path), None, None, "unreadable file", detail)]) from None
    if not text.strip():
        raise DataError([Problem(str(path), None, None, "empty file", "the file is empty; remove it from data.paths")])
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".txt": "text"}.get(path.suffix.lower(), "json")
    if fmt == "text":
        return "text", _read_chat_log(path, text, split_days), surrogates
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


# Which files ``data.paths`` names: files, directories and glob patterns, and what a directory holds that is
# not read (listed, never dropped in silence).
#
# Plain functions on paths: nothing here reads a file's content.

DATA_SUFFIXES = (".json", ".jsonl")
"""What a directory is searched for, in any letter case (AI Hub's own archives hold ``.JSON`` files)."""


@dataclass
class InputFiles:
    files: list[Path] = field(default_factory=list)
    passed_over: list[str] = field(default_factory=list)
    """``path: why`` for every entry of a directory that is not read: hidden, another suffix, the cache, a link
    back to a folder above it (a loop), a second path to a folder or file already read."""
    missing: list[tuple[str, str]] = field(default_factory=list)
    """``(entry, why)`` for each entry of ``paths`` that names nothing readable."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """``(folder, why)`` for each folder that could not be listed (no permission): an error, or with
    ``data.skip_invalid`` a warning and a count, never a silent loss of its dialogues."""


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def why_missing(entry: str) -> str:
    """Why ``entry`` names neither a file nor a directory, in the words a user can act on."""
    if os.path.islink(entry):
        try:
            os.stat(entry)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return "a symlink loop: its links lead back to themselves and never reach a file"
        return f"a broken symlink to {os.readlink(entry)!r}, which does not exist"
    if not os.path.isabs(os.path.expanduser(entry)):
        # A relative path in a config is resolved from where the command runs, not from the config's folder.
        return f"no such file or directory (resolved from the working directory {os.getcwd()})"
    return "no such file or directory"


class _DirectoryWalk:
    """Depth first in name order (the order files are read in fixes the order of the dialogues), following
    symlinked folders: a folder reached again, through a link back up the tree or a second link to it, is
    passed over and reported, so that a loop ends and nothing is read twice."""

    def __init__(self, found: InputFiles, exclude: Sequence[str]) -> None:
        self.found = found
        self.exclude = exclude
        self.folders: dict[tuple[int, int], Path] = {}
        self.real_files: dict[str, Path] = {}

    def file(self, path: Path) -> None:
        real = os.path.realpath(path)
        if real in self.real_files:
            self.found.passed_over.append(f"{path}: the same file as {self.real_files[real]}, read once")
            return
        self.real_files[real] = path
        self.found.files.append(path)

    def folder(self, path: Path, ancestors: dict[tuple[int, int], Path]) -> bool:
        """Walk ``path``; False when it was passed over."""
        stat = os.stat(path)
        key = (stat.st_dev, stat.st_ino)
        if key in ancestors:
            self.found.passed_over.append(f"{path}: a symlink loop back to {ancestors[key]}, not followed")
            return False
        if key in self.folders:
            self.found.passed_over.append(f"{path}: the same folder as {self.folders[key]}, read once")
            return False
        if self.exclude and _inside(os.path.realpath(path), self.exclude):
            self.found.passed_over.append(f"{path}: the tokenized cache (data.cache_dir), not data")
            return False
        self.folders[key] = path
        ancestors = {**ancestors, key: path}
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as err:
            self.found.passed_over.append(f"{path}: unreadable folder ({err.strerror or err})")
            self.found.unreadable.append((str(path), err.strerror or str(err)))
            return True
        for entry in entries:
            child = Path(entry.path)
            if entry.name.startswith("."):
                self.found.passed_over.append(f"{child}: hidden")
            elif not os.path.exists(child):
                self.found.passed_over.append(f"{child}: {why_missing(entry.path)}")
            elif entry.is_dir():
                self.folder(child, ancestors)
            elif not entry.is_file():
                self.found.passed_over.append(f"{child}: not a regular file")
            elif child.suffix.lower() in DATA_SUFFIXES:
                self.file(child)
            else:
                self.found.passed_over.append(f"{child}: not a .json or .jsonl file")
        return True


def find_input_files(paths: str | os.PathLike | Sequence[str | os.PathLike],
                     exclude: Sequence[str | os.PathLike] = ()) -> InputFiles:
    """The files ``paths`` names: a file is read whatever its suffix; a directory is searched for .json and
    .jsonl files; a glob pattern is expanded. Nothing under ``exclude`` (the cache) is read."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    roots = [os.path.realpath(p) for p in exclude]
    found = InputFiles()
    walk = _DirectoryWalk(found, roots)
    for entry in map(str, paths):
        # An existing path is taken literally: AI Hub's folders are named like "[라벨]한국어대화요약_train",
        # which glob would read as a character class.
        if glob.has_magic(entry) and not os.path.lexists(entry):
            matched = sorted(Path(p) for p in glob.glob(entry, recursive=True)
                             if Path(p).is_file() and not _inside(os.path.realpath(p), roots))
            if not matched:
                found.missing.append((entry, "the pattern matches no file"))
            for path in matched:
                walk.file(path)
        elif os.path.isdir(entry):
            before, seen = len(found.files), len(found.passed_over)
            if walk.folder(Path(entry), {}) and len(found.files) == before:
                passed = "; ".join(found.passed_over[seen:seen + 3])
                found.missing.append((entry, "the directory holds no .json or .jsonl file"
                                             + (f" (passed over: {passed})" if passed else "")))
        elif os.path.isfile(entry):
            walk.file(Path(entry))
        else:
            found.missing.append((entry, why_missing(entry)))
    return found

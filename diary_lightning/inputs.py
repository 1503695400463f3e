"""Which files ``data.paths`` names: files, directories and glob patterns, and what a directory holds that is
not read (listed, never dropped in silence).

Plain functions on paths: nothing here reads a file's content.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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

"""What a subcommand may write over: never what it reads, only what it wrote itself.

One rule for every subcommand that writes (fit, predict, synthesize, export, merge, preprocess), checked before
any work: an output may not be, contain, or lie inside any input (data files and folders, the checkpoint, the
adapter, the base model) or the run's checkpoint folder, compared as files (device and inode: a hard link is the
same file under another name). An output that already exists may only be replaced, repaired or resumed when the
same subcommand wrote it, proven by its mark: the marker file written into every output folder, and for a file
the hidden record beside it (:func:`claim`) naming the subcommand and the very file (device and inode), so that a
user's own file of the same shape, or one put where an output was, is never taken for it. An output that cannot
be a plain file or folder (a FIFO, a device, a name too long, a symlink loop, a trailing slash on a file name) is
refused with the path named. Without this, one mistyped flag (``--output`` naming the data, the checkpoint or the
adapter) destroys what the user gave.

Outputs written before files carried a mark are recognised by what only that subcommand wrote with them (each
``ours`` below) and claimed when next resumed; a file so recognised is never cut (its torn last line repaired),
since nothing proves that it is not the user's.

Plain Python: no Lightning.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from diary_lightning.errors import UserError
from diary_lightning.io.atomic import write_text

MARKER = ".diary_lightning-output"
"""Written into every output folder: the subcommand that wrote it, so that the next run may replace it."""


class OutputOverInputError(UserError, ValueError):
    """An output that would destroy an input or a file the subcommand did not write; names both paths."""


@dataclass(frozen=True)
class Output:
    """One path a subcommand writes: ``flag`` names it in messages; ``ours`` recognises a previous output of
    the same subcommand at that path that carries no mark (written before outputs were marked; a file claimed by
    the subcommand, and an empty file or folder, always may be replaced: nothing is lost)."""

    flag: str
    path: str | os.PathLike
    kind: str  # "file" or "folder"
    ours: Callable[[Path], bool]


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def _local(paths: str | os.PathLike | Iterable[str | os.PathLike] | None) -> list[str | os.PathLike]:
    """The paths of ``paths`` that exist here (a hub name such as ``org/model`` is no local input)."""
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [p for p in paths if p and os.path.lexists(os.path.expanduser(p))]


def _identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """The file at ``path`` (device and inode, as ``os.path.samefile`` compares), None when there is none."""
    try:
        found = os.stat(os.path.expanduser(path))
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino


def _relation(output: Path, input_: Path, same_file: bool = False) -> str | None:
    if output == input_ or same_file:
        return "is"
    if output in input_.parents:
        return "contains"
    if input_ in output.parents:
        return "lies inside"
    return None


def check_outputs(subcommand: str, outputs: Iterable[Output],
                  inputs: Mapping[str, str | os.PathLike | Iterable[str | os.PathLike] | None],
                  allowed_inside: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse, naming both paths, an output that is, contains or lies inside an input, or that would replace a
    file or folder ``subcommand`` did not write. ``inputs`` maps a description (``--ckpt_path``) to its paths;
    ``allowed_inside`` lists the outputs that may lie inside an input folder by design (fit's exported adapter
    in its checkpoint folder)."""
    allowed = {_real(p) for p in allowed_inside}
    real_inputs = [(label, p, _real(p), _identity(p)) for label, paths in inputs.items() for p in _local(paths)]
    for out in outputs:
        target = _real(out.path)
        identity = _identity(out.path)
        for label, given, real, its_identity in real_inputs:
            relation = _relation(target, real, identity is not None and identity == its_identity)
            if relation is None or (relation == "lies inside" and target in allowed):
                continue
            raise OutputOverInputError(
                f"{subcommand}: {out.flag} {out.path} {relation} {label} {given}: writing there would "
                f"{'replace' if relation == 'is' else 'destroy or mix with'} what it reads. Give {out.flag} a path "
                "outside every input.")
        _check_replaceable(subcommand, out, target)


def _check_replaceable(subcommand: str, out: Output, target: Path) -> None:
    found = _inspect(subcommand, out)
    if found is None:
        return
    if out.kind == "file":
        if stat.S_ISDIR(found.st_mode):
            raise OutputOverInputError(f"{subcommand}: {out.flag} {out.path} is a folder; give a file name")
        if not stat.S_ISREG(found.st_mode):
            raise OutputOverInputError(
                f"{subcommand}: {out.flag} {out.path} is {_kind(found.st_mode)}, not a regular file; it is left as it "
                f"is. Give {out.flag} the path of a file.")
        if found.st_size == 0 or claimed(os.path.expanduser(out.path), subcommand) or out.ours(target):
            return
    else:
        if not stat.S_ISDIR(found.st_mode):
            raise OutputOverInputError(f"{subcommand}: {out.flag} {out.path} is a file; give a folder name")
        if not any(target.iterdir()) or _marked(target, subcommand) or out.ours(target):
            return
    raise OutputOverInputError(
        f"{subcommand}: {out.flag} {out.path} already exists and was not written by {subcommand} (it carries no mark "
        f"of {subcommand}: a file of yours, or one written before outputs were marked); it is left as it is. Move it "
        f"away, or give {out.flag} another path.")


_PATH_PROBLEMS = {
    errno.ENAMETOOLONG: "the name is longer than the file system allows",
    errno.ELOOP: "a symlink loop (a link that leads back to itself)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EACCES: "permission denied on a folder of the path",
}


def _inspect(subcommand: str, out: Output) -> os.stat_result | None:
    """What is at ``out.path`` now (a symlink followed), None when nothing is; an output that cannot be written
    there (a trailing slash on a file's name, a name too long, a symlink loop, a file where a folder must be, a
    symlink to nothing) is refused naming the path."""
    given = os.fspath(out.path)
    if out.kind == "file" and given.endswith(("/", os.sep)):
        raise OutputOverInputError(f"{subcommand}: {out.flag} {given} ends with a slash, which names a folder; give "
                                   f"the file's name (such as {given.rstrip('/' + os.sep)}/diaries.jsonl)")
    path = os.path.expanduser(given)
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise OutputOverInputError(f"{subcommand}: {out.flag} {given} is a symlink to {os.readlink(path)}, which "
                                       "does not exist; writing would create a file somewhere else. Give "
                                       f"{out.flag} the path itself.") from None
        return None
    except OSError as err:
        problem = _PATH_PROBLEMS.get(err.errno or 0, err.strerror or str(err))
        raise OutputOverInputError(f"{subcommand}: {out.flag} {given}: {problem}; give {out.flag} another path") \
            from None


def _kind(mode: int) -> str:
    return ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "not a regular file")


# -- the mark of a file output ---------------------------------------------------------------------------------

def mark_path(path: str | os.PathLike) -> Path:
    """The hidden record beside a file output that says which subcommand wrote it (:func:`claim`)."""
    path = Path(path)
    return path.with_name(f".{path.name}.diary_lightning.json")


def _file_id(path: str | os.PathLike) -> list[int]:
    found = os.stat(path)
    return [found.st_dev, found.st_ino]


def _claim_record(path: str | os.PathLike) -> dict:
    try:
        record = json.loads(mark_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def claim(path: str | os.PathLike, subcommand: str, source: str | os.PathLike | None = None) -> None:
    """Record beside ``path`` that ``subcommand`` wrote the file there, by its device and inode: another file put
    under that name later is not taken for it. ``source``: the finished file about to be renamed to ``path``
    (the name then holds one of the two, whatever moment a kill comes at)."""
    ids = [_file_id(source if source is not None else path)]
    previous = _claim_record(path)
    if previous.get("written_by") == subcommand and os.path.lexists(path):
        ids += [file for file in previous.get("files", []) if file not in ids and file == _file_id(path)]
    write_text(mark_path(path), json.dumps({"written_by": subcommand, "files": ids}) + "\n")


def claimed(path: str | os.PathLike, subcommand: str) -> bool:
    """Whether ``subcommand`` wrote the very file now at ``path`` (:func:`claim`)."""
    record = _claim_record(path)
    try:
        return record.get("written_by") == subcommand and _file_id(path) in record.get("files", [])
    except OSError:
        return False


def unclaim(path: str | os.PathLike) -> None:
    """Drop the record of a file output that is gone (renamed to its final name)."""
    mark_path(path).unlink(missing_ok=True)


def mark(folder: str | os.PathLike, subcommand: str) -> None:
    """Say in ``folder`` (an output being written) that ``subcommand`` wrote it."""
    (Path(folder) / MARKER).write_text(json.dumps({"written_by": subcommand}) + "\n", encoding="utf-8")


def _marked(folder: Path, subcommand: str) -> bool:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")).get("written_by") == subcommand
    except (OSError, ValueError, AttributeError):
        return False


def first_record(path: Path) -> dict | None:
    """The first line of a JSONL file as an object, or None when it is not one (a JSON document, a checkpoint)."""
    try:
        with open(path, "rb") as handle:
            line = handle.readline(1 << 20)
        record = json.loads(line)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def jsonl_with(*keys: str) -> Callable[[Path], bool]:
    """Recognises a JSONL file whose first record has every one of ``keys``."""
    def ours(path: Path) -> bool:
        record = first_record(path)
        return record is not None and all(key in record for key in keys)
    return ours


def json_with(*keys: str) -> Callable[[Path], bool]:
    """Recognises a small JSON file (a record beside an output) holding every one of ``keys``."""
    def ours(path: Path) -> bool:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(value, dict) and all(key in value for key in keys)
    return ours


def folder_with(*names: str, without: tuple[str, ...] = ()) -> Callable[[Path], bool]:
    """Recognises a folder holding every file of ``names`` and none of ``without``."""
    def ours(path: Path) -> bool:
        return all((path / n).is_file() for n in names) and not any((path / n).exists() for n in without)
    return ours


# -- what each subcommand writes and reads ----------------------------------------------------------------

def never(path: Path) -> bool:
    """For outputs whose mark every version wrote: an unmarked file is never one of them."""
    return False


def beside(suffix: str, ours: Callable[[Path], bool]) -> Callable[[Path], bool]:
    """Recognises a file by the record written beside it (``OUTPUT.partial`` by ``OUTPUT.partial.json``)."""
    return lambda path: ours(path.with_name(path.name + suffix))


# predict's diaries: a predictions file written before files were marked is not recognised (nothing tells it from
# the user's own, or from synthesize's diaries of the same shape); its .partial always had its record beside it.
PREDICTIONS = never
PREDICTIONS_PARTIAL = beside(".json", json_with("weights"))
PREDICTIONS_RECORD = json_with("weights")
SYNTHESIZED = jsonl_with("id", "diary", "teacher")
SYNTHESIS_REJECTS = jsonl_with("id", "failed", "diary")
SYNTHESIS_MANIFEST = json_with("prompts")
EXPORTED = folder_with("diary_lightning.json", "adapter_config.json")
MERGED = folder_with("diary_lightning.json", "config.json", without=("adapter_config.json",))


def data_inputs(label: str, paths: str | os.PathLike | Iterable[str | os.PathLike] | None,
                exclude: Iterable[str | os.PathLike] = ()) -> dict[str, list[str | os.PathLike]]:
    """``paths`` as given (folders included: an output inside a data folder would be read as data next time)
    and the files they expand to (a glob pattern names no path by itself)."""
    from diary_lightning.data.records import DataError
    from diary_lightning.data.sources import expand_paths

    if not paths:
        return {}
    given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    try:
        files: list[str | os.PathLike] = list(expand_paths(given, exclude=list(exclude)))
    except (DataError, OSError):
        files = []  # reading them names the problem
    return {label: [*given, *files]}

"""What a subcommand may write over: never what it reads, only what it wrote itself.

One rule for every subcommand that writes (fit, predict, synthesize, export, merge, preprocess), checked before
any work: an output may not be, contain, or lie inside any input (data files and folders, the checkpoint, the
adapter, the base model) or the run's checkpoint folder. An output that already exists may only be replaced
when the same subcommand wrote it, recognised by its content (a predictions line, an exported adapter's
``diary_lightning.json``) or by the marker file written into every output folder. Without this, one mistyped
flag (``--output`` naming the data, the checkpoint or the adapter) destroys what the user gave.

Plain Python: no Lightning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from diary_lightning.errors import UserError

MARKER = ".diary_lightning-output"
"""Written into every output folder: the subcommand that wrote it, so that the next run may replace it."""


class OutputOverInputError(UserError, ValueError):
    """An output that would destroy an input or a file the subcommand did not write; names both paths."""


@dataclass(frozen=True)
class Output:
    """One path a subcommand writes: ``flag`` names it in messages; ``ours`` recognises a previous output of
    the same subcommand at that path (an empty file or folder always may be replaced: nothing is lost)."""

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


def _relation(output: Path, input_: Path) -> str | None:
    if output == input_:
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
    real_inputs = [(label, p, _real(p)) for label, paths in inputs.items() for p in _local(paths)]
    for out in outputs:
        target = _real(out.path)
        for label, given, real in real_inputs:
            relation = _relation(target, real)
            if relation is None or (relation == "lies inside" and target in allowed):
                continue
            raise OutputOverInputError(
                f"{subcommand}: {out.flag} {out.path} {relation} {label} {given}: writing there would "
                f"{'replace' if relation == 'is' else 'destroy or mix with'} what it reads. Give {out.flag} a path "
                "outside every input.")
        _check_replaceable(subcommand, out, target)


def _check_replaceable(subcommand: str, out: Output, target: Path) -> None:
    if not os.path.lexists(target):
        return
    if out.kind == "file":
        if target.is_dir():
            raise OutputOverInputError(f"{subcommand}: {out.flag} {out.path} is a folder; give a file name")
        if target.stat().st_size == 0 or out.ours(target):
            return
    else:
        if not target.is_dir():
            raise OutputOverInputError(f"{subcommand}: {out.flag} {out.path} is a file; give a folder name")
        if not any(target.iterdir()) or _marked(target, subcommand) or out.ours(target):
            return
    raise OutputOverInputError(
        f"{subcommand}: {out.flag} {out.path} already exists and was not written by {subcommand}; it is left as it "
        f"is. Move it away, or give {out.flag} another path.")


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

PREDICTIONS = jsonl_with("id", "diary")
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

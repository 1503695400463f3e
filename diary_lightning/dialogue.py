"""Dialogue records: reading AI Hub JSON, JSONL, JSON record lists and plain-text chat logs, cleaning and
merging turns.

Plain data and plain functions: nothing here imports Lightning or transformers.
Every problem with the input is collected with the file, the record index and
the dialogue ID, and raised as one :class:`DataError` before training starts.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diary_lightning.clean import DEFAULT_ANONYMIZATION, clean_text

FORMATS = ("auto", "aihub", "jsonl", "json", "nikl", "text")


@dataclass(frozen=True)
class Turn:
    """Consecutive utterances of one speaker, joined with a space."""

    speaker: str
    text: str


@dataclass(frozen=True)
class Dialogue:
    id: str
    turns: tuple[Turn, ...]
    summary: str | None = None
    topic: str | None = None
    source: str = ""
    """``file#index`` of the record, for messages."""
    origin: str | None = None
    """``"train"`` or ``"val"`` when the file sits in AI Hub's Training or Validation folder."""


@dataclass(frozen=True)
class Problem:
    path: str
    index: int | None
    record_id: str | None
    reason: str
    """Short key used to count problems of one kind (``"missing summary"``)."""
    detail: str = ""

    def __str__(self) -> str:
        where = self.path
        if self.index is not None:
            where += f", record {self.index}"
        if self.record_id:
            where += f" (id {self.record_id!r})"
        return f"{where}: {self.detail or self.reason}"


class DataError(ValueError):
    """Input data that cannot be used; lists every problem found."""

    def __init__(self, problems: Sequence[Problem], hint: str = "") -> None:
        self.problems = list(problems)
        lines = [str(p) for p in self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"... and {len(self.problems) - 20} more")
        message = f"{len(self.problems)} problem(s) in the input data:\n  " + "\n  ".join(lines)
        super().__init__(message + (f"\n{hint}" if hint else ""))


@dataclass(frozen=True)
class RecordFields:
    """Where a JSON or JSONL record keeps its parts; dotted paths reach into nested objects."""

    id: str = "id"
    dialogue: str = "dialogue"
    speaker: str = "speaker"
    text: str = "text"
    summary: str = "summary"


NIKL_FIELDS = RecordFields(dialogue="input.conversation", text="utterance", summary="output")
AIHUB_FIELDS = RecordFields(id="header.dialogueInfo.dialogueID", dialogue="body.dialogue",
                            speaker="participantID", text="utterance", summary="body.summary")


@dataclass
class ReadResult:
    dialogues: list[Dialogue]
    per_file: dict[str, int] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    turn_mismatches: list[str] = field(default_factory=list)
    """IDs of AI Hub dialogues whose turnIDs disagree with merging by speaker."""
    empty_dialogues: list[str] = field(default_factory=list)
    """IDs of dialogues with no text left after cleaning (skipped, counted as ``empty after cleaning``)."""
    empty_utterances: int = 0
    """Utterances dropped from their turn because nothing was left after cleaning."""


def merge_turns(utterances: Iterable[tuple[str, str]]) -> tuple[Turn, ...]:
    """Merge consecutive utterances of one speaker into one turn; empty texts are dropped."""
    runs: list[tuple[str, list[str]]] = []
    for speaker, text in utterances:
        if not text:
            continue
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(text)
        else:
            runs.append((speaker, [text]))
    return tuple(Turn(speaker, " ".join(texts)) for speaker, texts in runs)


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


def _origin(path: Path) -> str | None:
    for part in reversed(path.parts[:-1]):
        low = part.lower()
        if low.startswith("training") or low.endswith("_train"):
            return "train"
        if low.startswith("validation") or low.endswith(("_valid", "_validation", "_val")):
            return "val"
    return None


def _dig(record: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


def _read_chat_log(path: Path, text: str) -> dict[str, Any]:
    """A plain-text chat log, one ``speaker: text`` line per utterance, as one JSONL-shaped record whose id is
    the file name without its suffix. Blank lines are skipped; any other line must name its speaker."""
    utterances = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        speaker, colon, said = line.partition(":")
        if not colon or not speaker.strip():
            raise DataError([Problem(str(path), None, None, "bad line",
                                     f"line {lineno}: no 'speaker:' before the text ({line.strip()[:40]!r}); write "
                                     "one 'speaker: text' line per utterance and join messages that span lines")])
        if not said.strip():
            raise DataError([Problem(str(path), None, None, "empty utterance",
                                     f"line {lineno}: {speaker.strip()!r} says nothing after the colon")])
        utterances.append({"speaker": speaker.strip(), "text": said.strip()})
    return {"id": path.stem, "dialogue": utterances}


def record_fields(mapping: dict[str, str] | None) -> RecordFields:
    """``RecordFields`` from a config mapping, naming any key it does not know."""
    known = {f.name for f in dataclasses.fields(RecordFields)}
    unknown = sorted(set(mapping or {}) - known)
    if unknown:
        raise ValueError(f"data.fields: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(sorted(known))}")
    bad = {k: v for k, v in (mapping or {}).items() if not isinstance(v, str) or not v}
    if bad:
        raise ValueError(f"data.fields: {bad} must map to field names (dotted paths reach into nested objects)")
    return RecordFields(**(mapping or {}))


# A \uD800-\uDFFF escape decodes to a lone surrogate, which no UTF-8 writer downstream accepts.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _load_file(path: Path, fmt: str) -> tuple[str, list[Any], bool]:
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
    if fmt == "jsonl":
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError([Problem(str(path), None, None, "malformed json",
                                         f"line {lineno}, column {err.colno}: {err.msg}")]) from None
        return "jsonl", records, surrogates
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


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _RecordParser:
    def __init__(self, fields: RecordFields, require_summary: bool, anonymization: str) -> None:
        self.fields = fields
        self.require_summary = require_summary
        self.anonymization = anonymization
        self.check_surrogates = False
        """Set per file when its JSON holds surrogate escapes; most files do not, and skip the check."""

    def __call__(self, fmt: str, record: Any, path: Path, index: int) -> tuple[Dialogue | None, Problem | None, bool, int]:
        """Parse one record: (dialogue, problem, turns_disagree, empty utterances dropped).

        A dialogue with no text left after cleaning comes back as None with no problem."""

        def problem(reason: str, detail: str, record_id: str | None = None) -> tuple[None, Problem, bool, int]:
            return None, Problem(str(path), index, record_id, reason, detail), False, 0

        if not isinstance(record, dict):
            return problem("not an object", f"expected a JSON object, got {type(record).__name__}")
        if fmt == "aihub":
            fields = AIHUB_FIELDS
        else:
            # A chat log's records are built here, with the default names, whatever data.fields says.
            fields = NIKL_FIELDS if fmt == "nikl" else RecordFields() if fmt == "text" else self.fields
        record_id = _dig(record, fields.id)
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            record_id = str(record_id)
        if not isinstance(record_id, str) or not record_id.strip():
            return problem("missing id", f"no dialogue id (a string) at {fields.id!r}")
        if self.check_surrogates and _has_surrogate(record_id):
            return problem("bad text", "the dialogue id holds a lone surrogate (\\ud800-\\udfff), not text")
        utterances = _dig(record, fields.dialogue)
        if not isinstance(utterances, list) or not utterances:
            return problem("missing dialogue", f"no list of utterances at {fields.dialogue!r}", record_id)
        pairs, turn_ids = [], []
        for u_index, utterance in enumerate(utterances):
            if not isinstance(utterance, dict):
                return problem("bad utterance", f"utterance {u_index} is a {type(utterance).__name__}, not an object", record_id)
            speaker, text = utterance.get(fields.speaker), utterance.get(fields.text)
            if isinstance(speaker, int) and not isinstance(speaker, bool):
                speaker = str(speaker)
            if not isinstance(speaker, str) or not speaker.strip():
                return problem("bad utterance", f"utterance {u_index} has no speaker at {fields.speaker!r}", record_id)
            if not isinstance(text, str):
                return problem("bad utterance", f"utterance {u_index} text at {fields.text!r} is "
                                                f"{'null' if text is None else type(text).__name__}, not a string", record_id)
            if self.check_surrogates and (_has_surrogate(text) or _has_surrogate(speaker)):
                return problem("bad text", f"utterance {u_index} holds a lone surrogate (\\ud800-\\udfff), not text", record_id)
            pairs.append((speaker.strip(), clean_text(text, self.anonymization)))
            turn_ids.append(utterance.get("turnID"))
        summary = _dig(record, fields.summary)
        if summary is not None and not isinstance(summary, str):
            return problem("missing summary", f"summary at {fields.summary!r} is {type(summary).__name__}, not a string", record_id)
        if summary and self.check_surrogates and _has_surrogate(summary):
            return problem("bad text", "the summary holds a lone surrogate (\\ud800-\\udfff), not text", record_id)
        summary = clean_text(summary, self.anonymization) if summary else None
        if self.require_summary and not summary:
            return problem("missing summary", f"no summary at {fields.summary!r}", record_id)
        empty = sum(1 for _, text in pairs if not text)
        turns = merge_turns(pairs)
        if not turns:
            return Dialogue(record_id, (), summary, source=f"{path}#{index}"), None, False, empty
        topic = _dig(record, "header.dialogueInfo.topic") if fmt == "aihub" else record.get("topic")
        disagree = fmt == "aihub" and all(turn_ids) and _turns_disagree([s for s, _ in pairs], turn_ids)
        dialogue = Dialogue(record_id, turns, summary, topic if isinstance(topic, str) else None,
                            f"{path}#{index}", _origin(path))
        return dialogue, None, disagree, empty


def parse_record(record: Any, *, fields: RecordFields | None = None, anonymization: str = DEFAULT_ANONYMIZATION,
                 source: str = "<dialogue>", index: int = 0) -> Dialogue:
    """One JSONL-shaped record (``{"id", "dialogue": [{"speaker", "text"}, ...]}``) cleaned and merged exactly as
    predict reads it from a file; a bad record raises :class:`DataError` naming ``source`` and ``index``."""
    dialogue, problem, _, _ = _RecordParser(fields or RecordFields(), False, anonymization)("jsonl", record, Path(source), index)
    if problem is None and not dialogue.turns:
        problem = Problem(source, index, dialogue.id, "empty after cleaning", "no text is left after cleaning")
    if problem is not None:
        raise DataError([problem])
    return dialogue


def _turns_disagree(speakers: list[str], turn_ids: list[Any]) -> bool:
    """True when speaker changes and turnID changes fall at different utterances."""
    speaker_breaks = [a != b for a, b in zip(speakers, speakers[1:])]
    turn_breaks = [a != b for a, b in zip(turn_ids, turn_ids[1:])]
    return speaker_breaks != turn_breaks


def read_dialogues(
    paths: str | Sequence[str],
    *,
    fmt: str = "auto",
    fields: RecordFields | None = None,
    require_summary: bool = True,
    anonymization: str = DEFAULT_ANONYMIZATION,
    topics: Sequence[str] | None = None,
    skip_invalid: bool = False,
) -> ReadResult:
    """Read, clean and validate every dialogue under ``paths``.

    Problems in single records are raised together as one :class:`DataError`, or
    skipped and counted when ``skip_invalid`` is set. A repeated dialogue ID is a
    problem of the second record (an error naming both; with ``skip_invalid`` the
    second is skipped and counted). Utterances with no text after cleaning are
    dropped from their turn; a dialogue left with none is skipped and reported
    (``empty_dialogues``), not an error. A dialogue with one speaker is fine.
    Problems with a whole file (missing, not UTF-8, empty, malformed JSON,
    unknown layout) are always raised.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    parse = _RecordParser(fields or RecordFields(), require_summary, anonymization)
    wanted = set(topics) if topics else None
    result = ReadResult(dialogues=[])
    seen: dict[str, str] = {}  # dialogue id -> where it was first read
    for path in expand_paths(paths):
        file_fmt, records, parse.check_surrogates = _load_file(path, fmt)
        count = 0
        for index, record in enumerate(records):
            dialogue, problem, disagree, empty = parse(file_fmt, record, path, index)
            if problem is None and dialogue.id in seen:
                problem = Problem(str(path), index, dialogue.id, "duplicate id",
                                  f"repeats the dialogue id of {seen[dialogue.id]}; the first one is kept")
            if problem is not None:
                result.problems.append(problem)
                result.skipped[problem.reason] += 1
                continue
            seen[dialogue.id] = f"{path}, record {index}"
            result.empty_utterances += empty
            if not dialogue.turns:
                # Not damage: the anonymization policy (``drop``) or blank utterances can empty a dialogue.
                result.empty_dialogues.append(dialogue.id)
                result.skipped["empty after cleaning"] += 1
                continue
            if wanted is not None and dialogue.topic not in wanted:
                result.skipped["topic not selected"] += 1
                continue
            if disagree:
                result.turn_mismatches.append(dialogue.id)
            result.dialogues.append(dialogue)
            count += 1
        result.per_file[str(path)] = count
    if result.problems and not skip_invalid:
        raise DataError(result.problems, "Fix these records, or set data.skip_invalid: true to skip them.")
    return result

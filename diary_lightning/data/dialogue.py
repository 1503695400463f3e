"""Dialogue records: reading AI Hub JSON, JSONL, JSON record lists and plain-text chat logs, cleaning and
merging turns.

Plain data and plain functions: nothing here imports Lightning or transformers.
Every problem with the input is collected with the file, the record index and
the dialogue ID, and raised as one :class:`DataError` before training starts.
The data types live in ``records.py`` and the file formats in ``sources.py``; their public names are
imported from here as well.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diary_lightning.data.clean import DEFAULT_ANONYMIZATION, clean_text
from diary_lightning.data.records import (
    AIHUB_FIELDS,
    NIKL_FIELDS,
    SYNTHESIZED_FIELDS,
    DataError,
    Dialogue,
    Problem,
    ReadResult,
    RecordFields,
    Turn,
    merge_turns,
    record_fields,
)
from diary_lightning.data.sources import (
    FORMATS,
    aihub_origin,
    existing_files,
    expand_paths,
    find_input_files,
    load_file,
)

__all__ = ["FORMATS", "DataError", "Dialogue", "Problem", "ReadResult", "RecordFields", "Turn", "expand_paths",
           "merge_turns", "parse_record", "read_dialogues", "record_fields"]


def _dig(record: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


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

    @staticmethod
    @functools.lru_cache(maxsize=10_000)
    def clean_speaker(speaker: str) -> str:
        """A speaker is a name on one line of the prompt: a line break in it could start a forged turn. The few
        names of a corpus (P01, P02, ...) are cleaned once each, not once per utterance."""
        return clean_text(speaker, "keep")

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
            fields = {"nikl": NIKL_FIELDS, "text": RecordFields(), "synthesized": SYNTHESIZED_FIELDS}.get(fmt, self.fields)
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
            if isinstance(speaker, str):
                speaker = self.clean_speaker(speaker)
            if not isinstance(speaker, str) or not speaker:
                return problem("bad utterance", f"utterance {u_index} has no speaker at {fields.speaker!r}", record_id)
            if not isinstance(text, str):
                return problem("bad utterance", f"utterance {u_index} text at {fields.text!r} is "
                                                f"{'null' if text is None else type(text).__name__}, not a string", record_id)
            if self.check_surrogates and (_has_surrogate(text) or _has_surrogate(speaker)):
                return problem("bad text", f"utterance {u_index} holds a lone surrogate (\\ud800-\\udfff), not text", record_id)
            pairs.append((speaker, clean_text(text, self.anonymization)))
            turn_ids.append(utterance.get("turnID"))
        summary = _dig(record, fields.summary)
        if summary is not None and not isinstance(summary, str):
            return problem("missing summary", f"summary at {fields.summary!r} is {type(summary).__name__}, not a string", record_id)
        if summary and self.check_surrogates and _has_surrogate(summary):
            return problem("bad text", "the summary holds a lone surrogate (\\ud800-\\udfff), not text", record_id)
        cleaned = clean_text(summary, self.anonymization) if summary else None
        if summary and not cleaned and self.require_summary:
            return problem("empty after cleaning", f"the summary at {fields.summary!r} has no text left after cleaning "
                                                   f"(it holds only invisible characters or whitespace: {summary[:20]!r})",
                           record_id)
        summary = cleaned
        if self.require_summary and not summary:
            return problem("missing summary", f"no summary at {fields.summary!r}", record_id)
        empty = sum(1 for _, text in pairs if not text)
        turns = merge_turns(pairs)
        if not turns:
            return Dialogue(record_id, (), summary, source=f"{path}#{index}"), None, False, empty
        topic = _dig(record, "header.dialogueInfo.topic") if fmt == "aihub" else record.get("topic")
        disagree = fmt == "aihub" and all(turn_ids) and _turns_disagree([s for s, _ in pairs], turn_ids)
        writer = None
        if fmt == "synthesized":
            # The diary was written as this speaker: training must mark the same one 글쓴이, whatever
            # data.writer says now.
            writer = record.get("writer")
            if not isinstance(writer, str) or not writer.strip():
                return problem("missing writer", "a synthesized record names its writer in 'writer' (a speaker)",
                               record_id)
            writer = self.clean_speaker(writer)
            if all(t.speaker != writer for t in turns):
                return problem("writer does not speak", f"the record's writer {writer!r} does not speak in its "
                                                        "dialogue", record_id)
        exporter = record.get("exporter") if fmt == "text" else None
        dialogue = Dialogue(record_id, turns, summary, topic if isinstance(topic, str) else None,
                            f"{path}#{index}", aihub_origin(path), writer=writer,
                            exporter=self.clean_speaker(exporter) if isinstance(exporter, str) else None)
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


READ_PROGRESS_DELAY = 2.0
"""Seconds of reading before the progress bar shows: a chat or the bundled sample reads in less, AI Hub in ~25 s."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # load_file names the problem
        return 0


def _read_progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Reading dialogues", unit="B", unit_scale=True,
                delay=READ_PROGRESS_DELAY, dynamic_ncols=True, disable=not enabled)


def read_dialogues(
    paths: str | Sequence[str],
    *,
    fmt: str = "auto",
    fields: RecordFields | None = None,
    require_summary: bool = True,
    anonymization: str = DEFAULT_ANONYMIZATION,
    topics: Sequence[str] | None = None,
    skip_invalid: bool = False,
    exclude: Sequence[str | os.PathLike] = (),
    progress: bool = True,
    split_days: bool = True,
) -> ReadResult:
    """Read, clean and validate every dialogue under ``paths``.

    Problems in single records are raised together as one :class:`DataError`, or
    skipped and counted when ``skip_invalid`` is set. A repeated dialogue ID is a
    problem of the second record (an error naming both; with ``skip_invalid`` the
    second is skipped and counted). Utterances with no text after cleaning are
    dropped from their turn; a dialogue left with none is skipped and reported
    (``empty_dialogues``), not an error. A dialogue with one speaker is fine.
    Problems with a whole file (missing, not UTF-8, empty, malformed JSON,
    unknown layout) are always raised. Nothing under ``exclude`` (the cache folder) is read. A read that takes
    over :data:`READ_PROGRESS_DELAY` seconds shows a progress bar unless ``progress`` is False. A chat log
    (KakaoTalk export) gives one dialogue per day, or with ``split_days`` off one per file.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    parse = _RecordParser(fields or RecordFields(), require_summary, anonymization)
    wanted = set(topics) if topics else None
    result = ReadResult(dialogues=[])
    seen: dict[str, str] = {}  # dialogue id -> where it was first read
    found = find_input_files(paths, exclude)
    files = existing_files(found)
    result.passed_over = found.passed_over
    # An unreadable folder or file is one problem as a damaged record is: an error, or skipped and counted.
    for folder, why in found.unreadable:
        result.problems.append(Problem(folder, None, None, "unreadable folder", f"unreadable folder ({why}): its files cannot be listed; give this user access, or remove it from data.paths"))
        result.skipped["unreadable folder"] += 1
    sizes = [_size(path) for path in files]
    with _read_progress(sum(sizes), progress) as bar:
        for path, size in zip(files, sizes):
            try:
                file_fmt, records, parse.check_surrogates = load_file(path, fmt, split_days)
            except DataError as err:
                if [p.reason for p in err.problems] != ["unreadable file"]:
                    raise
                result.problems.extend(err.problems)
                result.skipped["unreadable file"] += 1
                continue
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
            bar.update(size)
    if result.problems and not skip_invalid:
        raise DataError(result.problems, "Fix these records, or set data.skip_invalid: true to skip them.")
    return result

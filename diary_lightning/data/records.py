"""The plain data of dialogues: a turn, a dialogue, a problem with the input and the error that lists them,
where a record keeps its parts, and what reading found. No I/O here."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from diary_lightning.errors import UserError


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
    writer: str | None = None
    """The speaker id of the person whose diary it is (set by :func:`diary_lightning.data.roles.assign_writers`, or
    read from a synthesized record, whose diary was written as that speaker)."""
    exporter: str | None = None
    """Who exported the chat log this dialogue comes from, where its header says (a KakaoTalk 1:1 export names
    the partner): the ``exporter`` writer rule chooses them."""


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


class DataError(UserError, ValueError):
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
# synthesize's output: the reference summary stays beside the diary, and the diary is what to train on.
SYNTHESIZED_FIELDS = RecordFields(summary="diary")
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
    writer_chosen_by: dict[str, str] = field(default_factory=dict)
    """Dialogue id -> the entry of the writer setting that chose its writer, once writers are assigned."""
    passed_over: list[str] = field(default_factory=list)
    """``path: why`` for what the directories in ``paths`` hold and was not read."""


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

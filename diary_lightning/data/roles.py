"""Whose diary: the writer of each dialogue and the labels the prompt shows for every speaker.

Every dialogue has one writer, the person whose diary it is. Which speaker that is depends on the input,
not on the model: a name the user gives (``민지``), a role the data already has (``Human`` in the service's
chats), or, for corpora with no user (AI Hub's and NIKL's two to five people), a rule such as the first
speaker. In the prompt the writer always appears as :data:`WRITER_LABEL`, the bot as :data:`BOT_LABEL` and
everyone else as ``상대1``, ``상대2``..., whatever names the input used: the model learns one role, not names.

Plain data and plain functions: nothing here imports torch, Lightning or transformers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diary_lightning.data.records import DataError, Dialogue, Problem, ReadResult, Turn

log = logging.getLogger(__name__)

WRITER_LABEL = "글쓴이"
"""The writer's label in every prompt, whatever name the input used. Not a word a diary uses of its writer,
so a generated diary that contains it is caught by the style checks."""
BOT_LABEL = "챗봇"
"""The diary service's bot."""
OTHER_LABEL = "상대"
"""People the writer talked with appear as ``상대1``, ``상대2``... in order of first appearance."""

WRITER_RULES = {
    "exporter": "who exported the chat (a KakaoTalk 1:1 export's header names the other speaker)",
    "first": "the first speaker who is not a bot",
    "most": "the speaker, not a bot, who wrote the most characters",
}
"""Rules for corpora with no user; any other entry of a writer setting is a speaker name."""
DEFAULT_WRITER = ("Human", "exporter", "first")
"""The service's own chats name their user ``Human``; a KakaoTalk 1:1 export is its exporter's, every day of it; a
corpus with no user falls back to its first speaker."""
DEFAULT_BOTS = ("AI", "Assistant", "Bot", "Chatbot", "챗봇")
"""Speaker names taken for the bot (compared without regard to case)."""


@dataclass(frozen=True)
class LabelScheme:
    """The labels a model was trained with; saved beside the checkpoint and the adapter, like the template."""

    writer: str = WRITER_LABEL
    bot: str = BOT_LABEL
    other: str = OTHER_LABEL
    """Prefix of the others' labels: ``상대1``, ``상대2``..."""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LabelScheme:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def other_labels(count: int, prefix: str = OTHER_LABEL) -> list[str]:
    """``count`` distinct labels for the people, not the bot, the writer talked with."""
    return [f"{prefix}{i}" for i in range(1, count + 1)]


def writer_setting(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A writer setting as a tuple of entries (None: :data:`DEFAULT_WRITER`), or ValueError naming it."""
    if value is None:
        return DEFAULT_WRITER
    entries = (value,) if isinstance(value, str) else tuple(value)
    bad = [e for e in entries if not isinstance(e, str) or not e.strip()]
    if not entries or bad:
        raise ValueError(f"data.writer={value!r}: give a speaker name (민지, Human, P02), a rule "
                         f"({', '.join(WRITER_RULES)}) or a list of them, tried in order")
    return tuple(e.strip() for e in entries)


def bot_setting(value: Sequence[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_BOTS
    return (value,) if isinstance(value, str) else tuple(value)


@functools.lru_cache(maxsize=64)
def _casefolded(bots: tuple[str, ...]) -> frozenset[str]:
    return frozenset(b.casefold() for b in bots)


def is_bot(speaker: str, bots: Sequence[str] = DEFAULT_BOTS) -> bool:
    # Asked for every turn of every dialogue (millions on AI Hub): the bot names are case-folded once.
    return speaker.casefold() in _casefolded(tuple(bots))


def _apply(entry: str, dialogue: Dialogue, bots: Sequence[str]) -> str | None:
    turns = dialogue.turns
    if entry not in WRITER_RULES:  # a speaker name
        return entry if any(t.speaker == entry for t in turns) else None
    if entry == "exporter":
        return dialogue.exporter if any(t.speaker == dialogue.exporter for t in turns) else None
    people = [t for t in turns if not is_bot(t.speaker, bots)]
    if entry == "first":
        return people[0].speaker if people else None
    written: Counter = Counter()  # "most"
    for turn in people:
        written[turn.speaker] += len(turn.text)
    # Counter keeps first-seen order among equals: a tie goes to who spoke first.
    return written.most_common(1)[0][0] if written else None


def choose_writer(dialogue: Dialogue, writer: str | Sequence[str] | None = None,
                  bots: Sequence[str] = DEFAULT_BOTS) -> tuple[str, str]:
    """The writer's speaker id in ``dialogue`` and the entry of ``writer`` that chose it.

    ``writer`` entries are tried in order: a rule of :data:`WRITER_RULES` or a speaker name, which chooses
    only when that speaker speaks. When none chooses, :class:`DataError` names the dialogue.
    """
    return _choose(dialogue, writer_setting(writer), bots)


def _choose(dialogue: Dialogue, entries: tuple[str, ...], bots: Sequence[str]) -> tuple[str, str]:
    """:func:`choose_writer` with the setting already normalised (once per read, not once per dialogue)."""
    for entry in entries:
        chosen = _apply(entry, dialogue, bots)
        if chosen is not None:
            return chosen, entry
    raise DataError([_writer_problem(dialogue, entries, bots)],
                    "Set data.writer to the name of the person whose diary it is, or end the list with a rule "
                    f"({', '.join(WRITER_RULES)}).")


def _writer_problem(dialogue: Dialogue, entries: Sequence[str], bots: Sequence[str]) -> Problem:
    path, _, index = dialogue.source.rpartition("#")
    speakers = ", ".join(dict.fromkeys(t.speaker for t in dialogue.turns))
    if all(e in WRITER_RULES for e in entries):
        detail = f"no speaker other than a bot ({', '.join(bots)}) to be the writer; the speakers are {speakers}"
    else:
        names = ", ".join(e for e in entries if e not in WRITER_RULES)
        detail = f"the writer ({names}) does not speak in this dialogue; the speakers are {speakers}"
    return Problem(path or dialogue.source, int(index) if index.isdigit() else None, dialogue.id,
                   "writer does not speak", detail)


RECORD_WRITER = "the record's writer"
"""How a dialogue whose record names its writer (synthesize's output) had it chosen: no setting overrides it."""


def assign_writers(dialogues: Sequence[Dialogue], writer: str | Sequence[str] | None = None,
                   bots: Sequence[str] = DEFAULT_BOTS, skip_invalid: bool = False,
                   ) -> tuple[list[Dialogue], dict[str, str], list[Problem]]:
    """``dialogues`` with their ``writer`` set, the entry of ``writer`` that chose each (by dialogue id), and
    the dialogues skipped for having no writer (only with ``skip_invalid``; otherwise one DataError lists them all)."""
    entries = writer_setting(writer)
    chosen: list[Dialogue] = []
    chosen_by: dict[str, str] = {}
    problems: list[Problem] = []
    for dialogue in dialogues:
        if dialogue.writer is not None:
            chosen_by[dialogue.id] = RECORD_WRITER
            chosen.append(dialogue)
            continue
        try:
            speaker, entry = _choose(dialogue, entries, bots)
        except DataError as err:
            problems.extend(err.problems)
            continue
        chosen_by[dialogue.id] = entry
        chosen.append(dataclasses.replace(dialogue, writer=speaker))
    warn_about_writers_changing_by_day(chosen)
    if problems and not skip_invalid:
        raise DataError(problems, "Set data.writer to the name of the person whose diary it is, end the list with "
                                  f"a rule ({', '.join(WRITER_RULES)}), or set data.skip_invalid: true to skip them.")
    return chosen, chosen_by, problems


_DAY_ID = re.compile(r"(?P<stem>.+)_\d{4}-\d{2}-\d{2}")


def warn_about_writers_changing_by_day(dialogues: Sequence[Dialogue]) -> dict[str, dict[str, str]]:
    """Warn, per chat log, when its days (ids ``FILE_YYYY-MM-DD``) got different writers: one person's chat
    would become several people's diaries. Returns ``{file: {day id: writer}}`` for each such log."""
    days: dict[str, dict[str, str]] = {}
    for dialogue in dialogues:
        path = dialogue.source.rpartition("#")[0] or dialogue.source
        day = _DAY_ID.fullmatch(dialogue.id)
        if day and dialogue.writer is not None and Path(path).stem == day.group("stem"):
            days.setdefault(path, {})[dialogue.id] = dialogue.writer
    changing = {path: writers for path, writers in days.items() if len(set(writers.values())) > 1}
    for path, writers in changing.items():
        log.warning("%s: the writer changes from day to day (%s): each day's diary is another person's. Give "
                    "--data.writer NAME to write every day as one person.", path,
                    ", ".join(f"{day}: {writer}" for day, writer in list(writers.items())[:6]))
    return changing


def count_rules(dialogues: Sequence[Dialogue], chosen_by: Mapping[str, str], entries: Sequence[str]) -> dict[str, int]:
    """How many of ``dialogues`` had their writer chosen by each entry (every entry listed, in order), and by
    their own record (:data:`RECORD_WRITER`) when any was."""
    counts = Counter(chosen_by[d.id] for d in dialogues if d.id in chosen_by)
    return {entry: counts[entry] for entry in entries} | ({RECORD_WRITER: counts[RECORD_WRITER]}
                                                         if counts[RECORD_WRITER] else {})


def role_labels(speakers_in_order: Sequence[str], writer: str, bots: Sequence[str] = DEFAULT_BOTS,
                scheme: LabelScheme = LabelScheme()) -> dict[str, str]:
    """Speaker id -> prompt label: the writer's label, the bot's, and ``상대1``, ``상대2``... for the others in
    order of first appearance (repeats in ``speakers_in_order`` are fine)."""
    speaker_labels = {writer: scheme.writer}
    people = [s for s in dict.fromkeys(speakers_in_order) if s != writer and not is_bot(s, bots)]
    speaker_labels.update(zip(people, other_labels(len(people), scheme.other)))
    speaker_labels.update({s: scheme.bot for s in speakers_in_order if s != writer and is_bot(s, bots)})
    return speaker_labels


def label_turns(turns: Sequence[Turn], speaker_labels: Mapping[str, str]) -> tuple[Turn, ...]:
    """``turns`` with each speaker replaced by its label (speakers without one keep their id); two turns that
    end up under one label (two bots) stay two turns, as the chat had them."""
    return tuple(Turn(speaker_labels.get(t.speaker, t.speaker), t.text) for t in turns)


def prompt_turns(turns: Sequence[Turn], writer: str, bots: Sequence[str] = DEFAULT_BOTS,
                 scheme: LabelScheme | None = LabelScheme(), fixed_labels: Mapping[str, str] | None = None,
                 ) -> tuple[Turn, ...]:
    """The turns as the prompt shows them: labelled by role under ``scheme``, or, for a model trained before
    label schemes (``scheme`` None), by the fixed ``speaker id -> label`` map it was trained with."""
    if scheme is None:
        return label_turns(turns, fixed_labels or {})
    return label_turns(turns, role_labels([t.speaker for t in turns], writer, bots, scheme))


def with_writers(result: ReadResult, writer: Sequence[str], bots: Sequence[str], skip_invalid: bool) -> ReadResult:
    """A copy of ``result`` with each dialogue's writer chosen (``writer_chosen_by``: the entry that chose it); a
    dialogue with none is a problem, counted as skipped (:func:`assign_writers`)."""
    dialogues, chosen_by, problems = assign_writers(result.dialogues, writer, bots, skip_invalid)
    skipped = Counter(result.skipped)
    skipped.update(problem.reason for problem in problems)
    return dataclasses.replace(result, dialogues=dialogues, writer_chosen_by=chosen_by,
                               problems=[*result.problems, *problems], skipped=skipped)

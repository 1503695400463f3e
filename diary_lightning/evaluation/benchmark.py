"""The chat-to-diary benchmark shipped in ``resources/benchmark``: its items, read and checked, and the matching
rules its facts and traps are scored by.

Every ``*.jsonl`` file of the folder holds items, one JSON object a line. A chat item is one day's chat
(``setting``: ``bot``, ``kakao_1on1`` or ``kakao_group``) with the diary its ``writer`` would write (``reference``),
the ``facts`` a good diary of that day holds and the ``traps`` a careless one falls into. An export item
(``setting``: ``kakao_export``) is a raw KakaoTalk export of 2 to 4 days (``file``, under the folder), read with the
project's own chat reader (what ``predict`` reads), with a reference, facts and traps per day. Each day of an
export becomes one :class:`BenchmarkItem`, with the id ``predict`` gives that day (``FILE-STEM_YYYY-MM-DD``).

The matching rules (docs/benchmark.md): text is compared with all whitespace removed; a key ``a|b`` matches when
any alternative is a substring; a diary is split into sentences at ``.``, ``!`` or ``?`` followed by space, and at
line breaks. A fact is recalled when one sentence holds all its keys; a trap is fallen into when one sentence
holds all its keys and none of its ``unless``.

Plain Python: nothing here imports torch, Lightning or transformers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from diary_lightning.data.records import DataError, Problem

BENCHMARK_VERSION = "1.1"
"""The benchmark's version: cite it with a result (docs/benchmark.md). A change of any item is a new version;
:func:`content_hash` tells two copies of one version apart."""

SPLITS = ("dev", "test")
CHAT_SETTINGS = ("bot", "kakao_1on1", "kakao_group")
EXPORT_SETTING = "kakao_export"
SETTINGS = (*CHAT_SETTINGS, EXPORT_SETTING)
TOPICS = ("work", "school", "health", "money", "dating", "family", "hobby", "travel")
TRAP_KINDS = ("wrong_person", "suggestion_as_done", "wrong_number", "invented", "negation_flip")

TURNS = (6, 60)
FACTS = (3, 6)
TRAPS = (2, 4)
EXPORT_DAYS = (2, 4)

_CHAT_KEYS = {"id", "split", "setting", "topic", "dialogue", "writer", "reference", "facts", "traps"}
_EXPORT_KEYS = {"id", "split", "setting", "format", "chat", "topic", "file", "writer", "days"}
_DAY_KEYS = {"date", "reference", "facts", "traps"}
_FACT_KEYS = {"who", "text", "keys", "who_words"}
_TRAP_KEYS = {"kind", "claim", "keys", "unless"}


@dataclass(frozen=True)
class Fact:
    """Something a good diary of the day holds: ``keys`` all in one sentence recall it."""

    who: str
    """Who did, said or felt it: the writer, another speaker, or a third person."""
    text: str
    keys: tuple[str, ...]
    who_words: tuple[str, ...] = ()
    """How a diary names ``who`` when it is not the writer; a sentence recalling the fact names one of them."""


@dataclass(frozen=True)
class Trap:
    """A false claim a careless diary makes: one sentence with all ``keys`` and none of ``unless`` falls in."""

    kind: str
    claim: str
    keys: tuple[str, ...]
    unless: tuple[str, ...] = ()


@dataclass(frozen=True)
class BenchmarkItem:
    """One day's chat to write the diary of, with what scores the diary."""

    id: str
    split: str
    setting: str
    topic: str
    dialogue: tuple[tuple[str, str], ...]
    """(speaker, text) in order, as a system is given it."""
    writer: str
    reference: str
    facts: tuple[Fact, ...]
    traps: tuple[Trap, ...]
    source: str
    """``FILE:LINE`` of the item (and the day's date for an export), for messages."""
    export: str | None = None
    """For a day of a raw export: the export item's id (its ``file`` is ``export_file``)."""
    export_file: str | None = None
    export_format: str | None = None

    def messages(self) -> list[dict[str, str]]:
        """The dialogue as ``predict`` and :class:`~diary_lightning.inference.pipeline.DiaryPipeline` take it."""
        return [{"speaker": speaker, "text": text} for speaker, text in self.dialogue]

    @property
    def dialogue_text(self) -> str:
        return "\n".join(text for _, text in self.dialogue)

    @property
    def writer_lines(self) -> list[str]:
        return [text for speaker, text in self.dialogue if speaker == self.writer]


# The matching rules.

_WHITESPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def squash(text: str) -> str:
    """``text`` without whitespace: keys match across spacing (``먹었다``, ``먹 었다``)."""
    return _WHITESPACE.sub("", text)


def sentences(text: str) -> list[str]:
    """The diary cut at ``.``, ``!`` or ``?`` followed by whitespace, and at line breaks."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def has_key(text: str, key: str) -> bool:
    """Whether any alternative of ``key`` (``a|b|c``) occurs in ``text``, whitespace ignored."""
    squashed = squash(text)
    return any(squash(alternative) in squashed for alternative in key.split("|") if squash(alternative))


def holds(sentence: str, keys: Sequence[str], unless: Sequence[str] = ()) -> bool:
    """All ``keys`` and none of ``unless`` in ``sentence``."""
    return all(has_key(sentence, key) for key in keys) and not any(has_key(sentence, key) for key in unless)


def recalling(fact: Fact, diary_sentences: Sequence[str]) -> list[int]:
    """The indices of the sentences that recall ``fact``."""
    return [i for i, s in enumerate(diary_sentences) if holds(s, fact.keys)]


def wrong_person(fact: Fact, writer: str, diary_sentences: Sequence[str], recalled_in: Sequence[int]) -> bool:
    """A fact of someone other than the writer recalled, and no sentence recalling it names that person, nor
    the sentence just before it (Korean carries a subject over: "소영이가 합격했다. 3월부터 출근한다."): the diary
    gives the writer (or nobody) what another did or said."""
    if fact.who == writer or not recalled_in or not fact.who_words:
        return False

    def names(i: int) -> bool:
        return i >= 0 and any(has_key(diary_sentences[i], word) for word in fact.who_words)

    return not any(names(i) or names(i - 1) for i in recalled_in)


def falls_into(trap: Trap, diary_sentences: Sequence[str]) -> bool:
    return any(holds(s, trap.keys, trap.unless) for s in diary_sentences)


# Reading the set.

def benchmark_root() -> Path:
    """The benchmark folder shipped in the package."""
    return Path(str(resources.files("diary_lightning") / "resources" / "benchmark"))


def benchmark_files(root: str | Path | None = None) -> list[Path]:
    """The item files (``*.jsonl``) of the benchmark folder, in name order."""
    folder = Path(root) if root is not None else benchmark_root()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no benchmark folder")
    return sorted(folder.glob("*.jsonl"))


def content_hash(root: str | Path | None = None) -> str:
    """A short SHA-256 of every file of the benchmark (items and raw exports): which copy a result was made on."""
    folder = Path(root) if root is not None else benchmark_root()
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class _Checker:
    """Collects every schema problem of one file, so that one error names them all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, line: int, record_id: Any, detail: str) -> None:
        self.problems.append(Problem(f"{self.path}:{line}", None, record_id if isinstance(record_id, str) else None,
                                     "bad benchmark item", detail))

    def strings(self, value: Any, where: str, line: int, record_id: Any, allow_empty: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and (allow_empty or v.strip()) for v in value):
            self.problem(line, record_id, f"{where} must be a list of non-empty strings, got {value!r:.80}")
            return ()
        return tuple(value)

    def facts(self, value: Any, where: str, line: int, record_id: Any) -> tuple[Fact, ...]:
        if not isinstance(value, list) or not FACTS[0] <= len(value) <= FACTS[1]:
            self.problem(line, record_id, f"{where}facts: {FACTS[0]} to {FACTS[1]} facts, got "
                                          f"{len(value) if isinstance(value, list) else type(value).__name__}")
            return ()
        facts = []
        for i, fact in enumerate(value):
            here = f"{where}facts[{i}]"
            if not isinstance(fact, dict) or set(fact) - _FACT_KEYS or not {"who", "text", "keys"} <= set(fact):
                self.problem(line, record_id, f"{here}: an object with who, text, keys (and who_words), got "
                                              f"{sorted(fact) if isinstance(fact, dict) else fact!r:.80}")
                continue
            if not all(isinstance(fact[k], str) and fact[k].strip() for k in ("who", "text")):
                self.problem(line, record_id, f"{here}: who and text must be non-empty strings")
                continue
            keys = self.strings(fact["keys"], f"{here}.keys", line, record_id)
            who_words = self.strings(fact.get("who_words", []), f"{here}.who_words", line, record_id)
            if keys:
                facts.append(Fact(fact["who"], fact["text"], keys, who_words))
        return tuple(facts)

    def traps(self, value: Any, where: str, line: int, record_id: Any) -> tuple[Trap, ...]:
        if not isinstance(value, list) or not TRAPS[0] <= len(value) <= TRAPS[1]:
            self.problem(line, record_id, f"{where}traps: {TRAPS[0]} to {TRAPS[1]} traps, got "
                                          f"{len(value) if isinstance(value, list) else type(value).__name__}")
            return ()
        traps = []
        for i, trap in enumerate(value):
            here = f"{where}traps[{i}]"
            if not isinstance(trap, dict) or set(trap) - _TRAP_KEYS or not {"kind", "claim", "keys"} <= set(trap):
                self.problem(line, record_id, f"{here}: an object with kind, claim, keys (and unless), got "
                                              f"{sorted(trap) if isinstance(trap, dict) else trap!r:.80}")
                continue
            if trap["kind"] not in TRAP_KINDS:
                self.problem(line, record_id, f"{here}.kind {trap['kind']!r}: expected one of {', '.join(TRAP_KINDS)}")
                continue
            if not isinstance(trap["claim"], str) or not trap["claim"].strip():
                self.problem(line, record_id, f"{here}.claim must be a non-empty string")
                continue
            keys = self.strings(trap["keys"], f"{here}.keys", line, record_id)
            unless = self.strings(trap.get("unless", []), f"{here}.unless", line, record_id)
            if keys:
                traps.append(Trap(trap["kind"], trap["claim"], keys, unless))
        return tuple(traps)

    def common(self, record: dict[str, Any], line: int, allowed: set[str]) -> bool:
        record_id = record.get("id")
        ok = True
        if set(record) - allowed:
            self.problem(line, record_id, f"unknown field(s) {', '.join(sorted(set(record) - allowed))}; an item has "
                                          f"{', '.join(sorted(allowed))}")
            ok = False
        if missing := sorted(allowed - {"who_words"} - set(record)):
            self.problem(line, record_id, f"missing field(s) {', '.join(missing)}")
            return False
        if not isinstance(record_id, str) or not record_id.strip():
            self.problem(line, None, f"id must be a non-empty string, got {record_id!r}")
            ok = False
        if record["split"] not in SPLITS:
            self.problem(line, record_id, f"split {record['split']!r}: expected one of {', '.join(SPLITS)}")
            ok = False
        if record["topic"] not in TOPICS:
            self.problem(line, record_id, f"topic {record['topic']!r}: expected one of {', '.join(TOPICS)}")
            ok = False
        if not isinstance(record["writer"], str) or not record["writer"].strip():
            self.problem(line, record_id, "writer must be a speaker's name")
            ok = False
        return ok

    def reference(self, value: Any, where: str, line: int, record_id: Any) -> bool:
        if not isinstance(value, str) or not value.strip():
            self.problem(line, record_id, f"{where}reference must be a non-empty string (the diary)")
            return False
        return True

    def chat(self, record: dict[str, Any], line: int) -> BenchmarkItem | None:
        if not self.common(record, line, _CHAT_KEYS):
            return None
        record_id = record["id"]
        dialogue = record["dialogue"]
        turns: list[tuple[str, str]] = []
        if not isinstance(dialogue, list) or not TURNS[0] <= len(dialogue) <= TURNS[1]:
            self.problem(line, record_id, f"dialogue: a list of {TURNS[0]} to {TURNS[1]} turns, got "
                                          f"{len(dialogue) if isinstance(dialogue, list) else type(dialogue).__name__}")
            return None
        for i, turn in enumerate(dialogue):
            if not isinstance(turn, dict) or set(turn) != {"speaker", "text"} or not all(
                    isinstance(turn[k], str) and turn[k].strip() for k in ("speaker", "text")):
                self.problem(line, record_id, f"dialogue[{i}]: an object with a non-empty speaker and text, got "
                                              f"{turn!r:.80}")
                return None
            turns.append((turn["speaker"], turn["text"]))
        if record["writer"] not in {speaker for speaker, _ in turns}:
            self.problem(line, record_id, f"writer {record['writer']!r} does not speak in the dialogue")
            return None
        facts = self.facts(record["facts"], "", line, record_id)
        traps = self.traps(record["traps"], "", line, record_id)
        if not self.reference(record["reference"], "", line, record_id):
            return None
        return BenchmarkItem(record_id, record["split"], record["setting"], record["topic"], tuple(turns),
                             record["writer"], record["reference"], facts, traps, f"{self.path.name}:{line}")

    def export(self, record: dict[str, Any], line: int) -> list[BenchmarkItem]:
        if not self.common(record, line, _EXPORT_KEYS):
            return []
        record_id = record["id"]
        days = record["days"]
        if not isinstance(record["file"], str) or not record["file"].strip():
            self.problem(line, record_id, "file must name the raw export, relative to the benchmark folder")
            return []
        if not isinstance(days, list) or not EXPORT_DAYS[0] <= len(days) <= EXPORT_DAYS[1]:
            self.problem(line, record_id, f"days: a list of {EXPORT_DAYS[0]} to {EXPORT_DAYS[1]} days, got "
                                          f"{len(days) if isinstance(days, list) else type(days).__name__}")
            return []
        path = self.path.parent / record["file"]
        try:
            parsed = read_export(path)
        except (DataError, OSError) as err:
            self.problem(line, record_id, f"file {record['file']}: {err}")
            return []
        items = []
        for i, day in enumerate(days):
            if not isinstance(day, dict) or set(day) != _DAY_KEYS:
                self.problem(line, record_id, f"days[{i}]: an object with {', '.join(sorted(_DAY_KEYS))}, got "
                                              f"{sorted(day) if isinstance(day, dict) else day!r:.80}")
                continue
            date = day["date"]
            day_id = f"{path.stem}_{date}"
            if day_id not in parsed:
                self.problem(line, record_id, f"days[{i}].date {date!r}: {record['file']} has no such day (its days: "
                                              f"{', '.join(d.rsplit('_', 1)[-1] for d in parsed)})")
                continue
            turns = parsed[day_id]
            if record["writer"] not in {speaker for speaker, _ in turns}:
                self.problem(line, record_id, f"writer {record['writer']!r} does not speak on {date}")
                continue
            where = f"days[{i}]."
            facts = self.facts(day["facts"], where, line, record_id)
            traps = self.traps(day["traps"], where, line, record_id)
            if self.reference(day["reference"], where, line, record_id):
                items.append(BenchmarkItem(day_id, record["split"], EXPORT_SETTING, record["topic"], turns,
                                           record["writer"], day["reference"], facts, traps,
                                           f"{self.path.name}:{line} {date}", record_id, record["file"],
                                           str(record["format"])))
        dates = {d.get("date") for d in days if isinstance(d, dict)}
        if unread := [d for d in parsed if d.rsplit("_", 1)[-1] not in dates]:
            self.problem(line, record_id, f"{record['file']} has days the item has no reference for: "
                                          f"{', '.join(unread)}")
        return items


def read_export(path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """A raw chat export as ``predict`` reads it (the data reader: KakaoTalk layouts, days, cleaning, merged
    turns), by the id predict gives each day."""
    from diary_lightning.data.dialogue import read_dialogues

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    result = read_dialogues([str(path)], fmt="text", require_summary=False, progress=False)
    return {d.id: tuple((t.speaker, t.text) for t in d.turns) for d in result.dialogues}


@functools.lru_cache(maxsize=4)
def _load(root: Path) -> tuple[BenchmarkItem, ...]:
    items: list[BenchmarkItem] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path in benchmark_files(root):
        checker = _Checker(path)
        for line, text in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                checker.problem(line, None, f"not JSON: {err.msg} (column {err.colno})")
                continue
            if not isinstance(record, dict):
                checker.problem(line, None, f"an item is a JSON object, got {type(record).__name__}")
                continue
            setting = record.get("setting")
            if setting == EXPORT_SETTING:
                read = checker.export(record, line)
            elif setting in CHAT_SETTINGS:
                read = [item] if (item := checker.chat(record, line)) else []
            else:
                checker.problem(line, record.get("id"), f"setting {setting!r}: expected one of {', '.join(SETTINGS)}")
                continue
            for item in read:
                if item.id in seen:
                    checker.problem(line, item.id, f"repeats the id of {seen[item.id]}")
                    continue
                seen[item.id] = item.source
                items.append(item)
        problems.extend(checker.problems)
    if problems:
        raise DataError(problems, "Fix these benchmark items (the schema: docs/benchmark.md).")
    return tuple(items)


def load_benchmark(split: str | None = None, root: str | Path | None = None) -> list[BenchmarkItem]:
    """Every item of the benchmark (of ``split``, ``dev`` or ``test``, when given), each export's days one
    item each, in file order. A schema problem anywhere raises one :class:`DataError` naming every one."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    folder = (Path(root) if root is not None else benchmark_root()).resolve()
    items = _load(folder)
    return [item for item in items if split is None or item.split == split]


def content_problems(items: Iterable[BenchmarkItem]) -> list[str]:
    """What makes items wrong as a yardstick, beyond the schema: a reference failing the diary-style checks, a
    fact key absent from the dialogue, a reference that does not recall a fact, a trap whose own claim does not
    fall into it, or a reference that falls into one."""
    from diary_lightning.evaluation.diary_style import analyse_many, style_failures

    items = list(items)
    analyse_many(item.reference for item in items)
    problems = []
    for item in items:
        where = f"{item.source} {item.id}"
        if failed := style_failures(item.reference, writer_names=[item.writer]):
            problems.append(f"{where}: the reference fails the style checks {failed}")
        said = item.dialogue_text
        reference = sentences(item.reference)
        for i, fact in enumerate(item.facts):
            if fact.who != item.writer and not fact.who_words:
                problems.append(f"{where} facts[{i}]: who {fact.who!r} is not the writer, so it needs who_words")
            for key in fact.keys:
                if not has_key(said, key):
                    problems.append(f"{where} facts[{i}]: key {key!r} is not in the dialogue")
            if not recalling(fact, reference):
                problems.append(f"{where} facts[{i}]: no sentence of the reference holds all of {list(fact.keys)}")
        for i, trap in enumerate(item.traps):
            if not falls_into(trap, sentences(trap.claim)):
                problems.append(f"{where} traps[{i}]: its own claim does not fall into it (keys {list(trap.keys)}, "
                                f"unless {list(trap.unless)})")
            if falls_into(trap, reference):
                problems.append(f"{where} traps[{i}] ({trap.kind}): the reference falls into it")
    return problems


LENGTHS = ((0, 12, "short (up to 12 turns)"), (13, 25, "medium (13-25)"), (26, 10_000, "long (26+)"))


def datasheet_tables(items: Sequence[BenchmarkItem]) -> str:
    """The datasheet's tables of what the set holds (docs/benchmark.md), computed from ``items``: a chat item
    counts once, a raw export once per day."""
    from collections import Counter

    def table(title: str, rows: Sequence[str], columns: Sequence[str], count: Any) -> list[str]:
        out = [f"| {title} | " + " | ".join(columns) + " | total |", "|---|" + "---:|" * (len(columns) + 1)]
        for row in rows:
            cells = [count(row, column) for column in columns]
            out.append(f"| {row} | " + " | ".join(map(str, cells)) + f" | {sum(cells)} |")
        totals = [sum(count(row, column) for row in rows) for column in columns]
        out.append("| total | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
        return out + [""]

    def length(item: BenchmarkItem) -> str:
        return next(name for low, high, name in LENGTHS if low <= len(item.dialogue) <= high)

    settings = [s for s in SETTINGS if any(item.setting == s for item in items)]
    by = Counter((item.setting, item.split) for item in items)
    topics = Counter((item.topic, item.setting) for item in items)
    lengths = Counter((length(item), item.setting) for item in items)
    traps = Counter((trap.kind, item.setting) for item in items for trap in item.traps)
    exports = Counter({item.export: item.export_format for item in items if item.export}.values())
    lines = [f"Benchmark version {BENCHMARK_VERSION}: {len(items)} items to write a diary for "
             f"({sum(item.setting != EXPORT_SETTING for item in items)} chats and "
             f"{sum(item.setting == EXPORT_SETTING for item in items)} days of "
             f"{len({item.export for item in items if item.export})} raw exports), "
             f"{sum(len(item.facts) for item in items)} facts, {sum(len(item.traps) for item in items)} traps.", ""]
    lines += table("setting", settings, SPLITS, lambda row, column: by[(row, column)])
    lines += table("topic", [t for t in TOPICS if any(item.topic == t for item in items)], settings,
                   lambda row, column: topics[(row, column)])
    lines += table("length", [name for _, _, name in LENGTHS], settings, lambda row, column: lengths[(row, column)])
    lines += table("trap kind", list(TRAP_KINDS), settings, lambda row, column: traps[(row, column)])
    if exports:
        lines += table("export format", sorted(exports), ["exports"], lambda row, column: exports[row])
    first = sum(item.dialogue[0][0] != item.writer for item in items)
    busiest = sum(Counter(s for s, _ in item.dialogue).most_common(1)[0][0] != item.writer for item in items)
    neither = sum(item.dialogue[0][0] != item.writer and Counter(s for s, _ in item.dialogue).most_common(1)[0][0]
                  != item.writer for item in items)
    lines += [f"The writer is not the first speaker in {first} items, not the busiest in {busiest}, neither in "
              f"{neither}."]
    return "\n".join(lines)


__all__ = ["BENCHMARK_VERSION", "SETTINGS", "SPLITS", "TOPICS", "TRAP_KINDS", "BenchmarkItem", "Fact", "Trap",
           "benchmark_files", "benchmark_root", "content_hash", "content_problems", "datasheet_tables", "falls_into",
           "has_key", "holds", "load_benchmark", "recalling", "sentences", "squash", "wrong_person"]

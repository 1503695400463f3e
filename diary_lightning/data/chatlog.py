"""Plain-text chat logs: one ``speaker: text`` line per utterance, or a KakaoTalk export, cut into days.

KakaoTalk writes two layouts, in the app's language (Korean and English are read here). The phone apps
(Android, iOS)::

    민지 님과 카카오톡 대화                             Talk with 수아
    저장한 날짜 : 2024년 1월 6일 오후 12:00             Date Saved : 3/15/25, 9:00 AM

    2024년 1월 5일 금요일                               Friday, March 14, 2025
    2024년 1월 5일 오후 3:12, 민지 : 안녕               3/14/25, 8:03 AM, 수아 : 안녕
    2024. 1. 5. 오후 3:13, 준호 : 응 안녕  (iOS)        March 14, 2025 at 8:04 AM, 민지 : 응
    2024년 1월 5일 오후 3:14, 준호님이 들어왔습니다.     3/14/25, 8:05 AM, 민지 joined this chatroom.

and the PC app::

    --------------- 2024년 1월 5일 금요일 ---------------    --------------- Friday, March 14, 2025 ---------------
    [민지] [오후 3:12] 안녕                                  [수아] [8:03 AM] 안녕
    준호님이 나갔습니다.                                      민지 left this chatroom.

Read naively as ``speaker: text``, a phone line makes ``2024년 1월 5일 오후 3`` the speaker. Here the
timestamps are dropped, date separators, the header and system lines (joins, leaves, invitations) are
skipped, and a line without any prefix after a KakaoTalk message continues that message (KakaoTalk
writes a multi-line message that way).

A diary is written per day, so an export is cut into days where its date changes (a date line, or the
date of a phone message); a file of ``speaker: text`` lines has no dates and stays one chat. What KakaoTalk
writes in place of an attachment (``사진``, ``이모티콘``, ``Photo``, ...: :data:`PLACEHOLDERS`) is not something
the user said, and is dropped; a message left with nothing is dropped too. Plain Python;
:mod:`diary_lightning.data.dialogue` turns the utterances into dialogues.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

# Every pattern here is anchored at the start of a line and has no nested or overlapping unbounded repetition: a
# KakaoTalk message may be megabytes on one line, and a pattern that backtracks over it would take hours.
# What needs "something, then these words at the end" is plain string tests instead (:func:`_is_system_line`).

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_MONTH_NAME = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"

_TIME = r"(?:(?:오전|오후) )?\d{1,2}:\d{2}(?: ?[AaPp]\.?[Mm]\.?)?"
# Korean (2024년 1월 5일), iOS (2024. 1. 5.), English numeric (3/14/25 in the US, 14/03/2025 in the UK: which
# comes first is the file's, :func:`_numeric_order`) and English words (March 14, 2025 in the US, 14 March 2025
# in the UK; "at" before the time on iOS).
_KO_DATE = r"(?P<y>\d{4})년 (?P<m>\d{1,2})월 (?P<d>\d{1,2})일|(?P<y2>\d{4})\. ?(?P<m2>\d{1,2})\. ?(?P<d2>\d{1,2})\."
_EN_DATE = (r"(?P<a3>\d{1,2})/(?P<b3>\d{1,2})/(?P<y3>\d{2}|\d{4}),?"
            rf"|(?P<mn>{_MONTH_NAME}) (?P<d4>\d{{1,2}}), (?P<y4>\d{{4}})(?:,| at)?"
            rf"|(?P<d5>\d{{1,2}}) (?P<mn5>{_MONTH_NAME}) (?P<y5>\d{{4}})(?:,| at)?")
_DATE = rf"(?:{_KO_DATE}|{_EN_DATE})"
_WEEKDAY = r"(?:[월화수목금토일]요일|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,?)"

DATE_FORMATS = ("2024년 1월 5일", "2024. 1. 5.", "3/14/25 (month first, as the US app writes it)",
                "14/03/2025 (day first, as the UK and Australian apps write it)", "March 14, 2025", "14 March 2025")
"""The dates read, as messages name them when a date is refused or not recognised."""

PHONE_MESSAGE = re.compile(rf"{_DATE},? {_TIME}, (?P<speaker>.+?) : (?P<text>.*)")
PHONE_SYSTEM = re.compile(rf"{_DATE},? {_TIME}, .+")
PC_MESSAGE = re.compile(rf"\[(?P<speaker>[^\]]+)\] \[{_TIME}\] (?P<text>.*)")
# Korean puts the weekday after the date, English before it. The PC app frames the line with dashes.
DATE_LINE = re.compile(rf"(?P<dashes>-+ )?(?:{_WEEKDAY} )?{_DATE}(?: {_WEEKDAY})?(?: -+)?")
_TITLE = r".+ 카카오톡 대화|Talk with .+|.+ KakaoTalk Chats?"
_SAVED = r"저장한 날짜 ?: .*|Date Saved ?: .*"
HEADER = re.compile(rf"{_TITLE}|{_SAVED}")
"""An export's first lines (after a BOM too, or as a title and its saved date: exports joined into one file);
elsewhere such a line is text."""
TITLE, SAVED = re.compile(_TITLE), re.compile(_SAVED)

_SYSTEM_ENDS = ("들어왔습니다.", "나갔습니다.", "초대했습니다.", "내보냈습니다.")
_SYSTEM_ENDS_EN = (" joined this chatroom.", " left this chatroom.", " has been removed from this chatroom.",
                   " was removed from this chatroom.")


def _is_system_line(line: str) -> bool:
    """What KakaoTalk writes itself into a chat, without a speaker: joins, leaves, invitations, removals
    (``준호님이 들어왔습니다.``, ``민지 left this chatroom.``). String tests, linear in the line."""
    if line.startswith("채팅방 관리자가 ") and len(line) > len("채팅방 관리자가 "):
        return True
    if line.endswith(_SYSTEM_ENDS):
        # "X님이 ..." or "X님을 ...": a name, then 님이/님을 and a space, before the ending.
        return any(line.find(marker, 1) > 0 for marker in ("님이 ", "님을 "))
    if line.endswith(_SYSTEM_ENDS_EN):
        return not line.startswith(" ") and len(line) > min(len(end) for end in _SYSTEM_ENDS_EN)
    return line.endswith(".") and line.find(" invited ", 1) > 0 and not line.endswith(" invited .")


_CALL = r"(?:\d+:\d{2}(?::\d{2})?|취소|부재중|[Cc]ancel+ed|[Mm]issed)"
PLACEHOLDERS = re.compile(
    rf"사진(?: \d+장)?|이모티콘|동영상|음성메시지|(?:보이스톡|페이스톡) {_CALL}|삭제된 메시지입니다\.|파일: .+\.\w{{1,8}}"
    rf"|Photo|\d+ [Pp]hotos|Emoticons?|Video|Voice [Mm]essage|(?:Voice ?[Tt]alk|Face ?[Tt]alk) {_CALL}"
    r"|This message (?:has been|was) deleted\.|Deleted message\.?|File: .+\.\w{1,8}"
)
"""What KakaoTalk writes in place of what was sent (a photo, an emoticon, a file, a call, a deleted message),
in the Korean and English apps. A message line that is only this is not text the user wrote."""


class ChatLogError(ValueError):
    """A line that fits no chat-log format; ``lineno`` is 1-based."""

    def __init__(self, lineno: int, line: str, reason: str, fix: str = "") -> None:
        self.lineno = lineno
        super().__init__(f"line {lineno}: {reason} ({line.strip()[:60]!r})" + (f"; {fix}" if fix else ""))


@dataclass
class ChatDay:
    """The utterances of one day of a chat, in order; ``date`` is ``YYYY-MM-DD``, None when the log has no dates."""

    date: str | None
    utterances: list[tuple[str, str]] = field(default_factory=list)


BOM = "\ufeff"


def _iso_date(match: re.Match[str], day_first: bool) -> str:
    """The date a match of :data:`_DATE` names, as ``YYYY-MM-DD``; ``day_first`` reads a numeric English date
    (``14/03/2025``) day first. Raises ValueError naming what is not a date (``2024년 2월 30일``, month 13)."""
    g = match.groupdict()
    if g.get("y"):
        year, month, day = g["y"], g["m"], g["d"]
    elif g.get("y2"):
        year, month, day = g["y2"], g["m2"], g["d2"]
    elif g.get("y3"):
        first, second = g["a3"], g["b3"]
        day, month = (first, second) if day_first else (second, first)
        year = f"20{g['y3']}" if len(g["y3"]) == 2 else g["y3"]
    else:
        name, year, day = (g["mn"], g["y4"], g["d4"]) if g.get("y4") else (g["mn5"], g["y5"], g["d5"])
        given = name.rstrip(".").lower()
        number = next((i for i, full in enumerate(_MONTHS, 1) if full.startswith(given)), None)
        if number is None:
            raise ValueError(f"{name!r} is not the name of a month")
        month = str(number)
    try:
        return datetime.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        order = " (read day first, as this file writes its dates)" if g.get("y3") and day_first else ""
        raise ValueError(f"no such date on the calendar: year {int(year)}, month {int(month)}, day {int(day)}"
                         f"{order}") from None


def _numeric_order(lines: list[str]) -> bool:
    """Whether this file writes its numeric dates day first (``14/03/2025``, the UK and Australian apps) rather than
    month first (``3/14/25``, the US app): said by a date whose first number is over 12, or by a date in words
    (``14 March 2025``); month first when nothing says otherwise. A file that says both is refused."""
    seen: dict[bool, tuple[int, str]] = {}
    for lineno, line in enumerate(lines, 1):
        match = PHONE_SYSTEM.fullmatch(line) or DATE_LINE.fullmatch(line.strip())
        if match is None:
            continue
        if match["y3"]:
            first, second = int(match["a3"]), int(match["b3"])
            says = True if first > 12 >= second else False if second > 12 >= first else None
        else:
            says = True if match["y5"] else False if match["y4"] else None
        if says is not None:
            seen.setdefault(says, (lineno, line))
    if len(seen) == 2:
        (day_at, _), (month_at, _) = seen[True], seen[False]
        lineno, line = seen[True] if day_at > month_at else seen[False]
        raise ChatLogError(lineno, line, f"dates written day first (line {day_at}) and month first (line {month_at}) "
                                         "in one file", "give each export its own file")
    return True in seen


def _kakao_message(line: str) -> tuple[str, str, re.Match[str] | None] | None:
    """(speaker, text, the match of its date or None) of a KakaoTalk message line."""
    if match := PHONE_MESSAGE.fullmatch(line):
        return match["speaker"].strip(), match["text"].strip(), match
    if match := PC_MESSAGE.fullmatch(line):
        return match["speaker"].strip(), match["text"].strip(), None
    return None


def is_kakao(lines: list[str]) -> bool:
    """Any KakaoTalk message line makes the whole file a KakaoTalk export."""
    return any(_kakao_message(line.lstrip(BOM)) for line in lines)


def without_placeholders(text: str) -> str:
    """``text`` without the lines that are only an attachment placeholder (:data:`PLACEHOLDERS`)."""
    return "\n".join(line for line in text.split("\n") if not PLACEHOLDERS.fullmatch(line.strip()))


def _lines(text: str) -> list[str]:
    # Lines end at \n (\r\n, \r) alone: a U+2028 or U+0085 pasted inside a message is part of it, and
    # str.splitlines() would cut the message there and count lines an editor does not show.
    return [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def parse_chat_days(text: str) -> list[ChatDay]:
    """The chat cut into days with something said, in order: one :class:`ChatDay` per date of a KakaoTalk
    export, a single undated one for ``speaker: text`` lines. Raises :class:`ChatLogError` naming the first
    line that fits no format."""
    lines = _lines(text)
    if is_kakao(lines):
        return _parse_kakao(lines)
    return [ChatDay(None, _parse_plain(lines))]


def parse_chat_log(text: str) -> list[tuple[str, str]]:
    """(speaker, text) per utterance of the whole log, every day in order."""
    return [utterance for day in parse_chat_days(text) for utterance in day.utterances]


def _looks_like_another_locale(line: str) -> bool:
    """A line that starts with a date and a time, as a KakaoTalk phone line does, in a layout not read here."""
    # Only the start: a date and a time fit in it, and a long line is not scanned.
    return re.match(r"[\d./\-년월일 ]{6,}[,\s]+\S*\s*\d{1,2}[:時h]\d{2}", line[:64]) is not None


_NOT_READ = ("a KakaoTalk export in a language or layout that is not read here",
             "exports of the Korean and English apps (phone and PC) are read, with dates written "
             f"{', '.join(DATE_FORMATS)}; export the chat with KakaoTalk set to Korean or English, or write one "
             "'speaker: text' line per utterance")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def _parse_plain(lines: list[str]) -> list[tuple[str, str]]:
    utterances = []
    for lineno, line in enumerate(lines, 1):
        line = line.lstrip(BOM)  # exports joined into one file: each kept its BOM
        if not line.strip():
            continue
        if _looks_like_another_locale(line):
            raise ChatLogError(lineno, line, *_NOT_READ)
        speaker, colon, said = line.partition(":")
        if colon and said.startswith("//") and _URL.fullmatch(speaker.strip()):
            raise ChatLogError(lineno, line, "a web address, not 'speaker: text'",
                               "put the address after the one who sent it ('P01: https://...')")
        if not colon or not speaker.strip():
            raise ChatLogError(lineno, line, "no 'speaker:' before the text",
                               "write one 'speaker: text' line per utterance and join messages that span lines")
        if not said.strip():
            raise ChatLogError(lineno, line, f"{speaker.strip()!r} says nothing after the colon")
        utterances.append((speaker.strip(), said.strip()))
    return utterances


def _following(lines: list[str]) -> list[tuple[str | None, re.Match[str] | None]]:
    """For each line, the nearest message or dated system line after it: ("phone", its date match), ("pc", None)
    or (None, None) at the end. A date line is a day's separator only where the next message is of that day."""
    after: list[tuple[str | None, re.Match[str] | None]] = [(None, None)] * len(lines)
    nearest: tuple[str | None, re.Match[str] | None] = (None, None)
    for index in range(len(lines) - 1, -1, -1):
        after[index] = nearest
        line = lines[index]
        if match := PHONE_SYSTEM.fullmatch(line):
            nearest = ("phone", match)
        elif PC_MESSAGE.fullmatch(line):
            nearest = ("pc", None)
    return after


def _joined_headers(lines: list[str]) -> set[int]:
    """The lines of a header in the middle of a file (exports joined without a BOM): a title line whose next line
    is its saved date, the two together."""
    found: set[int] = set()
    filled = [index for index, line in enumerate(lines) if line.strip()]
    for here, after in zip(filled, filled[1:]):
        if SAVED.fullmatch(lines[after]) and TITLE.fullmatch(lines[here]):
            found.update((here, after))
    return found


def _parse_kakao(lines: list[str]) -> list[ChatDay]:
    starts_export = [line.startswith(BOM) for line in lines]
    lines = [line.lstrip(BOM) for line in lines]
    joined = _joined_headers(lines)
    day_first = _numeric_order(lines)
    following = _following(lines)
    days: list[ChatDay] = [ChatDay(None)]
    said: list[list[tuple[str, list[str]]]] = [[]]  # per day: (speaker, the lines of the message)

    def date_of(match: re.Match[str], lineno: int, line: str) -> str:
        try:
            return _iso_date(match, day_first)
        except ValueError as err:
            raise ChatLogError(lineno, line, str(err), f"dates are read as {', '.join(DATE_FORMATS)}") from None

    def on(date: str | None) -> None:
        # A new day starts where the date changes; an undated start (a PC export's first messages
        # before any date line) takes the first date seen.
        if date is not None and date != days[-1].date:
            if days[-1].date is None and not said[-1]:
                days[-1].date = date
            else:
                days.append(ChatDay(date))
                said.append([])

    current: list[str] | None = None  # the lines of the message that a bare line continues
    in_header = True  # an export's header can only be at its start
    for index, line in enumerate(lines):
        lineno = index + 1
        if starts_export[index] or index in joined:  # another export joined on: its header, then its own days
            in_header, current = True, None
        if not line.strip():
            continue
        message = _kakao_message(line)
        if message is not None:
            speaker, text, dated = message
            on(date_of(dated, lineno, line) if dated is not None else None)
            current = [text]
            said[-1].append((speaker, current))
            in_header = False
        elif date_line := DATE_LINE.fullmatch(line.strip()):
            if _is_separator(date_line, following[index], days[-1].date, current is not None, day_first):
                on(date_of(date_line, lineno, line))
                current, in_header = None, False
            elif current is not None:
                current.append(line.strip())  # a message that only reads like a date line
            else:
                date_of(date_line, lineno, line)  # a date line of no day: only its date can be wrong
        elif PHONE_SYSTEM.fullmatch(line) or _is_system_line(line.strip()):
            current, in_header = None, False
        elif in_header and HEADER.fullmatch(line):
            continue
        elif current is not None:
            current.append(line.strip())
        elif _looks_like_another_locale(line):
            raise ChatLogError(lineno, line, *_NOT_READ)
        else:
            raise ChatLogError(lineno, line, "not a KakaoTalk message, date, header or system line, and no message "
                                             "before it to continue",
                               "KakaoTalk exports of the Korean and English phone and PC apps are read; other lines "
                               "need 'speaker: text'")
    for day, messages in zip(days, said):
        day.utterances = [(speaker, kept) for speaker, parts in messages
                          if (kept := without_placeholders("\n".join(parts)).strip())]
    return [day for day in days if day.utterances]


def _is_separator(date_line: re.Match[str], following: tuple[str | None, re.Match[str] | None], today: str | None,
                  in_message: bool, day_first: bool) -> bool:
    """Whether a date line starts a day, or is text of the message before it (``2024년 1월 9일 화요일`` said in a
    chat). The PC app frames its date lines with dashes; the phone apps write one before the first message of a new
    date, and each of their messages carries its date: a date line is theirs only before a message of that date,
    when that date is not today's already."""
    if date_line["dashes"]:
        return True
    kind, next_date = following
    if kind == "phone":
        try:
            date, upcoming = _iso_date(date_line, day_first), _iso_date(next_date, day_first)
        except ValueError:
            return False
        return date == upcoming and date != today
    return not in_message


# A 1:1 chat's export names the chat partner in its header (the room takes the partner's name): the exporter, whose
# diary it is, is the other speaker. A group room's name is whatever the room is called, often a list of names.
_PARTNER = re.compile(r"(?P<name>.+?) ?님과 카카오톡 대화|Talk with (?P<en>.+)")


def export_partner(text: str) -> str | None:
    """The partner a KakaoTalk export's header names (``서연 님과 카카오톡 대화``, ``Talk with 서연``), or None."""
    for line in _lines(text)[:5]:
        found = _PARTNER.fullmatch(line.strip().lstrip("\ufeff"))
        if found:
            return (found.group("name") or found.group("en")).strip() or None
    return None

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

import re
from dataclasses import dataclass, field

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_MONTH_NAME = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"

_TIME = r"(?:(?:오전|오후) )?\d{1,2}:\d{2}(?: ?[AaPp]\.?[Mm]\.?)?"
# Korean (2024년 1월 5일), iOS (2024. 1. 5.), English numeric (3/14/25, month first) and English words
# (March 14, 2025; "at" before the time on iOS).
_KO_DATE = r"(?P<y>\d{4})년 (?P<m>\d{1,2})월 (?P<d>\d{1,2})일|(?P<y2>\d{4})\. ?(?P<m2>\d{1,2})\. ?(?P<d2>\d{1,2})\."
_EN_DATE = (r"(?P<m3>\d{1,2})/(?P<d3>\d{1,2})/(?P<y3>\d{2}|\d{4}),?"
            rf"|(?P<mn>{_MONTH_NAME}) (?P<d4>\d{{1,2}}), (?P<y4>\d{{4}})(?:,| at)?")
_DATE = rf"(?:{_KO_DATE}|{_EN_DATE})"
_WEEKDAY = r"(?:[월화수목금토일]요일|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,?)"

PHONE_MESSAGE = re.compile(rf"{_DATE},? {_TIME}, (?P<speaker>.+?) : (?P<text>.*)")
PHONE_SYSTEM = re.compile(rf"{_DATE},? {_TIME}, .+")
PC_MESSAGE = re.compile(rf"\[(?P<speaker>[^\]]+)\] \[{_TIME}\] (?P<text>.*)")
# Korean puts the weekday after the date, English before it.
DATE_LINE = re.compile(rf"-* ?(?:{_WEEKDAY} )?{_DATE}(?: {_WEEKDAY})? ?-*")
HEADER = re.compile(r".+ 카카오톡 대화|저장한 날짜 ?: .*|Talk with .+|Date Saved ?: .*|.+ KakaoTalk Chats?")
# What KakaoTalk writes itself into a chat, without a speaker.
SYSTEM_LINE = re.compile(
    r".+님(?:이|을) .*(?:들어왔습니다|나갔습니다|초대했습니다|내보냈습니다)\.|채팅방 관리자가 .+"
    r"|.+ (?:joined|left) this chatroom\.|.+ invited .+\.|.+ (?:has been|was) removed from this chatroom\.")

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


def _iso_date(match: re.Match[str]) -> str | None:
    """The date a match of :data:`_DATE` names, as ``YYYY-MM-DD``."""
    g = match.groupdict()
    if g.get("y"):
        year, month, day = g["y"], g["m"], g["d"]
    elif g.get("y2"):
        year, month, day = g["y2"], g["m2"], g["d2"]
    elif g.get("y3"):
        # The English numeric date is month first, as the US locale writes it, with a two-digit year.
        year, month, day = g["y3"], g["m3"], g["d3"]
        year = f"20{year}" if len(year) == 2 else year
    elif g.get("y4"):
        year, day = g["y4"], g["d4"]
        month = next((str(i) for i, name in enumerate(_MONTHS, 1) if name.startswith(g["mn"].rstrip(".").lower()[:3])),
                     None)
        if month is None:
            return None
    else:
        return None
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"


def _kakao_message(line: str) -> tuple[str, str, str | None] | None:
    """(speaker, text, date or None) of a KakaoTalk message line."""
    if match := PHONE_MESSAGE.fullmatch(line):
        return match["speaker"].strip(), match["text"].strip(), _iso_date(match)
    if match := PC_MESSAGE.fullmatch(line):
        return match["speaker"].strip(), match["text"].strip(), None
    return None


def is_kakao(lines: list[str]) -> bool:
    """Any KakaoTalk message line makes the whole file a KakaoTalk export."""
    return any(_kakao_message(line) for line in lines)


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
    return re.match(r"[\d./\-년월일 ]{6,}[,\s]+\S*\s*\d{1,2}[:時h]\d{2}", line) is not None


def _parse_plain(lines: list[str]) -> list[tuple[str, str]]:
    utterances = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        speaker, colon, said = line.partition(":")
        if _looks_like_another_locale(line) or not colon or not speaker.strip():
            if _looks_like_another_locale(line):
                raise ChatLogError(lineno, line, "a KakaoTalk export in a language or layout that is not read here",
                                   "exports of the Korean and English apps (phone and PC) are read; export the chat "
                                   "with KakaoTalk set to Korean or English, or write one 'speaker: text' line per "
                                   "utterance")
            raise ChatLogError(lineno, line, "no 'speaker:' before the text",
                               "write one 'speaker: text' line per utterance and join messages that span lines")
        if not said.strip():
            raise ChatLogError(lineno, line, f"{speaker.strip()!r} says nothing after the colon")
        utterances.append((speaker.strip(), said.strip()))
    return utterances


def _parse_kakao(lines: list[str]) -> list[ChatDay]:
    days: list[ChatDay] = [ChatDay(None)]

    def on(date: str | None) -> ChatDay:
        # A new day starts where the date changes; an undated start (a PC export's first messages
        # before any date line) takes the first date seen.
        if date is not None and date != days[-1].date:
            if days[-1].date is None and not days[-1].utterances:
                days[-1].date = date
            else:
                days.append(ChatDay(date))
        return days[-1]

    continuable = False  # the line before was a message, which a bare line continues
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        message = _kakao_message(line)
        if message is not None:
            speaker, said, date = message
            on(date).utterances.append((speaker, said))
            continuable = True
        elif date_line := DATE_LINE.fullmatch(line.strip()):
            on(_iso_date(date_line))
            continuable = False
        elif HEADER.fullmatch(line) or PHONE_SYSTEM.fullmatch(line) or SYSTEM_LINE.fullmatch(line.strip()):
            continuable = False
        elif continuable:
            speaker, said = days[-1].utterances[-1]
            days[-1].utterances[-1] = (speaker, f"{said}\n{line.strip()}" if said else line.strip())
        else:
            raise ChatLogError(lineno, line, "not a KakaoTalk message, date, header or system line, and no message "
                                             "before it to continue",
                               "KakaoTalk exports of the Korean and English phone and PC apps are read; other lines "
                               "need 'speaker: text'")
    for day in days:
        day.utterances = [(speaker, kept) for speaker, said in day.utterances if (kept := without_placeholders(said).strip())]
    return [day for day in days if day.utterances]


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

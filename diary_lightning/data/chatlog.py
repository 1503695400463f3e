"""Plain-text chat logs: one ``speaker: text`` line per utterance, or a KakaoTalk export (Korean locale).

KakaoTalk writes two layouts. The phone apps (Android, iOS)::

    민지 님과 카카오톡 대화
    저장한 날짜 : 2024년 1월 6일 오후 12:00

    2024년 1월 5일 금요일
    2024년 1월 5일 오후 3:12, 민지 : 안녕
    2024. 1. 5. 오후 3:13, 준호 : 응 안녕            (iOS writes the date this way)
    2024년 1월 5일 오후 3:14, 준호님이 들어왔습니다.   (a system line: no " : ")

and the PC app::

    --------------- 2024년 1월 5일 금요일 ---------------
    [민지] [오후 3:12] 안녕
    준호님이 나갔습니다.

Read naively as ``speaker: text``, a phone line makes ``2024년 1월 5일 오후 3`` the speaker. Here the
timestamps are dropped, date separators, the header and system lines (joins, leaves, invitations) are
skipped, and a line without any prefix after a KakaoTalk message continues that message (KakaoTalk
writes a multi-line message that way). Plain Python; :mod:`diary_lightning.data.dialogue` turns the
utterances into a dialogue.
"""

from __future__ import annotations

import re

_TIME = r"(?:(?:오전|오후) )?\d{1,2}:\d{2}"
_DATE = r"(?:\d{4}년 \d{1,2}월 \d{1,2}일|\d{4}\. ?\d{1,2}\. ?\d{1,2}\.)"
_WEEKDAY = r"[월화수목금토일]요일"

PHONE_MESSAGE = re.compile(rf"{_DATE} {_TIME}, (?P<speaker>.+?) : (?P<text>.*)")
PHONE_SYSTEM = re.compile(rf"{_DATE} {_TIME}, .+")
PC_MESSAGE = re.compile(rf"\[(?P<speaker>[^\]]+)\] \[{_TIME}\] (?P<text>.*)")
DATE_LINE = re.compile(rf"-* ?{_DATE} {_WEEKDAY} ?-*")
HEADER = re.compile(r".+ 카카오톡 대화|저장한 날짜 ?: .*")
# What KakaoTalk writes itself into a chat, without a speaker.
SYSTEM_LINE = re.compile(r".+님(?:이|을) .*(?:들어왔습니다|나갔습니다|초대했습니다|내보냈습니다)\.|채팅방 관리자가 .+")


class ChatLogError(ValueError):
    """A line that fits no chat-log format; ``lineno`` is 1-based."""

    def __init__(self, lineno: int, line: str, reason: str, fix: str = "") -> None:
        self.lineno = lineno
        super().__init__(f"line {lineno}: {reason} ({line.strip()[:60]!r})" + (f"; {fix}" if fix else ""))


def _kakao_message(line: str) -> tuple[str, str] | None:
    match = PHONE_MESSAGE.fullmatch(line) or PC_MESSAGE.fullmatch(line)
    return (match["speaker"].strip(), match["text"].strip()) if match else None


def is_kakao(lines: list[str]) -> bool:
    """Any KakaoTalk message line makes the whole file a KakaoTalk export."""
    return any(_kakao_message(line) for line in lines)


def parse_chat_log(text: str) -> list[tuple[str, str]]:
    """(speaker, text) per utterance, in order. Raises :class:`ChatLogError` naming the first line that fits
    no format."""
    # Lines end at \n (\r\n, \r) alone: a U+2028 or U+0085 pasted inside a message is part of it, and
    # str.splitlines() would cut the message there and count lines an editor does not show.
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _parse_kakao(lines) if is_kakao(lines) else _parse_plain(lines)


def _parse_plain(lines: list[str]) -> list[tuple[str, str]]:
    utterances = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        speaker, colon, said = line.partition(":")
        if not colon or not speaker.strip():
            raise ChatLogError(lineno, line, "no 'speaker:' before the text",
                               "write one 'speaker: text' line per utterance and join messages that span lines")
        if not said.strip():
            raise ChatLogError(lineno, line, f"{speaker.strip()!r} says nothing after the colon")
        utterances.append((speaker.strip(), said.strip()))
    return utterances


def _parse_kakao(lines: list[str]) -> list[tuple[str, str]]:
    utterances: list[tuple[str, str]] = []
    continuable = False  # the line before was a message, which a bare line continues
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        message = _kakao_message(line)
        if message is not None:
            utterances.append(message)
            continuable = True
        elif DATE_LINE.fullmatch(line) or HEADER.fullmatch(line) or PHONE_SYSTEM.fullmatch(line) \
                or SYSTEM_LINE.fullmatch(line.strip()):
            continuable = False
        elif continuable:
            speaker, said = utterances[-1]
            utterances[-1] = (speaker, f"{said}\n{line.strip()}" if said else line.strip())
        else:
            raise ChatLogError(lineno, line, "not a KakaoTalk message, date, header or system line, and no message "
                                             "before it to continue",
                               "KakaoTalk exports of the Korean phone and PC apps are read; other lines need 'speaker: text'")
    return [(speaker, said) for speaker, said in utterances if said]

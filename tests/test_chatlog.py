"""Plain-text chat logs: ``speaker: text`` lines and KakaoTalk exports (phone and PC, Korean locale)."""

from __future__ import annotations

import pytest

from diary_lightning.data.chatlog import ChatLogError, parse_chat_log
from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.records import DataError

PHONE = """민지 님과 카카오톡 대화
저장한 날짜 : 2024년 1월 6일 오후 12:00

2024년 1월 5일 금요일
2024년 1월 5일 오후 3:12, 민지 : 안녕
2024년 1월 5일 오후 3:13, 준호 : 응 안녕: 잘 지냈어?
2024년 1월 5일 오후 3:14, 준호님이 민지님을 초대했습니다.
2024. 1. 5. 오전 9:05, 민지 : 오늘 발표
끝나고 치킨 먹었어
2024년 1월 6일 토요일
2024년 1월 6일 오후 12:01, 민지님이 나갔습니다.
"""

PC = """민지 님과 카카오톡 대화
저장한 날짜 : 2024-01-06 12:00:00

--------------- 2024년 1월 5일 금요일 ---------------
[민지] [오후 3:12] 안녕
[준호] [오후 3:13] 응 안녕
준호님이 들어왔습니다.
[민지] [오전 11:05] 오늘 발표
끝나고 치킨 먹었어
"""


def test_phone_export_reads_speakers_not_timestamps():
    assert parse_chat_log(PHONE) == [
        ("민지", "안녕"), ("준호", "응 안녕: 잘 지냈어?"), ("민지", "오늘 발표\n끝나고 치킨 먹었어"),
    ]


def test_pc_export_reads_speakers_and_skips_system_lines():
    assert parse_chat_log(PC) == [("민지", "안녕"), ("준호", "응 안녕"), ("민지", "오늘 발표\n끝나고 치킨 먹었어")]


def test_plain_speaker_text_lines_are_kept():
    assert parse_chat_log("P01: 오늘 비 왔어\n\nP02: 우산은?\n") == [("P01", "오늘 비 왔어"), ("P02", "우산은?")]


def test_a_line_separator_inside_a_message_is_part_of_it():
    chat = "P01: 오늘 비 왔어\u2028진짜 많이\r\nP02: 우산은?\u0085없었어?\nP03 우산\n"
    with pytest.raises(ChatLogError, match=r"line 3: no 'speaker:'"):
        parse_chat_log(chat)
    assert parse_chat_log(chat.rpartition("P03")[0]) == [("P01", "오늘 비 왔어\u2028진짜 많이"),
                                                         ("P02", "우산은?\u0085없었어?")]


def test_a_line_before_any_kakao_message_is_an_error_naming_it():
    with pytest.raises(ChatLogError, match=r"line 2: not a KakaoTalk message.*'아무 형식도 아닌 줄'") as error:
        parse_chat_log("민지 님과 카카오톡 대화\n아무 형식도 아닌 줄\n[민지] [오후 3:12] 안녕\n")
    assert error.value.lineno == 2


def test_kakao_file_through_read_dialogues(tmp_path):
    path = tmp_path / "kakao.txt"
    path.write_text(PHONE, encoding="utf-8")
    dialogue, = read_dialogues([str(path)], require_summary=False).dialogues
    assert dialogue.id == "kakao"
    # Consecutive messages of one speaker merge into a turn; whitespace (the line break) becomes one space.
    assert [(t.speaker, t.text) for t in dialogue.turns] == [
        ("민지", "안녕"), ("준호", "응 안녕: 잘 지냈어?"), ("민지", "오늘 발표 끝나고 치킨 먹었어"),
    ]


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("P01: 안녕\n그냥 한 줄\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"chat.txt: line 2: no 'speaker:' before the text \('그냥 한 줄'\)"):
        read_dialogues([str(path)], require_summary=False)

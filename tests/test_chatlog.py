"""Plain-text chat logs: ``speaker: text`` lines and KakaoTalk exports (phone and PC, Korean locale)."""

from __future__ import annotations

import pytest

from diary_lightning.data.chatlog import PLACEHOLDERS, ChatLogError, parse_chat_days, parse_chat_log
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
    # The second day (2024-01-06) holds only a system line: no dialogue for it.
    dialogue, = read_dialogues([str(path)], require_summary=False).dialogues
    assert dialogue.id == "kakao_2024-01-05"
    # Consecutive messages of one speaker merge into a turn; whitespace (the line break) becomes one space.
    assert [(t.speaker, t.text) for t in dialogue.turns] == [
        ("민지", "안녕"), ("준호", "응 안녕: 잘 지냈어?"), ("민지", "오늘 발표 끝나고 치킨 먹었어"),
    ]


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("P01: 안녕\n그냥 한 줄\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"chat.txt: line 2: no 'speaker:' before the text \('그냥 한 줄'\)"):
        read_dialogues([str(path)], require_summary=False)


TWO_DAYS_PHONE = """민지 님과 카카오톡 대화
저장한 날짜 : 2024년 1월 7일 오전 9:00

2024년 1월 5일 금요일
2024년 1월 5일 오후 6:02, 민지 : 사진
2024년 1월 5일 오후 6:02, 민지 : 오늘 점심 제육 😋
2024년 1월 5일 오후 6:03, 준호 : 맛있었겠다
2024년 1월 6일 토요일
2024. 1. 6. 오전 10:00, 민지 : 이모티콘
2024. 1. 6. 오전 10:01, 민지 : 주말이라 늦잠 잤어
2024. 1. 6. 오전 10:02, 준호 : 사진 2장
2024. 1. 6. 오전 10:02, 준호 : 나는 등산 왔어
"""

TWO_DAYS_PC = """민지 님과 카카오톡 대화
저장한 날짜 : 2024-01-07 09:00:00

--------------- 2024년 1월 5일 금요일 ---------------
[민지] [18:02] 동영상
[민지] [18:02] 오늘 점심 제육
[준호] [18:03] 파일: 회의록.pdf
[준호] [18:03] 맛있었겠다
--------------- 2024년 1월 6일 토요일 ---------------
[민지] [오전 10:01] 삭제된 메시지입니다.
[민지] [오전 10:01] 주말이라 늦잠 잤어
[준호] [오전 10:02] 음성메시지
[준호] [오전 10:02] 나는 등산 왔어
"""

EN_PHONE = """Talk with 수아
Date Saved : 3/16/25, 9:00 AM

Friday, March 14, 2025
3/14/25, 8:03 AM, 수아 : Photo
3/14/25, 8:03 AM, 수아 : 오늘 점심 제육
3/14/25, 8:04 AM, 민지 : 맛있었겠다
3/14/25, 8:05 AM, 준호 joined this chatroom.
Saturday, March 15, 2025
March 15, 2025 at 10:01 AM, 수아 : Emoticons
3/15/25, 10:01 AM, 수아 : 주말이라 늦잠 잤어
3/15/25, 10:02 AM, 민지 : This message has been deleted.
3/15/25, 10:02 AM, 민지 : 나는 등산 왔어
"""

EN_PC = """수아 KakaoTalk Chats
Date Saved : 2025-03-16 09:00:00

--------------- Friday, March 14, 2025 ---------------
[수아] [8:03 AM] 2 photos
[수아] [8:03 AM] 오늘 점심 제육
[민지] [8:04 AM] File: notes.pdf
[민지] [8:04 AM] 맛있었겠다
--------------- Saturday, March 15, 2025 ---------------
[수아] [10:01 AM] Video
[수아] [10:01 AM] 주말이라 늦잠 잤어
민지 left this chatroom.
[민지] [10:02 AM] Voice message
[민지] [10:02 AM] 나는 등산 왔어
"""


@pytest.mark.parametrize("export, first, second", [
    (TWO_DAYS_PHONE, "2024-01-05", "2024-01-06"), (TWO_DAYS_PC, "2024-01-05", "2024-01-06"),
    (EN_PHONE, "2025-03-14", "2025-03-15"), (EN_PC, "2025-03-14", "2025-03-15"),
], ids=["korean-phone", "korean-pc", "english-phone", "english-pc"])
def test_an_export_is_cut_into_days_without_placeholders(export, first, second):
    days = parse_chat_days(export)
    assert [day.date for day in days] == [first, second]
    # Attachment and deleted-message placeholders are not what anyone said; a message of only one is gone.
    assert [said for _, said in days[0].utterances] == ["오늘 점심 제육" + (" 😋" if "😋" in export else ""), "맛있었겠다"]
    assert [said for _, said in days[1].utterances] == ["주말이라 늦잠 잤어", "나는 등산 왔어"]


@pytest.mark.parametrize("placeholder", ["사진", "사진 12장", "이모티콘", "동영상", "파일: 보고서.hwp", "음성메시지",
                                         "삭제된 메시지입니다.", "Photo", "3 photos", "Emoticons", "Video",
                                         "File: a.pdf", "Voice message", "This message has been deleted."])
def test_every_placeholder_is_in_the_one_list(placeholder):
    assert PLACEHOLDERS.fullmatch(placeholder)
    # Text that only mentions one stays.
    assert not PLACEHOLDERS.fullmatch(f"{placeholder} 보냈어")


def test_a_placeholder_line_of_a_multiline_message_goes_and_the_text_stays():
    assert parse_chat_log("[민지] [오후 3:12] 이모티콘\n웃겨 진짜\n[준호] [오후 3:13] 사진\n") == [("민지", "웃겨 진짜")]


def test_a_plain_chat_without_dates_stays_one_dialogue(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("P01: 오늘 비 왔어\nP02: 사진\nP01: 우산은?\n", encoding="utf-8")
    dialogue, = read_dialogues([str(path)], require_summary=False).dialogues
    assert dialogue.id == "plain"
    # Hand-written lines are taken as written: only KakaoTalk's own placeholders are dropped.
    assert [t.text for t in dialogue.turns] == ["오늘 비 왔어", "사진", "우산은?"]


@pytest.mark.parametrize("export", [TWO_DAYS_PHONE, EN_PC])
def test_two_days_read_as_two_dialogues_named_by_date_or_one_with_split_days_off(tmp_path, export):
    path = tmp_path / "chat.txt"
    path.write_text(export, encoding="utf-8")
    days = read_dialogues([str(path)], require_summary=False).dialogues
    assert [d.id.rpartition("_")[0] for d in days] == ["chat", "chat"]
    assert [d.id for d in days] == sorted(d.id for d in days) and days[0].id != days[1].id
    whole, = read_dialogues([str(path)], require_summary=False, split_days=False).dialogues
    assert whole.id == "chat"
    assert len(whole.turns) == sum(len(d.turns) for d in days)


def test_an_export_in_another_locale_is_refused_naming_the_locales_read(tmp_path):
    path = tmp_path / "jp.txt"
    path.write_text("2024/01/05 15:12 民智 : こんにちは\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"jp.txt: line 1: a KakaoTalk export in a language or layout that is not "
                                        r"read here.*Korean and English apps \(phone and PC\)"):
        read_dialogues([str(path)], require_summary=False)

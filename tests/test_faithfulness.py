"""The faithfulness check on hand-written chats: a true diary passes, each kind of untrue sentence is named, and the
places it is used (predict rows, validation/test scores, the collator that carries the chat) get it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from diary_lightning.data.batching import DiaryCollator
from diary_lightning.evaluation import samples
from diary_lightning.evaluation.faithfulness import (FAILURES, faithfulness_evidence, faithfulness_failures,
                                                     faithfulness_scores, numbers)

# A friend's news, the writer's own day, a suggestion not taken up, numbers and a negation.
KAKAO = [
    {"speaker": "수아", "text": "나 다음 달에 대전으로 이사 가ㅠㅠ"},
    {"speaker": "지호", "text": "헐 진짜?? 갑자기?"},
    {"speaker": "수아", "text": "회사가 옮겨서 ㅠ 집 구하느라 정신없어"},
    {"speaker": "지호", "text": "나는 오늘 면접 봤어 오후 2시에"},
    {"speaker": "지호", "text": "근데 지하철 놓쳐서 택시 탔어 만 이천원 나옴"},
    {"speaker": "수아", "text": "결과는 언제 나와?"},
    {"speaker": "지호", "text": "금요일에 연락 준대"},
    {"speaker": "수아", "text": "주말에 떡볶이 먹으러 가자 내가 쏠게"},
    {"speaker": "지호", "text": "좋아 ㅋㅋ"},
    {"speaker": "지호", "text": "아 그리고 점심은 못 먹었어 긴장돼서"},
]
WRITER = "지호"
TRUE = ("오늘 오후 2시에 면접을 봤다. 지하철을 놓쳐서 택시를 탔는데 만 이천 원이 나왔다. 결과는 금요일에 연락을 준다고 했다. "
        "긴장돼서 점심은 못 먹었다. 수아가 다음 달에 대전으로 이사 간다고 해서 아쉬웠다. 주말에 같이 떡볶이를 먹기로 했다.")

BOT = [
    {"speaker": "AI", "text": "오늘 하루는 어떠셨어요?"},
    {"speaker": "Human", "text": "야근하고 방금 들어왔어요 너무 피곤해요"},
    {"speaker": "AI", "text": "고생 많으셨어요. 자기 전에 가벼운 스트레칭을 해 보시는 건 어때요?"},
    {"speaker": "Human", "text": "귀찮은데 ㅋㅋ 그냥 씻고 잘래요"},
    {"speaker": "Human", "text": "동생은 내일 제주도 여행 간대요 부럽다"},
]


def test_a_true_diary_passes() -> None:
    assert faithfulness_failures(TRUE, KAKAO, WRITER) == []
    assert faithfulness_failures("야근하고 들어와서 너무 피곤했다. 동생은 내일 제주도로 여행을 간다고 해서 부러웠다. "
                                 "그냥 씻고 자야겠다.", BOT, "Human") == []


@pytest.mark.parametrize("diary", [
    "오늘 면접을 봤다.",                                   # leaving out most of the day
    "면접 보러 가는 길에 지하철을 놓쳐서 결국 택시를 탔다.",     # other words
    "하루 종일 긴장해서 정신이 없었다. 그래도 오늘 하루 잘 버텼다.",  # feelings and diary glue
    "친구가 다음 달에 대전으로 이사 간다고 했다.",             # a friend's news, told as hers
    "수아는 집을 구하느라 정신이 없다고 했다.",
    "챗봇이 자기 전에 스트레칭을 해 보라고 했지만 그냥 잤다.",   # checked against BOT below
])
def test_what_a_diary_legitimately_does_passes(diary: str) -> None:
    dialogue = BOT if "챗봇" in diary else KAKAO
    assert faithfulness_failures(diary, dialogue, "Human" if dialogue is BOT else WRITER) == []


@pytest.mark.parametrize("diary, failure", [
    ("다음 달에 대전으로 이사를 간다.", "wrong_person"),                 # her move, told as mine
    ("수아가 오늘 면접을 봤다고 했다.", "wrong_person"),                  # my interview, given to her
    ("자기 전에 가벼운 스트레칭을 했다.", "suggestion_as_done"),          # the bot only suggested it
    ("주말에 수아랑 떡볶이를 먹었다.", "suggestion_as_done"),              # planned, not done
    ("택시를 탔는데 만 오천 원이 나왔다.", "wrong_number"),
    ("오후 3시에 면접을 봤다.", "wrong_number"),
    ("결과는 목요일에 연락을 준다고 했다.", "wrong_number"),
    ("면접 끝나고 강남역 스타벅스에서 라떼를 마셨다.", "invented"),
    ("점심을 먹었다.", "negation_flip"),                                  # 못 먹었어
])
def test_each_untrue_sentence_is_named(diary: str, failure: str) -> None:
    dialogue, writer = (BOT, "Human") if "스트레칭" in diary else (KAKAO, WRITER)
    assert faithfulness_failures(diary, dialogue, writer) == [failure]
    # Added to a true diary, the one sentence is what fails.
    assert faithfulness_failures((TRUE if dialogue is KAKAO else "너무 피곤했다.") + " " + diary, dialogue,
                                 writer) == [failure]


def test_a_friends_move_told_as_the_writers_in_a_chat_with_the_bot() -> None:
    assert faithfulness_failures("내일 제주도로 여행을 간다.", BOT, "Human") == ["wrong_person"]


def test_evidence_names_the_supporting_turns_and_why_a_sentence_fails() -> None:
    evidence = faithfulness_evidence(TRUE + " 다음 달에 대전으로 이사를 간다.", KAKAO, WRITER)
    assert [e.sentence for e in evidence][0] == "오늘 오후 2시에 면접을 봤다."
    assert (3, "지호") in evidence[0].turns and evidence[0].failure is None
    last = evidence[-1]
    assert last.failure == "wrong_person" and (0, "수아") in last.turns and "수아" in last.reason
    assert last.to_dict() == {"sentence": last.sentence, "turns": [list(t) for t in last.turns],
                              "failure": "wrong_person", "reason": last.reason}
    assert faithfulness_evidence("", KAKAO, WRITER) == []


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"dialogue\[1\]: expected a mapping with 'speaker' and 'text'"):
        faithfulness_failures("면접을 봤다.", [KAKAO[0], ("지호", "안녕")], WRITER)
    with pytest.raises(ValueError, match="writer: expected a speaker name"):
        faithfulness_failures("면접을 봤다.", KAKAO, "")


@pytest.mark.parametrize("text, found", [
    ("오후 3시에 만나", {(3.0, "시")}),
    ("3만 5천원 냈어", {(35000.0, "원")}),
    ("5만2천5백씩 보내", {(52500.0, "")}),
    ("두 시간 기다렸다", {(2.0, "시간")}),
    ("셋이 갔다", {(3.0, "명")}),
    ("금요일에 보자", {(-5.0, "요일")}),
    ("한 번 해 봤다", set()),
])
def test_numbers_with_their_units(text: str, found: set) -> None:
    assert numbers(text) == found


def test_scores_count_shares() -> None:
    scores = faithfulness_scores([[], ["wrong_person"], ["wrong_person", "invented"], []])
    assert scores["faithful"] == 0.5 and scores["wrong_person_frac"] == 0.5 and scores["invented_frac"] == 0.25
    assert set(scores) == {"faithful", *(f"{f}_frac" for f in FAILURES)}
    assert faithfulness_scores([])["faithful"] == 0.0


def test_the_collator_carries_the_chat_for_predict() -> None:
    examples = [{"input_ids": [5, 6], "id": "a", "writer": "지호", "speakers": ["수아", "지호"], "texts": ["안녕", "응"]}]
    batch = DiaryCollator(0, "left")(examples)
    assert batch["turns"] == [[{"speaker": "수아", "text": "안녕"}, {"speaker": "지호", "text": "응"}]]


def test_generated_rows_and_their_scores_carry_faithfulness() -> None:
    class Module:
        device = torch.device("cpu")

        def generate(self, ids, mask):
            return [TRUE, "다음 달에 대전으로 이사를 간다."], [False, False]

    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3, dtype=torch.long),
             "id": ["a", "b"], "summary": [TRUE, TRUE], "dialogue": ["…", "…"], "writer": [WRITER, WRITER],
             "turns": [KAKAO, KAKAO]}
    rows = samples.generate_rows(Module(), [batch])
    assert [r["faithfulness_failures"] for r in rows] == [[], ["wrong_person"]]
    scores = samples.corpus_scores(rows, "eojeol")
    assert scores["faithful"] == 0.5 and scores["wrong_person_frac"] == 0.5
    # A row without its chat is left out of the shares rather than counted as faithful.
    assert samples.row_faithfulness({"diary": TRUE, "writer": WRITER}) is None


@pytest.mark.slow
def test_importable_without_torch_and_kiwi_loads_on_first_check() -> None:
    code = ("import sys, diary_lightning.evaluation.faithfulness as f; "
            "assert not [m for m in ('torch', 'lightning', 'transformers', 'kiwipiepy') if m in sys.modules]; "
            "f.faithfulness_failures('면접을 봤다.', [{'speaker': 'a', 'text': '면접 봤어'}], 'a'); "
            "from diary_lightning.evaluation.diary_style import kiwi; assert kiwi.cache_info().misses == 1")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_predict_line_gains_its_faithfulness_failures(tmp_path) -> None:
    from diary_lightning.io.jsonl import JsonlAppender
    from diary_lightning.training.callbacks import PredictionsJsonl

    writer = PredictionsJsonl(str(tmp_path / "diaries.jsonl"))
    writer._file = JsonlAppender(writer.partial)  # what on_predict_start opens on rank 0
    rows = [{"id": "a", "writer": WRITER, "diary": TRUE, "truncated": False, "style_failures": [],
             "faithfulness_failures": samples.row_faithfulness({"diary": TRUE, "turns": KAKAO, "writer": WRITER})},
            {"id": "b", "writer": WRITER, "diary": "다음 달에 대전으로 이사를 간다.", "truncated": False, "style_failures": [],
             "faithfulness_failures": ["wrong_person"]}]
    writer.write_on_batch_end(None, None, rows)
    writer._file.close()
    import json
    lines = [json.loads(line) for line in writer.partial.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["faithfulness_failures"]) for r in lines] == [("a", []), ("b", ["wrong_person"])]
    assert set(lines[0]) == {"id", "writer", "diary", "style_failures", "faithfulness_failures"}


# A yes or no answer tells the fact the question asked: the writer was asked and said not yet.
ANSWERS = [
    {"speaker": "민지", "text": "너 운전면허 시험 봤어?"},
    {"speaker": "도현", "text": "아니 아직"},
    {"speaker": "민지", "text": "주말에 캠핑 다녀왔어?"},
    {"speaker": "도현", "text": "응 다녀왔어 가평으로"},
]


@pytest.mark.parametrize("diary, failures", [
    ("운전면허 시험을 봤다.", ["negation_flip"]),          # 아니 아직
    ("아직 운전면허 시험을 안 봤다.", []),
    ("주말에 가평으로 캠핑을 다녀왔다.", []),              # 다녀왔다 is one verb however Kiwi cuts it
    ("주말에 캠핑을 안 다녀왔다.", ["negation_flip"]),
])
def test_a_yes_or_no_answer_tells_the_question_as_a_fact(diary: str, failures: list[str]) -> None:
    assert faithfulness_failures(diary, ANSWERS, "도현") == failures


def test_a_no_with_words_of_its_own_or_a_condition_denies_nothing_whole() -> None:
    chat = [{"speaker": "AI", "text": "보고서 다 쓰셨어요?"}, {"speaker": "Human", "text": "아니요 절반만요"},
            {"speaker": "AI", "text": "자격증이 있으면 지원할 수 있대요"}]
    # 아니요 절반만: not all of it, but some of it was written.
    assert faithfulness_failures("보고서를 절반만 썼다.", chat, "Human") == []
    # 있으면: a condition, not the bot saying the writer has one.
    assert faithfulness_failures("자격증이 없어서 아쉬웠다.", chat, "Human") == []


def test_a_topic_is_the_subject_over_a_reason_and_an_honorific_noun_is_a_person() -> None:
    chat = [{"speaker": "Human", "text": "오늘 카페에 손님이 와서 한 시간 동안 소리 지름"},
            {"speaker": "Human", "text": "같이 일하는 재민 선배는 몸살 나서 조퇴했어"},
            {"speaker": "AI", "text": "고생 많으셨어요"}]
    assert faithfulness_failures("손님이 한 시간 동안 소리를 질렀다.", chat, "Human") == []
    assert faithfulness_failures("재민 선배는 몸살이 나서 조퇴했다.", chat, "Human") == []
    # The senior's sick leave, told as the writer's.
    assert faithfulness_failures("몸살이 나서 조퇴했다.", chat, "Human") == ["wrong_person"]


def test_the_writer_speaking_of_you_tells_the_other_speakers_news() -> None:
    chat = [{"speaker": "유나", "text": "나 오늘부터 수영 다녀"},
            {"speaker": "태오", "text": "나도 같이 갈까"},
            {"speaker": "유나", "text": "너는 출장 때문에 못 오잖아"}]
    assert faithfulness_failures("태오는 출장 때문에 수영에 못 온다.", chat, "유나") == []


def test_a_speakers_name_that_kiwi_cuts_in_two_is_still_a_person() -> None:
    chat = [{"speaker": "세아", "text": "나는 과제 절반만 냈어"}, {"speaker": "은호", "text": "나는 아예 못 냈어 ㅠ"}]
    # 세아도 is 세/MM 아/NNG to Kiwi: read as no one, the clause would be the writer's, who did not hand it in.
    assert faithfulness_failures("세아도 과제를 절반만 냈다고 했다.", chat, "은호") == []


def test_a_sentence_that_only_reports_words_is_not_the_writers_own() -> None:
    chat = [{"speaker": "준서", "text": "나 회사 그만두기로 했어"},
            {"speaker": "준서", "text": "석 달 고민하다가 오늘 부장님한테 말함"},
            {"speaker": "준서", "text": "쉬면서 디자인 공부해 볼 거야"},
            {"speaker": "하늘", "text": "헐 응원해"}]
    # The second sentence names no one: it goes on with 준서's words.
    assert faithfulness_failures("준서가 회사를 그만둔다고 했다. 석 달 고민하다가 오늘 부장님한테 말했고, 쉬면서 "
                                 "디자인 공부를 해 볼 거라고 했다.", chat, "하늘") == []
    assert faithfulness_failures("석 달 고민하다가 회사를 그만두기로 했다.", chat, "하늘") == ["wrong_person"]


def test_a_state_of_the_world_and_a_relations_name_are_nobodys_act_and_a_person() -> None:
    chat = [{"speaker": "엄마", "text": "도착했어? 나는 이제 자려고 서울은 밤 11시야"},
            {"speaker": "유진", "text": "응 방금 호텔 왔어 여기는 오후 4시"},
            {"speaker": "유진", "text": "사촌 민규는 비행기 놓쳐서 못 왔어"}]
    assert faithfulness_failures("여기는 오후 4시인데 서울은 밤 11시였다.", chat, "유진") == []
    # 민규 is one-syllable nouns to Kiwi; 사촌 stands for him, so 못 왔다 is his, and the writer's coming is no flip.
    assert faithfulness_failures("사촌 민규는 비행기를 놓쳐서 못 왔다. 나는 호텔에 왔다.", chat, "유진") == []


def test_a_photo_in_an_export_is_a_photo_sent() -> None:
    chat = [{"speaker": "아빠", "text": "바다 사진 좀 보내 봐"}, {"speaker": "지안", "text": "사진"},
            {"speaker": "아빠", "text": "멋지다"}]
    assert faithfulness_failures("아빠한테 바다 사진을 보내 드렸다.", chat, "지안") == []
    assert faithfulness_failures("아빠한테 바다 사진을 보내 드렸다.", chat[:1], "지안") == ["suggestion_as_done"]


def test_a_clause_is_whose_best_matching_message_it_is() -> None:
    chat = [{"speaker": "Human", "text": "오늘 비 와서 등산 취소래"},
            {"speaker": "Human", "text": "형은 벌써 기차표 취소하고 환불받았대"},
            {"speaker": "AI", "text": "아쉬우시겠어요"},
            {"speaker": "Human", "text": "나는 집에서 밀린 빨래 했어"}]
    # The brother's refund, told as the writer's: 취소 is the writer's word too, but for the hike.
    assert faithfulness_failures("기차표를 취소하고 환불을 받았다.", chat, "Human") == ["wrong_person"]
    assert faithfulness_failures("형은 기차표를 취소하고 환불을 받았다고 했다.", chat, "Human") == []
    # The writer's laundry, given to a friend.
    assert faithfulness_failures("친구가 집에서 밀린 빨래를 했다고 했다.", chat, "Human") == ["wrong_person"]
    assert faithfulness_failures("집에서 밀린 빨래를 했다.", chat, "Human") == []


@pytest.mark.parametrize("diary, failures", [
    ("따뜻한 차를 마시면서 일찍 잤다.", ["suggestion_as_done"]),     # 차 마시면서 … 어때요: the whole of it suggested
    ("여권 사본을 만들었다.", ["suggestion_as_done"]),                # 만들어 두시면 편해요: advice
    ("따뜻한 차를 마시라고 했다.", []),
])
def test_what_is_only_suggested_is_not_done(diary: str, failures: list[str]) -> None:
    chat = [{"speaker": "AI", "text": "오늘은 따뜻한 차 드시면서 일찍 주무시는 건 어때요?"},
            {"speaker": "AI", "text": "여행 전에 여권 사본을 만들어 두시면 편해요."}]
    assert faithfulness_failures(diary, chat, "Human") == failures


def test_another_speakers_plan_told_as_the_writers_done_act_never_happened() -> None:
    chat = [{"speaker": "세린", "text": "나 이제 한 달에 두 번 등산 다닐 거야"}, {"speaker": "도윤", "text": "오 멋지다"}]
    assert faithfulness_failures("한 달에 두 번 등산을 다녔다.", chat, "도윤") == ["suggestion_as_done"]
    assert faithfulness_failures("세린이는 한 달에 두 번 등산을 다닐 거라고 했다.", chat, "도윤") == []


@pytest.mark.parametrize("diary", [
    "월급이 2%밖에 안 올랐다.",                                   # 밖에 안: only so much, a yes
    "내일도 두통이 안 나으면 병원에 가 봐야겠다.",                  # a condition with 내일 is still a condition
    "누나는 오셨고 동생은 시험 때문에 못 왔다.",                    # the brother's no says nothing of the sister
    "동생이 사 온 빵은 거의 못 먹었다.",                            # the brother is the subject of 사 온 only
    "내일은 반차를 냈다.",                                         # asked for today, for tomorrow
    "팀장님이 왜 보고를 안 했냐고 물어보셨다.",                       # a question someone asked, not a fact
    "동호회 회비 3만 원은 바로 보냈다.",                             # 보내 주세요 / 보냈어요: told done in a word
])
def test_what_the_chat_does_not_deny(diary: str) -> None:
    chat = [{"speaker": "지유", "text": "이번 달 동호회 회비 3만원 보내주세요"},
            {"speaker": "태린", "text": "보냈어요"},
            {"speaker": "지유", "text": "월급 올랐어?"},
            {"speaker": "태린", "text": "2% 올랐어 ㅋㅋ 두통도 아직 안 나아서 내일 오전 반차 냈어"},
            {"speaker": "태린", "text": "누나는 아까 왔는데 동생은 시험이라 못 왔어"},
            {"speaker": "태린", "text": "동생이 빵 사 왔는데 속이 안 좋아서 거의 못 먹었어"},
            {"speaker": "태린", "text": "팀장님이 보고 왜 안 했냐고 물어보심 나는 했는데"}]
    assert faithfulness_failures(diary, chat, "태린") == []


def test_a_group_a_heard_clause_a_shared_setting_and_units_are_read_as_a_diary_means_them() -> None:
    chat = [{"speaker": "언니", "text": "나 10일 토요일에 이사해 짐 엄청 많아"},
            {"speaker": "하람", "text": "헐 미안 나 그날 일해서 못 가"},
            {"speaker": "하람", "text": "대신 전날 가서 짐 싸는 거 도와줄게"},
            {"speaker": "언니", "text": "오 고마워 ㅋㅋ 나 요즘 뜨개질 배운다 목도리 만드는 중"},
            {"speaker": "하람", "text": "의사가 석 달 뒤에 피검사 다시 하재 몸무게도 2kg 빼래"},
            {"speaker": "언니", "text": "우리 셋이 하던 적금은 계속 넣자"}, {"speaker": "하람", "text": "ㅇㅇ 그래"},
            {"speaker": "언니", "text": "나는 연말 제주 여행도 그대로 가고 싶어"}]
    for diary in ["대신 전날 가서 짐 싸는 걸 돕기로 했다.",                  # 도와줄게: the writer's act, on her day
                  "언니가 뜨개질을 배운다는데 목도리를 만든다고 해서 웃겼다.",  # 만든다는데: heard, hers
                  "3개월 뒤에 피검사를 다시 하고 몸무게도 2kg 빼야 한다.",     # 석 달 = 3개월; kg is a unit
                  "셋은 적금을 계속 넣기로 했다.",                           # the three of them, together
                  "셋은 적금을 계속 넣고 연말 제주 여행도 그대로 가기로 했다."]:  # ...over 고 too
        assert faithfulness_failures(diary, chat, "하람") == [], diary
    assert faithfulness_failures("10일 토요일에 이사했다.", chat, "하람") == ["wrong_person"]


def test_the_memo_style_tells_done_and_an_experience_is_in_the_past() -> None:
    chat = [{"speaker": "AI", "text": "택배 반품 신청은 오늘 해 두시면 어때요?"}, {"speaker": "Human", "text": "이미 신청함ㅋㅋ"},
            {"speaker": "Human", "text": "근데 나 반품은 한 번도 안 해봄"}]
    assert faithfulness_failures("택배 반품 신청을 했다.", chat, "Human") == []             # 신청함: done
    assert faithfulness_failures("반품은 한 번도 해 본 적이 없다.", chat, "Human") == []   # 적이 없다 = 안 해봄
    assert faithfulness_failures("반품은 전에도 해 본 적이 있다.", chat, "Human") == ["negation_flip"]


def test_no_negation_is_read_inside_someones_words_made_a_modifier() -> None:
    chat = [{"speaker": "Human", "text": "지수도 그 결혼식 간대"}, {"speaker": "Human", "text": "가서 분위기 알려준대 근데 난 별로 안 궁금해"}]
    # 안 궁금하다 is the writer's no, not a no to 알려 준다.
    assert faithfulness_failures("지수는 결혼식에 간다고 했는데 분위기를 알려 준다는 말에 안 궁금하다고 했다.", chat,
                                 "Human") == []


def test_a_speakers_name_kiwi_reads_as_another_noun_is_still_the_speaker() -> None:
    chat = [{"speaker": "다빈", "text": "나 토요일에 남자친구 부모님 뵈러 가"}, {"speaker": "소이", "text": "떨리겠다"}]
    # 다빈은 is 다비/NNP ᆫ/JX to Kiwi: read as a thing the chat never mentions, it would be invented.
    assert faithfulness_failures("다빈은 토요일에 남자친구 부모님을 뵈러 간다고 했다.", chat, "소이") == []


def test_a_fragment_goes_on_with_the_news_before_and_a_bare_person_opening_a_clause_is_its_subject() -> None:
    chat = [{"speaker": "Human", "text": "동기 윤서 공모전 대상 받았대"}, {"speaker": "Human", "text": "상금 300"},
            {"speaker": "AI", "text": "대단하네요!"},
            {"speaker": "Human", "text": "선배 다음 주에 이직해서 요즘 인수인계로 바쁨"}]
    # 상금 300 is the friend's prize money, not the writer's.
    assert faithfulness_failures("공모전에서 대상을 받아 상금 300을 받았다.", chat, "Human") == ["wrong_person"]
    assert faithfulness_failures("윤서가 공모전에서 대상을 받아 상금 300을 받았다고 했다.", chat, "Human") == []
    # 선배 다음 주에 이직해서: the senior's move.
    assert faithfulness_failures("다음 주에 이직한다.", chat, "Human") == ["wrong_person"]


def test_a_clause_of_whether_or_of_purpose_goes_with_its_verb() -> None:
    chat = [{"speaker": "AI", "text": "장학금 신청 자격이 되는지 학과 사무실에 한번 알아보시는 건 어때요?"},
            {"speaker": "AI", "text": "오늘 저녁엔 한강 야경을 보러 나가 보시는 것도 좋아요."}]
    # 되는지 and 보러 once cut the clause, leaving 한번 알아봤다 and 나가 봤다 too short to compare.
    assert faithfulness_failures("장학금 신청 자격이 되는지 한번 알아봤다.", chat, "Human") == ["suggestion_as_done"]
    assert faithfulness_failures("저녁에 한강 야경을 보러 나갔다.", chat, "Human") == ["suggestion_as_done"]


def test_a_companion_and_two_a_name_with_its_subject_particle_and_a_person_only_spoken_of() -> None:
    chat = [{"speaker": "Human", "text": "주말에 하윤이랑 전시 보러 가기로 했어"},
            {"speaker": "Human", "text": "친구 도겸이 다음 달에 캐나다로 유학 간대"},
            {"speaker": "Human", "text": "동생 수호는 이번에 반장 됐대 나는 중학교 때 반장 해 봤는데"}]
    # 하윤이랑 둘이: the writer and one companion are two, no count the chat must give.
    assert faithfulness_failures("주말에 하윤이랑 둘이 전시를 보러 가기로 했다.", chat, "Human") == []
    # 도겸이 유학 간다: Kiwi keeps 이 in the name, and the 이 is the subject's particle.
    assert faithfulness_failures("도겸이 다음 달에 캐나다로 유학을 간다고 했다.", chat, "Human") == []
    assert numbers("친구들이랑 셋이 갔다") == {(3.0, "명")}
    # 수호 is spoken of, no speaker: the writer's own words about him are told in the writer's words.
    assert faithfulness_failures("동생 수호는 이번에 반장이 됐다.", chat, "Human") == []


def test_what_the_writer_says_yes_to_was_asked_of_the_writer() -> None:
    chat = [{"speaker": "오빠", "text": "나 다음 주 토요일에 이사해"}, {"speaker": "오빠", "text": "일요일에 와서 짐 정리 좀 도와"},
            {"speaker": "서윤", "text": "알겠어 일요일에 갈게"}]
    # 도와 is a request here, not the brother's own statement: the writer's plan to help is hers.
    assert faithfulness_failures("일요일에 가서 짐 정리를 돕기로 했다.", chat, "서윤") == []
    assert faithfulness_failures("다음 주 토요일에 이사한다.", chat, "서윤") == ["wrong_person"]


def test_a_subject_inside_a_modifier_belongs_to_the_modifier() -> None:
    chat = [{"speaker": "Human", "text": "아빠가 사 놓은 케이크 내가 다 먹음"},
            {"speaker": "Human", "text": "동생이 아빠가 없는 걸 알고 계속 울었어"}]
    # 아빠께서 사 놓으신: 놓 is a helper inside the modifier; 아빠 did not eat the cake.
    assert faithfulness_failures("아빠께서 사 놓으신 케이크를 내가 다 먹었다.", chat, "Human") == []
    # 동생이 아빠가 없는 걸: the second subject is the modifier's; crying is the brother's, told as his.
    assert faithfulness_failures("동생이 아빠가 없는 걸 알고 계속 울었다고 했다.", chat, "Human") == []


def test_a_no_kiwi_leaves_in_the_next_verbs_clause_is_the_earlier_predicates() -> None:
    # A dialect ending Kiwi does not cut (없는디) and a modifier (재미없는) keep their 없 to themselves.
    chat = [{"speaker": "민아", "text": "너 여권 있어?"},
            {"speaker": "도윤", "text": "여권 없는디 일단 다음 주에 구청 가서 신청할게"},
            {"speaker": "도윤", "text": "어제 재미없는 영화 봤어 졸려"}]
    assert faithfulness_failures("여권이 없어서 다음 주에 구청에 가서 신청하기로 했다.", chat, "도윤") == []
    assert faithfulness_failures("어제 재미없는 영화를 봤다.", chat, "도윤") == []
    assert "negation_flip" in faithfulness_failures("어제 영화를 안 봤다.", chat, "도윤")


def test_a_group_question_answered_yes_is_the_groups_plan_not_the_answerers() -> None:
    chat = [{"speaker": "하린", "text": "캠핑 장비는 내가 다 챙길게"},
            {"speaker": "태오", "text": "일요일 저녁에 버스 타고 돌아오는 거지?"},
            {"speaker": "하린", "text": "ㅇㅇ 일요일 6시 버스"},
            {"speaker": "서진", "text": "난 일요일 오전에 먼저 갈게 알바 있어서"}]
    assert faithfulness_failures("일요일 6시 버스로 돌아오는데, 서진이는 알바 때문에 오전에 먼저 간다.", chat, "태오") == []
    # ...while what one of them says of themself stays theirs.
    assert "wrong_person" in faithfulness_failures("캠핑 장비는 내가 다 챙기기로 했다.", chat, "태오")


def test_a_plain_verb_is_matched_by_most_of_its_words_told_over_a_question_and_answer() -> None:
    chat = [{"speaker": "AI", "text": "주말에 뭐 하셨어요?"},
            {"speaker": "Human", "text": "동생이랑 호수공원 산책 갔어"},
            {"speaker": "AI", "text": "어느 호수공원이요?"},
            {"speaker": "Human", "text": "일산 호수공원"}]
    assert faithfulness_failures("동생이랑 일산 호수공원에 산책을 갔다.", chat, "Human") == []
    assert "negation_flip" in faithfulness_failures("동생이랑 일산 호수공원에 산책을 안 갔다.", chat, "Human")


def test_a_message_of_nouns_goes_with_the_act_its_speaker_told_just_before() -> None:
    # The act in one message, its setting in the answer to the bot's question: one piece of the writer's news.
    chat = [{"speaker": "AI", "text": "오늘은 어떤 하루였어요?"},
            {"speaker": "Human", "text": "저 오늘 면접 붙었어요!!"},
            {"speaker": "AI", "text": "축하해요! 어떤 면접이었어요?"},
            {"speaker": "Human", "text": "한빛전자 최종 면접이요 세 번째 지원"}]
    assert faithfulness_failures("세 번째 지원 만에 한빛전자 최종 면접에 붙었다.", chat, "Human") == []
    assert "wrong_person" in faithfulness_failures("친구가 세 번째 지원 만에 한빛전자 최종 면접에 붙었다고 했다.",
                                                   chat, "Human")


def test_a_name_and_its_i_before_a_noun_phrase_owns_it_before_a_noun_verb_is_its_subject() -> None:
    chat = [{"speaker": "성민", "text": "나 내일 이사하는데 짐이 너무 많아 ㅠ"},
            {"speaker": "지호", "text": "오늘 퇴근하고 가서 이삿짐 정리 도와줬잖아 ㅋㅋ 허리 아파"},
            {"speaker": "성민", "text": "고마워 나 다음 주에 휴학하고 제주도 가"}]
    # 성민이 이삿짐 정리는: the move is his, the help the writer's.
    assert faithfulness_failures("성민이 이삿짐 정리는 퇴근하고 가서 도와줬다.", chat, "지호") == []
    # With the object's particle the name is the subject: told as his act, it is the writer's help given to him.
    assert "wrong_person" in faithfulness_failures("성민이 이삿짐을 정리했다.", chat, "지호")
    # 성민이 휴학하고: he is the subject, and told as the writer's it is his news.
    assert "wrong_person" in faithfulness_failures("다음 주에 휴학하고 제주도에 간다.", chat, "지호")
    assert faithfulness_failures("성민이 다음 주에 휴학하고 제주도에 간다고 했다.", chat, "지호") == []


def test_the_writers_plan_for_the_day_itself_is_what_the_days_diary_tells_done() -> None:
    today = [{"speaker": "윤서", "text": "다들 등산 잘 다녀와"},
             {"speaker": "하준", "text": "나는 오늘 감기 기운 있어서 집에서 쉴게 ㅠ"}]
    assert faithfulness_failures("감기 기운이 있어서 등산은 빠지고 집에서 쉬었다.", today, "하준") == []
    later = [{"speaker": "윤서", "text": "다들 등산 잘 다녀와"},
             {"speaker": "하준", "text": "나는 주말에 감기 기운 있으면 집에서 쉴게 ㅠ"}]
    assert "suggestion_as_done" in faithfulness_failures("감기 기운이 있어서 집에서 쉬었다.", later, "하준")


def test_a_present_act_said_to_the_group_or_by_a_vocative_is_a_request_not_the_speakers_own() -> None:
    chat = [{"speaker": "민팀장", "text": "나 오늘 외근이라 좀 늦어"},
            {"speaker": "민팀장", "text": "다들 내일 오전 회의 자료 각자 정리해 와"},
            {"speaker": "지호", "text": "회의 몇 시예요?"},
            {"speaker": "민팀장", "text": "10시"}]
    assert faithfulness_failures("내일 10시 회의 전에 회의 자료를 정리해 가야 한다.", chat, "지호") == []
    assert faithfulness_failures("팀장님은 오늘 외근이라 늦는다고 했다.", chat, "지호") == []
    # Asked for, it is not done yet; and what the speaker says of themself stays theirs.
    assert "suggestion_as_done" in faithfulness_failures("오전 회의 자료를 각자 정리해 갔다.", chat, "지호")
    assert "wrong_person" in faithfulness_failures("오늘 외근이라 좀 늦었다.", chat, "지호")


def test_a_fact_done_is_compared_with_the_chats_past_not_a_present_wish() -> None:
    chat = [{"speaker": "다은", "text": "너 건강검진 받았어?"},
            {"speaker": "유나", "text": "아니 아직"},
            {"speaker": "다은", "text": "빨리 받아 연말 되면 병원 꽉 차"},
            {"speaker": "유나", "text": "감기 기운 있는데 이번 주에 건강검진 받아도 되나"}]
    assert "negation_flip" in faithfulness_failures("나는 건강검진을 받았다.", chat, "유나")
    assert faithfulness_failures("나는 아직 건강검진을 안 받았다.", chat, "유나") == []


def test_a_bare_result_verb_answering_a_question_is_about_the_answerers_message_before_it() -> None:
    chat = [{"speaker": "AI", "text": "요즘 어떻게 지내세요?"},
            {"speaker": "Human", "text": "오늘 팀장 공모 결과 나왔어요"},
            {"speaker": "AI", "text": "어머, 결과는 어떠셨어요?"},
            {"speaker": "Human", "text": "저는 안 됐어요 ㅠ"}]
    assert faithfulness_failures("팀장 공모 결과가 나왔는데 나는 안 됐다.", chat, "Human") == []
    assert "negation_flip" in faithfulness_failures("팀장 공모 결과가 나왔는데 나는 됐다.", chat, "Human")


def test_a_yes_after_a_fragment_of_news_asks_nothing_of_the_writer() -> None:
    chat = [{"speaker": "민채", "text": "나는 어제 동생이랑 싸웠는데 ㅠ"},
            {"speaker": "하늘", "text": "왜?"},
            {"speaker": "민채", "text": "용돈 문제로.. 이따 얘기할게"},
            {"speaker": "하늘", "text": "그래 언제든 연락해"}]
    assert faithfulness_failures("민채는 어제 동생이랑 용돈 문제로 싸웠다고 했다.", chat, "하늘") == []
    assert "wrong_person" in faithfulness_failures("어제 동생이랑 용돈 문제로 싸웠다.", chat, "하늘")


def test_an_event_with_a_things_subject_in_a_sentence_naming_nobody_is_the_writers() -> None:
    chat = [{"speaker": "세라", "text": "나 이번에 제주 지사로 파견 났어"},
            {"speaker": "유리", "text": "헐 진짜? 축하해야 되나"},
            {"speaker": "세라", "text": "오늘 비 엄청 온다 우산 챙겨"}]
    assert "wrong_person" in faithfulness_failures("제주 지사로 파견이 났다.", chat, "유리")
    assert faithfulness_failures("세라가 제주 지사로 파견이 났다고 했다.", chat, "유리") == []
    assert faithfulness_failures("오늘 비가 엄청 왔다.", chat, "유리") == []


def test_a_sentence_ending_in_ni_asks_even_where_kiwi_reads_a_connective() -> None:
    chat = [{"speaker": "엄마", "text": "나 오늘 정형외과 다녀왔어 무릎 괜찮대"},
            {"speaker": "엄마", "text": "윤아야 저녁은 삼계탕 챙겨 먹었니"},
            {"speaker": "윤아", "text": "네네"}]
    assert faithfulness_failures("저녁으로 삼계탕을 챙겨 먹었다.", chat, "윤아") == []


def test_a_support_verbs_noun_is_matched_with_the_chats_own_verb_for_it() -> None:
    chat = [{"speaker": "AI", "text": "공연 취소된 건 어떻게 됐어요?"},
            {"speaker": "Human", "text": "콘서트 티켓은 환불이 안 된대요 ㅠ 기차표만 취소했어요"}]
    assert "negation_flip" in faithfulness_failures("콘서트 티켓은 환불을 받았다.", chat, "Human")
    assert faithfulness_failures("콘서트 티켓은 환불을 못 받았다.", chat, "Human") == []


def test_a_speakers_own_no_denies_what_the_diary_quotes_them_saying() -> None:
    chat = [{"speaker": "오태민", "text": "이번 주 토요일 등산 어때?"},
            {"speaker": "한서우", "text": "나는 케이블카 못 타는데.. 고소공포증 있어"},
            {"speaker": "김도아", "text": "그럼 걸어서 올라가자"}]
    assert faithfulness_failures("서우가 케이블카를 못 탄다고 해서 걸어서 올라가기로 했다.", chat, "김도아") == []
    assert "negation_flip" in faithfulness_failures("서우가 케이블카를 탄다고 해서 걸어서 올라가기로 했다.", chat, "김도아")


def test_an_act_given_to_another_named_person_than_the_one_the_chat_names() -> None:
    chat = [{"speaker": "AI", "text": "오늘 회사는 어땠어요?"},
            {"speaker": "Human", "text": "과장님은 출장 가셔서 안 계셨어요"},
            {"speaker": "Human", "text": "대신 이사님이 고생했다고 케이크 사주셨어요"}]
    assert faithfulness_failures("이사님이 고생했다고 케이크를 사 주셨다.", chat, "Human") == []
    assert "wrong_person" in faithfulness_failures("과장님이 고생했다고 케이크를 사 주셨다.", chat, "Human")


def test_kin_words_with_one_meaning_are_one_person() -> None:
    chat = [{"speaker": "AI", "text": "주말 여행은 어떠셨어요?"},
            {"speaker": "Human", "text": "와이프가 호텔 수영장에서 한 시간 수영했어요 저는 애들 봤고요"}]
    assert faithfulness_failures("아내는 호텔 수영장에서 한 시간 동안 수영을 했다.", chat, "Human") == []


def test_a_guess_about_a_no_is_still_a_no() -> None:
    chat = [{"speaker": "P01", "text": "동네에 새로 생긴 도넛집 가봤어"},
            {"speaker": "P02", "text": "맛은?"},
            {"speaker": "P01", "text": "솔직히 한 시간 줄 설 정도는 아닌 듯"}]
    assert faithfulness_failures("한 시간이나 줄을 설 정도는 아니었다.", chat, "P01") == []
    assert faithfulness_failures("동생이 입대 전에 머리를 밀었는데 짠했다.",
                                 [{"speaker": "P01", "text": "동생이 입대 전에 머리 밀었어 좀 짠하더라"}], "P01") == []

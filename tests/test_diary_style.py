"""The diary-style checks on hand-written Korean sentences: a real diary passes, each kind of failure fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diary_lightning.evaluation.diary_style import CHECKS, analyse_many, score_name, style_failures, style_scores
from diary_lightning.data.roles import BOT_LABEL, WRITER_LABEL

DIARIES = [
    "오늘 아침에 늦잠을 자서 지각할 뻔했다. 점심에는 팀원들과 돈가스를 먹었는데 정말 맛있었다.",
    "소개팅 상대와 말이 잘 통해서 기분이 좋았다. 이번 주 일요일에 함께 북한산에 가기로 해서 벌써 설렌다.",
    "엄마와 다퉜다. 저녁 먹을 때 내가 먼저 사과해야겠다ㅠㅠ",
    # Quoted polite speech and a reported clause before the end are fine.
    '친구가 "괜찮아요?" 하고 물어봐서 웃음이 났다. 동생은 바쁘다고 했지만 결국 같이 영화를 봤다.',
    "민지랑 카페에 갔다. 새로 나온 밤 라떼가 고소했다~",
    "필요한 물건을 사러 마트에 다녀왔다. 이번 주는 중요한 일이 많아서 좀 피곤하다 ^^",
    "내일은 일찍 일어나고 싶다고 생각했다.",
    "모든 일이 잘 되길 바란다.",
]


@pytest.mark.parametrize("text", DIARIES)
def test_a_diary_passes_every_check(text: str) -> None:
    assert style_failures(text, writer_names=["준호"]) == []


@pytest.mark.parametrize(
    "text",
    [
        "두 화자는 주말 계획에 대해 이야기를 나누었다.",
        "화자는 점심으로 돈가스를 먹었다.",
        "이 대화에서 나는 주말 계획을 세웠다.",
        "대화 요약: 친구와 여행 계획을 세웠다.",
        "상대방이 먼저 사과했다. 나는 웃었다.",
        "상대1이 저녁을 샀다.",
        "퇴근 후의 피로와 주말 약속을 두고 나누는 대화이다.",
    ],
)
def test_meta_fails(text: str) -> None:
    assert "meta" in style_failures(text)


@pytest.mark.parametrize("text", ["챗봇에게 오늘 있었던 일을 털어놓았다.", f"{BOT_LABEL}이 위로해 주었다.",
                                  "AI가 자기 전에 따뜻한 우유를 마셔 보라고 했다. 오늘은 그냥 잤다."])
def test_the_bot_may_be_mentioned_as_a_speaker_of_the_day_unless_the_caller_says_not(text: str) -> None:
    assert style_failures(text) == []
    assert style_failures(text, bot_mentions=False) == ["meta"]


@pytest.mark.parametrize("text", [
    "친구와 카페에서 오랜만에 대화를 나눴다.",
    "단톡방에서 채팅하다가 다음 달에 여행을 가기로 했다.",
    "친구와의 대화에서 힘을 얻었다.",
])
def test_an_ordinary_days_conversation_is_no_meta_talk(text: str) -> None:
    assert style_failures(text) == []


@pytest.mark.parametrize("text", ["PT를 30회 끊었다.", "KTX를 타고 부산에 갔다.", "A4 용지를 샀다.", "GS25에서 우유를 샀다."])
def test_letters_and_digits_that_are_not_speaker_codes_pass(text: str) -> None:
    assert style_failures(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "오늘은 친구와 영화를 보았습니다.",
        "점심에 돈가스를 먹었어요. 맛있었다.",
        "오늘 정말 피곤했죠.",
        "날씨가 좋아서 산책을 갑니다!",
        "내일도 힘내야지요 ㅎㅎ",
        "왜 그렇게 바빴을까요?",
        # No space after the stop: Kiwi splits the sentences anyway.
        "오늘 영화를 봤습니다.정말 재밌었다.",
    ],
)
def test_polite_fails(text: str) -> None:
    assert "polite" in style_failures(text)


def test_polite_ending_inside_quotes_passes() -> None:
    assert style_failures('점원이 "감사합니다"라고 해서 기분이 좋았다.') == []
    assert style_failures('친구가 "괜찮아요?" 하고 물어봐서 웃음이 났다.') == []


@pytest.mark.parametrize("text", [
    "ㅋㅋㅋ 나도 그거 봤어!! 완전 웃기지 않냐",
    "오늘 뭐 먹었어? 나는 라면 먹었는데",
    "야 내일 시간 돼? 같이 밥 먹자",
    "그거 내가 말한 카페 맞지?",
    "응응 알겠어 이따 연락할게",
])
def test_chat_addressed_to_someone_fails(text: str) -> None:
    assert "chat" in style_failures(text)


@pytest.mark.parametrize("text", [
    "면접을 봤다. 결과가 어떻게 나올까?",
    "고양이가 밤새 울었다. 병원에 데려가 봐야 하나?",
    "내일은 뭐 입지? 옷장이 텅 비었다.",
    "오늘따라 일이 손에 안 잡혔다. 내일은 좀 나아지겠지.",
    "아 배고파. 야식은 참았다. 대신 일찍 자기로 했다.",
])
def test_questions_to_oneself_and_a_stray_chat_ending_pass(text: str) -> None:
    assert style_failures(text) == []


@pytest.mark.parametrize("text", [
    "그녀는 오늘 회사에서 힘든 하루를 보냈다.",
    "그는 주말에 부모님 댁에 다녀왔다.",
    "이 사람은 요즘 운동을 열심히 하고 있다.",
    "사용자는 오늘 늦잠을 잤다.",
    "A는 B에게 생일 선물로 향수를 주었다.",
    "화자1은 다음 주에 이사를 간다.",
    "P01은 이사 준비로 바빴다.",
    "SD2000691과 함께 영화를 봤다.",
    "SSD2000851은 회사에서 새 업무를 맡았다고 설명했다.",
    "한 사람이 새로 산 운동화를 자랑하자 다른 사람이 부러워한다.",
])
def test_third_person_fails(text: str) -> None:
    assert "third_person" in style_failures(text)


@pytest.mark.parametrize("text", ["민지는 오늘 카페에 갔다.", "오늘 민지가 늦잠을 잤다.", "Human은 피곤했다.", "민지였다."])
def test_the_writers_name_fails(text: str) -> None:
    assert "third_person" in style_failures(text, writer_names=["민지", "Human"])


@pytest.mark.parametrize("text, name", [
    ("은민지역에 다녀왔다.", "민지"),
    ("민지원 선배가 점심을 사 줬다.", "민지"),
    ("시장에서 사과 하나를 덤으로 받았다.", "하나"),
    ("하나은행에 들렀다.", "하나"),
    ("Humane한 영화를 봤다.", "Human"),
    ("나 자신이 대견했다.", "민지"),
    ("친구가 자신의 고민을 털어놓았다.", "민지"),
])
def test_the_writers_name_only_as_a_whole_word(text: str, name: str) -> None:
    assert style_failures(text, writer_names=[name]) == []
    assert "third_person" in style_failures(f"{name}는 오늘 카페에 갔다.", writer_names=name)


def test_the_writer_label_is_third_person_and_meta() -> None:
    assert style_failures(f"{WRITER_LABEL}는 밥을 먹었다.") == ["meta", "third_person"]


@pytest.mark.parametrize(
    "text",
    [
        "친구는 이사 준비로 바빴다고 한다.",
        "요즘 회사 일이 너무 많아서 힘들다고 이야기하고 있다.",
        "시험 기간이라 같이 도서관에 가자고 하고 있다.",
        "엄마가 저녁은 먹었냐고 묻는다.",
        "누나가 치킨을 먹으라고 한다.",
        "선생님은 시험이 쉬울 거라고 나에게 이야기한다.",
        "얼룩이 많은 매트리스 판매에 대해 이야기한다.",
        "회사 근처에 맛집이 생겼다고 한다. 다음에 같이 가자고 한다.",
    ],
)
def test_narrating_what_others_say_now_fails(text: str) -> None:
    assert style_failures(text) == ["reported_speech"]


@pytest.mark.parametrize(
    "text",
    [
        "점심에 팀장님이 보고서를 잘 썼다고 하셨다.",
        '저녁을 차리는데 엄마가 "밥 먹어"라고 했다.',
        "동생이 내일 같이 영화를 보자고 했다.",
        "엄마가 저녁은 먹었냐고 물었다.",
        "이번 실수는 좋은 경험이라고 생각하려고 한다.",
        "내일 회의에서 업무를 나눠달라고 말하려 한다.",
        "단골 빵집이 문을 닫는다고 한다. 내일은 소금빵을 사러 가야겠다.",
        "동생이 요즘 많이 바쁘단다.",
    ],
)
def test_what_the_writer_heard_or_decided_passes(text: str) -> None:
    assert style_failures(text) == []


@pytest.mark.parametrize("text", [
    "다음은 민지의 입장에서 쓴 일기입니다.\n오늘은 친구와 카페에 갔다. 즐거웠다.",
    "오늘은 친구와 카페에 갔다. 즐거운 하루였다.\n\n마음에 드셨나요?",
    "[일기]\n오늘은 회사에서 발표를 했다.",
    "오늘은 비가 와서 집에서 쉬었다.\n\n도움이 되셨길 바랍니다!",
])
def test_assistant_preambles_and_afterwords_fail(text: str) -> None:
    assert "assistant" in style_failures(text)


@pytest.mark.parametrize("text", [
    "P01: 오늘 뭐 했어?\nP02: 영화 봤어\nP01: 재밌었어?",
    "민지: 나 오늘 면접 봤어\n친구: 어땠어?",
    "- 아침에 운동함\n- 점심에 친구 만남\n- 저녁에 영화 봄",
    "1. 회사 출근\n2. 회의 참석\n3. 퇴근 후 헬스",
])
def test_transcripts_and_lists_fail(text: str) -> None:
    assert "layout" in style_failures(text)


@pytest.mark.parametrize("text", [
    "오늘은 친구와 함께 시내에 나가서 쇼핑을 하고 맛있는",
    "친구와 영화를 봤다. 영화가 끝나고 나서 우리는 근처",
    "퇴근하고 집에 오는 길에 편의점에 들러서",
    "오늘은 정말 오랜만에 가족들과 함께 외식을 했는데, 아빠가 갑자기",
])
def test_a_cut_text_is_unfinished_without_the_callers_flag(text: str) -> None:
    assert "unfinished" in style_failures(text)


@pytest.mark.parametrize("text", ["그냥 일찍 잤는데...", "오늘은 정말 즐거운 하루!", "오늘도 끝 ㅋㅋ", "하루 종일 비가 왔다 ㅠㅠ"])
def test_a_finished_text_is_not_unfinished(text: str) -> None:
    assert "unfinished" not in style_failures(text)


@pytest.mark.parametrize("text", [
    "Today I met a friend for lunch and we talked about the trip.",
    "Summary: the user complains about work; the assistant suggests a walk.",
    "12:30 OK!!",
])
def test_a_text_with_no_korean_word_is_empty(text: str) -> None:
    assert style_failures(text) == ["empty"]


@pytest.mark.parametrize("text", [
    "발표가 끝났다. 결과는 다음 주에 나온다. 잘 되겠지?",
    "택배가 아직 안 왔다. 내일은 오겠지?",
    "시험을 망쳐서 속상했다. 그래도 다음엔 잘하자!",
    "야근을 또 했다. 이번 주만 버티자.",
])
def test_a_guess_and_self_encouragement_are_the_writers_own_voice(text: str) -> None:
    assert style_failures(text) == []


def test_a_suggestion_to_someone_is_still_chat() -> None:
    assert "chat" in style_failures("이번 주말에 우리 같이 등산 가자!")
    assert "chat" in style_failures("내일 점심 같이 먹자")


@pytest.mark.parametrize("text, check", [
    ("둘은 졸업 여행 일정을 맞춰 보았다.", "third_person"),
    ("셋은 회식 장소를 두고 한참 고민했다.", "third_person"),
    ("이사 날짜와 짐 정리 문제를 상의하는 대화이다.", "meta"),
    ("아빠는 운동을 꾸준히 하라고 당부한다.", "reported_speech"),
    ("선배는 이직을 권한다.", "reported_speech"),
])
def test_summary_phrasing_fails(text: str, check: str) -> None:
    assert check in style_failures(text)


def test_a_count_after_who_it_counts_is_the_writers_account() -> None:
    # "둘은" opening a sentence narrates the pair from outside; after a noun it only says how many went.
    assert style_failures("나만 빠지고 친구들 셋은 오늘 아침에 후쿠오카로 떠났다.") == []
    assert style_failures("우리 둘 다 감기에 걸려서 일찍 잤다.") == []
    assert "third_person" in style_failures("오늘은 바빴다. 셋은 같이 밥을 먹었다.")


@pytest.mark.parametrize("text", [
    "팀장님께 보고서 늦어진 것 하소연함. 퇴근하고 헬스 감.",
    "아침에 늦잠 잠. 지각해서 혼남. 저녁엔 떡볶이 먹음.",
    "## 오늘의 일기\n비가 와서 하루 종일 집에 있었다.",
    "**기분**: 좋음\n점심에 친구를 만났다.",
    "오늘은 __정말__ 길었다. 야근까지 했다.",
])
def test_memo_notes_and_markdown_are_not_a_diarys_prose(text: str) -> None:
    assert "layout" in style_failures(text)


def test_a_diary_with_one_clipped_ending_is_still_prose() -> None:
    assert style_failures("저녁에 혼자 라면을 끓여 먹었다. 배불러서 바로 잠. 내일은 일찍 일어나야겠다.") == []


@pytest.mark.parametrize("text", [
    '퇴근길에 엄마가 전화로 "지유야, 밥은 먹었니?" 하고 물었다.',
    "동생이 지유야 하고 부르길래 돌아봤다.",
])
def test_someone_calling_the_writer_is_no_third_person(text: str) -> None:
    assert style_failures(text, writer_names=["지유"]) == []


@pytest.mark.parametrize("name, text", [("서연", "서연이는 오늘 하루 종일 바빴다."), ("지훈", "지훈이가 먼저 연락했다.")])
def test_the_writers_name_with_its_friendly_i_is_third_person(name: str, text: str) -> None:
    assert "third_person" in style_failures(text, writer_names=[name])


def test_empty_and_truncated() -> None:
    assert style_failures("") == ["empty"]
    assert style_failures("  ...  ") == ["empty"]
    assert style_failures("오늘은 바빴다.", truncated=True) == ["truncated"]
    assert style_failures("", truncated=True) == ["empty", "truncated"]


def test_failures_come_in_checks_order() -> None:
    text = "민지는 챗봇과 대화했습니다. 너는 뭐 했어? 친구가 온다고 한다. 그리고"
    assert style_failures(text, writer_names=["민지"], truncated=True, bot_mentions=False) == [
        "meta", "polite", "chat", "third_person", "reported_speech", "unfinished", "truncated"]
    assert CHECKS == ("meta", "polite", "chat", "third_person", "reported_speech", "assistant", "layout",
                      "unfinished", "empty", "truncated")


LABELLED = Path(__file__).parent / "data" / "diary_style"


def _labelled(split: str) -> list[dict]:
    rows = [json.loads(line) for path in sorted(LABELLED.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["split"] == split]


def test_the_labelled_set_is_big_enough_and_names_each_kind() -> None:
    rows = _labelled("dev") + _labelled("heldout")
    assert len(rows) >= 150 and len({r["text"] for r in rows}) == len(rows)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"diary", *(c for c in CHECKS if c not in ("empty", "truncated"))}
    assert len(_labelled("heldout")) >= 60


def test_held_out_diaries_pass_and_non_diaries_fail() -> None:
    # Written with the dev texts, before the checks were built, and never tuned on.
    rows = _labelled("heldout")
    diaries = [r for r in rows if r["kind"] == "diary"]
    others = [r for r in rows if r["kind"] != "diary"]
    analyse_many(r["text"] for r in rows)
    passed = [r["text"] for r in diaries if not style_failures(r["text"], writer_names=[r["writer"]])]
    caught = [r["text"] for r in others if style_failures(r["text"], writer_names=[r["writer"]])]
    assert len(passed) >= 0.9 * len(diaries), sorted({r["text"] for r in diaries} - set(passed))
    assert len(caught) >= 0.9 * len(others), sorted({r["text"] for r in others} - set(caught))


def test_style_scores_counts_shares() -> None:
    texts = [DIARIES[0], "오늘은 피곤했습니다.", "민지는 카페에 갔다.", "친구가 온다고 한다.", ""]
    scores = style_scores(texts, writer_names=[["민지"]] * 5, truncated=[False, False, False, False, True])
    assert scores["diary_style"] == pytest.approx(1 / 5)
    assert scores[score_name("polite")] == pytest.approx(1 / 5)
    assert scores[score_name("third_person")] == pytest.approx(1 / 5)
    assert scores[score_name("reported_speech")] == pytest.approx(1 / 5)
    assert scores[score_name("empty")] == pytest.approx(1 / 5)
    assert scores[score_name("truncated")] == pytest.approx(1 / 5)
    assert scores[score_name("meta")] == 0.0
    assert set(scores) == {"diary_style", *(score_name(c) for c in CHECKS)}
    # Without writer_names, "민지" is nobody in particular.
    assert style_scores(texts[:3])["diary_style"] == pytest.approx(2 / 3)
    assert style_scores([])["diary_style"] == 0.0
    with pytest.raises(ValueError, match="truncated has 1 entries for 2 texts"):
        style_scores(texts[:2], truncated=[True])


def test_importable_without_torch_or_lightning() -> None:
    code = ("import sys, diary_lightning.evaluation.diary_style, diary_lightning.data.roles; "
            "bad = [m for m in ('torch', 'lightning', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_kiwi_loads_once_and_only_when_a_text_is_checked() -> None:
    code = ("import sys, diary_lightning.evaluation.diary_style as ds; assert 'kiwipiepy' not in sys.modules; "
            "ds.style_failures('오늘은 바빴다.'); ds.style_scores(['좋았다.', '피곤했다.']); "
            "from diary_lightning.evaluation.metrics import tokenize_morphemes; tokenize_morphemes('좋았다'); "
            "assert ds.kiwi.cache_info().misses == 1, ds.kiwi.cache_info()")
    subprocess.run([sys.executable, "-c", code], check=True)

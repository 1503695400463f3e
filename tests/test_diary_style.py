"""The diary-style checks on hand-written Korean sentences: a real diary passes, each kind of failure fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

from diary_lightning.data.roles import BOT_LABEL, WRITER_LABEL
from diary_lightning.evaluation.diary_style import CHECKS, score_name, style_failures, style_scores

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
        "오늘은 친구와 대화를 나누며 주말 계획을 세웠다.",
        "화자는 점심으로 돈가스를 먹었다.",
        "챗봇에게 오늘 있었던 일을 털어놓았다.",
        "상대방이 말했다. 나는 웃었다.",
        "P01은 이사 준비로 바빴다.",
        "SD2000691과 함께 영화를 봤다.",
        f"{WRITER_LABEL}는 오늘 피곤했다.",
        f"{BOT_LABEL}이 위로해 주었다.",
        "상대1이 저녁을 샀다.",
    ],
)
def test_meta_fails(text: str) -> None:
    assert "meta" in style_failures(text)


@pytest.mark.parametrize("text", ["PT를 30회 끊었다.", "KTX를 타고 부산에 갔다.", "A4 용지를 샀다."])
def test_letters_and_digits_that_are_not_speaker_codes_pass_meta(text: str) -> None:
    assert "meta" not in style_failures(text)


@pytest.mark.parametrize(
    "text",
    [
        "오늘은 친구와 영화를 보았습니다.",
        "점심에 돈가스를 먹었어요. 맛있었다.",
        "오늘 정말 피곤했죠.",
        "날씨가 좋아서 산책을 갑니다!",
        "내일도 힘내야지요 ㅎㅎ",
        "왜 그렇게 바빴을까요?",
    ],
)
def test_polite_fails(text: str) -> None:
    assert "polite" in style_failures(text)


def test_polite_ending_inside_quotes_passes() -> None:
    assert "polite" not in style_failures('점원이 "감사합니다"라고 해서 기분이 좋았다.')


@pytest.mark.parametrize("text", ["민지는 오늘 카페에 갔다.", "오늘 민지가 늦잠을 잤다.", "Human은 피곤했다."])
def test_third_person_fails(text: str) -> None:
    assert "third_person" in style_failures(text, writer_names=["민지", "Human"])


def test_third_person_needs_the_name_to_start_a_word() -> None:
    assert style_failures("은민지역에 다녀왔다.", writer_names=["민지"]) == []
    assert style_failures("Humane한 영화를 봤다.", writer_names=["Human"]) == []
    assert style_failures("민지는 오늘 카페에 갔다.", writer_names="민지") == ["third_person"]


def test_the_writer_label_is_third_person_and_meta() -> None:
    assert style_failures(f"{WRITER_LABEL}는 밥을 먹었다.") == ["meta", "third_person"]


@pytest.mark.parametrize(
    "text",
    [
        "친구는 이사 준비로 바빴다고 한다.",
        "동생이 내일 같이 영화를 보자고 했다.",
        "엄마가 저녁은 먹었냐고 물었다.",
        "팀장님이 내일까지 보고서를 내라고 하셨다.",
        "친구가 다음 주에 온다고 말했다ㅋㅋ",
        "누나가 치킨을 먹으라고 한다.",
        "선생님은 시험이 쉬울 거라고 나에게 이야기했다.",
        "동생이 요즘 많이 바쁘단다.",
    ],
)
def test_reported_speech_at_the_end_fails(text: str) -> None:
    assert style_failures(text) == ["reported_speech"]


def test_empty_and_truncated() -> None:
    assert style_failures("") == ["empty"]
    assert style_failures("  ...  ") == ["empty"]
    assert style_failures("오늘은 바빴다.", truncated=True) == ["truncated"]
    assert style_failures("", truncated=True) == ["empty", "truncated"]


def test_failures_come_in_checks_order() -> None:
    text = "민지는 챗봇과 대화했습니다. 친구가 온다고 했다"
    assert style_failures(text, writer_names=["민지"], truncated=True) == [
        "meta", "polite", "third_person", "reported_speech", "truncated"]
    assert CHECKS == ("meta", "polite", "third_person", "reported_speech", "empty", "truncated")


def test_style_scores_counts_shares() -> None:
    texts = [DIARIES[0], "오늘은 피곤했습니다.", "민지는 카페에 갔다.", "친구가 온다고 했다.", ""]
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

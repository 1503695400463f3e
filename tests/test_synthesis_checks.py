"""The checks a teacher's diary must pass: the diary-style checks plus prompt copy, length, speaker codes, grounding."""

from __future__ import annotations

import re
import pytest

from diary_lightning.data.records import Turn
from diary_lightning.synthesis.checks import ALL_CHECKS, CheckConfig, check_diary, grounding
from diary_lightning.synthesis.teacher import DEFAULT_PROMPT, Reply, Request

TURNS = (Turn("P01", "오늘 회사에서 신제품 발표를 했는데 생각보다 잘 끝났어"), Turn("P02", "고생했네! 끝나고 뭐 했어?"),
         Turn("P01", "팀 동료들이랑 삼겹살 먹으러 갔지"))
SUMMARY = "회사에서 신제품 발표를 잘 끝내고 팀 동료들과 삼겹살을 먹었다고 한다."
REQUEST = Request("x", [], TURNS, SUMMARY, "P01", {"P01": "글쓴이", "P02": "상대1"}, writer_names=("P01",))
INSTRUCTION = DEFAULT_PROMPT.format(dialogue="", summary="", writer="글쓴이", length="")
GOOD = "오늘 회사에서 신제품 발표를 했는데 생각보다 잘 끝났다. 끝나고 팀 동료들이랑 삼겹살을 먹으러 가서 기분이 좋았다."


def failures(text: str, truncated: bool = False, **config) -> list[str]:
    return check_diary(Reply(text, truncated=truncated), REQUEST, CheckConfig(**config), INSTRUCTION)


def test_a_grounded_plain_first_person_diary_passes():
    assert failures(GOOD) == []


@pytest.mark.parametrize("text, check", [
    ("", "empty"),
    ("오늘 회사에서 신제품 발표를 했습니다. 팀 동료들이랑 삼겹살을 먹었습니다.", "polite"),
    ("두 화자는 발표에 대해 대화했다. 팀 동료들과 삼겹살을 먹었다.", "meta"),
    ("회사에서 발표를 잘 끝내고 동료들과 삼겹살을 먹었다고 한다.", "reported_speech"),
    ("평서형 반말(~했다, ~이다)로 씁니다. 존댓말은 쓰지 않습니다. 대화에 없는 사실은 지어내지 않습니다.", "prompt_copy"),
    ("발표.", "length"),
    (GOOD + " " + GOOD * 6, "length"),
    ("P01 회사에서 신제품 발표를 했다. 끝나고 팀 동료들이랑 삼겹살을 먹었다.", "speaker_code"),
    ("글쓴이: 회사에서 신제품 발표를 했다.\n상대1: 고생했네!", "prompt_copy"),
    ("주말에 바닷가 캠핑장에 가서 텐트를 치고 밤새 별을 구경하며 라면을 끓여 먹었다.", "ungrounded"),
])
def test_each_check_catches_its_failure(text, check):
    assert check in failures(text)


MOVING = (Turn("P01", "퇴근하고 헬스장 다녀옴"), Turn("P02", "나 다음 달에 대전으로 이사 가 ㅠㅠ"), Turn("P01", "헐 진짜? 아쉽다"),
          Turn("P02", "주말에 밥 한번 먹자"))
MOVING_REQUEST = Request("m", [], MOVING, "퇴근하고 헬스장에 다녀왔고 친구가 다음 달에 대전으로 이사 간다고 한다.", "P01",
                         {"P01": "글쓴이", "P02": "상대1"}, writer_names=("P01",))


@pytest.mark.parametrize("text, reasons", [
    ("퇴근하고 헬스장에 다녀왔다. 친구가 다음 달에 대전으로 이사 간다고 해서 아쉬웠다.", []),
    ("퇴근하고 헬스장에 다녀왔다. 다음 달에 대전으로 이사 간다.", ["wrong_person"]),
    ("퇴근하고 헬스장에 다녀왔다. 친구랑 주말에 밥을 먹었다.", ["suggestion_as_done"]),
    ("퇴근하고 헬스장에 다녀왔다. 친구가 다음 달에 부산으로 이사 간다고 해서 아쉬웠다.", ["invented"]),
])
def test_a_diary_untrue_to_its_dialogue_is_rejected_with_the_reason(text, reasons):
    reply = Reply(text)
    assert check_diary(reply, MOVING_REQUEST, CheckConfig(), INSTRUCTION) == reasons
    # Skipped like any check, by name.
    assert check_diary(reply, MOVING_REQUEST, CheckConfig(skip=reasons), INSTRUCTION) == []


def test_a_cut_diary_is_truncated():
    assert failures(GOOD, truncated=True) == ["truncated"]


def test_grounding_separates_this_dialogue_from_another():
    sources = [SUMMARY, *(t.text for t in TURNS)]
    assert grounding(GOOD, sources) > 0.8
    assert grounding("주말에 바닷가 캠핑장에 가서 텐트를 치고 라면을 끓여 먹었다.", sources) < 0.3


def test_checks_can_be_skipped_and_are_validated():
    assert failures("발표.", skip=["length"]) == []
    with pytest.raises(ValueError, match="unknown check"):
        CheckConfig(skip=["spelling"])
    with pytest.raises(ValueError, match="min < max"):
        CheckConfig(min_length_ratio=2.0, max_length_ratio=1.0)
    assert len(ALL_CHECKS) == len(set(ALL_CHECKS)) == 19


def render(turns, summary="공원에서 달렸다고 한다."):
    from diary_lightning.synthesis.teacher import build_messages

    (user,) = build_messages(DEFAULT_PROMPT, "", turns, summary, "글쓴이", {"P01": "글쓴이", "P02": "상대1"})
    return user["content"]


def test_the_default_prompt_shows_worked_examples_that_invent_nothing():
    from diary_lightning.data.dialogue import Turn
    from diary_lightning.evaluation.diary_style import analyse, analyse_many, style_failures

    prompt = render((Turn("P01", "오늘 공원에서 달렸어"), Turn("P02", "대단하다")))
    # Each example: a dialogue with the writer marked as the prompt marks them, its summary, the diary.
    examples = re.findall(r"<예시 \d: ([^>]*)>\n\[대화\]\n(.*?)\n\[요약\]\n(.*?)\n\[일기\]\n(.*?)\n\n", prompt, re.DOTALL)
    assert len(examples) == 4
    assert all("글쓴이: " in dialogue and "{writer}" not in dialogue for _, dialogue, _, _ in examples)
    analyse_many(diary for *_, diary in examples)
    for _, dialogue, summary, diary in examples:
        assert style_failures(diary, writer_names=["글쓴이"]) == [], diary  # what it asks for, it shows
        assert style_failures(summary), summary  # and a summary is not that
        # Nothing the dialogue lacks (the old example's 갓 삶은 수육을 김치에 싸): every noun, verb, adjective
        # and adverb of the diary is in its dialogue, but for the few words a diary needs to say who and what.
        said = {m.form for sentence in analyse(dialogue) for m in sentence.morphemes}
        invented = {m.form for sentence in analyse(diary) for m in sentence.morphemes
                    if m.tag in ("NNG", "NNP", "VV", "VA", "MAG") and m.form not in said}
        assert invented <= {"하", "사람", "사진", "보내"}, (diary, invented)
    kinds = " ".join(kind for kind, *_ in examples)
    # One where the writer only reacts to the other's news, one with placeholders, one topic talk (NIKL).
    assert "반응" in kinds and "가려진" in kinds and "주제" in kinds
    reacts = next(diary for kind, _, _, diary in examples if "반응" in kind)
    assert reacts.startswith("상대가")  # the news is the other's, and the diary says so
    assert "(이름)" in prompt and "#@시스템#사진#" in prompt and '"상대"라고' in prompt


def test_the_prompt_says_the_dialogue_wins_and_repeats_the_rules_after_it():
    from diary_lightning.data.dialogue import Turn

    prompt = render((Turn("P01", "오늘 공원에서 달렸어"), Turn("P02", "대단하다")))
    assert "대화와 다르면 대화가 맞습니다" in prompt and "주어가 빠져 있거나 상대의 이야기일 때가 많고" in prompt
    # The dialogue to write about comes after the examples, the reminder after it, and the cue last.
    dialogue = prompt.index("[대화]\n글쓴이: 오늘 공원에서 달렸어\n상대1: 대단하다\n\n[요약]")
    reminder = prompt.index("다시 한 번:")
    assert prompt.rindex("<예시") < dialogue < reminder
    assert prompt.rstrip().endswith("[일기]")
    assert "공원에서 달렸다고 한다." in prompt[dialogue:reminder]


def test_the_length_asked_for_follows_the_chat():
    from diary_lightning.data.dialogue import Turn
    from diary_lightning.synthesis.teacher import diary_length

    short = render((Turn("P01", "오늘 공원에서 달렸어"), Turn("P02", "대단하다")))
    long = render(tuple(Turn("P01" if i % 2 else "P02", "오늘 있었던 일을 길게 이야기하는 문장입니다 " * 3)
                        for i in range(40)))
    assert "1~2문장 안팎" in short and "5~8문장 안팎" in long
    assert diary_length([Turn("P01", "가" * 300)]) == "2~4문장"


def test_the_summary_names_the_speakers_as_the_dialogue_labels_them():
    from diary_lightning.data.dialogue import Turn

    # NIKL's summaries name speakers by code; the dialogue shows 글쓴이 and 상대1.
    prompt = render((Turn("P01", "주말에 등산 갔어"), Turn("P02", "좋았겠다")), "P01은 등산을 갔고 P02는 부러워했습니다. P012는 없다.")
    assert "글쓴이는 등산을 갔고 상대1은 부러워했습니다. P012는 없다." in prompt

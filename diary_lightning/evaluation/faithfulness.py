"""Is the diary true to the chat? Who did what, and what happened, checked sentence by sentence.

The style checks (:mod:`diary_lightning.evaluation.diary_style`) see a diary's form; a diary with the right form
can still give the writer a friend's move to Busan, or tell as done the walk the bot only suggested. This module
aligns every diary sentence with the chat turns that share its content words (Kiwi's lemmas: nouns, verbs,
adjectives, foreign words) and with who spoke them, and names the failure a sentence shows:

- ``wrong_person``: the sentence gives the writer what only another speaker said of themself (or the reverse:
  gives another person what only the writer said of themself, or a named speaker what another one said); clause
  by clause, the chat message that tells it best (its predicate and most of its words) is someone else's;
- ``suggestion_as_done``: the sentence tells as done what the chat only suggested, asked for or planned
  (``자``, ``-ㄹ까``, ``해 봐``, ``어때``, ``해 두시면 편해요``, ``-ㄹ게``, ``-ㄹ 거야``, ``내일``), with no turn
  telling it done (a short ``보냈어요`` right after counts);
- ``invented``: a name, place or thing the chat never mentions, or a sentence with no support in the chat;
- ``wrong_number``: a number, time, price, count or weekday the chat never gives;
- ``negation_flip``: a clause whose matching chat clauses of the same time and person all say the opposite
  (``안``/``못``/``않``/``없``/``아니``, or an antonym such as 합격/떨어지; a yes/no answer tells the question's
  clause: 맞았어? / 아니 아직). Not a condition (-면), 밖에 안 (only), nor a no inside someone's quoted words.

What a diary legitimately does passes: paraphrase, summary and omission (only what the diary says is checked),
others' words told as theirs (``지수가 부산에 간다고 했다``: the quoted clause belongs to its subject), the
writer's feelings and the common diary glue (오늘, 하루, 기분, 좋았다, 피곤했다), which need no support.

:func:`faithfulness_failures` gives the failures' names; :func:`faithfulness_evidence` gives, per sentence, the
turns that support it (index and speaker) or why none does, for people to read. Kiwi is the style checks' one
lazily loaded analyser and its cache; nothing here imports torch, Lightning or transformers.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from diary_lightning.data.roles import DEFAULT_BOTS
from diary_lightning.evaluation.diary_style import QUOTE_ENDINGS, Morpheme, analyse, analyse_many, kiwi

FAILURES = ("wrong_person", "suggestion_as_done", "invented", "wrong_number", "negation_flip")

# Words any diary adds around the facts; they need no support and say nothing about who did what.
GLUE = frozenset(
    "오늘 하루 기분 마음 생각 느낌 하 되 있 같 보 주 오 가 싶 들 말 이야기 얘기 대화 것 거 수 때 중 정도 듯 일 정말 진짜 너무 "
    "좀 조금 많이 다시 계속 결국 그냥 그래서 그리고 하지만 그런데 그러 이러 저러 어떻 이렇 그렇 나 너 우리 저 자신 "
    "모두 다 또 더 잘 참 꼭 같이 함께 혼자 먼저 바로 아직 벌써 이제 요즘 다음 지난 이번 시간 날 하루종일 종일 "
    "오전 오후 아침 점심 저녁 밤 새벽 주말 평일 어제 내일 모레 아까 이따 나중 방금 전 후 동안 "
    "좋 싫 기쁘 슬프 행복 설레 아쉽 속상 피곤 힘들 재미있 재밌 뿌듯 다행 걱정 신나 짜증 우울 답답 지치 편하 "
    "불안 긴장 후회 서운 부럽 고맙 감사 미안 괜찮 즐겁 웃기 웃 울 화나 놀라 궁금 기대 설렘 외롭 든든 "
    "마무리 보내 지내 느끼 알 모르 듣 묻 물어보 말하 전하 기억 생각나 바라 원하 ㅋㅋ ㅎㅎ ㅠㅠ".split())

FEELINGS = frozenset("좋 싫 기쁘 슬프 행복 설레 아쉽 속상 피곤 힘들 재미있 뿌듯 다행 걱정 신나 짜증 우울 답답 지치 편하 불안 "
                     "긴장 후회 서운 부럽 고맙 감사 미안 괜찮 즐겁 외롭 든든 무섭 두렵 심심".split())

# How a diary names someone it talked with or about, besides the names the chat uses.
RELATIONS = frozenset(
    "친구 엄마 아빠 어머니 아버지 부모님 언니 오빠 누나 형 동생 남동생 여동생 남친 여친 남자친구 여자친구 선배 후배 팀장 "
    "부장 과장 차장 대리 사장 실장 본부장 선생님 선생 교수 교수님 할머니 할아버지 이모 삼촌 고모 외삼촌 사촌 동료 룸메 "
    "룸메이트 짝꿍 애인 남편 아내 와이프 상사 매니저 챗봇 봇 쌤 조카 딸 아들 가족 반장 코치 트레이너 원장 상대 사람 분 "
    "새언니 형수 시어머니 장모님 동기 친구들 애들 남자 여자 부부 형부 매형 올케 이모부 고모부 커플 손님 사장님 "
    "언니분 부모 조원 팀원 멤버 크루 회원 반원".split())
# Nouns a diary uses to sum up what the chat tells in other words.
_GENERIC = frozenset("준비 일정 계획 약속 메뉴 결과 이유 문제 상황 부분 내용 소식 근황 일상 모임 외출 고민 사정 연락 답장 "
                     "이야기 대화 마무리 시작 정리 얘기 하루 기분 경험 처음 마지막 다행 덕분 때문 생각 사람 이번 대신 "
                     "여행 선물 축하 위로 응원 부탁 걱정 진심 말로 정도 덕".split())
# Short forms a chat uses for what a diary spells out.
_SAME = {"남자친구": "남친", "여자친구": "여친", "렌터카": "렌트", "렌트카": "렌트", "아이스아메리카노": "아아", "편의점": "편의점"}

_SECOND_PERSON = frozenset("너 니 네 당신 자기 님 너희".split())
_PAST = ("었", "았", "였", "ㅆ")
_SUGGESTION_ENDINGS = frozenset({"자", "재", "ᆯ까", "을까", "세요", "으세요", "시오", "어라", "아라", "라", "렴", "으렴", "ᆸ시다", "읍시다",
                                 "ᆯ래", "을래"})
_PLAN_ENDINGS = frozenset({"ᆯ게", "을게", "ᆯ께", "을께", "려고", "으려고", "려", "으려", "고자", "ᆯ라고", "을라고"})
_PLAN_WORDS = frozenset({"내일", "이따", "모레", "나중", "다음"})
_SUGGEST_WORDS = frozenset({"추천", "권", "제안", "권하", "추천하", "어떻", "어떠"})
_TIME_NOUNS = frozenset("주 달 번 주말 아침 점심 저녁 밤 오전 오후 새벽 날 해 이맘때 쯤".split())
_THOUGHTS = frozenset({"싶", "생각", "알", "모르", "궁금", "고민"})
# Verbs that are done now about a later day: 모레로 미뤘다, 다음 주로 정했다.
_SCHEDULING = frozenset({"미루", "정하", "예약", "약속", "잡", "잡히", "연기", "옮기", "바꾸", "결정", "정해지", "미뤄지"})
# What is asked for or booked now for a later day: 내일 연차를 냈다, 금요일 병가를 냈다.
_DECIDING = frozenset({"정하", "결정", "정해지", "합의"})
_BOOKED = frozenset({"연차", "반차", "병가", "휴가", "예약", "예매", "신청", "약속", "휴무"})
_DONE_WORDS = frozenset({"다녀오", "끝내", "마치", "완료", "성공"})
# A fact and its opposite in other words: 합격했다 where the chat says 떨어졌어.
_ANTONYMS = {
    "합격": {"떨어지", "불합격", "탈락"}, "붙": {"떨어지", "불합격", "탈락"}, "떨어지": {"합격", "붙"},
    "불합격": {"합격", "붙"}, "탈락": {"합격", "붙"}, "이기": {"지", "패배"}, "지": {"이기", "승리"},
    "성공": {"실패", "망하"}, "실패": {"성공"}, "쉽": {"어렵"}, "어렵": {"쉽"}, "나쁘": {"좋"}, "늦": {"일찍"},
    "찬성": {"반대"}, "반대": {"찬성"}, "잃어버리": {"찾"}, "취소": {"확정"}, "확정": {"취소"},
}
_HEARSAY = frozenset({"대", "ᆫ대", "는대", "래", "재", "대요", "래요", "ᆫ대요", "는대요", "더래", "다더라"})
_HEARSAY_LINKS = frozenset({"라는데", "다는데", "자는데", "라던데", "다던데", "ᆫ다는데", "는다는데", "대서", "래서"})
# Common verbs that say little alone but can be flipped (갔다/못 갔다): judged with the sentence's other words.
_PLAIN_ACTS = frozenset({"가", "오", "보", "있", "물어보", "듣", "말하", "알", "되", "얘기", "이야기", "말"})
_SAME_SUBJECT = frozenset({"고", "며", "으며", "면서", "으면서", "고서", "다며", "라며", "자며", "ᆫ다며", "는다며"})
HONOURED = "someone honoured"
THING = "a thing"
"""The owner of a clause whose subject is no person (값이 12만 원 나왔다): nobody's act."""
UNKNOWN = "unknown"
"""The owner of a clause after another person's clause over 어서/는데: the writer's or theirs, the text does not say."""
"""The owner of a clause whose predicate honours an unnamed subject (하셨다): never the writer."""
_CONDITIONS = frozenset({"면", "으면", "다면", "라면", "ᆫ다면", "는다면", "거든", "으면서도"})
# Links after which a clause's subject is as often another person: 언니는 바쁘다고 해서 내가 했다.
_NEW_SUBJECT = frozenset({"니까", "으니까", "니", "으니", "자", "더니", "었더니", "면", "으면", "지만", "는데", "ᆫ데", "은데", "데"})
# 쉬라는 말을 들었다, 간다는 얘기: someone's words made a noun's modifier.
_QUOTING_MODIFIERS = frozenset({"라는", "으라는", "자는", "다는", "ᆫ다는", "는다는", "이라는", "냐는", "으냐는"})
_WHEN = frozenset("오늘 어제 내일 모레 요즘 이번 지난 다음 아까 방금 벌써 이미 어제부터 오늘부터 내일부터 주말 저번".split())
_GOOD = frozenset({"좋", "편하", "괜찮", "낫", "유용", "든든", "도움", "편리"})
_ALONG = frozenset({"고", "면서", "으면서", "며", "으며", "어", "아", "어서", "아서", "서"})
_TENSE_LINKS = frozenset({"고", "어서", "아서", "어", "아", "서", "고서", "며", "으며", "면서", "으면서"})
# Support verbs whose object noun is the act itself: 환불을 받다, 연락을 주다, 계약을 하다.
_LIGHT_VERBS = frozenset({"받", "주", "하", "되", "시키", "당하", "드리"})
_COMPANION = frozenset({"랑", "이랑", "와", "과", "하고", "께"})

_NATIVE = {"두": 2, "둘": 2, "세": 3, "셋": 3, "석": 3, "네": 4, "넷": 4, "다섯": 5, "여섯": 6, "일곱": 7, "여덟": 8, "아홉": 9,
           "열": 10, "열한": 11, "열두": 12, "스무": 20, "스물": 20, "서른": 30, "마흔": 40, "쉰": 50}
_COUNTERS = ("시간", "시", "분", "명", "개", "번", "잔", "살", "달", "주", "마리", "병", "권", "장", "그릇", "곡", "벌", "판", "층",
             "군데", "바퀴", "켤레", "인분", "통", "km", "킬로")
_NATIVE_NUMBER = re.compile(r"(?<![가-힣])(" + "|".join(sorted(_NATIVE, key=len, reverse=True)) + r")\s?("
                            + "|".join(_COUNTERS) + ")")
_UNIT = re.compile(r"[ \t]?(" + "|".join(("개월", *_COUNTERS, "원", "일", "월", "년", "박", "회", "%", "퍼센트", "프로", "점",
                                      "kg", "인분",
                                      "포기", "편", "등", "위", "학년", "교시", "호")) + ")")
# 셋이서, 넷이: people counted without a counter.
_NATIVE_COUNT = re.compile(r"(?<![가-힣])(둘|셋|넷|다섯|여섯|일곱|여덟)(?=이서|이|은|도|다)")
_SAME_UNIT = {"달": "개월", "킬로": "km", "프로": "%", "퍼센트": "%"}
"""Units that say the same: 석 달 is 3개월."""
_SINO = {"일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "칠": 7, "팔": 8, "구": 9}
_UNITS = {"십": 10, "백": 100, "천": 1000, "만": 10_000, "억": 100_000_000}
# 3만 5천원, 35,000원, 삼만 원, 만 원, 4.5만: a money amount, parsed whole; bare 만/천 only before 원.
_MONEY = re.compile(r"((?:(?:\d[\d,]*(?:\.\d+)?|[일이삼사오육칠팔구])?\s?[십백천만억]\s?)+(?:\d[\d,]*)?)\s?원")
# 5만2천5백씩, 3만: an amount with no 원 after it.
_AMOUNT = re.compile(r"\d[\d,]*[ \t]?[만천백](?:[ \t]?\d[\d,]*[ \t]?[천백])*(?:[ \t]?\d+)?(?![가-힣]*원)")
_DIGITS = re.compile(r"(?<![0-9A-Za-z.])(\d[\d,]*(?:\.\d+)?)(?![\d.]*[A-Za-z])")
_WEEKDAY = re.compile(r"([월화수목금토일])(?:요일|욜)")
_SQUEEZE = re.compile(r"\s+")


@dataclass(frozen=True)
class Clause:
    """One predicate's stretch of a sentence, as the checks see it."""

    lemmas: frozenset[str]
    """Content lemmas, glue and person words left out (없 counts as 있, negated)."""
    head: str | None
    """The predicate's lemma, or the noun of a ``noun + 하다`` predicate."""
    negated: bool
    past: bool
    mood: str
    """``statement``, ``question``, ``suggestion`` or ``plan``."""
    quote: str | None = None
    """The quoting ending (다고, 자고...) when the clause is someone's words told by the sentence."""
    hearsay: bool = False
    """Told as heard from someone (간대, 취소래, 가라는데, 보재): another person's news or suggestion."""
    owner: str | None = None
    """The person word the clause's subject is (``나`` for the writer), carried over from an earlier clause of
    the sentence; None: no subject said."""
    shared: bool = False
    """Done with someone of the chat (지수랑, 같이, 우리)."""
    squeezed: str = ""
    obligation: bool = False
    """-어야 하다/되다: what must be done (advice, when someone else says it)."""
    copula: bool = False
    """Its predicate is 이다 (처음이었다): a state, not an act."""
    future: bool = False
    """It speaks of what is to come (내일, 모레, 다음 주, 이따)."""
    modified_future: bool = False
    """The time word is inside a modifier or a reason (다음 주 오픈 때문에, 다음 달부터 맡게 됐다는 얘기)."""
    honorific: bool = False
    """The predicate honours its subject (가셨다): never the writer in their own words."""
    you: bool = False
    """It speaks of its listener (너, 자기): another speaker's words about the writer."""
    nested: bool = False
    """Someone's words are a modifier inside it (알려 준다는 말에, 왜 안 했냐는): its no may be theirs."""
    verbless: bool = False
    """No predicate at all (연락 문제로..): a fragment of news, asking nothing."""


@dataclass(frozen=True)
class _Text:
    text: str
    squeezed: str
    clauses: tuple[Clause, ...]
    lemmas: frozenset[str]
    nouns: frozenset[str]
    """Nouns, proper nouns and foreign words, unfiltered: what the text mentions."""
    things: frozenset[str] = frozenset()
    """Its nouns that name a thing, not a predicate's noun (피곤하다, 포기다) nor a name with its 이 (서연이)."""
    proper: frozenset[str] = frozenset()
    persons: tuple[tuple[str, str], ...] = ()
    """(person word, role) pairs: role ``subject``, ``companion`` or ``other``."""
    first_person: bool = False


@dataclass(frozen=True)
class SentenceEvidence:
    """One diary sentence: the chat turns that support it, and the failure it shows with why (``None``: none)."""

    sentence: str
    turns: tuple[tuple[int, str], ...]
    """(index in the dialogue, speaker) of the supporting turns, best first."""
    failure: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"sentence": self.sentence, "turns": [list(t) for t in self.turns], "failure": self.failure,
                "reason": self.reason}


@dataclass
class _Turn:
    index: int
    speaker: str
    text: _Text
    writer: bool
    bot: bool = False
    """The service's bot: what it says is about the writer or the world, never its own day."""
    names_someone: bool = False
    """A person other than the writer is named in it."""
    first_person: bool = False
    """Its speaker speaks of themself in it or in their turns just before (나, 내가, 저는)."""



def _lemma(m: Morpheme) -> tuple[str, bool]:
    """The lemma of a predicate morpheme and whether it says no by itself (없, 재미없 -> 있, 재미있)."""
    form = m.form
    if m.tag == "VA" and form.endswith("없"):
        return form[:-1] + "있", True
    if m.tag == "VCN":
        return "아니", True
    return form, False


@functools.lru_cache(maxsize=4096)
def _compound(verb: Morpheme, link: Morpheme, helper: Morpheme) -> str:
    return kiwi().join([(x.form, x.kiwi_tag or x.tag, False) for x in (verb, link, helper)]).replace(" ", "")


def _splits(m: Morpheme, following: Morpheme | None) -> bool:
    """Whether a connective ending closes a clause: not before a helper verb (먹지 않, 해 보, 하고 싶)."""
    if following is None:
        return True
    if m.form in QUOTE_ENDINGS:
        return True
    if following.tag == "VX" or following.form in ("않", "못하", "말"):
        return False
    # 자격이 있는지 알아봤다, 야경을 보러 갔다: a clause of whether or of purpose belongs to the verb after it.
    return m.form not in ("어야", "아야", "야", "게", "지", "는지", "ᆫ지", "은지", "ᆯ지", "을지", "러", "으러")


def _linking_noun(ms: Sequence[Morpheme], at: int, last: bool = False) -> bool:
    """``ms[at]`` is the 데/디 of a connective -는데/-는디 that Kiwi read as a modifier and a bound noun (없는디,
    then a new phrase): no particle, copula or verb after it."""
    if ms[at].tag != "NNB" or ms[at].form not in ("데", "디") or not at or ms[at - 1].tag != "ETM":
        return False
    after = ms[at + 1] if at + 1 < len(ms) else None
    if after is None:
        return last  # a clause already cut there
    return not after.tag.startswith(("J", "V", "XS", "E"))


def _embedded(ms: Sequence[Morpheme], at: int) -> bool:
    """The negation at ``at`` belongs to a modifier or a noun clause (핸드폰 안 보는 게 어렵다), not the predicate."""
    rest = ms[at + 1:]
    for k, m in enumerate(rest):
        if m.tag == "ETM" and m.form in ("ᆯ", "을") and k + 1 < len(rest) and rest[k + 1].form in ("거", "것"):
            return False  # 안 늦을 거다: the future of the predicate itself
        if m.tag == "ETM" and k + 1 < len(rest) and _linking_noun(rest, k + 1, last=True):
            return False  # 없는디: the connective -는데/-는디 read as a modifier and a bound noun
        if m.tag == "ETM" and k + 1 < len(rest) and (rest[k + 1].form in ("듯", "듯이") or (
                rest[k + 1].form in ("거", "것") and k + 2 < len(rest) and rest[k + 2].form == "같")):
            return False  # 아닌 듯, 못 갈 것 같아: a guess about the predicate itself
        if m.tag in ("ETM", "ETN"):
            return True
        if m.tag in ("EF", "EC"):
            return False
    return False


def _clause(ms: Sequence[Morpheme], last: bool, question: bool) -> Clause:
    lemmas: set[str] = set()
    head = None
    negated = False
    past = plan = suggestion = False
    forms = [m.form for m in ms]
    future = False
    for i, m in enumerate(ms):
        tag = m.tag
        if tag in ("NNG", "NNP", "SL", "XR"):
            form = m.form.lower()
            if form not in GLUE and form not in RELATIONS:
                lemmas.add(form)
            if tag != "SL" and (form not in GLUE or head is None):
                head = form
            if form in _PLAN_WORDS and (form != "다음" or (i + 1 < len(ms) and ms[i + 1].form in ("주", "달", "번"))):
                future = True
            if form in _SUGGEST_WORDS:
                suggestion = True
        elif tag == "SN":
            lemmas.add(m.form.replace(",", ""))  # 880, 25: numbers tell one person's news from another's
        elif tag in ("VV", "VA", "VCN"):
            lemma, says_no = _lemma(m)
            # 재미없는 영화를 봤다: a 없 inside a modifier says no of the noun, not of the clause's predicate.
            negated |= says_no and not _embedded(ms, i)
            if lemma in ("못하",):
                negated = True
            elif lemma == "있" and any(k >= 0 and ms[k].form in ("적", "수", "줄") and ms[k].tag == "NNB"
                                      for k in (i - 1, i - 2)):
                # 넣어 본 적이 없다: the verb before is what is (not) done, and 적 makes it what has been done.
                past |= any(k >= 0 and ms[k].form == "적" for k in (i - 1, i - 2))
            elif lemma not in GLUE:
                lemmas.add(lemma)
                head = lemma
            elif lemma in FEELINGS or lemma not in ("하", "되", "이"):
                head = lemma
            if lemma in _SUGGEST_WORDS:
                suggestion = True
        elif tag == "VX":
            if m.form in ("않", "못하") and not _embedded(ms, i):
                negated = True
            elif m.form in ("오", "가") and i >= 2 and ms[i - 1].tag == "EC" and ms[i - 2].tag == "VV":
                # 다녀왔다 is 다니+어+오 in one text and 다녀오 in another: one verb, one lemma.
                lemma = _compound(ms[i - 2], ms[i - 1], m)
                lemmas.add(lemma)
                head = lemma
        elif tag == "MAG" and m.form in ("안", "못") and not _embedded(ms, i):
            negated = True
        elif tag == "EP":
            if m.form.startswith(_PAST):
                past = True
            elif m.form == "겠":
                plan = True
        elif tag == "EF":
            if m.form in ("ᆷ", "음") and i > 0 and ms[i - 1].tag in ("VV", "XSV", "VX"):
                past = True  # 송금함, 남김: Kiwi reads the memo style's ending as final too
            if m.form in _SUGGESTION_ENDINGS or (m.form == "래" and i > 0 and ms[i - 1].tag in ("VV", "VX")) or \
                    (m.form in ("어", "아", "어요", "아요") and i > 0 and ms[i - 1].form == "주" and ms[i - 1].tag == "VX"
                     and not past) or (m.form in ("어", "아", "어요", "아요") and i > 0 and ms[i - 1].form == "보"
                                                 and ms[i - 1].tag == "VX" and not past):
                suggestion = True
            elif m.form in _PLAN_ENDINGS:
                plan = True
        elif tag == "EC":
            if m.form in _PLAN_ENDINGS or m.form in ("어야", "아야"):
                plan = True
            if m.form == "자" and i == len(ms) - 1:
                suggestion = True  # 밥 한번 먹자: Kiwi reads a final 자 as a connective
            if m.form in ("면", "으면") and "좋" in forms[i:]:
                suggestion = True
        elif tag == "ETM" and m.form in ("ᆯ", "을") and i + 1 < len(ms) and ms[i + 1].form in ("거", "것", "예정", "계획"):
            plan = True
        elif tag == "ETN" and m.form == "기" and i + 1 < len(ms) and ms[i + 1].form == "로":
            plan = True  # 하기로 했다: a decision, not the act
        elif tag == "ETN" and m.form in ("ᆷ", "음") and i == len(ms) - 1 and i > 0 and ms[i - 1].tag in ("VV", "XSV"):
            past = True  # 소개팅함, 먹음: the chat's memo style tells what was done
    # 나가 보시는 것도 좋아요, 쉬는 게 좋겠어: a good thing to do, said to someone, is advice.
    if any(m.form in ("것", "거", "게") and m.tag == "NNB" and i and ms[i - 1].tag == "ETM" and
           any(x.tag == "VA" and x.form in _GOOD for x in ms[i + 1:]) for i, m in enumerate(ms)) and not past:
        suggestion = True
    if negated and any(m.form == "밖에" and m.tag == "JX" for m in ms):
        negated = False  # 3%밖에 안 올랐다, 하나밖에 없다: only so much, which is a yes
    quote = ms[-1].form if ms and ms[-1].tag == "EC" and ms[-1].form in QUOTE_ENDINGS else \
        next((m.form for m in ms if m.tag == "ETM" and m.form in _QUOTING_MODIFIERS), None) or \
        next((m.form for m in ms if m.tag in ("EC", "ETM", "EF") and m.form.startswith("냐")
              and m is not ms[-1] or (m.tag == "ETM" and m.form.startswith("냐"))), None)
    if quote is None:
        # 화요일이라고 했다: the quoting particle keeps the quote in the clause of its verb of saying.
        quote = next((m.form for m in ms if m.tag == "JKQ"), None)
    if quote is not None and quote in ("자고",) or (quote in ("라고", "으라고") and len(ms) > 1 and ms[-2].tag in ("VV", "VX")):
        suggestion = True
    if future and not past:
        plan = True  # 내일 가: what is to come
    at = next((i for i, m in enumerate(ms) if m.form in _PLAN_WORDS), None)
    modified = at is not None and any(m.tag in ("ETM", "JKG") or m.form in ("때문", "동안", "전")
                                      for m in ms[at:])
    if at is not None and not modified:
        # 내일부터, 다음 주 금요일에: the time word says when the act is; 다음 주 점심 회비 names a thing.
        k = at + 1
        while k < len(ms) and (ms[k].form in _TIME_NOUNS or ms[k].tag in ("SN", "NNB") or ms[k].form.endswith("요일")):
            k += 1
        modified = k < len(ms) and (not (ms[k].tag in ("JKB", "JX", "MAG") or ms[k].tag.startswith("V"))
                                    or ms[k].form in ("로", "으로"))  # 내일 오전 10시로 잡혔다: set for then
    # 잘 도착했니, 밥 먹었냐: a sentence that ends in -니/-냐 asks, though Kiwi may read the ending as a connective.
    question = question or (last and bool(ms) and ms[-1].tag in ("EC", "EF") and ms[-1].form in ("니", "냐", "으냐", "느냐"))
    if question and last and not suggestion:
        mood = "question"
    elif suggestion:
        mood = "suggestion"
    elif ms and ms[-1].tag == "EC" and ms[-1].form in _CONDITIONS:
        mood = "condition"  # 토플만 있으면 돼, 내일도 열이 안 떨어지면: what would be, no fact
    elif plan:
        mood = "plan"
    else:
        mood = "statement"
    nested = any(m.tag == "ETM" and (m.form in _QUOTING_MODIFIERS or m.form.startswith("냐")) for m in ms)
    if head is None and any(m.tag == "VV" and m.form == "되" for m in ms):
        head = "되"  # 나는 안 됐다: 되다 alone is the clause's act (a result), not a helper of another verb
    return Clause(frozenset(lemmas), head, negated, past and not plan and mood != "suggestion", mood, quote,
                  nested=nested, verbless=not any(m.tag in ("VV", "VA", "VX", "XSV", "XSA", "VCP", "VCN") for m in ms),
                  future=future, modified_future=modified,
                  copula=any(m.tag == "VCP" for m in ms) and not any(m.tag in ("VV", "XSV") for m in ms),
                  obligation=any(m.tag == "EC" and m.form in ("어야", "아야") for m in ms))


def _persons_in(ms: Sequence[Morpheme], names: frozenset[str]) -> list[tuple[str, str]]:
    found = []
    for i, m in enumerate(ms):
        form = m.form
        if not m.tag.startswith(("NN", "NP")):
            continue
        person = None
        if form in RELATIONS and i + 1 < len(ms) and ms[i + 1].tag == "NNP":
            continue  # 사촌 동희는: the name after the relation word is the person, with the particle
        if form in names or form in RELATIONS or (m.tag == "NNP" and i > 0 and ms[i - 1].form in RELATIONS):
            person = form
        elif m.tag == "NNP" and form.endswith("이") and (form[:-1] in names or len(form) >= 3):
            person = form[:-1]  # 서연이는: Kiwi keeps the name's 이 in the word
            if i + 1 < len(ms) and not ms[i + 1].tag.startswith(("J", "XSN")) and ms[i + 1].tag != "NNB":
                # 민준이 휴학하고: the 이 Kiwi kept is the subject's particle; 성민이 물건 정리는: a possessive
                # without 의, the noun after it is what the clause is about.
                found.append((person, "other" if _possessed(ms, i + 1) else "subject"))
                continue
        elif m.tag == "NNP" and i + 1 < len(ms) and ms[i + 1].tag == "XSN" and ms[i + 1].form == "이":
            person = form  # 주원이는: a name the chat has no speaker for
        elif m.tag == "NP" and form in ("나", "내", "저", "제"):
            person = "나"
        elif i + 1 < len(ms) and ((ms[i + 1].tag == "XSN" and ms[i + 1].form == "님")
                                  or (ms[i + 1].tag == "NNB" and ms[i + 1].form == "분" and m.tag == "NNG")):
            person = form  # 손님, 점장님, 임원분: the honorific suffix makes any noun a person
        if person is None:
            continue
        j = i + 1
        if form in RELATIONS:
            # 사촌 동희는: a name Kiwi does not know comes out as one-syllable nouns; the relation word stands for it.
            while j < len(ms) and j - i <= 2 and ms[j].tag in ("NNG", "NNP", "MM") and len(ms[j].form) == 1:
                j += 1
        while j < len(ms) and (ms[j].tag == "XSN" or ms[j].form in ("씨", "님")):
            j += 1
        after = ms[j] if j < len(ms) else None
        # 성민 이 물건 정리는 (a possessive without 의) against 민준 이 휴학하고 (the subject of 휴학하다).
        if after is not None and after.form == "이" and after.tag == "JKS" and j + 1 < len(ms) and \
                ms[j + 1].tag == "NNG":
            found.append((person, "other" if _possessed(ms, j + 1) else "subject"))
            continue
        if after is not None and after.tag == "NNG" and j - 1 > i and ms[j - 1].form == "이" and ms[j - 1].tag == "XSN":
            found.append((person, "other" if _possessed(ms, j) else "subject"))
            continue
        # 다솜이가 사 온 치킨은: the subject of a modifier, not of the clause.
        # ...and so is a second subject before a modifier (첫째가 엄마가 없는 걸 알았는지: 엄마 is 없는's).
        relative = after is not None and after.tag == "JKS" and (
            _relative_subject(ms, j + 1) or (any(x.tag == "JKS" for x in ms[:i]) and _relative_subject(ms, j + 1, True)))
        if relative:
            role = "other"
        elif after is not None and after.tag == "JX" and after.form in ("은", "는", "ᆫ"):
            role = "topic"
        elif after is not None and (after.tag == "JKS" or (after.tag == "JX" and after.form == "도")
                                    or after.form == "께서"):
            role = "subject"
        elif person == "나" and form == "나" and (after is None or after.tag.startswith(("N", "M", "V"))):
            role = "subject"  # 나 혼자 갔다, 나 오늘 면접 봤어: the spoken subject without its particle
        elif person != "나" and i == 0 and after is not None and (after.tag == "MAG" or after.form in _WHEN):
            role = "subject"  # 선배 다음 달에 결혼해서: a person opening the clause, then when, is its subject
        elif after is not None and after.form in _COMPANION and after.tag in ("JKB", "JC"):
            role = "companion"
        else:
            role = "other"
        found.append((person, role))
    return found


def _possessed(ms: Sequence[Morpheme], at: int) -> bool:
    """The nouns from ``at`` on, right after a name and its 이, are a noun phrase the name owns: they end in the
    clause's topic or subject particle (성민이 물건 정리는), not in an object's (동생이 머리를 밀었다: the name is the
    subject) nor in 하다 (휴학하고)."""
    k = at
    while k < len(ms) and ms[k].tag in ("NNG", "NNP"):
        k += 1
    return k > at and k < len(ms) and (ms[k].tag == "JKS" or (ms[k].tag == "JX" and ms[k].form in ("은", "는", "ᆫ")))


def _relative_subject(ms: Sequence[Morpheme], at: int, any_noun: bool = False) -> bool:
    """The subject ending before ``at`` belongs to a modifier whose noun is the clause's own subject or topic:
    다솜이가 사 온 치킨은 (the chicken is what the clause is about), not 친구가 밀린 빨래를 했다."""
    for k in range(at, len(ms)):
        if ms[k].tag == "EC" and k + 1 < len(ms) and ms[k + 1].tag == "VX":
            continue  # 꺼내 놓은: a helper verb's link is inside the modifier
        if ms[k].tag in ("EC", "EF"):
            return False
        if ms[k].tag == "ETM":
            n = k + 1
            while n < len(ms) and ms[n].tag in ("NNG", "NNP", "NNB", "XSN"):
                n += 1
            if any_noun:
                return n > k + 1
            return n > k + 1 and n < len(ms) and (ms[n].tag == "JKS"
                                                   or (ms[n].tag == "JX" and ms[n].form in ("은", "는")))
    return False


def _together(part: Sequence[Morpheme]) -> bool:
    """The clause's act is done together (같이 먹었다, 우리는), not 같이 inside a noun's modifier (같이 스터디하는 친구)."""
    for i, m in enumerate(part):
        if m.form in ("같이", "함께", "둘이", "다들", "모두", "다같이") or (m.form == "우리" and m.tag == "NP") or \
                (m.form in ("둘", "셋", "넷", "다섯") and i + 1 < len(part) and part[i + 1].tag in ("JX", "JKS", "XSN")):
            if not any(x.tag == "ETM" for x in part[i + 1:]):
                return True
    return False


def _thing_subject(part: Sequence[Morpheme], names: frozenset[str]) -> bool:
    """A noun that is no person takes the subject particle 이/가 (값이 나왔다, 비가 왔다)."""
    # ...or, in a clause of 이다, the topic 은/는 (한국은 새벽 2시라): a state of the world, nobody's act.
    copula = any(m.tag == "VCP" for m in part)
    return any(m.tag in ("NNG", "NNP") and m.form not in names and m.form not in RELATIONS and m.form not in GLUE
               and (part[i + 1].tag == "JKS" or (copula and part[i + 1].tag == "JX" and part[i + 1].form in ("은", "는")))
               for i, m in enumerate(part[:-1]))


def _join_names(ms: list[Morpheme], text: str, names: frozenset[str]) -> list[Morpheme]:
    """The chat's names made one proper noun where Kiwi cut them into common words (세아도 -> 세/MM 아/NNG 도)."""
    out = list(ms)
    for name in names:
        if len(name) < 2 or name not in text:
            continue
        k = 0
        while k < len(out):
            m = out[k]
            if m.start < len(text) and text.startswith(name, m.start) and (m.start == 0 or not
                                                                            "가" <= text[m.start - 1] <= "힣"):
                end = k
                while end < len(out) and out[end].end <= m.start + len(name):
                    end += 1
                if end - k == 1 and m.form == name and m.tag != "NNP" and end < len(out) and \
                        out[end].tag.startswith("J"):
                    out[k] = m._replace(tag="NNP", kiwi_tag="NNP")  # 하나랑: the name, not the numeral
                elif end - k == 1 and m.form != name and m.end == m.start + len(name) and m.tag.startswith("N"):
                    out[k] = m._replace(form=name, tag="NNP", kiwi_tag="NNP")  # 다빈은: 다비/NNP ᆫ/JX
                elif end - k >= 2 and out[end - 1].end == m.start + len(name) and \
                        all(x.tag.startswith(("N", "MM", "MAG", "VV", "VA", "XR")) for x in out[k:end]):
                    out[k:end] = [m._replace(form=name, tag="NNP", end=m.start + len(name), kiwi_tag="NNP")]
            k += 1
    return out


def _analyse_text(text: str, names: frozenset[str]) -> _Text:
    clauses: list[Clause] = []
    lemmas: set[str] = set()
    nouns: set[str] = set()
    persons: list[tuple[str, str]] = []
    things: set[str] = set()
    proper: set[str] = set()
    first = False
    for sentence in analyse(text):
        ms = _join_names([m for m in sentence.morphemes if m.tag not in ("SF", "SP", "SS", "SE", "SO", "SW", "SB")],
                         text, names)
        persons += _persons_in(ms, names)
        first |= any(m.form in ("나", "내", "저", "제") and m.tag == "NP" for m in ms)
        for i, m in enumerate(ms):
            if m.tag in ("NNG", "NNP", "SL"):
                form = m.form.lower()
                if m.tag == "NNP" and form.endswith("이") and form[:-1] in names:
                    form = form[:-1]
                nouns.add(form)
                following = ms[i + 1] if i + 1 < len(ms) else None
                # 76kg: a unit after a number is no thing of its own.
                if (following is None or following.tag not in ("XSV", "XSA", "VCP")) and \
                        not (m.tag == "SL" and i and ms[i - 1].tag == "SN"):
                    things.add(form)
                if m.tag == "NNP":
                    proper.add(form)
        parts: list[list[Morpheme]] = [[]]
        for i, m in enumerate(ms):
            parts[-1].append(m)
            if m.tag == "EF" or (m.tag == "EC" and _splits(m, ms[i + 1] if i + 1 < len(ms) else None)) or \
                    _linking_noun(ms, i):
                parts.append([])
        parts = [p for p in parts if p]
        subject = None
        topic = False
        group = False
        parsed: list[Clause] = []
        for k, part in enumerate(parts):
            clause = _clause(part, k == len(parts) - 1, sentence.question)
            found = _persons_in(part, names)
            subject = next((p for p, role in reversed(found) if role in ("subject", "topic")), subject)
            if any(role in ("subject", "topic") for _, role in found):
                topic = next((role == "topic" for _, role in reversed(found) if role in ("subject", "topic")))
            if subject is None and _thing_subject(part, names):
                subject = THING
            span = _SQUEEZE.sub("", text[part[0].start:part[-1].end])
            hearsay = any((m.tag == "EF" and m.form in _HEARSAY) or (m.tag == "EC" and m.form in _HEARSAY_LINKS)
                          for m in part)
            # 남은 셋은 계속 넣고, 여행도 가기로 했다: a group's clauses over 고/며 are the group's too.
            shared = any(role == "companion" and p in names for p, role in found) or _together(part) or group
            honorific = any(m.tag == "EP" and m.form in ("시", "으시") for m in part)
            if honorific and subject in (None, "나"):
                subject = HONOURED
            you = any(m.form in _SECOND_PERSON and m.tag == "NP" for m in part)
            parsed.append(dataclasses.replace(clause, hearsay=hearsay, owner=subject, shared=shared, squeezed=span,
                                              honorific=honorific, you=you))
            group = shared and part[-1].tag == "EC" and part[-1].form in _SAME_SUBJECT and \
                not any(role in ("subject", "topic") for _, role in found if _ != "나")
            # A subject reaches the next clause over 고/며 and a quotation (지수가 간다고 했다), not over 어서/는데,
            # whose next clause is as often the writer's (언니가 바빠서 안 물어보기로 했다).
            # A topic (선배는 아파서 조퇴했다) is what the whole sentence is about, over 어서/는데 too.
            if not (part[-1].tag == "EC" and (part[-1].form in QUOTE_ENDINGS or part[-1].form in _SAME_SUBJECT
                                              or (topic and part[-1].form not in _NEW_SUBJECT))):
                subject = UNKNOWN if subject not in (None, "나", THING) else None
                topic = False
        for k in range(len(parsed) - 2, -1, -1):
            here, after = parsed[k], parsed[k + 1]
            link = parts[k][-1]
            # 보고 왔다, 가서 먹었다: the tense is the last predicate's.
            if link.tag == "EC" and link.form in _TENSE_LINKS and after.past and not here.past and here.mood == "statement":
                parsed[k] = here = dataclasses.replace(here, past=True)
            # 삼계탕 챙겨 먹었니?, 밥 먹고 왔어?: what goes along with the asked act is asked too.
            if after.mood == "question" and link.tag == "EC" and link.form in _ALONG and here.mood == "statement":
                parsed[k] = here = dataclasses.replace(here, mood="question")
            # 찜질이라도 하시는 건 어때요?: the last clause's suggestion is the whole sentence's.
            # 반신욕 하시면서 푹 쉬시는 건 어때요?: what is done along with the suggested act is suggested too.
            if after.mood == "suggestion" and link.tag == "EC" and not here.past and here.mood == "statement" and (
                    not after.lemmas - _SUGGEST_WORDS or (link.form in _ALONG and not here.negated)):
                parsed[k] = here = dataclasses.replace(here, mood="suggestion")
            # 해 두시면 어때요?, 가 보면 좋겠다: a suggestion over two clauses.
            # ...and so is 만들어 가시면 편해요: a condition with a good outcome after it is advice.
            if link.tag == "EC" and link.form in ("면", "으면") and (after.mood == "suggestion" or "좋" in after.squeezed
                                                                   or parsed[-1].head in _GOOD):
                parsed[k] = dataclasses.replace(here, mood="suggestion", past=False)
        for clause in parsed:
            clauses.append(clause)
            lemmas |= clause.lemmas
    return _Text(text, _SQUEEZE.sub("", text), tuple(clauses), frozenset(lemmas), frozenset(nouns),
                 things=frozenset(things), proper=frozenset(proper), persons=tuple(persons),
                 first_person=first)


# --- numbers -----------------------------------------------------------------------------------------------------

def _number(token: str) -> float | None:
    token = token.replace(",", "").replace(" ", "")
    try:
        return float(token)
    except ValueError:
        pass
    total = 0.0
    current = ""
    section = 0.0
    for ch in token:
        if ch.isdigit() or ch == ".":
            current += ch
        elif ch in _SINO:
            current = str(_SINO[ch])
        elif ch in _UNITS:
            value = float(current) if current else 1.0
            current = ""
            if _UNITS[ch] >= 10_000:
                total += (section + value) * _UNITS[ch]
                section = 0.0
            else:
                section += value * _UNITS[ch]
        else:
            return None
    return total + section + (float(current) if current else 0.0)


def numbers(text: str) -> set[tuple[float, str]]:
    """The numbers ``text`` gives, each with its unit (``""`` if none): digits (3시, 880, 30%), money amounts (3만
    5천원, 삼만 원), native numerals before a counter or counting people (두 시간, 셋이) and weekdays (value -1 for
    월요일 to -7 for 일요일). 한 (one) is left out: 한 번, 한잔 are idioms more than counts."""
    found: set[tuple[float, str]] = set()
    for match in _MONEY.finditer(text):
        value = _number(match.group(1))
        if value is not None:
            found.add((value, "원"))
    rest = _MONEY.sub(" ", text)
    for match in _AMOUNT.finditer(rest):
        value = _number(match.group(0))
        if value is not None:
            found.add((value, ""))
    rest = _AMOUNT.sub(" ", rest)
    for match in _DIGITS.finditer(rest):
        value = _number(match.group(1))
        if value is not None:
            unit = _UNIT.match(rest, match.end())
            found.add((value, _SAME_UNIT.get(unit.group(1), unit.group(1)) if unit else ""))
    found.update((float(_NATIVE[m.group(1)]), _SAME_UNIT.get(m.group(2), m.group(2)))
                 for m in _NATIVE_NUMBER.finditer(text))
    # 준서랑 둘이 간다: the writer and one companion are two, no count the chat has to give.
    found.update((float(_NATIVE[m.group(1)]), "명") for m in _NATIVE_COUNT.finditer(text)
                 if not (m.group(1) == "둘" and re.search(r"(?:랑|하고|와|과)\s*$", text[:m.start()])))
    found.update((-1.0 - "월화수목금토일".index(m.group(1)), "요일") for m in _WEEKDAY.finditer(text))
    return found


def _known_number(number: tuple[float, str], chat: set[tuple[float, str]]) -> bool:
    value, unit = number
    values = {v for v, _ in chat}
    if (value, unit) in chat or (value, "") in chat or (not unit and value in values):
        return True
    # 3시 and 15시, 오후 3시: the same hour.
    if unit == "시" and ((value + 12, "시") in chat or (value - 12, "시") in chat):
        return True
    # 120만 원 where the chat says "카드값 120", 5천 원 for "5천": the chat leaves the unit out.
    return value >= 1000 and any((value / scale, u) in chat for scale in (1000, 10_000) for u in ("", "원"))


# --- the alignment -----------------------------------------------------------------------------------------------

def _names(dialogue: Sequence[Mapping[str, str]], writer: str) -> tuple[frozenset[str], frozenset[str]]:
    """Every speaker's names (full, and a three-syllable name's given name) and the writer's."""
    def forms(name: str) -> set[str]:
        name = name.strip()
        out = {name}
        if re.fullmatch(r"[가-힣]{3}", name):
            out.add(name[1:])
        return out

    everyone: set[str] = set()
    for turn in dialogue:
        everyone |= forms(str(turn["speaker"]))
    return frozenset(everyone), frozenset(forms(writer))


def _present(lemma: str, text: _Text) -> bool:
    return lemma in text.lemmas or (len(lemma) >= 2 and (lemma in text.squeezed or lemma in text.squeezed.lower()))


def _score(lemmas: Iterable[str], text: _Text) -> int:
    return sum(_present(lemma, text) for lemma in lemmas)


def _clause_matches(clause: Clause, turns: Sequence[_Turn], context: frozenset[str] = frozenset(),
                    ) -> list[tuple[_Turn, Clause]]:
    """Chat clauses about the same thing: the diary clause's head, and another lemma where it has one."""
    if clause.head is None or (clause.head in GLUE and clause.head not in FEELINGS and
                               (clause.head not in _PLAIN_ACTS or not context)):
        return []
    # A clause with no word but its verb (왔다, 못 간다고) is about what its sentence is about.
    others = (clause.lemmas - {clause.head}) or set(context)
    out = []
    for k, turn in enumerate(turns):
        for c in turn.text.clauses:
            if clause.head in c.lemmas or c.head == clause.head:
                # About the same thing: another lemma shared by the clause, or by its turn when it has none. A
                # chat tells one thing over a few short turns (오늘 첫 발표 했어요 / 신규 앱 기획안이요); a plain verb
                # (가, 오, 있) is too common to take its topic from further than the turn before.
                start = k - 1
                # 승진 발표 났어요 / 결과는요? / 저는 안 됐어요: an answer to the other's question goes on with the
                # answerer's message before the question.
                if k >= 2 and turns[k - 1].speaker != turn.speaker and turns[k - 2].speaker == turn.speaker and \
                        ("?" in turns[k - 1].text.text or any(x.mood == "question" for x in turns[k - 1].text.clauses)):
                    start = k - 2
                window = [t for t in turns[max(0, start):k + (1 if clause.head in _PLAIN_ACTS else 3)]
                          if t.index <= turn.index or t.speaker == turn.speaker]
                # A clause with words of its own is about them (점심은 못 먹었어 is not about 떡볶이).
                own_words = bool(c.lemmas - {clause.head})
                near = c.lemmas if own_words else frozenset().union(*(t.text.lemmas for t in window))
                text = c.squeezed if own_words else "".join(t.text.squeezed for t in window)
                found = {o for o in others if o in near or (len(o) >= 2 and o in text)}
                # A plain verb needs the clause's other words: all of them, or two and at least half (호텔 뷔페에 갔다
                # where the diary adds the hotel's name from another turn).
                if not others or (found == others or (len(found) >= 2 and 2 * len(found) >= len(others))
                                  if clause.head in _PLAIN_ACTS else found):
                    out.append((turn, c))
            elif (c.head in GLUE or c.head is None) and (clause.head in GLUE or clause.head in _THOUGHTS) and \
                    clause.lemmas - {clause.head} and \
                    clause.lemmas - {clause.head} <= c.lemmas:
                out.append((turn, c))  # 환불을 받았다 against 환불이 안 됐어: the noun carries it
            elif clause.head in _LIGHT_VERBS and c.head is not None and c.head != clause.head and \
                    c.head in clause.lemmas and c.head not in GLUE and len(c.head) >= 2 and \
                    len(clause.lemmas & c.lemmas) >= 2:
                # 숙소는 환불을 받았다 against 숙소는 환불이 안 된대: a support verb's noun is the act (환불), which the
                # chat tells with its own verb; the other words say it is the same thing.
                out.append((turn, c))
    return out


def _negation_flip(clause: Clause, turns: Sequence[_Turn], own: set[int], context: frozenset[str]) -> str | None:
    if clause.mood == "condition" or clause.nested or "냐" in (clause.quote or ""):
        return None  # 왜 안 막았냐는, 알려 준다는 말에 안 궁금하다고: words inside words, whose no is whose?
    matches = [(t, c) for t, c in _clause_matches(clause, turns, context) if c.mood in ("statement", "plan")]
    if clause.owner in (None, "나"):
        # The writer's own act is compared with what the writer says, not a friend's news, nor the bot's guess.
        matches = [(t, c) for t, c in matches if id(c) in own and t.writer]
    elif clause.owner not in (THING, UNKNOWN, HONOURED):
        # Someone's act, with what the chat says of them: 남편은 못 왔어 says nothing of 시어머니가 오셨다.
        # ...and what they say of themself (은호: 나 회 못 먹는데), and an honoured subject answering a question
        # about them (엄마는 주무셨어? / 한숨도 못 주무심).
        matches = [(t, c) for t, c in matches if c.owner == clause.owner or (c.owner is None and (
            clause.owner in t.text.squeezed or clause.owner in (t.speaker.strip(), t.speaker.strip()[1:]))) or (
            c.owner == "나" and not t.writer and clause.owner in (t.speaker.strip(), t.speaker.strip()[1:])) or (
            c.owner == HONOURED and clause.honorific and any(
                clause.owner in x.text.squeezed for x in turns if t.index - 1 <= x.index <= t.index))]
    # Only a clause of the same time can say the opposite: 안 정해졌어 (not yet) does not deny 다음 주에 정한다, nor
    # 갈게 (a plan) 안 갔다; a plan of the diary's (일찍 자 보려고) denies no fact.
    matches = [(t, c) for t, c in matches if not (c.negated and c.past and not clause.past)
               and not (c.mood == "plan" and clause.past) and not (clause.mood == "plan" and c.mood != "plan")]
    if matches and clause.lemmas - {clause.head}:
        # The chat clauses that share most of the diary clause's other words: 숙소는 환불이 안 된대 speaks of the
        # room where 렌터카 환불받았대, two turns before, speaks of the car.
        others = clause.lemmas - {clause.head}
        overlap = [sum(o in c.lemmas or (len(o) >= 2 and o in c.squeezed) for o in others) for _, c in matches]
        matches = [m for m, n in zip(matches, overlap) if n == max(overlap)]
    if clause.past and any(c.past for _, c in matches):
        # A fact done is told by the chat's clauses in the past (맞았어? / 아니 아직), not by a present wish or
        # a permission (맞아도 되나) of the same verb.
        matches = [(t, c) for t, c in matches if c.past]
    if matches and all(c.negated != clause.negated for _, c in matches):
        t, c = matches[0]
        said = "says no" if c.negated else "says yes"
        return f"'{clause.head}': turn {t.index} ({t.speaker}) {said}, the diary the opposite"
    if clause.head in _ANTONYMS and not any(clause.head in c.lemmas for t in turns for c in t.text.clauses):
        others = clause.lemmas - {clause.head}
        for t in turns:
            for c in t.text.clauses:
                opposite = _ANTONYMS[clause.head] & c.lemmas
                if opposite and c.mood == "statement" and c.negated == clause.negated and (not others or others & c.lemmas):
                    return f"'{clause.head}': turn {t.index} ({t.speaker}) says '{sorted(opposite)[0]}'"
    return None


def _suggestion_as_done(clause: Clause, turns: Sequence[_Turn], names: frozenset[str]) -> str | None:
    if not (clause.past and clause.mood == "statement" and not clause.negated and clause.quote is None):
        return None
    if re.search(r"정도|뻔|것같|수있|수없|듯", clause.squeezed):
        return None  # 못 내려갈 정도였다, 넘어질 뻔했다: a degree or a near miss, no act told done
    if clause.future and clause.head not in _SCHEDULING and not clause.lemmas & _BOOKED and \
            not re.search(r"오늘|어제|아까|방금", clause.squeezed) \
            and not clause.modified_future:
        return f"told as done, but '{clause.squeezed}' is still to come"
    content = clause.lemmas - FEELINGS - names
    if not content or clause.head in FEELINGS or clause.head in _THOUGHTS or clause.honorific or \
            clause.owner in (HONOURED, UNKNOWN, THING) or clause.copula or "싶" in clause.squeezed:
        return None
    # The chat clauses closest to it: most content lemmas shared, the predicate counting once more.
    scored = []
    for t in turns:
        for c in t.text.clauses:
            shared = sum(lemma in c.lemmas or (len(lemma) >= 2 and lemma in c.squeezed) for lemma in content)
            if shared:
                scored.append((shared + (c.head == clause.head and c.head is not None), t, c))
    best = max((score for score, _, _ in scored), default=0)
    if best < 2:
        return None  # one word in common is a topic, not the act
    closest = [(t, c) for score, t, c in scored if score == best]
    # Done is often told in fewer words than it was suggested (사진 보내 봐 / 사진): any clause telling the same
    # act done, with the predicate and another word of it, will do.
    if any(c.past and c.mood == "statement" and not c.negated and c.head == clause.head
           for score, _, c in scored if score >= 2) or \
            any(c.past and c.mood == "statement" and not c.negated for _, c in closest) or \
            any(c.head in _DONE_WORDS for _, c in closest) or \
            any(t.writer and c.mood == "statement" and not c.negated and not c.future for t, c in closest):
        # Told done, or told by the writer as going on (야근 중): the diary may tell it done.
        return None
    # A suggestion from anyone; a plan only from the writer (a friend's plan is no plan of the writer's act).
    # A date told (오픈이 다음 주 월요일이라) or news heard (파트장 달아준대) is no plan of the act.
    # Another speaker's plan told as the writer's done act (보람: 5키로 빼야 해 -> 5키로를 뺐다) never happened either.
    hinted = [(t, c) for t, c in closest if c.mood == "suggestion" or (
        c.mood == "plan" and not c.copula and not c.hearsay
        and (t.writer or (clause.owner in (None, "나") and not t.bot)))]
    # 나는 오늘 숙소에서 쉴게: the writer's plan for the day itself, told that day, is what the day's diary tells done.
    hinted = [(t, c) for t, c in hinted if not (c.mood == "plan" and t.writer and not c.future and
                                                re.search(r"오늘|지금", t.text.squeezed))]
    if not hinted:
        return None
    t, c = hinted[0]
    # 20 먼저 보낼게 / 응 송금함, 5천원 보내주세요 / 보냈어요: a chat tells done in a word or two right after;
    # 안마의자 어때? / 좋아: a suggestion agreed to is a decision made (정했다).
    mine = clause.owner in (None, "나")
    for t, c in hinted:
        for later in turns[t.index + 1:t.index + 4]:
            if clause.head in _DECIDING and later.speaker != t.speaker and _YES.match(later.text.text):
                return None
            teller = later.writer if mine else clause.owner in (later.speaker.strip(), later.speaker.strip()[1:])
            if len(later.text.squeezed) <= 16 and teller and any(
                    x.past and x.mood == "statement" and not x.negated and len(x.lemmas - content) <= 1
                    for x in later.text.clauses):
                return None
    t, c = hinted[0]
    return f"turn {t.index} ({t.speaker}) only {'suggests' if c.mood == 'suggestion' else 'plans'} it; no turn tells it done"


def _sources(chat: _Chat) -> dict[str, list[Clause]]:
    """The chat's asserting clauses by whose news they are: ``""`` the writer's own (what the writer says of
    themself, and what others and the bot say to or about the writer), ``"\0"`` what the writer passes on from
    somebody named (간대, a third person as subject, an honoured subject), ``"\1"`` what the writer heard from
    nobody named (취소래), ``"\2"`` the writer's words just after someone was named (울었어 answering 아내분
    반응은?), and every other speaker's own by name."""
    out: dict[str, list[Clause]] = {"": [], "\0": [], "\1": [], "\2": []}
    last_key: str | None = None
    for k, turn in enumerate(chat.turns):
        # 다은이 청약 당첨됐대 / 동탄 84타입: a message of nouns alone goes on with the same speaker's news before.
        fragment = turn.writer and k and chat.turns[k - 1].speaker == turn.speaker and last_key is not None and \
            not any(m.tag.startswith(("V", "XSV", "XSA", "E")) for x in analyse(turn.text.text) for m in x.morphemes)
        if fragment:
            out[last_key].extend(c for c in turn.text.clauses if c.mood != "condition")
            continue
        last_key = None
        for c in turn.text.clauses:
            if c.mood == "condition":
                continue
            third = c.owner not in (None, "나", THING, UNKNOWN) and c.owner not in chat.writer_names
            if turn.writer:
                heard = (c.hearsay or c.quote) and c.owner != "나"
                named_here = any(p != "나" and p not in chat.writer_names for p, _ in turn.text.persons)
                # 너는 야근 때문에 못 오잖아: the writer speaking of the listener tells someone else's news.
                key = "\0" if (heard and named_here) or third or c.honorific or (c.you and c.owner != "나") else \
                    "\1" if heard else ""
                if c.mood == "suggestion" and heard and not third:
                    key = ""  # 의사가 3개월 뒤에 다시 검사하재: relayed advice is about the writer's doing
                # An answer to "아내분 반응은 어땠어요?" (울었어) is about the person just named.
                key = "\2" if key == "" and turn.names_someone and c.owner != "나" else key
                out[key].append(c)
                last_key = key
            elif turn.bot or c.you or c.owner in chat.writer_names or (
                    c.mood in ("question", "suggestion") and c.owner != "나") or (c.obligation and c.owner != "나"):
                # 교수님께 메일 드려야 돼, said to the writer: advice, about the writer's doing
                out[""].append(c)
            elif not turn.first_person:
                continue  # 항공권 떴다 1인 32만원: news for the whole chat, nobody's own
            else:
                out.setdefault(turn.speaker, []).append(c if c.mood in ("statement", "plan")
                                                        else dataclasses.replace(c, mood="statement"))
    return out


def _covered(lemmas: Iterable[str], clauses: Iterable[Clause]) -> set[str]:
    clauses = [c for c in clauses if c.mood in ("statement", "plan")]
    return {lemma for lemma in lemmas for c in clauses
            if lemma in c.lemmas or (len(lemma) >= 2 and lemma in c.squeezed)}


def _wrong_person(sentence: _Text, chat: _Chat) -> str | None:
    """A diary sentence's clauses, grouped by whose they are, against whose news the chat makes them."""
    mine: set[str] = set()
    heads: set[str] = set()
    theirs: dict[str, set[str]] = {}
    # A sentence that only reports words (…할 거라고 했다) and names no one: its clauses are the words of someone
    # the sentences before named (정우가 그만둔다고 했다. 반년 고민하다가 팀장한테 말했고 … 공부할 거라고 했다).
    reported = _reported(sentence)
    for c in sentence.clauses:
        if c.shared or c.owner in (THING, UNKNOWN):
            continue  # 한국은 새벽 2시라: a state of the world is nobody's act
        if c.owner is None or c.owner == "나" or c.owner in chat.writer_names:
            # 목도리를 만든다는데: told as heard, it is someone else's.
            if ((c.quote is None and not reported) or c.owner is not None) and not c.hearsay:
                mine |= c.lemmas
                heads |= {c.head} & c.lemmas
        else:
            theirs.setdefault(c.owner, set()).update(c.lemmas)
    sources = chat.sources
    for person, lemmas in [(None, mine), *theirs.items()]:
        lemmas = set(lemmas) - FEELINGS - chat.names
        # One word can carry a sentence (다음 주에 제주도에 간다) when it names a thing: a noun of two syllables
        # or more; a lone verb says too little of whose it is.
        # ...and so can a noun made a verb (조퇴했다, 합격했다): an event by its own name.
        if not lemmas or (len(lemmas) == 1 and not any(len(x) >= 2 and x in sentence.nouns for x in lemmas)):
            continue
        need = max(min(2, len(lemmas)), (len(lemmas) + 1) // 2)
        own = _covered(lemmas, sources[""])
        if person is None:
            own |= _covered(lemmas, sources["\1"] + sources["\2"])
            best, who, theirs_only = 0, "", set()
            for name, cs in sources.items():
                covered = _covered(lemmas, cs)
                if name not in ("", "\1", "\2") and len(covered) > best:
                    best, who, theirs_only = len(covered), name, covered - own
            if len(lemmas) == 1 and who == "\0" and not (lemmas & heads & sentence.nouns):
                continue  # one word the writer passed on from someone: too little to say whose it is
            # Someone else's news: they say more of it than the writer does, and what only they say is more than
            # a word, or is what the sentence says happened (청약에 당첨됐다, where 청약 is the writer's too).
            # ...and the act itself is theirs: 짐 정리를 돕기로 했다 shares the day and the boxes of the sister's
            # move, not her act.
            acts = heads & lemmas
            theirs_acts = _covered(acts, sources.get(who, [])) if who else set()
            if best >= need and (not acts or theirs_acts) and (
                    (len(theirs_only) >= 2 and best >= len(own)) or (theirs_only & heads and best > len(own))
                    or (not own and theirs_only == lemmas and who != "\0")):
                who = "somebody the writer tells of" if who == "\0" else who
                return f"told as the writer's own, but only {who} says it of themself"
            continue
        elsewhere = _covered(lemmas, [c for name, cs in sources.items() if name for c in cs])
        # Only a speaker of the chat can be given the writer's words: a relative the writer tells of is told
        # of in the writer's words.
        if person in chat.speakers and len(own) >= need and not elsewhere:
            return f"told as {person}'s, but only the writer says it of themself"
        # A speaker named for what another speaker said (group chats).
        speaker = next((t.speaker for t in chat.turns if person in (t.speaker, t.speaker[1:]) and not t.writer), None)
        if person == HONOURED:
            continue
        if speaker is not None and not _covered(lemmas, sources.get(speaker, [])) and \
                not any(p == person for t in chat.turns for p, _ in t.text.persons):
            for name, cs in sources.items():
                if name not in ("", "\0", speaker) and len(_covered(lemmas, cs)) >= need:
                    return f"told as {person}'s, but {name} says it"
    return None


def _mentioned(noun: str, chat: _Text) -> bool:
    """The chat mentions ``noun``, or a word one syllable off it (유니버설, 유니버셜), or its short form."""
    if _present(noun, chat) or (noun in _SAME and _SAME[noun] in chat.squeezed) or noun in _GENERIC:
        return True
    if len(noun) >= 3 and any(len(word) >= 2 and word in noun for word in chat.nouns):
        return True  # 자가키트 for 키트
    if len(noun) >= 3:
        return any(len(word) == len(noun) and sum(a != b for a, b in zip(word, noun)) <= 1 for word in chat.nouns) or \
            (len(noun) >= 4 and noun[:2] in chat.squeezed)
    return False


def _invented(sentence: _Text, chat: _Text, turns: Sequence[_Turn], names: frozenset[str]) -> str | None:
    novel = sorted(n for n in sentence.things if (len(n) >= 2 or n in sentence.proper) and n not in GLUE
                   and n not in RELATIONS and n not in names and not _mentioned(n, chat))
    # With nobody but the writer and the bot in the chat, a 친구 or 엄마 who acts in the diary must be in it.
    if not any(not (t.writer or t.bot) for t in turns):
        novel += sorted({p for p, role in sentence.persons
                         if role in ("subject", "topic", "companion") and p in RELATIONS
                         and p not in ("상대", "사람", "분") and p not in chat.squeezed and not any(p in t.text.squeezed for t in turns)})
    if not novel:
        return None
    content = sentence.lemmas - FEELINGS
    support = max((_score(content, t.text) for t in turns), default=0)
    if any(n in sentence.proper for n in novel) or len(novel) >= 2 or support <= 1:
        return f"the chat never mentions {', '.join(repr(n) for n in novel)}"
    return None


@dataclass
class _Chat:
    turns: list[_Turn]
    whole: _Text
    numbers: set[tuple[float, str]]
    names: frozenset[str]
    speakers: frozenset[str]
    """The speakers' own names (full and given): :attr:`names` less the people only spoken of."""
    writer_names: frozenset[str]
    sources: dict[str, list[Clause]] = dataclasses.field(default_factory=dict)
    groups: list[tuple[_Turn, str, frozenset[str], str]] = dataclasses.field(default_factory=list)
    own: set[int] = dataclasses.field(default_factory=set)
    """ids of the clauses of the writer's own side (:func:`_sources`' ``""``, ``"\1"`` and ``"\2"``)."""


def _people(texts: Iterable[str]) -> set[str]:
    """Names of people the texts speak of without their being speakers: a proper noun with the friendly 이
    (주원이는), or with what only follows a person (지민이랑, 현서 언니, 준혁아)."""
    found = set()
    for text in texts:
        for sentence in analyse(text):
            ms = sentence.morphemes
            for i, m in enumerate(ms):
                if m.tag != "NNP" or not re.fullmatch(r"[가-힣]{2,4}", m.form):
                    continue
                after = ms[i + 1] if i + 1 < len(ms) else None
                if m.form.endswith("이") and len(m.form) >= 3:
                    found.add(m.form[:-1])
                elif after is not None and ((after.tag == "XSN" and after.form in ("이", "씨", "님"))
                                            or after.form in ("한테", "에게", "랑", "이랑", "아", "야", "씨", "님")
                                            or after.form in RELATIONS):
                    found.add(m.form)
    return found


def _chat(dialogue: Sequence[Mapping[str, str]], writer: str) -> _Chat:
    speakers, writer_names = _names(dialogue, writer)
    names = speakers | _people(str(t["text"]) for t in dialogue)
    bots = {b.casefold() for b in DEFAULT_BOTS}
    group = len({str(t["speaker"]).strip() for t in dialogue}) > 2
    turns: list[_Turn] = []
    for i, turn in enumerate(dialogue):
        text = _analyse_text(str(turn["text"]), names)
        speaker = str(turn["speaker"])
        is_writer = speaker.strip() == writer.strip()
        # A person named in the turn or the two before it: 교수님이 뭐라고 하셨어요? / 주제 너무 넓대.
        someone = any(p != "나" and p not in writer_names for t in [*turns[-2:], None]
                      for p, _ in (text if t is None else t.text).persons)
        # 나 어제 남친이랑 싸웠어 / 연락 문제로..: a run of one speaker's messages speaks of them throughout.
        # ...or answers the others' questions about it (헐 어디?? / 인천 검단).
        me = text.first_person
        for t in reversed(turns[-3:]):
            if t.speaker == speaker:
                me = me or t.first_person
                break
            if _asserts_text(t.text) and t.text.lemmas:
                break
        if _MEDIA.fullmatch(str(turn["text"]).strip()):
            # A KakaoTalk export writes a photo sent as the word 사진: the speaker sent one.
            sent = Clause(frozenset({"사진", "보내"}), "보내", False, True, "statement", squeezed="사진보냈다")
            text = dataclasses.replace(text, clauses=(*text.clauses, sent), lemmas=text.lemmas | sent.lemmas)
        if turns and turns[-1].speaker != speaker and (answered := _answered(turns[-1].text, str(turn["text"]))):
            text = dataclasses.replace(text, clauses=(*text.clauses, answered), lemmas=text.lemmas | answered.lemmas)
            # In a group, a question with no subject and no 너 (월요일에 올라오는 거지? / ㅇㅇ) asks what the group
            # does: the one who answers confirms it, it is not their own news.
            asked_you = turns[-1].text.clauses[-1].you
            # ...even where the one who answers spoke of themself just before the question.
            me = (me if not group or asked_you else text.first_person) or (
                answered.owner is None and (not group or asked_you))
        turns.append(_Turn(i, speaker, text, is_writer, speaker.strip().casefold() in bots, someone, me))
    # 얘들아 내일 자료 각자 준비해 와, 다들 메일 드려요: a present act in the plain or polite style, said to the
    # listeners by name or as a group (a vocative, 여러분, 각자, 다들) and not of the speaker, is a request.
    for turn in turns:
        if turn.writer or turn.text.first_person:
            continue
        ms = [m for x in analyse(turn.text.text) for m in x.morphemes]
        if not any(m.tag == "JKV" or (m.tag == "NP" and m.form in ("여러분", "너희")) or (m.tag == "MAG" and m.form == "각자")
                   or (m.form == "다" and k + 1 < len(ms) and ms[k + 1].form == "들") for k, m in enumerate(ms)):
            continue
        turn.text = dataclasses.replace(turn.text, clauses=tuple(
            dataclasses.replace(c, mood="suggestion") if (c.mood == "statement" or (c.mood == "plan" and c.future))
            and not c.past and c.owner is None
            and not c.hearsay and not c.quote and not c.negated and not c.copula and c.head not in FEELINGS else c
            for c in turn.text.clauses))
    # 주말에 와서 짐 정리 도와 / 당연하지 갈게: what the writer says yes to was asked of the writer, however plain
    # its ending (the plain style's 도와 is a request as often as a statement).
    for k in range(len(turns) - 1):
        if not turns[k].writer and turns[k + 1].writer and _YES.match(turns[k + 1].text.text):
            asked = tuple(dataclasses.replace(c, mood="suggestion")
                          if c.mood == "statement" and not c.past and c.owner is None and not c.hearsay
                          and not c.quote and not c.negated and c.head not in GLUE and not c.verbless else c
                          for c in turns[k].text.clauses)
            turns[k].text = dataclasses.replace(turns[k].text, clauses=asked)
    joined = "\n".join(str(t["text"]) for t in dialogue)
    whole = _Text(joined, _SQUEEZE.sub("", joined), (), frozenset().union(*(t.text.lemmas for t in turns)),
                  frozenset().union(*(t.text.nouns for t in turns)))
    chat = _Chat(turns, whole, numbers(joined), names, speakers, writer_names)
    chat.sources = _sources(chat)
    chat.own = {id(c) for key in ("", "\1", "\2") for c in chat.sources[key]}
    chat.groups = _groups(chat)
    return chat


_WRITER_SIDE = ("", "\1", "\2")


def _groups(chat: _Chat) -> list[tuple[_Turn, str, frozenset[str], str]]:
    """Each turn's asserting clauses by whose news they are (:func:`_sources`' keys), as (turn, key, lemmas,
    squeezed text): what one speaker tells of one person in one message, the unit a diary clause is aligned to."""
    key_of = {id(c): key for key, cs in chat.sources.items() for c in cs}
    out: dict[tuple[int, str], tuple[set[str], list[str]]] = {}
    for k, turn in enumerate(chat.turns):
        for c in turn.text.clauses:
            key = key_of.get(id(c))
            if key is not None:
                lemmas, texts = out.setdefault((k, key), (set(), []))
                lemmas |= c.lemmas
                texts.append(c.squeezed)
        # 나도 갔어 after 나 부산 갔다 왔어: the writer did the same.
        if turn.writer and k and re.search(r"(?:나|저)(?:도|두)", turn.text.squeezed):
            lemmas, texts = out.setdefault((k, ""), (set(), []))
            lemmas |= chat.turns[k - 1].text.lemmas
            texts.append(chat.turns[k - 1].text.squeezed)
    # 나 오늘 자격증 붙었어 / 정보처리기사 실기: a message of nouns alone tells more of its speaker's message before;
    # the two together are one unit too (the act in one, its setting in the other).
    # ...and so is one that answers the other's question about it (첫 발표 했어요 / 어떤 발표였어요? / 신규 앱
    # 기획안이요): nouns and a copula, no predicate of its own.
    for k in range(1, len(chat.turns)):
        turn = chat.turns[k]
        before = k - 1
        if chat.turns[before].speaker != turn.speaker and before and chat.turns[before - 1].speaker == turn.speaker \
                and any(c.mood == "question" for c in chat.turns[before].text.clauses):
            before -= 1
        if chat.turns[before].speaker != turn.speaker or any(m.tag.startswith(("VV", "VA", "VX", "XSV", "XSA"))
                                                             for x in analyse(turn.text.text) for m in x.morphemes):
            continue
        for key in [key for (j, key) in out if j == k]:
            into = key if (before, key) in out else next(
                (w for w in _WRITER_SIDE if key in _WRITER_SIDE and (before, w) in out), None)
            if into is not None:
                lemmas, texts = out[(before, into)]
                out[(before, into)] = (lemmas | out[(k, key)][0], texts + out[(k, key)][1])
    return [(chat.turns[k], key, frozenset(lemmas), "".join(texts)) for (k, key), (lemmas, texts) in out.items()]


def _speaks_of(person: str, turn: _Turn, chat: _Chat) -> bool:
    near = chat.turns[max(0, turn.index - 1):turn.index + 1]
    return any(person in t.text.squeezed or (t.speaker.strip() == person) or person in (t.speaker[1:],) for t in near)


def _reported(sentence: _Text) -> bool:
    """The sentence only reports someone's words (…할 거라고 했다) and names no person: they are the words of
    someone the sentences before named."""
    return any(c.quote for c in sentence.clauses) and all(c.owner in (None, THING, UNKNOWN) for c in sentence.clauses)


def _aligned_elsewhere(sentence: _Text, chat: _Chat) -> str | None:
    """A clause told as the writer's whose best-matching chat message tells it of someone else, and no message
    of the writer's side matches as well: 남친은 렌터카 취소하고 환불받았대 -> 렌터카를 취소하고 환불을 받았다."""
    reported = _reported(sentence)
    for c in sentence.clauses:
        # 다음 달 1일자로 부산에 발령이 났다: an event whose subject is a thing, in a sentence that names nobody, is
        # the writer's as much as an act with no subject (a diary's events are its writer's).
        mine = c.owner in (None, "나") or c.owner in chat.writer_names or (
            c.owner == THING and not sentence.persons and not any(x.honorific for x in sentence.clauses))
        # The reverse: the writer's own act given to a person the chat never speaks of (친구가 … 했다고 했다, in a
        # chat of the writer and the bot).
        stranger = not mine and not c.honorific and c.owner not in (THING, UNKNOWN, HONOURED, "사람", "분", "상대")
        if c.shared or c.copula or c.mood not in ("statement", "plan") or \
                not (stranger or (mine and not reported and not c.quote)):
            continue
        content = c.lemmas - FEELINGS - chat.names
        if len(content) < 2:
            continue
        scored = [(sum(w in lemmas or (len(w) >= 2 and w in text) for w in content), turn, key)
                  for turn, key, lemmas, text in chat.groups]
        best = max((n for n, _, _ in scored), default=0)
        if best < 2 or best * 5 < len(content) * 3:
            continue
        top = [(turn, key) for n, turn, key in scored if n == best]
        act = c.head if c.head in content else None
        if act is not None and not any(act in lemmas or act in text for turn, key, lemmas, text in chat.groups
                                       if (turn, key) in top):
            continue  # the message shares the setting, not the act
        # ...and only where the writer's message that tells it, and the one before it, do not speak of that person.
        if stranger and all(key == "" and turn.writer and not _speaks_of(c.owner, turn, chat) for turn, key in top):
            turn = top[0][0]
            return f"told as {c.owner}'s, but turn {turn.index} ({turn.speaker}) tells it of the writer"
        if mine and all(key not in _WRITER_SIDE for _, key in top):
            turn, key = top[0]
            who = "somebody the writer tells of" if key == "\0" else key
            return f"told as the writer's own, but turn {turn.index} ({turn.speaker}) tells it of {who}"
    return None


def _swapped(sentence: _Text, chat: _Chat) -> str | None:
    """A person's act that the chat tells of another named person, and never of them: 팀장님이 커피를 사 주셨다
    where the chat says 부장님이 … 커피 사주셨어요."""
    for c in sentence.clauses:
        person = c.owner
        # A word that may stand for anyone (친구 for 남친) is no other person.
        if person in (None, "나", THING, UNKNOWN, HONOURED) or person in chat.writer_names or c.mood != "statement" \
                or c.shared or c.quote or person in _ANYONE:
            continue
        content = c.lemmas - FEELINGS - chat.names
        if len(content) < 2 or c.head not in content:
            continue
        scored = [(sum(w in x.lemmas or (len(w) >= 2 and w in x.squeezed) for w in content), t, x)
                  for t in chat.turns for x in t.text.clauses if x.mood == "statement" and c.head in x.lemmas]
        best = max((n for n, _, _ in scored), default=0)
        if best < 2:
            continue
        top = [(t, x) for n, t, x in scored if n == best]
        others = {x.owner for _, x in top}
        # Kin words have synonyms (아내, 와이프, 집사람): only names and work titles tell two people apart.
        if any(o in (None, "나", THING, UNKNOWN, HONOURED, person) or o in chat.writer_names or o in _ANYONE
               or (o in RELATIONS and o not in _TITLES) for o in others) or \
                (person in RELATIONS and person not in _TITLES) or \
                any(person in t.text.squeezed or person in (t.speaker.strip(), t.speaker.strip()[1:]) for t, _ in top):
            continue
        t, x = top[0]
        return f"told as {person}'s, but turn {t.index} ({t.speaker}) tells it of {x.owner}"
    return None


_TITLES = frozenset("팀장 부장 과장 차장 대리 사장 실장 본부장 이사 상무 전무 점장 원장 교수 교수님 선생님 선생 코치 매니저 "
                    "반장 주임 대표 회장 사장님 트레이너".split())
_ANYONE = frozenset("친구 친구들 사람 분 상대 동료 애들 가족 지인 남자 여자 손님 멤버 팀원 조원".split())
_MEDIA = re.compile(r"(?:사진|동영상)(?:\s*\d+장)?")
_YES = re.compile(r"^\s*(?:응|웅|엉|어어|네|넹|넵|예|ㅇㅇ|ㅇㅇㅇ|그럼|당연하지|당연|맞아|그렇지|ㅇㅋ|알겠어|알겠습니다|콜|"
                  r"그래|그건 당연하지|네네)(?![가-힣])")
_NO = re.compile(r"^\s*(?:아니|아니요|아뇨|아녀|ㄴㄴ|노노|아직)(?![가-힣])")
_WH_WORDS = frozenset("뭐 무엇 뭘 어디 언제 누구 누가 몇 어떻 어떠 왜 무슨 어느 얼마 어때".split())


def _says_more(answer: str) -> bool:
    """The answer goes on with words of its own (아니 반만): its no may deny only a part of the question."""
    return any(m.tag.startswith(("NN", "VV", "VA", "XR", "SN")) and m.form not in GLUE
               for s in analyse(answer) for m in s.morphemes)


def _answered(question: _Text, answer: str) -> Clause | None:
    """The fact a yes or no answer tells (독감 주사 맞았어? / 아니 아직: not yet vaccinated), as a clause of the
    answer's turn: the question's clause, told by the answerer. Only a yes/no question (no 뭐, 어디, 언제...) that
    is not itself negated (안 갔어? / 응 is ambiguous), and only where the answer opens with yes or no."""
    if not question.clauses:
        return None
    asked = question.clauses[-1]
    no = bool(_NO.match(answer))
    if asked.mood != "question" or asked.negated or not asked.lemmas or not (no or _YES.match(answer)) or \
            asked.head is None or asked.head in FEELINGS or (no and _says_more(answer)) or \
            any(m.form in _WH_WORDS for s in analyse(question.text) for m in s.morphemes):
        return None
    # Asked of the answerer (너, or no subject), the fact is the answerer's; asked of someone named, it stays theirs.
    owner = None if asked.you or asked.owner in (None, HONOURED) else asked.owner
    return dataclasses.replace(asked, mood="statement", negated=no, owner=owner, you=False, honorific=False,
                               hearsay=False, quote=None)


def _asserts_text(text: _Text) -> bool:
    return any(c.mood in ("statement", "plan") for c in text.clauses)


def _judge(sentence_text: str, chat: _Chat) -> SentenceEvidence:
    sentence = _analyse_text(sentence_text, chat.names)
    content = sentence.lemmas - FEELINGS
    scored = sorted(((_score(content, t.text), t) for t in chat.turns), key=lambda p: (-p[0], p[1].index))
    supporting = tuple((t.index, t.speaker) for s, t in scored if s > 0)[:3]
    failure, reason = None, ""
    unknown = sorted(n for n in numbers(sentence_text) if not _known_number(n, chat.numbers))
    if unknown:
        shown = ["월화수목금토일"[-1 - int(v)] + "요일" if v < 0 else f"{v:g}{u}" for v, u in unknown]
        failure, reason = "wrong_number", f"the chat never gives {', '.join(shown)}"
    if failure is None and (why := _invented(sentence, chat.whole, chat.turns, chat.names)):
        failure, reason = "invented", why
    if failure is None:
        for clause in sentence.clauses:
            if why := _negation_flip(clause, chat.turns, chat.own, sentence.lemmas - FEELINGS - chat.names):
                failure, reason = "negation_flip", why
                break
    if failure is None:
        # Told done where the chat only suggests or plans it: that it never happened comes before whose it is.
        for clause in sentence.clauses:
            if why := _suggestion_as_done(clause, chat.turns, chat.names):
                failure, reason = "suggestion_as_done", why
                break
    if failure is None and (why := _wrong_person(sentence, chat) or _aligned_elsewhere(sentence, chat)
                            or _swapped(sentence, chat)):
        failure, reason = "wrong_person", why
    if failure is None and not supporting:
        reason = "no turn shares its content words: glue or a feeling" if not content else "no turn shares its words"
    return SentenceEvidence(sentence_text, supporting, failure, reason)


def diary_sentences(diary: str) -> list[str]:
    """The diary's sentences as Kiwi splits them."""
    return [s.text.strip() for s in analyse(diary) if s.text.strip()]


def _check_input(dialogue: Sequence[Mapping[str, str]], writer: str) -> None:
    for i, turn in enumerate(dialogue):
        if not isinstance(turn, Mapping) or "speaker" not in turn or "text" not in turn:
            raise ValueError(f"dialogue[{i}]: expected a mapping with 'speaker' and 'text', got {turn!r}")
    if not isinstance(writer, str) or not writer.strip():
        raise ValueError(f"writer: expected a speaker name, got {writer!r}")


def faithfulness_evidence(diary: str, dialogue: Sequence[Mapping[str, str]], writer: str) -> list[SentenceEvidence]:
    """Per diary sentence, the turns that support it (index and speaker) and the failure it shows, with why."""
    _check_input(dialogue, writer)
    if not diary or not re.search(r"[0-9A-Za-z가-힣]", diary):
        return []
    analyse_many([diary, *(str(t["text"]) for t in dialogue)])
    chat = _chat(dialogue, writer)
    return [_judge(sentence, chat) for sentence in diary_sentences(diary)]


def faithfulness_failures(diary: str, dialogue: Sequence[Mapping[str, str]], writer: str) -> list[str]:
    """The failures ``diary`` shows against ``dialogue`` (``{"speaker", "text"}`` mappings) as ``writer``'s diary,
    in :data:`FAILURES` order; ``[]`` means faithful."""
    found = {e.failure for e in faithfulness_evidence(diary, dialogue, writer) if e.failure}
    return [f for f in FAILURES if f in found]


def faithfulness_scores(failed: Sequence[Sequence[str]]) -> dict[str, float]:
    """``faithful``, the share of diaries with no failure, and per failure the share that show it
    (``wrong_person_frac``...). No diaries: all 0."""
    n = len(failed)
    scores = {"faithful": sum(not f for f in failed) / n if n else 0.0}
    scores.update({f"{f}_frac": sum(f in row for row in failed) / n if n else 0.0 for f in FAILURES})
    return scores

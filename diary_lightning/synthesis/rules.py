"""The ``rules`` teacher: a deterministic rewrite of a reference summary into the writer's plain-style diary.

No model, so it is the baseline and the CPU path. Sentence by sentence it drops sentences about the
conversation itself, turns polite and formal endings plain (했습니다 -> 했다), lets the writer's speaker code
become the first person (SD2000691은 -> 나는) and the others' codes their labels, and turns reported speech
back into what happened (뒤척였다고 한다 -> 뒤척였다). It cannot add what a summary leaves out, so a one-line
summary stays a one-line diary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from diary_lightning.data.roles import OTHER_LABEL
from diary_lightning.synthesis.teacher import Reply, Request

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

# A sentence about the conversation rather than the day (NIKL closes every summary with one).
_META = re.compile(r"(?<![가-힣])(이|위|본|해당|두 사람의|두 화자의) 대화(에서|는|를|의)|대화를 (나누|나눴|나누었|했|하였|주고받)|"
                   r"(화자|화자들|두 사람|세 사람|참여자)[은는이가]? (.{0,20})?(대화|이야기)[를을]? ?(나누|나눴|나누었|했|한다|하였)|"
                   r"(대화|이야기)[를을]? (요약|정리)|요약하면")
# Two or more speakers together become "we".
_TOGETHER = re.compile(r"(두|세|네|다섯) (화자|사람|명)(은|는|이|가|의|도|에게|과|와|끼리)?(?= )")
_WE = {"은": "우리는", "는": "우리는", "이": "우리가", "가": "우리가", "의": "우리의", "도": "우리도",
       "에게": "우리에게", "과": "우리와", "와": "우리와", "끼리": "우리끼리", None: "우리"}

# A speaker code with the particle after it; longer particles first so that 에게서 is not read as 에게.
_PARTICLES = "께서|에게서|한테서|에게|한테|이랑|랑|으로|로|은|는|이|가|의|을|를|과|와|도|께|만|씨"
_CODE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,4}[0-9]{1,9})(" + _PARTICLES + r")?")
_OTHER_PARTY = re.compile(r"(?:상대방|대화자|대화 상대|대화상대)(" + _PARTICLES + r")?")
_FIRST_PERSON = {"은": "나는", "는": "나는", "이": "내가", "가": "내가", "께서": "내가", "의": "내",
                 "에게": "나에게", "께": "나에게", "에게서": "나에게서", "한테": "나한테", "한테서": "나한테서",
                 "을": "나를", "를": "나를", "과": "나와", "와": "나와", "이랑": "나랑", "랑": "나랑", "도": "나도",
                 "만": "나만", "으로": "나로", "로": "나로", "씨": "나", None: "나"}

# Reported speech at the end of a sentence: a verb of saying, in any tense, after -다고/-라고/-냐고/-자고.
_SAY = (r" ?(?:서로 |또 |다시 |계속 )?(?:한다|했다|했었다|하였다|해준다|해줬다|(?:말|이야기|얘기|대화|대답|답|설명|전|밝|강조|"
        r"주장|덧붙|조언|당부|염려|걱정|제안|부탁|물|묻|알려|물어)\S*)$")
_REPORTED = re.compile(r"(다|라)고" + _SAY)
# An order (걱정 말라고 한다, 사 달라고 했다) is no statement of fact: its 라 is not the copula's.
_ORDERED = re.compile(r"(?:(?<![가-힣])[가-힣]|하|말|달|주|으|보|오|가)라고" + _SAY)
_ADDRESSEE = re.compile(r"[A-Za-z0-9가-힣](에게|한테|께) ")
_ASKED = re.compile(r"냐고" + _SAY)
_SUGGESTED = re.compile(r"자고" + _SAY)
# Speech verbs in the present of a summary become the past of a diary.
_PAST = {"말한다": "말했다", "이야기한다": "이야기했다", "얘기한다": "얘기했다", "묻는다": "물었다",
         "물어본다": "물어봤다", "답한다": "답했다", "대답한다": "대답했다", "설명한다": "설명했다",
         "추천한다": "추천했다", "공유한다": "공유했다", "토론한다": "토론했다", "대화한다": "이야기했다",
         "알려준다": "알려줬다", "평가한다": "평가했다", "제안한다": "제안했다", "부탁한다": "부탁했다",
         "조언한다": "조언했다", "권한다": "권했다", "전한다": "전했다", "동의한다": "동의했다", "논의한다": "논의했다"}
_PAST_END = re.compile(r"(" + "|".join(_PAST) + r")$")

# Plain forms of polite and formal endings. Present-tense verbs take 는다/ㄴ다 and adjectives 다, which an
# ending alone cannot tell apart: the common adjective stems are listed, the rest are read as verbs.
_SEUMNIDA = re.compile(r"([가-힣]+?)습니다$")
_BNIDA = re.compile(r"([가-힣]*)([가-힣])니다$")
_ADJ_CONSONANT = ("없", "좋", "싫", "많", "적", "작", "높", "낮", "넓", "좁", "깊",
                  "같", "괜찮", "짧", "밝", "맑", "젊", "옳", "굵", "얇", "귀찮", "그렇", "이렇", "저렇", "어떻", "싶")
_ADJ_VOWEL = ("크", "쁘", "프", "싸", "다르", "빠르", "느리", "어리", "짜", "아니", "이")
_ADJ_HA = ("필요", "중요", "행복", "피곤", "편", "깨끗", "따뜻", "시원", "조용", "가능", "유명", "심심", "궁금", "미안",
           "다행", "비슷", "익숙", "건강", "특별", "솔직", "정확", "간단", "복잡", "충분", "부족", "친절", "대단",
           "당연", "확실", "답답", "속상", "섭섭", "서운", "우울", "똑똑", "착", "급", "한가", "유익", "위험", "안전",
           "곤란", "심각", "유용", "저렴", "불안", "소중", "완벽", "신기", "이상", "어색", "편안", "훌륭", "가득")


def _plain(sentence: str) -> str:
    """The plain (해라체) form of a sentence ending in 습니다, ㅂ니다 or 어요."""
    match = _SEUMNIDA.search(sentence)
    if match:
        stem = match.group(1)
        # A stem ending in ㅆ is a past (왔, 했), a future (겠) or 있: all take 다, as adjectives do.
        adjective = final(stem[-1]) == FINAL_SS or stem.endswith(_ADJ_CONSONANT)
        return sentence[:match.start()] + stem + ("다" if adjective else "는다")
    match = _BNIDA.search(sentence)
    if match and final(match.group(2)) == FINAL_B:
        stem = match.group(1) + with_final(match.group(2), 0)
        if stem.endswith("하"):
            adjective = stem[:-1].endswith(_ADJ_HA)
        else:
            adjective = stem.endswith(_ADJ_VOWEL)
        plain = stem + "다" if adjective else stem[:-1] + with_final(stem[-1], FINAL_N) + "다"
        return sentence[:match.start()] + plain
    if sentence.endswith("어요") and len(sentence) > 2 and (final(sentence[-3]) == FINAL_SS or sentence[-3] == "없"):
        # 했어요, 봤어요, 있어요, 없어요, 겠어요: a past, future or existence stem takes 다 directly.
        return sentence[:-2] + "다"
    if sentence.endswith(("이에요", "이어요")):
        return sentence[:-3] + "이다"
    if sentence.endswith("예요"):
        return sentence[:-2] + "다"
    if sentence.endswith("해요"):
        return sentence[:-2] + "한다"
    return sentence


def _speakers(sentence: str, writer: str | None, names: Mapping[str, str]) -> str:
    """Speaker codes with their particles: the writer's as the first person, the others' as their labels."""

    def replace(match: re.Match) -> str:
        code, particle = match.group(1), match.group(2)
        if code == writer:
            return _FIRST_PERSON[particle]
        if code in names:
            return names[code] if particle in (None, "씨") else attach(names[code], particle)
        return match.group(0)

    sentence = _CODE.sub(replace, sentence)
    if writer and not _CODE.fullmatch(writer) and writer in sentence:
        # A writer known by name (a chat app's speaker name) is "I" too.
        sentence = re.sub(re.escape(writer) + "(" + _PARTICLES + ")?(?![가-힣])",
                          lambda m: _FIRST_PERSON[m.group(1)], sentence)
    # AI Hub's summaries call the other person 상대방, a word about the chat rather than the day.
    sentence = _TOGETHER.sub(lambda m: _WE[m.group(3)], sentence)
    # AI Hub's summaries call the other person 상대방 or 대화자, and talking 대화: words about the chat, not the day.
    sentence = _OTHER_PARTY.sub(lambda m: attach(OTHER_LABEL, m.group(1) or ""), sentence)
    return sentence.replace("대화", "이야기")


def rewrite(summary: str, writer: str | None = None, speaker_labels: Mapping[str, str] | None = None) -> str:
    """The writer's diary from ``summary``: ``writer`` is the writer's speaker id, ``speaker_labels`` maps the other
    speakers' ids to the words that name them in a diary (default: 상대). Returns "" when every sentence was
    about the conversation itself."""
    names = {k: v for k, v in (speaker_labels or {}).items() if k != writer}
    out = []
    for raw in _SENTENCE_END.split(" ".join(summary.split())):
        sentence = raw.rstrip(".!? ")
        if not sentence or _META.search(sentence):
            continue
        sentence = _plain(sentence)
        # Reported speech becomes what happened (뒤척였다고 한다 -> 뒤척였다), whoever said it. A telling to
        # someone (...에게 간다고 말했다), a suggestion or a question stays a telling, as the plain "...는 이야기를
        # 했다": "...다고 했다" would end the diary in the reported speech of a summary.
        if ordered := _ORDERED.search(sentence):
            sentence = sentence[:ordered.start()] + ordered.group(0).split("고")[0] + "는 이야기를 했다"
        elif _REPORTED.search(sentence):
            told = _ADDRESSEE.search(sentence)
            for _ in range(3):  # nested: ...했다고 말했다고 한다
                if told or not _REPORTED.search(sentence):
                    break
                sentence = _REPORTED.sub("다", sentence)
            sentence = _REPORTED.sub(r"\1는 이야기를 했다", sentence)
        elif _ASKED.search(sentence):
            sentence = _ASKED.sub("냐는 이야기를 했다", sentence)
        elif _SUGGESTED.search(sentence):
            sentence = _SUGGESTED.sub("자는 이야기를 했다", sentence)
        else:
            sentence = _PAST_END.sub(lambda m: _PAST[m.group(1)], sentence)
        sentence = _speakers(sentence, writer, names)
        out.append(sentence + (raw.rstrip()[-1] if raw.rstrip()[-1:] in "!?" else "."))
    return " ".join(out)


class RulesTeacher:
    """No model: :func:`rewrite` on each request's summary. Instant and deterministic, so retries never help."""

    reads_prompt = False

    def describe(self) -> dict:
        return {"backend": "rules", "version": 1}

    def generate(self, requests: Iterable[Request], on_reply: Callable[[Request, Reply], None]) -> None:
        for request in requests:
            # The prompt's labels (상대1, 상대2) are for the teacher; a diary says 상대.
            others = {speaker: OTHER_LABEL for speaker in request.speaker_labels if speaker != request.writer}
            on_reply(request, Reply(rewrite(request.summary, request.writer, others)))

    def close(self) -> None:
        pass


# Hangul syllable arithmetic the rules teacher needs: final consonants and the particles that depend on them.

_BASE, _LAST = 0xAC00, 0xD7A3
FINAL_NONE, FINAL_N, FINAL_L, FINAL_B, FINAL_SS = 0, 4, 8, 17, 20


def final(syllable: str) -> int | None:
    """The final-consonant index (0: none) of a Hangul syllable, None for any other character."""
    code = ord(syllable)
    return (code - _BASE) % 28 if _BASE <= code <= _LAST else None


def with_final(syllable: str, index: int) -> str:
    code = ord(syllable)
    return chr(code - (code - _BASE) % 28 + index)


# Digits and Latin letters as a Korean reader pronounces them at the end of a code: "P01" ends in 일, "SD2000692" in 이.
_SPOKEN_FINAL = {"0": True, "1": True, "3": True, "6": True, "7": True, "8": True,
                 "2": False, "4": False, "5": False, "9": False,
                 "l": True, "m": True, "n": True, "r": False}


def has_final(word: str) -> bool:
    """Whether ``word`` ends in a consonant sound, which picks 은/이/을/과 over 는/가/를/와."""
    last = word.rstrip()[-1:] or " "
    index = final(last)
    if index is not None:
        return index != FINAL_NONE
    return _SPOKEN_FINAL.get(last.lower(), False)


PAIRS = {"은": ("은", "는"), "는": ("은", "는"), "이": ("이", "가"), "가": ("이", "가"), "을": ("을", "를"),
         "를": ("을", "를"), "과": ("과", "와"), "와": ("과", "와"), "이랑": ("이랑", "랑"), "랑": ("이랑", "랑"),
         "으로": ("으로", "로"), "로": ("으로", "로"), "이나": ("이나", "나"), "나": ("이나", "나")}


def attach(word: str, particle: str) -> str:
    """``word`` + ``particle`` in the form its last sound takes (상대 + 은 -> 상대는); ㄹ takes 로, not 으로."""
    pair = PAIRS.get(particle)
    if pair is None:
        return word + particle
    consonant = has_final(word)
    if pair[0] == "으로" and final(word[-1:] or " ") == FINAL_L:
        consonant = False
    return word + (pair[0] if consonant else pair[1])

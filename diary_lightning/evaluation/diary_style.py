"""Does a text read as the writer's diary? Deterministic checks on Kiwi's morphological analysis of the text.

One function, :func:`style_failures`, used by validation, test, predict and the filters of generated
training targets. Kiwi (kiwipiepy) splits the text into sentences and tags every morpheme, so a check sees the
final ending (``EF``) of a sentence rather than its last characters. Each check names one way a text fails to be
a first-person, plain-style diary of the day, and what it looks at:

- ``meta``: talk about *this* conversation or its mechanics (``두 화자는``, ``이 대화에서``, ``대화 요약``,
  ``…하는 대화이다``, 상대방, the prompt's labels); an ordinary day's conversation (``친구와 대화를 나눴다``) is no
  meta talk, and the bot, one of the day's speakers in the service, may be mentioned (``챗봇이 스트레칭을 해 보라고
  했다``) unless ``bot_mentions=False``;
- ``polite``: the final ending of a sentence outside quotes is polite or formal (습니다, 어요, 죠, 네요);
- ``chat``: final endings addressed to someone: a question to the reader (먹었어?, 웃기지 않냐), a suggestion
  or promise (먹자, 연락할게), or mostly the chat's -어/-아 (봤어, 좋아); a question to oneself (할까?, 하나?,
  괜찮겠지?), self-encouragement (힘내자!) and the diary's -지/-네/-구나 are the writer's own voice;
- ``third_person``: the writer or a speaker named from outside: the writer's name as a word (``민지는``,
  ``민지이는`` as Kiwi reads ``서연이는``; not ``민지원``, ``사과 하나를``, nor someone calling the writer inside a
  quotation), 그녀/그는/이 사람/사용자, ``A``/``B``, 화자1, speaker codes (P01, SD2000691, and typos such as
  SSD2000851), a pair narrated from outside (``한 사람이 ... 다른 사람이``, ``두 사람은``, ``둘은``);
- ``reported_speech``: the text narrates what others are saying now (``-다고 한다``, ``-자고 하고 있다``,
  ``-다고 이야기하고 있다``, ``엄마는 집밥을 권한다``) in its last sentence or in most of them; what the writer heard
  (``잘 썼다고 하셨다``) or decided (``생각하려고 한다``) is the diary's own;
- ``assistant``: an assistant's preamble or afterword around the diary (``다음은 ... 일기입니다``,
  ``마음에 드셨나요?``, a ``[일기]`` header);
- ``layout``: a transcript (``이름: 말``), a bullet or numbered list, markdown headers or bold, or memo-style
  notes (``…하소연함.``) rather than prose;
- ``unfinished``: the text itself is cut: its last sentence has no final ending and stops on a connective,
  an adnominal ending or a particle, or without any stop at all;
- ``empty``: no Korean word at all: whitespace, punctuation, or another language (an English summary);
- ``truncated``: cut by ``max_new_tokens``, which only the caller knows.

Kiwi loads once per process, on the first text checked (about a second); analyses are cached by text, and
:func:`analyse_many` fills the cache for a batch on Kiwi's worker threads. Nothing here imports torch, Lightning
or transformers.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from diary_lightning.data.roles import BOT_LABEL, OTHER_LABEL, WRITER_LABEL
from diary_lightning.errors import MissingPackageError

log = logging.getLogger(__name__)

CHECKS = ("meta", "polite", "chat", "third_person", "reported_speech", "assistant", "layout", "unfinished", "empty",
          "truncated")



def usable_cores() -> int:
    """The cores this process may use, which a container or taskset may limit below ``os.cpu_count()``."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


KIWI_THREADS: int | None = None
"""Kiwi's worker threads; None: one per usable core, at most 8. A process among several that share the cores
(the rules teacher's) sets 1 before the first analysis."""


KIWI_INSTALL = ("pip install kiwipiepy kiwipiepy_model (kiwipiepy's model ships as a separate package); or set "
                "model.style_metric: false to train, validate and generate without the style scores")


def require_kiwi(what: str = "the diary-style checks") -> None:
    """Raise :class:`~diary_lightning.errors.MissingPackageError` (an ``ImportError``) saying how to install Kiwi when kiwipiepy or its model package is absent; checked by
    the finder alone, so that a run can refuse before training rather than deep inside its first validation."""
    missing = [name for name in ("kiwipiepy", "kiwipiepy_model") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingPackageError(f"{what}: needs Kiwi, the Korean morphological analyser, and {' and '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: {KIWI_INSTALL}")


@functools.lru_cache(maxsize=None)
def kiwi() -> Any:
    """The process's one Kiwi analyser, loaded on first use. Its worker threads analyse a batch in parallel
    (:func:`analyse_many`); a single text runs on the caller's thread."""
    require_kiwi()
    from kiwipiepy import Kiwi

    start = time.perf_counter()
    analyser = Kiwi(num_workers=KIWI_THREADS or max(1, min(usable_cores(), 8)))
    seconds = time.perf_counter() - start
    if seconds > 1:
        log.info("loaded the Korean morphological analyser (Kiwi) in %.1f s", seconds)
    return analyser


class Morpheme(NamedTuple):
    # A named tuple rather than a frozen dataclass: a 280,000-dialogue synthesis builds some ten million of
    # them, and a frozen dataclass's __init__ costs several times a tuple's.
    form: str
    tag: str
    """Kiwi's tag without its irregular-conjugation suffix (묻/VV-I -> VV)."""
    start: int
    end: int
    quoted: bool
    """Inside quotation marks: someone else's words, whose endings are theirs."""
    kiwi_tag: str = ""
    """Kiwi's own tag, which :meth:`kiwipiepy.Kiwi.join` needs to conjugate an irregular verb (듣/VV-I)."""
    spaced: bool = False
    """A space comes before it in the text."""

    def joinable(self) -> tuple[str, str, bool]:
        """The morpheme as :meth:`kiwipiepy.Kiwi.join` takes it back."""
        return self.form, self.kiwi_tag or self.tag, self.spaced


@dataclass(frozen=True)
class Sentence:
    text: str
    morphemes: tuple[Morpheme, ...]
    start: int = 0
    """Where the sentence starts in the analysed text, as its morphemes' ``start`` counts."""

    @property
    def ending(self) -> Morpheme | None:
        """The sentence's last final ending (EF) outside quotes."""
        return next((m for m in reversed(self.morphemes) if m.tag == "EF" and not m.quoted), None)

    @property
    def question(self) -> bool:
        return self.text.rstrip(" ~^ㅋㅎㅠㅜ.").endswith("?")


# Straight and curly quotes, and the corner brackets Korean uses for quotations.
_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|‘[^’\n]*’|\'[^\'\n]*\'|「[^」\n]*」|『[^』\n]*』')

_CACHE: OrderedDict[str, tuple[Sentence, ...]] = OrderedDict()
_CACHE_SIZE = 8192


def _sentences(text: str, kiwi_sentences: Iterable[Any]) -> tuple[Sentence, ...]:
    quotes = [m.span() for m in _QUOTED.finditer(text)]
    out = []
    for sentence in kiwi_sentences:
        morphemes = []
        previous = -1
        for t in sentence.tokens:
            start, tag = t.start, t.tag
            # A morpheme follows a space when it starts a word: 봤 is 보 and 었 at one place, 었 no word of its own.
            morphemes.append(Morpheme(t.form, tag.split("-", 1)[0], start, t.end,
                                      bool(quotes) and any(a < start < b for a, b in quotes), tag,
                                      start > 0 and previous < start and text[start - 1].isspace()))
            previous = start
        if morphemes:
            out.append(Sentence(sentence.text, tuple(morphemes), sentence.start))
    return tuple(out)


def _remember(text: str, sentences: tuple[Sentence, ...]) -> tuple[Sentence, ...]:
    _CACHE[text] = sentences
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return sentences


def analyse(text: str) -> tuple[Sentence, ...]:
    """Kiwi's sentences of ``text`` with their morphemes (cached)."""
    cached = _CACHE.get(text)
    if cached is not None:
        _CACHE.move_to_end(text)
        return cached
    return _remember(text, _sentences(text, kiwi().split_into_sents(text, return_tokens=True, return_sub_sents=False)))


def remember(text: str, sentences: tuple[Sentence, ...]) -> None:
    """Cache ``sentences`` as the analysis of ``text``: another process analysed it (the rules teacher's)."""
    _remember(text, sentences)


def analyse_many(texts: Iterable[str]) -> None:
    """Analyse ``texts`` together on Kiwi's worker threads, so that the checks of each find it cached; several
    times faster than one by one on a multi-core machine. Keep a batch under the cache's size (8,192)."""
    todo = list(dict.fromkeys(t for t in texts if t not in _CACHE))
    if todo:
        for text, result in zip(todo, kiwi().split_into_sents(todo, return_tokens=True, return_sub_sents=False)):
            _remember(text, _sentences(text, result))


# --- the checks ------------------------------------------------------------------------------------------------

# Words that name the chat itself. 채팅 and 대화 alone are left out: a diary chats and talks with friends.
_META = re.compile(
    "화자(?![0-9])|어시스턴트|상대방|대화 ?(?:참여자|상대)|"
    # 둘은 주말 계획을 세우는 대화이다: the text describing itself as a conversation, in the present.
    r"대화(?:이다|다|임)(?![가-힣])|"
    r"(?<![가-힣])(?:이|위|본|해당|아래|다음|앞의?|앞선) 대화|대화 ?(?:요약|내용을 (?:요약|정리))|요약하면|"
    r"대화를 (?:마쳤|마무리|마친다|마친|끝냈|끝낸다|이어간다|이어 ?나간다)|"
    + re.escape(WRITER_LABEL) + "|" + re.escape(OTHER_LABEL) + "[0-9]"
    # EEVE's role names, as words (not "Humane").
    + r"|(?<![A-Za-z])(?:Human|Assistant)(?![A-Za-z])",
    re.IGNORECASE,
)

# The service's bot, one of the day's speakers: mentioning it is meta talk only where a caller says so.
_BOT = re.compile(r"챗봇|" + re.escape(BOT_LABEL) + r"|(?<![A-Za-z])(?:AI|Bot|Chatbot)(?![A-Za-z])|(?<![가-힣])봇(?:이|은|는|에게|한테|과|와|이랑)")
_HANGUL = re.compile(r"[가-힣]")

_POLITE = ("요", "니다", "니까", "죠")

# 해체 (the chat's plain-but-addressed style): a question in it asks the reader; a statement in it talks to them.
_CHAT_STATEMENT = {"어", "아", "야", "여", "에", "대", "래", "게", "네?"}
# Endings that only ever address someone: a question (냐, 니), a suggestion (자), a promise (ㄹ게), a hearsay
# told on (래, 대), the chat's -거든/-잖아/-더라, an order (어라).
_ADDRESSED = {"냐", "니", "느냐", "으냐", "자", "ᆯ게", "을게", "래", "대", "거든", "잖아", "더라", "어라", "아라", "라니까",
              "니까", "냐고", "재", "랴", "남"}
# Words that make -자 a suggestion to someone rather than to oneself.
_TOGETHER = {"같이", "함께", "우리", "너", "너희", "얘들", "다들", "모두"}
# Questions the writer asks themself: 할까?, 하나?, 하려나?, 했던가?
_SELF_QUESTION = {"ᆯ까", "을까", "나", "려나", "으려나", "ᆫ가", "은가", "던가", "는가", "ᆯ지", "을지", "는지", "ᆫ지",
                  "네", "군", "구나", "다"}
# 뭐 하지? asks oneself; 맞지? asks the reader to agree: -지? is the writer's own only with a question word.
_QUESTION_WORDS = {"뭐", "무엇", "왜", "어디", "언제", "어떻", "누구", "얼마", "몇", "무슨", "어느", "어떤", "어쩌", "어찌"}

# Speaker codes: AI Hub's P01..P09, NIKL's SD2000691 (two letters, seven digits) and their typos (SSD2000851).
_CODE = re.compile(r"(?<![0-9A-Za-z])(?:P[0-9]{2}|[A-Z]{1,4}[0-9]{5,})(?![0-9])")
_OUTSIDE_NAMES = re.compile(r"그녀|사용자|화자 ?[0-9]|(?<![가-힣])이 사람(?:은|이|의|도)(?![가-힣])|"
                            r"(?:^|(?<=[.!?]\s)|(?<=\n))(?:(?:두|세|네) (?:사람|명)(?:은|이|의|도|끼리)|둘은|둘 다 |셋은) ")
_PAIR = (re.compile(r"(?<![가-힣])한 사람(?:은|이)(?![가-힣])"), re.compile(r"(?<![가-힣])다른 (?:한 )?사람(?:은|이)(?![가-힣])"))
# Particles and endings a name may carry and still be that name: 민지는, 민지에게서, 민지였다.
_PARTICLE_TAGS = ("J", "VCP", "E", "XSN", "S")

SPEECH_NOUNS = {"말", "이야기", "얘기", "설명", "제안", "부탁", "질문", "대답", "답", "전", "주장", "강조", "조언", "권유", "당부",
                 "자랑", "하소연", "불평", "요청", "고백", "약속", "말씀"}
SPEECH_VERBS = {"하", "말하", "묻", "물어보", "답하", "전하", "그러", "알리", "권하", "투덜거리", "말씀하", "물"}
TALK_NOUNS = {"이야기", "얘기", "대화", "토론", "논의", "설명", "공유", "추천", "제안", "질문", "대답", "답", "상의", "수다",
               "하소연", "자랑", "조언", "불평", "통화", "말", "권", "권유", "당부", "부탁", "위로", "격려", "칭찬", "요청"}
TALK_VERBS = {"말하", "묻", "물어보", "답하", "대답하", "이야기하", "얘기하", "설명하", "토론하", "논의하", "대화하", "추천하",
               "공유하", "제안하", "상의하", "떠들", "주고받", "권하", "권유하", "당부하", "조언하", "위로하", "격려하", "칭찬하"}
# What may stand between a verb of saying and the final ending and leave it the sentence's predicate: the
# progressive 고 있, the giving 어 주, the honorific 시 (이야기해 주고 있다, 하신다); anything else (하게 되는데,
# 하고 회식을 안 갈) makes another predicate the sentence's.
_HELPERS = {"고", "있", "어", "아", "주", "시"}


def is_helper(m: Morpheme, tense: bool = False) -> bool:
    """A helper between a predicate and its final ending (:data:`_HELPERS`), or with ``tense`` any tense too."""
    return (m.form in _HELPERS and m.tag in ("EC", "VX", "VV", "EP")) or (tense and m.tag == "EP")


_INTENTION = {"려", "으려", "려고", "으려고", "고자", "기로"}
QUOTE_ENDINGS = {"다고", "라고", "자고", "냐고", "느냐고", "으냐고", "으라고", "ᆫ다고", "는다고", "이라고"}

_ASSISTANT = re.compile(
    r"^\s*(?:네|물론|알겠|좋습니다|좋아요|그럼요)[,.!~\s]|(?:다음|아래)(?:은|는|과 같이|와 같이)[^\n]{0,40}(?:일기|작성)|"
    r"일기(?:를|입니다|예요|이에요)[^\n]{0,20}(?:작성|써 ?드|드리|드릴|보았|봤습니다)|마음에 드(?:셨|시나|실지|시길)|"
    r"도움이 되(?:셨|었으면|었길|길|시길)|수정이 필요|필요하시면|말씀해 ?주세요|요청하신|작성되었습니다|작성해 ?보았|"
    r"^\s*[\[【(*#]*\s*(?:일기|제목|날짜|Diary)\s*[\]】):*]",
    re.MULTILINE | re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•·▪◦‣]|[0-9]{1,2}[.)]|[①-⑳])\s*\S", re.MULTILINE)
_TRANSCRIPT = re.compile(r"^\s*[^\s:：]{1,15}\s*[:：]\s*\S", re.MULTILINE)
_MARKDOWN = re.compile(r"^\s*#{1,6}\s+\S|\*\*[^*\n]+\*\*|__[^_\n]+__", re.MULTILINE)


def _memo(sentences: Sequence[Sentence]) -> bool:
    """Most sentences end on a nominalised verb (하소연함., 먹음): notes, not a diary's prose."""
    def noted(s: Sentence) -> bool:
        words = [m for m in s.morphemes if not m.tag.startswith("S")]
        return len(words) > 1 and words[-1].tag in ("ETN", "EF") and words[-1].form in ("ᆷ", "음") and \
            words[-2].tag in ("VV", "VA", "XSV", "XSA", "EP", "VX")
    return sum(noted(s) for s in sentences) * 2 > len(sentences)

# What a sentence may not stop on: a connective ending (먹었는데), an adnominal ending (맛있는), a particle (근처에).
_OPEN_TAGS = ("EC", "ETM", "JK", "JX", "JC", "XSV", "XSA", "XPN", "MM", "EP")
_STOPS = re.compile(r"[.!?…~。]|\.\.")


def _ends_with_addressed(sentence: Sentence) -> bool | None:
    """True: the sentence addresses someone; False: it does not; None: a 해체 statement (봤어), which counts
    only when most sentences are."""
    ending = sentence.ending
    if ending is None:
        return False
    form = ending.form
    if form.endswith(_POLITE):
        return False  # the polite check's
    if form == "자" and not any(m.form in _TOGETHER for m in sentence.morphemes):
        return False  # 힘내자!, 내일은 일찍 자자: the writer cheering themself on; 같이 가자 asks someone
    if form in _ADDRESSED or (form.endswith(("냐", "니", "ᆯ래", "을래", "거든", "잖아")) and form not in _SELF_QUESTION):
        return True
    if sentence.question:
        if form == "지":
            before = [m for m in sentence.morphemes if m.start < ending.start]
            # 괜찮겠지?: a guess the writer makes to themself; 맞지? asks the reader to agree.
            if before and before[-1].tag == "EP" and before[-1].form == "겠":
                return False
            return not any(m.form in _QUESTION_WORDS or m.form.startswith(("어떻", "얼마")) for m in sentence.morphemes)
        return form not in _SELF_QUESTION
    if form in _CHAT_STATEMENT or form.endswith(("어", "아", "야")):
        return None
    return False


def _chat(sentences: Sequence[Sentence]) -> bool:
    verdicts = [_ends_with_addressed(s) for s in sentences]
    statements = sum(v is None for v in verdicts)
    return any(v is True for v in verdicts) or (statements > 0 and statements * 2 >= len(verdicts))


def is_polite(sentence: Sentence) -> bool:
    ending = sentence.ending
    if ending is not None and ending.form.endswith(_POLITE):
        return True
    # 먹어서요, 그래서요: the polite 요 as a particle after a connective.
    tail = [m for m in sentence.morphemes if not m.tag.startswith("S") and not m.quoted]
    return bool(tail) and tail[-1].form == "요" and tail[-1].tag.startswith("J")


def _talk_now(morphemes: Sequence[Morpheme], end: int) -> bool:
    """The predicate before ``morphemes[end]`` (the final ending) is talking, in the present: 이야기한다,
    토론한다, 이야기를 해 주고 있다. A summary narrates the conversation as it goes; a diary tells it past."""
    i = end - 1
    # Back over a progressive or helping verb (고 있, 어 주) and the honorific 시, never over a past tense.
    while i >= 0 and is_helper(morphemes[i]):
        i -= 1
    if i < 0:
        return False
    verb = morphemes[i]
    if verb.tag.startswith("VV") and verb.form in TALK_VERBS:
        return True
    if verb.form == "하" and verb.tag in ("XSV", "VV") and i > 0:
        noun = morphemes[i - 1] if morphemes[i - 1].tag.startswith("NN") else (
            morphemes[i - 2] if i > 1 and morphemes[i - 1].tag == "JKO" else None)
        return noun is not None and noun.form in TALK_NOUNS
    return False


def _reported_now(sentence: Sentence) -> bool:
    """The sentence's predicate is a verb of saying, in the present, after a quoting ending: it narrates what
    someone says (바쁘다고 한다, 가자고 하고 있다), not what the writer heard (했다고 하셨다); or it narrates talking
    itself in the present (에 대해 이야기한다)."""
    morphemes = [m for m in sentence.morphemes if not m.quoted]
    ending = sentence.ending
    if ending is None:
        return False
    end = morphemes.index(ending)
    if any(m.tag == "EC" and m.form in _INTENTION for m in morphemes[max(0, end - 3):end]):
        return False  # 말하려 한다, 생각하려고 한다: what the writer means to do
    if _talk_now(morphemes, end):
        return True
    # The last quoting ending before the final one, and what follows it.
    for i in range(end - 1, -1, -1):
        m = morphemes[i]
        if (m.tag == "EC" and m.form in QUOTE_ENDINGS) or m.tag == "JKQ":
            between = morphemes[i + 1:end]
            break
    else:
        return False
    if not between or len(between) > 6:
        return False
    head = between[0]
    # Contracted (바쁘단다, 한대): Kiwi restores 다고 하, overlapping in the text. A summary spells it out; a
    # writer passing on news in their own voice contracts it.
    if head.start < morphemes[i].end:
        return False
    saying = (head.tag.startswith("VV") and head.form in SPEECH_VERBS) or (
        head.form in SPEECH_NOUNS and len(between) > 1 and between[1].tag in ("XSV", "VV") and between[1].form == "하")
    # Only helpers after it, no tense: a past (했다고 하셨다) is what the writer heard.
    return saying and all(is_helper(m) for m in between[1 if head.tag.startswith("VV") else 2:])


def _names_writer(text: str, sentences: Sequence[Sentence], names: Iterable[str]) -> bool:
    morphemes = [m for s in sentences for m in s.morphemes]
    for name in {n.strip() for n in names if n and n.strip()}:
        for match in re.finditer(rf"(?<![0-9A-Za-z가-힣]){re.escape(name)}", text, re.IGNORECASE):
            start, end = match.span()
            word_end = len(text) if (space := re.search(r"\s", text[end:])) is None else end + space.start()
            inside = [m for m in morphemes if start <= m.start < word_end]
            # The name must be the word's first morpheme(s), ending where the name ends (not 민지원 for 민지),
            # and what follows only particles and endings (민지는, 민지였다).
            head = [m for m in inside if m.start < end]
            if head and head[0].quoted:
                continue  # "민지야, 밥 먹어": someone calling the writer, in their own words
            # 서연이는: Kiwi reads the name with its friendly 이 as one proper noun.
            friendly = len(head) == 1 and head[0].tag == "NNP" and head[0].form == name + "이" and \
                head[0].end == end + 1
            if not friendly and (not head or head[-1].end != end or
                                 not all(m.tag.startswith(("NN", "NP", "NR", "S", "MM")) for m in head)):
                continue  # 민지원 for 민지; the verb and ending of 봐야 하나? for 하나
            after = [m for m in inside if m.start >= (end + 1 if friendly else end)]
            if any(not m.tag.startswith(_PARTICLE_TAGS) for m in after):
                continue
            if after and (after[0].tag == "JKV" or (after[0].form in ("아", "야") and len(after) == 1)):
                continue  # 민지야: calling the writer, not naming them
            # A numeral counting the noun before it is no name: 사과 하나를.
            if head[0].tag in ("NR", "MM"):
                before = [m for m in morphemes if m.end <= start]
                if before and before[-1].tag.startswith(("NN", "SN")) and before[-1].end >= start - 1:
                    continue
            return True
    return False


def _third_person(text: str, sentences: Sequence[Sentence], names: Iterable[str]) -> bool:
    if _CODE.search(text) or _OUTSIDE_NAMES.search(text) or all(p.search(text) for p in _PAIR):
        return True
    for s in sentences:
        for i, m in enumerate(s.morphemes):
            # 그는, 그가, 그의: the pronoun, not the determiner 그 (그 영화).
            if m.form == "그" and m.tag == "NP" and i + 1 < len(s.morphemes) and s.morphemes[i + 1].tag.startswith("J"):
                return True
            # A and B as people: a lone capital with a particle (A는, B에게), not A4 or B형.
            if m.form in ("A", "B") and m.tag == "SL" and i + 1 < len(s.morphemes) and \
                    s.morphemes[i + 1].tag.startswith("J") and s.morphemes[i + 1].start == m.end:
                return True
    return _names_writer(text, sentences, names)


def _unfinished(text: str, sentences: Sequence[Sentence]) -> bool:
    last = sentences[-1]
    if last.ending is not None:
        return False
    words = [m for m in last.morphemes if not m.tag.startswith("S") or m.tag in ("SL", "SN", "SH")]
    if not words:
        return False  # ㅋㅋ, ^^
    stripped = re.sub(r"[\sㄱ-ㅎㅏ-ㅣ^;:)(\-_=+♡♥☆★]+$", "", text)
    # Laughter or an emoticon after the last word closes a sentence as a stop does (오늘도 끝 ㅋㅋ).
    if not _STOPS.search(stripped[-2:]) and stripped == text.rstrip():
        return True
    # A trailing-off "..." may follow a connective (그냥 잤는데...); a particle or adnominal never ends one.
    return words[-1].tag.startswith(("ETM", "JK", "JC", "XPN", "MM")) or (
        words[-1].tag.startswith(_OPEN_TAGS) and not re.search(r"(\.\.|…|~)$", stripped))


def style_failures(text: str, *, writer_names: Sequence[str] = (), truncated: bool = False,
                   bot_mentions: bool = True) -> list[str]:
    """The names of the checks ``text`` fails, in :data:`CHECKS` order; ``[]`` means it reads as a diary.

    ``writer_names``: what the input called the writer (``민지``, ``Human``, ``P01``); the prompt's writer label
    always counts. ``truncated``: the text was cut by ``max_new_tokens``. ``bot_mentions``: whether the diary may
    mention the bot as one of the day's speakers (False: 챗봇, AI... are ``meta``).
    """
    if isinstance(writer_names, str):
        writer_names = (writer_names,)
    failed: list[str] = []
    sentences = analyse(text) if _HANGUL.search(text) else ()
    if sentences:
        # Outside quotes: someone else's words may be polite or chatty without the diary being so.
        own = [s for s in sentences if any(not m.quoted for m in s.morphemes)]
        if _META.search(text) or (not bot_mentions and _BOT.search(text)):
            failed.append("meta")
        if any(is_polite(s) for s in own):
            failed.append("polite")
        if own and _chat(own):
            failed.append("chat")
        if _third_person(text, sentences, (*writer_names, WRITER_LABEL)):
            failed.append("third_person")
        # A cut last sentence has no predicate to judge: the last finished one is the text's ending.
        reported = [_reported_now(s) for s in own if s.ending is not None]
        if reported and (reported[-1] or sum(reported) * 2 > len(reported)):
            failed.append("reported_speech")
        if _ASSISTANT.search(text):
            failed.append("assistant")
        if len(_BULLET.findall(text)) >= 2 or len(_TRANSCRIPT.findall(text)) >= 2 or _MARKDOWN.search(text) \
                or _memo(sentences):
            failed.append("layout")
        if _unfinished(text, sentences):
            failed.append("unfinished")
    else:
        failed.append("empty")
    if truncated:
        failed.append("truncated")
    return failed


def score_name(check: str) -> str:
    """The key of a check's share in :func:`style_scores`: ``polite_frac`` is the share of texts that fail
    ``polite``, as ``truncated_frac`` is the share cut by ``max_new_tokens``."""
    return f"{check}_frac"


def style_scores(
    texts: Sequence[str],
    *,
    writer_names: Sequence[Sequence[str] | str] | None = None,
    truncated: Sequence[bool] | None = None,
) -> dict[str, float]:
    """``diary_style``, the share of ``texts`` that pass every check, and for each check the share that fails it
    (:func:`score_name`). ``writer_names`` and ``truncated``, when given, hold one entry per text. No texts: all 0."""
    n = len(texts)
    for name, values in (("writer_names", writer_names), ("truncated", truncated)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} texts")
    failed = []
    for begin in range(0, n, 4096):
        analyse_many(texts[begin:begin + 4096])
        failed += [style_failures(texts[i], writer_names=writer_names[i] if writer_names is not None else (),
                                  truncated=bool(truncated[i]) if truncated is not None else False)
                   for i in range(begin, min(n, begin + 4096))]
    return scores_from_failures(failed)


def scores_from_failures(failed: Sequence[Sequence[str]]) -> dict[str, float]:
    """The scores of :func:`style_scores` from each text's failed checks (:func:`style_failures`). None: all 0."""
    n = len(failed)
    scores = {"diary_style": sum(not f for f in failed) / n if n else 0.0}
    scores.update({score_name(c): sum(c in f for f in failed) / n if n else 0.0 for c in CHECKS})
    return scores

"""The ``rules`` teacher: a deterministic rewrite of a reference summary into the writer's plain-style diary.

No model, so it is the baseline and the CPU path. Two passes over each summary:

1. On the surface: sentences about the conversation itself are dropped; the writer's speaker code, name,
   ``화자`` and ``자신``/``본인`` become the first person (SD2000691은 -> 나는), two speakers together ``우리``,
   the others' codes (typos included) their labels.
2. On Kiwi's morphemes (:mod:`diary_lightning.evaluation.diary_style` analyses each text once): the final predicate is
   rebuilt and joined back by Kiwi (:meth:`kiwipiepy.Kiwi.join`), which conjugates it: polite and formal
   endings become plain (합니다 -> 한다, 예쁩니다 -> 예쁘다, 필요합니다 -> 필요하다: Kiwi's tags tell a verb from an
   adjective, no list needed); talk narrated in the present becomes past (이야기한다 -> 이야기했다, 가자고 하고
   있다 -> 가자고 했다); nested reported speech loses its outer layer (가라고 했다고 말한다 -> 가라고 했다). A
   sentence still polite after that is dropped.

It cannot add what a summary leaves out. A summary it cannot turn into the writer's diary is refused with a
reason (:data:`REFUSALS`), which the runner writes to the rejected file: every sentence was about the
conversation, the text came out unchanged as one sentence with no one in it (a summary's gist, no diary of
anyone's), it narrates only the other speaker, or it leaves who did what to a guess (a 나 in the other's
reported words; one speaker's words and the other's answer with no one named; no one named, and the dialogue
shows the words are the other speaker's).
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

from diary_lightning.evaluation import diary_style
from diary_lightning.evaluation.diary_style import (QUOTE_ENDINGS, SPEECH_NOUNS, SPEECH_VERBS, TALK_NOUNS, TALK_VERBS, Morpheme,
                                         Sentence, analyse, analyse_many, is_helper, kiwi, remember, usable_cores)
from diary_lightning.data.roles import OTHER_LABEL
from diary_lightning.synthesis.teacher import Reply, Request

REFUSALS = ("rules_only_meta", "rules_unchanged", "rules_other_only", "rules_unclear_person")
"""Why the rules teacher wrote no diary: every sentence was about the conversation; the rewrite changed
nothing; the diary would narrate only the other speaker; the summary does not tell who did what (a 나 or 내
in the other speaker's reported words, which a rewrite would hand to the writer)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])(?![0-9])\s*")

# A sentence about the conversation rather than the day (NIKL closes every summary with one).
_META = re.compile(r"(?<![가-힣])(이|위|본|해당|두 사람의|두 화자의) 대화(에서|는|를|의)|대화를 (나누|나눴|나누었|했|하였|주고받)|"
                   r"(화자|화자들|두 사람|세 사람|참여자)[은는이가]? (.{0,20})?(대화|이야기)[를을]? ?(나누|나눴|나누었|했|한다|하였)|"
                   r"(대화|이야기)[를을]? (요약|정리)|요약하면")
# Two or more speakers together become "we".
_TOGETHER = re.compile(r"(?:(?:두|세|네|다섯) (?:화자|사람|명)|화자들|두 화자들)(은|는|이|가|의|도|에게|과|와|끼리)?(?= )")
_WE = {"은": "우리는", "는": "우리는", "이": "우리가", "가": "우리가", "의": "우리의", "도": "우리도",
       "에게": "우리에게", "과": "우리와", "와": "우리와", "끼리": "우리끼리", None: "우리"}

# A speaker code, 화자 (with its number) or a reflexive, with the particle after it; longer particles first.
# 이 before another syllable is the copula (상대방이라도, P01이었다), which the word's new form takes apart
# (:func:`_copula`), not the subject particle.
_PARTICLES = "께서|에게서|한테서|에게|한테|이랑|랑|으로|로|은|는|이(?![가-힣])|가|의|을|를|과|와|도|께|만|씨"
_COPULA = r"(이었|이(?=[가-힣]))?"
_CODE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,4}[0-9]{1,9})(" + _PARTICLES + r")?" + _COPULA)
_SPEAKER = re.compile(r"(?<![가-힣])화자 ?([0-9]?)(" + _PARTICLES + r")?(?![가-힣])")
_SELF = re.compile(r"(?<![가-힣])(?:자신|본인)(?:(" + _PARTICLES + r")?(?![가-힣])|" + _COPULA[:-1] + ")")
# 상대 화자 is the other speaker, not 화자 (the writer): matched before 화자 is.
_OTHER_PARTY = re.compile(r"(?:(?:상대방?|다른|상대편) 화자|상대방|대화자|대화 상대|대화상대)(" + _PARTICLES + r")?" + _COPULA)
_FIRST_PERSON = {"은": "나는", "는": "나는", "이": "내가", "가": "내가", "께서": "내가", "의": "내",
                 "에게": "나에게", "께": "나에게", "에게서": "나에게서", "한테": "나한테", "한테서": "나한테서",
                 "을": "나를", "를": "나를", "과": "나와", "와": "나와", "이랑": "나랑", "랑": "나랑", "도": "나도",
                 "만": "나만", "으로": "나로", "로": "나로", "씨": "나", None: "나"}
_FIRST_PERSON_WORDS = {"나", "내", "우리", "저", "제"}

_PAST = (("었", "EP", False),)
_PLAIN_STATEMENT = ("다", "EF", False)


def _near(code: str, known: Iterable[str]) -> str | None:
    """The known code ``code`` is a typo of (one letter or digit added, dropped or changed), if exactly one."""
    def one_edit(a: str, b: str) -> bool:
        if abs(len(a) - len(b)) > 1:
            return False
        if len(a) == len(b):
            return sum(x != y for x, y in zip(a, b)) == 1
        short, long = sorted((a, b), key=len)
        return any(long[:i] + long[i + 1:] == short for i in range(len(long)))
    matches = [k for k in known if one_edit(code, k)]
    return matches[0] if len(matches) == 1 else None


def _copula(word: str, copula: str | None) -> str:
    """``word`` and the copula that followed the word it replaces, which drops its 이 after a vowel
    (상대방이라도 -> 상대라도, P01이었다 -> 나였다)."""
    if not copula or has_final(word):
        return word + (copula or "")
    return word + ("였" if copula == "이었" else "")


def _speakers(sentence: str, writer: str | None, names: Mapping[str, str], order: Sequence[str]) -> str:
    """Speaker codes, 화자, reflexives and the writer's name with their particles: the writer as the first person,
    the others as their labels."""

    def person(code: str | None, particle: str | None, whole: str) -> str:
        if code is not None and code == writer:
            return _FIRST_PERSON[particle]
        label = names.get(code, OTHER_LABEL) if code is not None else OTHER_LABEL
        return label if particle in (None, "씨") else attach(label, particle)

    def code(match: re.Match) -> str:
        found = match.group(1)
        known = [writer, *names] if writer else list(names)
        if found not in known:
            found = _near(found, [k for k in known if k]) or found
            if found not in known and not re.fullmatch(r"P[0-9]{2}|[A-Z]{1,4}[0-9]{5,}", found):
                return match.group(0)  # KTX1, A4: not a speaker
        return _copula(person(found, match.group(2), match.group(0)), match.group(3))

    def speaker(match: re.Match) -> str:
        number, particle = match.group(1), match.group(2)
        if not number:
            # NIKL's summaries tell the day of "the speaker" whose conversation it was: the writer.
            return _FIRST_PERSON[particle]
        index = int(number) - 1
        return person(order[index] if 0 <= index < len(order) else None, particle, match.group(0))

    sentence = _TOGETHER.sub(lambda m: _WE[m.group(1)], sentence)
    sentence = _CODE.sub(code, sentence)
    sentence = _OTHER_PARTY.sub(lambda m: _copula(attach(OTHER_LABEL, m.group(1) or ""), m.group(2)), sentence)
    sentence = _SPEAKER.sub(speaker, sentence)
    if writer and not _CODE.fullmatch(writer) and writer in sentence:
        # A writer known by name (a chat app's speaker name) is "I" too.
        sentence = re.sub(r"(?<![가-힣])" + re.escape(writer) + "(" + _PARTICLES + ")?(?![가-힣])",
                          lambda m: _FIRST_PERSON[m.group(1)], sentence)
    # 자신/본인 is whoever the sentence is about: the writer unless someone else is its subject.
    other_subject = re.search(rf"(?<![가-힣])(?:{re.escape(OTHER_LABEL)}|그녀|그)[은는이가](?![가-힣])", sentence)
    sentence = _SELF.sub(lambda m: _copula(attach("자기", m.group(1) or "") if other_subject else _FIRST_PERSON[m.group(1)],
                                           m.group(2)), sentence)
    return sentence.replace("대화", "이야기")


def _saying(between: Sequence[Morpheme]) -> int:
    """How many morphemes at the start of ``between`` form a verb of saying (말하 -> 1, 이야기 하 -> 2), or 0."""
    if between and between[0].tag.startswith("VV") and between[0].form in SPEECH_VERBS | TALK_VERBS:
        return 1
    if len(between) > 1 and between[0].form in SPEECH_NOUNS | TALK_NOUNS and between[1].form == "하":
        return 2
    return 0


def _past_predicate(head: Sequence[Morpheme], rest: Sequence[Morpheme]) -> list[tuple]:
    """``head`` (the verb) made past and plain, keeping the honorific 시 of ``rest`` (하셨다)."""
    honorific = [m.joinable() for m in rest if m.tag == "EP" and m.form == "시"]
    return [m.joinable() for m in head] + honorific + list(_PAST) + [_PLAIN_STATEMENT]


def _predicate(morphemes: list[Morpheme], end: int) -> list[tuple] | None:
    """The sentence's morphemes up to ``end`` (its final ending) rebuilt, or None to leave it as it is."""
    ending = morphemes[end]
    # Reported speech: the last quoting ending before the final one, and a verb of saying after it.
    quote = next((i for i in range(end - 1, -1, -1) if (morphemes[i].tag == "EC" and morphemes[i].form in QUOTE_ENDINGS)
                  or morphemes[i].tag == "JKQ"), None)
    n = _saying(morphemes[quote + 1:end]) if quote is not None else 0
    rest = morphemes[quote + 1 + n:end] if n else ()
    # Only a saying verb that ends the sentence is its predicate: in 했다고 하자 상대는 ... 이야기하고 있다 the
    # saying verb opens a clause, and the sentence's own predicate (below) comes after it.
    if n and all(is_helper(m, tense=True) for m in rest):
        inner = next((i for i in range(quote - 1, -1, -1) if (morphemes[i].tag == "EC" and morphemes[i].form in
                                                              QUOTE_ENDINGS) or morphemes[i].tag == "JKQ"), None)
        said = morphemes[inner + 1:quote] if inner is not None else []
        n_inner = _saying(said)
        if n_inner and said[n_inner:] and all(m.tag == "EP" for m in said[n_inner:]) and any(
                m.form != "시" for m in said[n_inner:]):
            # 가라고 했다고 말한다: the inner telling already is past; the outer layer only repeats it.
            return [m.joinable() for m in morphemes[:quote]] + [_PLAIN_STATEMENT]
        if any(m.tag == "EP" and m.form != "시" for m in rest):
            return _plain(morphemes, end)  # already past: 했다고 했습니다 -> 했다고 했다
        return [m.joinable() for m in morphemes[:quote + 1 + n]] + _past_predicate((), rest)
    # Talk narrated in the present: 이야기한다, 이야기하고 있다 -> 이야기했다.
    i = end - 1
    while i >= 0 and is_helper(morphemes[i]):
        i -= 1
    if i >= 0 and morphemes[i].tag != "EP":
        verb = morphemes[i]
        noun = morphemes[i - 1] if i > 0 and morphemes[i - 1].tag.startswith("NN") else None
        if (verb.tag.startswith("VV") and verb.form in TALK_VERBS) or (
                verb.form == "하" and noun is not None and noun.form in TALK_NOUNS):
            return [m.joinable() for m in morphemes[:i + 1]] + _past_predicate((), morphemes[i + 1:end])
    return _plain(morphemes, end) if ending.form.endswith(("요", "니다", "니까", "죠")) else None


def _plain(morphemes: list[Morpheme], end: int) -> list[tuple]:
    """The polite or formal final ending made plain: 다 after a tense or an adjective, ㄴ다/는다 after a verb in the
    present (Kiwi joins the right one), ㄹ까 for a polite ㄹ까요."""
    ending = morphemes[end]
    before = [m.joinable() for m in morphemes[:end]]
    if ending.form.endswith(("ᆯ까요", "을까요")):
        return before + [("ᆯ까", "EF", False)]
    last = morphemes[end - 1] if end > 0 else None
    # 있다/없다/계시다 take 다 whatever Kiwi calls them.
    verb = last is not None and last.tag.startswith(("VV", "XSV", "VX")) and last.form not in ("있", "없", "계시")
    return before + [("ᆫ다", "EF", False) if verb else _PLAIN_STATEMENT]


_POLITE_END = re.compile(r"(.?)(니다|니까|요|죠)[.!?]*$")
FINAL_B = 17


def _still_polite(text: str) -> bool:
    """Whether ``text`` ends politely: 니다/니까 count only after a final ㅂ (합니다, 갔습니다), so that the plain
    아니다 is no polite ending."""
    found = _POLITE_END.search(text)
    return found is not None and (found.group(2) in ("요", "죠") or final(found.group(1) or " ") == FINAL_B)


def _rewrite_sentence(sentence: Sentence) -> str | None:
    """The sentence in the diary's plain past-or-present voice, or None to drop it (still polite)."""
    morphemes = list(sentence.morphemes)
    stop = ""
    while morphemes and morphemes[-1].tag.startswith("S") and morphemes[-1].tag not in ("SL", "SN", "SH"):
        stop = morphemes.pop().form + stop
    ending = next((i for i in range(len(morphemes) - 1, -1, -1) if morphemes[i].tag == "EF" and not morphemes[i].quoted),
                  None)
    text = sentence.text.strip()
    if ending is not None and ending == len(morphemes) - 1:
        rebuilt = _predicate(morphemes, ending)
        if rebuilt is not None:
            # Kiwi joins only from the first word that changed; the words before keep their letters (내 stays
            # 내, not 나의).
            same = next((i for i, (old, new) in enumerate(zip(morphemes, rebuilt)) if old.joinable() != new),
                        min(len(morphemes), len(rebuilt)))
            word = max((i for i in range(same + 1) if i < len(morphemes) and morphemes[i].spaced), default=0)
            prefix = sentence.text[:morphemes[word].start - sentence.start] if word else ""
            tail = [(f, t, d if i else False) for i, (f, t, d) in enumerate(rebuilt[word:])]
            text = (prefix.rstrip() + " " if prefix.strip() else "") + kiwi().join(tail) + (
                "!" if "!" in stop else "?" if "?" in stop and rebuilt[-1][0] != "다" else ".")
    if _still_polite(text):
        return None
    # Kiwi ends a sentence now and then where the summary has no stop (끊었고 알면서도...): none of ours there.
    return text if text[-1:] in ".!?" or not stop else text + "."


def _surface(summary: str, writer: str | None, speaker_labels: Mapping[str, str] | None,
             speakers: Sequence[str]) -> tuple[str, str, dict[str, str]]:
    """The first pass: the summary with spaces normalised, its sentences about the day with the speakers
    named as in a diary (to analyse next), and the other speakers' labels."""
    names = {k: v for k, v in (speaker_labels or {}).items() if k != writer}
    order = list(dict.fromkeys(speakers))
    normal = " ".join(summary.split())
    kept = [_speakers(s, writer, names, order) for s in _SENTENCE_END.split(normal) if s and not _META.search(s)]
    return normal, " ".join(kept), names


def _morphology(kept: str) -> str:
    """The second pass, on Kiwi's analysis of ``kept``: the diary ("" when no sentence is left)."""
    return " ".join(rewritten for sentence in analyse(kept) if (rewritten := _rewrite_sentence(sentence))) if kept else ""


# One speaker's words and the other's answer in one sentence (…다고 하자 …다고 한다, …냐고 묻자 …): two actors.
_EXCHANGE = re.compile(r"(?:고|며|면서) (?:하자|묻자|하니|하니까|하지만|말하자|물어보자|얘기하자|이야기하자)|(?:다|냐)는 말에")
# Whatever names a speaker in a summary: a code, 화자, the other party, a reflexive, a first person, 우리.
_ANYONE = re.compile(r"[A-Za-z]{1,4}[0-9]{1,9}|화자|상대|대화자|자신|본인|두 사람|(?<![가-힣])(?:나|내|저|제|우리)"
                     r"(?:[는가도를의]|랑|와|한테|에게)?(?![가-힣])")
# The other party as a subject, and later in its sentence a first-person word: its own words, reported
# (상대방은 내가 사겠다고 한다).
_OTHERS_I = re.compile(r"(?:상대방|상대|대화자|대화 상대)(?:은|는|이|가|도) .*(?<![가-힣])(?:나|내|저|제)"
                       r"(?:[는가도를의]|랑|와|한테|에게)?(?![가-힣]).*(?:다|라|냐|자)고")


def _unclear_person(normal: str, names: Mapping[str, str]) -> bool:
    """Whether a sentence of the summary leaves who did what to a guess: a 나 or 내 in the other's reported
    words (a rewrite would hand it to the writer), or one speaker's words and the other's answer with no one
    named (…다고 하자 …다고 한다: which of the two is the writer, only the dialogue tells)."""
    others = [re.escape(code) for code in names]
    for sentence in _SENTENCE_END.split(normal):
        if _OTHERS_I.search(sentence) or (others and re.search(
                r"(?:" + "|".join(others) + r")(?:은|는|이|가|도) .*(?<![가-힣])(?:나|내)(?:[는가도를의]|랑|와|한테|에게)?(?![가-힣])"
                r".*(?:다|라|냐|자)고", sentence)):
            return True
        if _EXCHANGE.search(sentence) and not _ANYONE.search(sentence):
            return True
    return False


_HANGUL_WORD = re.compile(r"[가-힣]+")
# What every summary says: its saying verbs and endings, no one's words.
_SUMMARY_PAIRS = {"한다", "했다", "이야", "야기", "기한", "말한", "고한", "다고", "라고", "하고", "있다", "대해", "해서"}
OTHERS_WORDS_MARGIN = 0.1
"""How much more of a subjectless summary's wording must come from the other speaker's turns than from the
writer's for the rules teacher to refuse it (on AI Hub's sample these are the other's news told without a
subject: 하루 종일 술 먹고 게임 하면서 놀았다고 한다)."""


def _pairs(text: str) -> set[str]:
    return {word[i:i + 2] for word in _HANGUL_WORD.findall(text) for i in range(len(word) - 1)}


def _more_the_others(normal: str, said: tuple[str, str]) -> bool:
    """Whether the summary's words come clearly more from the other speaker's turns than from the writer's:
    ``said`` is (the writer's words, the others' words)."""
    pairs = _pairs(normal) - _SUMMARY_PAIRS
    if not pairs or not all(said):
        return False
    mine, theirs = (sum(pair in text for pair in pairs) / len(pairs) for text in said)
    return theirs > mine + OTHERS_WORDS_MARGIN


def _verdict(normal: str, diary: str, names: Mapping[str, str], said: tuple[str, str] = ("", "")) -> str | None:
    """Why ``diary``, rewritten from the summary ``normal``, is no diary of the writer's (None: it is one).
    ``said`` is what the writer and the others said in the dialogue, which tells whose a subjectless summary is."""
    if not diary:
        return "rules_only_meta"
    if _unclear_person(normal, names):
        return "rules_unclear_person"
    sentences = analyse(diary)
    morphemes = [m for s in sentences for m in s.morphemes]
    mine = any(m.form in _FIRST_PERSON_WORDS and m.tag == "NP" for m in morphemes)
    # Unchanged, one sentence, no one in it: a summary's line (AI Hub's 36-character third-person gist), no
    # one's diary. Unchanged text with an "I" or a few sentences of its own was a diary already (the bundled
    # sample's references): the teacher's copy of it is kept.
    unchanged = re.sub(r"[\s.!?]", "", diary) == re.sub(r"[\s.!?]", "", normal)
    if unchanged and not mine and len(sentences) < 2:
        return "rules_unchanged"
    others = {OTHER_LABEL, *names.values()} - _FIRST_PERSON_WORDS
    if not mine and any(m.form in others and i + 1 < len(morphemes) and morphemes[i + 1].tag in ("JX", "JKS")
                        for i, m in enumerate(morphemes)):
        return "rules_other_only"
    # A text the rewrite left as it was is a diary already (the bundled sample's references), whose words are
    # the writer's to tell whoever said them first.
    if not mine and not unchanged and _more_the_others(normal, said):
        # No one named, and the dialogue shows the words are the other's: a rewrite would make them the writer's.
        return "rules_unclear_person"
    return None


def rewrite_or_refuse(summary: str, writer: str | None = None, speaker_labels: Mapping[str, str] | None = None,
                      speakers: Sequence[str] = (), said: tuple[str, str] = ("", "")) -> tuple[str, str | None]:
    """The writer's diary from ``summary`` and, when it cannot be one, the reason (:data:`REFUSALS`).

    ``writer`` is the writer's speaker id, ``speaker_labels`` maps the other speakers' ids to the words that name
    them in a diary (default: 상대), ``speakers`` lists the ids in the order they first speak (화자1, 화자2),
    ``said`` is (what the writer said, what the others said) in the dialogue."""
    normal, kept, names = _surface(summary, writer, speaker_labels, speakers)
    diary = _morphology(kept)
    return diary, _verdict(normal, diary, names, said)


def rewrite(summary: str, writer: str | None = None, speaker_labels: Mapping[str, str] | None = None,
            speakers: Sequence[str] = ()) -> str:
    """The diary of :func:`rewrite_or_refuse`, whatever its verdict ("" when every sentence was about the
    conversation itself)."""
    return rewrite_or_refuse(summary, writer, speaker_labels, speakers)[0]


def _rewrite_batch(batch: Sequence[tuple[str, str | None, dict[str, str], list[str], tuple[str, str]]]
                   ) -> list[tuple[str, str | None, tuple[Sentence, ...] | None]]:
    """:func:`rewrite_or_refuse` on each ``(summary, writer, speaker_labels, speakers, said)``, with Kiwi's analysis
    of each diary not refused, which the runner's style checks read next (another process needs it handed over)."""
    surfaces = [_surface(*item[:4]) for item in batch]
    analyse_many(kept for _, kept, _ in surfaces)
    diaries = [_morphology(kept) for _, kept, _ in surfaces]
    # The verdicts and then the runner's style checks analyse each diary that changed: all of this batch's at
    # once, on Kiwi's threads.
    analyse_many(d for d, (normal, _, _) in zip(diaries, surfaces) if d and d.split() != normal.split())
    verdicts = [_verdict(normal, d, names, item[4]) for d, (normal, _, names), item in zip(diaries, surfaces, batch)]
    return [(d, refused, analyse(d) if d and refused is None else None) for d, refused in zip(diaries, verdicts)]


def _one_kiwi_thread() -> None:
    diary_style.KIWI_THREADS = 1


class RulesTeacher:
    """No model: :func:`rewrite_or_refuse` on each request's summary. Deterministic, so retries never help.

    Requests are taken in batches whose summaries, then diaries, Kiwi analyses together. Beyond one batch, the
    batches go to ``processes`` worker processes (default: one per usable core), one Kiwi thread each, while
    this process runs the checks and writes: Kiwi's threads alone leave the rewrite's and the checks' Python
    on one core, which at 280,000 dialogues is most of the wall time."""

    reads_prompt = False
    batch_size = 2048

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or usable_cores()

    def describe(self) -> dict:
        return {"backend": "rules", "version": 3}

    def generate(self, requests: Iterable[Request], on_reply: Callable[[Request, Reply], None]) -> None:
        requests = iter(requests)
        batch = list(itertools.islice(requests, self.batch_size))
        # A run of one batch is over before worker processes would have loaded Kiwi.
        if self.processes < 2 or len(batch) < self.batch_size:
            while batch:
                self._reply(batch, _rewrite_batch([_fields(r) for r in batch]), on_reply)
                batch = list(itertools.islice(requests, self.batch_size))
            return
        # spawn, not fork: the parent may already run Kiwi's or torch's threads, which a forked child would lack.
        with ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_one_kiwi_thread) as pool:
            in_flight: collections.deque = collections.deque()
            while batch or in_flight:
                # Two batches a process: one to work on, one waiting, and the order of replies kept.
                while batch and len(in_flight) < 2 * self.processes:
                    in_flight.append((batch, pool.submit(_rewrite_batch, [_fields(r) for r in batch])))
                    batch = list(itertools.islice(requests, self.batch_size))
                done, future = in_flight.popleft()
                self._reply(done, future.result(), on_reply)

    @staticmethod
    def _reply(batch: Sequence[Request], results: Sequence[tuple[str, str | None, tuple[Sentence, ...] | None]],
               on_reply: Callable[[Request, Reply], None]) -> None:
        for request, (text, refused, sentences) in zip(batch, results):
            if sentences is not None:
                remember(text, sentences)
            on_reply(request, Reply(text, refused=refused))

    def close(self) -> None:
        pass


def _fields(request: Request) -> tuple[str, str | None, dict[str, str], list[str], tuple[str, str]]:
    """What :func:`rewrite_or_refuse` reads of a request, small to send to a worker process. The prompt's
    labels (상대1, 상대2) are for the teacher; a diary says 상대."""
    said = (" ".join(t.text for t in request.turns if t.speaker == request.writer),
            " ".join(t.text for t in request.turns if t.speaker != request.writer))
    return (request.summary, request.writer, {s: OTHER_LABEL for s in request.speaker_labels if s != request.writer},
            [t.speaker for t in request.turns], said)


# Hangul syllable arithmetic the rules teacher needs: final consonants and the particles that depend on them.

_BASE, _LAST = 0xAC00, 0xD7A3
FINAL_NONE, FINAL_L = 0, 8


def final(syllable: str) -> int | None:
    """The final-consonant index (0: none) of a Hangul syllable, None for any other character."""
    code = ord(syllable)
    return (code - _BASE) % 28 if _BASE <= code <= _LAST else None


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

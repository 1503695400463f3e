"""Does a text read as the writer's diary? Cheap, deterministic checks of a generated (or reference) text.

One function, :func:`style_failures`, used by validation, test, predict and the filters of generated
training targets. Each check names one way a text fails to be a first-person, plain-style diary of the day:

- ``meta``: it mentions the conversation or its mechanics (대화, 화자, 챗봇, 상대방, speaker codes such as
  ``P01`` or ``SD2000691``, the prompt's labels) instead of the day;
- ``polite``: a sentence ends in the polite or formal style (-습니다/-ㅂ니다/-요/-죠) where a diary uses the
  plain -다;
- ``third_person``: it names the writer (``writer_names``, or the prompt's writer label);
- ``reported_speech``: it ends in reported speech (-다고 한다, -자고 했다, -냐고 물었다): what was said rather
  than what the writer did or felt, the typical ending of AI Hub's summaries;
- ``empty``: nothing but whitespace or punctuation;
- ``truncated``: cut by ``max_new_tokens``, which only the caller knows.

Plain functions on strings: nothing here imports torch, Lightning or transformers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from diary_lightning.data.roles import BOT_LABEL, OTHER_LABEL, WRITER_LABEL

CHECKS = ("meta", "polite", "third_person", "reported_speech", "empty", "truncated")

_HANGUL_OR_WORD = r"[0-9A-Za-z가-힣]"

# Words that name the chat itself. Bare "상대" is left out: "소개팅 상대" is an ordinary diary phrase.
_META_WORDS = ("대화", "화자", "챗봇", "채팅", "상대방", "어시스턴트", WRITER_LABEL, BOT_LABEL)
_META = re.compile(
    "|".join(re.escape(w) for w in _META_WORDS)
    # EEVE's role names, as words (not "Humane").
    + r"|(?<![A-Za-z])(?:Human|Assistant)(?![A-Za-z])"
    # AI Hub's P01..P05 and NIKL's SD2000691-style speaker codes, and the prompt's 상대1, 상대2...
    + r"|(?<![0-9A-Za-z])(?:P\d{1,3}|[A-Z]{2}\d{5,})(?![0-9A-Za-z])"
    + rf"|{re.escape(OTHER_LABEL)}\d",
    re.IGNORECASE,
)

# Quoted speech may be polite ("괜찮아요?" 하고 물었다) without the diary being so.
_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|‘[^’\n]*’|\'[^\'\n]*\'|「[^」\n]*」|『[^』\n]*』')
_SENTENCE_END = re.compile(r"(?<=[.!?。…~])\s+|\n+")
# What may trail a sentence's last word: punctuation, closing quotes and brackets, laughter and crying in
# jamo (ㅋㅋ, ㅠㅠ), emoticons (^^) and emoji.
_TRAILING = re.compile(r"[^가-힣0-9A-Za-z]+$")

# Words ending in 요 that are not the polite ending.
_NOT_POLITE_YO = ("필요", "중요", "주요", "수요", "강요", "소요", "풍요", "동요", "요요", "월요", "화요", "수요일")

_REPORT_VERBS = (
    "하", "한", "했", "함", "해", "합", "말", "물", "묻", "답", "대답", "이야기", "얘기", "전하", "전한", "전했",
    "설명", "덧붙", "알려", "그러", "그런", "그랬", "밝", "제안", "부탁", "권", "강조", "주장", "투덜", "불평",
    "자랑", "하소연", "조언", "당부", "말씀",
)
# -다고/-라고/-자고/-냐고, then at most one word, then a verb of saying as the text's last word.
_REPORTED = re.compile(
    r"[다라자냐]고\s*(?:\S+\s+)?(?:" + "|".join(_REPORT_VERBS) + r")\S*$"
    # Contracted: 바쁘단다, 오란다 (but not 바란다, "I hope").
    + r"|(?:단다|(?<!바)란다)$"
)


def _has_final_b(syllable: str) -> bool:
    """True for a Hangul syllable whose final consonant is ㅂ (합, 입, 습): the -ㅂ니다 of the formal style."""
    code = ord(syllable) - 0xAC00
    return 0 <= code < 11172 and code % 28 == 17


def _sentences(text: str) -> list[str]:
    """Sentences with what trails their last word stripped; those with no word at all (ㅋㅋ, ^^) dropped."""
    return [s for s in (_TRAILING.sub("", part) for part in _SENTENCE_END.split(text)) if s.strip()]


def _last_word(sentence: str) -> str:
    words = sentence.split()
    return words[-1] if words else ""


def _is_polite(word: str) -> bool:
    if len(word) >= 3 and word[-2:] in ("니다", "니까") and _has_final_b(word[-3]):
        return True
    if word.endswith("죠"):
        return True
    return word.endswith("요") and not word.endswith(_NOT_POLITE_YO)


def _names_writer(text: str, names: Iterable[str]) -> bool:
    for name in names:
        name = name.strip()
        if not name:
            continue
        # The name must start a word; Korean particles attach after it (민지는, 민지가), so the end is free,
        # except for a Latin or numeric name, whose letters would run on (Ann in Annie).
        after = r"(?![0-9A-Za-z])" if re.fullmatch(r"[0-9A-Za-z]+", name) else ""
        if re.search(rf"(?<!{_HANGUL_OR_WORD}){re.escape(name)}{after}", text, re.IGNORECASE):
            return True
    return False


def style_failures(text: str, *, writer_names: Sequence[str] = (), truncated: bool = False) -> list[str]:
    """The names of the checks ``text`` fails, in :data:`CHECKS` order; ``[]`` means it reads as a diary.

    ``writer_names``: what the input called the writer (``민지``, ``Human``, ``P01``); the prompt's writer label
    always counts. ``truncated``: the text was cut by ``max_new_tokens``.
    """
    if isinstance(writer_names, str):
        writer_names = (writer_names,)
    failed: list[str] = []
    empty = not re.search(_HANGUL_OR_WORD, text)
    if not empty:
        if _META.search(text):
            failed.append("meta")
        unquoted = _QUOTED.sub(" ", text)
        if any(_is_polite(_last_word(s)) for s in _sentences(unquoted)):
            failed.append("polite")
        if _names_writer(text, (*writer_names, WRITER_LABEL)):
            failed.append("third_person")
        sentences = _sentences(text)
        if sentences and _REPORTED.search(sentences[-1]):
            failed.append("reported_speech")
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
    return scores_from_failures([
        style_failures(text, writer_names=writer_names[i] if writer_names is not None else (),
                       truncated=bool(truncated[i]) if truncated is not None else False)
        for i, text in enumerate(texts)])


def scores_from_failures(failed: Sequence[Sequence[str]]) -> dict[str, float]:
    """The scores of :func:`style_scores` from each text's failed checks (:func:`style_failures`). None: all 0."""
    n = len(failed)
    scores = {"diary_style": sum(not f for f in failed) / n if n else 0.0}
    scores.update({score_name(c): sum(c in f for f in failed) / n if n else 0.0 for c in CHECKS})
    return scores

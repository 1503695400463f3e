"""Whether a teacher's diary may be trained on: the diary-style checks plus what only synthesis can check.

The style checks (meta, polite, third person, reported speech, empty, truncated) are
:func:`diary_lightning.evaluation.diary_style.style_failures`, the one implementation the metrics use too. Beside them:

- ``prompt_copy``: the diary repeats the instruction or the dialogue transcript instead of writing;
- ``length``: its length is outside ``[min_length_ratio, max_length_ratio]`` times the summary's;
- ``speaker_code``: a speaker code (``P01``, ``SD2000691``) or a prompt label with its colon survived;
- ``ungrounded``: too little of it comes from the dialogue and the summary (made up, or another dialogue's);
- the faithfulness failures (:data:`diary_lightning.evaluation.faithfulness.FAILURES`: ``wrong_person``,
  ``suggestion_as_done``, ``invented``, ``wrong_number``, ``negation_flip``): the diary is untrue to the dialogue
  as the writer's diary, which ``ungrounded``'s shared characters cannot see (the right words given to the wrong
  person pass it).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from diary_lightning.errors import ConfigError
from diary_lightning.evaluation.diary_style import CHECKS as STYLE_CHECKS
from diary_lightning.evaluation.diary_style import style_failures
from diary_lightning.evaluation.faithfulness import FAILURES as FAITHFULNESS_CHECKS
from diary_lightning.evaluation.faithfulness import faithfulness_failures
from diary_lightning.synthesis.teacher import Reply, Request

SYNTHESIS_CHECKS = ("prompt_copy", "length", "speaker_code", "ungrounded")
ALL_CHECKS = (*STYLE_CHECKS, *SYNTHESIS_CHECKS, *FAITHFULNESS_CHECKS)

MAX_DIARY_CHARS = 20_000
"""Longer is no diary (384 tokens write about 1,000 Korean characters): a teacher that ignored max_new_tokens.
Such an answer fails ``length`` before anything reads it, even with that check skipped: the style checks cost
about 25 us a character (2 MB: a minute), and no training example holds it anyway."""

_CODE_LIKE = re.compile(r"[A-Za-z]{1,4}[0-9]{1,9}")
_WORD = re.compile(r"[0-9A-Za-z가-힣]+")
# Words any diary adds around the facts; they say nothing about grounding either way.
_GLUE = frozenset("나는 내가 나도 나를 나의 나랑 나와 나에게 우리 우리는 우리가 오늘 그래서 그리고 하지만 그런데 너무 정말 "
                  "했다 했고 하고 해서 한다 이다 있다 없다 같다 싶다 됐다 였다 봤다 갔다 왔다 것 것이 것을 거 거다 좀 더 또 "
                  "다 잘 안 못 참 꼭 같이 함께 다음 생각 생각이 생각했다 기분 기분이 느낌 마음".split())


@dataclass
class CheckConfig:
    """What a diary must pass to be kept (``--checks.*``).

    Args:
        min_length_ratio: Shortest diary, in characters, as a multiple of the summary's.
        max_length_ratio: Longest diary as a multiple of the summary's (the prompt asks for 1 to 8 sentences as
            the chat's length calls for; AI Hub's summaries are one).
        min_grounding: Share of the diary's character pairs (within words, common diary words left out) that
            must occur in the dialogue or the summary.
        copy_ngram: Length of the character runs (spaces removed) compared with the instruction.
        max_copy: Share of the diary's runs found in the instruction that makes it a copy of the prompt.
        skip: Checks not to apply, by name.
    """

    min_length_ratio: float = 0.3
    max_length_ratio: float = 8.0
    min_grounding: float = 0.5
    copy_ngram: int = 8
    max_copy: float = 0.5
    skip: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.skip) - set(ALL_CHECKS))
        if unknown:
            raise ConfigError(f"--checks.skip: unknown check(s) {', '.join(unknown)}; the checks are {', '.join(ALL_CHECKS)}")
        if not 0 < self.min_length_ratio < self.max_length_ratio:
            raise ConfigError(f"--checks.min_length_ratio {self.min_length_ratio} and --checks.max_length_ratio "
                              f"{self.max_length_ratio}: need 0 < min < max")
        # Out of these ranges every diary fails (copy_ngram 0 finds the empty run in every prompt, max_copy 0 calls
        # any diary a copy, min_grounding above 1 can never be met): a run that keeps nothing and exits 0.
        problems = []
        if isinstance(self.copy_ngram, bool) or not isinstance(self.copy_ngram, int) or self.copy_ngram < 2:
            problems.append(f"--checks.copy_ngram {self.copy_ngram!r}: expected a run length of 2 characters or more")
        if not 0 < self.max_copy <= 1:
            problems.append(f"--checks.max_copy {self.max_copy!r}: expected a share more than 0 and at most 1")
        if not 0 <= self.min_grounding <= 1:
            problems.append(f"--checks.min_grounding {self.min_grounding!r}: expected a share from 0 to 1")
        if problems:
            raise ConfigError("; ".join(problems))


def _pairs(text: str) -> set[str]:
    return {word[i:i + 2] for word in _WORD.findall(text) if word not in _GLUE for i in range(len(word) - 1)}


def grounding(diary: str, sources: Iterable[str]) -> float:
    """Share of the diary's distinct in-word character pairs that occur in ``sources`` (1.0 for a diary with none)."""
    pairs = _pairs(diary)
    if not pairs:
        return 1.0
    # A pair of word characters occurs inside some word of the sources exactly when it occurs in their text:
    # substring search, rather than the sources' own pairs, which would cost ten times more.
    text = "\n".join(sources)
    return sum(pair in text for pair in pairs) / len(pairs)


def _ngrams(text: str, n: int) -> frozenset[str]:
    squeezed = "".join(text.split())
    return frozenset(squeezed[i:i + n] for i in range(len(squeezed) - n + 1))


_grams = lru_cache(maxsize=8)(_ngrams)
"""The instruction's n-grams: one instruction is compared with many diaries."""


def copy_share(diary: str, instruction: str, n: int) -> float:
    grams = _ngrams(diary, n)
    return len(grams & _grams(instruction, n)) / len(grams) if grams else 0.0


def _codes(request: Request) -> list[str]:
    return [s for s in {t.speaker for t in request.turns} if _CODE_LIKE.fullmatch(s)]


def check_diary(reply: Reply, request: Request, config: CheckConfig, instruction: str,
                writer_names: Collection[str] = ()) -> list[str]:
    """The names of the checks ``reply`` fails (``[]``: keep it). ``instruction`` is the prompt template without
    its fields; ``writer_names`` are the words that name the writer in the third person (for the style checks)."""
    text = (reply.text or "").strip()
    summary_length = max(len(request.summary), 1)
    if len(text) > MAX_DIARY_CHARS or ("length" not in config.skip and len(text) / summary_length > config.max_length_ratio):
        return ["length"]  # before any check reads it: see MAX_DIARY_CHARS
    failed = list(style_failures(text, writer_names=tuple(writer_names), truncated=reply.truncated))
    if not text:
        return [c for c in dict.fromkeys(failed or ["empty"]) if c not in config.skip]
    if copy_share(text, instruction, config.copy_ngram) >= config.max_copy or sum(
            1 for line in text.splitlines() if any(line.startswith(f"{label}:") for label in request.speaker_labels.values())) >= 2:
        failed.append("prompt_copy")
    if not config.min_length_ratio <= len(text) / summary_length <= config.max_length_ratio:
        failed.append("length")
    if any(code in text and re.search(rf"(?<![A-Za-z0-9]){re.escape(code)}(?![0-9])", text)
           for code in _codes(request)) or any(f"{label}:" in text for label in request.speaker_labels.values()):
        failed.append("speaker_code")
    if grounding(text, [request.summary, *(t.text for t in request.turns)]) < config.min_grounding:
        failed.append("ungrounded")
    if request.writer and not set(FAITHFULNESS_CHECKS) <= set(config.skip):
        failed += faithfulness_failures(text, [{"speaker": t.speaker, "text": t.text} for t in request.turns],
                                        request.writer)
    return [c for c in dict.fromkeys(failed) if c not in config.skip]

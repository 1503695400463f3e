"""The optional LLM judge of ``evaluate``: a rubric score of each diary, and a pairwise verdict against the
reference asked in both orders. The questions and the reading of the answers are here; ``evaluate``
(:mod:`diary_lightning.cli.evaluate`) asks them through the synthesis teachers' backends (``--judge.backend``).

A judge reads the chat, whose diary it is, and the diary (or two), and answers in a fixed form; an answer it
cannot read counts as no verdict (``None``), never as a score. Asking the pairwise question twice, with the two
diaries swapped, shows the judge's position bias: a judge that picks whichever diary comes first contradicts
itself, and that pair counts as inconsistent rather than as a win. The prompts are in docs/benchmark.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from diary_lightning.data.records import Turn
from diary_lightning.evaluation.benchmark import BenchmarkItem

RUBRIC = ("faithful", "first_person", "covers_day", "natural_korean")

JUDGE_SYSTEM = "당신은 일기 자동 작성 시스템을 평가하는 꼼꼼하고 공정한 심사위원입니다."

RUBRIC_PROMPT = """아래 대화는 "{writer}"의 하루 대화입니다. 이 대화로 "{writer}"의 일기를 썼습니다. 일기를 네 기준으로 1~5점(5가 가장 좋음) 매기세요.

- faithful: 대화에 있는 일만 쓰고, 남의 말이나 계획을 {writer}의 것으로 바꾸거나, 제안받기만 한 일을 한 일로 쓰거나, 숫자·시간을 바꾸거나, 없는 일을 지어내지 않았는가
- first_person: {writer} 자신의 목소리로 쓴 1인칭 일기인가 (3인칭 요약, 존댓말, 채팅 말투가 아닌가)
- covers_day: 그날 {writer}에게 중요했던 일과 느낌을 빠짐없이 담았는가
- natural_korean: 자연스러운 한국어 일기 문장인가

[대화]
{dialogue}

[일기]
{diary}

다른 말 없이 JSON 한 줄로만 답하세요: {{"faithful": 점수, "first_person": 점수, "covers_day": 점수, "natural_korean": 점수}}"""

PAIRWISE_PROMPT = """아래 대화는 "{writer}"의 하루 대화입니다. 이 대화로 "{writer}"의 일기를 두 편 썼습니다. 대화에 더 충실하고(남의 일을 {writer}의 일로 쓰거나, 제안받기만 한 일을 한 일로 쓰거나, 숫자를 바꾸거나, 지어낸 내용이 없고), {writer}의 1인칭 일기로서 그날을 더 잘 담은 쪽을 고르세요.

[대화]
{dialogue}

[일기 A]
{first}

[일기 B]
{second}

다른 말 없이 A 또는 B 한 글자로만 답하세요."""


def _dialogue(item: BenchmarkItem) -> str:
    from diary_lightning.data.prompts import format_dialogue

    return format_dialogue([Turn(speaker, text) for speaker, text in item.dialogue])


def parse_rubric(text: str | None) -> dict[str, int] | None:
    """The four scores of a rubric answer, or None when it holds no JSON object with each as an integer 1-5."""
    if not text:
        return None
    for found in re.finditer(r"\{[^{}]*\}", text):
        try:
            scores = json.loads(found.group())
        except json.JSONDecodeError:
            continue
        if isinstance(scores, dict) and all(isinstance(scores.get(k), int) and not isinstance(scores.get(k), bool)
                                            and 1 <= scores[k] <= 5 for k in RUBRIC):
            return {k: scores[k] for k in RUBRIC}
    return None


def parse_choice(text: str | None) -> str | None:
    """``A`` or ``B``: the answer's first standalone letter of the two, or None."""
    found = re.search(r"(?<![A-Za-z])([AB])(?![A-Za-z])", text or "")
    return found.group(1) if found else None


def judge_questions(row: Mapping[str, Any], item: BenchmarkItem) -> dict[str, list[dict[str, str]]]:
    """The chat messages to ask a judge about one row: ``rubric``, and for every system but ``reference`` the
    pairwise question with the system's diary shown first (``first``) and second (``second``)."""
    common = {"writer": item.writer, "dialogue": _dialogue(item)}

    def ask(prompt: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}]

    questions = {"rubric": ask(RUBRIC_PROMPT.format(diary=row["diary"] or "(빈 일기)", **common))}
    if row["system"] != "reference":
        questions["first"] = ask(PAIRWISE_PROMPT.format(first=row["diary"], second=item.reference, **common))
        questions["second"] = ask(PAIRWISE_PROMPT.format(first=item.reference, second=row["diary"], **common))
    return questions


def verdict(judge: str, answers: Mapping[str, str | None]) -> dict[str, Any]:
    """A row's ``judge`` entry from the judge's answers to :func:`judge_questions` (None: no answer): the rubric
    scores, and which diary won with the system's shown first and shown second."""
    found: dict[str, Any] = {"judge": judge, "rubric": parse_rubric(answers.get("rubric")), "pairwise": None}
    if "first" in answers:
        first, second = parse_choice(answers["first"]), parse_choice(answers.get("second"))
        found["pairwise"] = {"system_first": None if first is None else ("system" if first == "A" else "reference"),
                             "system_second": None if second is None else ("system" if second == "B" else "reference")}
    return found


def judge_parts(judged: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """The judge's metrics as (numerator, denominator) per row: the mean rubric score (1-5) and each criterion's;
    for pairs, ``judge.win`` (the system's diary preferred in both orders), ``judge.consistent`` (the same diary
    preferred in both orders) and ``judge.first_choice`` (how often diary A was picked: 0.5 is no position bias)."""
    parts: dict[str, list[tuple[float, float]]] = {}
    rubrics = [j.get("rubric") for j in judged]
    parts["judge.rubric"] = [(sum(r.values()) / len(RUBRIC), 1.0) if r else (0.0, 0.0) for r in rubrics]
    for key in RUBRIC:
        parts[f"judge.{key}"] = [(float(r[key]), 1.0) if r else (0.0, 0.0) for r in rubrics]
    pairs = [j.get("pairwise") for j in judged]
    if any(pairs):
        both = [p if p and p["system_first"] and p["system_second"] else None for p in pairs]
        parts["judge.win"] = [(float(p["system_first"] == p["system_second"] == "system"), 1.0) if p else (0.0, 0.0)
                              for p in both]
        parts["judge.consistent"] = [(float(p["system_first"] == p["system_second"]), 1.0) if p else (0.0, 0.0)
                                     for p in both]
        # Picks of A: the system's diary when it was shown first, the reference when it was shown second.
        parts["judge.first_choice"] = [
            (float((p or {}).get("system_first") == "system") + float((p or {}).get("system_second") == "reference"),
             float(bool((p or {}).get("system_first"))) + float(bool((p or {}).get("system_second"))))
            for p in pairs]
    return parts


__all__ = ["JUDGE_SYSTEM", "PAIRWISE_PROMPT", "RUBRIC", "RUBRIC_PROMPT", "judge_parts", "judge_questions",
           "parse_choice", "parse_rubric", "verdict"]

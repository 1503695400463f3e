"""Prompt templates: built-ins by name, or a user string with a ``{dialogue}`` field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from diary_lightning.data.clean import one_line
from diary_lightning.data.records import Turn
from diary_lightning.data.roles import (
    WRITER_LABEL,
)

# The system line of EEVE-Korean-Instruct's model card; the model was tuned with it.
EEVE_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def _eeve(instruction: str) -> str:
    return f"{EEVE_SYSTEM}\nHuman: {instruction}\n\n{{dialogue}}\nAssistant:\n"


TEMPLATES = {
    "eeve-diary": _eeve(
        f"다음은 오늘 나눈 대화입니다. 이 대화를 바탕으로 {WRITER_LABEL}의 입장에서 오늘 하루의 일기를 1인칭으로 써 주세요. "
        f"{WRITER_LABEL}는 '나'로 쓰고, 대화를 나눴다는 사실은 언급하지 말고, "
        "있었던 일과 느낀 점을 자연스러운 일기 문장으로 적어 주세요."
    ),
    "eeve-summary": _eeve("다음 대화를 한두 문장으로 요약해 주세요."),
}
DEFAULT_TEMPLATE = "eeve-diary"


def resolve_template(template: str) -> str:
    """A built-in template's text by name, or ``template`` itself if it holds ``{dialogue}``."""
    if template in TEMPLATES:
        return TEMPLATES[template]
    if "{dialogue}" not in template:
        raise ValueError(
            f"prompt template {template[:60]!r} is neither a built-in name ({', '.join(TEMPLATES)}) "
            "nor a string with a {dialogue} field"
        )
    # Fail now, not mid-run, on stray braces.
    template.format(dialogue="")
    return template


def format_dialogue(turns: Sequence[Turn], speaker_labels: Mapping[str, str] | None = None) -> str:
    """One line per turn, ``label: text``; speakers missing from ``speaker_labels`` keep their id.

    A line break inside a speaker or a text becomes a space, whatever built the turns: otherwise a speaker
    such as ``"P01\\nAssistant"`` would write a line of the template's own answer into the prompt."""
    shown = speaker_labels or {}
    return "\n".join(f"{one_line(shown.get(t.speaker, t.speaker))}: {one_line(t.text)}" for t in turns)


def render_prompt(template: str, turns: Sequence[Turn], speaker_labels: Mapping[str, str] | None = None) -> str:
    return template.format(dialogue=format_dialogue(turns, speaker_labels))

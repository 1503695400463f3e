"""The teacher's prompt: the dialogue with the writer marked, the reference summary as grounding, and what to write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from diary_lightning.dialogue import Turn
from diary_lightning.prompts import format_dialogue

DEFAULT_SYSTEM = "당신은 대화 기록을 바탕으로 그 사람의 하루 일기를 대신 써 주는 작가입니다."

DEFAULT_PROMPT = """아래는 오늘 나눈 대화와 그 요약입니다. 대화에서 "{writer}"(으)로 표시된 사람이 일기를 쓰는 사람입니다.
그 사람의 입장에서 오늘 하루의 일기를 써 주세요.

규칙:
- "나"로 쓰는 1인칭 일기로, 2~6문장으로 씁니다.
- 평서형 반말(~했다, ~이다)로 씁니다. 존댓말(~했습니다, ~해요)은 쓰지 않습니다.
- 대화에 나온 일과 그 사람의 생각, 느낌만 씁니다. 대화에 없는 사실은 지어내지 않습니다.
- 대화 자체("대화를 나눴다", "요약하면")는 언급하지 않고, "~다고 했다"처럼 남의 말을 옮기는 문장으로 끝내지 않습니다.
- "{writer}", "상대1" 같은 표시나 P01 같은 번호는 쓰지 말고, 다른 사람은 이름이나 관계(친구, 엄마, 동료)로 부릅니다.
- 일기 본문만 씁니다. 제목, 날짜, 따옴표, 설명은 붙이지 않습니다.

[대화]
{dialogue}

[요약]
{summary}

[일기]"""

FIELDS = ("dialogue", "summary", "writer")


def resolve_prompt(prompt: str) -> str:
    """``default`` or a template with ``{dialogue}``, ``{summary}`` and ``{writer}``; checked before anything runs."""
    if prompt == "default":
        return DEFAULT_PROMPT
    missing = [name for name in ("dialogue", "summary") if "{" + name + "}" not in prompt]
    if missing:
        raise ValueError(f"--teacher.prompt {prompt[:60]!r}: needs the field(s) "
                         f"{', '.join('{' + m + '}' for m in missing)} (or 'default')")
    try:
        prompt.format(dialogue="", summary="", writer="")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"--teacher.prompt: {err!r}; the only fields are {{dialogue}}, {{summary}} and {{writer}}; "
                         "write a literal brace as {{ or }}") from None
    return prompt


def resolve_system(system: str | None) -> str:
    return DEFAULT_SYSTEM if system is None else system


def build_messages(template: str, system: str, turns: Sequence[Turn], summary: str, writer_label: str,
                   speaker_labels: Mapping[str, str]) -> list[dict[str, str]]:
    user = template.format(dialogue=format_dialogue(turns, speaker_labels), summary=summary, writer=writer_label)
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]

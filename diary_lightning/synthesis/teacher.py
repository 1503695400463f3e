"""What every teacher shares: its settings, the request it answers, the reply, and the factory by backend name.

A teacher turns (dialogue, reference summary, writer) into a diary. The backends differ only in where the text
comes from; checking, retrying and writing are the runner's (:mod:`diary_lightning.synthesis.runner`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from diary_lightning.data.prompts import format_dialogue
from diary_lightning.data.records import Turn
from diary_lightning.errors import ConfigError, UserError, check_numbers

BACKENDS = ("rules", "openai", "vllm", "transformers")


@dataclass
class TeacherConfig:
    """The teacher that writes the diaries (``--teacher.*``).

    Args:
        backend: ``rules`` (no model), ``openai`` (any OpenAI-compatible server), ``vllm`` (in-process) or
            ``transformers``.
        model: Model name (``openai``) or local path / hub id (``vllm``, ``transformers``).
        base_url: ``openai``: the server, e.g. ``http://localhost:8000/v1`` for ``vllm serve``; default: OpenAI's.
        api_key_env: ``openai``: the environment variable that holds the API key (the key itself never goes in a
            config).
        prompt: ``default`` or a string with ``{dialogue}``, ``{summary}`` and ``{writer}`` fields.
        system: A system message before the prompt (null: the Korean default; ``""``: none).
        max_new_tokens: Most tokens of one diary; a diary cut there fails the ``truncated`` check.
        temperature: 0 is greedy.
        retry_temperature: The temperature of a retry (``--retries``), so that a rejected diary can come out
            different.
        concurrency: ``openai``: requests in flight at once.
        timeout: ``openai``: seconds one try may wait for the server before it is tried again.
        deadline: Seconds one dialogue may take over all its tries (``openai``: a server that trickles its answer
            never trips ``timeout``, which the client counts per read) or one batch may generate
            (``transformers``); then it counts as failed, the slow teacher is named in the log, and the dialogue
            stays missing for the next run.
        max_attempts: ``openai``: tries per request on 429, 5xx, timeouts and dropped connections, with exponential
            backoff.
        batch_size: ``transformers``: prompts generated together (left-padded); ``vllm``: prompts handed over per
            call.
        load_in_4bit: ``transformers``: quantize the teacher to 4-bit NF4 (bitsandbytes).
        dtype: ``transformers``/``vllm``: weights dtype (``float32`` on a CPU).
        tensor_parallel_size: ``vllm``: GPUs to split the model over; it must divide the model's attention heads.
            Several GPUs are better used by one process each (``--shard i/N``, docs/synthesis.md) when the model
            fits on one.
        gpu_memory_utilization: ``vllm``: share of each GPU's memory the engine may take.
        trust_remote_code: ``transformers``/``vllm``: allow the model's repository to run its own code.
    """

    backend: str = "rules"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    prompt: str = "default"
    system: str | None = None
    max_new_tokens: int = 384
    temperature: float = 0.0
    retry_temperature: float = 0.7
    concurrency: int = 16
    timeout: float = 120.0
    deadline: float = 600.0
    max_attempts: int = 6
    batch_size: int = 8
    load_in_4bit: bool = False
    dtype: str = "bfloat16"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        # Checked as the command line builds it: a zero here would fail deep inside a client or engine, or not
        # at all (a concurrency of 0 answers nothing and reports success).
        check_numbers("--teacher", self, positive=("max_new_tokens", "concurrency", "max_attempts", "batch_size",
                                                   "tensor_parallel_size", "timeout", "deadline"),
                      at_least_zero=("temperature", "retry_temperature"))
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"--teacher.gpu_memory_utilization {self.gpu_memory_utilization}: expected a share "
                              "of the GPU's memory, more than 0 and at most 1")


@dataclass
class Request:
    """One diary to write. ``messages`` is the chat prompt; ``dialogue``, ``summary`` and ``writer`` the same
    content as data, for teachers (``rules``) that do not read prompts."""

    id: str
    messages: list[dict[str, str]]
    turns: tuple[Turn, ...]
    summary: str
    writer: str | None
    speaker_labels: Mapping[str, str]
    """Speaker id -> the label the prompt shows for it."""
    attempt: int = 0
    writer_names: tuple[str, ...] = ()
    """Words that name the writer in the third person (the style checks flag them)."""


@dataclass
class Reply:
    text: str | None
    """The diary, or None when the request failed (``error`` says why)."""
    tokens_in: int | None = None
    tokens_out: int | None = None
    truncated: bool = False
    """The teacher stopped at ``max_new_tokens``, not at its end of text."""
    error: str | None = None
    timed_out: bool = False
    """The error is the teacher's ``deadline`` passing: the run counts these and names the slow teacher."""
    refused: str | None = None
    """The teacher's own reason not to keep this diary (the rules teacher's :data:`~diary_lightning.synthesis.rules.REFUSALS`):
    it goes to the rejected file with that reason, never retried."""


class TeacherError(UserError, RuntimeError):
    """A problem that no retry can fix (bad API key, unknown model, missing package): the run stops."""


class Teacher(Protocol):
    def describe(self) -> dict[str, Any]:
        """What made the diaries, saved with each record (never the API key)."""

    def generate(self, requests: Iterable[Request], on_reply: Callable[[Request, Reply], None]) -> None:
        """Answer every request, calling ``on_reply`` for each as it completes (in any order)."""

    def close(self) -> None: ...



# The teacher's prompt: the dialogue with the writer marked, the reference summary as grounding, and what to write.

DEFAULT_SYSTEM = "당신은 대화 기록을 바탕으로 그 사람의 하루 일기를 대신 써 주는 작가입니다."

DEFAULT_PROMPT = """아래는 오늘 나눈 대화와 그 요약입니다. 대화에서 "{writer}"(으)로 표시된 사람이 일기를 쓰는 사람입니다.
그 사람의 입장에서, 그 사람의 목소리로 오늘 하루의 일기를 써 주세요.

규칙:
- "나"로 쓰는 1인칭 일기로, 2~6문장으로 씁니다. 요약은 남이 본 줄거리일 뿐이니, 그 사람이 직접 겪고 느낀 일로 다시 씁니다.
- 평서형 반말(~했다, ~이다)로 씁니다. 존댓말(~했습니다, ~해요)도, 채팅 말투(~했어, ~하자, ~냐?)도 쓰지 않습니다.
- 대화에 나온 일과 그 사람의 생각, 느낌만 씁니다. 대화에 없는 사실은 지어내지 않습니다.
- 대화 자체("대화를 나눴다", "요약하면")는 언급하지 않고, "~다고 한다", "~에 대해 이야기한다"처럼 남의 말을 전하는 요약 문장으로 쓰지 않습니다.
- "{writer}", "상대1" 같은 표시나 P01 같은 번호는 쓰지 말고, 다른 사람은 이름이나 관계(친구, 엄마, 동료)로 부릅니다.
- 일기 본문만 씁니다. 제목, 날짜, 따옴표, 설명, 인사말은 붙이지 않습니다.

<예시 1>
[대화]
{writer}: 오늘 면접 보고 왔어. 너무 떨려서 준비한 말 반도 못 했어
상대1: 그래도 끝까지 했잖아. 고생했어
{writer}: 결과는 다음 주에 나온대. 일단 오늘은 치킨 먹을 거야
[요약]
면접을 봤는데 긴장해서 준비한 말을 다 못 했다고 이야기한다. 결과는 다음 주에 나온다고 한다.
[일기]
오늘 면접을 보고 왔다. 너무 떨려서 준비한 말을 반도 못 했다. 친구가 끝까지 해낸 것만으로도 고생했다고 해 줘서 조금 위로가 됐다. 결과는 다음 주에 나온다. 오늘은 치킨을 먹으면서 푹 쉬어야겠다.

<예시 2>
[대화]
상대1: 주말에 뭐 했어?
{writer}: 엄마랑 김장했어 ㅠㅠ 허리 끊어질 뻔
상대1: 헐 몇 포기나 했는데
{writer}: 50포기... 그래도 수육 먹으니까 다 잊혀지더라
[요약]
주말에 엄마와 김장을 50포기나 해서 허리가 아팠지만 수육을 먹으니 좋았다고 말한다.
[일기]
주말에 엄마와 김장을 했다. 배추가 50포기나 돼서 허리가 끊어지는 줄 알았다. 그래도 다 끝내고 갓 삶은 수육을 김치에 싸 먹으니 힘들었던 게 다 잊혔다.

<예시 3>
[대화]
{writer}: 나 다음 달부터 수영 배우기로 했어
상대1: 갑자기? 물 무서워하지 않았어?
{writer}: 그러니까 배우려고. 언제까지 무서워만 할 순 없잖아
[요약]
다음 달부터 수영을 배우기로 했다고 하자 상대는 물을 무서워하지 않느냐고 묻는다.
[일기]
다음 달부터 수영을 배우기로 했다. 친구는 내가 물을 무서워하지 않느냐고 물었다. 맞는 말이지만 언제까지 무서워만 할 수는 없어서 배워 보기로 한 것이다. 조금 걱정되지만 기대도 된다.

이제 아래 대화로 일기를 써 주세요.

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

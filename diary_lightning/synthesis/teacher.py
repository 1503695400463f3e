"""What every teacher shares: its settings, the request it answers, the reply, and the factory by backend name.

A teacher turns (dialogue, reference summary, writer) into a diary. The backends differ only in where the text
comes from; checking, retrying and writing are the runner's (:mod:`diary_lightning.synthesis.runner`).
"""

from __future__ import annotations

import hashlib
import json
import re
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
        tokenizer: The teacher's tokenizer (a local path or hub id), to count prompts in its tokens and cut them
            to its context: ``openai`` (none by default: prompts go uncut) and ``--dry_run`` (default: ``model``'s
            for ``transformers`` and ``vllm``, which always use their model's own).
        context_length: The most tokens the teacher reads, prompt and diary together (default: its config's
            ``max_position_embeddings``). A prompt longer than this less ``max_new_tokens`` loses its oldest
            turns, and the summary counts them (``prompts_cut``, ``turns_cut``).
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
    tokenizer: str | None = None
    context_length: int | None = None

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
    turns_cut: int = 0
    """The oldest turns left out of the prompt to fit the teacher's context."""


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



# The teacher's prompt: the dialogue with the writer marked, the reference summary as a hint, and what to write.
# Written for a 10B teacher, which follows examples more than rules: who did what comes from the dialogue (AI
# Hub's summaries often drop their subject or tell the other speaker's news), the examples invent nothing, and
# the rules come back in one line after the long dialogue, where a small model looks last.

DEFAULT_SYSTEM = ("당신은 채팅 대화를 읽고, 대화한 사람 중 한 명(글쓴이)이 되어 그날의 일기를 대신 써 주는 작가입니다. "
                  "누가 무엇을 했는지는 대화에서 확인하고, 대화에 없는 내용은 쓰지 않습니다.")

DEFAULT_PROMPT = """아래 [대화]에서 "{writer}"(으)로 표시된 사람이 일기를 쓰는 사람입니다. 그 사람이 되어 오늘의 일기를 써 주세요.

규칙:
1. 누가 무엇을 했는지는 [대화]에서 확인합니다. [요약]은 참고용입니다. 요약은 주어가 빠져 있거나 상대의 이야기일 때가 많고, 대화와 다르면 대화가 맞습니다.
2. "{writer}"가 한 일과 느낀 것은 "나"로 씁니다. 상대가 한 일이나 전한 소식은 상대의 일로 씁니다("상대가 이사를 간다고 했다"). 상대의 일을 내 일로 쓰지 않습니다.
3. 다른 사람은 대화에 나온 호칭이나 관계(엄마, 언니, 팀장님)로 부르고, 관계를 알 수 없으면 지어내지 말고 "상대"라고 씁니다. "{writer}", "상대1" 같은 표시나 P01 같은 번호는 쓰지 않습니다.
4. (이름), (사진), #@시스템#사진# 같은 표시는 가려진 이름이나 보낸 사진입니다. 표시를 옮겨 적지 말고 이름 없이 씁니다("사진을 보냈다").
5. 대화에 없는 사실(장소, 음식, 시간, 이유, 결과)은 지어내지 않습니다.
6. 평서형 반말(~했다, ~이다)로 씁니다. 존댓말(~했습니다, ~해요), 채팅 말투(~했어, ~하자), 남의 말을 전하는 요약투(~다고 한다, ~에 대해 이야기한다)는 쓰지 않습니다.
7. 대화 자체("대화를 나눴다", "요약하면")는 언급하지 않습니다. 대화가 오늘 겪은 일이 아니라 어떤 주제(취미, 경험, 의견)에 대한 이야기라면, 그 주제에 대해 "{writer}"가 말한 경험과 생각을 씁니다.
8. 길이는 대화의 양을 따릅니다. 일기 본문만 쓰고 제목, 날짜, 따옴표, 설명은 붙이지 않습니다.

<예시 1: 글쓴이의 일>
[대화]
{writer}: 엄마 나 면접 보고 왔어. 너무 떨려서 준비한 말 반도 못 했어
상대1: 그래도 끝까지 했잖아. 고생했어
{writer}: 결과는 다음 주에 나온대. 오늘은 치킨 먹을 거야
[요약]
면접을 봤는데 긴장해서 준비한 말을 다 못 했다고 이야기한다.
[일기]
오늘 면접을 보고 왔다. 너무 떨려서 준비한 말을 반도 못 했다. 엄마는 그래도 끝까지 했으니 고생했다고 해 주었다. 결과는 다음 주에 나온다. 오늘은 치킨을 먹을 거다.

<예시 2: 상대의 소식, 글쓴이는 반응만 함>
[대화]
상대1: 나 다음 달에 부산으로 발령 났어
{writer}: 헐 진짜? 갑자기?
상대1: 응 나도 오늘 들었어. 주말마다 올라올 거야
{writer}: 아쉽다 ㅠㅠ 가기 전에 밥 한번 먹자
[요약]
다음 달에 부산으로 발령이 났다고 하자 아쉬워하며 밥을 먹자고 한다.
[일기]
상대가 다음 달에 부산으로 발령이 났다고 했다. 상대도 오늘 들었다고 할 만큼 갑자기였다. 주말마다 올라온다고는 했지만 아쉬웠다. 가기 전에 밥 한번 먹자고 했다.

<예시 3: 가려진 이름과 사진>
[대화]
{writer}: (이름)이 10월에 결혼한대 #@시스템#사진#
상대1: 와 청첩장 예쁘다. 같이 가자
{writer}: 좋아. 축의금은 얼마 할지 고민이야
[요약]
(이름)이 결혼한다며 청첩장 사진을 보내자 같이 가자고 한다.
[일기]
10월에 결혼하는 사람의 청첩장 사진을 보냈다. 상대는 청첩장이 예쁘다며 같이 가자고 했다. 축의금을 얼마 할지 고민이다.

<예시 4: 주제에 대한 이야기>
[대화]
{writer}: 저는 요즘 주말마다 등산을 다녀요. 지난주에는 북한산 정상까지 세 시간 걸렸어요
상대1: 힘들지 않으세요? 저는 계단만 올라가도 숨이 차요
{writer}: 처음엔 힘들었는데 이제는 산에 안 가면 주말이 허전해요
[요약]
화자1은 주말마다 등산을 다니며 지난주 북한산 정상까지 세 시간이 걸렸다고 말했습니다. 두 화자는 취미에 대해 이야기했습니다.
[일기]
요즘 나는 주말마다 등산을 다닌다. 지난주에는 북한산 정상까지 세 시간이 걸렸다. 처음에는 힘들었지만 이제는 산에 안 가면 주말이 허전하다. 상대는 계단만 올라가도 숨이 찬다고 했다.

이제 아래 대화로 일기를 써 주세요.

[대화]
{dialogue}

[요약] (참고용: 대화와 다르면 대화를 따릅니다)
{summary}

다시 한 번: "{writer}"가 "나"입니다. 누가 무엇을 했는지는 대화를 따르고, 대화에 없는 내용은 쓰지 않습니다. 평서형 반말로 {length} 안팎, 일기 본문만 씁니다.

[일기]"""

FIELDS = ("dialogue", "summary", "writer", "length")


def diary_length(turns: Sequence[Turn]) -> str:
    """How long the diary of this chat should be, in sentences: a five-line chat has two sentences to tell, a
    NIKL talk of sixty turns several, and a fixed 2 to 6 asks a small model to pad the one or squash the other."""
    characters = sum(len(t.text) for t in turns)
    for most, sentences in ((150, "1~2문장"), (400, "2~4문장"), (1000, "3~6문장")):
        if characters < most:
            return sentences
    return "5~8문장"


def resolve_prompt(prompt: str) -> str:
    """``default`` or a template with ``{dialogue}`` and ``{summary}`` (``{writer}`` and ``{length}`` if it
    wants them); checked before anything runs."""
    if prompt == "default":
        return DEFAULT_PROMPT
    missing = [name for name in ("dialogue", "summary") if "{" + name + "}" not in prompt]
    if missing:
        raise ValueError(f"--teacher.prompt {prompt[:60]!r}: needs the field(s) "
                         f"{', '.join('{' + m + '}' for m in missing)} (or 'default')")
    try:
        prompt.format(**dict.fromkeys(FIELDS, ""))
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"--teacher.prompt: {err!r}; the only fields are {{dialogue}}, {{summary}}, {{writer}} and "
                         "{{length}}; write a literal brace as {{ or }}") from None
    return prompt


def resolve_system(system: str | None) -> str:
    return DEFAULT_SYSTEM if system is None else system


def instruction_of(template: str) -> str:
    """The template without its fields: what a diary must not copy."""
    return template.format(**dict.fromkeys(FIELDS, ""))


def prompt_hash(system: str, template: str) -> str:
    """A short stable name of the prompt (system message and template), which every line of a run carries and
    its manifest maps back to the text."""
    return hashlib.blake2b(json.dumps([system, template], ensure_ascii=False).encode("utf-8"),
                           digest_size=8).hexdigest()


def build_messages(template: str, system: str, turns: Sequence[Turn], summary: str, writer_label: str,
                   speaker_labels: Mapping[str, str]) -> list[dict[str, str]]:
    """The chat messages of one request: the system message (if any) and the template filled in."""
    return fit_messages(template, system, turns, summary, writer_label, speaker_labels)[0]


def labelled(summary: str, speaker_labels: Mapping[str, str]) -> str:
    """The summary with the speaker ids the dialogue shows as labels written as those labels (NIKL's
    SD2000691은 -> 글쓴이는): a teacher that reads 글쓴이 in the dialogue and SD2000691 in the summary must
    otherwise guess that they are one person."""
    from diary_lightning.synthesis.rules import attach

    for speaker, label in speaker_labels.items():
        if speaker and speaker != label and speaker in summary:
            summary = re.sub(rf"(?<![A-Za-z0-9]){re.escape(speaker)}(은|는|이|가|을|를|과|와)?(?![A-Za-z0-9가-힣])",
                             lambda m: attach(label, m.group(1)) if m.group(1) else label, summary)
    return summary


TokenCounter = Callable[[list[dict[str, str]]], int]
"""The number of the teacher's tokens its rendered prompt of these messages takes."""


def fit_messages(template: str, system: str, turns: Sequence[Turn], summary: str, writer_label: str,
                 speaker_labels: Mapping[str, str], count: TokenCounter | None = None,
                 budget: int | None = None) -> tuple[list[dict[str, str]], int]:
    """The messages of :func:`build_messages` and how many of the oldest turns were left out so that the prompt
    takes at most ``budget`` tokens (by ``count``); the newest turn is always kept. The length asked for
    follows the whole chat, not the part that fits."""
    summary = labelled(summary, speaker_labels)

    def build(dropped: int) -> list[dict[str, str]]:
        user = template.format(dialogue=format_dialogue(turns[dropped:], speaker_labels), summary=summary,
                               writer=writer_label, length=diary_length(turns))
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]

    messages = build(0)
    if count is None or budget is None or len(turns) < 2 or count(messages) <= budget:
        return messages, 0
    # The fewest oldest turns to leave out, by bisection: a NIKL talk of 80 turns takes 7 counts, not 80.
    low, high = 1, len(turns) - 1
    while low < high:
        middle = (low + high) // 2
        if count(build(middle)) <= budget:
            high = middle
        else:
            low = middle + 1
    return build(low), low

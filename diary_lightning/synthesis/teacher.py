"""What every teacher shares: its settings, the request it answers, the reply, and the factory by backend name.

A teacher turns (dialogue, reference summary, writer) into a diary. The backends differ only in where the text
comes from; checking, retrying and writing are the runner's (:mod:`diary_lightning.synthesis.runner`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from diary_lightning.dialogue import Turn

BACKENDS = ("rules", "openai", "vllm", "transformers")


@dataclass
class TeacherConfig:
    """The teacher that writes the diaries (``--teacher.*``)."""

    backend: str = "rules"
    """``rules`` (no model), ``openai`` (any OpenAI-compatible server), ``vllm`` (in-process) or ``transformers``."""
    model: str | None = None
    """Model name (``openai``) or local path / hub id (``vllm``, ``transformers``)."""
    base_url: str | None = None
    """``openai``: the server, e.g. ``http://localhost:8000/v1`` for ``vllm serve``; default: OpenAI's."""
    api_key_env: str = "OPENAI_API_KEY"
    """``openai``: the environment variable that holds the API key (the key itself never goes in a config)."""
    prompt: str = "default"
    """``default`` or a string with ``{dialogue}``, ``{summary}`` and ``{writer}`` fields."""
    system: str | None = None
    """A system message before the prompt (``default``: the Korean one; ``""``: none)."""
    max_new_tokens: int = 384
    temperature: float = 0.0
    """0 is greedy; a retry of a rejected diary samples at ``retry_temperature`` so it can come out different."""
    retry_temperature: float = 0.7
    concurrency: int = 16
    """``openai``: requests in flight at once."""
    timeout: float = 120.0
    """``openai``: seconds per request before it counts as failed (and is retried)."""
    max_attempts: int = 6
    """``openai``: tries per request on 429, 5xx, timeouts and dropped connections, with exponential backoff."""
    batch_size: int = 8
    """``transformers``: prompts generated together (left-padded); ``vllm``: prompts handed over per call."""
    load_in_4bit: bool = False
    """``transformers``: quantize the teacher to 4-bit NF4 (bitsandbytes)."""
    dtype: str = "bfloat16"
    """``transformers``/``vllm``: weights dtype (``float32`` on a CPU)."""
    tensor_parallel_size: int | None = None
    """``vllm``: GPUs to split the model over (default: every visible GPU)."""
    gpu_memory_utilization: float = 0.9
    """``vllm``: share of each GPU's memory the engine may take."""
    trust_remote_code: bool = False


@dataclass
class Request:
    """One diary to write. ``messages`` is the chat prompt; ``dialogue``, ``summary`` and ``writer`` the same
    content as data, for teachers (``rules``) that do not read prompts."""

    id: str
    messages: list[dict[str, str]]
    turns: tuple[Turn, ...]
    summary: str
    writer: str | None
    labels: Mapping[str, str]
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


class TeacherError(RuntimeError):
    """A problem that no retry can fix (bad API key, unknown model, missing package): the run stops."""


class Teacher(Protocol):
    def describe(self) -> dict[str, Any]:
        """What made the diaries, saved with each record (never the API key)."""

    def generate(self, requests: Iterable[Request], on_reply: Callable[[Request, Reply], None]) -> None:
        """Answer every request, calling ``on_reply`` for each as it completes (in any order)."""

    def close(self) -> None: ...



def make_teacher(config: TeacherConfig) -> Teacher:
    """The teacher for ``config.backend``; heavy packages (openai, vllm, transformers) are imported only here."""
    if config.backend not in BACKENDS:
        raise ValueError(f"--teacher.backend {config.backend!r}: expected one of {', '.join(BACKENDS)}")
    if config.backend != "rules" and not config.model:
        raise ValueError(f"--teacher.backend {config.backend} needs --teacher.model (the model to ask)")
    if config.backend == "rules":
        from diary_lightning.synthesis.rules import RulesTeacher

        return RulesTeacher()
    if config.backend == "openai":
        from diary_lightning.synthesis.openai_teacher import OpenAITeacher

        return OpenAITeacher(config)
    if config.backend == "vllm":
        from diary_lightning.synthesis.local import VLLMTeacher

        return VLLMTeacher(config)
    from diary_lightning.synthesis.local import TransformersTeacher

    return TransformersTeacher(config)

"""The ``openai`` teacher: any OpenAI-compatible chat endpoint (``vllm serve``, Ollama, a llama.cpp server, OpenAI).

At most ``concurrency`` requests are in flight. A 429, a 5xx, a timeout or a dropped connection is tried
again after an exponential backoff with jitter (or the server's ``Retry-After``), up to ``max_attempts``;
then that one dialogue counts as failed and stays missing for the next run. A 401, 403 or 404 stops the run
at once: no retry fixes a wrong key, URL or model name. The API key is read from the environment variable
``api_key_env`` and never written anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from diary_lightning.synthesis.teacher import Reply, Request, TeacherConfig, TeacherError

log = logging.getLogger(__name__)

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0


def _retry_after(err: Any) -> float | None:
    response = getattr(err, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), BACKOFF_MAX) if value is not None else None
    except ValueError:
        return None


class OpenAITeacher:
    def __init__(self, config: TeacherConfig) -> None:
        try:
            import openai
        except ImportError:
            raise TeacherError("--teacher.backend openai needs the openai package: "
                               "pip install 'diary-lightning[synthesize]'") from None
        if config.concurrency < 1 or config.max_attempts < 1 or config.timeout <= 0:
            raise ValueError("--teacher.concurrency and --teacher.max_attempts must be >= 1, --teacher.timeout > 0")
        key = os.environ.get(config.api_key_env)
        if not key:
            if config.base_url is None:
                raise TeacherError(f"--teacher.backend openai: set the API key in the environment variable "
                                   f"{config.api_key_env} (--teacher.api_key_env names another)")
            key = "unused"  # local servers (vllm serve, llama.cpp, Ollama) take any key
        # The HTTP client logs every request at INFO: 280,000 lines of noise.
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.config = config
        self.openai = openai
        self._loop = asyncio.new_event_loop()
        # Retries are ours, not the client's: the client would retry a 401 never and a 429 too few times.
        self._client = openai.AsyncOpenAI(base_url=config.base_url, api_key=key, timeout=config.timeout,
                                          max_retries=0)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"backend": "openai", "model": c.model, "base_url": _without_credentials(c.base_url),
                "temperature": c.temperature, "max_new_tokens": c.max_new_tokens}

    def generate(self, requests: Iterable[Request], on_reply: Callable[[Request, Reply], None]) -> None:
        self._loop.run_until_complete(self._run(iter(requests), on_reply))

    async def _run(self, requests: Any, on_reply: Callable[[Request, Reply], None]) -> None:
        stop: list[BaseException] = []

        async def worker() -> None:
            # One shared iterator: each worker takes the next request when it is free, so exactly
            # ``concurrency`` are in flight and a kill loses at most those.
            try:
                for request in requests:
                    if stop:
                        return
                    on_reply(request, await self._ask(request))
            except Exception as err:  # noqa: BLE001 - any failure stops every worker; the first is raised below
                stop.append(err)

        # The other workers finish the request they hold (its answer is written) and take no new one.
        await asyncio.gather(*(worker() for _ in range(self.config.concurrency)))
        if stop:
            raise stop[0]

    async def _ask(self, request: Request) -> Reply:
        c, openai = self.config, self.openai
        temperature = c.temperature if request.attempt == 0 else c.retry_temperature
        last = ""
        for attempt in range(c.max_attempts):
            try:
                # The client's own post (its errors, auth and connection pool), not chat.completions.create:
                # create() walks every message through a typed-dict transform and builds a typed response,
                # together 40% of the client's CPU per request; the body is plain JSON both ways.
                response = await self._client.post("/chat/completions", cast_to=dict, body={
                    "model": c.model, "messages": request.messages, "max_tokens": c.max_new_tokens,
                    "temperature": temperature})
            except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
                raise TeacherError(f"{c.base_url or 'OpenAI'} refused the API key from ${c.api_key_env} "
                                   f"({err.status_code}); check the key and its permissions") from None
            except openai.NotFoundError as err:
                raise TeacherError(f"{c.base_url or 'OpenAI'} answered 404 for model {c.model!r}: check "
                                   f"--teacher.base_url (it usually ends in /v1) and --teacher.model "
                                   f"({_message(err)})") from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as err:
                last = f"{getattr(err, 'status_code', None) or type(err).__name__}: {_message(err)}"
                if attempt + 1 < c.max_attempts:
                    delay = _retry_after(err) or min(BACKOFF_MAX, BACKOFF_START * 2 ** attempt) * random.uniform(0.5, 1)
                    await asyncio.sleep(delay)
                continue
            except openai.APIStatusError as err:
                # Another 4xx (a prompt too long for the model, say): this request, not the run, is wrong.
                return Reply(None, error=f"{err.status_code}: {_message(err)}")
            return _reply(response)
        return Reply(None, error=f"gave up after {c.max_attempts} attempts; last: {last}")

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


def _reply(response: Any) -> Reply:
    """The diary, token counts and finish reason from a chat-completions body (a plain dict: the typed model
    would cost more CPU than everything else the client does per request)."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return Reply(None, error=f"no choices in the server's answer: {str(response)[:200]}")
    choice, usage = choices[0], response.get("usage") or {}
    message = choice.get("message") or {}
    return Reply(message.get("content") or "", usage.get("prompt_tokens"), usage.get("completion_tokens"),
                 truncated=choice.get("finish_reason") == "length")


def _without_credentials(url: str | None) -> str | None:
    """The URL as saved with every record: a user:password@ in it would be a secret written 280,000 times."""
    if not url:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))) \
        if parts.username or parts.password else url


def _message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
    return str(err)[:200]

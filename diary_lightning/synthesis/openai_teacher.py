"""The ``openai`` teacher: any OpenAI-compatible chat endpoint (``vllm serve``, Ollama, a llama.cpp server, OpenAI).

At most ``concurrency`` requests are in flight. A 429, a 5xx, a timeout or a dropped connection is tried again
by the client itself (its exponential backoff, the server's ``Retry-After``), up to ``max_attempts`` tries in
all; a 200 whose body is not a chat completion (no choices, content that is not text, token counts that are not
counts) is tried again the same way. A dialogue not answered within ``deadline`` seconds over all its tries is
given up. Then that one dialogue counts as failed and stays missing for the next run. A 401, 403 or 404 stops
the run at once: no retry fixes a wrong key, URL or model name.

The API key is read from the environment variable ``api_key_env`` and never written anywhere: a server that
echoes it in an error is redacted from the message, a ``user:password@`` or a key-like query parameter in the URL
from every message and record (:func:`diary_lightning.errors.redacted_url`). The diary itself is never
rewritten. The server is ``base_url``, or else ``OPENAI_BASE_URL`` from the environment (the client's own rule,
said in the log), or else OpenAI's; the records name the one used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from diary_lightning.errors import redact_urls, redacted_url
from diary_lightning.synthesis.teacher import Reply, Request, TeacherConfig, TeacherError

log = logging.getLogger(__name__)

BASE_URL_ENV = "OPENAI_BASE_URL"
KEY_LENGTH = 16
"""A key this long (OpenAI's are over 40 characters) cannot occur in a diary by chance; a shorter one is a
placeholder that a local server takes (``EMPTY``, ``1``), whose characters any diary may hold."""


class OpenAITeacher:
    def __init__(self, config: TeacherConfig) -> None:
        try:
            import openai
        except ImportError:
            raise TeacherError("--teacher.backend openai needs the openai package: "
                               "pip install 'diary-lightning[synthesize]'") from None
        from_env = os.environ.get(BASE_URL_ENV) if config.base_url is None else None
        key = os.environ.get(config.api_key_env)
        if not key:
            if config.base_url is None and not from_env:
                raise TeacherError(f"--teacher.backend openai: set the API key in the environment variable "
                                   f"{config.api_key_env} (--teacher.api_key_env names another)")
            key = "unused"  # local servers (vllm serve, llama.cpp, Ollama) take any key
        # The HTTP client logs every request at INFO: 280,000 lines of noise.
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.config = config
        self.openai = openai
        # The server counts its own tokens; to cut a prompt to its context before sending, the teacher's tokenizer
        # must be here too (--teacher.tokenizer).
        from diary_lightning.synthesis.local import tokenizer_budget

        self.prompt_budget = tokenizer_budget(config) if config.tokenizer else None
        self._secrets = [key] if key != "unused" else []
        self._loop = asyncio.new_event_loop()
        # The client's own retries and backoff (it honours Retry-After); max_attempts counts the first try.
        self._client = openai.AsyncOpenAI(base_url=config.base_url, api_key=key, timeout=config.timeout,
                                          max_retries=config.max_attempts - 1)
        # What the client really talks to: the flag, else OPENAI_BASE_URL (which the client reads itself).
        self.base_url = without_credentials(str(self._client.base_url).rstrip("/"))
        if from_env:
            log.info("--teacher.base_url not given: %s=%s from the environment is the server (and receives the "
                     "key from $%s)", BASE_URL_ENV, self.base_url, config.api_key_env)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"backend": "openai", "model": c.model, "base_url": self.base_url,
                "temperature": c.temperature, "max_new_tokens": c.max_new_tokens}

    def redact(self, text: str) -> str:
        """A message (never a diary) without the API key and without the secrets of any URL it holds."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_urls(text)

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
        c = self.config
        try:
            return await asyncio.wait_for(self._tries(request), c.deadline)
        except asyncio.TimeoutError:
            return Reply(None, error=f"no answer within --teacher.deadline {c.deadline:g} s from {self.base_url} "
                                     f"(model {c.model})", timed_out=True)

    async def _tries(self, request: Request) -> Reply:
        c, openai = self.config, self.openai
        temperature = c.temperature if request.attempt == 0 else c.retry_temperature
        reply = Reply(None, error="no attempt")
        # The client retries what fails at the HTTP level; a 200 that is no chat completion (a proxy's error
        # page, a cut body) is a server fault as a 5xx is, but the client has already accepted it.
        for _ in range(c.max_attempts):
            try:
                # with_raw_response: the body as the server sent it, parsed once below; the typed model the
                # client would build costs more CPU than everything else it does per request.
                raw = await self._client.chat.completions.with_raw_response.create(
                    model=c.model, messages=request.messages, max_tokens=c.max_new_tokens, temperature=temperature)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
                raise TeacherError(f"{self.base_url} refused the API key from ${c.api_key_env} "
                                   f"({err.status_code}); check the key and its permissions") from None
            except openai.NotFoundError as err:
                raise TeacherError(f"{self.base_url} answered 404 for model {c.model!r}: check "
                                   f"--teacher.base_url (it usually ends in /v1) and --teacher.model "
                                   f"({self.redact(_message(err))})") from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as err:
                status = getattr(err, "status_code", None) or type(err).__name__
                return Reply(None, error=f"gave up after {c.max_attempts} attempts; last: {status}: "
                                         f"{self.redact(_message(err))}")
            except openai.APIStatusError as err:
                # Another 4xx (a prompt too long for the model, say): this request, not the run, is wrong.
                return Reply(None, error=f"{err.status_code}: {self.redact(_message(err))}")
            reply = _reply(raw.http_response.content)
            if reply.error is None and any(len(secret) >= KEY_LENGTH and secret in (reply.text or "")
                                           for secret in self._secrets):
                # Not redacted: a diary is data, and one with the key in it must not reach the training set.
                return Reply(None, error=f"the answer holds the API key from ${c.api_key_env}; not kept")
            if reply.error is None:
                return reply
        return Reply(None, error=f"gave up after {c.max_attempts} attempts; last: {self.redact(reply.error or '')}")

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


def _reply(body: bytes) -> Reply:
    """The diary, token counts and finish reason from a chat-completions body, or an error for a body that is
    not one: every field read is checked, so that a server's odd answer fails that dialogue, not the run."""
    try:
        response = json.loads(body)
    except ValueError:
        return Reply(None, error=f"a 200 answer that is not JSON: {body[:200].decode('utf-8', 'replace')!r}")
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return Reply(None, error=f"no choices in the server's answer: {str(response)[:200]}")
    choice, usage = choices[0], response.get("usage")
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        return Reply(None, error=f"the answer's content is not text: {str(content)[:200]}")
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        return Reply(None, error=f"the answer's finish_reason is not text: {str(finish)[:200]}")
    if usage is not None and not isinstance(usage, dict):
        return Reply(None, error=f"the answer's usage is not an object: {str(usage)[:200]}")
    counts = []
    for key in ("prompt_tokens", "completion_tokens"):
        value = (usage or {}).get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            return Reply(None, error=f"the answer's usage.{key} is not a token count: {str(value)[:200]!r}")
        counts.append(value)
    return Reply(content or "", *counts, truncated=finish == "length")


def without_credentials(url: str | None) -> str | None:
    """The URL as saved with every record: a user:password@ or a ?key= in it would be a secret written 280,000
    times."""
    return redacted_url(url, keep_userinfo_mark=False) if url else url


def _message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
    return str(err)[:200]

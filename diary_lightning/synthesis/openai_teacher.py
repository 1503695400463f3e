"""The ``openai`` teacher: any OpenAI-compatible chat endpoint (``vllm serve``, Ollama, a llama.cpp server, OpenAI).

At most ``concurrency`` requests are in flight. A 429, a 5xx, a timeout or a dropped connection is tried again
by the client itself (its exponential backoff, the server's ``Retry-After``), up to ``max_attempts`` tries in
all; a 200 whose body is not a chat completion is tried again the same way. Then that one dialogue counts as
failed and stays missing for the next run. A 401, 403 or 404 stops the run at once: no retry fixes a wrong key,
URL or model name.

The API key is read from the environment variable ``api_key_env`` and never written anywhere: a server that
echoes it, or a ``user:password@`` in the URL, is redacted from every message and record. The server is
``base_url``, or else ``OPENAI_BASE_URL`` from the environment (the client's own rule, said in the log), or
else OpenAI's; the records name the one used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from diary_lightning.synthesis.teacher import Reply, Request, TeacherConfig, TeacherError

log = logging.getLogger(__name__)

BASE_URL_ENV = "OPENAI_BASE_URL"


class OpenAITeacher:
    def __init__(self, config: TeacherConfig) -> None:
        try:
            import openai
        except ImportError:
            raise TeacherError("--teacher.backend openai needs the openai package: "
                               "pip install 'diary-lightning[synthesize]'") from None
        if config.concurrency < 1 or config.max_attempts < 1 or config.timeout <= 0:
            raise ValueError("--teacher.concurrency and --teacher.max_attempts must be >= 1, --teacher.timeout > 0")
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
        """``text`` without the API key and without credentials in any URL it holds."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _URL_CREDENTIALS.sub(r"\1***@", text)

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
            if reply.error is None:
                return Reply(self.redact(reply.text or ""), reply.tokens_in, reply.tokens_out, truncated=reply.truncated)
        return Reply(None, error=f"gave up after {c.max_attempts} attempts; last: {self.redact(reply.error or '')}")

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


def _reply(body: bytes) -> Reply:
    """The diary, token counts and finish reason from a chat-completions body, or an error for a body that is
    not one."""
    try:
        response = json.loads(body)
    except ValueError:
        return Reply(None, error=f"a 200 answer that is not JSON: {body[:200].decode('utf-8', 'replace')!r}")
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return Reply(None, error=f"no choices in the server's answer: {str(response)[:200]}")
    choice, usage = choices[0], response.get("usage") or {}
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        return Reply(None, error=f"the answer's content is not text: {str(content)[:200]}")
    usage = usage if isinstance(usage, dict) else {}
    return Reply(content or "", usage.get("prompt_tokens"), usage.get("completion_tokens"),
                 truncated=choice.get("finish_reason") == "length")


_URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def without_credentials(url: str | None) -> str | None:
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

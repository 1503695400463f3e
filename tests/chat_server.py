"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat-completions API, for the openai teacher's tests and
its benchmark. Markers in the prompt pick a behaviour: ``MODE401``/``MODE404`` always fail so; ``MODE429``,
``MODE500`` and ``MODESLOW`` (answer after ``slow`` seconds) do so on the first call for that prompt only;
``MODEHANG`` is always slow; ``MODENOCHOICE`` answers with no choices; ``MODEBADJSON`` answers 200 with a body that
is not JSON on the first call, ``MODEALWAYSBAD`` on every call; ``MODEECHO400``/``MODEECHO500`` fail so with the
request's Authorization header in the error message (a server that echoes the key); ``MODEBADUSAGE`` answers with
token counts that are not numbers. Otherwise it answers, after ``delay`` seconds, with the prompt's summary (or
what ``answer`` makes of the prompt)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _diary_from(prompt: str) -> str:
    start = prompt.rfind("[요약]")  # the last: the worked examples come before
    start = prompt.find("\n", start) + 1 if start >= 0 else -1
    end = prompt.find("\n\n", start) if start > 0 else -1
    if start <= 0 or end < start:
        return "오늘은 친구와 점심을 먹었다."
    return prompt[start:end].strip()


class ChatServer:
    def __init__(self, delay: float = 0.0, slow: float = 2.0, answer=_diary_from) -> None:
        self.delay, self.slow, self.answer = delay, slow, answer
        self.calls: Counter = Counter()
        self.statuses: Counter = Counter()
        self.inflight = 0
        self.max_inflight = 0
        self.authorization: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real server

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.authorization.add(self.headers.get("Authorization", ""))
                with server._lock:
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    status, payload, headers = server.respond(self.path, body, self.headers.get("Authorization", ""))
                finally:
                    with server._lock:
                        server.inflight -= 1
                data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                                       **headers}.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def respond(self, path: str, body: dict, authorization: str = "") -> tuple[int, dict | bytes, dict]:
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}, {}
        prompt = body["messages"][-1]["content"]
        with self._lock:
            seen = self.calls[prompt]
            self.calls[prompt] += 1
        status, headers = 200, {}
        if "MODE401" in prompt:
            status = 401
        elif "MODE404" in prompt:
            status = 404
        elif "MODE429" in prompt and not seen:
            status, headers = 429, {"Retry-After": "0.05"}
        elif "MODE500" in prompt and not seen:
            status = 500
        elif "MODEECHO400" in prompt or "MODEECHO500" in prompt:
            status = 400 if "MODEECHO400" in prompt else 500
            with self._lock:
                self.statuses[status] += 1
            return status, {"error": {"message": f"bad request with header {authorization}", "type": "test"}}, {}
        elif "MODEHANG" in prompt or "MODESLOW" in prompt and not seen:
            time.sleep(self.slow)
        elif self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.statuses[status] += 1
        if status != 200:
            return status, {"error": {"message": f"status {status} as asked", "type": "test"}}, headers
        if "MODEALWAYSBAD" in prompt or "MODEBADJSON" in prompt and not seen:
            return 200, b'{"id": "chatcmpl-test", "choices": [{"mess', headers
        if "MODENOCHOICE" in prompt:
            return 200, {"id": "chatcmpl-test", "object": "chat.completion", "choices": []}, headers
        text = self.answer(prompt)
        if "MODEBADUSAGE" in prompt:
            return 200, {"id": "chatcmpl-test", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": "many", "completion_tokens": [3]}}, headers
        return 200, {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(text),
                      "total_tokens": len(prompt) + len(text)},
        }, headers

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":  # the benchmark runs it in its own process: python tests/chat_server.py
    import sys

    with ChatServer() as s:
        print(s.url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin

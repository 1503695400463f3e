"""Start-up time and memory of ``python -m diary_lightning app``: the seconds from the model loaded to the page
served (the app logs both), and the server's RSS before the first request and after N sequential requests
through the /write endpoint (gradio_client).

    python scripts/benchmarks/app_memory.py --model.adapter_path runs/tiny/checkpoints/adapter [--requests 20]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

import psutil
from gradio_client import Client

CHAT = "민지: 오늘 비가 많이 와서 우산 쓰고 학교 갔어\n준호: 우산은 챙겼구나\n민지: 근데 신발이 다 젖었어\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    options, app_args = parser.parse_known_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    app = subprocess.Popen([sys.executable, "-m", "diary_lightning", "app", *app_args, "--port", str(port)],
                           stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in app.stderr:
            lines.append(line)
            if line.startswith("app: serving"):
                break
        else:
            raise SystemExit("the app did not start:\n" + "".join(lines[-30:]))
        print("".join(line for line in lines if line.startswith("app: ")), end="")
        threading.Thread(target=app.stderr.read, daemon=True).start()  # a full pipe would stall the app
        served_after = float(re.search(r"\(([\d.]+) s after the model was loaded", lines[-1])[1])
        process = psutil.Process(app.pid)
        before = process.memory_info().rss
        client = Client(f"http://127.0.0.1:{port}", verbose=False)
        rss = []
        started = time.perf_counter()
        for _ in range(options.requests):
            result = client.predict(chat=CHAT, chat_file=None, writer="", max_new_tokens=64, do_sample=False,
                                    temperature=1.0, compare=True, api_name="/write")
            assert result["error"] is None, result["error"]
            rss.append(process.memory_info().rss)
        elapsed = time.perf_counter() - started
        mib = 2 ** 20
        print(f"page served {served_after:.1f} s after the model was loaded")
        print(f"RSS before the first request {before / mib:.0f} MiB; after request 1 {rss[0] / mib:.0f} MiB; "
              f"after request {len(rss)} {rss[-1] / mib:.0f} MiB ({(rss[-1] - rss[0]) / mib:+.1f} MiB from request 1 "
              f"on); {elapsed / len(rss):.2f} s per request (adapter and base, 64 new tokens at most)")
    finally:
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    main()

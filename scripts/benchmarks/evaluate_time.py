"""How long ``evaluate`` takes beyond generation: the whole command on a split of the shipped benchmark with
diaries already written (a predictions file), in a fresh process, so that imports, Kiwi's load, the scoring of
every system, the bootstrap, the report and the charts all count. Target: under 30 s for the test split on 2 cores.

    python scripts/benchmarks/evaluate_time.py --split test [--systems 1] [--output DIR]

The diaries scored are real diaries of the wrong chat (each item gets the reference of the item after it), so
that style checks, fact and trap matching, ROUGE-L and chrF see diary-length Korean text. ``--output DIR`` keeps
the report: on the dev split, what each metric makes of a fluent diary of the wrong day (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diary_lightning.evaluation.benchmark import load_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test", choices=("dev", "test"))
    parser.add_argument("--systems", type=int, default=1, help="prediction files scored beside reference and baseline")
    parser.add_argument("--output", help="keep evaluate's folder here (default: a temporary one, removed)")
    options = parser.parse_args()
    items = load_benchmark(options.split)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for n in range(options.systems):
            path = Path(tmp) / f"system{n}.jsonl"
            shifted = items[n + 1:] + items[:n + 1]
            path.write_text("".join(json.dumps({"id": item.id, "diary": other.reference}, ensure_ascii=False) + "\n"
                                    for item, other in zip(items, shifted)), encoding="utf-8")
            files.append(str(path))
        out = Path(options.output) if options.output else Path(tmp) / "out"
        command = [sys.executable, "-m", "diary_lightning", "evaluate", "--split", options.split, "--output",
                   str(out), "--predictions", json.dumps(files)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        summary = json.loads((out / "summary.json").read_text())
    scoring = {name: system["scoring_seconds"] for name, system in summary["systems"].items()}
    # CPU seconds beside wall seconds: on a machine shared with other jobs the wall clock mostly measures them.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"split": options.split, "items": len(items), "systems": len(scoring),
                      "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                      "load_average": os.getloadavg()[0],
                      "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                      "wall_seconds": round(seconds, 1), "scoring_seconds": scoring}, indent=1))


if __name__ == "__main__":
    main()

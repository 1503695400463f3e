"""Benchmarks of ``synthesize``: the rules teacher at AI Hub's scale, and the openai teacher's own overhead.

    python scripts/benchmarks/bench_synthesis.py rules --size 280000 --like ../shared/aihub-sample
    python scripts/benchmarks/bench_synthesis.py openai --requests 5000 --concurrency 32

``rules`` writes synthetic dialogues shaped like the sample's (scripts/benchmarks/bench_preprocess.py: speakers,
utterance lengths, summary lengths and topics copied, text random), whose summaries end the way AI Hub's do
(reported speech, speech verbs, plain statements, now and then a speaker code), and runs the real command in a
fresh process: ``python -m diary_lightning synthesize --teacher.backend rules``. It reports the command's wall
and CPU time and, from its JSON summary, the synthesis step alone (rewrite, checks, write) in dialogues/s.

``openai`` starts tests/chat_server.py in its own process (a local server that answers at once) and runs the
openai teacher through the whole path (prompt, HTTP, checks, JSONL) at ``--concurrency``: requests per second
measure the client's own overhead, which a real server's latency hides but must never bound.

A benchmark, not a test: timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's package; bench_preprocess is imported from beside this script

from diary_lightning.synthesis.runner import rejected_path  # noqa: E402

# How AI Hub's summaries end, by share (measured on the sample: about a third reported speech, a fifth speech
# verbs); the words before them are random, so these endings are what the rules teacher works on.
ENDINGS = (("다고 한다.", 25), ("라고 한다.", 5), ("에 대해 이야기한다.", 8), ("자고 한다.", 4), ("냐고 묻는다.", 3),
           ("고 말한다.", 3), ("고 있다.", 10), ("했다.", 20), ("한다.", 15), ("것 같다.", 4), ("했습니다.", 3))


def ending(rng) -> str:
    text = rng.choices([e for e, _ in ENDINGS], weights=[w for _, w in ENDINGS])[0]
    # Now and then a summary names its speaker, as NIKL's do: the code must become "나".
    return (" P01은 " if rng.random() < 0.1 else " ") + text


def bench_rules(args: argparse.Namespace) -> dict:
    from bench_preprocess import generate, shapes, timed

    shape_list = shapes(args.like)
    data = args.workdir / f"data-{args.size}-{args.like.name}"
    if not data.is_dir():
        start = time.perf_counter()
        generate(shape_list, args.size, data, ending=ending)
        print(f"generated {args.size} dialogues in {time.perf_counter() - start:.1f}s: {data}", file=sys.stderr)
    output = args.workdir / f"diaries-{args.size}.jsonl"
    for path in (output, rejected_path(output)):
        path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "diary_lightning", "synthesize", "--config", "configs/tiny.yaml",
               "--data.paths", json.dumps([str(data)]), "--data.topics", "null", "--teacher.backend", "rules",
               "--output", str(output), "--progress", "false"]
    load = os.getloadavg()[0]
    wall, cpu, _, stdout = timed(command, env)
    summary = json.loads(stdout)
    return {"dialogues": args.size, "cores": os.cpu_count(), "load_before": round(load, 1),
            "command_wall_s": round(wall, 1), "command_cpu_s": round(cpu, 1),
            "synthesis_wall_s": summary["wall_s"], "synthesis_dialogues_per_s": summary["dialogues_per_s"],
            "kept": summary["kept"], "rejected_by_check": summary["rejected_by_check"]}


def bench_openai(args: argparse.Namespace) -> dict:
    from diary_lightning.data.records import Dialogue, Turn
    from diary_lightning.synthesis.command import roles_for
    from diary_lightning.synthesis.openai_teacher import OpenAITeacher
    from diary_lightning.synthesis.runner import Synthesis
    from diary_lightning.synthesis.teacher import DEFAULT_PROMPT, DEFAULT_SYSTEM, TeacherConfig

    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "chat_server.py")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        dialogues = [Dialogue(f"b{i:07d}", (Turn("P01", f"오늘 공원에서 {i}분 동안 달렸어"), Turn("P02", "대단하다")),
                              f"오늘 공원에서 {i}분 동안 달렸다.") for i in range(args.requests)]
        args.workdir.mkdir(parents=True, exist_ok=True)
        output = args.workdir / "openai.jsonl"
        for path in (output, rejected_path(output)):
            path.unlink(missing_ok=True)
        teacher = OpenAITeacher(TeacherConfig(backend="openai", model="bench", base_url=url,
                                              concurrency=args.concurrency))
        load = os.getloadavg()[0]
        cpu = time.process_time()
        summary = Synthesis(teacher, output, template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM, roles=roles_for,
                            progress=False).run(dialogues)
        cpu = time.process_time() - cpu
        teacher.close()
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return {"requests": args.requests, "concurrency": args.concurrency, "cores": os.cpu_count(),
            "load_before": round(load, 1), "wall_s": summary["wall_s"], "requests_per_s": summary["dialogues_per_s"],
            "client_cpu_s": round(cpu, 1), "kept": summary["kept"], "failed": summary["failed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="teacher", required=True)
    rules = sub.add_parser("rules")
    rules.add_argument("--size", type=int, default=280_000)
    rules.add_argument("--like", type=Path, default=ROOT / "diary_lightning" / "resources" / "sample_dialogues.json",
                       help="AI Hub file or folder whose shapes to copy (default: the bundled sample)")
    rules.add_argument("--workdir", type=Path, default=Path("runs/bench-synthesis"))
    rules.add_argument("--keep", action="store_true", help="keep the generated data for another run")
    http = sub.add_parser("openai")
    http.add_argument("--requests", type=int, default=5000)
    http.add_argument("--concurrency", type=int, default=32)
    http.add_argument("--workdir", type=Path, default=Path("runs/bench-synthesis"))
    args = parser.parse_args()
    result = bench_rules(args) if args.teacher == "rules" else bench_openai(args)
    if args.teacher == "rules" and not args.keep:
        shutil.rmtree(args.workdir / f"data-{args.size}-{args.like.name}", ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

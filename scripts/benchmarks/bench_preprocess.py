"""Time ``preprocess`` on synthetic dialogues shaped like AI Hub's 한국어 대화 요약, cold and warm.

    python -m diary_lightning.model.tiny --output runs/tiny-model
    python scripts/benchmarks/bench_preprocess.py --sizes 71139 280000 --like ../shared/aihub-sample

Each synthetic dialogue copies the shape of a real one drawn at random (speakers in order, characters
per utterance, characters of the summary, topic), so utterances per dialogue, turns, participants and
lengths follow the real distribution; the text itself is random Hangul words with AI Hub-style
anonymization tokens and ㅋㅋ, never AI Hub's text. The files go into AI Hub's shipped layout
(Training/[라벨]한국어대화요약_train/{topic}.json), one per topic.

``preprocess`` runs as the CLI runs it, in a fresh process: cold with an empty cache, then warm on
the cache the cold run wrote. Each run reports its wall time, its CPU time and the data step alone
(what preprocess logs: read, clean, split, tokenize, write the cache, summarize), without the fixed
cost of starting Python and importing torch and Lightning. A benchmark, not a test: timings depend
on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "diary_lightning" / "resources" / "sample_dialogues.json"

# Syllables of everyday Korean; words are 1-4 of them.
SYLLABLES = ("가 나 다 라 마 바 사 아 자 차 카 타 파 하 고 노 도 로 모 보 소 오 조 구 누 두 루 무 부 수 우 주 "
             "그 느 드 르 므 브 스 으 즈 기 니 디 리 미 비 시 이 지 치 키 해 했 어 요 는 은 을 를 에 서 도 만 "
             "랑 하 고 싶 다 네 게 데 면 서 까 지 진 짜 오 늘 내 일 어 제 밥 먹 었 영 화 친 구 회 사 집 학 교 "
             "좋 아 싫 맛 있 없 왜 뭐 응 음 엄 빠 언 니 형 동 생 선 배 주 말 여 행 날 씨 비 눈 바 람").split()
NOISE = ("ㅋㅋ", "ㅋㅋㅋ", "ㅠㅠ", "ㅎㅎ", "..", "~", "#@이름#", "#@이모티콘#", "#@시스템#사진#", "#@기타#")


def shapes(like: Path) -> list[dict[str, Any]]:
    """The shape of every dialogue in the AI Hub file(s) at ``like``."""
    files = sorted(like.rglob("*.json")) if like.is_dir() else [like]
    out = []
    for path in files:
        for record in json.loads(path.read_text(encoding="utf-8"))["data"]:
            utterances = record["body"]["dialogue"]
            out.append({
                "speakers": [u["participantID"] for u in utterances],
                "chars": [len(u["utterance"]) for u in utterances],
                "summary": len(record["body"]["summary"]),
                "topic": record["header"]["dialogueInfo"]["topic"],
            })
    if not out:
        raise SystemExit(f"no AI Hub dialogues under {like}")
    return out


def text_pool(rng: random.Random, size: int = 2_000_000) -> str:
    """A long run of random words to slice utterances from: far faster than building each one."""
    words = []
    total = 0
    while total < size:
        word = rng.choice(NOISE) if rng.random() < 0.06 else "".join(rng.choices(SYLLABLES, k=rng.randint(1, 4)))
        words.append(word)
        total += len(word) + 1
    return " ".join(words)


def generate(shape_list: list[dict[str, Any]], count: int, out: Path, seed: int = 0,
             ending: Any = lambda rng: "했다.") -> None:
    """Write ``count`` synthetic dialogues under ``out`` in AI Hub's layout, one file per topic; each summary
    closes with ``ending(rng)``."""
    rng = random.Random(seed)
    pool = text_pool(rng)

    def text(n: int) -> str:
        start = rng.randrange(len(pool) - n - 1)
        return pool[start : start + n].strip() or "응"

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for index in range(count):
        shape = rng.choice(shape_list)
        turn, utterances = 0, []
        for u, (speaker, chars) in enumerate(zip(shape["speakers"], shape["chars"])):
            turn += u == 0 or speaker != shape["speakers"][u - 1]
            utterances.append({"utteranceID": f"U{u + 1}", "turnID": f"T{turn}", "participantID": speaker,
                               "date": "2020-08-18", "time": "18:23:00", "utterance": text(chars)})
        participants = sorted(set(shape["speakers"]))
        end = ending(rng)
        summary = text(shape["summary"] - len(end) + 1) + end
        by_topic.setdefault(shape["topic"], []).append({
            "header": {
                "dialogueInfo": {"dialogueID": f"synthetic-{seed}-{index:07d}", "numberOfParticipants": len(participants),
                                 "numberOfUtterances": len(utterances), "numberOfTurns": turn,
                                 "type": "일상 대화", "topic": shape["topic"]},
                "participantsInfo": [{"participantID": p, "gender": "여성", "age": "20대",
                                      "residentialProvince": "서울특별시"} for p in participants],
            },
            "body": {"dialogue": utterances, "summary": summary},
        })
    folder = out / "Training" / "[라벨]한국어대화요약_train"
    from diary_lightning.io.atomic import atomic_directory

    with atomic_directory(out) as tmp:
        (tmp / folder.relative_to(out)).mkdir(parents=True)
        for topic, records in by_topic.items():
            name = topic.replace(" ", "").replace("/", "") + ".json"
            with open(tmp / folder.relative_to(out) / name, "w", encoding="utf-8") as f:
                json.dump({"numberOfItems": len(records), "data": records}, f, ensure_ascii=False)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, float | None, str]:
    """Wall seconds, CPU seconds (user + system, every thread and child) and the data step's own
    seconds as preprocess logs them, and stdout. CPU time is the figure to trust on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(command)}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    step = re.search(r"preprocess: .* in ([0-9.]+)s", done.stderr)
    return elapsed, cpu, float(step.group(1)) if step else None, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[71_139, 280_000], help="dialogues per run")
    parser.add_argument("--like", type=Path, default=None,
                        help="AI Hub file or folder whose shapes to copy (default: the bundled sample)")
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--base_model", default="runs/tiny-model", help="the tiny model: its tokenizer is used")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench-preprocess"))
    args = parser.parse_args()

    like = args.like or BUNDLED
    shape_list = shapes(like)
    load = os.getloadavg()[0]
    print(f"shapes from {like}: {len(shape_list)} dialogues", file=sys.stderr)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    base = [sys.executable, "-m", "diary_lightning", "preprocess", "--config", args.config,
            "--model.base_model", args.base_model, "--data.batch_size", str(args.batch_size),
            "--data.topics", "null"]
    startup, startup_cpu, _, _ = timed([*base, "--help"], env)
    rows = []
    for size in args.sizes:
        data = args.workdir / f"data-{size}-{like.name}"
        if not data.is_dir():
            start = time.perf_counter()
            generate(shape_list, size, data)
            print(f"generated {size} dialogues in {time.perf_counter() - start:.1f}s: {data}", file=sys.stderr)
        cache = args.workdir / f"cache-{size}"
        shutil.rmtree(cache, ignore_errors=True)
        command = [*base, "--data.paths", json.dumps([str(data)]), "--data.cache_dir", str(cache)]
        cold = timed(command, env)
        warm = timed(command, env)
        summary = json.loads(cold[3])
        if json.loads(warm[3]) != summary:
            raise SystemExit("the warm summary differs from the cold one")
        rows.append((size, cold, warm, summary))
        print(f"{size}: cold {cold[0]:.1f}s wall, {cold[1]:.1f}s CPU, step {cold[2]}s; "
              f"warm {warm[0]:.1f}s wall, {warm[1]:.1f}s CPU, step {warm[2]}s", file=sys.stderr)

    print(f"CPU cores: {os.cpu_count()}, load average before: {load:.1f}; startup (imports, CLI parser): "
          f"{startup:.1f}s wall, {startup_cpu:.1f}s CPU, included in the wall and CPU columns")
    print("wall: the whole command; CPU: user + system of every thread; step: the data step alone "
          "(read, clean, split, tokenize, cache, summary), as preprocess logs it")
    header = ("dialogues", "cold wall", "cold CPU", "cold step", "warm wall", "warm CPU", "warm step",
              "dialogues/s", "pad eff", "shuffle")
    print(" ".join(f"{h:>11}" for h in header))
    for size, cold, warm, summary in rows:
        cells = [size, *cold[:3], *warm[:3], size / cold[2] if cold[2] else 0.0,
                 summary["padding_efficiency"], summary["padding_efficiency_shuffle"]]
        print(" ".join(f"{c:>11}" if isinstance(c, int) else f"{c:>11.2f}" for c in cells))
    if len(rows) > 1:
        (n0, c0, *_), (n1, c1, *_) = rows[0], rows[-1]
        print(f"scaling {n0} -> {n1}: dialogues x{n1 / n0:.2f}, cold step x{c1[2] / c0[2]:.2f}, "
              f"cold CPU x{c1[1] / c0[1]:.2f}")

if __name__ == "__main__":
    main()

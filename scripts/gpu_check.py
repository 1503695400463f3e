"""The GPU check behind scripts/gpu_check.sh; standard library only until the requirements are in place.

Stages, each in its own process with its own time limit, so that one that hangs or runs out of memory
still leaves a report of the others:
  1. install what the machine lacks (from ``--wheels``/``DIARY_WHEELS`` without network), keeping its torch;
  2. ``pytest -m cuda``: bf16-mixed fit and predict through the CLI on a tiny model on ``cuda``;
  3. ``scripts/gpu_benchmark.py`` at EEVE-10.8B's shape with random weights, for diary_lightning, then TRL;
  4. one JSON report (``--out``/gpu_check.json) with every stage's result and the ratios of the two sides.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = "gpu_check: no CUDA device here ({}); nothing to check. Run it on a GPU machine."
# Imported names of what the check needs, beside torch: the core requirements and the gpu-check extra.
MODULES = {"lightning": "lightning", "transformers": "transformers", "peft": "peft", "bitsandbytes": "bitsandbytes",
           "datasets": "datasets", "torchmetrics": "torchmetrics", "tensorboard": "tensorboard",
           "jsonargparse": "jsonargparse", "tokenizers": "tokenizers", "safetensors": "safetensors",
           "pytest": "pytest", "hypothesis": "hypothesis", "trl": "trl", "psutil": "psutil", "yaml": "pyyaml",
           "xxhash": "xxhash"}


SHAPES = {
    "eeve": [],  # gpu_benchmark.py's defaults
    "tiny": ["--layers", "2", "--hidden", "64", "--intermediate", "128", "--heads", "2", "--kv-heads", "1",
             "--vocab", "4096", "--positions", "256"],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CUDA tests, the EEVE-shape benchmark against TRL, one JSON report.")
    parser.add_argument("--wheels", default=os.environ.get("DIARY_WHEELS"),
                        help="folder of pre-downloaded wheels to install missing requirements from, offline "
                             "(default: $DIARY_WHEELS; none: pip's index, if the machine can reach it)")
    parser.add_argument("--out", default="runs/gpu-check", help="report, logs and the random base (default: %(default)s)")
    parser.add_argument("--seq-lengths", default="512 1024 2048")
    parser.add_argument("--tokens-per-step", type=int, default=8192,
                        help="one batch per sequence length, of this many tokens (default: %(default)s)")
    parser.add_argument("--skip-benchmark", action="store_true", help="the tests only")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="eeve",
                        help="the benchmark's model: EEVE-10.8B's shape, or a tiny one (default: %(default)s)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="go on without CUDA (the CUDA tests skip): a dry run of the check itself, with --shape tiny")
    return parser.parse_args(argv)


def cuda_status() -> str | None:
    """None when torch sees a CUDA device, else why not."""
    probe = ("import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), "
             "torch.cuda.device_count())")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return "torch is not installed" if "No module named 'torch'" in done.stderr else done.stderr.strip()[-300:]
    version, cuda, available, count = done.stdout.split()
    return None if available == "True" and int(count) > 0 else f"torch {version}, CUDA build {cuda}, no device visible"


def missing_modules() -> list[str]:
    code = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    done = subprocess.run([sys.executable, "-c", code, *MODULES], capture_output=True, text=True, check=True)
    return done.stdout.split()


def requirements() -> list[str]:
    """The project's core requirements and its gpu-check extra, from pyproject.toml, torch left out: the
    check runs under whatever torch the machine has."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    core = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    extra = re.search(r"^gpu-check = \[(.*?)\]", text, re.S | re.M).group(1)
    found = re.findall(r'"([^"]+)"', core + extra)
    return [r for r in dict.fromkeys(found) if not re.match(r"torch\b(?!metrics)", r)]


def install(wheels: str | None, log: Path) -> dict:
    missing = missing_modules()
    if not missing:
        return {"installed": False, "missing": []}
    command = [sys.executable, "-m", "pip", "install", *requirements()]
    if wheels:
        command[4:4] = ["--no-index", "--find-links", str(Path(wheels).resolve())]
    print(f"gpu_check: installing what is missing ({', '.join(MODULES[m] for m in missing)})"
          f"{' from ' + wheels if wheels else ''}", flush=True)
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    still = missing_modules()
    if done.returncode or still:
        hint = ("" if wheels else " Offline? Make a wheel folder (docs/performance.md, 'The wheel folder') "
                "and pass --wheels DIR.")
        raise SystemExit(f"gpu_check: could not install {', '.join(MODULES[m] for m in still) or 'the requirements'} "
                         f"(pip exit {done.returncode}, log {log}).{hint}")
    return {"installed": True, "missing": [MODULES[m] for m in missing], "wheels": wheels}


def run_stage(name: str, command: list[str], log: Path, limit: float) -> dict:
    """Run one stage with output to ``log``; a stage past ``limit`` seconds is killed, not waited for."""
    print(f"gpu_check: {name} (at most {limit:.0f} s, log {log})", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.monotonic() - start
    print(f"gpu_check: {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {seconds:.0f} s", flush=True)
    return {"exit": code, "seconds": round(seconds, 1), "log": str(log)}


def junit_summary(path: Path) -> dict:
    if not path.is_file():
        return {}
    suite = ET.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    cases = {}
    for case in suite.iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        cases[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return {"cases": cases, **{k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}}


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def ratios(ours: dict | None, trl: dict | None) -> list[dict]:
    """diary_lightning / TRL per (sequence length, batch) both sides measured."""
    if not ours or not trl:
        return []
    theirs = {(r["seq_length"], r["batch_size"]): r for r in trl["rows"]}
    return [{"seq_length": r["seq_length"], "batch_size": r["batch_size"],
             "tokens_per_second": r["tokens_per_second"] / t["tokens_per_second"],
             "peak_memory": r["peak_memory_gib"] / t["peak_memory_gib"]}
            for r in ours["rows"] if (t := theirs.get((r["seq_length"], r["batch_size"])))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = cuda_status()
    if why is not None and not args.allow_cpu:
        print(NO_CUDA.format(why))
        return 0
    # The limits keep a GPU run under 8 minutes; a CPU dry run is slower by far, and only tries the check.
    slack = 1 if why is None else 20
    start = time.monotonic()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "install": install(args.wheels, out / "install.log")}
    versions = ("import json, torch, transformers, peft, lightning, bitsandbytes, trl; print(json.dumps({m.__name__: "
                "m.__version__ for m in (torch, transformers, peft, lightning, bitsandbytes, trl)} | {'cuda': "
                "torch.version.cuda, 'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))")
    shown = subprocess.run([sys.executable, "-c", versions], capture_output=True, text=True, check=True).stdout
    report["machine"] = json.loads(shown.strip().splitlines()[-1])
    junit = out / "tests.xml"
    report["tests"] = run_stage("CUDA tests", [sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider",
                                               "-q", "-rs", f"--junitxml={junit}"], out / "tests.log", 100 * slack)
    report["tests"].update(junit_summary(junit))
    if not args.skip_benchmark:
        bench = [sys.executable, "scripts/gpu_benchmark.py", "--workdir", str(out / "random-base"), *SHAPES[args.shape],
                 "--seq-lengths", *args.seq_lengths.split(), "--tokens-per-step", str(args.tokens_per_step),
                 "--steps", "3", "--warmup", "1"]
        for side, flags in (("diary_lightning", []), ("TRL", ["--trl"])):
            result = out / f"benchmark-{side}.json"
            # The first side also builds and saves the random 10.8B base (about 21 GB), which TRL reuses.
            stage = run_stage(f"benchmark, {side}", [*bench, *flags, "--json", str(result)],
                              out / f"benchmark-{side}.log", (190 if side == "diary_lightning" else 130) * slack)
            report[f"benchmark_{side}"] = {**stage, **(read_json(result) or {})}
        report["ratio_diary_lightning_over_trl"] = ratios(read_json(out / "benchmark-diary_lightning.json"),
                                                          read_json(out / "benchmark-TRL.json"))
    report["seconds"] = round(time.monotonic() - start, 1)
    sys.path.insert(0, str(ROOT))
    from diary_lightning.io.atomic import write_text

    write_text(out / "gpu_check.json", json.dumps(report, indent=1))
    print(f"gpu_check: report {out / 'gpu_check.json'} ({report['seconds']:.0f} s)")
    stages = [report["tests"]] + [report[k] for k in report if k.startswith("benchmark_")]
    return 0 if all(s["exit"] == 0 for s in stages) else 1


if __name__ == "__main__":
    sys.exit(main())

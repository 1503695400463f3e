"""The GPU check behind scripts/gpu/gpu_check.sh; standard library only, so that it runs whatever is missing.

One command runs every stage to its end, each in its own process group with its own time limit, all inside
one budget (``--budget``, 530 s by default: a 10-minute device call with room to start and copy back), so
that a stage that fails, hangs or runs out of memory still leaves the others' rows. The EEVE rows come first,
what is optional after them:

  install     what the machine lacks, from ``--wheels`` in one offline pip call (``--no-deps`` into
              WORKDIR/site, the machine's torch untouched), then every package probed in one interpreter
  machine     the versions of what was found, the GPU, and the room for the base (/dev/shm, WORKDIR)
  base        the random base at EEVE-10.8B's shape, built and saved once (/dev/shm when it has room, else
              WORKDIR; never ``--out``)
  benchmark_diary_lightning
              ``gpu_benchmark.py`` with configs/eeve-qlora.yaml's settings (NF4) on lengths drawn from the
              sample; at seq 1024 and 8,192 tokens a step the batch is the recipe's (8), reported as ``recipe``
  tests       ``pytest tests/test_cuda.py -m cuda``: bf16-mixed fit and predict through the CLI on ``cuda``
  predict     diaries per second through the predict path (NF4) at eval batch 32 and 1
  benchmark_bf16
              the same rows with configs/eeve-lora-bf16.yaml (the base unquantized, bf16)
  benchmark_TRL
              the same batches through TRL's SFTTrainer (optional: skipped without trl)

Kiwi cannot travel (kiwipiepy's model is 72 MiB and does not compress): every stage runs with the style
metric off (``model.style_metric: false``), which the report says (``style_metric``).

``gpu_check.json`` is rewritten (temp file, then rename) after every stage and on SIGTERM/SIGINT/SIGHUP or
exit, in WORKDIR and in ``--out`` (``$OUT`` when set), where the logs are copied too (8 files at most).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import signal
import subprocess
import sys
import time
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NO_CUDA = ("gpu_check: no CUDA device here ({}); nothing was checked. On the GPU machine, run it with the "
           "interpreter that holds its CUDA torch (PYTHON=...); --allow-cpu runs the CPU dry run.")


@dataclass(frozen=True)
class Package:
    dist: str  # the name on PyPI, as the wheel's file name spells it once normalized
    module: str  # the name imported
    optional: bool = False  # its absence skips the stages that need it, with the reason, and fails nothing


# What the check imports beside torch: the core requirements and the gpu-check extra, less kiwipiepy (its
# model cannot travel; the check runs with the style metric off). The GPU machine lacks bitsandbytes, datasets
# (with dill and multiprocess), jsonargparse (with its signatures extra) and trl; scripts/gpu/gpu_wheels.sh
# carries exactly those.
PACKAGES = (
    Package("lightning", "lightning"), Package("transformers", "transformers"), Package("peft", "peft"),
    Package("torchmetrics", "torchmetrics"), Package("tensorboard", "tensorboard"),
    Package("tokenizers", "tokenizers"), Package("safetensors", "safetensors"), Package("xxhash", "xxhash"),
    Package("pyyaml", "yaml"), Package("pytest", "pytest"), Package("hypothesis", "hypothesis"),
    Package("psutil", "psutil"), Package("filelock", "filelock"),
    Package("bitsandbytes", "bitsandbytes"), Package("dill", "dill"), Package("multiprocess", "multiprocess"),
    Package("datasets", "datasets"), Package("docstring-parser", "docstring_parser"),
    Package("typeshed-client", "typeshed_client"), Package("jsonargparse", "jsonargparse"),
    Package("trl", "trl", optional=True),
)
VERSIONS = ("torch", "transformers", "peft", "lightning", "bitsandbytes", "datasets", "jsonargparse", "trl")

SHAPES = {
    "eeve": [],  # gpu_benchmark.py's defaults
    "tiny": ["--layers", "2", "--hidden", "64", "--intermediate", "128", "--heads", "2", "--kv-heads", "1",
             "--vocab", "4096", "--positions", "256"],
}
# Per shape: the sequence lengths and tokens per step of the training rows, and predict's flags (the tiny
# model's diaries are cut short: a CPU dry run tries the path, it measures nothing worth the minutes).
ROWS = {"eeve": ("512 1024 2048", 8192, []), "tiny": ("32 64", 128, ["--max-new-tokens", "16"])}
# Seconds per stage on one H100/H200, inside the 530 s budget: each is the stage's fixed cost measured in the
# CPU rehearsal (scripts/gpu/rehearse.sh: imports, Lightning, pytest; docs/performance.md, "Time limits") plus
# the GPU work estimated from its size, with a margin of about 1.5. No GPU has run it yet. A stage gets the
# smaller of its limit and what the budget leaves; the last ones get what is left, rows kept as they come.
#   base: 10.8B bf16 random weights initialised on the GPU, 21.6 GB written to /dev/shm at >= 1 GB/s
#   benchmark_*: the base loaded (NF4: read and quantized, ~40-60 s; bf16: ~20 s), the matmul peak, then
#     3 sequence lengths x 4 steps of 8,192 tokens (~2-3 s each in NF4)
#   predict: the NF4 load, then 32 diaries at batch 32 and 2 at batch 1, max_new_tokens each
LIMITS = {"install": 60, "machine": 30, "base": 90, "benchmark_diary_lightning": 150, "tests": 90,
          "predict": 120, "benchmark_bf16": 110, "benchmark_TRL": 150}
RECIPE_ROW = (1024, 8)  # configs/eeve-qlora.yaml: data.max_length 1024, data.batch_size 8
# Why the report holds no speed-up over the seed's recipe: its 12.9 s/step was not measured like these rows.
NO_SEED_SPEEDUP = ("not computed: the seed's 12.9 s/step (configs/eeve-qlora-seed.yaml) was measured on real "
                   "dialogues and the real EEVE weights at batch 1 x 8 accumulated, these rows on random ids and "
                   "random weights at batch 8; compare the two recipes on one machine with the same data instead")
STYLE_METRIC = ("off (model.style_metric: false): Kiwi cannot travel to the GPU machine, its model is 72 MiB "
                "and does not compress; diaries are generated and ROUGE-scored, their style is not checked")
# Files copied to --out: the report and these logs ($OUT brings back at most 8 files).
LOGS = ("install.log", "tests.log", "base.log", "benchmark_diary_lightning.log", "predict.log", "benchmark_bf16.log",
        "benchmark_TRL.log")
LOG_TAIL = 4 * 2**20  # bytes of each log copied: $OUT brings back at most 16 MiB a file


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CUDA tests, the EEVE-shape benchmark against TRL, one JSON report.")
    parser.add_argument("--wheels", default=os.environ.get("DIARY_WHEELS"),
                        help="folder of wheels (scripts/gpu/gpu_wheels.sh) to install what is missing from, offline "
                             "(default: $DIARY_WHEELS; none: nothing is installed)")
    parser.add_argument("--workdir", default=os.environ.get("DIARY_GPU_WORKDIR", "/tmp/diary-gpu-check"),
                        help="the random base, installed packages and logs (default: %(default)s)")
    parser.add_argument("--out", default=os.environ.get("OUT"),
                        help="where gpu_check.json and the logs are copied after every stage, never the base "
                             "(default: $OUT; none: only WORKDIR)")
    parser.add_argument("--budget", type=float, default=530,
                        help="seconds for the whole check; a stage gets the smaller of its own limit and what is "
                             "left, and one with nothing left is skipped (default: %(default)s)")
    parser.add_argument("--seq-lengths", help="default: 512 1024 2048 (--shape tiny: 32 64)")
    parser.add_argument("--tokens-per-step", type=int,
                        help="one batch per sequence length, of this many tokens (default: 8192; --shape tiny: 128)")
    parser.add_argument("--skip-benchmark", action="store_true", help="the install and the tests only")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="eeve",
                        help="the benchmark's model: EEVE-10.8B's shape, or a tiny one (default: %(default)s)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="go on without CUDA (the CUDA tests skip): a dry run of the check itself, with --shape "
                             "tiny; the time limits are then 20 times longer")
    parser.add_argument("--base-dir", default=os.environ.get("DIARY_GPU_BASE_DIR"),
                        help="where the random base is written (default: /dev/shm when it has room for it, "
                             "else WORKDIR)")
    args = parser.parse_args(argv)
    seqs, tokens, _ = ROWS[args.shape]
    args.seq_lengths = args.seq_lengths or seqs
    args.tokens_per_step = args.tokens_per_step or tokens
    return args


# -- the report: written whole after every change, whatever happens next -------------------------------------
class Report:
    """``gpu_check.json`` in ``workdir``, and a copy of it and the logs in ``out``; each write replaces the file
    through a temporary one, so a reader (or a kill) never sees half of it."""

    def __init__(self, workdir: Path, out: Path | None) -> None:
        self.workdir, self.out = workdir, out
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": False,
                                     "stages": {}}
        self.start = time.monotonic()

    def stage(self, name: str, result: dict[str, Any]) -> dict[str, Any]:
        self.data["stages"][name] = result
        self.save()
        return result

    def save(self) -> None:
        self.data["seconds"] = round(time.monotonic() - self.start, 1)
        text = json.dumps(self.data, indent=1, default=str)
        for folder in filter(None, (self.workdir, self.out)):
            folder.mkdir(parents=True, exist_ok=True)
            _replace(folder / "gpu_check.json", text.encode())
        if self.out is not None and self.out.resolve() != self.workdir.resolve():
            for name in LOGS:
                log = self.workdir / name
                if log.is_file():
                    with log.open("rb") as f:
                        f.seek(max(0, log.stat().st_size - LOG_TAIL))
                        _replace(self.out / name, f.read())


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- stages ------------------------------------------------------------------------------------------------------
class Check:
    """Runs stages one after another inside one budget; a signal or exit still writes the report."""

    def __init__(self, report: Report, budget: float, slack: float = 1.0, env: dict[str, str] | None = None,
                 handle_signals: bool = True) -> None:
        self.report, self.budget, self.slack = report, budget, slack
        self.env = env if env is not None else dict(os.environ)
        self.child: subprocess.Popen | None = None
        self.current: str | None = None
        if handle_signals:  # off only where the check runs inside another program (its tests)
            atexit.register(self.report.save)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._kill_child()
        why = f"interrupted by {signal.Signals(signum).name}"
        if self.current:
            self.report.data["stages"][self.current] = {**self.report.data["stages"].get(self.current, {}),
                                                        "status": "interrupted", "detail": why}
        self.report.data["interrupted"] = why
        self.report.save()
        os._exit(128 + signum)

    def _kill_child(self) -> None:
        if self.child is not None and self.child.poll() is None:
            try:
                os.killpg(self.child.pid, signal.SIGKILL)  # the stage and every process it started
            except ProcessLookupError:
                pass
            self.child.wait()

    def left(self) -> float:
        return self.budget * self.slack - (time.monotonic() - self.report.start)

    def limit(self, name: str) -> float:
        return min(LIMITS.get(name, 60) * self.slack, self.left())

    def skip(self, name: str, why: str) -> dict[str, Any]:
        print(f"gpu_check: {name}: skipped: {why}", flush=True)
        return self.report.stage(name, {"status": "skipped", "detail": why})

    def run(self, name: str, command: list[str], log: Path, limit: float | None = None) -> dict[str, Any]:
        """Run one stage, output to ``log``; past its limit it is killed with every process it started."""
        limit = self.limit(name) if limit is None else limit
        if self.left() < 5:
            return self.skip(name, f"no time left in the {self.budget:.0f} s budget")
        print(f"gpu_check: {name} (at most {limit:.0f} s, log {log.name})", flush=True)
        self.current = name
        self.report.stage(name, {"status": "running", "limit": round(limit), "log": log.name})
        start = time.monotonic()
        with log.open("w") as out:
            self.child = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
            try:
                code: int | None = self.child.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                self._kill_child()
                code = None
        self.current, self.child = None, None
        seconds = round(time.monotonic() - start, 1)
        status = "timeout" if code is None else "ok" if code == 0 else "failed"
        result = {"status": status, "exit": code, "seconds": seconds, "limit": round(limit), "log": log.name}
        if status != "ok":
            result["detail"] = _tail(log)
        print(f"gpu_check: {name}: {status} in {seconds:.0f} s", flush=True)
        return self.report.stage(name, result)


def _tail(log: Path, lines: int = 12) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- install and probe, one package at a time ------------------------------------------------------------------
_PROBE = r"""
import importlib, importlib.metadata as md, json, sys

def unmet_requirements(dist):
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return []
    unmet = []
    for text in md.requires(dist) or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            found = md.version(req.name)
        except md.PackageNotFoundError:
            unmet.append(f"{req} (absent)"); continue
        if req.specifier and not req.specifier.contains(found, prereleases=True):
            unmet.append(f"{req} (found {found})")
    return unmet

found = {}
for pair in sys.argv[1:]:
    dist, module = pair.split("=")
    try:
        importlib.import_module(module)
    except BaseException as e:  # an import can fail in any way: each is reported, none stops the others
        found[dist] = {"ok": False, "error": f"{type(e).__name__}: {e}"[-400:]}
        continue
    try:
        version = md.version(dist)
    except md.PackageNotFoundError:
        version = None
    found[dist] = {"ok": True, "version": version, "unmet": unmet_requirements(dist)}
print(json.dumps(found))
"""


def probe_all(packages: tuple[Package, ...] | list[Package], env: dict[str, str],
              timeout: float = 300) -> dict[str, dict[str, Any]]:
    """Import each of ``packages`` in one fresh interpreter (torch is imported once, by the first that needs it),
    each in its own try: its version and the requirements this environment does not meet (wheels are installed
    without pip's dependency check), or why it does not import."""
    if not packages:
        return {}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, *(f"{p.dist}={p.module}" for p in packages)],
                              capture_output=True, text=True, env=env, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        return {p.dist: {"ok": False, "error": f"the probe ran past its {timeout:.0f} s"} for p in packages}
    lines = done.stdout.strip().splitlines()
    if lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    # The interpreter itself died (a crash inside an import): probe one at a time to find which.
    if len(packages) > 1:
        return {k: v for p in packages for k, v in probe_all([p], env, timeout).items()}
    why = done.stderr.strip()[-400:] or f"exit {done.returncode}"
    return {packages[0].dist: {"ok": False, "error": why}}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(wheels: Path | None, dist: str) -> Path | None:
    if wheels is None or not wheels.is_dir():
        return None
    found = sorted(p for p in wheels.glob("*.whl") if _normalize(p.name.split("-")[0]) == _normalize(dist))
    return found[-1] if found else None


def install(packages: tuple[Package, ...], wheels: Path | None, site: Path, env: dict[str, str],
            log: Path, limit: float = 600) -> dict[str, Any]:
    """One row per package: present, installed (from which wheel), or why it is missing. What is missing is
    installed in one offline pip call (``--no-deps --target``: pip never touches the machine's torch or anything
    else already there), or one call per wheel where that one fails, so that a bad wheel costs only itself;
    then everything is probed in one interpreter. The whole stage stays inside ``limit`` seconds."""
    deadline = time.monotonic() + limit
    left = lambda: deadline - time.monotonic()  # noqa: E731
    rows: dict[str, Any] = {}
    before = probe_all(packages, env, left())  # one interpreter for what is there already
    todo: dict[str, Path] = {}
    for package in packages:
        found = before[package.dist]
        if found["ok"]:
            rows[package.dist] = {"status": "present", "version": found["version"]}
            continue
        wheel = find_wheel(wheels, package.dist)
        if wheel is None:
            where = f"no {package.dist} wheel in {wheels}" if wheels else "no --wheels folder given"
            rows[package.dist] = {"status": "skipped" if package.optional else "missing",
                                  "detail": f"{found['error']}; {where}"}
        else:
            todo[package.dist] = wheel
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
           "--disable-pip-version-check", "--upgrade", "--target", str(site)]
    failed: dict[str, str] = {}
    with log.open("a") as out:
        def pip_install(names: list[str]) -> str | None:
            out.write(f"\n== {' '.join(todo[n].name for n in names)}\n")
            out.flush()
            try:
                done = subprocess.run([*pip, *(str(todo[n]) for n in names)], stdout=out, stderr=subprocess.STDOUT,
                                      env=env, timeout=max(left(), 1))
            except subprocess.TimeoutExpired:
                return "pip ran past the install stage's time limit"
            return None if done.returncode == 0 else f"pip exit {done.returncode}"

        if todo and pip_install(list(todo)) is not None:
            for name in todo:  # find the wheel that failed: each on its own
                if (alone := pip_install([name])) is not None:
                    failed[name] = alone
    ours = [p for p in packages if p.dist in todo]
    after = probe_all([p for p in ours if p.dist not in failed], env, left())
    for package in ours:
        found = after.get(package.dist) or {"ok": False, "error": failed.get(package.dist, "not probed")}
        wheel = todo[package.dist].name
        if found["ok"]:
            rows[package.dist] = {"status": "installed", "version": found["version"], "wheel": wheel}
            if found.get("unmet"):
                rows[package.dist]["unmet"] = found["unmet"]
        else:
            rows[package.dist] = {"status": "skipped" if package.optional else "failed", "wheel": wheel,
                                  "detail": found["error"]}
    return {p.dist: rows[p.dist] for p in packages}


def missing_required(rows: dict[str, Any]) -> list[str]:
    return [dist for dist, row in rows.items() if row["status"] in ("missing", "failed")]


def machine(env: dict[str, str], rows: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """Python, torch, the GPU; the versions of :data:`VERSIONS` as the install stage found them (its probe
    imported each already: a second interpreter importing them again would cost as much)."""
    code = ("import json, platform, sys, torch; print(json.dumps({'python': platform.python_version(), "
            "'interpreter': sys.executable, 'torch_version': torch.__version__, 'cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name(0) "
            "if torch.cuda.is_available() else None, 'gpu_memory_gib': torch.cuda.get_device_properties(0)"
            ".total_memory / 2**30 if torch.cuda.is_available() else None}))")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
        info: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {
            "error": done.stderr.strip()[-400:]}
    except subprocess.TimeoutExpired:
        info = {"error": f"torch did not answer in {timeout:.0f} s"}
    for name in VERSIONS[1:]:
        row = rows.get(name, {})
        info[name] = row.get("version") or f"not importable: {row.get('detail', 'not probed')[-200:]}"
    info["torch"] = info.pop("torch_version", None)
    return info


def cuda_status() -> str | None:
    """None when this interpreter's torch sees a CUDA device, else why not (naming the interpreter)."""
    probe_code = ("import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), "
                  "torch.cuda.device_count())")
    done = subprocess.run([sys.executable, "-c", probe_code], capture_output=True, text=True)
    if done.returncode != 0:
        return (f"{sys.executable} has no torch" if "No module named 'torch'" in done.stderr
                else done.stderr.strip()[-300:])
    version, cuda, available, count = done.stdout.split()
    return None if available == "True" and int(count) > 0 else (
        f"{sys.executable}: torch {version}, CUDA build {cuda}, no device visible")


# Room the base needs beside its weights (tokenizer, index, what /dev/shm's other users hold), as a share.
BASE_MARGIN = 1.15


def base_dir(args: argparse.Namespace, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Where the random base goes: ``--base-dir``, else /dev/shm when it has room for the weights (memory:
    a tmpfs writes at memory speed and the 64 GiB disk may be the overlay the image fills), else WORKDIR."""
    weights = 2 * base_parameters(SHAPES[args.shape])  # bf16
    room = {"base_bytes": weights}
    if args.base_dir:
        return Path(args.base_dir).resolve(), {**room, "why": "--base-dir"}
    shm = Path("/dev/shm")
    for folder in (shm, workdir):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        room[f"free_bytes {folder}"] = free
        if free >= weights * BASE_MARGIN:
            chosen = folder / "diary-gpu-check-base" if folder == shm else workdir / "random-base"
            return chosen, {**room, "why": f"{folder} has room for {weights * BASE_MARGIN / 2**30:.1f} GiB"}
    return workdir / "random-base", {**room, "why": "neither /dev/shm nor WORKDIR reported room; WORKDIR tried"}


def base_parameters(shape: list[str]) -> int:
    """The parameter count of the Llama gpu_benchmark.py builds for ``shape`` (its flags; EEVE's by default)."""
    flags = {"layers": 48, "hidden": 4096, "intermediate": 14336, "heads": 32, "kv_heads": 8, "vocab": 40960}
    flags.update({k.lstrip("-").replace("-", "_"): int(v) for k, v in zip(shape[::2], shape[1::2])})
    hidden, kv = flags["hidden"], flags["hidden"] // flags["heads"] * flags["kv_heads"]
    layer = hidden * (2 * hidden + 2 * kv) + 3 * hidden * flags["intermediate"] + 2 * hidden
    return flags["layers"] * layer + 2 * flags["vocab"] * hidden + hidden


def junit_summary(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        suite = ET.parse(path).getroot()
    except ET.ParseError:
        return {}
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    cases = {}
    for case in suite.iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        cases[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return {"cases": cases, **{k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}}


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def ratios(ours: dict | None, trl: dict | None) -> list[dict[str, Any]]:
    """diary_lightning / TRL per (sequence length, batch) both sides measured."""
    if not ours or not trl:
        return []
    theirs = {(r["seq_length"], r["batch_size"]): r for r in trl.get("rows", [])}
    return [{"seq_length": r["seq_length"], "batch_size": r["batch_size"],
             "tokens_per_second": r["tokens_per_second"] / t["tokens_per_second"],
             "peak_memory": r["peak_memory_gib"] / t["peak_memory_gib"]}
            for r in ours.get("rows", []) if (t := theirs.get((r["seq_length"], r["batch_size"])))]


def benchmark_stages(check: Check, args: argparse.Namespace, rows: dict[str, Any], tests: Any) -> None:
    """The base, the NF4 rows, then ``tests`` (a callable running the CUDA tests), then what is optional."""
    workdir, report = check.report.workdir, check.report
    where, room = base_dir(args, workdir)
    report.data["base"] = {"path": str(where), **room}
    common = [sys.executable, "scripts/benchmarks/gpu_benchmark.py", "--workdir", str(where), *SHAPES[args.shape]]
    seqs = args.seq_lengths.split()
    # The lengths to come are checked against the base's positions as it is built, not minutes later.
    base = check.run("base", [*common, "--seq-lengths", *seqs, "--build-only"], workdir / "base.log")
    later = ("benchmark_diary_lightning", "predict", "benchmark_bf16", "benchmark_TRL")
    if base["status"] != "ok":
        for name in later:
            check.skip(name, f"no random base (the base stage: {base['status']})")
        tests()
        return
    train = ["--seq-lengths", *seqs, "--tokens-per-step", str(args.tokens_per_step), "--steps", "3", "--warmup", "1"]
    sides = {
        "benchmark_diary_lightning": train,
        "predict": ["--seq-lengths", *seqs, "--predict-batches", "32", "1", *ROWS[args.shape][2]],
        "benchmark_bf16": [*train, "--config", "configs/eeve-qlora.yaml", "configs/eeve-lora-bf16.yaml"],
        "benchmark_TRL": [*train, "--trl"],
    }
    for name, flags in sides.items():
        trl = rows.get("trl", {})
        if name == "benchmark_TRL" and trl.get("status") not in ("present", "installed"):
            check.skip(name, f"TRL is not importable: {trl.get('detail', 'not probed')}")
            continue
        result = workdir / f"{name}.json"
        result.unlink(missing_ok=True)
        stage = check.run(name, [*common, *flags, "--json", str(result)], workdir / f"{name}.log")
        # Rows measured before a failure or a timeout are kept: gpu_benchmark.py writes them one by one.
        report.stage(name, {**stage, **(read_json(result) or {})})
        if name == "benchmark_diary_lightning":
            tests()  # the EEVE rows first: the CUDA tests, then what is optional
    stages = report.data["stages"]
    ours = stages.get("benchmark_diary_lightning") or {}
    report.data["ratio_diary_lightning_over_trl"] = ratios(ours, stages.get("benchmark_TRL"))
    report.data["ratio_bf16_over_nf4"] = ratios(stages.get("benchmark_bf16"), ours)
    recipe = [r for r in ours.get("rows", []) if (r["seq_length"], r["batch_size"]) == RECIPE_ROW]
    if recipe:
        report.data["recipe"] = {**recipe[0], "speedup_over_seed": NO_SEED_SPEEDUP}
    report.save()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = cuda_status()
    if why is not None and not args.allow_cpu:
        # On a GPU machine this is the wrong interpreter or a broken driver: a call that measured nothing must
        # not read as a success.
        print(NO_CUDA.format(why), file=sys.stderr)
        return 3
    workdir = Path(args.workdir).resolve()
    out = Path(args.out).resolve() if args.out else None
    if out is not None and (out == workdir or workdir in out.parents):
        raise SystemExit(f"gpu_check: --out {out} lies inside --workdir {workdir}: the base would be copied back")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in (*LOGS, "tests.xml"):
        (workdir / name).unlink(missing_ok=True)
    site = workdir / "site"
    # Offline: the machine reaches nothing, and a name mistaken for a hub id would wait out the hub's retries.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(site), os.environ.get("PYTHONPATH")]))}
    report = Report(workdir, out)
    report.data["style_metric"] = STYLE_METRIC
    # The limits keep a GPU run inside the budget; a CPU dry run is slower by far, and only tries the check.
    check = Check(report, args.budget, slack=1 if why is None else 20, env=env)
    wheels = Path(args.wheels).resolve() if args.wheels else None

    check.current = "install"
    limit = check.limit("install")
    print(f"gpu_check: install (at most {limit:.0f} s, log install.log)", flush=True)
    start = time.monotonic()
    rows = install(PACKAGES, wheels, site, env, workdir / "install.log", limit)
    check.current = None
    missing = missing_required(rows)
    installed = report.stage("install", {"status": "failed" if missing else "ok",
                                         "seconds": round(time.monotonic() - start, 1), "limit": round(limit),
                                         "packages": rows, **({"detail": f"missing: {', '.join(missing)}"} if missing else {})})
    print(f"gpu_check: install: {installed['status']} in {installed['seconds']:.0f} s", flush=True)
    start = time.monotonic()
    report.stage("machine", {"status": "ok", **machine(env, rows, check.limit("machine")),
                             "seconds": round(time.monotonic() - start, 1)})

    def tests() -> None:
        if missing:
            check.skip("tests", f"missing required packages: {', '.join(missing)}")
            return
        junit = workdir / "tests.xml"
        # The CUDA tests' file alone: a collection error elsewhere in the suite cannot stop them.
        result = check.run("tests", [sys.executable, "-m", "pytest", "tests/test_cuda.py", "-m", "cuda",
                                     "-p", "no:cacheprovider", "-q", "-rs", f"--junitxml={junit}"],
                           workdir / "tests.log")
        report.stage("tests", {**result, **junit_summary(junit)})

    if args.skip_benchmark:
        tests()
    elif missing:
        tests()
        for name in ("base", "benchmark_diary_lightning", "predict", "benchmark_bf16", "benchmark_TRL"):
            check.skip(name, f"missing required packages: {', '.join(missing)}")
    else:
        benchmark_stages(check, args, rows, tests)
    report.data["finished"] = True
    report.save()
    print(f"gpu_check: report {workdir / 'gpu_check.json'}{f' and {out}' if out else ''} ({report.data['seconds']:.0f} s)")
    stages = report.data["stages"].values()
    return 0 if all(s["status"] in ("ok", "skipped") for s in stages) and not missing else 1


if __name__ == "__main__":
    sys.exit(main())

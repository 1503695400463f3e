"""The GPU check behind scripts/gpu/gpu_check.sh; standard library only, so that it runs whatever is missing.

One command runs every stage to its end, each in its own process group with its own time limit, all inside
one budget (``--budget``, 470 s by default: under 8 minutes on one H200), so that a stage that fails, hangs
or runs out of memory still leaves the others' rows:

  install     each package the machine lacks, probed and installed on its own from ``--wheels`` (offline,
              ``--no-deps`` into WORKDIR/site, the machine's torch untouched); TRL is optional
  machine     the versions of what was found, each probed on its own
  tests       ``pytest -m cuda``: bf16-mixed fit and predict through the CLI on a tiny model on ``cuda``
  base        the random base at EEVE-10.8B's shape, built and saved once (WORKDIR, never ``--out``)
  benchmark_diary_lightning, benchmark_TRL
              ``gpu_benchmark.py`` with configs/eeve-qlora.yaml's settings on lengths drawn from the sample, the
              same batches through diary_lightning and through TRL's SFTTrainer; at seq 1024 and 8,192 tokens
              a step the batch is the recipe's (8 at max_length 1024), reported as ``recipe`` beside the seed's
              12.9 s/step

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
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NO_CUDA = "gpu_check: no CUDA device here ({}); nothing to check. Run it on a GPU machine."


@dataclass(frozen=True)
class Package:
    dist: str  # the name on PyPI, as the wheel's file name spells it once normalized
    module: str  # the name imported
    optional: bool = False  # its absence skips the stages that need it, with the reason, and fails nothing


# What the check imports beside torch: the core requirements and the gpu-check extra. The GPU machine lacks
# bitsandbytes, datasets (with dill and multiprocess), jsonargparse (with its signatures extra) and trl;
# scripts/gpu/gpu_wheels.sh carries exactly those.
PACKAGES = (
    Package("lightning", "lightning"), Package("transformers", "transformers"), Package("peft", "peft"),
    Package("torchmetrics", "torchmetrics"), Package("tensorboard", "tensorboard"),
    Package("tokenizers", "tokenizers"), Package("safetensors", "safetensors"), Package("xxhash", "xxhash"),
    Package("pyyaml", "yaml"), Package("pytest", "pytest"), Package("hypothesis", "hypothesis"),
    Package("psutil", "psutil"),
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
# Seconds per stage on one H200 (estimated: no GPU has run it yet), inside the 470 s budget: install (a 43 MB
# bitsandbytes wheel, probes) ~40, tests 90, the base (10.8B random bf16 weights initialised on the GPU, 21.6 GB
# written) 90, then two benchmark stages that each load the base in NF4 (~40-60 s) before 3 x 4 steps of
# 8,192 tokens (~2 s each). The last stage gets what the budget leaves; its rows are kept as they come.
LIMITS = {"install": 60, "machine": 30, "tests": 90, "base": 90, "benchmark_diary_lightning": 120,
          "benchmark_TRL": 110}
RECIPE_ROW = (1024, 8)  # configs/eeve-qlora.yaml: data.max_length 1024, data.batch_size 8
SEED_SECONDS_PER_STEP = 12.9  # configs/eeve-qlora-seed.yaml (batch 1 x 8 accumulated), measured before issue 21
# Files copied to --out: the report and these logs ($OUT brings back at most 8 files).
LOGS = ("install.log", "tests.log", "base.log", "benchmark_diary_lightning.log", "benchmark_TRL.log", "tests.xml")
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
    parser.add_argument("--budget", type=float, default=470,
                        help="seconds for the whole check; a stage gets the smaller of its own limit and what is "
                             "left, and one with nothing left is skipped (default: %(default)s)")
    parser.add_argument("--seq-lengths", default="512 1024 2048")
    parser.add_argument("--tokens-per-step", type=int, default=8192,
                        help="one batch per sequence length, of this many tokens (default: %(default)s)")
    parser.add_argument("--skip-benchmark", action="store_true", help="the install and the tests only")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="eeve",
                        help="the benchmark's model: EEVE-10.8B's shape, or a tiny one (default: %(default)s)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="go on without CUDA (the CUDA tests skip): a dry run of the check itself, with --shape "
                             "tiny; the time limits are then 20 times longer")
    return parser.parse_args(argv)


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


def probe_all(packages: tuple[Package, ...] | list[Package], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Import each of ``packages`` in one fresh interpreter, each in its own try: its version and the
    requirements this environment does not meet (wheels are installed without pip's dependency check), or
    why it does not import."""
    if not packages:
        return {}
    done = subprocess.run([sys.executable, "-c", _PROBE, *(f"{p.dist}={p.module}" for p in packages)],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = done.stdout.strip().splitlines()
    if lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    # The interpreter itself died (a crash inside an import): probe one at a time to find which.
    if len(packages) > 1:
        return {k: v for p in packages for k, v in probe_all([p], env).items()}
    why = done.stderr.strip()[-400:] or f"exit {done.returncode}"
    return {packages[0].dist: {"ok": False, "error": why}}


def probe(package: Package, env: dict[str, str]) -> dict[str, Any]:
    """:func:`probe_all` of one package, in an interpreter of its own."""
    return probe_all([package], env)[package.dist]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(wheels: Path | None, dist: str) -> Path | None:
    if wheels is None or not wheels.is_dir():
        return None
    found = sorted(p for p in wheels.glob("*.whl") if _normalize(p.name.split("-")[0]) == _normalize(dist))
    return found[-1] if found else None


def install(packages: tuple[Package, ...], wheels: Path | None, site: Path, env: dict[str, str],
            log: Path) -> dict[str, Any]:
    """One row per package: present, installed (from which wheel), or why it is missing. Each is installed and
    probed on its own, so one bad wheel costs only what needs it. Installed with ``--no-deps --target``: pip
    never touches the machine's torch or anything else already there."""
    rows: dict[str, Any] = {}
    before = probe_all(packages, env)  # one interpreter for what is there already: a probe costs seconds
    with log.open("a") as out:
        for package in packages:
            found = before[package.dist]
            if found["ok"]:
                rows[package.dist] = {"status": "present", "version": found["version"]}
                continue
            wheel = find_wheel(wheels, package.dist)
            if wheel is None:
                where = f"no {package.dist} wheel in {wheels}" if wheels else "no --wheels folder given"
                status = "skipped" if package.optional else "missing"
                rows[package.dist] = {"status": status, "detail": f"{found['error']}; {where}"}
                continue
            out.write(f"\n== {wheel.name}\n")
            out.flush()
            done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
                                   "--disable-pip-version-check", "--upgrade", "--target", str(site), str(wheel)],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
            after = probe(package, env) if done.returncode == 0 else {"ok": False, "error": f"pip exit {done.returncode}"}
            if after["ok"]:
                rows[package.dist] = {"status": "installed", "version": after["version"], "wheel": wheel.name}
            else:
                rows[package.dist] = {"status": "skipped" if package.optional else "failed", "wheel": wheel.name,
                                      "detail": after["error"]}
    # Requirements checked once everything is in: a wheel installed early may need one installed later.
    installed = [p for p in packages if rows[p.dist]["status"] == "installed"]
    for dist, after in probe_all(installed, env).items():
        if after.get("unmet"):
            rows[dist]["unmet"] = after["unmet"]
    return rows


def missing_required(rows: dict[str, Any]) -> list[str]:
    return [dist for dist, row in rows.items() if row["status"] in ("missing", "failed")]


def machine(env: dict[str, str]) -> dict[str, Any]:
    code = ("import json, torch; print(json.dumps({'cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name(0) "
            "if torch.cuda.is_available() else None, 'python': __import__('platform').python_version()}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    info: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {
        "error": done.stderr.strip()[-400:]}
    for name, found in probe_all([Package(name, name) for name in VERSIONS], env).items():
        info[name] = found["version"] if found["ok"] else f"not importable: {found['error'][-200:]}"
    return info


def cuda_status() -> str | None:
    """None when torch sees a CUDA device, else why not."""
    probe_code = ("import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), "
                  "torch.cuda.device_count())")
    done = subprocess.run([sys.executable, "-c", probe_code], capture_output=True, text=True)
    if done.returncode != 0:
        return "torch is not installed" if "No module named 'torch'" in done.stderr else done.stderr.strip()[-300:]
    version, cuda, available, count = done.stdout.split()
    return None if available == "True" and int(count) > 0 else f"torch {version}, CUDA build {cuda}, no device visible"


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


def benchmark_stages(check: Check, args: argparse.Namespace, rows: dict[str, Any]) -> None:
    workdir, report = check.report.workdir, check.report
    common = [sys.executable, "scripts/benchmarks/gpu_benchmark.py", "--workdir", str(workdir / "random-base"),
              *SHAPES[args.shape]]
    seqs = args.seq_lengths.split()
    # The lengths to come are checked against the base's positions as it is built, not minutes later.
    base = check.run("base", [*common, "--seq-lengths", *seqs, "--build-only"], workdir / "base.log")
    if base["status"] != "ok":
        for name in ("benchmark_diary_lightning", "benchmark_TRL"):
            check.skip(name, f"no random base (the base stage: {base['status']})")
        return
    sides = {"benchmark_diary_lightning": ["--seq-lengths", *seqs, "--tokens-per-step", str(args.tokens_per_step),
                                           "--steps", "3", "--warmup", "1"]}
    sides["benchmark_TRL"] = [*sides["benchmark_diary_lightning"], "--trl"]
    for name, flags in sides.items():
        trl = rows.get("trl", {})
        if name == "benchmark_TRL" and trl.get("status") not in ("present", "installed"):
            check.skip(name, f"TRL is not importable: {trl.get('detail', 'not probed')}")
            continue
        result = workdir / f"{name}.json"
        stage = check.run(name, [*common, *flags, "--json", str(result)], workdir / f"{name}.log")
        # Rows measured before a failure or a timeout are kept: gpu_benchmark.py writes them one by one.
        report.stage(name, {**stage, **(read_json(result) or {})})
    ours = report.data["stages"].get("benchmark_diary_lightning") or {}
    report.data["ratio_diary_lightning_over_trl"] = ratios(ours, report.data["stages"].get("benchmark_TRL"))
    recipe = [r for r in ours.get("rows", []) if (r["seq_length"], r["batch_size"]) == RECIPE_ROW]
    if recipe:
        report.data["recipe"] = {**recipe[0], "seed_seconds_per_step": SEED_SECONDS_PER_STEP,
                                 "speedup_over_seed": SEED_SECONDS_PER_STEP / recipe[0]["seconds_per_step"]}
    report.save()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = cuda_status()
    if why is not None and not args.allow_cpu:
        print(NO_CUDA.format(why))
        return 0
    workdir = Path(args.workdir).resolve()
    out = Path(args.out).resolve() if args.out else None
    if out is not None and (out == workdir or workdir in out.parents):
        raise SystemExit(f"gpu_check: --out {out} lies inside --workdir {workdir}: the base would be copied back")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in LOGS:
        (workdir / name).unlink(missing_ok=True)
    site = workdir / "site"
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(site), os.environ.get("PYTHONPATH")]))}
    report = Report(workdir, out)
    # The limits keep a GPU run inside the budget; a CPU dry run is slower by far, and only tries the check.
    check = Check(report, args.budget, slack=1 if why is None else 20, env=env)
    wheels = Path(args.wheels).resolve() if args.wheels else None

    check.current = "install"
    start = time.monotonic()
    rows = install(PACKAGES, wheels, site, env, workdir / "install.log")
    check.current = None
    missing = missing_required(rows)
    report.stage("install", {"status": "failed" if missing else "ok", "seconds": round(time.monotonic() - start, 1),
                             "packages": rows, **({"detail": f"missing: {', '.join(missing)}"} if missing else {})})
    report.stage("machine", {"status": "ok", **machine(env)})

    if missing:
        check.skip("tests", f"missing required packages: {', '.join(missing)}")
    else:
        junit = workdir / "tests.xml"
        tests = check.run("tests", [sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", "-q",
                                    "-rs", f"--junitxml={junit}"], workdir / "tests.log")
        report.stage("tests", {**tests, **junit_summary(junit)})
    if args.skip_benchmark:
        pass
    elif missing:
        for name in ("base", "benchmark_diary_lightning", "benchmark_TRL"):
            check.skip(name, f"missing required packages: {', '.join(missing)}")
    else:
        benchmark_stages(check, args, rows)
    report.data["finished"] = True
    report.save()
    print(f"gpu_check: report {workdir / 'gpu_check.json'}{f' and {out}' if out else ''} ({report.data['seconds']:.0f} s)")
    stages = report.data["stages"].values()
    return 0 if all(s["status"] in ("ok", "skipped") for s in stages) and not missing else 1


if __name__ == "__main__":
    sys.exit(main())

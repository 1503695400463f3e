"""scripts/gpu/gpu_check.sh: one command that runs to its end and leaves gpu_check.json whatever fails.

The CPU-testable parts: the install of each package on its own from a wheel folder, TRL optional, the stage
runner (time limits, the budget, the report after a kill), and a whole dry run at tiny size."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts" / "gpu"))
import gpu_check  # noqa: E402


def make_wheel(folder: Path, dist: str, module: str, body: str = "VALUE = 1\n", requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel: pip installs it like any other."""
    info = f"{dist}-1.0.dist-info"
    path = folder / f"{dist}-1.0-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {f"{module}/__init__.py": body, f"{info}/METADATA": metadata,
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return path


def child_env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_says_so_and_exits_0():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu" / "gpu_check.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gpu_check: no CUDA device here (torch ") and "nothing to check" in done.stdout


def test_every_requirement_is_probed_and_trl_is_optional():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    dists = {p.dist for p in gpu_check.PACKAGES}
    for name in ("lightning", "transformers", "peft", "bitsandbytes", "datasets", "jsonargparse", "torchmetrics",
                 "tensorboard", "tokenizers", "safetensors", "xxhash", "pytest", "hypothesis", "trl", "psutil"):
        assert f'"{name}' in text and name in dists
    assert "torch" not in dists  # the check runs under the machine's own torch
    assert [p.dist for p in gpu_check.PACKAGES if p.optional] == ["trl"]


@pytest.mark.slow
def test_each_package_installs_on_its_own_and_one_bad_wheel_costs_only_itself(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    make_wheel(wheels, "diary_probe_good", "diary_probe_good", requires=("diary-probe-absent>=2",))
    make_wheel(wheels, "diary_probe_broken", "diary_probe_broken", body="raise ImportError('broken on purpose')\n")
    packages = (gpu_check.Package("diary_probe_broken", "diary_probe_broken"),
                gpu_check.Package("diary_probe_good", "diary_probe_good"),
                gpu_check.Package("diary_probe_nowheel", "diary_probe_nowheel"),
                gpu_check.Package("diary_probe_extra", "diary_probe_extra", optional=True),
                gpu_check.Package("pytest", "pytest"))
    rows = gpu_check.install(packages, wheels, site, child_env(site), tmp_path / "install.log")
    assert rows["diary_probe_broken"]["status"] == "failed" and "broken on purpose" in rows["diary_probe_broken"]["detail"]
    assert rows["diary_probe_good"] == {"status": "installed", "version": "1.0", "wheel": "diary_probe_good-1.0-py3-none-any.whl",
                                        "unmet": ["diary-probe-absent>=2 (absent)"]}
    assert rows["diary_probe_nowheel"]["status"] == "missing" and "no diary_probe_nowheel wheel" in rows["diary_probe_nowheel"]["detail"]
    assert rows["diary_probe_extra"]["status"] == "skipped"
    assert rows["pytest"]["status"] == "present"
    assert gpu_check.missing_required(rows) == ["diary_probe_broken", "diary_probe_nowheel"]
    assert (site / "diary_probe_good" / "__init__.py").is_file()


@pytest.mark.slow
def test_a_stage_past_its_limit_is_killed_and_the_report_says_so(tmp_path):
    report = gpu_check.Report(tmp_path / "work", tmp_path / "out")
    check = gpu_check.Check(report, budget=600, handle_signals=False)
    gpu_check.LIMITS["slow"] = 1
    try:
        sleeper = [sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', "
                                         "'import time; time.sleep(60)']); print('never')"]
        (tmp_path / "work").mkdir()
        start = time.monotonic()
        result = check.run("slow", sleeper, tmp_path / "work" / "tests.log")
    finally:
        del gpu_check.LIMITS["slow"]
    assert time.monotonic() - start < 30  # the grandchild was killed with its parent
    assert result["status"] == "timeout" and result["exit"] is None
    saved = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert saved["stages"]["slow"]["status"] == "timeout" and saved["finished"] is False
    assert (tmp_path / "out" / "tests.log").is_file()  # the logs travel with the report


@pytest.mark.slow
def test_a_stage_with_no_budget_left_is_skipped_with_why(tmp_path):
    check = gpu_check.Check(gpu_check.Report(tmp_path, None), budget=0, handle_signals=False)
    result = check.run("tests", [sys.executable, "-c", "pass"], tmp_path / "tests.log")
    assert result == {"status": "skipped", "detail": "no time left in the 0 s budget"}


@pytest.mark.slow
def test_a_killed_check_leaves_its_report_in_out(tmp_path):
    """SIGTERM (what a time limit sends) mid-stage: the report is written, the stage marked, the child killed."""
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT / 'scripts' / 'gpu')!r})
        import gpu_check
        from pathlib import Path
        report = gpu_check.Report(Path({str(tmp_path / 'work')!r}), Path({str(tmp_path / 'out')!r}))
        check = gpu_check.Check(report, budget=600)
        report.stage("install", {{"status": "ok"}})
        check.run("tests", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                  Path({str(tmp_path / 'work' / 'tests.log')!r}))
    """))
    (tmp_path / "work").mkdir()
    child = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, text=True)
    log = tmp_path / "work" / "tests.log"
    deadline = time.monotonic() + 60
    while not (log.is_file() and "started" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 128 + signal.SIGTERM
    saved = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert saved["interrupted"] == "interrupted by SIGTERM"
    assert saved["stages"]["install"] == {"status": "ok"}
    assert saved["stages"]["tests"]["status"] == "interrupted"
    assert not list((tmp_path / "out").glob(".*.tmp"))


@pytest.mark.slow
def test_out_inside_the_workdir_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="inside --workdir"):
        gpu_check.main(["--allow-cpu", "--workdir", str(tmp_path), "--out", str(tmp_path / "out")])


def test_ratios_pair_rows_of_the_same_shape():
    ours = {"rows": [{"seq_length": 512, "batch_size": 16, "tokens_per_second": 300.0, "peak_memory_gib": 10.0},
                     {"seq_length": 1024, "batch_size": 8, "tokens_per_second": 200.0, "peak_memory_gib": 12.0}]}
    trl = {"rows": [{"seq_length": 512, "batch_size": 16, "tokens_per_second": 200.0, "peak_memory_gib": 20.0}]}
    assert gpu_check.ratios(ours, trl) == [{"seq_length": 512, "batch_size": 16, "tokens_per_second": 1.5,
                                            "peak_memory": 0.5}]
    assert gpu_check.ratios(ours, None) == []


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU dry run; scripts/gpu/gpu_check.sh runs the real one")
def test_a_cpu_dry_run_writes_the_whole_report(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu" / "gpu_check.py"), "--allow-cpu", "--shape", "tiny",
         "--seq-lengths", "32 64", "--tokens-per-step", "128", "--workdir", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=1500,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["finished"] is True
    stages = report["stages"]
    assert stages["install"]["status"] == "ok"
    assert all(row["status"] == "present" for row in stages["install"]["packages"].values())
    assert stages["machine"]["gpu"] is None and stages["machine"]["torch"] == torch.__version__
    tests = stages["tests"]
    assert tests["status"] == "ok" and tests["skipped"] == tests["tests"] >= 2  # the CUDA tests, skipped here
    assert stages["base"]["status"] == "ok"
    for side in ("diary_lightning", "TRL"):
        bench = stages[f"benchmark_{side}"]
        assert bench["status"] == "ok" and bench["side"] == side
        assert [(r["seq_length"], r["batch_size"]) for r in bench["rows"]] == [(32, 4), (64, 2)]
    ratios = report["ratio_diary_lightning_over_trl"]
    assert [(r["seq_length"], r["batch_size"]) for r in ratios] == [(32, 4), (64, 2)]
    assert all(r["tokens_per_second"] > 0 and r["peak_memory"] > 0 for r in ratios)
    assert "recipe" not in report  # seq 1024 at batch 8 only: not measured at this size
    # What comes back to the caller: the report and logs, at most 8 files, never the base.
    assert len(list(out.iterdir())) <= 8 and not (out / "random-base").exists()

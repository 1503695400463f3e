"""scripts/gpu_check.sh: says so and exits 0 without CUDA; on the CPU with --allow-cpu it runs itself whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_says_so_and_exits_0():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gpu_check: no CUDA device here (torch ") and "nothing to check" in done.stdout


def test_installs_the_core_requirements_and_the_extra_but_never_torch():
    wanted = gpu_check.requirements()
    names = [r.split("[")[0].split(">")[0].split("=")[0].split("<")[0] for r in wanted]
    assert "torch" not in names and "torchmetrics" in names
    assert {"bitsandbytes", "trl", "datasets", "jsonargparse", "pytest", "hypothesis"} <= set(names)
    # Every requirement's import name is checked before anything is installed.
    assert set(names) - {"tokenizers", "safetensors"} <= set(gpu_check.MODULES.values()) | {"tensorboard"}


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU dry run; scripts/gpu_check.sh runs the real one")
def test_a_cpu_dry_run_writes_the_whole_report(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--allow-cpu", "--shape", "tiny",
         "--seq-lengths", "32 64", "--tokens-per-step", "128", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=1500,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["install"] == {"installed": False, "missing": []}
    assert report["machine"]["gpu"] is None and report["machine"]["torch"] == torch.__version__
    tests = report["tests"]
    assert tests["exit"] == 0 and tests["skipped"] == tests["tests"] >= 2  # the CUDA tests, skipped here
    for side in ("diary_lightning", "TRL"):
        bench = report[f"benchmark_{side}"]
        assert bench["exit"] == 0 and bench["side"] == side
        assert [(r["seq_length"], r["batch_size"]) for r in bench["rows"]] == [(32, 4), (64, 2)]
    ratios = report["ratio_diary_lightning_over_trl"]
    assert [(r["seq_length"], r["batch_size"]) for r in ratios] == [(32, 4), (64, 2)]
    assert all(r["tokens_per_second"] > 0 and r["peak_memory"] > 0 for r in ratios)

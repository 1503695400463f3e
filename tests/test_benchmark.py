"""The benchmarks cannot rot: scripts/benchmarks/benchmark.py (diary_lightning against TRL) and
scripts/benchmarks/gpu_benchmark.py run end to end on the CPU at tiny size, a couple of steps each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow
BENCHMARKS = ROOT / "scripts" / "benchmarks"


def test_side_by_side_benchmark_runs_both_sides(tiny_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "benchmark.py"), "--model", str(tiny_model_dir), "--steps", "2",
         "--pairs", "1", "--batch-size", "2", "--max-length", "256", "--workdir", str(tmp_path / "work"),
         "--json", str(out)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout.splitlines()
    for row in ("| diary_lightning |", "| TRL |", "| diary_lightning / TRL |"):
        assert any(line.startswith(row) for line in table), done.stdout
    result = json.loads(out.read_text())
    assert result["spec"]["steps"] == 2
    for side in ("diary_lightning", "TRL"):
        (run,) = result["runs"][side]
        assert run["steps"] == 2
        assert 0 < run["real_tokens"] <= run["padded_tokens"] <= 2 * 2 * 256
        assert run["seconds_per_step"] > 0 and run["peak_memory_mib"] > 0
    assert all(value > 0 for value in result["summary"]["ratio"].values())


def test_gpu_benchmark_runs_at_tiny_size_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_benchmark.py"), "--layers", "2", "--hidden", "64",
         "--intermediate", "128", "--heads", "2", "--kv-heads", "1", "--vocab", "512", "--positions", "128",
         "--seq-lengths", "32", "--max-batch", "2", "--steps", "2", "--warmup", "1",
         "--workdir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [(r["seq_length"], r["batch_size"]) for r in result["rows"]] == [(32, 1), (32, 2)]
    # 2 layers of (4 attention + 3 MLP projections), embeddings, LM head and norms, as saved.
    assert result["parameters"] == 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64) + 2 * 512 * 64 + 64
    for row in result["rows"]:
        assert row["tokens_per_second"] > 0 and 0 < row["mfu"] < 1 and row["peak_memory_gib"] > 0
    assert "| 32 | 2 |" in done.stdout

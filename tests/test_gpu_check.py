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
def test_without_cuda_it_fails_loudly_naming_the_interpreter():
    """On the GPU machine no CUDA means the wrong interpreter: a call that measured nothing must not exit 0."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu" / "gpu_check.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(f"gpu_check: no CUDA device here ({sys.executable}: torch ")
    assert "nothing was checked" in done.stderr


def test_the_interpreter_is_python3_unless_named(tmp_path):
    """`python` may be another interpreter than the image's python3 (which holds its CUDA torch)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, says in (("python", "wrong"), ("python3", "right")):
        (bin_dir / name).write_text(f"#!/bin/sh\necho {says} \"$@\"\n")
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"} | {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu" / "gpu_check.sh"), "--allow-cpu"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout == "right scripts/gpu/gpu_check.py --allow-cpu\n", done.stdout + done.stderr
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu" / "gpu_check.sh")], capture_output=True, text=True,
                          env={**env, "PYTHON": "no-such-python"}, timeout=60)
    assert done.returncode == 3 and "no interpreter 'no-such-python'" in done.stderr


def test_the_base_goes_to_dev_shm_only_when_it_has_room(tmp_path, monkeypatch):
    eeve = gpu_check.base_parameters(gpu_check.SHAPES["eeve"])
    assert 10.7e9 < eeve < 10.9e9  # EEVE-Korean-10.8B's count, as gpu_benchmark.py builds it
    free = {"/dev/shm": 30 * 2**30, str(tmp_path): 10**13}
    monkeypatch.setattr(gpu_check.shutil, "disk_usage", lambda p: type("U", (), {"free": free[str(p)]}))
    args = gpu_check.parse_args(["--shape", "eeve"])
    where, room = gpu_check.base_dir(args, tmp_path)
    assert where == Path("/dev/shm/diary-gpu-check-base") and room["base_bytes"] == 2 * eeve
    free["/dev/shm"] = 20 * 2**30  # under the 21.6 GB of bf16 weights and the margin
    where, _ = gpu_check.base_dir(args, tmp_path)
    assert where == tmp_path / "random-base"
    where, room = gpu_check.base_dir(gpu_check.parse_args(["--base-dir", str(tmp_path / "b")]), tmp_path)
    assert where == tmp_path / "b" and room["why"] == "--base-dir"


def test_every_stage_runs_offline_and_the_cuda_tests_alone():
    text = (ROOT / "scripts" / "gpu" / "gpu_check.py").read_text(encoding="utf-8")
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        assert f'"{variable}": "1"' in text
    assert '"pytest", "tests/test_cuda.py", "-m", "cuda"' in text
    assert "paged_adamw" not in (ROOT / "tests" / "test_cuda.py").read_text(encoding="utf-8")


def test_every_requirement_is_probed_and_trl_is_optional():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    dists = {p.dist for p in gpu_check.PACKAGES}
    for name in ("lightning", "transformers", "peft", "bitsandbytes", "datasets", "jsonargparse", "torchmetrics",
                 "tensorboard", "tokenizers", "safetensors", "xxhash", "pytest", "hypothesis", "trl", "psutil"):
        assert f'"{name}' in text and name in dists
    assert "torch" not in dists  # the check runs under the machine's own torch
    assert not dists & {"kiwipiepy", "kiwipiepy-model"}  # cannot travel: the check turns the style metric off
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
         "--workdir", str(tmp_path / "work"), "--out", str(out), "--base-dir", str(tmp_path / "base")],
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
    assert stages["base"]["status"] == "ok" and report["base"]["path"] == str(tmp_path / "base")
    # The EEVE rows before anything optional: the NF4 benchmark, then the CUDA tests, then the rest.
    assert list(stages) == ["install", "machine", "base", "benchmark_diary_lightning", "tests", "predict",
                            "benchmark_bf16", "benchmark_TRL"]
    for name, side, quantization in (("benchmark_diary_lightning", "diary_lightning", "nf4"),
                                     ("benchmark_bf16", "diary_lightning", "none (bf16 base)"),
                                     ("benchmark_TRL", "TRL", "nf4")):
        bench = stages[name]
        assert bench["status"] == "ok" and bench["side"] == side and bench["quantization"] == quantization
        assert [(r["seq_length"], r["batch_size"]) for r in bench["rows"]] == [(32, 4), (64, 2)]
    for key in ("ratio_diary_lightning_over_trl", "ratio_bf16_over_nf4"):
        assert [(r["seq_length"], r["batch_size"]) for r in report[key]] == [(32, 4), (64, 2)]
        assert all(r["tokens_per_second"] > 0 and r["peak_memory"] > 0 for r in report[key])
    predict = stages["predict"]
    assert predict["status"] == "ok" and [r["batch_size"] for r in predict["rows"]] == [32, 1]
    assert [r["diaries"] for r in predict["rows"]] == [32, 2] and all(r["diaries_per_second"] > 0 for r in predict["rows"])
    assert report["style_metric"].startswith("off (model.style_metric: false)")
    assert "recipe" not in report  # seq 1024 at batch 8 only: not measured at this size
    # What comes back to the caller: the report and logs, at most 8 files, never the base.
    assert len(list(out.iterdir())) <= 8 and not (out / "random-base").exists()


@pytest.mark.rehearsal
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU rehearsal; scripts/gpu/gpu_check.sh runs the real one")
def test_the_cpu_rehearsal_of_the_device_call_passes():
    """scripts/gpu/rehearse.sh: the device image's packages alone, the carried set installed with no network,
    the whole check at tiny size. Builds its environment from the index once (REHEARSE_VENV keeps it)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu" / "rehearse.sh")], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=3600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert "rehearse.sh: passed" in done.stdout
    travel = next(line for line in done.stdout.splitlines() if "of the 64 MiB that travel" in line)
    assert int(travel.split(" = ")[1].split()[0]) < 64 * 2**20
    report = json.loads((ROOT / "runs" / "rehearsal-gpu_check.json").read_text())
    assert report["finished"] and report["stages"]["machine"]["python"].startswith("3.12")
    assert report["stages"]["install"]["packages"]["bitsandbytes"]["status"] == "installed"


# -- without Kiwi: kiwipiepy's model cannot travel to the GPU machine -----------------------------------------
BLOCK_KIWI = ("import sys, runpy; sys.modules['kiwipiepy'] = sys.modules['kiwipiepy_model'] = None; "
              "runpy.run_module('diary_lightning', run_name='__main__')")


def run_without_kiwi(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a process where kiwipiepy and its model cannot be imported, as on the GPU machine."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", BLOCK_KIWI, *args], capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.mark.slow
def test_without_kiwi_the_style_metric_refuses_before_training_and_says_how_to_install(make_config):
    done = run_without_kiwi("fit", "--config", str(make_config(**{"trainer.max_steps": 1})))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "pip install kiwipiepy kiwipiepy_model" in done.stderr and "model.style_metric: false" in done.stderr


def test_rows_generated_with_the_style_metric_off_score_without_kiwi(monkeypatch):
    from diary_lightning.evaluation import samples

    def no_kiwi(*args, **kwargs):
        raise AssertionError("the style checks ran with the style metric off")

    monkeypatch.setattr(samples, "style_failures", no_kiwi)
    monkeypatch.setattr(samples, "faithfulness_failures", no_kiwi)
    rows = [{"id": "a", "dialogue": "d", "summary": "오늘은 비가 왔다.", "diary": "오늘은 비가 왔다.", "truncated": False,
             "writer": "P01", "turns": [{"speaker": "P01", "text": "비 온다"}], "style_failures": None,
             "faithfulness_failures": None}]
    scores = samples.corpus_scores(rows, "char")
    assert scores["rouge1"] == pytest.approx(1.0) and set(scores) == {"rouge1", "rouge2", "rougeL", "chrf"}
    assert "(not checked)" in samples.samples_table(rows)
    assert samples.row_failures(rows[0]) is None


@pytest.mark.slow
def test_without_kiwi_fit_validate_and_predict_run_with_the_style_metric_off(tmp_path, tiny_model_dir):
    from conftest import tiny_config

    config = tiny_config(tmp_path, tiny_model_dir, **{
        "trainer.max_steps": 2, "trainer.val_check_interval": 2, "trainer.limit_val_batches": 1,
        "model.style_metric": False, "model.max_new_tokens": 8, "data.val_generate_samples": 2})
    done = run_without_kiwi("fit", "--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    output = tmp_path / "diaries.jsonl"
    done = run_without_kiwi("predict", "--config", str(config), "--ckpt_path",
                            str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--output", str(output))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert rows and all(r["style_failures"] is None and r["faithfulness_failures"] is None
                        and isinstance(r["diary"], str) for r in rows)

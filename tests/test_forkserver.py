"""The tests' fork server (tests/forkserver.py): a routed CLI subprocess answers as a fresh interpreter does."""

from __future__ import annotations

import os
import subprocess
import sys

import forkserver
import pytest

# Slow: each comparison starts a fresh interpreter, and the server itself imports everything once.
pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "diary_lightning"]


def fresh(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, forkserver.OFF: "1", **kwargs.pop("env", {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300, **kwargs)


def test_a_routed_command_answers_as_a_fresh_interpreter(tmp_path):
    process = subprocess.Popen([*CLI, "evaluate", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path)
    assert isinstance(process, forkserver.ForkedPopen), forkserver.fresh_because
    out, err = process.communicate(timeout=300)
    expected = fresh("evaluate", "--help", cwd=tmp_path)
    assert (process.returncode, out, err) == (expected.returncode, expected.stdout, expected.stderr)
    assert process.returncode == 0 and "--benchmark" in out


def test_a_routed_user_error_exits_2_with_its_message(tmp_path):
    done = subprocess.run([*CLI, "fit"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and "fit needs data.paths" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("env", [{"TQDM_DELAY": "0"}, {forkserver.OFF: "1"}])
def test_what_a_fork_could_not_honour_gets_a_fresh_interpreter(env):
    process = subprocess.Popen([*CLI, "--help"], stdout=subprocess.DEVNULL, env={**os.environ, **env})
    assert type(process) is forkserver._RealPopen
    assert process.wait(timeout=300) == 0


def test_what_the_tests_own_process_sets_while_running_does_not_turn_routing_off(monkeypatch):
    # Lightning's seed_everything and torch, run in this process by the in-process tests, leave these here.
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    monkeypatch.setenv("PL_SEED_WORKERS", "0")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/tmp/torchinductor_somebody")
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    process = subprocess.Popen([*CLI, "--help"], stdout=subprocess.DEVNULL)
    assert isinstance(process, forkserver.ForkedPopen), forkserver.fresh_because
    assert process.wait(timeout=300) == 0

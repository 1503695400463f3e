"""One folder, one job: locks between real processes, what killed jobs leave behind, and predictions resumed
only by the model and settings that began them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_cli, subprocess_env

TESTS = Path(__file__).parent

from diary_lightning.io.atomic import _publish, owner_tag, remove_stale_temporaries, restore_interrupted_publish
from diary_lightning.io.lock import LOCK_NAME, JobLock, LockedError
from diary_lightning.io.outputs import mark_path
from diary_lightning.training.callbacks import PredictionsMismatchError, check_same_maker, write_record

HOLD = "import sys, time; from diary_lightning.io.lock import JobLock; JobLock(sys.argv[1], sys.argv[2]).acquire(); " \
       "print('held', flush=True); time.sleep(600)"


def _env(**extra: str) -> dict[str, str]:
    return subprocess_env(**extra)


def _holder(path: Path, what: str = "folder") -> subprocess.Popen:
    """Another process that takes the lock of ``path`` and keeps it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path), what], env=_env(), stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def holder_cleanup():
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        process.kill()
        process.wait()


@pytest.mark.slow  # a fit held in a second process
def test_a_second_fit_on_a_locked_run_folder_is_refused_naming_the_holder(make_config: Any, tmp_path: Path,
                                                                         holder_cleanup: list) -> None:
    config = make_config()
    run = tmp_path / "run"
    holder = _holder(run)
    holder_cleanup.append(holder)
    start = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "diary_lightning", "fit", "--config", str(config)], env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr[-2000:]
    message = next(line for line in second.stderr.splitlines() if line.startswith("error: "))
    assert f"PID {holder.pid} on {socket.gethostname()} since " in message
    assert "JobLock(sys.argv[1], sys.argv[2]).acquire()" in message  # the holder's command line
    assert str(run) in message
    assert not (run / "tensorboard").exists() and not (run / "checkpoints").exists()  # refused before anything
    assert time.monotonic() - start < 120  # at once: no model was loaded (generous for a loaded 2-core machine)


def test_a_lock_left_by_a_killed_job_is_taken_over_with_a_warning(tmp_path: Path, caplog: Any) -> None:
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = JobLock(tmp_path, "folder").acquire()
    assert f"left by a job that is gone (PID {holder.pid}" in caplog.text
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_live_holder_on_another_process_is_never_taken_over(tmp_path: Path, holder_cleanup: list) -> None:
    holder_cleanup.append(_holder(tmp_path))
    with pytest.raises(LockedError, match="in use by another job"):
        JobLock(tmp_path, "folder").acquire()


def test_a_held_lock_and_a_mismatched_partial_are_reported_as_user_errors(capsys, monkeypatch) -> None:
    from diary_lightning.errors import DEBUG_ENV, run_reporting_user_errors

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    for err in (LockedError("runs/x is in use by another job"), PredictionsMismatchError("other weights")):
        def fail(err=err):
            raise err

        with pytest.raises(SystemExit) as stopped:
            run_reporting_user_errors(fail)
        assert stopped.value.code == 2
        assert f"error: {err}" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_output_is_locked_but_reading_a_locked_run_folder_is_allowed(reference_fit: Any, tmp_path: Path,
                                                                            holder_cleanup: list) -> None:
    run = reference_fit.wait()
    last = run / "checkpoints" / "last.ckpt"
    holder_cleanup.append(_holder(run))  # a fit still writing this run folder
    output = tmp_path / "diaries.jsonl"
    run_cli("predict", "--config", str(reference_fit.config), "--ckpt_path", str(last), "--output", str(output),
            "--model.max_new_tokens", "2")
    assert output.read_text(encoding="utf-8").count("\n") > 0

    holder_cleanup.append(_holder(output, "file"))
    second = subprocess.run([sys.executable, "-m", "diary_lightning", "predict", "--config", str(reference_fit.config),
                             "--ckpt_path", str(last), "--output", str(output)],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 2 and f"{output} is in use by another job" in second.stderr


# -- what killed jobs leave behind -------------------------------------------------------------------------------
def test_temporaries_of_gone_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead, alive, host = _dead_pid(), os.getpid(), socket.gethostname()
    left = [tmp_path / f".last.ckpt.k2j3h4.{dead}@{host}.tmp", tmp_path / f".adapter.abc.{dead}@{host}.tmp",
            tmp_path / f".m.xyz.{dead}@{host}.tmp", tmp_path / f".0123abcd.qq.{dead}@{host}.tmp",
            tmp_path / f".adapter.a1.{dead}@{host}.old"]
    kept = [tmp_path / f".last.ckpt.k2j3h4.{alive}@{host}.tmp", tmp_path / f".0123abcd.qq.{dead}@another-host.tmp",
            tmp_path / "last.ckpt", tmp_path / "notes.1.tmp"]
    for path in left + kept:
        if path.name.startswith((".adapter", ".m.", ".0123")):
            path.mkdir()
            (path / "weights").write_text("x")
        else:
            path.write_text("x")
    # A replaced adapter whose replacement never came: its only copy waits in the .old folder.
    (tmp_path / f".adapter.a1.{dead}@{host}.old" / "weights").rename(tmp_path / "weights")
    (tmp_path / f".adapter.a1.{dead}@{host}.old" / "adapter").mkdir()
    (tmp_path / "weights").rename(tmp_path / f".adapter.a1.{dead}@{host}.old" / "adapter" / "weights")

    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(left)
    assert sorted(tmp_path.iterdir()) == sorted(kept + [tmp_path / "adapter"])
    assert (tmp_path / "adapter" / "weights").read_text() == "x"


@pytest.mark.slow
def test_a_kill_between_the_two_renames_of_a_publish_keeps_the_previous_folder(tmp_path: Path) -> None:
    target, tmp = tmp_path / "adapter", tmp_path / f".adapter.x{owner_tag()}.tmp"
    target.mkdir()
    (target / "weights").write_text("old")
    tmp.mkdir()
    (tmp / "weights").write_text("new")
    code = f"import faults; faults.arm(); from pathlib import Path; from diary_lightning.io.atomic import _publish; _publish(Path({str(tmp)!r}), Path({str(target)!r}))"
    killed = subprocess.run([sys.executable, "-c", code], env=subprocess_env(TESTS, DIARY_LIGHTNING_KILL_AT="publish"))
    assert killed.returncode == -signal.SIGKILL
    assert not target.exists()  # the moment the kill left: only the moved-aside folder holds the adapter

    assert restore_interrupted_publish(target)
    assert (target / "weights").read_text() == "old"
    _publish(tmp, target)  # the next export publishes as usual
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


# -- predictions resumed only by what began them ---------------------------------------------------------------
def test_a_partial_from_other_settings_or_of_unknown_origin_is_refused(tmp_path: Path) -> None:
    partial, record = tmp_path / "out.jsonl.partial", tmp_path / "out.jsonl.partial.json"
    partial.write_text('{"id": "a", "diary": "x"}\n')
    identity = {"weights": {"checkpoint": {"path": "/r/last.ckpt", "digest": "1"}, "adapter": None},
                "generation": {"max_new_tokens": 8}, "prompt": {"prompt_template": "{dialogue}"}}
    with pytest.raises(PredictionsMismatchError, match="no out.jsonl.partial.json"):
        check_same_maker(record, identity, partial)
    write_record(record, identity)
    check_same_maker(record, identity, partial)
    other = {**identity, "generation": {"max_new_tokens": 9}}
    with pytest.raises(PredictionsMismatchError, match=r"other generation .*then \{\"max_new_tokens\": 8\}, now \{\"max_new_tokens\": 9\}"):
        check_same_maker(record, other, partial)
    other = {**identity, "weights": {"checkpoint": {"path": "/r/last.ckpt", "digest": "2"}, "adapter": None}}
    with pytest.raises(PredictionsMismatchError, match="other weights"):
        check_same_maker(record, other, partial)


def _predict(config: Path, ckpt: Path, output: Path, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = _env(DIARY_LIGHTNING_KILL_AT=kill_at) if kill_at else _env()
    return subprocess.run([sys.executable, str(TESTS / "faults.py"), "predict", "--config", str(config),
                           "--ckpt_path", str(ckpt), "--output", str(output), "--data.eval_batch_size", "2",
                           "--model.max_new_tokens", "3", *extra], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_resume_predictions_refuses_another_checkpoint_and_merges_the_same(reference_fit: Any, tmp_path: Path) -> None:
    run = reference_fit.wait()
    last = run / "checkpoints" / "last.ckpt"
    output = tmp_path / "diaries.jsonl"
    partial = output.with_name(output.name + ".partial")
    killed = _predict(reference_fit.config, last, output, kill_at="predict@2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    started = partial.read_text(encoding="utf-8")
    assert started.count("\n") == 2

    # Another checkpoint under the same name (a fit that went on), and other generation settings: refused.
    other = tmp_path / "other.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    state["global_step"] += 1
    torch.save(state, other)
    for extra, what in (((), "weights"), (("--model.max_new_tokens", "4"), "generation")):
        refused = _predict(reference_fit.config, other if what == "weights" else last, output,
                           "--resume_predictions", "true", *extra)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert f"written with other {what}" in refused.stderr
        assert partial.read_text(encoding="utf-8") == started  # untouched

    resumed = _predict(reference_fit.config, last, output, "--resume_predictions", "true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    lines = output.read_text(encoding="utf-8").splitlines(keepends=True)
    assert "".join(lines[:2]) == started
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids)) > 2
    # Nothing left of the run but its diaries and their mark (predict's, so that the next run may replace them).
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mark_path(output).name, "diaries.jsonl", "other.ckpt"])


RACE = """import json, sys, time
from diary_lightning.io.lock import JobLock, LockedError
start = float(sys.argv[2])
while time.time() < start:
    pass
try:
    JobLock(sys.argv[1], "folder").acquire()
    print("held", flush=True)
    time.sleep(3)
except LockedError:
    print("refused", flush=True)
"""


@pytest.mark.slow
def test_jobs_taking_over_a_dead_jobs_lock_at_the_same_moment_never_both_hold_it(tmp_path: Path) -> None:
    """Issue 22: with the hand-written PID lock, two of them held it in 5 of 100 trials."""
    for trial in range(8):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        (folder / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
        start = time.time() + 1.5  # every process imported and spinning when it comes
        racers = [subprocess.Popen([sys.executable, "-c", RACE, str(folder), str(start)], env=_env(),
                                   stdout=subprocess.PIPE, text=True) for _ in range(4)]
        answers = sorted(p.stdout.readline().strip() for p in racers)
        for p in racers:
            p.kill()
            p.wait()
        assert answers == ["held", "refused", "refused", "refused"], (trial, answers)


def test_a_lock_dies_with_its_process_and_leaves_nothing_after_release(tmp_path: Path) -> None:
    holder = _holder(tmp_path / "out.jsonl", "file")
    with pytest.raises(LockedError, match=f"PID {holder.pid} on "):
        JobLock(tmp_path / "out.jsonl", "file").acquire()
    holder.kill()
    holder.wait()
    lock = JobLock(tmp_path / "out.jsonl", "file").acquire()
    again = JobLock(tmp_path / "out.jsonl", "file").acquire()  # the same process, after an error: its own
    again.release()
    lock.release()
    assert list(tmp_path.iterdir()) == []

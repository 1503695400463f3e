"""A fit stopped by SIGKILL or SIGTERM and resumed with ``--ckpt_path last`` trains exactly like one never interrupted."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from fits import RUN, finish, fit_config, run_dir, saved_step, scalars, start_fit
from lightning.fabric.utilities.data import _set_sampler_epoch

from diary_lightning.data.batching import LengthGroupedBatchSampler
from diary_lightning.training.exact_resume import ResumableDataLoader

# Where each run is stopped, as tests/faults.py moments. 51 dialogues in batches of 8 make 7 batches an epoch;
# accumulating 2, steps 1-3 take two batches each and step 4 the epoch's last one alone. The 4th micro-batch
# that does not end a step is the first of step 5, after the step-4 checkpoint: SIGKILL there loses step 5's
# first half. SIGTERM as the step-2 checkpoint lands in place asks for a save that waits for the end of step 3,
# off the every-2-steps cadence, so the checkpoint it leaves can only be the signal's own.
STOPS = {"sigkill": ("step@4", "KILL", 4), "sigterm": ("checkpoint-saved@1", "TERM", 3)}


@pytest.fixture(scope="module")
def interrupted(reference_fit: Any, tiny_model_dir: Path) -> dict[str, Any]:
    """Two runs, one killed with SIGKILL mid-step and one stopped with SIGTERM after its first step checkpoint,
    then both resumed with --ckpt_path last."""
    base = reference_fit.config.parent.parent
    configs = {name: fit_config(base, tiny_model_dir, name) for name in STOPS}
    processes = {name: start_fit(configs[name], signal_at=at, signal=sig) for name, (at, sig, _) in STOPS.items()}
    result: dict[str, Any] = {"sigkill": {}, "sigterm": {}}
    processes["sigkill"].communicate(timeout=300)
    result["sigkill"]["returncode"] = processes["sigkill"].returncode
    result["sigterm"]["stderr"] = finish(processes["sigterm"], returncode=143)
    for name in configs:
        result[name]["resumed_from"] = saved_step(run_dir(configs[name]) / "checkpoints" / "last.ckpt")
    resumed = {name: start_fit(config, "--ckpt_path", "last") for name, config in configs.items()}
    for name, process in resumed.items():
        finish(process)
        result[name]["run"] = run_dir(configs[name])
    result["reference"] = reference_fit.wait()
    return result


def _assert_continues_like_reference(run: Path, reference: Path, resumed_from: int) -> None:
    for tag in ("train/loss", "lr-AdamW"):
        expected = [(s, v) for s, v in scalars(reference, tag) if s >= resumed_from]
        got = scalars(run, tag)[-len(expected):]
        assert [s for s, _ in got] == [s for s, _ in expected], tag
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-5, abs=1e-7), tag


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(interrupted: dict[str, Any]) -> None:
    run = interrupted["sigkill"]
    assert run["returncode"] == -signal.SIGKILL
    assert run["resumed_from"] == STOPS["sigkill"][2]
    assert len(scalars(interrupted["reference"], "train/loss")) == RUN["trainer.max_steps"]
    _assert_continues_like_reference(run["run"], interrupted["reference"], run["resumed_from"])
    assert saved_step(run["run"] / "checkpoints" / "last.ckpt") == RUN["trainer.max_steps"]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits(interrupted: dict[str, Any]) -> None:
    run = interrupted["sigterm"]
    assert "resume with --ckpt_path last" in run["stderr"]
    # Saved when the signal came (at the end of the step it interrupted), not only at the step cadence.
    assert run["resumed_from"] == STOPS["sigterm"][2]
    _assert_continues_like_reference(run["run"], interrupted["reference"], run["resumed_from"])


def _loader(n: int = 10, batch_size: int = 2) -> ResumableDataLoader:
    sampler = LengthGroupedBatchSampler(list(range(n)), batch_size, seed=3)
    return ResumableDataLoader(list(range(n)), sampler, position=lambda: 2, collate_fn=lambda b: b)


def test_loader_state_skips_trained_batches_of_the_saved_epoch() -> None:
    saved = _loader()
    saved.batch_sampler.set_epoch(4)
    state = saved.state_dict()
    assert state == {"seed": 3, "epoch": 4, "batches_done": 2, "num_batches": 5}

    restored = _loader()
    restored.load_state_dict(state)
    assert list(restored) == list(saved)[2:]
    assert list(restored) == list(saved)  # the skip applies to the resumed epoch only


def test_loader_state_saved_at_epoch_end_resumes_on_next_epoch() -> None:
    loader = _loader()
    loader.load_state_dict({"seed": 3, "epoch": 1, "batches_done": 5, "num_batches": 5})
    assert loader.batch_sampler.epoch == 2
    assert loader.batch_sampler.skip_batches == 0


def test_lightning_advances_the_epoch_of_the_batch_sampler() -> None:
    loader = _loader()
    first = list(loader)
    _set_sampler_epoch(loader, 1)
    assert loader.batch_sampler.epoch == 1
    assert list(loader) != first

"""Tiny fits in subprocesses, for the tests that interrupt, repeat and resume them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from conftest import subprocess_env, tiny_config

TESTS = Path(__file__).resolve().parent
FAULTS = TESTS / "faults.py"  # the CLI with the fault injector armed

# 51 training dialogues in batches of 8: 7 batches an epoch. Accumulating 2, the 6 optimizer steps
# take 12 batches and cross an epoch end, which closes an optimizer step on a single batch.
RUN = {
    "trainer.max_steps": 6,
    "trainer.accumulate_grad_batches": 2,
    "trainer.log_every_n_steps": 1,
    "trainer.val_check_interval": 1000,  # no validation mid-run: only the step checkpoints write last.ckpt
    "trainer.num_sanity_val_steps": 0,
    "data.batch_size": 8,
    "model.lora_r": 8,  # pinned, not taken from configs/tiny.yaml: the mismatch tests build r=4 and r=8 beside it
    "model.lora_alpha": 16,
    "model.lora_dropout": 0.1,  # dropout draws from the RNG, which a checkpoint must carry
}
EVERY = 2  # optimizer steps between step checkpoints


def fit_config(base: Path, model_dir: Path, name: str, **overrides: Any) -> Path:
    """The RUN config with outputs under ``base/name`` and the tokenized cache shared under ``base/cache``."""
    out = base / name
    out.mkdir(parents=True, exist_ok=True)
    path = tiny_config(out, model_dir, **{**RUN, "data.cache_dir": str(base / "cache"), **overrides})
    config = yaml.safe_load(path.read_text())
    for callback in config["trainer"]["callbacks"]:
        if "every_n_train_steps" in callback.get("init_args", {}):
            callback["init_args"]["every_n_train_steps"] = EVERY
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def start_fit(config: Path, *extra: str, signal_at: str | None = None, signal: str = "KILL") -> subprocess.Popen:
    """A fit in a subprocess; with ``signal_at`` (a ``tests/faults.py`` moment), one that sends itself
    ``signal`` there, so a test knows where the run was stopped instead of racing it with a signal from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIARY_LIGHTNING_KILL_")}
    command = [sys.executable, "-m", "diary_lightning"]
    if signal_at:
        env.update(DIARY_LIGHTNING_KILL_AT=signal_at, DIARY_LIGHTNING_KILL_WITH=signal)
        command = [sys.executable, str(FAULTS)]
    return subprocess.Popen([*command, "fit", "--config", str(config), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, returncode: int = 0, timeout: float = 300) -> str:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == returncode, err[-3000:]
    return err


def ddp_fit(config: Path, probe_callback: str, probe: Path) -> None:
    """A fit on two gloo ranks on the CPU, with a probe callback from the tests folder writing under ``probe``."""
    # The probe module must be importable in the second rank too, which Lightning starts by running this
    # same command again.
    env = subprocess_env(TESTS)
    process = subprocess.run(
        [sys.executable, "-m", "diary_lightning", "fit", "--config", str(config),
         "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
         f"--trainer.callbacks+={probe_callback}", "--trainer.callbacks.directory", str(probe)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert process.returncode == 0, process.stderr[-4000:]


def run_dir(config: Path) -> Path:
    return config.parent / "run"


def scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of ``tag`` in logging order, over every TensorBoard version of a run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = []
    for version in sorted((run / "tensorboard").iterdir()):
        accumulator = EventAccumulator(str(version), size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            events += accumulator.Scalars(tag)
    return [(e.step, e.value) for e in sorted(events, key=lambda e: e.wall_time)]


def saved_step(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]


class ReferenceFit:
    """An uninterrupted fit started at once and waited for when first needed, so tests can run theirs beside it."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.process: subprocess.Popen | None = start_fit(config)

    def wait(self) -> Path:
        if self.process is not None:
            finish(self.process)
            self.process = None
        return run_dir(self.config)

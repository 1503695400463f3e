"""What keeps a run killed at any moment and resumed with ``--ckpt_path last`` identical to one never stopped,
beyond the state Lightning puts in a checkpoint (see docs/reliability.md, "A kill at any moment").

Lightning takes a step checkpoint (``every_n_train_steps``) at the end of the batch, *before* the validation due
after that step, and a run resumed from it skips that validation for good: no ``val/*`` values, no best
checkpoint. It also logs the step's metrics only after that checkpoint, so a kill in between loses them.
:class:`ExactResume` closes both gaps and keeps validation from moving the random state training draws from.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from diary_lightning.lightning_internals import (
    defer_step_checkpoint,
    logged_step,
    restore_step_trigger,
    step_ends_here,
    step_metrics_to_log,
    validation_follows,
)

log = logging.getLogger(__name__)


def rng_snapshot() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                             "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_restore(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


class ExactResume(L.Callback):
    """Three rules, each closing a way a resumed run used to differ:

    - A step checkpoint due on a step that validation follows is written at the end of that validation
      instead (Lightning's own deferral for monitored checkpoints), so every checkpoint lies either before
      a validation that has not started or after one that is complete. A kill during validation resumes
      from the checkpoint before it, and the validation runs again.
    - Validation during fit leaves the random state as it found it: whatever it draws (a loader without a
      generator, sampling during generation, a metric), training after it draws the same numbers whether
      that validation ran in this process, in the one before the kill, or not at all.
    - A checkpoint written at the end of a batch carries the metrics Lightning logs just after writing
      it; the resumed run logs them, so a kill between the two does not lose them. Everything logged
      earlier is flushed to disk before any checkpoint is written.
    """

    def __init__(self) -> None:
        self._deferred: list[tuple[ModelCheckpoint, int]] = []
        self._rng: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None
        self._restored: dict[str, Any] | None = None

    # -- step checkpoints after, not before, the validation of their step -------------------------------
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not step_ends_here(trainer, batch_idx):
            return
        metrics = step_metrics_to_log(trainer)
        self._pending = {"step": logged_step(trainer), "metrics": metrics} if metrics else None
        if not validation_follows(trainer):
            return
        for callback in trainer.checkpoint_callbacks:
            # Its own on_train_batch_end (called after this one) then sees no step trigger; its
            # on_validation_end writes what it deferred.
            if isinstance(callback, ModelCheckpoint) and (every := defer_step_checkpoint(callback, trainer)):
                self._deferred.append((callback, every))

    def _release(self) -> None:
        for callback, every in self._deferred:
            restore_step_trigger(callback, every)
        self._deferred = []

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = None  # logged by now
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._rng = rng_snapshot()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Called before the checkpoint callbacks' own on_validation_end (Lightning runs those last), so the
        # checkpoint they write holds the restored state.
        self._release()
        if self._rng is not None:
            rng_restore(self._rng)
            self._rng = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._pending = None
        if self._deferred:  # the validation did not run after all (nothing to validate)
            self._release()

    # -- logs: flushed before a checkpoint, and the step's own carried in it ----------------------------------
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            logger.save()

    def state_dict(self) -> dict[str, Any]:
        return {"pending_logs": self._pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored = state.get("pending_logs")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restored:
            for logger in trainer.loggers:
                logger.log_metrics(dict(self._restored["metrics"]), step=self._restored["step"])
                logger.save()
            self._restored = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._release()

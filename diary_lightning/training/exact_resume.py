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
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from diary_lightning.data.batching import LengthGroupedBatchSampler
from diary_lightning.training.lightning_internals import (
    defer_step_checkpoint,
    logged_step,
    restore_step_trigger,
    step_ends_here,
    step_metrics_to_log,
    validation_follows,
)

log = logging.getLogger(__name__)


def rng_snapshot(torch_only: bool = False) -> dict[str, Any]:
    """The global random state; ``torch_only`` for a checkpoint, which ``torch.load(weights_only=True)`` must read
    back (NumPy's state is an array it refuses), and which only torch's generators (dropout) need."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if not torch_only:
        state.update(python=random.getstate(), numpy=np.random.get_state())
    return state


def rng_restore(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_snapshot` took (a checkpoint from before the Python and NumPy states were kept
    holds the torch one alone, under ``cpu``)."""
    torch.set_rng_state(state["torch"] if "torch" in state else state["cpu"])
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
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


# Picking up where a run stopped: the training batch order after a resume, and predictions already written.

log = logging.getLogger(__name__)


class ResumableDataLoader(DataLoader):
    """The training loader, made stateful the way Lightning supports.

    Lightning puts the ``state_dict()`` of every training loader that has one into each checkpoint and,
    when a fit restarts from it, hands it to ``load_state_dict()`` before the first batch is drawn.
    The state records where the *trainer* is (``position``: batches trained in this epoch), not how
    far the iterator ran, because Lightning fetches one batch ahead of the one being trained on.
    Restoring it puts the sampler on the saved epoch and skips the batches already trained on,
    so a resumed run sees exactly the batches an uninterrupted one would.
    """

    def __init__(
        self,
        dataset: Any,
        batch_sampler: LengthGroupedBatchSampler,
        position: Callable[[], int] | None = None,
        accumulate_grad_batches: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self.position = position
        self.accumulate_grad_batches = accumulate_grad_batches

    def state_dict(self) -> dict[str, int]:
        sampler = self.batch_sampler
        return {
            "seed": sampler.seed,
            "epoch": sampler.epoch,
            "batches_done": self.position() if self.position is not None else 0,
            "num_batches": len(sampler),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.batch_sampler
        epoch, done = state["epoch"], state["batches_done"]
        if state["num_batches"] != len(sampler):
            log.warning(
                "The training data changed since the checkpoint (%d batches per epoch then, %d now): "
                "the resumed run cannot see the batches the interrupted one would have.",
                state["num_batches"], len(sampler),
            )
        if state["seed"] != sampler.seed:
            log.warning("Resuming with the checkpoint's batch order seed %d, not %d.", state["seed"], sampler.seed)
            sampler.seed = state["seed"]
        if done >= len(sampler):  # saved on the last batch of an epoch: the next one starts from the top
            epoch, done = epoch + 1, 0
        if done % self.accumulate_grad_batches:
            log.warning(
                "The checkpoint was taken between accumulated batches (%d into epoch %d, accumulating %d): "
                "their gradients were not saved, so the resumed run will differ slightly from an uninterrupted one. "
                "Validate every multiple of accumulate_grad_batches batches to avoid it.",
                done, epoch, self.accumulate_grad_batches,
            )
        sampler.set_epoch(epoch)
        sampler.skip_batches = done
        if done:
            log.info("Resuming epoch %d after its first %d batches.", epoch, done)


class RngState(L.Callback):
    """Carries the global random state in checkpoints, so dropout after a resume draws the masks the
    uninterrupted run would have drawn."""

    def state_dict(self) -> dict[str, Any]:
        return rng_snapshot(torch_only=True)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rng_restore(state)

"""Checkpoints a pre-empted run can rely on: written whole, read safely, saved on SIGTERM,
and the best adapter exported for PEFT at the end of fit."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from diary_lightning.inference.export import export_adapter
from diary_lightning.io.atomic import atomic_file, fault_point
from diary_lightning.training.lightning_internals import step_ends_here

log = logging.getLogger(__name__)


class SafeCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside its final name and renames it, and reads with
    ``weights_only=True`` unless told otherwise.

    Lightning's own writer goes through a file in the system temporary directory; when that lies on
    another file system the final step is a copy, and a kill during it leaves half a ``last.ckpt``.
    A rename within one directory is atomic: the old file or the new one, never a mix.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_file(path, "wb", fsync=True) as f:
            torch.save(checkpoint, f)
            f.flush()
            fault_point("checkpoint-write")
        fault_point("checkpoint-saved")

    def load_checkpoint(self, path: Any, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        # None would defer to torch's default, which an environment variable can turn off.
        return super().load_checkpoint(path, map_location, True if weights_only is None else weights_only)


class CheckpointOnSigterm(L.Callback):
    """On SIGTERM (a pre-empted cloud machine, SLURM) or Ctrl-C (SIGINT), save ``last.ckpt``, say how to
    go on, and stop; a second Ctrl-C stops at once, without saving.

    Lightning on its own only stops. The save waits for the end of the current optimizer step:
    a checkpoint taken between accumulated micro-batches would lose their gradients, and the
    resumed run would differ from an uninterrupted one. That is at most one optimizer step.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, resume_command: str | None = None) -> None:
        """
        Args:
            resume_command: The command that continues the run, printed after the save.
        """
        self.requested = False
        self.signum: int | None = None
        self.resume_command = resume_command
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            # Asked twice: the user wants out now, not at the end of the step.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        more = " (Ctrl-C again to stop at once, without saving)" if signum == signal.SIGINT else ""
        log.warning("%s received: saving a checkpoint at the end of this optimizer step, then stopping%s.", name, more)
        self.requested = True
        self.signum = self.signum or signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed after Lightning's handler (registered just before training), which would stop the
        # run after the current micro-batch, in the middle of an accumulated step, without saving.
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._note)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero \
                and trainer.state.fn == TrainerFn.FITTING:
            log.warning("Stopped at once (Ctrl-C twice): nothing saved since the last checkpoint; resume from it "
                        "with --ckpt_path last%s", f":\n  {self.resume_command}" if self.resume_command else ".")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not step_ends_here(trainer, batch_idx):
            return
        # Under DDP the signal may reach some ranks only, and the save is collective: every rank must
        # take the same decision, or the ones that saw nothing would wait at its barrier for ever.
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        path = checkpoint_dir(trainer) / "last.ckpt"
        trainer.save_checkpoint(path)
        log.warning("Saved %s at step %d; resume with --ckpt_path last%s", path, trainer.global_step,
                    f":\n  {self.resume_command}" if self.resume_command else ".")
        # The shell's convention: 128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C).
        raise SIGTERMException(128 + (self.signum or signal.SIGTERM))


class ExportAdapter(L.Callback):
    """At the end of fit, exports the best checkpoint's adapter (or the last, with no validation) to
    ``CHECKPOINT_DIR/adapter`` as the ``export`` subcommand does: a PEFT folder with the tokenizer, the
    prompt and the generation settings, loadable with ``PeftModel.from_pretrained(base, path)`` or
    ``DiaryPipeline.from_pretrained(path)``."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        callback = trainer.checkpoint_callback
        source = (callback.best_model_path or callback.last_model_path) if callback is not None else ""
        if not source or trainer.global_rank != 0:
            return
        path = export_adapter(pl_module, source, checkpoint_dir(trainer) / "adapter", trainer.datamodule)
        log.info("exported the adapter of %s to %s", source, path)


CHECKPOINTS = "checkpoints"


def checkpoint_folder(callbacks: list[Any], root: str | os.PathLike) -> Path:
    """Where the run's checkpoints go, before the trainer exists to ask."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath)
    return Path(root) / CHECKPOINTS


def checkpoint_dir(trainer: L.Trainer) -> Path:
    return checkpoint_folder(trainer.checkpoint_callbacks, trainer.default_root_dir)

"""Callbacks: the run summary a user reads at the start and end of fit, and the predictions writer."""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only

from diary_lightning.atomic import write_text
from diary_lightning.dropped import too_long
from diary_lightning.prepare import DataReport

log = logging.getLogger(__name__)


class RunSummary(L.Callback):
    """One short block at the start of fit (model, parameters, data, where things go) and the best checkpoint at the end."""

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        h = pl_module.hparams
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        total = sum(p.numel() for p in pl_module.parameters())
        report = getattr(trainer.datamodule, "report", None) or DataReport()
        lines = [
            f"base model     {h.base_model} ({'4-bit NF4' if h.load_in_4bit else h.compute_dtype})",
            f"parameters     {trainable:,} trainable of {total:,} stored ({100 * trainable / max(total, 1):.2f}%)",
            f"dialogues      " + ", ".join(f"{k} {v}" for k, v in report.splits.items()),
        ]
        if report.skipped:
            lines.append(f"skipped        {report.skipped}")
        too_long_line, too_long_warnings = too_long(report, trainer.datamodule.hparams.max_length)
        lines.append(too_long_line)
        cut = sum(report.turns_cut.values())
        if cut:
            lines.append(f"cut to fit     {cut} dialogue(s) lost their oldest turns to fit max_length")
        if trainer.logger is not None:
            lines.append(f"logs           {trainer.logger.log_dir}  (tensorboard --logdir {trainer.logger.save_dir})")
        if trainer.checkpoint_callback is not None:
            lines.append(f"checkpoints    {trainer.checkpoint_callback.dirpath}")
        log.info("diary_lightning fit\n  " + "\n  ".join(lines))
        for warning in too_long_warnings:
            log.warning(warning)

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        callback = trainer.checkpoint_callback
        if callback is not None and (callback.best_model_path or callback.last_model_path):
            log.info("best checkpoint: %s", callback.best_model_path or callback.last_model_path)


def peak_memory_bytes() -> int:
    """Peak memory of this process so far: allocated GPU memory under CUDA, else the peak resident set size."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class StepClock(L.Callback):
    """Times the optimizer steps of a fit and counts the tokens they trained on; writes the figures as JSON.

    The clock runs from the start of training (model loaded, data tokenized) to the end of the last step.
    Real tokens are the ones of the attention mask, padded tokens the whole batch. The counts stay on the
    device until the end, so the clock adds no synchronization to a step. ``scripts/benchmark.py`` reads it.
    """

    def __init__(self, output: str | None = None, skip_steps: int = 0) -> None:
        """
        Args:
            output: JSON file to write at the end of training (rank zero); none: only ``self.result``.
            skip_steps: Steps left out at the start (first-call kernel selection, allocator growth): the clock
                starts at the end of that step.
        """
        self.output = output
        self.skip_steps = skip_steps
        self.result: dict[str, Any] = {}
        self._real: Any = 0
        self._padded = 0
        self._start = 0.0
        self._timing = False

    @staticmethod
    def _synchronize(pl_module: L.LightningModule) -> None:
        import torch

        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def _restart(self, pl_module: L.LightningModule) -> None:
        self._synchronize(pl_module)
        self._real, self._padded = 0, 0
        self._start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._timing = self.skip_steps == 0
        self._restart(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._timing:
            # global_step reaches skip_steps at the end of the batch that made that optimizer step.
            if trainer.global_step >= self.skip_steps:
                self._restart(pl_module)
                self._timing = True
            return
        mask = batch["attention_mask"]
        self._real = self._real + mask.sum()
        self._padded += mask.numel()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._synchronize(pl_module)
        seconds = time.perf_counter() - self._start
        self.result = {
            "steps": trainer.global_step - self.skip_steps,
            "seconds": seconds,
            "real_tokens": int(self._real),
            "padded_tokens": self._padded,
            "peak_memory_bytes": peak_memory_bytes(),
        }
        if self.output and trainer.is_global_zero:
            write_text(self.output, json.dumps(self.result))


class JsonlPredictionWriter(BasePredictionWriter):
    """Writes ``{"id", "diary"}`` lines as batches finish, to ``OUTPUT.partial``; renamed to ``OUTPUT`` when complete,
    so a killed predict never leaves a half-written file under the final name.

    With ``resume``, the complete lines an interrupted predict left in ``OUTPUT.partial`` are kept and
    new lines appended after them; :meth:`written_ids` tells which dialogues to leave out.
    """

    def __init__(self, output: str, resume: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.resume = resume
        self._file: Any = None
        self.count = 0

    def written_ids(self) -> set[str]:
        """Ids already in ``OUTPUT.partial`` (none unless resuming); a torn last line is cut off."""
        from diary_lightning.resume import completed_predictions

        done = completed_predictions(self.partial) if self.resume else set()
        self.count = len(done)
        if done:
            log.info("resuming %s: %d diaries already written", self.partial, len(done))
        return done

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.partial, "a" if self.resume else "w", encoding="utf-8")

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any, *args: Any) -> None:
        if self._file is None:
            return
        for row in prediction:
            self._file.write(json.dumps({"id": row["id"], "diary": row["diary"]}, ensure_ascii=False) + "\n")
            self.count += 1
        self._file.flush()

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self.finish()

    def finish(self) -> None:
        """Publish ``OUTPUT.partial`` as ``OUTPUT``. Also called after a resumed predict that found every
        diary already written, where Lightning skips the loop and its hooks."""
        if self.partial.is_file():
            os.replace(self.partial, self.output)
            log.info("wrote %d diaries to %s", self.count, self.output)

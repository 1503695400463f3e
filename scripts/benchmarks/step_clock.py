"""The benchmarks' clock: a Lightning callback that times optimizer steps and counts their tokens. Used by
``benchmark.py`` and ``gpu_benchmark.py``, which import it from this folder."""

from __future__ import annotations

import json
import time
from typing import Any

import lightning as L
from peak_memory import peak_memory_bytes

from diary_lightning.io.atomic import write_text


class StepClock(L.Callback):
    """Times the optimizer steps of a fit and counts the tokens they trained on; writes the figures as JSON.

    The clock runs from the start of training (model loaded, data tokenized) to the end of the last step.
    Real tokens are the ones of the attention mask, padded tokens the whole batch. The counts stay on the
    device until the end, so the clock adds no synchronization to a step. ``scripts/benchmarks/benchmark.py`` reads it.
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

"""A callback the token-weighting tests pass to the CLI: the same adapter on every run, and its gradient at
the first optimizer step, as the optimizer received it."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import save_file


class GradProbe(L.Callback):
    """Sets every LoRA weight from a generator seeded by its name (lora_B too: a zero lora_B leaves lora_A
    without gradient), so that runs of any batch size, accumulation or world size start alike, and writes
    ``DIRECTORY/rank{N}.safetensors`` with the adapter gradients after the first optimizer step."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            for name, param in pl_module.named_parameters():
                if "lora_" in name:
                    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
                    param.copy_(0.05 * torch.randn(param.shape, generator=generator))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step != 1 or (self.directory / f"rank{trainer.global_rank}.safetensors").exists():
            return
        grads = {n: p.grad.detach().cpu().contiguous() for n, p in pl_module.named_parameters()
                 if p.requires_grad and p.grad is not None}
        self.directory.mkdir(parents=True, exist_ok=True)
        save_file(grads, str(self.directory / f"rank{trainer.global_rank}.safetensors"))

"""A callback the DDP test passes to the CLI: each rank records what it trained on and its final adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from safetensors.torch import save_file


class RankProbe(L.Callback):
    """Writes ``DIRECTORY/rank{N}.safetensors`` (the adapter weights at the end of fit) and
    ``DIRECTORY/rank{N}.json`` (the ids of the training examples of each batch) on every rank."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.batches: list[list[str]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self.batches.append(list(batch["id"]))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        rank = trainer.global_rank
        weights = {k: v.detach().cpu().contiguous() for k, v in pl_module.adapter_state_dict().items()}
        save_file(weights, str(self.directory / f"rank{rank}.safetensors"))
        info = {"batches": self.batches, "world_size": trainer.world_size}
        (self.directory / f"rank{rank}.json").write_text(json.dumps(info, ensure_ascii=False))

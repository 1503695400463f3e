"""A callback the CUDA test passes to the CLI: what the fit actually ran on, written as JSON at its end."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch


class CudaProbe(L.Callback):
    def __init__(self, output: str) -> None:
        self.output = Path(output)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import bitsandbytes as bnb

        model = pl_module.model
        four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        adapters = [p for n, p in pl_module.named_parameters() if "lora_" in n]
        info = {
            "precision": trainer.precision,
            "adapter_devices": sorted({str(p.device) for p in adapters}),
            "four_bit_layers": len(four_bit),
            "four_bit_devices": sorted({str(m.weight.device) for m in four_bit}),
            "optimizer": type(trainer.optimizers[0]).__name__,
            "gradient_checkpointing": bool(model.get_base_model().is_gradient_checkpointing),
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v)},
            "lora_B_abs_sum": float(sum(p.detach().abs().sum() for n, p in pl_module.named_parameters()
                                        if "lora_B" in n)),
            "max_memory_allocated": torch.cuda.max_memory_allocated(),
        }
        self.output.write_text(json.dumps(info, indent=1))

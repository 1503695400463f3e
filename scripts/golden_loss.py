"""The training loss of the first optimizer steps of a seeded tiny fit: the golden values of
``tests/test_golden.py``, printed as JSON.

    python scripts/golden_loss.py            # builds the tiny test model in a temporary folder

Rerun it and paste its output into ``GOLDEN`` in ``tests/test_golden.py`` only when a change is meant to
alter training (the loss, the data order, the initialisation, the schedule), and say so in the commit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

STEPS = 4
SEED = 42


def first_losses(model_dir: str | Path, cache_dir: str | Path, steps: int = STEPS) -> list[float]:
    """``train/loss`` of each of the first ``steps`` optimizer steps of the tiny recipe: 4-bit NF4 base, LoRA
    r 8 with dropout (so the RNG matters), batches of 4 from the bundled dialogues, warm-up then cosine."""
    import lightning as L

    from diary_lightning.model.tiny import sample_data_path
    from diary_lightning.training.datamodule import DiaryDataModule
    from diary_lightning.training.lora_module import DiaryLoRAModule

    losses: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            # The logged mean token loss: what training_step returns is scaled for the token-weighted gradient.
            losses.append(float(trainer.callback_metrics["train/loss"]))

    L.seed_everything(SEED, verbose=False)
    module = DiaryLoRAModule(base_model=str(model_dir), compute_dtype="float32", lora_r=8, lora_alpha=16,
                             lora_dropout=0.1, learning_rate=0.01, warmup_steps=2)
    data = DiaryDataModule(paths=[str(sample_data_path())], tokenizer=str(model_dir), batch_size=4, max_length=512,
                           val_generate_samples=0, cache_dir=str(cache_dir))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[Record()], default_root_dir=str(cache_dir))
    trainer.fit(module, datamodule=data)
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a tiny model folder (default: build the tests' one)")
    args = parser.parse_args(argv)
    from diary_lightning.model.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_tiny_model(Path(tmp) / "model")  # the tests' fixture: seed 0, no warm-up
        print(json.dumps(first_losses(model, Path(tmp) / "cache")))


if __name__ == "__main__":
    main()

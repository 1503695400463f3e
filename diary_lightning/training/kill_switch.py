"""The test-only kill switch of :mod:`diary_lightning.io.faults`, at the moments Lightning's hooks can see."""

from __future__ import annotations

from typing import Any

import lightning as L

from diary_lightning.io.faults import reached


class KillAt(L.Callback):
    """Reaches the moments that Lightning hooks (or a wrapper around an object they hand over) can see."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dataset = trainer.train_dataloader.dataset
        fetch = dataset.__getitems__

        def getitems(keys: list) -> Any:
            reached("data")
            return fetch(keys)

        # The loader's iterator holds this very object, so an attribute on it is what the next fetch calls.
        dataset.__getitems__ = getitems
        generate = pl_module.generate

        def generate_then_check(*args: Any, **kwargs: Any) -> Any:
            out = generate(*args, **kwargs)
            if trainer.state.fn == "fit" and not trainer.sanity_checking:
                reached("generation")
            return out

        pl_module.generate = generate_then_check

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fit_loop._should_accumulate():
            reached("step")

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            reached("validation")

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        reached("predict")

"""Picking up where a run stopped: the training batch order after a resume, and predictions already written."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from diary_lightning.sampler import LengthGroupedBatchSampler

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


def completed_predictions(partial: Path) -> set[str]:
    """The ids of the complete lines of a predictions file a killed predict left, cutting off a torn last line.

    A line is complete when it ends with a newline and parses; the file is truncated just after the
    last such line, so appending to it continues a well-formed JSONL file.
    """
    if not partial.is_file():
        return set()
    done: set[str] = set()
    keep = 0
    with open(partial, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                done.add(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                break
            keep += len(line)
    if keep != os.path.getsize(partial):
        log.warning("Dropping an incomplete record at the end of %s.", partial)
        with open(partial, "r+b") as f:
            f.truncate(keep)
    return done

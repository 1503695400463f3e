"""Batches: which examples go together (similar lengths, so that padding wastes little compute), how they are
padded into tensors, and what each batch counts. Shared by the data module, validation-time generation and
the inference pipeline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from diary_lightning.data.encoding import IGNORE_INDEX


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches whose members have similar lengths.

    Each epoch shuffles the indices, cuts them into windows of ``batch_size *
    window_batches``, sorts each window by length and slices it into batches; the
    batches are then shuffled, so the order stays random while the members of a
    batch are alike (the idea of TRL's ``group_by_length``). With
    ``group_by_length=False`` it is a plain shuffled batch sampler.
    The order is a pure function of ``seed`` and the epoch, which is what makes a
    resumed run see the same batches: ``skip_batches`` drops the ones already trained on.

    Under DDP every rank builds the same order (same seed) of global batches of
    ``batch_size * num_replicas`` and takes every ``num_replicas``-th member, starting at
    ``rank``: the ranks see disjoint examples of similar length at each step. Lightning cannot
    put its ``DistributedSampler`` inside a batch sampler, so the sharding happens here. Like
    that sampler, the epoch is padded with its first examples to a multiple of ``num_replicas``
    (or, with ``drop_last``, cut to whole global batches), so that every rank takes as many steps.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        group_by_length: bool = True,
        window_batches: int = 64,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} must lie in [0, num_replicas={num_replicas})")
        if not isinstance(lengths, Sequence):
            # What Lightning passes when it tries to put a DistributedSampler in this sampler's place.
            raise TypeError(
                f"{type(self).__name__} got {type(lengths).__name__} for lengths, not a sequence of ints. "
                "It shards batches across ranks itself: set trainer.use_distributed_sampler to false."
            )
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.window_batches = window_batches
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> LengthGroupedBatchSampler:
        # Lightning advances the epoch through ``loader.batch_sampler.sampler.set_epoch``; without this
        # every epoch would repeat the first one's order.
        return self

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches of one epoch, in order."""
        generator = torch.Generator().manual_seed(self.seed + (self.epoch if epoch is None else epoch))
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        order = self._even(order)
        size = self.batch_size * self.num_replicas
        if self.group_by_length:
            window = size * self.window_batches
            order = [
                i
                for start in range(0, len(order), window)
                for i in sorted(order[start : start + window], key=self.lengths.__getitem__, reverse=True)
            ]
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        if self.group_by_length:
            shuffle = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in shuffle]
        return [batch[self.rank :: self.num_replicas] for batch in batches]

    def _even(self, order: list[int]) -> list[int]:
        """``order`` cut or padded (with its own start) to a multiple of ``num_replicas``."""
        if self.num_replicas == 1 or not order:
            return order
        if self.drop_last:
            return order[: len(order) - len(order) % self.num_replicas]
        total = -(-len(order) // self.num_replicas) * self.num_replicas
        return (order * -(-total // len(order)))[:total]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        skip, self.skip_batches = self.skip_batches, 0
        yield from batches[skip:]

    def __len__(self) -> int:
        """Batches per epoch on each rank."""
        n = len(self.lengths)
        if n == 0:
            return 0
        per_rank = n // self.num_replicas if self.drop_last else -(-n // self.num_replicas)
        full, rest = divmod(per_rank, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens over padded tokens when each batch is padded to its longest member."""
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
    return real / padded if padded else 1.0


def batch_counts(attention_mask: Any, labels: Any) -> dict[str, int]:
    """A batch's real tokens and the tokens its loss scores (after the shift inside the model), counted
    where the batch is built: on the CPU, so that the training step never waits on the GPU for them."""
    return {"num_tokens": int(attention_mask.sum()), "num_scored": int((labels[:, 1:] != IGNORE_INDEX).sum())}


class DiaryCollator:
    """Pads a list of encoded examples to the longest one.

    Training pads on the right. Generation pads on the left, so that every prompt
    ends where the new tokens begin.
    """

    def __init__(self, pad_id: int, padding_side: str = "right") -> None:
        self.pad_id = pad_id
        self.padding_side = padding_side

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(e["input_ids"]) for e in examples)
        batch: dict[str, Any] = {}
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            cols = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
            ids[row, cols] = torch.tensor(example["input_ids"])
            mask[row, cols] = 1
            if "labels" in example:
                labels[row, cols] = torch.tensor(example["labels"])
        batch.update(input_ids=ids, attention_mask=mask, labels=labels, **batch_counts(mask, labels))
        for key in ("id", "summary", "dialogue", "writer", "turns"):
            if key in examples[0]:
                batch[key] = [e[key] for e in examples]
        if "turns" not in batch and "speakers" in examples[0] and "texts" in examples[0]:
            # The chat as it was read, for the checks of a diary against it (faithfulness).
            batch["turns"] = [[{"speaker": s, "text": t} for s, t in zip(e["speakers"], e["texts"])] for e in examples]
        return batch

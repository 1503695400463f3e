"""Batches of similar length, so that padding wastes little compute."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches whose members have similar lengths.

    Each epoch shuffles the indices, cuts them into windows of ``batch_size *
    window_batches``, sorts each window by length and slices it into batches; the
    batches are then shuffled, so the order stays random while the members of a
    batch are alike (the idea of TRL's ``group_by_length``). With
    ``group_by_length=False`` it is a plain shuffled batch sampler.
    The order is a pure function of ``seed`` and the epoch, which is what makes a
    resumed run see the same batches: ``skip_batches`` drops the ones already trained on.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        group_by_length: bool = True,
        window_batches: int = 64,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.window_batches = window_batches
        self.drop_last = drop_last
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
        """All batches of one epoch, in order."""
        generator = torch.Generator().manual_seed(self.seed + (self.epoch if epoch is None else epoch))
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        if self.group_by_length:
            window = self.batch_size * self.window_batches
            order = [
                i
                for start in range(0, len(order), window)
                for i in sorted(order[start : start + window], key=self.lengths.__getitem__, reverse=True)
            ]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.group_by_length:
            shuffle = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in shuffle]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        skip, self.skip_batches = self.skip_batches, 0
        yield from batches[skip:]

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens over padded tokens when each batch is padded to its longest member."""
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
    return real / padded if padded else 1.0

"""Length-grouped batches, on one process and sharded across DDP ranks."""

from __future__ import annotations

import random

import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import SequentialSampler

from diary_lightning.data.batching import LengthGroupedBatchSampler, padding_efficiency

_RNG = random.Random(0)
LENGTHS = [_RNG.randint(10, 500) for _ in range(101)]


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


@pytest.mark.parametrize("drop_last", [False, True])
def test_one_process_sees_each_example_once(drop_last: bool) -> None:
    sampler = LengthGroupedBatchSampler(LENGTHS, batch_size=8, seed=1, drop_last=drop_last)
    batches = list(sampler)
    assert len(batches) == len(sampler) == (12 if drop_last else 13)
    seen = _flat(batches)
    assert len(seen) == len(set(seen)) == (96 if drop_last else 101)
    # The short batch is shuffled in among the others.
    assert sorted(len(b) for b in batches) == ([8] * 12 if drop_last else [5] + [8] * 12)


def test_grouping_cuts_padding_and_the_order_follows_seed_and_epoch() -> None:
    grouped = LengthGroupedBatchSampler(LENGTHS, batch_size=8, seed=1)
    plain = LengthGroupedBatchSampler(LENGTHS, batch_size=8, seed=1, group_by_length=False)
    assert padding_efficiency(LENGTHS, grouped.batches()) > padding_efficiency(LENGTHS, plain.batches()) + 0.2
    assert grouped.batches(0) == LengthGroupedBatchSampler(LENGTHS, batch_size=8, seed=1).batches(0)
    assert grouped.batches(0) != grouped.batches(1)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_take_disjoint_parts_of_every_global_batch(world_size: int, drop_last: bool) -> None:
    ranks = [LengthGroupedBatchSampler(LENGTHS, batch_size=4, seed=5, drop_last=drop_last,
                                       num_replicas=world_size, rank=r) for r in range(world_size)]
    shards = [list(s) for s in ranks]
    # Every rank takes as many steps (else DDP waits forever for the one that stopped early) ...
    assert {len(s) for s in shards} == {len(ranks[0])}
    for step in zip(*shards):
        # ... with batches of equal size and similar length (sorted windows) at each step.
        assert len({len(b) for b in step}) == 1
    seen = _flat([b for s in shards for b in s])
    if drop_last:
        assert len(seen) == len(set(seen)) and len(seen) % (4 * world_size) == 0
        assert len(seen) > len(LENGTHS) - 4 * world_size
    else:
        # Padded with repeats to a multiple of the world size, like Lightning's DistributedSampler.
        assert set(seen) == set(range(len(LENGTHS)))
        assert len(seen) == -(-len(LENGTHS) // world_size) * world_size


def test_ranks_together_see_the_single_process_examples_in_global_batches() -> None:
    """Two ranks at batch 4 train on the same global batches as one process would at batch 8: DDP with
    N ranks behaves like one process with N times the batch."""
    lengths = LENGTHS[:96]  # no padding
    single = LengthGroupedBatchSampler(lengths, batch_size=8, seed=2).batches()
    shards = [LengthGroupedBatchSampler(lengths, batch_size=4, seed=2, num_replicas=2, rank=r).batches() for r in (0, 1)]
    assert [sorted(a + b) for a, b in zip(*shards)] == [sorted(b) for b in single]


def test_skipping_batches_is_per_rank() -> None:
    sampler = LengthGroupedBatchSampler(LENGTHS, batch_size=4, seed=5, num_replicas=2, rank=1)
    full = list(sampler)
    sampler.skip_batches = 3
    assert list(sampler) == full[3:]


def test_refuses_the_sampler_lightning_would_put_in_place_of_the_lengths() -> None:
    with pytest.raises(TypeError, match="trainer.use_distributed_sampler"):
        LengthGroupedBatchSampler(DistributedSamplerWrapper(SequentialSampler(range(10)), num_replicas=2, rank=0),
                                  batch_size=4, drop_last=False)
    with pytest.raises(ValueError, match="rank=2"):
        LengthGroupedBatchSampler(LENGTHS, batch_size=4, num_replicas=2, rank=2)


def test_the_order_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    list(LengthGroupedBatchSampler(LENGTHS, batch_size=4, num_replicas=2, rank=0))
    assert torch.rand(1).equal(expected)

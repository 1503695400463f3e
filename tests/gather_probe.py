"""What each process of the 2-process gather test runs (spawned, so it must live in an importable module)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from diary_lightning.evaluation.samples import gather_rows

# Rank r generated positions r, r + 2, ... of the subset a..e.
SHARDS = [[{"id": "a", "diary": "가"}, {"id": "c", "diary": "다"}, {"id": "e", "diary": "마"}],
          [{"id": "b", "diary": "나"}, {"id": "d", "diary": "라"}]]


def gather_on_rank(rank: int, world_size: int, directory: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{directory}/rendezvous", rank=rank,
                                         world_size=world_size)
    try:
        merged = gather_rows(SHARDS[rank], rank, world_size)
        (Path(directory) / f"rank{rank}.json").write_text(json.dumps(merged, ensure_ascii=False))
    finally:
        torch.distributed.destroy_process_group()

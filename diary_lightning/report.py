"""The data summary printed by ``preprocess``: what was read, skipped, cut, and how much padding batches waste."""

from __future__ import annotations

from typing import Any

import numpy as np

from diary_lightning.prepare import int_column, sequence_lengths
from diary_lightning.sampler import LengthGroupedBatchSampler, padding_efficiency


def _percentiles(values: np.ndarray) -> dict[str, int]:
    if not len(values):
        return {"p50": 0, "p95": 0, "max": 0}
    ordered = np.sort(values)
    pick = lambda q: int(ordered[min(int(q * len(ordered)), len(ordered) - 1)])  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "max": int(ordered[-1])}


def _every(splits: dict[str, Any], name: str) -> np.ndarray:
    return np.concatenate([int_column(ds, name) for ds in splits.values()])


def summarize(datamodule: Any) -> dict[str, Any]:
    """Tokenize (or load from the cache) every split and describe it."""
    splits = datamodule.splits()
    report = datamodule.report
    train = splits["train"]
    lengths = sequence_lengths(train).tolist()
    batch_size = datamodule.hparams.batch_size
    seed = 0

    def efficiency(grouped: bool) -> float:
        sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=seed, group_by_length=grouped)
        return round(padding_efficiency(lengths, sampler.batches()), 4)

    return {
        "files": report.files,
        "dialogues": sum(report.files.values()),
        "skipped": report.skipped,
        "turn_mismatches": len(report.turn_mismatches),
        "turn_mismatch_ids": report.turn_mismatches[:20],
        "empty_dialogues": report.empty_dialogues[:20],
        "empty_utterances_dropped": report.empty_utterances_dropped,
        "splits": report.splits,
        "turns_per_dialogue": _percentiles(_every(splits, "num_turns")),
        "prompt_tokens": _percentiles(_every(splits, "prompt_length")),
        "target_tokens": _percentiles(_every(splits, "target_length")),
        "turns_cut": report.turns_cut,
        "writer_chosen_by": report.writer_chosen_by,
        "too_long_dropped": report.too_long_dropped,
        "batch_size": batch_size,
        "group_by_length": datamodule.hparams.group_by_length,
        "padding_efficiency": efficiency(datamodule.hparams.group_by_length),
        "padding_efficiency_shuffle": efficiency(False),
    }

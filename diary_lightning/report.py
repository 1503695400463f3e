"""The data summary printed by ``preprocess``: what was read, skipped, cut, and how much padding batches waste."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diary_lightning.sampler import LengthGroupedBatchSampler, padding_efficiency


def _percentiles(values: Sequence[int]) -> dict[str, int]:
    if not values:
        return {"p50": 0, "p95": 0, "max": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(int(q * len(ordered)), len(ordered) - 1)]  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1]}


def summarize(datamodule: Any) -> dict[str, Any]:
    """Tokenize (or load from the cache) every split and describe it."""
    splits = datamodule.splits()
    report = datamodule.report
    train = splits["train"]
    lengths = [len(ids) for ids in train["input_ids"]]
    batch_size = datamodule.hparams.batch_size
    seed = 0

    def efficiency(grouped: bool) -> float:
        sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=seed, group_by_length=grouped)
        return round(padding_efficiency(lengths, sampler.batches()), 4)

    every = [ds for ds in splits.values()]
    return {
        "files": report["files"],
        "dialogues": sum(report["files"].values()),
        "skipped": report["skipped"],
        "turn_mismatches": len(report.get("turn_mismatches", [])),
        "splits": report["splits"],
        "turns_per_dialogue": _percentiles([n for ds in every for n in ds["num_turns"]]),
        "prompt_tokens": _percentiles([n for ds in every for n in ds["prompt_length"]]),
        "target_tokens": _percentiles([n for ds in every for n in ds["target_length"]]),
        "turns_cut": report["turns_cut"],
        "too_long_dropped": report["too_long_dropped"],
        "batch_size": batch_size,
        "group_by_length": datamodule.hparams.group_by_length,
        "padding_efficiency": efficiency(datamodule.hparams.group_by_length),
        "padding_efficiency_shuffle": efficiency(False),
    }

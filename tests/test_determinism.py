"""Same seed and config, same run: losses, adapter weights, splits."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from fits import finish, fit_config, run_dir, scalars, start_fit
from safetensors.torch import load_file

from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.splits import split_dialogues


@pytest.mark.slow
def test_two_fits_with_one_seed_give_identical_losses_and_adapters(reference_fit: Any, tiny_model_dir: Path) -> None:
    again = fit_config(reference_fit.config.parent.parent, tiny_model_dir, "again")
    finish(start_fit(again))
    first, second = reference_fit.wait(), run_dir(again)

    losses = scalars(first, "train/loss")
    assert len(losses) > 1 and losses == scalars(second, "train/loss")
    weights = [load_file(run / "checkpoints" / "adapter" / "adapter_model.safetensors") for run in (first, second)]
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 0
    for key, value in weights[0].items():
        assert value.equal(weights[1][key]), key
    # The adapters trained: a fresh LoRA B is zero.
    assert any(value.abs().sum() > 0 for key, value in weights[0].items() if "lora_B" in key)


def _ids(parts: dict[str, list]) -> dict[str, set[str]]:
    return {name: {d.id for d in dialogues} for name, dialogues in parts.items()}


def test_split_depends_on_ids_and_seed_not_on_file_order(sample_dialogues: Path) -> None:
    dialogues = read_dialogues(str(sample_dialogues)).dialogues
    shuffled = list(dialogues)
    random.Random(7).shuffle(shuffled)
    assert [d.id for d in shuffled] != [d.id for d in dialogues]

    split = _ids(split_dialogues(dialogues, 0.2, 0.2, seed=5))
    assert split == _ids(split_dialogues(shuffled, 0.2, 0.2, seed=5))
    assert all(split.values())
    assert split != _ids(split_dialogues(dialogues, 0.2, 0.2, seed=6))

"""Numbers that must not drift: the training loss of the first optimizer steps of a seeded tiny fit.

GOLDEN was produced by ``python scripts/golden_loss.py`` (torch 2.13.0 CPU, transformers 5.24.0, peft 0.21.2,
bitsandbytes' CPU NF4 path). A change that moves these values changes what training computes: the data
order, the prompt, the masking, the initialisation, the loss or the schedule. Rerun the script and update
GOLDEN only when that is the change's intent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import ROOT

GOLDEN = [7.634468078613281, 7.63929557800293, 7.607847690582275, 7.5848708152771]


def _script():
    spec = importlib.util.spec_from_file_location("golden_loss", ROOT / "scripts" / "golden_loss.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_first_steps_of_a_seeded_tiny_fit_keep_their_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    losses = _script().first_losses(tiny_model_dir, tmp_path / "cache")
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(GOLDEN), rtol=1e-4, atol=0)

"""A fit SIGKILLed at any moment and resumed with ``--ckpt_path last`` logs every value, keeps every checkpoint and
exports every adapter tensor exactly as a fit never stopped (tests/kills.py has the run and the moments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kills import MOMENTS, differences, kill_config, killed_and_resumed, logged, reference


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("kills")
    return {"base": base, "run": reference(kill_config(base, tiny_model_dir, "reference"))}


@pytest.mark.slow
def test_the_uninterrupted_run_validates_on_checkpoint_steps(uninterrupted: dict[str, Any]) -> None:
    """The layout the moments rely on: a step checkpoint on each validation step, generation on, dropout on."""
    values = logged(uninterrupted["run"])
    assert sorted(values["val/loss"]) == [1, 5] and sorted(values["val/rouge1"]) == [1, 5]
    assert sorted(values["train/loss"]) == list(range(8))


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_kill_at_this_moment_resumes_identically(moment: str, uninterrupted: dict[str, Any],
                                                   tiny_model_dir: Path) -> None:
    config = kill_config(uninterrupted["base"], tiny_model_dir, moment.replace("@", "-"))
    run = killed_and_resumed(config, moment)["run"]
    assert differences(run, uninterrupted["run"]) == []
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # nothing half-written left


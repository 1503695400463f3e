"""The training loss of the first optimizer steps of the shipped tiny recipe, run through the CLI: the golden
values of ``tests/test_golden.py``, printed as JSON.

    python tests/golden_loss.py                      # builds the tests' tiny model in a temporary folder
    python tests/golden_loss.py --lr_scheduler linear  # the same fit with another schedule, for comparison

The fit is ``configs/tiny.yaml`` with only what a test must change: the model folder, the run and cache
folders, no validation, a loss logged every step, and STEPS steps, enough that the learning rate has decayed
for several of them after the warm-up, so that the schedule's shape (cosine or linear) shows in the losses.
Rerun it and paste its output into ``GOLDEN`` only when a change is meant to alter training (the loss, the
data order, the initialisation, the schedule), and say so in the commit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "tiny.yaml"
STEPS = 20  # configs/tiny.yaml warms up for 5: 15 steps of decay


def first_losses(model_dir: str | Path, work_dir: str | Path, steps: int = STEPS, lr_scheduler: str | None = None) -> list[float]:
    """``train/loss`` of each of the first ``steps`` optimizer steps of ``configs/tiny.yaml`` on ``model_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from diary_lightning.cli.commands import run

    work_dir = Path(work_dir)
    argv = ["fit", "--config", str(CONFIG), "--model.base_model", str(model_dir),
            "--data.paths", json.dumps([str(ROOT / "diary_lightning" / "resources" / "sample_dialogues.json")]),
            "--data.cache_dir", str(work_dir / "cache"), "--trainer.default_root_dir", str(work_dir / "run"),
            "--trainer.max_steps", str(steps), "--trainer.log_every_n_steps", "1",
            "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
            "--trainer.enable_progress_bar", "false"]
    if lr_scheduler:
        argv += ["--model.lr_scheduler", lr_scheduler]
    run(argv)
    (version,) = sorted((work_dir / "run" / "tensorboard").iterdir())
    events = EventAccumulator(str(version), size_guidance={"scalars": 0})
    events.Reload()
    return [event.value for event in events.Scalars("train/loss")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a tiny model folder (default: build the tests' one)")
    parser.add_argument("--lr_scheduler", default=None, help="override the config's schedule (cosine, linear)")
    args = parser.parse_args(argv)
    from diary_lightning.model.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_tiny_model(Path(tmp) / "model")  # the tests' fixture: seed 0, no warm-up
        print(json.dumps(first_losses(model, Path(tmp) / "work", lr_scheduler=args.lr_scheduler)))


if __name__ == "__main__":
    main()

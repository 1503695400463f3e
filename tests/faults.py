"""The fault injector of the durability tests: SIGKILL a diary_lightning process at a named moment, to prove
that a resumed run does not care when the previous one died.

The package only names its moments (``diary_lightning.io.atomic.fault_point``) and otherwise knows nothing of
this. Run a command through this file instead of ``python -m diary_lightning``::

    DIARY_LIGHTNING_KILL_AT=MOMENT[@N] python tests/faults.py fit --config ...

and the process dies the N-th time (default 1) it reaches MOMENT. With ``DIARY_LIGHTNING_KILL_WITH=TERM`` (or
``INT``) it sends itself that signal there instead of SIGKILL and goes on, so that a test of the graceful stop
knows exactly where the signal landed instead of racing a running fit:

========================  ==============================================================================
``data``                  inside the training loader, fetching a batch
``step``                  after the backward of a micro-batch whose optimizer step is not done yet
``checkpoint-write``      a checkpoint's temporary file written, not yet renamed to its name
``checkpoint-saved``      a checkpoint renamed into place, the step's logs not yet written
``validation``            after a validation batch
``generation``            after a batch of diaries generated during validation
``folder-write``          a folder (exported adapter, merged model, tokenized cache) written under its temporary
                          name, not yet published
``publish``               between the two renames that publish a folder (the old one moved aside)
``predict``               after a batch of diaries written to ``OUTPUT.partial``
========================  ==============================================================================
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import lightning as L

from diary_lightning.io import atomic
from diary_lightning.training.lightning_internals import step_ends_here

ENV = "DIARY_LIGHTNING_KILL_AT"
WITH = "DIARY_LIGHTNING_KILL_WITH"
MOMENTS = ("data", "step", "checkpoint-write", "checkpoint-saved", "validation", "generation", "folder-write",
           "publish", "predict")
# The moments only KillAt's hooks see; the others are the package's own fault points. KillAt joins the run
# through the command line, which the printed resume command repeats, so it is added only when needed.
CALLBACK_MOMENTS = ("data", "step", "validation", "generation", "predict")
TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
_seen: dict[str, int] = {}


def plan() -> tuple[str, int] | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    name, _, count = value.partition("@")
    if name not in MOMENTS or not (count or "1").isdigit():
        raise SystemExit(f"{ENV}={value!r}: expected one of {', '.join(MOMENTS)}, optionally @N")
    return name, int(count or 1)


def signal_to_send() -> signal.Signals:
    name = os.environ.get(WITH) or "KILL"
    if name not in ("KILL", "TERM", "INT"):
        raise SystemExit(f"{WITH}={name!r}: expected KILL, TERM or INT")
    return signal.Signals[f"SIG{name}"]


def reached(moment: str) -> None:
    """Signal this process (SIGKILL unless told otherwise) if the plan names ``moment`` and this is its N-th
    arrival."""
    armed = plan()
    if armed is None or armed[0] != moment:
        return
    _seen[moment] = _seen.get(moment, 0) + 1
    if _seen[moment] == armed[1]:
        os.kill(os.getpid(), signal_to_send())


def arm() -> None:
    """Let the package's named points kill this process."""
    atomic.fault_hook = reached


class KillAt(L.Callback):
    """The moments that Lightning's hooks (or a wrapper around an object they hand over) can see."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dataset = trainer.train_dataloader.dataset
        fetch = dataset.__getitems__

        def getitems(keys: list) -> Any:
            reached("data")
            return fetch(keys)

        # The loader's iterator holds this very object, so an attribute on it is what the next fetch calls.
        dataset.__getitems__ = getitems
        generate = pl_module.generate

        def generate_then_check(*args: Any, **kwargs: Any) -> Any:
            out = generate(*args, **kwargs)
            if trainer.state.fn == "fit" and not trainer.sanity_checking:
                reached("generation")
            return out

        pl_module.generate = generate_then_check

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # The backward of this micro-batch is done and, between micro-batches of one step, the optimizer has
        # not stepped: the same state as right after the backward.
        if not step_ends_here(trainer, batch_idx):
            reached("step")

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            reached("validation")

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        reached("predict")


def main(argv: list[str]) -> None:
    armed = plan()  # a bad value fails before anything runs
    signal_to_send()
    arm()
    if armed and armed[0] in CALLBACK_MOMENTS and argv[:1] and argv[0] in TRAINER_COMMANDS:
        argv = [*argv, "--trainer.callbacks+=faults.KillAt"]
    from diary_lightning.cli.commands import main as cli_main

    cli_main(argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))  # so that the CLI can import faults.KillAt
    main(sys.argv[1:])

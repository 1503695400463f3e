"""Every place diary_lightning leans on Lightning beyond its public API, in one module.

Each was checked against lightning 2.6.6 (``pyproject.toml`` allows ``>=2.4,<3``): when upgrading Lightning,
read the Lightning source named for each and run ``tests/test_resume.py``, ``tests/test_ddp.py`` and
``tests/test_cli.py``, which fail if one of them changed.
"""

from __future__ import annotations

import os
from typing import Any

CHECKED_AGAINST = "2.6.6"


def logged_step(trainer: Any) -> int:
    """The step Lightning gives the metrics logged now, so that a TensorBoard text sits beside them.

    Why internal: the logger connector takes it from ``fit_loop.epoch_loop._batches_that_stepped``
    (``trainer/connectors/logger_connector/logger_connector.py``); no public attribute carries it, and
    ``trainer.global_step`` differs from it (by one during validation inside fit).
    """
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def batches_trained_this_epoch(trainer: Any) -> int:
    """Training batches completed in the current epoch, as the checkpoint being written records them.

    Why internal: ``fit_loop.epoch_loop.batch_progress`` is what Lightning saves and restores; the public
    ``batch_idx`` of a hook is not available where the loader's state is asked for (inside
    ``trainer.save_checkpoint``), and a loader cannot tell batches trained from the one fetched ahead.
    """
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


def global_seed() -> int:
    """The seed ``seed_everything`` set, in every DDP rank (0 when none was set).

    Why here: Lightning documents that ``seed_everything`` exports it as the environment variable
    ``PL_GLOBAL_SEED`` (``lightning/fabric/utilities/seed.py``) but offers no getter.
    """
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class KeepConfiguredHyperparameters:
    """A LightningCLI mix-in that keeps the configuration the user gave when ``--ckpt_path`` is set.

    Why internal: LightningCLI's private ``_parse_ckpt_path`` (``lightning/pytorch/cli.py``) replaces every
    ``model.*`` setting with the hyperparameters stored in the checkpoint, silently undoing e.g.
    ``--model.max_new_tokens`` at predict time, and has no switch to turn it off. diary_lightning instead
    checks the checkpoint against the configured model (``check_adapter_checkpoint``) and names both in
    the error when they do not fit.
    """

    def _parse_ckpt_path(self) -> None:
        return None

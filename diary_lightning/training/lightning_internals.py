"""Every place diary_lightning leans on Lightning beyond its public API, in one module.

Each was checked against lightning 2.6.6 (``pyproject.toml`` allows ``>=2.6.0,<2.7``): when upgrading Lightning,
read the Lightning source named for each and run ``tests/test_resume.py``, ``tests/test_ddp.py`` and
``tests/test_cli.py``, which fail if one of them changed.
"""

from __future__ import annotations

import os
import sys
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


def attached(module: Any) -> bool:
    """Whether a LightningModule runs under a trainer (fit, validate, ...) rather than alone (export, tests).

    Why internal: ``LightningModule.trainer`` raises when none is attached; only the private ``_trainer`` tells
    without raising.
    """
    return module._trainer is not None


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
    ``--model.max_new_tokens`` at predict time, and has no switch to turn it off. diary_lightning instead makes
    what the checkpoint recorded the parser's defaults (``DiaryCLI.parse_arguments``), which the config and the
    options override, and checks the checkpoint against the model configured so (``check_adapter_checkpoint``),
    naming both in the error when they do not fit.
    """

    def _parse_ckpt_path(self) -> None:
        return None


class PlainSubcommands:
    """A LightningCLI mix-in for subcommands that are plain functions beside the trainer's (``merge``, ``app``):
    parsed by the same parser class (dotted flags, ``--config``, one-line errors), listed in the same ``--help``,
    their arguments taken from the function's signature and docstring, and nothing instantiated for them.

    Why internal: LightningCLI builds its subcommand parsers in the private ``_add_subcommands`` (with
    ``_prepare_subcommand_parser``, ``lightning/pytorch/cli.py``) from trainer methods only, instantiates a model,
    data module and trainer for every subcommand in ``instantiate_classes``, seeds in ``_set_seed`` and runs a
    subcommand in ``_run_subcommand`` as a trainer method given the model and data module. The CLI method of the
    subcommand's name runs a plain one, given the function's arguments as parsed.
    """

    def __init__(self, *positional: Any, **kwargs: Any) -> None:
        argv = kwargs.get("args")
        argv = sys.argv[1:] if argv is None else argv
        # Only the subcommand asked for gets its whole parser: building one from the classes' signatures costs
        # about 0.15 s of CPU, ten of them most of the command line's own start-up. A command line that does not
        # open with a subcommand's name (a top-level --config, or none) gets them all, as Lightning builds them.
        names = {*self.subcommands(), *self.plain_subcommands()}
        first = argv[0] if isinstance(argv, (list, tuple)) and argv else None
        # A bare --help: the list of subcommands and their one-line descriptions.
        self._building = {first} if first in names else set() if first in ("-h", "--help") else names
        super().__init__(*positional, **kwargs)

    def plain_subcommands(self) -> dict[str, Any]:
        """Name -> function; the CLI method of the same name runs it."""
        return {}

    def _add_subcommands(self, parser: Any, **kwargs: Any) -> None:
        self._subcommand_parsers = {}
        subcommands = parser.add_subcommands()
        for name in self.subcommands():
            fn = getattr(self.trainer_class, name)
            description = kwargs.get(name, {}).get("description") or _summary(fn)
            if name in self._building:
                subparser = self._prepare_subcommand_parser(self.trainer_class, name, **{
                    **kwargs.get(name, {}), "description": description})
            else:
                subparser = self.init_parser(description=description)
            self._subcommand_parsers[name] = subparser
            subcommands.add_subcommand(name, subparser, help=description)
        for name, fn in self.plain_subcommands().items():
            description = _summary(fn)
            subparser = self.init_parser(description=description, **kwargs.get(name, {}))
            if name in self._building:
                self._subcommand_method_arguments[name] = subparser.add_function_arguments(fn, as_group=False)
            self._subcommand_parsers[name] = subparser
            subcommands.add_subcommand(name, subparser, help=description)

    def instantiate_classes(self) -> None:
        if self.subcommand in self.plain_subcommands():
            self.config_init = self.parser.instantiate_classes(self.config)
            self.model = self.datamodule = self.trainer = None
            return
        super().instantiate_classes()

    def _set_seed(self) -> None:
        if self.subcommand not in self.plain_subcommands():  # nothing of theirs is random
            super()._set_seed()

    def _run_subcommand(self, subcommand: str) -> None:
        # Lightning's looks the subcommand up on the trainer, and passes the model and data module, which a plain
        # function has none of (app's ``model`` is its own argument).
        if subcommand not in self.plain_subcommands():
            return super()._run_subcommand(subcommand)
        config = self.config_init[subcommand]
        getattr(self, subcommand)(**{key: config[key] for key in self._subcommand_method_arguments[subcommand]})
        return None


def _summary(fn: Any) -> str:
    """The first paragraph of ``fn``'s docstring, on one line."""
    return " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())


def step_ends_here(trainer: Any, batch_idx: int) -> bool:
    """Whether the optimizer steps after this batch: every ``accumulate_grad_batches`` batches of an epoch and on
    its last one (public attributes only, as Lightning decides it in ``_TrainingEpochLoop._should_accumulate``)."""
    done = batch_idx + 1
    return done % trainer.accumulate_grad_batches == 0 or done == trainer.num_training_batches


def validation_follows(trainer: Any) -> bool:
    """Whether Lightning validates right after the current training batch.

    Why internal: only ``_TrainingEpochLoop._should_check_val_fx`` (``loops/training_epoch_loop.py``) knows,
    from the loop's batch progress and data fetcher; asked from ``on_train_batch_end`` it answers as the loop
    will a moment later.
    """
    loop = trainer.fit_loop
    return loop.epoch_loop._should_check_val_fx(loop._data_fetcher)


def defer_step_checkpoint(callback: Any, trainer: Any) -> int | None:
    """Make a ``ModelCheckpoint`` whose step trigger fires now write at the end of the coming validation instead;
    returns its ``every_n_train_steps`` to give back with :func:`restore_step_trigger` (None: nothing deferred).

    Why internal: ``ModelCheckpoint`` defers a step save to ``on_validation_end`` only for a monitored metric
    not yet known (``_defer_save_until_validation``, ``callbacks/model_checkpoint.py``); setting that flag
    and hiding the step trigger (``_every_n_train_steps``) for this one batch uses the same path. With
    validation only at epoch ends (``_should_save_on_train_epoch_end``) it would not write at validation end.
    """
    every = callback._every_n_train_steps
    if every < 1 or trainer.global_step % every or callback._should_save_on_train_epoch_end(trainer):
        return None
    callback._every_n_train_steps = 0
    callback._defer_save_until_validation = True
    return every


def restore_step_trigger(callback: Any, every: int) -> None:
    callback._every_n_train_steps = every


def step_metrics_to_log(trainer: Any) -> dict[str, float] | None:
    """The metrics Lightning logs at the end of the current optimizer step, once the batch-end hooks (and the
    checkpoints they write) are done; None when it logs none. ``epoch`` included, as it adds it.

    Why internal: the logger connector computes them (``trainer._logger_connector.metrics["log"]``,
    ``should_update_logs``; ``trainer/connectors/logger_connector/logger_connector.py``) right after
    ``on_train_batch_end``, where no public API reaches.
    """
    from lightning.fabric.utilities.apply_func import convert_tensors_to_scalars

    connector = trainer._logger_connector
    if not connector.should_update_logs or not trainer.loggers:
        return None
    metrics = convert_tensors_to_scalars(connector.metrics["log"])
    if metrics:
        metrics.setdefault("epoch", trainer.current_epoch)
    return metrics or None

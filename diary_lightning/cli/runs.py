"""The run folder, and what each subcommand sets up around the trainer.

Everything one run writes lives under ``trainer.default_root_dir``.

``ROOT/checkpoints`` holds the checkpoints and the exported adapter, ``ROOT/tensorboard/version_N`` the
logs, ``ROOT/predictions.jsonl`` the diaries (the names: :class:`diary_lightning.model.settings.RunFolder`).
The paths are derived from ``ROOT``, not repeated in YAML, so one flag (``--trainer.default_root_dir runs/nikl``)
moves the whole run. A ``dirpath`` or logger given explicitly in a config still wins.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from diary_lightning.errors import ConfigError
from diary_lightning.io.atomic import remove_stale_temporaries
from diary_lightning.io.lock import JobLock
from diary_lightning.model.metadata import checkpoint_state, read_checkpoint
from diary_lightning.model.settings import CHECKPOINTS, LOGS, RunFolder
from diary_lightning.training.checkpointing import checkpoint_dir

log = logging.getLogger(__name__)


def place_checkpoints(callbacks: list[Any], root: str | os.PathLike) -> None:
    """Point every ModelCheckpoint without a ``dirpath`` at ``ROOT/checkpoints``.

    Lightning's own default is ``ROOT/tensorboard/version_N/checkpoints``: a new folder per run, where
    ``--ckpt_path last`` could not find the run it should continue.
    """
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and not callback.dirpath:
            callback.dirpath = os.path.realpath(os.path.expanduser(Path(root) / CHECKPOINTS))


def run_logger(subcommand: str, root: str | os.PathLike, version: int | str | None = None,
               purge_step: int | None = None) -> TensorBoardLogger | bool:
    """The logger of a subcommand: fit, validate and test log to ``ROOT/tensorboard``; predict, export and
    preprocess log nothing, so they leave no empty ``version_N`` beside the training run."""
    if subcommand not in ("fit", "validate", "test"):
        return False
    kwargs = {"purge_step": purge_step} if purge_step is not None else {}
    # No hp_metric: Lightning's placeholder (-1) would be the first chart a user sees.
    return TensorBoardLogger(save_dir=str(root), name=LOGS, version=version, default_hp_metric=False, **kwargs)


def resumed_log(ckpt_path: str | None, checkpoints: Path, root: str | os.PathLike) -> tuple[int | str | None, int | None]:
    """The TensorBoard version a fit resumed from ``ckpt_path`` continues, and the step from which the
    interrupted run's events are superseded (TensorBoard hides those, so the curve is one line).

    The version is the one the checkpoint recorded; a checkpoint from before that was recorded
    continues the newest version of the folder. (None, None) for a fresh fit.
    """
    if not ckpt_path:
        return None, None
    path = RunFolder.at(root, checkpoints).last_checkpoint if ckpt_path == "last" else Path(ckpt_path)
    if ckpt_path == "best" or not path.is_file():
        return None, None  # resolved (or refused) later; a new version is then the safe choice
    metadata = read_checkpoint(path, strict=False)
    version = metadata.log_version if metadata is not None else None
    if version is None:
        versions = [int(m.group(1)) for p in (Path(root) / LOGS).glob("version_*")
                    if (m := re.fullmatch(r"version_(\d+)", p.name))]
        version = max(versions) if versions else None
    return version, int(checkpoint_state(path).get("global_step", 0))


def refuse_mixed_runs(checkpoints: Path, ckpt_path: str | None) -> None:
    """A fresh fit into a folder that holds another run's checkpoints would put its own beside them, and
    ``--ckpt_path best`` could then pick one of the old ones. Refused rather than versioned: the paths
    a user reads in the docs (``ROOT/checkpoints/last.ckpt``, ``ROOT/checkpoints/adapter``) stay true."""
    if ckpt_path or not checkpoints.is_dir():
        return
    old = sorted(p.name for p in checkpoints.glob("*.ckpt"))
    if old:
        shown = ", ".join(old[:3]) + (f" and {len(old) - 3} more" if len(old) > 3 else "")
        raise ConfigError(
            f"{checkpoints} already holds the checkpoints of another run ({shown}). Start this run in a new "
            f"folder (--trainer.default_root_dir runs/NEW), or continue that one (--ckpt_path last)."
        )


def refuse_other_training_data(checkpoints: Path, ckpt_path: str | None, datamodule: Any, confirmed: bool) -> None:
    """A fit resumed from a checkpoint continues on the data it was trained on: one run, one dataset. Other data
    (files added, removed or edited) is refused before the model loads, unless ``confirmed``
    (``--resume_other_data true``); a checkpoint that records no data (older ones) is taken as it is."""
    if not ckpt_path or ckpt_path == "best":
        return
    path = RunFolder.at(checkpoints.parent, checkpoints).last_checkpoint if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        return  # Lightning names a missing checkpoint
    saved = (checkpoint_state(path).get(type(datamodule).__qualname__) or {}).get("training_data")
    if saved is None or saved == datamodule.training_data_fingerprint():
        return
    if confirmed:
        log.warning("--resume_other_data: continuing %s on other training data than it was trained on", path)
        return
    raise ConfigError(
        f"--ckpt_path {ckpt_path}: {path} was trained on other data than --data.paths {datamodule.hparams.paths} "
        "holds now (files added, removed or edited). Continue this run on it with --resume_other_data true, or "
        "start a new run (--trainer.default_root_dir runs/NEW).")


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def cpu_when_no_accelerator_needed(subcommand: str, trainer: dict[str, Any]) -> dict[str, Any]:
    """preprocess never loads the model, and export only copies an adapter out of a checkpoint: neither may
    fail because the config names a GPU this machine lacks. Export keeps the GPU when there is one."""
    if subcommand == "preprocess" or (subcommand == "export" and not torch.cuda.is_available()
                                      and trainer.get("accelerator") not in (None, "cpu")):
        return {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}
    return {}


RESUME_OPTIONS = {"fit": ("--ckpt_path", "last"), "predict": ("--resume_predictions", "true")}
"""What continues a stopped run of each subcommand."""


def resume_command(argv: list[str]) -> str | None:
    """The command that continues a fit or a predict after a stop: the same arguments with ``--ckpt_path last``
    (fit) or ``--resume_predictions true`` (predict)."""
    if argv[:1] not in ([name] for name in RESUME_OPTIONS):
        return None
    option, value = RESUME_OPTIONS[argv[0]]
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith(f"{option}="):
            skip = False
            continue
        if arg == option:
            skip = True
            continue
        kept.append(arg)
    on_path = shutil.which("python")
    python = "python" if on_path and os.path.realpath(on_path) == os.path.realpath(sys.executable) else sys.executable
    return shlex.join([python, "-m", "diary_lightning", *kept, option, value])


def require_adapter_or_zero_shot(subcommand: str, config: dict[str, Any], hparams: Any) -> None:
    """predict needs an adapter unless zero-shot is asked for; validate and test say when they score the base alone."""
    adapter = config.get("ckpt_path") or hparams.adapter_path
    if adapter and config.get("zero_shot"):
        raise ConfigError(f"--zero_shot true writes with the base model alone; it contradicts the adapter {adapter}")
    if adapter:
        return
    if subcommand == "predict" and not config.get("zero_shot"):
        raise ConfigError("predict needs an adapter: --ckpt_path CKPT (a checkpoint of fit, or last or best) or "
                          "--model.adapter_path DIR (an exported adapter folder). To write with the untuned base "
                          "model, the zero-shot baseline, add --zero_shot true.")
    log.info("zero-shot: %s the base model %s with no adapter (--ckpt_path or --model.adapter_path gives one)",
             "writing with" if subcommand == "predict" else "scoring", hparams.base_model)


# The CLI's locks: one job per run folder or predictions file (diary_lightning.io.lock), taken before anything
# is created there, and the temporaries a killed job left behind removed.

class RunLocks:
    """Mixed into the CLI, which has ``self.trainer``."""

    def _lock(self, path: str | os.PathLike, what: str = "folder") -> None:
        """Refuse at once, before any model is loaded, when another job writes to ``path``."""
        if not lock_is_needed():
            return
        self._locks.append(JobLock(path, what).acquire())

    def _lock_run_folder(self, checkpoints_too: bool = True) -> None:
        self._locks: list[JobLock] = []
        self._lock(self.trainer.default_root_dir)
        if checkpoints_too:
            self._lock_checkpoints()

    def _lock_checkpoints(self) -> None:
        checkpoints = checkpoint_dir(self.trainer)
        if not checkpoints.resolve().is_relative_to(Path(self.trainer.default_root_dir).resolve()):
            self._lock(checkpoints)
        # What a job killed here left: its temporaries, and the adapter it was replacing.
        for folder in {Path(self.trainer.default_root_dir), checkpoints}:
            remove_stale_temporaries(folder)

    def _unlock(self) -> None:
        for lock in getattr(self, "_locks", []):
            lock.release()


def lock_is_needed() -> bool:
    """Only the first process of a job locks: under DDP the other ranks run the same command."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0

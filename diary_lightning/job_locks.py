"""The CLI's locks: one job per run folder or predictions file (diary_lightning.locks), taken before anything
is created there, and the temporaries a killed job left behind removed."""

from __future__ import annotations

import os
from pathlib import Path

from diary_lightning.checkpointing import checkpoint_dir
from diary_lightning.locks import JobLock, lock_is_needed, remove_stale_temporaries


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

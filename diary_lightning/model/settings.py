"""The settings that decide which diary a run writes, in one typed object, and the names of a run folder.

:class:`RunSettings` holds the prompt (:class:`~diary_lightning.data.encoding.PromptFormat`: template, label
scheme, anonymization, default writer and bots), ``max_length`` and the generation settings. The data module
builds the prompt and ``max_length`` from ``data.*`` (normalising ``data.writer`` and ``data.bots`` there, once),
the LightningModule the generation settings from ``model.*``; a checkpoint or an exported adapter carries them in
its :class:`~diary_lightning.model.metadata.RunMetadata`, and what a run recorded is adopted once, where the
checkpoint or adapter is read (:func:`adopt_prompt`), then passed down as arguments.

Plain Python (and the generation settings' torch); no Lightning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diary_lightning.data.encoding import PromptFormat
from diary_lightning.model.generation import GenerationSettings

DEFAULT_MAX_LENGTH = 1024
"""``data.max_length`` when none is given (and of a zero-shot ``app``, which has no run to take it from)."""
PROMPT_KEYS = ("prompt_template", "anonymization", "label_scheme", "speaker_labels", "writer", "bots")
"""The prompt's keys at the top of a saved run's settings (:meth:`PromptFormat.state`)."""


@dataclass(frozen=True)
class RunSettings:
    """Everything besides the weights that decides the diaries a run writes."""

    prompt: PromptFormat | None = None
    """None where no prompt was recorded (an adapter exported without a data module, an old checkpoint)."""
    max_length: int | None = None
    """Most tokens of prompt and diary."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)

    def to_dict(self) -> dict[str, Any]:
        """The prompt's keys at the top, where readers of ``diary_lightning.json`` have always found them."""
        return {**(self.prompt.state() if self.prompt is not None else {}), "max_length": self.max_length,
                "generation": self.generation.to_dict()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunSettings:
        """From :meth:`to_dict` (or an older file, which may lack the prompt or some generation settings)."""
        prompt = {key: values[key] for key in PROMPT_KEYS if values.get(key) is not None}
        return cls(prompt=PromptFormat.from_settings(prompt) if prompt.get("prompt_template") else None,
                   max_length=values.get("max_length"),
                   generation=GenerationSettings.from_mapping({**GenerationSettings().to_dict(),
                                                               **(values.get("generation") or {})}))


def adopt_prompt(configured: PromptFormat, saved: PromptFormat, writer: tuple[str, ...] | None,
                 bots: tuple[str, ...] | None) -> PromptFormat:
    """The prompt to write with for a model trained with ``saved``: its template, labels and anonymization,
    which it was trained to read, replace the configured ones; its writer and bots are only defaults, which the
    ``data.writer`` and ``data.bots`` given (``writer``, ``bots``: None when not given) override."""
    return dataclasses.replace(saved, writer=writer or saved.writer, bots=bots or saved.bots)


# -- the run folder: every name a run writes under ``trainer.default_root_dir`` --------------------------------

CHECKPOINTS = "checkpoints"
LOGS = "tensorboard"
LAST_CHECKPOINT = "last.ckpt"
ADAPTER = "adapter"
PREDICTIONS = "predictions.jsonl"


@dataclass(frozen=True)
class RunFolder:
    """``ROOT/checkpoints`` (or a ModelCheckpoint's own ``dirpath``) holds the checkpoints and the adapter fit
    exports, ``ROOT/tensorboard/version_N`` the logs, ``ROOT/predictions.jsonl`` the diaries and ``ROOT/adapter``
    what ``export`` writes by default. One flag (``--trainer.default_root_dir runs/nikl``) moves them all."""

    root: Path
    checkpoints: Path

    @classmethod
    def at(cls, root: str | Path, checkpoints: str | Path | None = None) -> RunFolder:
        return cls(Path(root), Path(checkpoints) if checkpoints else Path(root) / CHECKPOINTS)

    @property
    def last_checkpoint(self) -> Path:
        """What ``--ckpt_path last`` names."""
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def fit_adapter(self) -> Path:
        """Where fit exports the best checkpoint's adapter."""
        return self.checkpoints / ADAPTER

    @property
    def exported_adapter(self) -> Path:
        """``export``'s default ``--output``."""
        return self.root / ADAPTER

    @property
    def predictions(self) -> Path:
        """``predict``'s default ``--output``."""
        return self.root / PREDICTIONS

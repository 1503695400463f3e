"""What a run records besides its weights, in one type: the base model it was trained on (and a fingerprint of
it), how the base was loaded, the LoRA shape, its :class:`~diary_lightning.model.settings.RunSettings` (the prompt,
``max_length``, the generation settings) and the TensorBoard version it logs to.

The LightningModule writes it into every checkpoint (``checkpoint["diary_lightning"]``), ``export`` beside every
adapter (``diary_lightning.json``, the same keys); :func:`read_checkpoint` (a file) and :func:`read_adapter` (a
folder) are the only readers of what is on disk, and every subcommand and
:class:`~diary_lightning.inference.pipeline.DiaryPipeline` take their settings from what they return. The one
other caller of :meth:`RunMetadata.from_checkpoint` is the check of a checkpoint Lightning has already loaded into
memory (``model.loading.check_adapter_checkpoint``, from ``on_load_checkpoint``), which has no file to read.
Plain Python and torch; no Lightning.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diary_lightning.data.encoding import PromptFormat
from diary_lightning.errors import UserError
from diary_lightning.model.settings import RunSettings

FORMAT_VERSION = 2
"""1: the keys ``diary_lightning``, ``diary_lightning_run`` and the data module's state, written in three places;
2: this type under ``diary_lightning``."""
CHECKPOINT_KEY = "diary_lightning"
SETTINGS_FILE = "diary_lightning.json"
"""Beside an exported adapter: :meth:`RunMetadata.to_dict`."""
LOADING_KEYS = ("load_in_4bit", "compute_dtype", "double_quant", "attn_implementation")
"""The model settings that say how the base was loaded."""
LORA_KEYS = ("r", "alpha", "target_modules")
SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
FINGERPRINT_ROWS = 16
"""Rows of the input and output embeddings hashed at each end: enough to tell two checkpoints of one shape apart."""


class AdapterMismatchError(UserError, RuntimeError):
    """A checkpoint whose adapters do not fit the configured model."""


class BaseMismatchError(AdapterMismatchError):
    """An adapter loaded onto another base model than the one it was trained on."""


def absolute_if_local(name: str) -> str:
    """An existing local folder as an absolute path (so that what records it loads from any working
    directory); a Hub id unchanged."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


@dataclass(frozen=True)
class BaseFingerprint:
    """Which base model a run was trained on: its name, the shape of its config and a hash of a few weights.

    Two bases of one shape (a fine-tune, another revision) differ in their weights: an adapter trained on one
    loads into the other without an error and writes other diaries."""

    name: str
    config: Mapping[str, Any]
    weights: str | None = None
    """sha256 of the first and last rows of the input and output embeddings, as bfloat16 (the same whichever
    compute dtype the base is loaded in); None in checkpoints from before fingerprints."""

    @classmethod
    def of(cls, name: str, model: Any) -> BaseFingerprint:
        digest = hashlib.sha256()
        # The embeddings stay unquantized in a 4-bit base, so the hash is the same for a 4-bit and a 16-bit load.
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            if layer is None:
                continue
            weight = layer.weight.detach()
            rows = torch.cat([weight[:FINGERPRINT_ROWS], weight[-FINGERPRINT_ROWS:]])
            digest.update(rows.to("cpu", torch.bfloat16).to(torch.float32).numpy().tobytes())
        return cls(absolute_if_local(name), shape_of(model.config), digest.hexdigest()[:16])

    def mismatch(self, live: BaseFingerprint) -> str | None:
        """What tells ``live`` apart from the base this fingerprint was taken of; None when nothing does."""
        if dict(self.config) != dict(live.config):
            return f"of shape {dict(self.config)}, not {dict(live.config)}"
        if self.weights is not None and live.weights is not None and self.weights != live.weights:
            return f"with other weights (fingerprint {self.weights}, not {live.weights})"
        return None


def shape_of(config: Any) -> dict[str, Any]:
    """What must match between the model an adapter was trained on and the one it is loaded into."""
    return {key: getattr(config, key, None) for key in SHAPE_KEYS}


def check_base(saved: BaseFingerprint | None, live: BaseFingerprint, allow_other_base: bool = False,
               where: str = "the adapter") -> None:
    """Refuse to load an adapter onto another base than its own, naming both; another shape is always refused
    (the weights would not fit), other weights of the same shape only without ``allow_other_base``."""
    if saved is None:
        return
    mismatch = saved.mismatch(live)
    if mismatch is None:
        return
    message = (f"{where} was trained on the base model {saved.name}, but the base loaded now, {live.name}, is a "
               f"model {mismatch}")
    if dict(saved.config) != dict(live.config):
        raise BaseMismatchError(f"{message}. Set model.base_model to the base the adapter was trained on.")
    if not allow_other_base:
        raise BaseMismatchError(f"{message}: the adapter would write other diaries than it was trained to. Give "
                                f"the base it was trained on (--model.base_model {saved.name}), or load it anyway "
                                "with --model.allow_other_base true.")


@dataclass(frozen=True)
class RunMetadata:
    """Everything besides the adapter's weights that decides the diaries it writes, and what it was trained on."""

    settings: RunSettings
    """The prompt, ``max_length`` and generation settings the run writes with."""
    base_model: str | None = None
    loading: Mapping[str, Any] = field(default_factory=dict)
    """How the base was loaded: :data:`LOADING_KEYS`."""
    lora: Mapping[str, Any] = field(default_factory=dict)
    """The LoRA shape: :data:`LORA_KEYS`."""
    fingerprint: BaseFingerprint | None = None
    log_version: int | str | None = None
    """The TensorBoard version the run logs to (checkpoints only): a resumed fit continues it."""
    format_version: int = FORMAT_VERSION

    @classmethod
    def of_run(cls, model: Mapping[str, Any], settings: RunSettings, fingerprint: BaseFingerprint | None = None,
               log_version: int | str | None = None) -> RunMetadata:
        """From the LightningModule's own settings (``model``: the base, how it loads, the LoRA shape) and the
        run's settings."""
        return cls(settings=settings,
                   base_model=absolute_if_local(model["base_model"]) if model.get("base_model") else None,
                   loading={key: model[key] for key in LOADING_KEYS if key in model},
                   lora={"r": model["lora_r"], "alpha": model["lora_alpha"], "target_modules": model["target_modules"]},
                   fingerprint=fingerprint, log_version=log_version)

    # -- one layout on disk, for a checkpoint and an adapter folder ------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The prompt settings at the top (where readers of ``diary_lightning.json`` have always found them)."""
        settings = self.settings.to_dict()
        generation = settings.pop("generation")
        values: dict[str, Any] = {**settings, "model": {"base_model": self.base_model, **self.loading},
                                  "lora": dict(self.lora), "generation": generation,
                                  "format_version": self.format_version}
        if self.fingerprint is not None:
            values["base_fingerprint"] = dataclasses.asdict(self.fingerprint) | {"config": dict(self.fingerprint.config)}
        if self.log_version is not None:
            values["log_version"] = self.log_version
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunMetadata:
        """From :meth:`to_dict`, or the ``diary_lightning.json`` of an adapter exported before format 2."""
        model = dict(values.get("model") or {})
        fingerprint = values.get("base_fingerprint")
        return cls(settings=RunSettings.from_dict(values), base_model=model.pop("base_model", None), loading=model, lora=dict(values.get("lora") or {}),
                   fingerprint=BaseFingerprint(**fingerprint) if fingerprint else None,
                   log_version=values.get("log_version"), format_version=values.get("format_version", 1))

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> RunMetadata | None:
        """From a loaded checkpoint; None when diary_lightning did not write it. Checkpoints of format 1 kept the
        parts under three keys (the module's, the run folder callback's, the data module's state)."""
        saved = checkpoint.get(CHECKPOINT_KEY)
        if not isinstance(saved, Mapping):
            return None
        if saved.get("format_version", 1) >= 2:
            return cls.from_dict(saved)
        run = checkpoint.get("diary_lightning_run") or {}
        base = run.get("base_model") or saved.get("base_model")
        shape = saved.get("base_identity")
        prompt = checkpoint.get("DiaryDataModule") or {}
        settings = RunSettings(PromptFormat.from_settings(prompt) if prompt.get("prompt_template") else None,
                               run.get("max_length"))
        return cls(settings=settings, base_model=base, loading=dict(run.get("model") or {}), lora=dict(saved.get("lora") or {}),
                   fingerprint=BaseFingerprint(base, shape) if shape is not None else None,
                   log_version=run.get("log_version"), format_version=1)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def checkpoint_state(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint file, loaded once per process while it is unchanged (memory-mapped: the tensors are read
    only when used). Treat it as read-only."""
    stat = Path(path).stat()
    return _load(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


def read_checkpoint(path: str | os.PathLike, strict: bool = True) -> RunMetadata | None:
    """The metadata of a diary_lightning checkpoint, or an error naming the file; not ``strict``, None for a
    checkpoint diary_lightning did not write (or whose base it did not record)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--ckpt_path {path}: no such checkpoint")
    metadata = RunMetadata.from_checkpoint(checkpoint_state(path))
    if not strict and (metadata is None or not metadata.base_model):
        return None
    if metadata is None or not metadata.base_model:
        raise UserError(f"{path} records no base model (not written by diary_lightning?): give --model.base_model "
                        "and a --config")
    return metadata


def read_adapter(adapter_path: str | os.PathLike) -> RunMetadata:
    """The ``diary_lightning.json`` of an exported adapter, checked for what writing a diary needs."""
    path = Path(adapter_path) / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {adapter_path} is not an adapter exported by diary_lightning "
                                "(python -m diary_lightning export --ckpt_path CKPT --output DIR writes one)")
    values = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in ("prompt_template", "anonymization", "max_length", "generation", "model") if key not in values]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: export the adapter again with this version "
                         "(python -m diary_lightning export)")
    return RunMetadata.from_dict(values)


def adapter_base_model(adapter_path: str | os.PathLike) -> str:
    """The base model PEFT recorded in ``adapter_config.json`` (as the user gave it), found from any working
    directory when it is a local folder."""
    path = Path(adapter_path) / "adapter_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: give a PEFT adapter folder (written by export or by fit)")
    base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{path} names no base_model_name_or_path; give the base model explicitly")
    # A local base is recorded as the user named it (often relative to where training ran); from another working
    # directory, the absolute path it had then is tried (the base's fingerprint still checks the weights).
    settings = Path(adapter_path) / SETTINGS_FILE
    if not Path(base).expanduser().exists() and settings.is_file():
        values = json.loads(settings.read_text(encoding="utf-8"))
        recorded = (values.get("model") or {}).get("base_model")
        if (values.get("base_model_as_given") or {}).get("local") and recorded and Path(recorded).is_dir():
            return recorded
    return base

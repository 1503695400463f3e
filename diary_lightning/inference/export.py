"""Handing a trained adapter to other tools: a standard PEFT folder with everything needed to write the same
diary (tokenizer, prompt, generation settings), and a merged 16-bit model.

Lightning checkpoints are for resuming a run. What a service loads is one of these:

- the adapter folder, with ``peft.PeftModel.from_pretrained(base, folder)`` or :class:`DiaryPipeline`;
- a merged model, with ``transformers.AutoModelForCausalLM.from_pretrained(folder)``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, get_args

from diary_lightning.inference.chat_template import build_chat_template
from diary_lightning.io.atomic import atomic_directory
from diary_lightning.io.outputs import MERGED, Output, check_outputs, mark
from diary_lightning.model.generation import generation_config
from diary_lightning.model.loading import (
    DTYPES,
    ComputeDtype,
    adapter_state,
    load_adapter_checkpoint,
    load_adapter_state,
    load_tokenizer,
)
from diary_lightning.model.metadata import (
    SETTINGS_FILE,
    RunMetadata,
    absolute_if_local,
    adapter_base_model,
    checkpoint_state,
    read_checkpoint,
)
from diary_lightning.model.settings import RunSettings

log = logging.getLogger(__name__)

MERGE_DTYPES = get_args(ComputeDtype)


def save_adapter(model: Any, target: str | os.PathLike, metadata: RunMetadata, tokenizer: Any | None = None) -> Path:
    """Write the adapter of the PEFT ``model`` to ``target``, whole or not at all: PEFT's own files,
    ``diary_lightning.json`` (``metadata``) and, with a tokenizer, the tokenizer (with a chat template that renders
    the training prompt, :mod:`diary_lightning.inference.chat_template`) and ``generation_config.json``."""
    target = Path(target)
    with atomic_directory(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        _record_absolute_base(tmp / "adapter_config.json")
        if tokenizer is not None:
            # A model server given this folder builds the training prompt from a service's chat messages.
            tokenizer.chat_template = build_chat_template(metadata.settings.prompt.template, tokenizer)
            tokenizer.save_pretrained(str(tmp))
            generation_config(metadata.settings.generation, tokenizer).save_pretrained(str(tmp))
        (tmp / SETTINGS_FILE).write_text(json.dumps(metadata.to_dict(), ensure_ascii=False, indent=1),
                                         encoding="utf-8")
    return target


def _record_absolute_base(config_file: Path) -> None:
    """PEFT records the base as it was given; a relative folder would make the adapter load only from the
    working directory of training (elsewhere transformers would look for it on the Hub)."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if base and absolute_if_local(base) != base:
        config["base_model_name_or_path"] = absolute_if_local(base)
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")


def export_adapter(pl_module: Any, checkpoint: str | os.PathLike, target: str | os.PathLike,
                   datamodule: Any | None = None) -> Path:
    """Write the adapter of ``checkpoint`` to ``target`` with :func:`save_adapter`; with a data module also its
    tokenizer, prompt and ``max_length``.

    The prompt is the one the checkpoint was trained with; ``max_length`` is ``datamodule``'s and the generation
    settings are ``pl_module``'s. The weights pass through the live
    PEFT model so that PEFT writes the files and their configuration; the model's own weights are put back
    afterwards.
    """
    # A copy: the adapter's keys are renamed in it, and the loaded file is shared (metadata.checkpoint_state).
    saved = dict(checkpoint_state(checkpoint))
    current = {k: v.detach().clone() for k, v in adapter_state(pl_module.model).items()}
    try:
        load_adapter_checkpoint(pl_module.model, saved, pl_module.hparams, current, pl_module.base_fingerprint)
        recorded = read_checkpoint(checkpoint, strict=False)
        fingerprint = recorded.fingerprint if recorded is not None else None
        if datamodule is None:
            return save_adapter(pl_module.model, target,
                                pl_module.run_metadata(RunSettings(generation=pl_module.generation), fingerprint))
        settings = datamodule.settings(pl_module.generation)
        if recorded is not None and recorded.settings.prompt is not None:
            settings = dataclasses.replace(settings, prompt=recorded.settings.prompt)
        metadata = pl_module.run_metadata(settings, fingerprint)
        return save_adapter(pl_module.model, target, metadata, datamodule.tokenizer)
    finally:
        load_adapter_state(pl_module.model, current)


def merge_adapter(adapter_path: str | os.PathLike, output: str | os.PathLike, dtype: ComputeDtype = "bfloat16",
                  base_model: str | None = None, trust_remote_code: bool = False) -> Path:
    """Merge an exported adapter into a 16-bit copy of its base and save a plain transformers model
    (AutoModelForCausalLM.from_pretrained(OUTPUT)), with the adapter's tokenizer, generation config and
    diary_lightning.json.

    The base is loaded in ``dtype``, never in 4 bits: merged into NF4 weights the update would be
    rounded away to the 4-bit grid.

    Args:
        adapter_path: The exported adapter folder.
        output: The folder to write the merged model to.
        dtype: dtype of the merged weights (never 4-bit, which would round the adapter's update away).
        base_model: The base model (default: base_model_name_or_path in adapter_config.json).
        trust_remote_code: Allow the base model's repository to run its own code.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if dtype not in MERGE_DTYPES:
        raise ValueError(f"--dtype {dtype}: expected one of {', '.join(MERGE_DTYPES)}")
    adapter_path, output = Path(adapter_path), Path(output)
    base = base_model or adapter_base_model(adapter_path)
    check_outputs("merge", [Output("--output", output, "folder", MERGED)],
                  {"the adapter --adapter_path": adapter_path, "the base model": base})
    log.info("merging %s into %s (%s)", adapter_path, base, dtype)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code)
    merged = PeftModel.from_pretrained(model, str(adapter_path)).merge_and_unload()
    tokenizer_source = adapter_path if (adapter_path / "tokenizer_config.json").is_file() else base
    tokenizer = load_tokenizer(str(tokenizer_source), trust_remote_code)
    with atomic_directory(output) as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        # The training generation settings replace the base's defaults that save_pretrained wrote.
        for name in ("generation_config.json", SETTINGS_FILE):
            if (adapter_path / name).is_file():
                shutil.copyfile(adapter_path / name, tmp / name)
        mark(tmp, "merge")
    return output

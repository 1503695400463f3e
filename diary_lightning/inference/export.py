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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from diary_lightning.inference.chat_template import build_chat_template
from diary_lightning.inference.model_card import (
    CARD_FILE,
    EVALUATION_FILE,
    model_card,
    read_evaluation,
    with_evaluation,
)
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
    adapter_base_model,
    checkpoint_state,
    read_checkpoint,
)
from diary_lightning.model.settings import RunSettings

log = logging.getLogger(__name__)

MERGE_DTYPES = get_args(ComputeDtype)


BASE_AS_GIVEN = "base_model_as_given"
"""diary_lightning.json's record of the base as the user named it, and whether that is a local folder."""


def save_adapter(model: Any, target: str | os.PathLike, metadata: RunMetadata, tokenizer: Any | None = None,
                 run: Mapping[str, Any] | None = None) -> Path:
    """Write the adapter of the PEFT ``model`` to ``target``, whole or not at all: PEFT's own files,
    ``diary_lightning.json`` (``metadata``), a model card (``README.md``, from ``run``: see :func:`model_card`) and,
    with a tokenizer, the tokenizer (with a chat template that renders the training prompt,
    :mod:`diary_lightning.inference.chat_template`) and ``generation_config.json``.

    ``adapter_config.json`` names the base as the user gave it (PEFT's own record): a Hub id stays a Hub id, and
    a local folder keeps the name it was given, flagged as local in ``diary_lightning.json`` beside the absolute
    path it had (:func:`diary_lightning.model.metadata.adapter_base_model` falls back on it)."""
    target = Path(target)
    settings = metadata.to_dict()
    with atomic_directory(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        given = json.loads((tmp / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        if given:
            settings[BASE_AS_GIVEN] = {"name": given, "local": Path(given).expanduser().is_dir()}
        if tokenizer is not None:
            # A model server given this folder builds the training prompt from a service's chat messages.
            tokenizer.chat_template = build_chat_template(metadata.settings.prompt.template, tokenizer)
            tokenizer.save_pretrained(str(tmp))
            generation_config(metadata.settings.generation, tokenizer).save_pretrained(str(tmp))
        (tmp / SETTINGS_FILE).write_text(json.dumps(settings, ensure_ascii=False, indent=1), encoding="utf-8")
        # Replaces PEFT's card, whose every section says "More Information Needed".
        base = settings.get(BASE_AS_GIVEN) or {"name": (settings.get("model") or {}).get("base_model") or "?",
                                               "local": False}
        (tmp / CARD_FILE).write_text(model_card(settings, base_given=base["name"], base_is_local=base["local"],
                                                run=run or {}), encoding="utf-8")
    return target


def run_facts(checkpoint: Mapping[str, Any], checkpoint_path: str | os.PathLike, hparams: Mapping[str, Any],
              datamodule: Any | None) -> dict[str, Any]:
    """What the model card says of the run, from the checkpoint, the module's settings and the data module's
    report (the counts are there when the data was read in this process, as at the end of fit)."""
    recipe = {name: hparams[key] for name, key in (
        ("learning rate", "learning_rate"), ("optimizer", "optimizer"), ("schedule", "lr_scheduler"),
        ("warm-up steps", "warmup_steps"), ("weight decay", "weight_decay"), ("LoRA dropout", "lora_dropout"),
        ("4-bit base", "load_in_4bit"), ("compute dtype", "compute_dtype")) if hparams.get(key) is not None}
    metrics: dict[str, Any] = {}
    for state in (checkpoint.get("callbacks") or {}).values():
        # ModelCheckpoint's state: the best value of what it watched.
        if isinstance(state, Mapping) and state.get("monitor") and state.get("best_model_score") is not None:
            metrics[f"best {state['monitor']}"] = float(state["best_model_score"])
    facts: dict[str, Any] = {"recipe": recipe, "metrics": metrics, "checkpoint": Path(checkpoint_path).name,
                             "step": checkpoint.get("global_step")}
    if datamodule is not None:
        data_hparams = getattr(datamodule, "hparams", {})
        if data_hparams.get("batch_size") is not None:
            recipe["batch size (per device)"] = data_hparams["batch_size"]
        report = getattr(datamodule, "report", None)
        if report is not None:
            facts["data"] = dict(report.files)
            facts["splits"] = dict(report.splits)
    return facts


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
        run = run_facts(saved, checkpoint, pl_module.hparams, datamodule)
        if datamodule is None:
            return save_adapter(pl_module.model, target,
                                pl_module.run_metadata(RunSettings(generation=pl_module.generation), fingerprint),
                                run=run)
        settings = datamodule.settings(pl_module.generation)
        if recorded is not None and recorded.settings.prompt is not None:
            settings = dataclasses.replace(settings, prompt=recorded.settings.prompt)
        metadata = pl_module.run_metadata(settings, fingerprint)
        return save_adapter(pl_module.model, target, metadata, datamodule.tokenizer, run=run)
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
        for name in ("generation_config.json", SETTINGS_FILE, EVALUATION_FILE):
            if (adapter_path / name).is_file():
                shutil.copyfile(adapter_path / name, tmp / name)
        (tmp / CARD_FILE).write_text(merged_card(adapter_path, base, dtype), encoding="utf-8")
        mark(tmp, "merge")
    return output


def merged_card(adapter_path: Path, base: str, dtype: str) -> str:
    """The merged model's card: the adapter's, told that it is now merged into ``base`` in ``dtype``, with the
    adapter's evaluation (a merge in 16 bits writes the adapter's diaries, up to rounding)."""
    settings_file = adapter_path / SETTINGS_FILE
    settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
    given = settings.get(BASE_AS_GIVEN) or {"name": base, "local": Path(base).expanduser().is_dir()}
    card = model_card(settings, base_given=given["name"], base_is_local=given["local"], run={}, merged_dtype=dtype)
    adapter_card = adapter_path / CARD_FILE
    if not adapter_card.is_file():
        return card
    # The run's data, recipe and metrics are the adapter's: its card's sections replace the empty ones.
    theirs = {part.split("\n", 1)[0]: part for part in adapter_card.read_text(encoding="utf-8").split("\n## ")[1:]}
    ours = card.split("\n## ")
    kept = ("Training data", "Training recipe", "Metrics")
    card = "\n## ".join(theirs.get(part.split("\n", 1)[0], part) if part.split("\n", 1)[0] in kept else part
                        for part in ours)
    evaluation = read_evaluation(adapter_path)
    if not evaluation:
        return card
    # Named in the model-index as evaluate named the adapter it scored.
    return with_evaluation(card, evaluation, next(iter(evaluation.values())).get("system") or adapter_path.name)

"""Generation settings and the one call that writes diaries, shared by predict, validation and DiaryWriter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

GENERATION_KEYS = ("max_new_tokens", "num_beams", "do_sample", "temperature", "top_p", "repetition_penalty",
                   "no_repeat_ngram_size")
"""The ``model.*`` settings that decide how a diary is generated; exported beside every adapter."""


def generation_settings(hparams: Mapping[str, Any]) -> dict[str, Any]:
    return {key: hparams[key] for key in GENERATION_KEYS}


def _generate_kwargs(settings: Mapping[str, Any]) -> dict[str, Any]:
    # Sampling knobs only with sampling on: transformers warns about (or refuses to save) a greedy
    # configuration that carries a temperature.
    sampling = {"temperature": settings["temperature"], "top_p": settings["top_p"]} if settings["do_sample"] else {}
    return {key: settings[key] for key in GENERATION_KEYS if key not in ("temperature", "top_p")} | sampling


def generation_config(settings: Mapping[str, Any], tokenizer: Any) -> Any:
    """The settings as a transformers ``GenerationConfig``, so plain ``model.generate`` writes the same diary."""
    from transformers import GenerationConfig

    return GenerationConfig(**_generate_kwargs(settings), eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)


def generate_diaries(model: Any, tokenizer: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     settings: Mapping[str, Any]) -> tuple[list[str], list[bool]]:
    """Diaries for left-padded prompts, and whether each hit ``max_new_tokens`` before EOS."""
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        **_generate_kwargs(settings),
    )
    new = out[:, input_ids.shape[1]:]
    ended = (new == tokenizer.eos_token_id).any(dim=1)
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    return [t.strip() for t in texts], [not e for e in ended.tolist()]

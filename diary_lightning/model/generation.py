"""How a diary is written: the settings that decide it, saved beside every adapter, and the one call that
writes diaries, shared by predict, validation and DiaryPipeline."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from diary_lightning.errors import ConfigError, check_numbers


@dataclass(frozen=True)
class GenerationSettings:
    """The ``model.*`` settings that decide how a diary is generated (see ``DiaryLoRAModule``)."""

    max_new_tokens: int = 256
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0

    def __post_init__(self) -> None:
        # transformers would refuse some of these only when the first diary is generated (after the base has
        # loaded, or hours into a fit at its first validation) and take others (a top_p of 0) silently.
        check_numbers("--model", self, positive=("max_new_tokens", "num_beams", "repetition_penalty"),
                      at_least_zero=("no_repeat_ngram_size",))
        # Greedy decoding reads neither (generate_kwargs leaves them out), so a saved greedy run with either at 0
        # still loads.
        if self.do_sample:
            check_numbers("--model", self, positive=("temperature", "top_p"))
            if self.top_p > 1:
                raise ConfigError(f"--model.top_p {self.top_p!r}: expected a share more than 0 and at most 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GenerationSettings:
        """The settings among ``values`` (the model's hyperparameters, or the ``generation`` of a saved file)."""
        return cls(**{key: values[key] for key in GENERATION_KEYS})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def generate_kwargs(self) -> dict[str, Any]:
        # Sampling knobs only with sampling on: transformers warns about (or refuses to save) a greedy
        # configuration that carries a temperature.
        kwargs = {key: value for key, value in self.to_dict().items() if key not in ("temperature", "top_p")}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs


GENERATION_KEYS = tuple(f.name for f in dataclasses.fields(GenerationSettings))


def generation_config(settings: GenerationSettings, tokenizer: Any) -> Any:
    """The settings as a transformers ``GenerationConfig``, so plain ``model.generate`` writes the same diary."""
    from transformers import GenerationConfig

    return GenerationConfig(**settings.generate_kwargs(), eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)


def generate_diaries(model: Any, tokenizer: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     settings: GenerationSettings, stopping_criteria: Any = None) -> tuple[list[str], list[bool]]:
    """Diaries for left-padded prompts, and whether each hit ``max_new_tokens`` before EOS.
    ``stopping_criteria``: a transformers ``StoppingCriteriaList`` (the app's progress and cancel button)."""
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        stopping_criteria=stopping_criteria,
        **settings.generate_kwargs(),
    )
    new = out[:, input_ids.shape[1]:]
    ended = (new == tokenizer.eos_token_id).any(dim=1)
    return decode_diaries(tokenizer, new), [not e for e in ended.tolist()]


def decode_diaries(tokenizer: Any, token_ids: torch.Tensor) -> list[str]:
    """The generated tokens as text, with only whole characters.

    A byte-level tokenizer (EEVE's byte fallback too) writes a Korean syllable as up to three byte tokens, and
    generation can stop (``max_new_tokens``) or wander (a barely trained model) between them; decoding puts a
    U+FFFD where the bytes do not form a character. That is not something the model wrote, so it is left out.
    """
    return [text.replace("\ufffd", "").strip() for text in tokenizer.batch_decode(token_ids, skip_special_tokens=True)]

"""DiaryPipeline: the Python API a service calls to write diaries with an exported adapter."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from diary_lightning.data.batching import DiaryCollator
from diary_lightning.data.encoding import PromptFormat, encode_batch, render_chat
from diary_lightning.data.records import RecordFields
from diary_lightning.model.generation import GenerationSettings, generate_diaries
from diary_lightning.model.loading import adapter_state, load_adapter_checkpoint, load_base, load_tokenizer
from diary_lightning.model.metadata import (
    BaseFingerprint,
    adapter_base_model,
    check_base,
    checkpoint_state,
    read_adapter,
    read_checkpoint,
)
from diary_lightning.model.settings import RunSettings

Message = Mapping[str, str]
"""One utterance: ``{"speaker": ..., "text": ...}``."""


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, by default the first GPU if there is one, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


@dataclass(frozen=True)
class PreparedPrompt:
    """A chat ready to generate from: whose diary it is and the prompt the model reads."""

    writer: str
    """The speaker whose diary it is."""
    chosen_by: str
    """The entry of the writer setting that chose ``writer`` (a rule such as ``first``, or the name itself)."""
    prompt: str
    """The whole prompt, after the oldest turns were cut to fit ``max_length``."""
    input_ids: list[int]
    turns_cut: int


@dataclass(frozen=True)
class WrittenDiary:
    diary: str
    truncated: bool
    """Generation hit ``max_new_tokens`` before the end of the diary."""
    prompt: PreparedPrompt


class DiaryPipeline:
    """Writes diaries from chats with an adapter exported by ``export`` (or by fit, into ``CHECKPOINT_DIR/adapter``),
    with the prompt, cleaning, ``max_length`` and generation settings saved beside it: what ``predict`` writes.

    >>> pipeline = DiaryPipeline.from_pretrained("runs/tiny/checkpoints/adapter")
    >>> pipeline.write([{"speaker": "P01", "text": "오늘 비가 왔어"}, {"speaker": "P02", "text": "우산은 챙겼어?"}])
    >>> pipeline.write([{"speaker": "준호", "text": "잘 들어갔어?"}, {"speaker": "민지", "text": "응 방금"}], writer="민지")
    """

    def __init__(self, model: Any, tokenizer: Any, settings: RunSettings, batch_size: int = 8,
                 fields: RecordFields | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.settings = settings
        """The run's prompt, ``max_length`` and generation settings."""
        self.prompt_format = settings.prompt or PromptFormat()
        self.batch_size = batch_size
        self.fields = fields or RecordFields()
        self._collate = DiaryCollator(tokenizer.pad_token_id, padding_side="left")

    @staticmethod
    def _base(base_model: str, loading: Mapping[str, Any], load_in_4bit: bool | None, compute_dtype: str | None,
              device: str | torch.device | None, trust_remote_code: bool) -> Any:
        """The base as training loaded it (``loading``: the recorded settings), unless told otherwise."""
        device = pick_device(device)
        quantized = loading.get("load_in_4bit", True) if load_in_4bit is None else load_in_4bit
        base = load_base(base_model, load_in_4bit=quantized,
                         compute_dtype=compute_dtype or loading.get("compute_dtype", "bfloat16"),
                         double_quant=loading.get("double_quant", True),
                         attn_implementation=loading.get("attn_implementation"),
                         trust_remote_code=trust_remote_code, device=device)
        return base if quantized else base.to(device)  # a 4-bit base is placed while loading

    @classmethod
    def from_pretrained(cls, adapter_path: str | os.PathLike, base_model: str | None = None,
                        load_in_4bit: bool | None = None, compute_dtype: str | None = None,
                        device: str | torch.device | None = None, batch_size: int = 8,
                        trust_remote_code: bool = False, allow_other_base: bool = False) -> DiaryPipeline:
        """Load the base as training did (4-bit NF4 unless ``load_in_4bit=False``), the adapter and its tokenizer.

        Args:
            adapter_path: The exported adapter folder.
            base_model: The base model; defaults to the one recorded in ``adapter_config.json``.
            load_in_4bit: Quantize the base; defaults to what training did.
            compute_dtype: ``bfloat16``, ``float16`` or ``float32``; defaults to what training used.
            device: Defaults to the first GPU if there is one, else the CPU.
            batch_size: Dialogues generated together by :meth:`write_many`.
            trust_remote_code: Allow the base model's repository to run its own code.
            allow_other_base: Load the adapter onto a base of the same shape but other weights than the one it
                was trained on (refused by default, naming both).
        """
        from peft import PeftModel

        metadata = read_adapter(adapter_path)
        base_model = base_model or adapter_base_model(adapter_path)
        base = cls._base(base_model, metadata.loading, load_in_4bit, compute_dtype, device, trust_remote_code)
        check_base(metadata.fingerprint, BaseFingerprint.of(base_model, base), allow_other_base,
                   f"the adapter {adapter_path}")
        model = PeftModel.from_pretrained(base, str(adapter_path))
        return cls(model, load_tokenizer(str(adapter_path), trust_remote_code), metadata.settings, batch_size)

    @classmethod
    def from_checkpoint(cls, ckpt_path: str | os.PathLike, base_model: str | None = None,
                        load_in_4bit: bool | None = None, compute_dtype: str | None = None,
                        device: str | torch.device | None = None, batch_size: int = 8,
                        trust_remote_code: bool = False, allow_other_base: bool = False) -> DiaryPipeline:
        """Write with a checkpoint of fit, as ``export`` of it would (without Lightning): the base it names, its
        adapter weights, the prompt and ``max_length`` it was trained with and its generation settings.
        The arguments are those of :meth:`from_pretrained`."""
        from peft import LoraConfig, get_peft_model

        metadata = read_checkpoint(ckpt_path)
        base_model = base_model or metadata.base_model
        base = cls._base(base_model, metadata.loading, load_in_4bit, compute_dtype, device, trust_remote_code)
        lora = metadata.lora
        model = get_peft_model(base, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=0.0,
                                                target_modules=lora["target_modules"], task_type="CAUSAL_LM"))
        hparams = {"base_model": base_model, "lora_r": lora["r"], "lora_alpha": lora["alpha"],
                   "target_modules": lora["target_modules"], "allow_other_base": allow_other_base}
        # A shallow copy: the loaded checkpoint is shared by this process's readers, and loading renames its keys.
        load_adapter_checkpoint(model, dict(checkpoint_state(ckpt_path)), hparams, adapter_state(model),
                                BaseFingerprint.of(base_model, base))
        return cls(model, load_tokenizer(base_model, trust_remote_code), metadata.settings, batch_size)

    @classmethod
    def zero_shot(cls, base_model: str, settings: RunSettings, load_in_4bit: bool = True,
                  compute_dtype: str = "bfloat16", device: str | torch.device | None = None, batch_size: int = 8,
                  trust_remote_code: bool = False) -> DiaryPipeline:
        """Write with the base model alone (the zero-shot baseline), prompted as ``settings`` say."""
        base = cls._base(base_model, {}, load_in_4bit, compute_dtype, device, trust_remote_code)
        return cls(base, load_tokenizer(base_model, trust_remote_code), settings, batch_size)

    def write(self, dialogue: Sequence[Message], writer: str | Sequence[str] | None = None) -> str:
        """The diary for one chat, a list of ``{"speaker", "text"}`` utterances in order, written as ``writer``
        (a speaker name; default: the rule saved with the adapter, ``Human`` else the first speaker)."""
        return self.write_many([dialogue], writer)[0]

    def write_many(self, dialogues: Sequence[Sequence[Message]], writer: str | Sequence[str] | None = None) -> list[str]:
        """Diaries for many chats, in order, generated ``batch_size`` at a time (left-padded).

        Every chat is checked before any is generated: a bad one, or one where ``writer`` does not speak,
        raises ``DataError`` naming its index.
        """
        return [written.diary for written in self.generate(self.prepare(dialogues, writer))]

    def prepare(self, dialogues: Sequence[Sequence[Message]], writer: str | Sequence[str] | None = None,
                ) -> list[PreparedPrompt]:
        """The prompts of :meth:`write_many`, each chat checked (``DataError`` naming its index) and its oldest turns
        cut to fit ``max_length`` as predict does: at least the last turn is kept, even when it alone is too long."""
        if not dialogues:
            return []
        rendered = [render_chat(messages, self.prompt_format, writer=writer, fields=self.fields, source="write_many",
                                index=i)
                    for i, messages in enumerate(dialogues)]
        encoded = encode_batch(self.tokenizer, self.prompt_format.template, [r.turns for r in rendered], None,
                               self.settings.max_length, diary_room=self.settings.generation.max_new_tokens)
        # The text shown is the ids decoded: what is sent, a last message shortened from its start included.
        return [PreparedPrompt(r.dialogue.writer, r.chosen_by, self.tokenizer.decode(ids), ids, cut)
                for r, ids, cut in zip(rendered, encoded["input_ids"], encoded["turns_cut"])]

    def generate(self, prompts: Sequence[PreparedPrompt], *, generation: GenerationSettings | None = None,
                 use_adapter: bool = True, stopping_criteria: Any = None) -> list[WrittenDiary]:
        """The diaries of :meth:`prepare`'s prompts, ``batch_size`` at a time (left-padded).

        Args:
            generation: Instead of the saved generation settings.
            use_adapter: False writes with the base model alone (the adapter switched off meanwhile).
            stopping_criteria: Passed to ``generate`` (a transformers ``StoppingCriteriaList``).
        """
        device = next(self.model.parameters()).device
        switch_off = self.model.disable_adapter() if not use_adapter and hasattr(self.model, "disable_adapter") \
            else contextlib.nullcontext()
        written: list[WrittenDiary] = []
        with switch_off:
            for start in range(0, len(prompts), self.batch_size):
                chunk = prompts[start:start + self.batch_size]
                batch = self._collate([{"input_ids": p.input_ids} for p in chunk])
                texts, truncated = generate_diaries(self.model, self.tokenizer, batch["input_ids"].to(device),
                                                    batch["attention_mask"].to(device),
                                                    generation or self.settings.generation, stopping_criteria)
                written.extend(WrittenDiary(*row) for row in zip(texts, truncated, chunk))
        return written

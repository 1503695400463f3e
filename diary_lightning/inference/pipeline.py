"""DiaryPipeline: the Python API a service calls to write diaries with an exported adapter."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from diary_lightning.data.batching import DiaryCollator
from diary_lightning.data.encoding import PromptFormat, encode_batch, render_chat
from diary_lightning.data.records import RecordFields
from diary_lightning.inference.export import adapter_base_model
from diary_lightning.model.generation import generate_diaries
from diary_lightning.model.loading import load_base, load_tokenizer
from diary_lightning.model.metadata import BaseFingerprint, RunMetadata, check_base, read_adapter

Message = Mapping[str, str]
"""One utterance: ``{"speaker": ..., "text": ...}``."""


class DiaryPipeline:
    """Writes diaries from chats with an adapter exported by ``export`` (or by fit, into ``CHECKPOINT_DIR/adapter``),
    with the prompt, cleaning, ``max_length`` and generation settings saved beside it: what ``predict`` writes.

    >>> writer = DiaryPipeline.from_pretrained("runs/tiny/checkpoints/adapter")
    >>> writer.write([{"speaker": "P01", "text": "오늘 비가 왔어"}, {"speaker": "P02", "text": "우산은 챙겼어?"}])
    >>> writer.write([{"speaker": "준호", "text": "잘 들어갔어?"}, {"speaker": "민지", "text": "응 방금"}], writer="민지")
    """

    def __init__(self, model: Any, tokenizer: Any, settings: RunMetadata, batch_size: int = 8,
                 fields: RecordFields | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.settings = settings
        self.prompt_format = PromptFormat.from_settings(settings.prompt)
        self.batch_size = batch_size
        self.fields = fields or RecordFields()
        self._collate = DiaryCollator(tokenizer.pad_token_id, padding_side="left")

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

        settings = read_adapter(adapter_path)
        loading = settings.loading
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        quantized = loading["load_in_4bit"] if load_in_4bit is None else load_in_4bit
        base_model = base_model or adapter_base_model(adapter_path)
        base = load_base(base_model, load_in_4bit=quantized,
                         compute_dtype=compute_dtype or loading["compute_dtype"],
                         double_quant=loading.get("double_quant", True),
                         attn_implementation=loading.get("attn_implementation"),
                         trust_remote_code=trust_remote_code, device=device)
        check_base(settings.fingerprint, BaseFingerprint.of(base_model, base), allow_other_base,
                   f"the adapter {adapter_path}")
        if not quantized:
            base = base.to(device)  # a 4-bit base is placed while loading
        model = PeftModel.from_pretrained(base, str(adapter_path))
        return cls(model, load_tokenizer(str(adapter_path), trust_remote_code), settings, batch_size)

    def write(self, dialogue: Sequence[Message], writer: str | Sequence[str] | None = None) -> str:
        """The diary for one chat, a list of ``{"speaker", "text"}`` utterances in order, written as ``writer``
        (a speaker name; default: the rule saved with the adapter, ``Human`` else the first speaker)."""
        return self.write_many([dialogue], writer)[0]

    def write_many(self, dialogues: Sequence[Sequence[Message]], writer: str | Sequence[str] | None = None) -> list[str]:
        """Diaries for many chats, in order, generated ``batch_size`` at a time (left-padded).

        Every chat is checked before any is generated: a bad one, or one where ``writer`` does not speak,
        raises ``DataError`` naming its index.
        """
        if not dialogues:
            return []
        rendered = [render_chat(messages, self.prompt_format, writer=writer, fields=self.fields, source="write_many",
                                index=i)
                    for i, messages in enumerate(dialogues)]
        # One batched encoding cuts the oldest turns of each chat to fit max_length, as predict does.
        encoded = encode_batch(self.tokenizer, self.prompt_format.template, [r.turns for r in rendered], None,
                               self.settings.max_length)
        device = next(self.model.parameters()).device
        diaries: list[str] = []
        for start in range(0, len(rendered), self.batch_size):
            batch = self._collate([{"input_ids": ids} for ids in encoded["input_ids"][start:start + self.batch_size]])
            texts, _ = generate_diaries(self.model, self.tokenizer, batch["input_ids"].to(device),
                                        batch["attention_mask"].to(device), self.settings.generation)
            diaries.extend(texts)
        return diaries

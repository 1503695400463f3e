"""From encoded examples to tensors: the tokenizer, the padding collator and the token counts of a batch.

Shared by the data module, validation-time generation and :class:`DiaryWriter`; imports neither Lightning
nor the data module.
"""

from __future__ import annotations

from typing import Any

import torch

from diary_lightning.encoding import IGNORE_INDEX


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    from diary_lightning.paths import load_pretrained

    tokenizer = load_pretrained(lambda name: AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code),
                                name_or_path, "tokenizer")
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {name_or_path} has no EOS token; the diary could never end")
    if tokenizer.pad_token_id is None:
        # Pads never reach the loss (their labels are IGNORE_INDEX), so any id will do.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def batch_counts(attention_mask: Any, labels: Any) -> dict[str, int]:
    """A batch's real tokens and the tokens its loss scores (after the shift inside the model), counted
    where the batch is built: on the CPU, so that the training step never waits on the GPU for them."""
    return {"num_tokens": int(attention_mask.sum()), "num_scored": int((labels[:, 1:] != IGNORE_INDEX).sum())}


class DiaryCollator:
    """Pads a list of encoded examples to the longest one.

    Training pads on the right. Generation pads on the left, so that every prompt
    ends where the new tokens begin.
    """

    def __init__(self, pad_id: int, padding_side: str = "right") -> None:
        self.pad_id = pad_id
        self.padding_side = padding_side

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(e["input_ids"]) for e in examples)
        batch: dict[str, Any] = {}
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            cols = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
            ids[row, cols] = torch.tensor(example["input_ids"])
            mask[row, cols] = 1
            if "labels" in example:
                labels[row, cols] = torch.tensor(example["labels"])
        batch.update(input_ids=ids, attention_mask=mask, labels=labels, **batch_counts(mask, labels))
        for key in ("id", "summary", "dialogue", "writer"):
            if key in examples[0]:
                batch[key] = [e[key] for e in examples]
        return batch

"""The token ids of a teacher's chat prompt, with the chat template's own markers as special tokens and the
messages' content (the dialogue, the summary) as text: a ``</s>`` someone typed in a chat must not end the
teacher's prompt early, nor an ``<|im_start|>`` open a turn of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _content_spans(text: str, contents: Sequence[str]) -> list[tuple[int, int]]:
    """Where each message's content lies in the rendered prompt, in order. A template that rewrites content
    (trims it, say) leaves that message unfound: its special-token strings are then left as the template made them."""
    spans, position = [], 0
    for content in contents:
        start = text.find(content, position) if content else -1
        if start >= 0:
            spans.append((start, start + len(content)))
            position = start + len(content)
    return spans


def chat_prompt_ids(tokenizer: Any, text: str, messages: Sequence[dict[str, str]], add_special_tokens: bool) -> list[int]:
    """Ids of ``text`` (``messages`` rendered by the chat template): tokenized as a whole, as the model was tuned,
    except that a special token found inside a message's content is spelled out in ordinary tokens instead."""
    encoded = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    spans = _content_spans(text, [m["content"] for m in messages])
    special = set(tokenizer.all_special_ids)
    ids: list[int] = []
    for token, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"]):
        if token in special and start < end and any(a <= start and end <= b for a, b in spans):
            ids.extend(tokenizer(text[start:end], add_special_tokens=False, split_special_tokens=True)["input_ids"])
        else:
            ids.append(token)
    return ids

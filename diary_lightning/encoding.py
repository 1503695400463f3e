"""Tokenization with the prompt masked out of the loss, and fitting dialogues into ``max_length``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from diary_lightning.dialogue import Turn
from diary_lightning.prompts import render_prompt

IGNORE_INDEX = -100
"""Label of tokens the loss skips (PyTorch's cross-entropy default)."""


def _fit_turns(
    tokenizer: Any,
    template: str,
    turns: Sequence[Turn],
    budget: int,
    speaker_labels: Mapping[str, str] | None,
) -> tuple[list[int], int]:
    """Prompt ids holding the most recent turns that fit in ``budget`` tokens, and how many turns were cut.

    The prompt length only grows with the number of turns kept, so a binary search
    finds the smallest cut. At least the last turn is kept, even if it alone is too long.
    """
    lo, hi = 1, len(turns) - 1  # candidates for the number of turns cut
    best = tokenizer(render_prompt(template, turns[hi:], speaker_labels))["input_ids"], hi
    while lo <= hi:
        mid = (lo + hi) // 2
        ids = tokenizer(render_prompt(template, turns[mid:], speaker_labels))["input_ids"]
        if len(ids) <= budget:
            best, hi = (ids, mid), mid - 1
        else:
            lo = mid + 1
    return best


def encode_batch(
    tokenizer: Any,
    template: str,
    turns: Sequence[Sequence[Turn]],
    targets: Sequence[str] | None,
    max_length: int,
    speaker_labels: Mapping[str, str] | None = None,
) -> dict[str, list]:
    """Token ids and labels for a batch of dialogues.

    ``labels`` equal ``input_ids`` on the target and its EOS and are ``IGNORE_INDEX``
    on the prompt, so only the diary is learned. Without targets (prediction) the
    ids are the prompt alone. When prompt and target exceed ``max_length``, the
    oldest turns are dropped; the template, the instruction and the target are kept.
    """
    prompts = tokenizer([render_prompt(template, t, speaker_labels) for t in turns])["input_ids"]
    if targets is not None:
        eos = tokenizer.eos_token_id
        target_ids = [ids + [eos] for ids in tokenizer(list(targets), add_special_tokens=False)["input_ids"]]
    else:
        target_ids = [[] for _ in prompts]
    out: dict[str, list] = {"input_ids": [], "labels": [], "prompt_length": [], "target_length": [], "turns_cut": [], "num_turns": []}
    for dialogue, prompt, target in zip(turns, prompts, target_ids):
        cut = 0
        if len(prompt) + len(target) > max_length and len(dialogue) > 1:
            prompt, cut = _fit_turns(tokenizer, template, dialogue, max_length - len(target), speaker_labels)
        out["input_ids"].append(prompt + target)
        out["labels"].append([IGNORE_INDEX] * len(prompt) + target)
        out["prompt_length"].append(len(prompt))
        out["target_length"].append(len(target))
        out["turns_cut"].append(cut)
        out["num_turns"].append(len(dialogue))
    return out

"""Tokenization with the prompt masked out of the loss, and fitting dialogues into ``max_length``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from diary_lightning.dialogue import Turn
from diary_lightning.prompts import format_dialogue, render_prompt

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label of tokens the loss skips (PyTorch's cross-entropy default)."""


def token_ids(tokenizer: Any, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids of ``texts`` read as plain text: a ``</s>``, ``<s>`` or ``<pad>`` written in a chat or a summary
    is spelled out in ordinary tokens, never turned into the control token it names (an EOS in the middle of a
    target, or of a prompt, would teach the model to stop there or cut what it reads). The only special tokens
    are those the tokenizer adds itself (``add_special_tokens``: the BOS) and the EOS appended after a target."""
    if not texts:
        return []
    return tokenizer(texts, add_special_tokens=add_special_tokens, split_special_tokens=True)["input_ids"]


def _warn_special_strings(tokenizer: Any, template: str) -> None:
    found = [t for t in getattr(tokenizer, "all_special_tokens", []) if t and t in template]
    if found and template not in _warned_templates:
        _warned_templates.add(template)
        log.warning("The prompt template holds %s, which is read as text like the dialogue, not as special "
                    "token(s); the tokenizer adds its own BOS at the start.", ", ".join(map(repr, found)))


_warned_templates: set[str] = set()


class PromptTokenizer:
    """Token ids of rendered prompts, tokenizing the template's fixed text once.

    The template around ``{dialogue}`` is most of a short prompt (133 of a median 254 tokens
    with the tiny tokenizer), so tokenizing it once per batch instead of once per dialogue
    nearly halves the work. Joining separately tokenized pieces gives the tokens of the whole
    prompt only when no token spans a seam, which depends on the tokenizer (a SentencePiece
    tokenizer may add a word-start marker to the dialogue piece): the first prompts of each
    batch (one object per batch) are checked both ways, and whole prompts are tokenized when
    any differs.
    """

    checked = 8

    def __init__(self, tokenizer: Any, template: str, speaker_labels: Mapping[str, str] | None) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.speaker_labels = speaker_labels
        head, tail = template.split("{dialogue}", 1) if template.count("{dialogue}") == 1 else (None, None)
        self.pieces: tuple[list[int], list[int]] | None = None
        self.verified = False
        _warn_special_strings(tokenizer, template)
        if head is not None and "{" not in head + tail:  # escaped braces: str.format would change the text
            self.pieces = (token_ids(tokenizer, [head])[0], token_ids(tokenizer, [tail], add_special_tokens=False)[0])

    def whole(self, dialogues: Sequence[Sequence[Turn]]) -> list[list[int]]:
        return token_ids(self.tokenizer, [render_prompt(self.template, turns, self.speaker_labels) for turns in dialogues])

    def joined(self, dialogues: Sequence[Sequence[Turn]]) -> list[list[int]]:
        head, tail = self.pieces
        texts = [format_dialogue(turns, self.speaker_labels) for turns in dialogues]
        return [head + body + tail for body in token_ids(self.tokenizer, texts, add_special_tokens=False)]

    def __call__(self, dialogues: Sequence[Sequence[Turn]]) -> list[list[int]]:
        if self.pieces is not None and not self.verified:
            probe = dialogues[: self.checked]
            self.verified = True
            if self.joined(probe) != self.whole(probe):
                self.pieces = None
        return self.whole(dialogues) if self.pieces is None else self.joined(dialogues)


def _fit_turns(prompts: PromptTokenizer, turns: Sequence[Turn], budget: int) -> tuple[list[int], int]:
    """Prompt ids holding the most recent turns that fit in ``budget`` tokens, and how many turns were cut.

    The prompt length only grows with the number of turns kept, so a binary search
    finds the smallest cut. At least the last turn is kept, even if it alone is too long.
    """
    lo, hi = 1, len(turns) - 1  # candidates for the number of turns cut
    best = prompts([turns[hi:]])[0], hi
    while lo <= hi:
        mid = (lo + hi) // 2
        ids = prompts([turns[mid:]])[0]
        if len(ids) <= budget:
            best, hi = (ids, mid), mid - 1
        else:
            lo = mid + 1
    return best


def encode_batch(
    tokenizer: Any,
    template: str,
    turns: Sequence[Sequence[Turn]],
    summaries: Sequence[str] | None,
    max_length: int,
    speaker_labels: Mapping[str, str] | None = None,
) -> dict[str, list]:
    """Token ids and labels for a batch of dialogues.

    ``labels`` equal ``input_ids`` on the target and its EOS and are ``IGNORE_INDEX``
    on the prompt, so only the diary is learned. Without summaries (prediction) the
    ids are the prompt alone. When prompt and target exceed ``max_length``, the
    oldest turns are dropped; the template, the instruction and the target are kept.
    """
    prompt_tokenizer = PromptTokenizer(tokenizer, template, speaker_labels)
    prompts = prompt_tokenizer(turns)
    if summaries is not None:
        eos = tokenizer.eos_token_id
        target_ids = [ids + [eos] for ids in token_ids(tokenizer, list(summaries), add_special_tokens=False)]
    else:
        target_ids = [[] for _ in prompts]
    out: dict[str, list] = {"input_ids": [], "labels": [], "prompt_length": [], "target_length": [], "turns_cut": [], "num_turns": []}
    for dialogue, prompt, target in zip(turns, prompts, target_ids):
        cut = 0
        if len(prompt) + len(target) > max_length and len(dialogue) > 1:
            prompt, cut = _fit_turns(prompt_tokenizer, dialogue, max_length - len(target))
        out["input_ids"].append(prompt + target)
        out["labels"].append([IGNORE_INDEX] * len(prompt) + target)
        out["prompt_length"].append(len(prompt))
        out["target_length"].append(len(target))
        out["turns_cut"].append(cut)
        out["num_turns"].append(len(dialogue))
    return out

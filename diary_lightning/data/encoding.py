"""Tokenization with the prompt masked out of the loss, and fitting dialogues into ``max_length``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from diary_lightning.data.clean import DEFAULT_ANONYMIZATION
from diary_lightning.data.dialogue import parse_record
from diary_lightning.data.prompts import DEFAULT_TEMPLATE, format_dialogue, render_prompt, resolve_template
from diary_lightning.data.records import Dialogue, RecordFields, Turn
from diary_lightning.data.roles import LabelScheme, bot_setting, choose_writer, prompt_turns, writer_setting

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


def _fit_last_turn(prompts: PromptTokenizer, turn: Turn, budget: int) -> list[int] | None:
    """Prompt ids of ``turn`` alone with the start of its text cut off, as much as needed to fit ``budget`` tokens
    (the end of a message is what the diary follows from); None when even an empty text does not fit."""
    text = turn.text
    lo, hi, best = 0, len(text), None  # characters cut
    while lo <= hi:
        mid = (lo + hi) // 2
        ids = prompts([[Turn(turn.speaker, text[mid:])]])[0]
        if len(ids) <= budget:
            best, hi = ids, mid - 1
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
    diary_room: int = 0,
) -> dict[str, list]:
    """Token ids and labels for a batch of dialogues.

    ``labels`` equal ``input_ids`` on the target and its EOS and are ``IGNORE_INDEX``
    on the prompt, so only the diary is learned. When prompt and target exceed ``max_length``, the
    oldest turns are dropped; the template, the instruction and the target are kept.

    Without summaries (prediction) the ids are the prompt alone, cut the same way to leave ``diary_room`` tokens
    (the most a diary may take, ``max_new_tokens``) for the diary, so that prompt and diary fit ``max_length``
    as every training example did. A last turn too long on its own loses the start of its text: a prompt is
    never longer than that; it is then counted in ``turns_cut`` too.
    """
    if summaries is None and max_length - diary_room < 1:
        raise ValueError(f"max_new_tokens {diary_room} leaves no room for the chat in max_length {max_length}: "
                         "lower model.max_new_tokens or raise data.max_length")
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
        budget = max_length - (len(target) if summaries is not None else diary_room)
        if len(prompt) > budget and len(dialogue) > 1:
            prompt, cut = _fit_turns(prompt_tokenizer, dialogue, budget)
        if summaries is None and len(prompt) > budget and dialogue:
            shortened = _fit_last_turn(prompt_tokenizer, dialogue[-1], budget)
            if shortened is None:
                raise ValueError(f"the prompt template alone is longer than max_length {max_length} minus "
                                 f"max_new_tokens {diary_room}: raise data.max_length")
            prompt, cut = shortened, len(dialogue)
        out["input_ids"].append(prompt + target)
        out["labels"].append([IGNORE_INDEX] * len(prompt) + target)
        out["prompt_length"].append(len(prompt))
        out["target_length"].append(len(target))
        out["turns_cut"].append(cut)
        out["num_turns"].append(len(dialogue))
    return out


# One chat in, the user message of the diary prompt out: what training, predict, DiaryPipeline and a service
# sending chats to a model server all build from a chat.
#
# The steps, each the function training uses on its files: cleaning and anonymization and merging consecutive
# utterances (:func:`diary_lightning.data.dialogue.parse_record`), choosing the writer
# (:func:`diary_lightning.data.roles.choose_writer`), labelling writer, bot and others
# (:func:`diary_lightning.data.roles.prompt_turns`), one ``label: text`` line per turn
# (:func:`diary_lightning.data.prompts.format_dialogue`), and dropping the oldest turns until the whole prompt fits
# ``max_length`` tokens (:func:`diary_lightning.data.encoding.encode_batch`). The user message is what the prompt
# template puts in its ``{dialogue}`` field; the exported tokenizer's chat template puts it there again
# (:mod:`diary_lightning.inference.chat_template`).
#
# Imports neither torch nor Lightning: a tokenizer is only needed to fit ``max_length``.

@dataclass(frozen=True)
class PromptFormat:
    """How a model's prompts are built: saved with its checkpoint and beside its exported adapter
    (``diary_lightning.json``). ``writer`` and ``bots`` are only defaults: a chat's own can always be given."""

    template: str = field(default_factory=lambda: resolve_template(DEFAULT_TEMPLATE))
    anonymization: str = DEFAULT_ANONYMIZATION
    label_scheme: LabelScheme | None = LabelScheme()
    """None for a model trained before label schemes, prompted with ``fixed_labels``."""
    fixed_labels: Mapping[str, str] = field(default_factory=dict)
    writer: tuple[str, ...] = writer_setting(None)
    bots: tuple[str, ...] = bot_setting(None)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> PromptFormat:
        """From ``diary_lightning.json`` or a checkpoint's data-module state."""
        scheme = settings.get("label_scheme")
        return cls(
            template=settings["prompt_template"],
            anonymization=settings.get("anonymization") or DEFAULT_ANONYMIZATION,
            label_scheme=LabelScheme.from_dict(scheme) if scheme is not None else None,
            fixed_labels=dict(settings.get("speaker_labels") or {}) if scheme is None else {},
            writer=writer_setting(settings.get("writer")),
            bots=bot_setting(settings.get("bots")),
        )

    def state(self) -> dict[str, Any]:
        """The settings as a checkpoint's data-module state and ``diary_lightning.json`` hold them."""
        state: dict[str, Any] = {"prompt_template": self.template, "anonymization": self.anonymization,
                                 "writer": list(self.writer), "bots": list(self.bots)}
        if self.label_scheme is None:
            state["speaker_labels"] = dict(self.fixed_labels)
        else:
            state["label_scheme"] = self.label_scheme.to_dict()
        return state


@dataclass(frozen=True)
class RenderedChat:
    user_message: str
    """The chat as the prompt shows it: the ``{dialogue}`` field of the template, the user message of the chat
    template."""
    dialogue: Dialogue
    """The chat cleaned and merged, with its writer's speaker id."""
    chosen_by: str
    """The entry of the writer setting that chose the writer."""
    turns: tuple[Turn, ...]
    """The labelled turns kept in the prompt."""
    turns_cut: int = 0
    """The oldest turns dropped to fit ``max_length``."""


def to_dialogue(chat: Dialogue | Sequence[Mapping[str, Any]], prompt_format: PromptFormat, *,
                fields: RecordFields | None = None, source: str = "<chat>", index: int = 0) -> Dialogue:
    """A list of ``{"speaker", "text"}`` utterances cleaned and merged as training read its files (a
    :class:`Dialogue` passes through); a bad chat raises ``DataError`` naming ``source`` and ``index``."""
    if isinstance(chat, Dialogue):
        return chat
    record = {"id": str(index), "dialogue": list(chat)}
    return parse_record(record, fields=fields, anonymization=prompt_format.anonymization, source=source, index=index)


def render_chat(chat: Dialogue | Sequence[Mapping[str, Any]], prompt_format: PromptFormat | None = None, *,
                writer: str | Sequence[str] | None = None, bots: Sequence[str] | None = None,
                tokenizer: Any = None, max_length: int | None = None, max_new_tokens: int = 0,
                fields: RecordFields | None = None, source: str = "<chat>", index: int = 0) -> RenderedChat:
    """The user message for ``chat``: a list of ``{"speaker", "text"}`` utterances in order, or a
    :class:`Dialogue` already read.

    Args:
        prompt_format: The model's prompt format (:meth:`PromptFormat.from_settings` of its
            ``diary_lightning.json``); defaults to the built-in one.
        writer: Whose diary it is (a speaker name such as ``민지``, or a rule); overrides the stored default.
        bots: Speaker names of the chatbot; overrides the stored default.
        tokenizer, max_length: With both, the oldest turns are dropped until the whole prompt is at most
            ``max_length`` tokens, as predict does (the last turn is always kept).
        max_new_tokens: The room kept for the diary within ``max_length``, as predict keeps it: the run's
            ``generation.max_new_tokens`` (``read_adapter(...).generation.max_new_tokens``). Without it a long
            chat fills ``max_length`` and leaves the diary no tokens.
    """
    prompt_format = prompt_format or PromptFormat()
    dialogue = to_dialogue(chat, prompt_format, fields=fields, source=source, index=index)
    bots = bot_setting(bots) if bots is not None else prompt_format.bots
    speaker, chosen_by = choose_writer(dialogue, writer if writer is not None else prompt_format.writer, bots)
    dialogue = dataclasses.replace(dialogue, writer=speaker)
    turns = prompt_turns(dialogue.turns, speaker, bots, prompt_format.label_scheme, prompt_format.fixed_labels)
    cut = 0
    if tokenizer is not None and max_length is not None:
        cut = encode_batch(tokenizer, prompt_format.template, [turns], None, max_length,
                           diary_room=max_new_tokens)["turns_cut"][0]
    return RenderedChat(format_dialogue(turns[cut:]), dialogue, chosen_by, turns[cut:], cut)

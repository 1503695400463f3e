"""One chat in, the user message of the diary prompt out: what training, predict, DiaryWriter and a service
sending chats to a model server all build from a chat.

The steps, each the function training uses on its files: cleaning and anonymization and merging consecutive
utterances (:func:`diary_lightning.dialogue.parse_record`), choosing the writer
(:func:`diary_lightning.roles.choose_writer`), labelling writer, bot and others
(:func:`diary_lightning.roles.prompt_turns`), one ``label: text`` line per turn
(:func:`diary_lightning.prompts.format_dialogue`), and dropping the oldest turns until the whole prompt fits
``max_length`` tokens (:func:`diary_lightning.encoding.encode_batch`). The user message is what the prompt
template puts in its ``{dialogue}`` field; the exported tokenizer's chat template puts it there again
(:mod:`diary_lightning.chat_template`).

Imports neither torch nor Lightning: a tokenizer is only needed to fit ``max_length``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from diary_lightning.clean import DEFAULT_ANONYMIZATION
from diary_lightning.dialogue import Dialogue, RecordFields, Turn, parse_record
from diary_lightning.encoding import encode_batch
from diary_lightning.prompts import DEFAULT_TEMPLATE, format_dialogue, resolve_template
from diary_lightning.roles import LabelScheme, bot_setting, choose_writer, prompt_turns, writer_setting


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
                tokenizer: Any = None, max_length: int | None = None, fields: RecordFields | None = None,
                source: str = "<chat>", index: int = 0) -> RenderedChat:
    """The user message for ``chat``: a list of ``{"speaker", "text"}`` utterances in order, or a
    :class:`Dialogue` already read.

    Args:
        prompt_format: The model's prompt format (:meth:`PromptFormat.from_settings` of its
            ``diary_lightning.json``); defaults to the built-in one.
        writer: Whose diary it is (a speaker name such as ``민지``, or a rule); overrides the stored default.
        bots: Speaker names of the chatbot; overrides the stored default.
        tokenizer, max_length: With both, the oldest turns are dropped until the whole prompt is at most
            ``max_length`` tokens, as predict does (the last turn is always kept).
    """
    prompt_format = prompt_format or PromptFormat()
    dialogue = to_dialogue(chat, prompt_format, fields=fields, source=source, index=index)
    bots = bot_setting(bots) if bots is not None else prompt_format.bots
    speaker, chosen_by = choose_writer(dialogue, writer if writer is not None else prompt_format.writer, bots)
    dialogue = dataclasses.replace(dialogue, writer=speaker)
    turns = prompt_turns(dialogue.turns, speaker, bots, prompt_format.label_scheme, prompt_format.fixed_labels)
    cut = 0
    if tokenizer is not None and max_length is not None:
        cut = encode_batch(tokenizer, prompt_format.template, [turns], None, max_length)["turns_cut"][0]
    return RenderedChat(format_dialogue(turns[cut:]), dialogue, chosen_by, turns[cut:], cut)

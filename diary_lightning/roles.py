"""Whose diary: the writer of each dialogue and the labels the prompt shows for every speaker.

Plain data and plain functions: nothing here imports torch, Lightning or transformers.
"""

from __future__ import annotations

WRITER_LABEL = "글쓴이"
"""The writer's label in every prompt, whatever name the input used. Not a word a diary uses of its writer,
so a generated diary that contains it is caught by the style checks."""
BOT_LABEL = "챗봇"
"""The diary service's bot."""
OTHER_LABEL = "상대"
"""People the writer talked with appear as ``상대1``, ``상대2``... in order of first appearance."""


def other_labels(count: int) -> list[str]:
    """``count`` distinct labels for the people, not the bot, the writer talked with."""
    return [f"{OTHER_LABEL}{i}" for i in range(1, count + 1)]

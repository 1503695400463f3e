"""Fine-tune a Korean LLM with QLoRA to write a diary from a day's chat."""

from diary_lightning.dialogue import DataError, Dialogue, Turn, merge_turns, read_dialogues
from diary_lightning.encoding import IGNORE_INDEX, encode_batch
from diary_lightning.prompts import TEMPLATES, render_prompt, resolve_template

__all__ = [
    "IGNORE_INDEX", "TEMPLATES", "DataError", "Dialogue", "DiaryWriter", "Turn", "encode_batch", "merge_turns",
    "read_dialogues", "render_prompt", "resolve_template",
]


def __getattr__(name: str) -> object:
    # Imported on first use: DiaryWriter pulls in torch, transformers and PEFT, which reading
    # dialogues or building prompts does not need.
    if name == "DiaryWriter":
        from diary_lightning.writer import DiaryWriter

        return DiaryWriter
    raise AttributeError(f"module 'diary_lightning' has no attribute {name!r}")

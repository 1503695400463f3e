"""Fine-tune a Korean LLM with QLoRA to write a diary from a day's chat."""

from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.encoding import IGNORE_INDEX, encode_batch
from diary_lightning.data.prompts import TEMPLATES, render_prompt, resolve_template
from diary_lightning.data.records import DataError, Dialogue, Turn, merge_turns

__all__ = [
    "IGNORE_INDEX", "TEMPLATES", "DataError", "Dialogue", "DiaryPipeline", "Turn", "encode_batch", "merge_turns",
    "read_dialogues", "render_prompt", "resolve_template",
]


def __getattr__(name: str) -> object:
    # Imported on first use: DiaryPipeline pulls in torch, transformers and PEFT, which reading
    # dialogues or building prompts does not need.
    if name == "DiaryPipeline":
        from diary_lightning.inference.pipeline import DiaryPipeline

        return DiaryPipeline
    raise AttributeError(f"module 'diary_lightning' has no attribute {name!r}")

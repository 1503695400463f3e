"""What made a predictions file: the weights, the base, the generation settings and the prompt.

A predict killed midway leaves ``OUTPUT.partial``; ``--resume_predictions`` appends to it. Beside it,
``OUTPUT.partial.json`` records what wrote those diaries, and a resume with anything else (another checkpoint
or adapter, even a ``last.ckpt`` rewritten since, other generation settings, another prompt) is refused
rather than merged into one file that no single model wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diary_lightning.atomic import write_text
from diary_lightning.errors import UserError
from diary_lightning.fingerprint import files_digest
from diary_lightning.generation import GenerationSettings


class PredictionsMismatchError(UserError, ValueError):
    """A ``.partial`` file written by other weights or settings than the resuming predict's."""


def _checkpoint_prompt(ckpt_path: str, datamodule: Any) -> dict[str, Any] | None:
    import torch

    saved = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    return saved.get(type(datamodule).__qualname__)


def prediction_identity(ckpt_path: str | None, model: Any, datamodule: Any) -> dict[str, Any]:
    """What decides the diaries of a predict: the weights (a checkpoint or an adapter, by content), the base, the
    generation settings and the prompt (the configured one, which holds an adapter's once the CLI loaded it, and
    a checkpoint's own)."""
    h = model.hparams
    weights: dict[str, Any] = {"checkpoint": None, "adapter": None}
    # Both: the checkpoint's prompt replaces the configured one, but data.writer and data.bots still apply.
    prompt = {"configured": datamodule.state_dict(), "checkpoint": None}
    if ckpt_path:
        weights["checkpoint"] = {"path": str(Path(ckpt_path).resolve()), "digest": files_digest([ckpt_path])}
        prompt["checkpoint"] = _checkpoint_prompt(ckpt_path, datamodule)
    elif h.get("adapter_path"):
        path = Path(h.adapter_path)
        weights["adapter"] = {"path": str(path.resolve()),
                              "digest": files_digest([path / "adapter_model.safetensors"])}
    return {
        "weights": weights,
        "base_model": {key: h[key] for key in ("base_model", "load_in_4bit", "compute_dtype", "double_quant")},
        "generation": GenerationSettings.from_mapping(h).to_dict(),
        "prompt": {**prompt, "max_length": datamodule.hparams.max_length},
    }


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def check_same_maker(record: Path, identity: dict[str, Any], partial: Path) -> None:
    """Refuse to resume ``partial`` unless ``record`` says the same ``identity`` wrote it."""
    if not record.is_file():
        raise PredictionsMismatchError(
            f"{partial} has no {record.name} saying which weights and settings wrote it, so the diaries in it "
            f"cannot be trusted to match: delete {partial} (or run without --resume_predictions)")
    saved = json.loads(record.read_text(encoding="utf-8"))
    now = _normal(identity)
    differing = [key for key in now if saved.get(key) != now[key]]
    if differing:
        detail = "; ".join(f"{key}: then {json.dumps(saved.get(key), ensure_ascii=False)}, "
                           f"now {json.dumps(now[key], ensure_ascii=False)}" for key in differing)
        raise PredictionsMismatchError(
            f"--resume_predictions: {partial} was written with other {', '.join(differing)} than this predict "
            f"({detail}). Resume with the same checkpoint and settings, or delete {partial} to start over.")


def write_record(record: Path, identity: dict[str, Any]) -> None:
    write_text(record, json.dumps(_normal(identity), ensure_ascii=False, indent=1))

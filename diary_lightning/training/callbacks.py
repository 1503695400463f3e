"""Callbacks: the run summary a user reads at the start and end of fit, and the predictions writer."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only

from diary_lightning.data.cache import files_digest
from diary_lightning.data.prepare import DataReport, too_long
from diary_lightning.errors import UserError
from diary_lightning.io.atomic import write_text
from diary_lightning.model.generation import GenerationSettings
from diary_lightning.model.metadata import read_checkpoint

log = logging.getLogger(__name__)


class RunSummary(L.Callback):
    """One short block at the start of fit (model, parameters, data, where things go) and the best checkpoint at the end."""

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        h = pl_module.hparams
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        total = sum(p.numel() for p in pl_module.parameters())
        report = getattr(trainer.datamodule, "report", None) or DataReport()
        lines = [
            f"base model     {h.base_model} ({'4-bit NF4' if h.load_in_4bit else h.compute_dtype})",
            f"parameters     {trainable:,} trainable of {total:,} stored ({100 * trainable / max(total, 1):.2f}%)",
            "dialogues      " + ", ".join(f"{k} {v}" for k, v in report.splits.items()),
        ]
        if report.skipped:
            lines.append(f"skipped        {report.skipped}")
        too_long_line, too_long_warnings = too_long(report, trainer.datamodule.hparams.max_length)
        lines.append(too_long_line)
        cut = sum(report.turns_cut.values())
        if cut:
            lines.append(f"cut to fit     {cut} dialogue(s) lost their oldest turns to fit max_length")
        if trainer.logger is not None:
            lines.append(f"logs           {trainer.logger.log_dir}  (tensorboard --logdir {trainer.logger.save_dir})")
        if trainer.checkpoint_callback is not None:
            lines.append(f"checkpoints    {trainer.checkpoint_callback.dirpath}")
        log.info("diary_lightning fit\n  " + "\n  ".join(lines))
        for warning in too_long_warnings:
            log.warning(warning)

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        callback = trainer.checkpoint_callback
        if callback is not None and (callback.best_model_path or callback.last_model_path):
            log.info("best checkpoint: %s", callback.best_model_path or callback.last_model_path)


class JsonlPredictionWriter(BasePredictionWriter):
    """Writes ``{"id", "diary", "style_failures"}`` lines as batches finish, to ``OUTPUT.partial``; renamed to
    ``OUTPUT`` when complete, so a killed predict never leaves a half-written file under the final name.

    With ``resume``, the complete lines an interrupted predict left in ``OUTPUT.partial`` are kept and
    new lines appended after them; :meth:`written_ids` tells which dialogues to leave out.
    """

    def __init__(self, output: str, resume: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.record = self.partial.with_name(self.partial.name + ".json")
        self.resume = resume
        self.identity: dict[str, Any] | None = None
        self._file: Any = None
        self.count = 0

    def check_identity(self, identity: dict[str, Any]) -> None:
        """Keep what makes these diaries, to record beside ``OUTPUT.partial``; when resuming, refuse a
        ``.partial`` that something else made (:func:`diary_lightning.training.callbacks.check_same_maker`)."""
        if self.resume and self.partial.is_file():
            check_same_maker(self.record, identity, self.partial)
        self.identity = identity

    def written_ids(self) -> set[str]:
        """Ids already in ``OUTPUT.partial`` (none unless resuming); a torn last line is cut off."""
        from diary_lightning.training.exact_resume import completed_predictions

        done = completed_predictions(self.partial) if self.resume else set()
        self.count = len(done)
        if done:
            log.info("resuming %s: %d diaries already written", self.partial, len(done))
        return done

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            if self.identity is not None:  # before the first diary: a .partial always says who wrote it
                write_record(self.record, self.identity)
            self._file = open(self.partial, "a" if self.resume else "w", encoding="utf-8")

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any, *args: Any) -> None:
        if self._file is None:
            return
        for row in prediction:
            line = {"id": row["id"], "diary": row["diary"], "style_failures": row["style_failures"]}
            self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.count += 1
        self._file.flush()

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self.finish()

    def finish(self) -> None:
        """Publish ``OUTPUT.partial`` as ``OUTPUT``. Also called after a resumed predict that found every
        diary already written, where Lightning skips the loop and its hooks."""
        if self.partial.is_file():
            os.replace(self.partial, self.output)
            self.record.unlink(missing_ok=True)
            log.info("wrote %d diaries to %s", self.count, self.output)


# What made a predictions file: the weights, the base, the generation settings and the prompt.
#
# A predict killed midway leaves ``OUTPUT.partial``; ``--resume_predictions`` appends to it. Beside it,
# ``OUTPUT.partial.json`` records what wrote those diaries, and a resume with anything else (another checkpoint
# or adapter, even a ``last.ckpt`` rewritten since, other generation settings, another prompt) is refused
# rather than merged into one file that no single model wrote.

class PredictionsMismatchError(UserError, ValueError):
    """A ``.partial`` file written by other weights or settings than the resuming predict's."""


def prediction_identity(ckpt_path: str | None, model: Any, datamodule: Any) -> dict[str, Any]:
    """What decides the diaries of a predict: the weights (a checkpoint or an adapter, by content), the base, the
    generation settings and the prompt (the configured one, which holds an adapter's once the CLI loaded it, and
    a checkpoint's own)."""
    h = model.hparams
    weights: dict[str, Any] = {"checkpoint": None, "adapter": None}
    # Both: the checkpoint's prompt replaces the configured one, but data.writer and data.bots still apply.
    prompt = {"configured": datamodule.prompt_state(), "checkpoint": None}
    if ckpt_path:
        weights["checkpoint"] = {"path": str(Path(ckpt_path).resolve()), "digest": files_digest([ckpt_path])}
        prompt["checkpoint"] = dict(read_checkpoint(ckpt_path).prompt)
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

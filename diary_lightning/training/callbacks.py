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
from diary_lightning.io.jsonl import JsonlAppender, first_mismatch, fingerprint, open_for_resume
from diary_lightning.io.outputs import claim, claimed, unclaim
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
        too_long_line, too_long_warnings = too_long(report, trainer.datamodule.max_length)
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


class PredictionsJsonl(BasePredictionWriter):
    """Writes ``{"id", "writer", "diary", "style_failures", "faithfulness_failures"}`` lines as batches finish, to
    ``OUTPUT.partial``; renamed to ``OUTPUT`` when complete, so a killed predict never leaves a half-written file under the final name.

    Under DDP each rank generates its share of the chats (:meth:`DiaryDataModule.predict_dataloader`) and
    writes it to its own file (``OUTPUT.partial`` for rank 0, ``OUTPUT.partial.rankR`` for the others); at the
    end rank 0 merges them into one ``OUTPUT`` in the input's order.

    With ``resume``, the complete lines an interrupted predict left in those files are kept and new lines
    appended after them; :meth:`written_ids` tells which dialogues to leave out, whatever the number of ranks
    of the interrupted run. ``resume`` None (the default) resumes when the same weights, settings and inputs
    wrote those lines, and otherwise starts over; each says so.
    """

    def __init__(self, output: str, resume: bool | None = None, resume_command: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.resume_command = resume_command
        self.output = Path(output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.record = self.partial.with_name(self.partial.name + ".json")
        self.resume = resume
        self._asked = resume
        self.identity: dict[str, Any] | None = None
        self._file: JsonlAppender | None = None
        self.inputs: dict[str, str] = {}
        self.count = 0

    def rank_parts(self) -> list[Path]:
        """The other ranks' files, of this run or of an interrupted one with any number of ranks."""
        return sorted(self.partial.parent.glob(self.partial.name + ".rank*"))

    def _mine(self, rank: int) -> Path:
        return self.partial if rank == 0 else self.partial.with_name(f"{self.partial.name}.rank{rank}")

    def check_identity(self, identity: dict[str, Any]) -> None:
        """Keep what makes these diaries, to record beside ``OUTPUT.partial``; when resuming, refuse a
        ``.partial`` that something else made (:func:`diary_lightning.training.callbacks.check_same_maker`)."""
        self._asked = self.resume  # None: decided here, from what the .partial is
        left = self.partial.is_file() or bool(self.rank_parts())
        if left and self.resume is not False:
            try:
                check_same_maker(self.record, identity, self.partial)
                self.resume = True
            except PredictionsMismatchError as err:
                if self.resume:
                    raise
                self._start_over(str(err))
        self.resume = bool(self.resume)
        self.identity = identity

    def _start_over(self, why: str) -> None:
        log.warning("%s was left by an interrupted predict that cannot be continued here, so it is written again "
                    "from the start: %s", self.partial, why.removeprefix("--resume_predictions: "))
        self.resume = False

    def written_ids(self, inputs: dict[str, str]) -> set[str]:
        """Ids already written (none unless resuming), in every rank's file, after cutting off a torn last line and
        checking that each was written for a dialogue of ``inputs`` (id -> :func:`fingerprint`) as it is now."""
        self.inputs = inputs
        if not self.resume:
            return set()
        saved = (json.loads(self.record.read_text(encoding="utf-8")).get("input") or {}) if self.record.is_file() else {}
        done: set[str] = set()
        for path in [self.partial, *self.rank_parts()]:
            if path.is_file() and self.record.is_file() and not claimed(path, "predict"):
                claim(path, "predict")  # written before files were marked: its record beside it says whose it is
            written = [record["id"] for record in open_for_resume(path, "predict")]
            mismatch = first_mismatch([(id_, saved.get(id_)) for id_ in written], inputs)
            if mismatch and self._asked is None:
                self._start_over(f"{path}: {mismatch} (--data.predict_path)")
                return set()
            if mismatch:
                raise PredictionsMismatchError(
                    f"--resume_predictions: {path}: {mismatch} (--data.predict_path). Resume with the same "
                    f"input, or delete {self.partial} to start over.")
            done.update(written)
        self.count = len(done)
        if done:
            log.info("resuming %s: %d diaries already written by an interrupted predict with the same weights, "
                     "settings and inputs; only the others are written (--resume_predictions false starts over)",
                     self.partial, len(done))
        return done

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rank = trainer.global_rank
        if trainer.is_global_zero:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            if self.identity is not None:  # before the first diary: a .partial always says who wrote it, and for what
                write_record(self.record, {**self.identity, "input": self.inputs})
            if not self.resume:  # a fresh predict: no other run's rank files may join the merge
                for part in self.rank_parts():
                    if int(part.name.rsplit("rank", 1)[1]) >= trainer.world_size:
                        part.unlink()
        if not self.resume:
            self._mine(rank).unlink(missing_ok=True)
        self._file = JsonlAppender(self._mine(rank))
        claim(self._mine(rank), "predict")

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any, *args: Any) -> None:
        if self._file is None:
            return
        for row in prediction:
            self._file.write({"id": row["id"], "writer": row["writer"], "diary": row["diary"],
                              "style_failures": row["style_failures"],
                              "faithfulness_failures": row.get("faithfulness_failures")})
            self.count += 1

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self._file is None:
            return
        self._file.close()  # what was written stays, synced: the run it resumes starts from there
        self._file = None
        if isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero:
            log.warning("Stopped (Ctrl-C): %d %s kept in %s; write the rest with:\n  %s", self.count,
                        "diary" if self.count == 1 else "diaries", self.partial,
                        self.resume_command or "the same command and --resume_predictions true")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        trainer.strategy.barrier("predictions written")  # every rank's file complete before rank 0 merges
        if trainer.is_global_zero:
            self.finish(getattr(trainer.datamodule, "predict_order", None))

    def finish(self, order: list[str] | None = None) -> None:
        """Merge the ranks' files into ``OUTPUT.partial`` in the input's ``order`` (ids) and publish it as
        ``OUTPUT``. Also called after a resumed predict that found every diary already written, where
        Lightning skips the loop and its hooks."""
        parts = self.rank_parts()
        if not parts and not self.partial.is_file():
            return  # published already (on_predict_end, then the CLI's after_predict), or nothing written
        self._merge(parts, order)
        if self.partial.is_file():
            claim(self.output, "predict", source=self.partial)  # before the rename: the name is never unclaimed
            os.replace(self.partial, self.output)
            unclaim(self.partial)
            self.record.unlink(missing_ok=True)
            log.info("wrote %d diaries to %s", sum(1 for _ in self.output.open(encoding="utf-8")), self.output)

    def _merge(self, parts: list[Path], order: list[str] | None) -> None:
        lines: dict[str, str] = {}
        for path in [self.partial, *parts]:
            if path.is_file():
                # Records end at "\n" alone: a diary may hold U+2028 or another break str.splitlines() cuts at,
                # which json.dumps(ensure_ascii=False) leaves raw.
                for line in path.read_text(encoding="utf-8").split("\n"):
                    if line:
                        lines.setdefault(json.loads(line)["id"], line + "\n")
        position = {dialogue_id: i for i, dialogue_id in enumerate(order or [])}
        ordered = sorted(lines, key=lambda i: position.get(i, len(position)))  # stable: unknown ids keep theirs
        write_text(self.partial, "".join(lines[i] for i in ordered))
        for part in parts:
            part.unlink()
            unclaim(part)


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
    prompt = {"configured": datamodule.prompt_format.state(), "checkpoint": None}
    if ckpt_path:
        weights["checkpoint"] = {"path": str(Path(ckpt_path).resolve()), "digest": files_digest([ckpt_path])}
        recorded = read_checkpoint(ckpt_path).settings.prompt
        prompt["checkpoint"] = recorded.state() if recorded is not None else {}
    elif h.get("adapter_path"):
        path = Path(h.adapter_path)
        weights["adapter"] = {"path": str(path.resolve()),
                              "digest": files_digest([path / "adapter_model.safetensors"])}
    return {
        "weights": weights,
        "base_model": {key: h[key] for key in ("base_model", "load_in_4bit", "compute_dtype", "double_quant")},
        "generation": model.generation.to_dict(),
        "prompt": {**prompt, "max_length": datamodule.max_length},
    }


def predict_inputs(datamodule: Any) -> dict[str, str]:
    """Id -> :func:`fingerprint` of every dialogue predict will write for, as the data module reads them."""
    return {d.id: fingerprint(d.turns) for d in datamodule.predict_dialogues().dialogues}


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

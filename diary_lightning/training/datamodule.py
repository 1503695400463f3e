"""The LightningDataModule: dialogues in, padded token batches out."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, DistributedSampler

from diary_lightning.data import cache
from diary_lightning.data.batching import DiaryCollator, LengthGroupedBatchSampler
from diary_lightning.data.clean import DEFAULT_ANONYMIZATION
from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.encoding import PromptFormat
from diary_lightning.data.prepare import DataReport, Encoder, build_splits, check_something_left, sequence_lengths
from diary_lightning.data.prompts import DEFAULT_TEMPLATE, resolve_template
from diary_lightning.data.records import Dialogue, Turn, record_fields
from diary_lightning.data.roles import (
    DEFAULT_BOTS,
    DEFAULT_WRITER,
    LabelScheme,
    bot_setting,
    count_rules,
    prompt_turns,
    with_writers,
    writer_setting,
)
from diary_lightning.data.sources import expand_paths
from diary_lightning.data.splits import fit_split_warnings
from diary_lightning.errors import check_numbers
from diary_lightning.model.loading import load_tokenizer
from diary_lightning.model.settings import DEFAULT_MAX_LENGTH, RunSettings, adopt_prompt
from diary_lightning.training.exact_resume import ResumableDataLoader
from diary_lightning.training.lightning_internals import batches_trained_this_epoch, global_seed

log = logging.getLogger(__name__)


class DiaryDataModule(L.LightningDataModule):
    def __init__(
        self,
        paths: list[str] | None = None,
        predict_path: str | None = None,
        tokenizer: str | None = None,
        batch_size: int = 1,
        eval_batch_size: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split: str = "hash",
        split_seed: int = 0,
        prompt_template: str = DEFAULT_TEMPLATE,
        writer: str | list[str] | None = None,
        bots: list[str] | None = None,
        anonymization: str = DEFAULT_ANONYMIZATION,
        format: str = "auto",
        fields: dict[str, str] | None = None,
        topics: list[str] | None = None,
        skip_invalid: bool = False,
        split_days: bool = True,
        val_generate_samples: int = 32,
        test_generate_samples: int | None = 128,
        group_by_length: bool = True,
        num_workers: int = 0,
        cache_dir: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        """
        Args:
            paths: Training dialogues: files, directories or glob patterns (AI Hub JSON, JSONL, JSON lists).
            predict_path: Dialogues to write diaries for (``predict``); summaries not needed. Also a plain-text
                chat log (``.txt``, one ``speaker: text`` line per utterance): one dialogue named after the file.
            tokenizer: Tokenizer name or directory; the CLI links it to ``model.base_model``.
            batch_size: Examples per training batch (per device).
            eval_batch_size: Examples per validation, test and predict batch; defaults to ``batch_size``.
            max_length: Most tokens of prompt + diary; the oldest turns are dropped to fit.
            val_fraction: Share of dialogues for validation.
            test_fraction: Share of dialogues for test.
            split: ``hash`` pools every file and splits by a stable hash of the dialogue id;
                ``aihub`` keeps AI Hub's Validation folder as val and carves test from Training.
            split_seed: Changes which dialogues land in which split; independent of ``seed_everything``.
            prompt_template: A built-in name (``eeve-diary``, ``eeve-summary``) or a string with ``{dialogue}``.
            writer: Whose diary each dialogue is: a speaker name (``민지``, ``Human``, ``P02``) or a rule, ``first``
                (first speaker not a bot) or ``most`` (who wrote most); a list is tried in order per dialogue. Default:
                what the checkpoint or adapter stored, else ``[Human, exporter, first]``; a value given here always wins.
            bots: The chatbot's speaker names (any case); default: as stored, else ``[AI, Assistant, Bot, 챗봇...]``.
            anonymization: AI Hub tokens such as ``#@이름#``: ``placeholder`` ((이름)), ``keep`` or ``drop``.
            format: ``auto`` (by file suffix and content), ``aihub``, ``jsonl``, ``json`` (list of records),
                ``nikl`` or ``text`` (a ``speaker: text`` chat log, the default for ``.txt`` files).
            fields: Field names for JSON/JSONL records: keys ``id``, ``dialogue``, ``speaker``, ``text``, ``summary``.
            topics: Keep only AI Hub dialogues of these topics (e.g. ``개인 및 관계``).
            skip_invalid: Skip and report bad records instead of stopping.
            split_days: Cut a chat log (KakaoTalk export) into one dialogue per day, as a diary is written per day
                (ids ``FILE_YYYY-MM-DD``); off: one dialogue per file.
            val_generate_samples: Val dialogues the model writes diaries for at each scored validation, chosen
                by a stable hash of their ids (0: none). Not capped by ``trainer.limit_val_batches``.
            test_generate_samples: Test dialogues written and scored by ``test``, chosen the same way
                (0: none; null: the whole test split).
            group_by_length: Train on batches of similar length (less padding); off: plain shuffle.
            num_workers: DataLoader worker processes.
            cache_dir: Where tokenized splits are kept; defaults to ``~/.cache/diary_lightning``.
            trust_remote_code: Allow a tokenizer that runs code from its repository.
        """
        super().__init__()
        self.save_hyperparameters()
        check_numbers("--data", self.hparams, positive=("batch_size", "eval_batch_size", "max_length"),
                      at_least_zero=("num_workers", "val_generate_samples", "test_generate_samples"),
                      share=("val_fraction", "test_fraction"))
        # data.writer and data.bots normalised here, once (a bad value fails now, not when the data is read);
        # None when not given, so that what a checkpoint or adapter stored can stand in (adopt).
        self._writer = writer_setting(writer) if writer is not None else None
        self._bots = bot_setting(bots) if bots is not None else None
        self.prompt_format = PromptFormat(resolve_template(prompt_template), anonymization, LabelScheme(), {},
                                          self._writer or DEFAULT_WRITER, self._bots or DEFAULT_BOTS)
        """The prompt in force: the configured one, or the one the run being continued or used was trained with."""
        self.max_length = max_length
        """``data.max_length``, or the one an adapter was trained with."""
        self.fields = record_fields(fields)
        self._tokenizer = None
        self._splits: dict[str, Any] | None = None
        self._data_fingerprint: str | None = None
        self._generation_sets: dict[str, list[dict[str, Any]]] = {}
        self._predict: Any = None  # the predict dialogues, tokenized: read before the model loads (predict_dataset)
        self._predict_read: Any = None  # the predict file read once, for the resume check and the dataset
        self._predict_room = 0
        self.report = DataReport()
        # Dialogues a resumed predict has already written (set by the CLI).
        self.skip_predict_ids: set[str] = set()
        self.predict_order: list[str] | None = None  # ids of the predict input, in its order

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if not self.hparams.tokenizer:
                raise ValueError("data.tokenizer is not set (the CLI links it to model.base_model)")
            self._tokenizer = load_tokenizer(self.hparams.tokenizer, self.hparams.trust_remote_code)
        return self._tokenizer

    def settings(self, generation: Any) -> RunSettings:
        """The run's settings: this module's prompt and ``max_length`` with the model's ``generation``."""
        return RunSettings(self.prompt_format, self.max_length, generation)

    def prompt_turns(self, dialogue: Dialogue, prompt_format: PromptFormat | None = None) -> tuple[Turn, ...]:
        """The turns under the prompt's labels, as ``render_chat`` labels a service's chat, for the dialogue's writer."""
        pf = prompt_format or self.prompt_format
        return prompt_turns(dialogue.turns, dialogue.writer, pf.bots, pf.label_scheme, pf.fixed_labels)

    # -- checkpoint: the prompt travels with the adapter --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # The prompt travels in the run's metadata, which the LightningModule writes (model.metadata). What fit
        # trains on is recorded here: a resumed fit refuses other data (cli/runs.py refuse_other_training_data).
        fitting = self.trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        return {"training_data": self.training_data_fingerprint()} if fitting and self.hparams.paths else {}

    def training_data_fingerprint(self) -> str:
        """:func:`diary_lightning.data.cache.data_fingerprint` of the training data, computed once."""
        if self._data_fingerprint is None:
            self._data_fingerprint = cache.data_fingerprint(
                expand_paths(self.hparams.paths, exclude=[cache.cache_root(self.hparams.cache_dir)]))
        return self._data_fingerprint

    def adopt(self, saved: RunSettings, max_length: bool = False, quietly: bool = False) -> None:
        """Encode as the run of ``saved`` was trained to read: its prompt (``data.writer`` and ``data.bots``, when
        given, still choose whose diary), and with ``max_length`` its ``max_length`` (said as a warning unless
        ``quietly``: no ``data.max_length`` was configured to be replaced)."""
        changed = False
        if saved.prompt is not None:
            prompt = adopt_prompt(self.prompt_format, saved.prompt, self._writer, self._bots)
            before, after = self.prompt_format, prompt
            if (before.template, before.label_scheme, before.fixed_labels, before.anonymization) != (
                    after.template, after.label_scheme, after.fixed_labels, after.anonymization):
                log.warning("Using the prompt template, speaker labels and anonymization saved in the checkpoint.")
            changed = prompt != self.prompt_format
            self.prompt_format = prompt
        if max_length and saved.max_length and saved.max_length != self.max_length:
            (log.info if quietly else log.warning)("Using max_length %d saved with the run, not %d.",
                                                   saved.max_length, self.max_length)
            self.max_length, changed = saved.max_length, True
        if changed:
            self._predict_read = None  # the writers are chosen while reading
            self._forget_encoded()

    def _forget_encoded(self) -> None:
        """Drop what was tokenized under the settings just replaced."""
        self._splits, self._generation_sets, self._predict = None, {}, None

    # -- reading and tokenizing ---------------------------------------------------------------------------
    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup: under DDP one rank tokenizes into the
        # cache and the others read it, rather than every rank tokenizing the whole corpus at once.
        if self.hparams.paths and (self.trainer is None or self.trainer.state.fn != TrainerFn.PREDICTING):
            self.splits()

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate", "test"):
            self.splits()
        if stage == "fit":
            # Lightning calls setup before configure_model: an unusable split is refused before the base loads.
            # With validation off no monitor waits for a val/ metric.
            validating = self.trainer is not None and getattr(self.trainer, "limit_val_batches", None) != 0
            for warning in fit_split_warnings(self.report, self.trainer.callbacks if validating else []):
                log.warning("%s", warning)
        elif stage == "predict" and not self.hparams.predict_path:
            raise ValueError("predict needs data.predict_path (a file of dialogues to write diaries for)")

    def _read(self, paths: Any, require_summary: bool, progress: bool = True) -> Any:
        """The dialogues under ``paths``, each with its writer (``writer_chosen_by``: the entry that chose it)."""
        result = read_dialogues(
            paths, fmt=self.hparams.format, fields=self.fields, require_summary=require_summary,
            anonymization=self.prompt_format.anonymization, topics=self.hparams.topics if require_summary else None,
            skip_invalid=self.hparams.skip_invalid,
            # A cache inside a data folder holds .json files that are not data.
            exclude=[cache.cache_root(self.hparams.cache_dir)], progress=progress, split_days=self.hparams.split_days,
        )
        for problem in result.problems:
            if problem.reason in ("unreadable folder", "unreadable file"):  # skip_invalid: said, never silent
                log.warning("data.skip_invalid: skipped %s", problem)
        return with_writers(result, self.prompt_format.writer, self.prompt_format.bots, self.hparams.skip_invalid)

    def encoder(self) -> Encoder:
        prompt_format = self.prompt_format
        return Encoder(self.tokenizer, prompt_format.template, self.max_length,
                       lambda dialogue: self.prompt_turns(dialogue, prompt_format))

    def splits(self) -> dict[str, Any]:
        """Tokenized train/val/test datasets, from the cache when the inputs and settings are unchanged."""
        if self._splits is not None:
            return self._splits
        if not self.hparams.paths:
            raise ValueError("data.paths is not set: give the training dialogues (files, directories or globs)")
        h = self.hparams
        pf = self.prompt_format
        roles = [pf.writer, pf.bots, pf.label_scheme and pf.label_scheme.to_dict(), dict(pf.fixed_labels)]
        options = [self.max_length, h.val_fraction, h.test_fraction, h.split, h.split_seed, roles,
                   pf.anonymization, h.format, h.fields, h.topics, h.skip_invalid, h.split_days]
        files = expand_paths(h.paths, exclude=[cache.cache_root(h.cache_dir)])
        path = cache.cache_path(h.cache_dir, files, self.tokenizer, pf.template, options)
        cached = cache.load(path)
        if cached is not None:
            log.info("Using tokenized data from the cache: %s", path)
        else:
            result = self._read(h.paths, require_summary=True)
            encoded, report = build_splits(result, self.encoder(), h.val_fraction, h.test_fraction, h.split_seed,
                                           h.split, pf.writer)
            check_something_left(report, self.max_length, h.paths)
            cache.save(path, encoded, report)
            # Read back from the cache: memory-mapped Arrow rather than lists held in RAM.
            cached = cache.load(path)
        self._splits, self.report = cached
        return self._splits

    # -- loaders ------------------------------------------------------------------------------------------
    def _loader(self, dataset: Any, padding_side: str = "right", cls: type[DataLoader] = DataLoader,
                chat: bool = False, **kwargs: Any) -> DataLoader:
        # ``chat``: the turns too, for the checks of a generated diary against its chat (predict).
        names = ("input_ids", "labels", "id", "summary", "writer", *(("speakers", "texts") if chat else ()))
        columns = [c for c in names if c in dataset.column_names]
        return cls(
            dataset.select_columns(columns),
            collate_fn=DiaryCollator(self.tokenizer.pad_token_id, padding_side),
            num_workers=self.hparams.num_workers,
            # Without a generator of its own every new iterator draws a seed from the global RNG, and a
            # resumed run (which creates them at other moments) would get other dropout masks.
            generator=torch.Generator().manual_seed(0),
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        train = self.splits()["train"]
        if len(train) == 0:
            raise ValueError("the train split is empty: add dialogues or lower data.val_fraction/test_fraction")
        self.train_sampler = LengthGroupedBatchSampler(
            sequence_lengths(train).tolist(), self.hparams.batch_size,
            # seed_everything exports its seed to every rank; the batch order follows it, so the ranks
            # agree on the order and each takes its own part of every global batch.
            seed=global_seed(), group_by_length=self.hparams.group_by_length,
            num_replicas=self.trainer.world_size if self.trainer else 1,
            rank=self.trainer.global_rank if self.trainer else 0,
        )
        if self.trainer is not None:  # a run resumed after a finished epoch starts on the next one
            self.train_sampler.set_epoch(self.trainer.current_epoch)
        return self._loader(train, cls=ResumableDataLoader, batch_sampler=self.train_sampler,
                            position=lambda: batches_trained_this_epoch(self.trainer),
                            accumulate_grad_batches=self.trainer.accumulate_grad_batches if self.trainer else 1)

    def _eval_batch_size(self) -> int:
        return self.hparams.eval_batch_size or self.hparams.batch_size

    def _eval_loader(self, dataset: Any) -> DataLoader:
        """Under DDP each rank scores its share, as Lightning would arrange with its sampler, which the CLI
        turns off (``trainer.use_distributed_sampler: false``) so that it leaves the training batches alone."""
        world_size = self.trainer.world_size if self.trainer is not None else 1
        sampler = None
        if world_size > 1:
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=self.trainer.global_rank, shuffle=False)
        return self._loader(dataset, batch_size=self._eval_batch_size(), sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits()["val"])

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits()["test"])

    def generation_dataloader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader | None:
        """Left-padded prompts of the fixed generation subset of ``split`` (``val`` or ``test``) with their
        summaries (the reference diaries) and dialogue text; rank ``r`` of ``world_size`` gets positions ``r, r + W, ...``.
        None when generation is off for the split.

        Lightning does not drive this loader, so ``trainer.limit_val_batches`` caps the val/loss batches
        only and the generation subset stays the same however often or briefly validation runs.
        """
        size = self.hparams.val_generate_samples if split == "val" else self.hparams.test_generate_samples
        if size == 0:
            return None
        if split not in self._generation_sets:
            from diary_lightning.evaluation.samples import generation_subset

            self._generation_sets[split] = generation_subset(self.splits()[split], size)
        subset = self._generation_sets[split][rank::world_size]
        # A few dozen prompts: starting worker processes would cost more than it saves.
        return DataLoader(subset, batch_size=self._eval_batch_size(),
                          collate_fn=DiaryCollator(self.tokenizer.pad_token_id, "left"),
                          generator=torch.Generator().manual_seed(0))

    def predict_dialogues(self) -> Any:
        """The predict file read, cleaned and given writers, once: the resume check fingerprints these, and
        :meth:`predict_dataset` tokenizes them."""
        if self._predict_read is None:
            if not self.hparams.predict_path:
                raise ValueError("predict needs data.predict_path (a file of dialogues to write diaries for)")
            self._predict_read = self._read(self.hparams.predict_path, require_summary=False)
        return self._predict_read

    def predict_dataset(self, diary_room: int | None = None) -> Any:
        """The dialogues to write diaries for, read, checked (files, writer) and tokenized, each prompt cut to
        leave ``diary_room`` tokens (``model.max_new_tokens``) for the diary within ``max_length``, as every training
        example had. The CLI calls this before the model loads, so that a bad file or an unknown writer costs
        seconds, not a model load."""
        if self._predict is None or (diary_room is not None and diary_room != self._predict_room):
            result = self.predict_dialogues()
            dialogues = [d for d in result.dialogues if d.id not in self.skip_predict_ids]
            log.info("predict: writers chosen by %s", count_rules(dialogues, result.writer_chosen_by, self.prompt_format.writer))
            # The input's order, which the predictions file keeps whatever the ranks (PredictionsJsonl).
            self.predict_order = [d.id for d in result.dialogues]
            room = diary_room or 0
            encoder = dataclasses.replace(self.encoder(), diary_room=room)
            dataset = encoder(dialogues, False, "Tokenizing predict")
            cut = [n for n in dataset["turns_cut"] if n] if len(dataset) else []
            if cut:
                log.warning("predict: %d of %d chats lost their oldest turns (%d turns in all) to fit data.max_length "
                            "%d minus model.max_new_tokens %d, as training cuts them", len(cut), len(dataset),
                            sum(cut), self.max_length, room)
            self._predict, self._predict_room = dataset, room
        return self._predict

    def predict_dataloader(self) -> DataLoader:
        module = self.trainer.lightning_module if self.trainer is not None else None
        dataset = self.predict_dataset(module.generation.max_new_tokens if module else None)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        if world > 1:
            # Each rank generates every world-th chat: predict has no collective step, so the shares may
            # differ by one, and nothing is generated twice (a DistributedSampler would pad with repeats).
            dataset = dataset.select(range(rank, len(dataset), world))
        return self._loader(dataset, padding_side="left", batch_size=self._eval_batch_size(), chat=True)

"""The LightningDataModule: dialogues in, padded token batches out."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, DistributedSampler

from diary_lightning.atomic import atomic_directory
from diary_lightning.batching import DiaryCollator, load_tokenizer
from diary_lightning.clean import DEFAULT_ANONYMIZATION
from diary_lightning.dialogue import Dialogue, Turn, read_dialogues, record_fields
from diary_lightning.encoding import encode_batch
from diary_lightning.prompts import DEFAULT_TEMPLATE, resolve_template
from diary_lightning.resume import ResumableDataLoader
from diary_lightning.sampler import LengthGroupedBatchSampler
from diary_lightning.splits import SPLITS, split_dialogues

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when the cached columns change


def _encoded_features() -> Any:
    from datasets import Features, Sequence, Value

    # Declared, not inferred, so that an empty split still has every column.
    return Features({
        "id": Value("string"), "summary": Value("string"),
        "speakers": Sequence(Value("string")), "texts": Sequence(Value("string")),
        "input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
        **{name: Value("int32") for name in ("prompt_length", "target_length", "turns_cut", "num_turns")},
    })


def _empty_split() -> Any:
    from datasets import Dataset

    features = _encoded_features()
    return Dataset.from_dict({name: [] for name in features}, features=features)


def _load_splits(path: Path) -> dict[str, Any]:
    from datasets import load_from_disk

    # Empty splits are not saved: datasets cannot load an empty one back.
    saved = dict(load_from_disk(str(path)))
    return {name: saved.get(name, _empty_split()) for name in SPLITS}


def int_column(dataset: Any, name: str) -> Any:
    """One integer column as a numpy array, read from Arrow at once: going row by row through a
    datasets column costs seconds at AI Hub's scale."""
    return dataset.with_format("arrow", columns=[name])[:][name].to_numpy()


def sequence_lengths(dataset: Any) -> Any:
    """Tokens of each example (prompt and target), without reading the token ids."""
    return int_column(dataset, "prompt_length") + int_column(dataset, "target_length")


def _turn_columns(dialogues: list[Dialogue]) -> dict[str, list]:
    return {
        "id": [d.id for d in dialogues],
        "speakers": [[t.speaker for t in d.turns] for d in dialogues],
        "texts": [[t.text for t in d.turns] for d in dialogues],
        "summary": [d.summary or "" for d in dialogues],
    }


class DiaryDataModule(L.LightningDataModule):
    def __init__(
        self,
        paths: list[str] | None = None,
        predict_path: str | None = None,
        tokenizer: str | None = None,
        batch_size: int = 1,
        eval_batch_size: int | None = None,
        max_length: int = 1024,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split: str = "hash",
        split_seed: int = 0,
        prompt_template: str = DEFAULT_TEMPLATE,
        speaker_labels: dict[str, str] | None = None,
        anonymization: str = DEFAULT_ANONYMIZATION,
        format: str = "auto",
        fields: dict[str, str] | None = None,
        topics: list[str] | None = None,
        skip_invalid: bool = False,
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
            speaker_labels: Names shown for speaker ids in the prompt, e.g. ``{P01: Human, P02: AI}``.
            anonymization: AI Hub tokens such as ``#@이름#``: ``placeholder`` ((이름)), ``keep`` or ``drop``.
            format: ``auto`` (by file suffix and content), ``aihub``, ``jsonl``, ``json`` (list of records),
                ``nikl`` or ``text`` (a ``speaker: text`` chat log, the default for ``.txt`` files).
            fields: Field names for JSON/JSONL records: keys ``id``, ``dialogue``, ``speaker``, ``text``, ``summary``.
            topics: Keep only AI Hub dialogues of these topics (e.g. ``개인 및 관계``).
            skip_invalid: Skip and report bad records instead of stopping.
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
        self.template = resolve_template(prompt_template)
        self.fields = record_fields(fields)
        self._tokenizer = None
        self._splits: dict[str, Any] | None = None
        self._generation_sets: dict[str, list[dict[str, Any]]] = {}
        self.report: dict[str, Any] = {}
        # Dialogues a resumed predict has already written (set by the CLI).
        self.skip_predict_ids: set[str] = set()

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if not self.hparams.tokenizer:
                raise ValueError("data.tokenizer is not set (the CLI links it to model.base_model)")
            self._tokenizer = load_tokenizer(self.hparams.tokenizer, self.hparams.trust_remote_code)
        return self._tokenizer

    # -- checkpoint: the prompt travels with the adapter --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "prompt_template": self.template,
            "speaker_labels": dict(self.hparams.speaker_labels or {}),
            "anonymization": self.hparams.anonymization,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = (state["prompt_template"], state.get("speaker_labels") or {}, state.get("anonymization"))
        configured = (self.template, dict(self.hparams.speaker_labels or {}), self.hparams.anonymization)
        if saved != configured:
            log.warning("Using the prompt template, speaker labels and anonymization saved in the checkpoint.")
            self.template = saved[0]
            self.hparams.speaker_labels = saved[1]
            self.hparams.anonymization = saved[2] or self.hparams.anonymization
            self._splits = None
            self._generation_sets = {}

    # -- reading and tokenizing ---------------------------------------------------------------------------
    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup: under DDP one rank tokenizes into the
        # cache and the others read it, rather than every rank tokenizing the whole corpus at once.
        if self.hparams.paths and (self.trainer is None or self.trainer.state.fn != TrainerFn.PREDICTING):
            self.splits()

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate", "test"):
            self.splits()
        elif stage == "predict" and not self.hparams.predict_path:
            raise ValueError("predict needs data.predict_path (a file of dialogues to write diaries for)")

    def _read(self, paths: Any, require_summary: bool) -> Any:
        return read_dialogues(
            paths,
            fmt=self.hparams.format,
            fields=self.fields,
            require_summary=require_summary,
            anonymization=self.hparams.anonymization,
            topics=self.hparams.topics if require_summary else None,
            skip_invalid=self.hparams.skip_invalid,
        )

    def _encode(self, dataset: Any, with_targets: bool, desc: str) -> Any:
        tokenizer, template = self.tokenizer, self.template
        labels, max_length = self.hparams.speaker_labels, self.hparams.max_length

        def encode(batch: dict[str, list]) -> dict[str, list]:
            turns = [[Turn(s, t) for s, t in zip(sp, tx)] for sp, tx in zip(batch["speakers"], batch["texts"])]
            targets = batch["summary"] if with_targets else None
            return encode_batch(tokenizer, template, turns, targets, max_length, labels)

        if len(dataset) == 0:  # map() never calls encode on an empty dataset
            return _empty_split()
        # The turns stay beside the tokens: the generated-diary table shows the dialogue as text.
        return dataset.map(encode, batched=True, batch_size=256, desc=desc, features=_encoded_features())

    def _cache_key(self, files: list[Path]) -> str:
        h = self.hparams
        tokenizer = self.tokenizer
        parts = {
            "version": CACHE_VERSION,
            "files": [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files],
            "tokenizer": [h.tokenizer, type(tokenizer).__name__, len(tokenizer), tokenizer.eos_token_id],
            "template": self.template,
            "options": [h.max_length, h.val_fraction, h.test_fraction, h.split, h.split_seed, h.speaker_labels,
                        h.anonymization, h.format, h.fields, h.topics, h.skip_invalid],
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def _cache_root(self) -> Path:
        return Path(self.hparams.cache_dir or os.path.expanduser("~/.cache/diary_lightning"))

    def splits(self) -> dict[str, Any]:
        """Tokenized train/val/test datasets, from the cache when the inputs and settings are unchanged."""
        if self._splits is not None:
            return self._splits
        from datasets import Dataset

        from diary_lightning.dialogue import expand_paths

        if not self.hparams.paths:
            raise ValueError("data.paths is not set: give the training dialogues (files, directories or globs)")
        files = expand_paths(self.hparams.paths)
        cached = self._cache_root() / self._cache_key(files)
        if (cached / "report.json").is_file():
            log.info("Using tokenized data from the cache: %s", cached)
            self._splits = _load_splits(cached / "data")
            self.report = json.loads((cached / "report.json").read_text())
            return self._splits
        result = self._read(self.hparams.paths, require_summary=True)
        parts = split_dialogues(result.dialogues, self.hparams.val_fraction, self.hparams.test_fraction,
                                self.hparams.split_seed, self.hparams.split)
        encoded = dict({
            name: self._encode(Dataset.from_dict(_turn_columns(parts[name])), True, f"Tokenizing {name}")
            for name in SPLITS
        })
        lengths = {name: sequence_lengths(ds) for name, ds in encoded.items()}
        too_long = {name: int((n > self.hparams.max_length).sum()) for name, n in lengths.items()}
        if any(too_long.values()):
            # The last turn alone plus the target does not fit: nothing sensible is left to learn from.
            encoded = {name: ds.select(np.flatnonzero(lengths[name] <= self.hparams.max_length))
                       for name, ds in encoded.items()}
        self.report = {
            "files": result.per_file,
            "skipped": dict(result.skipped),
            "problems": [str(p) for p in result.problems[:50]],
            "turn_mismatches": result.turn_mismatches,
            "empty_dialogues": result.empty_dialogues,
            "empty_utterances_dropped": result.empty_utterances,
            "splits": {name: len(ds) for name, ds in encoded.items()},
            "too_long_dropped": too_long,
            "turns_cut": {name: int((int_column(ds, "turns_cut") > 0).sum()) for name, ds in encoded.items()},
        }
        self._save_cache(encoded, cached)
        # Read back from the cache: memory-mapped Arrow rather than lists held in RAM.
        self._splits = _load_splits(cached / "data")
        return self._splits

    def _save_cache(self, encoded: Any, target: Path) -> None:
        """Whole or not at all, so an interrupted run never leaves half a cache."""
        from datasets import DatasetDict

        # Another process may have finished the same cache first: its copy is as good as this one.
        with atomic_directory(target, keep_existing=True) as tmp:
            DatasetDict({name: ds for name, ds in encoded.items() if len(ds)}).save_to_disk(str(tmp / "data"))
            (tmp / "report.json").write_text(json.dumps(self.report, ensure_ascii=False))

    # -- loaders ------------------------------------------------------------------------------------------
    def _loader(self, dataset: Any, padding_side: str = "right", cls: type[DataLoader] = DataLoader,
                **kwargs: Any) -> DataLoader:
        columns = [c for c in ("input_ids", "labels", "id", "summary") if c in dataset.column_names]
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
            seed=int(os.environ.get("PL_GLOBAL_SEED", 0)), group_by_length=self.hparams.group_by_length,
            num_replicas=self.trainer.world_size if self.trainer else 1,
            rank=self.trainer.global_rank if self.trainer else 0,
        )
        if self.trainer is not None:  # a run resumed after a finished epoch starts on the next one
            self.train_sampler.set_epoch(self.trainer.current_epoch)
        return self._loader(train, cls=ResumableDataLoader, batch_sampler=self.train_sampler,
                            position=self._batches_trained,
                            accumulate_grad_batches=self.trainer.accumulate_grad_batches if self.trainer else 1)

    def _batches_trained(self) -> int:
        """Batches trained on in the current epoch, as the checkpoint being written will record them."""
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed

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
        reference diaries and dialogue text; rank ``r`` of ``world_size`` gets positions ``r, r + W, ...``.
        None when generation is off for the split.

        Lightning does not drive this loader, so ``trainer.limit_val_batches`` caps the val/loss batches
        only and the generation subset stays the same however often or briefly validation runs.
        """
        size = self.hparams.val_generate_samples if split == "val" else self.hparams.test_generate_samples
        if size == 0:
            return None
        if split not in self._generation_sets:
            from diary_lightning.evaluation import generation_subset

            self._generation_sets[split] = generation_subset(self.splits()[split], size, self.hparams.speaker_labels)
        subset = self._generation_sets[split][rank::world_size]
        # A few dozen prompts: starting worker processes would cost more than it saves.
        return DataLoader(subset, batch_size=self._eval_batch_size(),
                          collate_fn=DiaryCollator(self.tokenizer.pad_token_id, "left"))

    def predict_dataloader(self) -> DataLoader:
        from datasets import Dataset

        result = self._read(self.hparams.predict_path, require_summary=False)
        dialogues = [d for d in result.dialogues if d.id not in self.skip_predict_ids]
        dataset = self._encode(Dataset.from_dict(_turn_columns(dialogues)), False, "Tokenizing predict")
        return self._loader(dataset, padding_side="left", batch_size=self._eval_batch_size())

"""Read dialogues in, tokenized train/val/test datasets and a report of what happened to them out.

Plain functions on plain data: the data module calls them (through the cache), and so can anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diary_lightning.data.batching import LengthGroupedBatchSampler, padding_efficiency
from diary_lightning.data.encoding import encode_batch
from diary_lightning.data.records import DataError, Dialogue, Problem, ReadResult, Turn
from diary_lightning.data.roles import count_rules
from diary_lightning.data.splits import SPLITS, split_dialogues


@dataclass
class DataReport:
    """What reading, splitting and tokenizing did to the training data; printed by ``preprocess`` and at fit start."""

    files: dict[str, int] = field(default_factory=dict)
    """Dialogues kept from each file."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Records skipped, by reason."""
    problems: list[str] = field(default_factory=list)
    """The first 50 problems, as messages."""
    turn_mismatches: list[str] = field(default_factory=list)
    empty_dialogues: list[str] = field(default_factory=list)
    empty_utterances_dropped: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    """Examples in each split."""
    too_long_dropped: dict[str, int] = field(default_factory=dict)
    """Examples of each split dropped because the last turn and the diary alone exceed ``max_length``."""
    too_long_by_file: dict[str, int] = field(default_factory=dict)
    """The same drops counted by the file the dialogues came from, over every split."""
    turns_cut: dict[str, int] = field(default_factory=dict)
    """Examples of each split that lost their oldest turns to fit ``max_length``."""
    writer_chosen_by: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per split, how many writers each entry of the writer setting chose (before too-long examples are dropped)."""
    passed_over: list[str] = field(default_factory=list)
    """``path: why`` for what the directories in ``data.paths`` hold and was not read."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataReport:
        return cls(**data)


def _text_features() -> dict[str, Any]:
    from datasets import Sequence, Value

    return {"id": Value("string"), "summary": Value("string"), "writer": Value("string"),
            "speakers": Sequence(Value("string")), "texts": Sequence(Value("string"))}


def _token_features() -> dict[str, Any]:
    from datasets import Sequence, Value

    return {"input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
            **{name: Value("int32") for name in ("prompt_length", "target_length", "turns_cut", "num_turns")}}


def encoded_features() -> Any:
    from datasets import Features

    # Declared, not inferred, so that an empty split still has every column.
    return Features({**_text_features(), **_token_features()})


def empty_split() -> Any:
    from datasets import Dataset

    features = encoded_features()
    return Dataset.from_dict({name: [] for name in features}, features=features)


def int_column(dataset: Any, name: str) -> Any:
    """One integer column as a numpy array, read from Arrow at once: going row by row through a
    datasets column costs seconds at AI Hub's scale."""
    return dataset.with_format("arrow", columns=[name])[:][name].to_numpy()


def sequence_lengths(dataset: Any) -> Any:
    """Tokens of each example (prompt and target), without reading the token ids."""
    return int_column(dataset, "prompt_length") + int_column(dataset, "target_length")


def _turn_columns(dialogues: Sequence[Dialogue], label: Callable[[Dialogue], Sequence[Turn]] | None) -> dict[str, list]:
    """The columns kept beside the tokens: the turns as the prompt shows them (``label(dialogue)``), so the
    generated-diary table shows what the model saw, and the writer's own speaker id, for the style checks."""
    turns = [label(d) if label is not None else d.turns for d in dialogues]
    return {
        "id": [d.id for d in dialogues],
        "speakers": [[t.speaker for t in ts] for ts in turns],
        "texts": [[t.text for t in ts] for ts in turns],
        "summary": [d.summary or "" for d in dialogues],
        "writer": [d.writer or "" for d in dialogues],
    }


MIN_EXAMPLES_PER_PROCESS = 4000
"""Below this many examples per process, starting the processes costs more than they save."""


def tokenize_processes(examples: int) -> int:
    """Processes to tokenize ``examples`` with (datasets' ``num_proc``): the cores this process may use, fewer
    for small inputs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, examples // MIN_EXAMPLES_PER_PROCESS))


@contextlib.contextmanager
def _single_threaded_tokenizers(active: bool) -> Iterator[None]:
    """One process per core does the work: the Rust tokenizer's own threads would only compete with them, and
    forked after they ran it prints a warning per process."""
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    if active:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if active:
            if saved is None:
                os.environ.pop("TOKENIZERS_PARALLELISM", None)
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = saved


@dataclass(frozen=True)
class Encoder:
    """How dialogues become examples: the tokenizer, the prompt template, ``max_length`` and ``label``, which gives
    a dialogue's turns under the prompt's labels (:meth:`diary_lightning.training.datamodule.DiaryDataModule.prompt_turns`;
    None: the speaker ids as they are)."""

    tokenizer: Any
    template: str
    max_length: int
    label: Callable[[Dialogue], Sequence[Turn]] | None = None
    diary_room: int = 0
    """Without summaries (predict): tokens kept free for the diary, ``max_new_tokens``."""

    def __call__(self, dialogues: Sequence[Dialogue], with_summaries: bool, desc: str) -> Any:
        """A dataset of the encoded dialogues; the turns stay beside the tokens, as the generated-diary
        table shows the dialogue as text."""
        from datasets import Dataset, Features, concatenate_datasets

        if not dialogues:  # map() never calls encode on an empty dataset
            return empty_split()

        # Only these travel to datasets' worker processes, not the label function and what it is bound to.
        tokenizer, template, max_length, room = self.tokenizer, self.template, self.max_length, self.diary_room

        def encode(batch: dict[str, list]) -> dict[str, list]:
            # The speakers are already the prompt's labels (_turn_columns).
            turns = [[Turn(s, t) for s, t in zip(sp, tx)] for sp, tx in zip(batch["speakers"], batch["texts"])]
            summaries = batch["summary"] if with_summaries else None
            return encode_batch(tokenizer, template, turns, summaries, max_length, diary_room=room)

        procs = tokenize_processes(len(dialogues))
        text = Dataset.from_dict(_turn_columns(dialogues, self.label), features=Features(_text_features()))
        with _single_threaded_tokenizers(procs > 1):
            # map() writes only the token columns; the text columns are joined back without being written again.
            tokens = text.map(encode, batched=True, batch_size=256, desc=desc, features=Features(_token_features()),
                              remove_columns=text.column_names, num_proc=procs if procs > 1 else None)
        return concatenate_datasets([text, tokens], axis=1)


def build_splits(result: ReadResult, encoder: Encoder, val_fraction: float, test_fraction: float, seed: int = 0,
                 mode: str = "hash", writer: Sequence[str] = ()) -> tuple[dict[str, Any], DataReport]:
    """Split the dialogues read (see :func:`~diary_lightning.data.splits.split_dialogues`), encode every split and
    drop the examples that cannot fit ``max_length``; the datasets by split name, and the report, which counts
    per split the dialogues whose writer each entry of ``writer`` chose (``result.writer_chosen_by``)."""

    parts = split_dialogues(result.dialogues, val_fraction, test_fraction, seed, mode)
    encoded = {name: encoder(parts[name], True, f"Tokenizing {name}") for name in SPLITS}
    lengths = {name: sequence_lengths(ds) for name, ds in encoded.items()}
    too_long = {name: int((n > encoder.max_length).sum()) for name, n in lengths.items()}
    by_file: Counter[str] = Counter(parts[name][i].source.rpartition("#")[0]
                                    for name in SPLITS for i in np.flatnonzero(lengths[name] > encoder.max_length))
    if any(too_long.values()):
        # The last turn alone plus the target does not fit: nothing sensible is left to learn from.
        encoded = {name: ds.select(np.flatnonzero(lengths[name] <= encoder.max_length))
                   for name, ds in encoded.items()}
    report = DataReport(
        files=result.per_file,
        skipped=dict(result.skipped),
        problems=[str(p) for p in result.problems[:50]],
        turn_mismatches=result.turn_mismatches,
        empty_dialogues=result.empty_dialogues,
        empty_utterances_dropped=result.empty_utterances,
        splits={name: len(ds) for name, ds in encoded.items()},
        too_long_dropped=too_long,
        too_long_by_file=dict(sorted(by_file.items())),
        turns_cut={name: int((int_column(ds, "turns_cut") > 0).sum()) for name, ds in encoded.items()},
        writer_chosen_by={name: count_rules(parts[name], result.writer_chosen_by, writer) for name in SPLITS},
        passed_over=result.passed_over,
    )
    return encoded, report


# What the data lost on its way to training, said where a user looks: dialogues too long for
# ``data.max_length`` per split in fit's start-up block (a warning past 5% of a split), and an error when
# nothing at all is left.
#
# Plain functions on the :class:`~diary_lightning.data.prepare.DataReport`; no Lightning.

WARN_FRACTION = 0.05
"""A split losing more than this share of its dialogues to ``data.max_length`` gets a warning."""


def too_long(report: Any, max_length: int) -> tuple[str, list[str]]:
    """The start-up line with the dialogues dropped as too long per split, and a warning per split, and per
    source file when there are several, that lost more than WARN_FRACTION of them."""
    dropped, kept = report.too_long_dropped, report.splits
    counts = ", ".join(f"{name} {n} of {n + kept.get(name, 0)}" for name, n in dropped.items())
    line = f"too long       {counts or 'none'} dropped (longer than data.max_length={max_length} with every turn but the last cut)"
    fix = "raise data.max_length to keep them"
    warnings = []
    for name, n in dropped.items():
        total = n + kept.get(name, 0)
        if total and n / total > WARN_FRACTION:
            warnings.append(f"{n} of {total} {name} dialogues ({n / total:.0%}) do not fit data.max_length={max_length} "
                            f"and were dropped; {fix}")
    # With one file its split warnings already say it all; with several, the one whose chats are long is news.
    if len(report.files) > 1:
        for path, n in report.too_long_by_file.items():
            total = report.files.get(path, 0)
            if total and n / total > WARN_FRACTION:
                warnings.append(f"{path}: {n} of its {total} dialogues ({n / total:.0%}) do not fit "
                                f"data.max_length={max_length} and were dropped; {fix}")
    return line, warnings


def check_something_left(report: Any, max_length: int, paths: Any) -> None:
    """Stop when every record was skipped or dropped: a run on no data would only report ``dialogues: 0``."""
    if sum(report.splits.values()):
        return
    reasons = [f"{n} {reason}" for reason, n in report.skipped.items()]
    long_ones = sum(report.too_long_dropped.values())
    if long_ones:
        reasons.append(f"{long_ones} longer than data.max_length={max_length} (raise it to keep them)")
    where = ", ".join(report.files) or str(paths)
    detail = "; ".join(reasons) + " (every record was skipped or dropped)" if reasons else "none was read"
    raise DataError([Problem(where, None, None, "no dialogues", f"no dialogue is left to train or evaluate on: {detail}")])


# The data summary printed by ``preprocess``: what was read, skipped, cut, and how much padding batches waste.

def _percentiles(values: np.ndarray) -> dict[str, int]:
    if not len(values):
        return {"p50": 0, "p95": 0, "max": 0}
    ordered = np.sort(values)
    pick = lambda q: int(ordered[min(int(q * len(ordered)), len(ordered) - 1)])  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "max": int(ordered[-1])}


def _every(splits: dict[str, Any], name: str) -> np.ndarray:
    return np.concatenate([int_column(ds, name) for ds in splits.values()])


def summarize(datamodule: Any) -> dict[str, Any]:
    """Tokenize (or load from the cache) every split and describe it."""
    splits = datamodule.splits()
    report = datamodule.report
    train = splits["train"]
    lengths = sequence_lengths(train).tolist()
    batch_size = datamodule.hparams.batch_size
    seed = 0

    def efficiency(grouped: bool) -> float:
        sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=seed, group_by_length=grouped)
        return round(padding_efficiency(lengths, sampler.batches()), 4)

    return {
        "files": report.files,
        "dialogues": sum(report.files.values()),
        # What the folders in data.paths hold and was not read: a wrong suffix, a hidden file, a loop.
        "passed_over": report.passed_over,
        "skipped": report.skipped,
        "turn_mismatches": len(report.turn_mismatches),
        "turn_mismatch_ids": report.turn_mismatches[:20],
        "empty_dialogues": report.empty_dialogues[:20],
        "empty_utterances_dropped": report.empty_utterances_dropped,
        "splits": report.splits,
        "turns_per_dialogue": _percentiles(_every(splits, "num_turns")),
        "prompt_tokens": _percentiles(_every(splits, "prompt_length")),
        "target_tokens": _percentiles(_every(splits, "target_length")),
        "turns_cut": report.turns_cut,
        "writer_chosen_by": report.writer_chosen_by,
        "too_long_dropped": report.too_long_dropped,
        "too_long_by_file": report.too_long_by_file,
        "batch_size": batch_size,
        "group_by_length": datamodule.hparams.group_by_length,
        "padding_efficiency": efficiency(datamodule.hparams.group_by_length),
        "padding_efficiency_shuffle": efficiency(False),
    }

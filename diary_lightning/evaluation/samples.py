"""Diaries generated during validation and test: the fixed subset they are written for, their scores,
the sample table shown in TensorBoard and the JSONL that ``test`` leaves beside its logs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from diary_lightning.data.prompts import format_dialogue
from diary_lightning.data.records import Turn
from diary_lightning.evaluation.diary_style import scores_from_failures, style_failures
from diary_lightning.evaluation.faithfulness import faithfulness_failures, faithfulness_scores
from diary_lightning.evaluation.metrics import DiaryTextMetrics, score_pair
from diary_lightning.io.atomic import atomic_file

log = logging.getLogger(__name__)

TABLE_ROWS = 4
"""Examples of the subset shown in the TensorBoard sample table."""
TABLE_CELL_CHARS = 300


def _order_key(dialogue_id: str) -> bytes:
    # Salted apart from the split hash, which would otherwise order the subset by the same numbers
    # that chose the split.
    return hashlib.blake2b(f"generate\0{dialogue_id}".encode(), digest_size=8).digest()


def generation_subset(dataset: Any, size: int | None) -> list[dict[str, Any]]:
    """The first ``size`` examples of an encoded split in the order of a stable hash of their ids (all if
    ``size`` is None), as prompts without their summaries, with the summary (the reference diary), the dialogue as the prompt
    shows it and the writer's speaker id.

    The hash order does not depend on file order, so the subset mixes the topics that AI Hub stores file by
    file, and it stays the same across runs, machines and checkpoints: scores of two runs are comparable.
    """
    ids = dataset["id"]
    order = sorted(range(len(ids)), key=lambda i: _order_key(ids[i]))
    subset = []
    for example in dataset.select(order if size is None else order[:size]):
        turns = [Turn(s, t) for s, t in zip(example["speakers"], example["texts"])]
        subset.append({
            "id": example["id"],
            "summary": example["summary"],
            "input_ids": example["input_ids"][: example["prompt_length"]],
            "dialogue": format_dialogue(turns),
            "turns": [{"speaker": t.speaker, "text": t.text} for t in turns],
            "writer": example["writer"],
        })
    return subset


def generate_rows(module: Any, loader: Iterable[dict[str, Any]], max_batches: int | None = None,
                  style: bool = True) -> list[dict[str, Any]]:
    """Generate a diary for every prompt of ``loader`` with ``module.generate``; ``style`` off: the checks that read
    Kiwi's morphemes (style, faithfulness) are not run and each row's ``style_failures`` and
    ``faithfulness_failures`` are None."""
    rows: list[dict[str, Any]] = []
    for index, batch in enumerate(loader):
        if max_batches is not None and index >= max_batches:
            break
        ids = batch["input_ids"].to(module.device)
        mask = batch["attention_mask"].to(module.device)
        diaries, truncated = module.generate(ids, mask)
        turns = batch.get("turns") or [None] * len(diaries)
        for i, summary, dialogue, writer, diary, cut, chat in zip(batch["id"], batch["summary"], batch["dialogue"],
                                                                    batch["writer"], diaries, truncated, turns):
            row = {"id": i, "dialogue": dialogue, "summary": summary, "diary": diary, "truncated": cut,
                   "writer": writer, "turns": chat}
            checked = {"style_failures": row_failures(row), "faithfulness_failures": row_faithfulness(row)} if style \
                else {"style_failures": None, "faithfulness_failures": None}
            rows.append(row | checked)
    return rows


def row_failures(row: Mapping[str, Any]) -> list[str] | None:
    """The style checks a row's diary fails (:func:`diary_lightning.evaluation.diary_style.style_failures`);
    None where the row was generated with the style metric off."""
    if "style_failures" in row:
        return None if row["style_failures"] is None else list(row["style_failures"])
    writer = row.get("writer")
    return style_failures(row["diary"], writer_names=[writer] if writer else (), truncated=bool(row["truncated"]))


def row_faithfulness(row: Mapping[str, Any]) -> list[str] | None:
    """The faithfulness failures of a row's diary against its chat
    (:func:`diary_lightning.evaluation.faithfulness.faithfulness_failures`); None for a row without its chat's
    turns or writer, which nothing can be checked against."""
    if "faithfulness_failures" in row:
        return row["faithfulness_failures"]
    if not row.get("turns") or not row.get("writer"):
        return None
    return faithfulness_failures(row["diary"], row["turns"], row["writer"])


def gather_rows(rows: list[dict[str, Any]], rank: int, world_size: int) -> list[dict[str, Any]]:
    """Every rank's rows, in subset order. Rank ``r`` generated positions ``r, r + W, r + 2W, ...``."""
    if world_size == 1:
        return rows
    parts: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(parts, rows)
    merged = [(r + k * world_size, row) for r, part in enumerate(parts) for k, row in enumerate(part)]
    return [row for _, row in sorted(merged, key=lambda pair: pair[0])]


def corpus_scores(rows: Sequence[Mapping[str, Any]], rouge_tokenizer: str) -> dict[str, float]:
    """ROUGE-1/2/L F1 and chrF over ``rows``; ``diary_style``, the share of diaries that pass every style check,
    and per check the share that fail it (``polite_frac``...; ``truncated_frac``: cut at ``max_new_tokens``);
    ``faithful``, the share of diaries true to their chat, and per failure the share that show it
    (``wrong_person_frac``...), over the rows whose chat is known."""
    metrics = DiaryTextMetrics(rouge_tokenizer)
    metrics.update([r["diary"] for r in rows], [r["summary"] for r in rows])
    scores = {key: float(value) for key, value in metrics.compute().items()}
    failures = [row_failures(r) for r in rows]
    if any(f is None for f in failures):  # generated with the style metric off: nothing Kiwi checks was scored
        return scores
    checked = [f for f in (row_faithfulness(r) for r in rows) if f is not None]
    faithfulness = faithfulness_scores(checked) if checked else {}
    return scores | scores_from_failures(failures) | faithfulness


def shorten(text: str, width: int) -> str:
    """``text`` if it fits in ``width`` characters, else its start and end around an ellipsis."""
    if len(text) <= width:
        return text
    head = (width - 3) * 2 // 3
    tail = width - 3 - head
    return f"{text[:head]} … {text[len(text) - tail:]}"


def _cell(text: str, width: int = TABLE_CELL_CHARS) -> str:
    # A raw "|" would end the cell and a newline the row; TensorBoard's sanitizer lets <br> through.
    return shorten(text, width).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def samples_table(rows: Sequence[Mapping[str, Any]], limit: int = TABLE_ROWS) -> str:
    """A markdown table of the first ``limit`` rows: dialogue (shortened), summary, generated diary and the
    style checks it fails."""
    lines = ["| id | dialogue | summary | diary | fails |", "|---|---|---|---|---|"]
    for row in rows[:limit]:
        diary = _cell(row["diary"]) + (" *(cut at max_new_tokens)*" if row["truncated"] else "")
        failed = row_failures(row)
        fails = "(not checked)" if failed is None else ", ".join(failed) or "—"
        lines.append(f"| {_cell(row['id'], 80)} | {_cell(row['dialogue'])} | {_cell(row['summary'])} | {diary} "
                     f"| {fails} |")
    return "\n".join(lines)


def write_generations(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], rouge_tokenizer: str) -> Path:
    """One JSON line per row (id, summary, diary, truncated, the style checks it fails, its faithfulness failures
    and its ``score_pair`` scores), written to a
    temporary file in the same directory and renamed, so the file is either complete or absent."""
    path = Path(path)
    with atomic_file(path, "w", encoding="utf-8") as out:
        for row in rows:
            record = {key: row[key] for key in ("id", "summary", "diary", "truncated")}
            record["style_failures"] = row_failures(row)
            record["faithfulness_failures"] = row_faithfulness(row)
            record.update(score_pair(row["diary"], row["summary"], rouge_tokenizer))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    log.info("wrote %d generations to %s", len(rows), path)
    return path

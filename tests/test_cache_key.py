"""The tokenized cache is keyed on content: an edit that keeps size and mtime, or a tokenizer replaced at the same
path, is tokenized again; a cold cache is tokenized by several processes with the same result (issue 13, section 5)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_aihub_input import CHAT, aihub_record, write_aihub

from diary_lightning.training.datamodule import DiaryDataModule


def module(paths: list[Path], tokenizer: str | Path, cache: Path) -> DiaryDataModule:
    return DiaryDataModule(paths=[str(p) for p in paths], tokenizer=str(tokenizer), cache_dir=str(cache),
                           val_fraction=0.0, test_fraction=0.0)


@pytest.mark.slow
def test_an_edit_that_keeps_size_and_mtime_is_read_again(tmp_path: Path, tiny_model_dir: Path):
    path = write_aihub(tmp_path / "a.json", [aihub_record(f"a{i}", CHAT, summary="즐거운 하루였다.") for i in range(4)])
    stat = path.stat()
    assert set(module([path], tiny_model_dir, tmp_path / "cache").splits()["train"]["summary"]) == {"즐거운 하루였다."}
    edited = path.read_text(encoding="utf-8").replace("즐거운", "행복한")
    path.write_text(edited, encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert set(module([path], tiny_model_dir, tmp_path / "cache").splits()["train"]["summary"]) == {"행복한 하루였다."}


def _swap_two_tokens(tokenizer_dir: Path, first: int, second: int) -> None:
    """Give two ordinary tokens each other's ids: same vocabulary size, same special tokens, other ids."""
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    by_id = sorted(vocab, key=vocab.get)
    a, b = by_id[first], by_id[second]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (tokenizer_dir / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


def test_a_tokenizer_replaced_at_the_same_path_tokenizes_again(tmp_path: Path, tiny_model_dir: Path):
    from diary_lightning.model.loading import load_tokenizer

    tokenizer_dir = tmp_path / "tokenizer"
    shutil.copytree(tiny_model_dir, tokenizer_dir)
    path = write_aihub(tmp_path / "a.json", [aihub_record(f"a{i}", CHAT) for i in range(4)])
    before = module([path], tokenizer_dir, tmp_path / "cache").splits()["train"]["input_ids"]
    # Two ordinary ids the summary uses: the EOS keeps its id, so a key of vocabulary size and EOS id sees no change.
    special = set(load_tokenizer(str(tokenizer_dir)).all_special_ids)
    _swap_two_tokens(tokenizer_dir, *sorted(set(before[0][-8:]) - special)[:2])
    after = module([path], tokenizer_dir, tmp_path / "cache").splits()["train"]["input_ids"]
    fresh = module([path], tokenizer_dir, tmp_path / "fresh").splits()["train"]["input_ids"]
    assert after == fresh and after[0] != before[0]


@pytest.mark.slow
def test_a_cold_cache_tokenized_by_several_processes_is_the_same(tmp_path: Path, tiny_model_dir: Path, monkeypatch):
    import diary_lightning.data.prepare as data

    path = write_aihub(tmp_path / "a.json", [aihub_record(f"a{i}", CHAT[: 1 + i % 3]) for i in range(40)])
    one = module([path], tiny_model_dir, tmp_path / "one").splits()["train"]
    monkeypatch.setattr(data, "MIN_EXAMPLES_PER_PROCESS", 10)
    monkeypatch.setattr(data.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert data.tokenize_processes(40) == 2 and data.tokenize_processes(15) == 1
    calls = []
    real_map = type(one).map

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("num_proc"))
        return real_map(self, *args, **kwargs)

    monkeypatch.setattr(type(one), "map", spy)
    two = module([path], tiny_model_dir, tmp_path / "two").splits()["train"]
    assert calls == [2]
    assert two.to_dict() == one.to_dict()


def test_saving_the_cache_prints_no_progress_bars_and_leaves_them_on(tmp_path: Path, capsys):
    import datasets
    from datasets import Dataset

    from diary_lightning.data import cache
    from diary_lightning.data.prepare import DataReport

    cache.save(tmp_path / "c", {"train": Dataset.from_dict({"id": ["a", "b"]})}, DataReport())
    assert "Saving the dataset" not in capsys.readouterr().err
    assert datasets.is_progress_bar_enabled()
    assert cache.load(tmp_path / "c")[0]["train"]["id"] == ["a", "b"]

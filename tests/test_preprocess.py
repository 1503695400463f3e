"""The preprocess subcommand: the JSON summary, padding efficiency on AI Hub's sample, cache reuse."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import run_cli
from test_aihub_input import aihub_tree

KEYS = {"files", "dialogues", "skipped", "turn_mismatches", "turn_mismatch_ids", "empty_dialogues",
        "empty_utterances_dropped", "splits", "turns_per_dialogue", "prompt_tokens", "target_tokens", "turns_cut",
        "too_long_dropped", "too_long_by_file", "batch_size", "group_by_length", "padding_efficiency", "padding_efficiency_shuffle",
        "writer_chosen_by", "passed_over"}


def preprocess(capsys, config: Path, *args: str) -> dict:
    run_cli("preprocess", "--config", str(config), *args)
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_preprocess_on_the_aihub_sample(make_config, aihub_sample: Path, capsys, caplog, monkeypatch):
    config = make_config(**{"data.paths": [str(aihub_sample)], "data.batch_size": 8, "data.val_generate_samples": 0})
    summary = preprocess(capsys, config)
    assert set(summary) == KEYS
    assert summary["dialogues"] == 1875 and len(summary["files"]) == 9
    assert summary["skipped"] == {} and summary["turn_mismatches"] == 0
    assert set(summary["splits"]) == {"train", "val", "test"} and sum(summary["splits"].values()) == 1875
    # AI Hub's dialogues have no Human: every writer is the first speaker.
    assert summary["writer_chosen_by"] == {name: {"Human": 0, "exporter": 0, "first": n} for name, n in summary["splits"].items()}
    assert summary["splits"]["train"] > summary["splits"]["val"] > 0
    for key in ("turns_per_dialogue", "prompt_tokens", "target_tokens"):
        assert 0 < summary[key]["p50"] <= summary[key]["p95"] <= summary[key]["max"]
    assert summary["prompt_tokens"]["max"] + summary["target_tokens"]["max"] > 512  # some were cut ...
    assert sum(summary["turns_cut"].values()) > 0 and sum(summary["too_long_dropped"].values()) == 0
    assert summary["batch_size"] == 8 and summary["group_by_length"] is True
    assert summary["padding_efficiency"] >= 0.9
    assert summary["padding_efficiency"] > summary["padding_efficiency_shuffle"] + 0.1

    # Warm: neither the JSON files nor the tokenizer's work are needed again, for preprocess or for fit.
    def no_reading(*args, **kwargs):
        raise AssertionError("the cache was not reused: the dialogues were read again")

    monkeypatch.setattr("diary_lightning.training.datamodule.read_dialogues", no_reading)
    cache = next((config.parent / "cache").iterdir())
    stamp = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    with caplog.at_level(logging.INFO):
        assert preprocess(capsys, config) == summary
        run_cli("fit", "--config", str(config), "--trainer.max_steps", "1", "--trainer.num_sanity_val_steps", "0",
                "--trainer.limit_val_batches", "1")
    assert caplog.text.count("Using tokenized data from the cache") == 2
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == stamp


@pytest.mark.slow
def test_preprocess_aihub_folders_as_train_and_val(make_config, tmp_path: Path, capsys):
    root = aihub_tree(tmp_path / "aihub")
    config = make_config(**{"data.paths": [str(root)], "data.split": "aihub", "data.topics": ["식음료"],
                            "data.test_fraction": 0.2})
    summary = preprocess(capsys, config)
    assert summary["dialogues"] == 50 and summary["skipped"] == {"topic not selected": 75}
    assert summary["splits"]["val"] == 10
    assert summary["splits"]["train"] + summary["splits"]["test"] == 40 and summary["splits"]["test"] > 0
    assert all(count == 0 for path, count in summary["files"].items() if "개인및관계" in path)


def test_preprocess_reports_bad_input_before_anything_else(make_config, tmp_path: Path):
    from diary_lightning.data.records import DataError

    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"data": [{"header": ')
    with pytest.raises(DataError, match=r"bad.json: line 1, column 22 \(character 21\)"):
        run_cli("preprocess", "--config", str(make_config(**{"data.paths": [str(bad)]})))


@pytest.mark.slow
def test_dialogues_that_cannot_fit_are_dropped_and_counted(make_config, capsys):
    summary = preprocess(capsys, make_config(**{"data.max_length": 180}))
    dropped = sum(summary["too_long_dropped"].values())
    assert 0 < dropped < summary["dialogues"]
    assert sum(summary["splits"].values()) + dropped == summary["dialogues"]
    # With the template alone at 133 tokens, the last turn and the diary often do not fit in 180.
    assert sum(summary["turns_cut"].values()) > 0


def test_build_splits_is_a_plain_function_with_a_typed_report(sample_dialogues: Path, tokenizer) -> None:
    from diary_lightning.data.dialogue import read_dialogues
    from diary_lightning.data.prepare import DataReport, Encoder, build_splits
    from diary_lightning.data.prompts import TEMPLATES

    result = read_dialogues(str(sample_dialogues))
    splits, report = build_splits(result, Encoder(tokenizer, TEMPLATES["eeve-diary"], 180), 0.2, 0.2, seed=1)
    assert isinstance(report, DataReport)
    assert report.splits == {name: len(ds) for name, ds in splits.items()} and set(report.splits) == {"train", "val", "test"}
    assert sum(report.splits.values()) + sum(report.too_long_dropped.values()) == len(result.dialogues)
    assert sum(report.too_long_dropped.values()) > 0  # 180 tokens: some cannot fit (as the test above)
    assert report.too_long_by_file == {str(sample_dialogues): sum(report.too_long_dropped.values())}
    assert all(max(ds["prompt_length"], default=0) <= 180 for ds in splits.values())
    assert DataReport.from_dict(report.to_dict()) == report  # what the cache stores and reads back

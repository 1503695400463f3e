"""Inputs read as they are: JSONL line ends, folders (letter case, symlinks, loops, what is passed over, the
cache), deep JSON, truncation, and splits fit cannot use (issue 13, section 4)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli
from test_aihub_input import CHAT, aihub_record, write_aihub

from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.records import DataError


def jsonl_line(dialogue_id: str, text: str = "안녕") -> str:
    record = {"id": dialogue_id, "dialogue": [{"speaker": "A", "text": text}, {"speaker": "B", "text": "응"}],
              "summary": "인사했다."}
    return json.dumps(record, ensure_ascii=False)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_jsonl_records_end_at_newlines_only(tmp_path: Path, separator: str):
    path = tmp_path / "chats.jsonl"
    # json.dumps(ensure_ascii=False) writes these raw inside the string, which is valid JSON.
    path.write_text(jsonl_line("a", f"첫 줄{separator}둘째 줄") + "\r\n" + jsonl_line("b") + "\n", encoding="utf-8")
    result = read_dialogues(path)
    assert [d.id for d in result.dialogues] == ["a", "b"]
    assert result.dialogues[0].turns[0].text == "첫 줄 둘째 줄"


def test_folders_read_upper_case_suffixes_and_follow_symlinked_folders(tmp_path: Path):
    data = tmp_path / "data"
    write_aihub(data / "UPPER.JSON", [aihub_record("u", CHAT)])
    (data / "lines.JSONL").write_text(jsonl_line("l") + "\n", encoding="utf-8")
    elsewhere = write_aihub(tmp_path / "elsewhere" / "more.json", [aihub_record("m", CHAT)]).parent
    os.symlink(elsewhere, data / "linked")
    os.symlink(data, data / "linked-back")  # a loop: data/linked-back/linked-back/...
    result = read_dialogues(data)
    assert sorted(d.id for d in result.dialogues) == ["l", "m", "u"]
    assert f"{data / 'linked-back'}: a symlink loop back to {data}, not followed" in result.passed_over


def test_files_passed_over_are_listed(tmp_path: Path):
    from diary_lightning.data.sources import find_input_files

    data = tmp_path / "data"
    write_aihub(data / "a.json", [aihub_record("a", CHAT)])
    write_aihub(data / ".hidden.json", [aihub_record("h", CHAT)])
    (data / "notes.txt").write_text("P01: 안녕\n", encoding="utf-8")
    (data / "archive.zip").write_bytes(b"PK")
    os.symlink(tmp_path / "nowhere", data / "dangling.json")
    found = find_input_files(data)
    assert found.files == [data / "a.json"]
    assert found.passed_over == [
        f"{data / '.hidden.json'}: hidden",
        f"{data / 'archive.zip'}: not a .json or .jsonl file",
        f"{data / 'dangling.json'}: a broken symlink to {str(tmp_path / 'nowhere')!r}, which does not exist",
        f"{data / 'notes.txt'}: not a .json or .jsonl file",
    ]


@pytest.mark.slow
def test_preprocess_summary_lists_what_was_passed_over(make_config, tmp_path: Path, capsys):
    data = tmp_path / "data"
    write_aihub(data / "a.json", [aihub_record(f"a{i}", CHAT) for i in range(20)])
    (data / "README.md").write_text("readme", encoding="utf-8")
    run_cli("preprocess", "--config", str(make_config(**{"data.paths": [str(data)]})))
    assert json.loads(capsys.readouterr().out)["passed_over"] == [f"{data / 'README.md'}: not a .json or .jsonl file"]


def test_a_cache_inside_the_data_folder_is_not_data(tmp_path: Path, tokenizer):
    from diary_lightning.data.sources import find_input_files
    from diary_lightning.training.datamodule import DiaryDataModule

    data = tmp_path / "data"
    write_aihub(data / "a.json", [aihub_record(f"a{i}", CHAT) for i in range(20)])

    def module() -> DiaryDataModule:
        return DiaryDataModule(paths=[str(data)], tokenizer=tokenizer.name_or_path, cache_dir=str(data / "cache"))

    first = module()
    first.splits()
    assert any((data / "cache").rglob("*.json"))  # datasets' own JSON files, and the report
    second = module()  # a second run must find the same files, hence the same cache
    second.splits()
    assert second.report == first.report
    found = find_input_files(data, exclude=[data / "cache"])
    assert found.files == [data / "a.json"]
    assert found.passed_over == [f"{data / 'cache'}: the tokenized cache (data.cache_dir), not data"]


def test_deep_json_is_a_data_error_naming_the_file(tmp_path: Path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"deep.json: the JSON is nested too deeply"):
        read_dialogues(deep)
    lines = tmp_path / "deep.jsonl"
    lines.write_text(jsonl_line("a") + "\n" + '{"id": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(DataError, match=r"deep.jsonl: line 2: the JSON is nested too deeply"):
        read_dialogues(lines)


def test_a_cut_inside_a_multibyte_character_says_truncated(tmp_path: Path):
    path = tmp_path / "cut.json"
    whole = json.dumps({"data": [aihub_record("c", CHAT)]}, ensure_ascii=False).encode("utf-8")
    cut = whole[: whole.index("영화".encode()) + 1]  # one byte of a three-byte character
    path.write_bytes(cut)
    with pytest.raises(DataError, match=rf"cut.json: the file is truncated: it ends inside a multibyte character "
                                        rf"\(byte offset {len(cut) - 1} of {len(cut)}\)"):
        read_dialogues(path)


def test_a_symlink_loop_given_directly_says_it_is_a_loop(tmp_path: Path):
    os.symlink(tmp_path / "b.json", tmp_path / "a.json")
    os.symlink(tmp_path / "a.json", tmp_path / "b.json")
    with pytest.raises(DataError, match=r"a.json: a symlink loop"):
        read_dialogues(tmp_path / "a.json")


def test_splits_fit_cannot_use():
    from diary_lightning.data.splits import check_fit_splits

    with pytest.raises(ValueError, match="the train split is empty"):
        check_fit_splits({"train": 0, "val": 3, "test": 1})
    with pytest.raises(ValueError, match=r"the val split is empty but ModelCheckpoint monitors val/loss.*"
                                         r"set data.val_fraction above 0.*or remove the monitor"):
        check_fit_splits({"train": 9, "val": 0, "test": 1}, [("ModelCheckpoint", "val/loss"), ("ModelCheckpoint", None)])
    assert check_fit_splits({"train": 9, "val": 0, "test": 1}, [("ModelCheckpoint", None)]) == [
        "the val split is empty: fit will not validate (data.val_fraction above 0 to validate)"]


def _no_model(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the model was loaded before the splits were checked")

    monkeypatch.setattr("diary_lightning.training.lora_module.build_model", fail)


@pytest.mark.slow
def test_fit_stops_before_the_model_when_every_record_is_skipped(make_config, tmp_path: Path, monkeypatch):
    path = write_aihub(tmp_path / "a.json", [aihub_record(f"a{i}", CHAT, summary="") for i in range(5)])
    _no_model(monkeypatch)
    with pytest.raises(ValueError, match=r"no dialogue is left to train or evaluate on: 5 missing summary \(every record was skipped or dropped\)"):
        run_cli("fit", "--config", str(make_config(**{"data.paths": [str(path)], "data.skip_invalid": True})))


@pytest.mark.slow
def test_fit_refuses_an_empty_val_split_watched_by_a_monitor(make_config, monkeypatch):
    _no_model(monkeypatch)
    with pytest.raises(ValueError, match=r"the val split is empty but ModelCheckpoint monitors val/loss.*data.val_fraction"):
        run_cli("fit", "--config", str(make_config(**{"data.val_fraction": 0.0})))

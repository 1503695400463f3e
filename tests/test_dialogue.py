"""Reading dialogues and merging turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.records import DataError, Turn, merge_turns


def test_merge_joins_consecutive_utterances_of_one_speaker():
    turns = merge_turns([("P01", "안녕"), ("P01", "뭐해?"), ("P02", "밥 먹어"), ("P01", "맛있겠다"), ("P01", "ㅋㅋ")])
    assert turns == (Turn("P01", "안녕 뭐해?"), Turn("P02", "밥 먹어"), Turn("P01", "맛있겠다 ㅋㅋ"))


def test_merge_keeps_alternating_speakers_and_drops_empty_text():
    assert merge_turns([("A", "x"), ("B", ""), ("A", "y")]) == (Turn("A", "x y"),)
    assert merge_turns([("A", "x"), ("B", "y")]) == (Turn("A", "x"), Turn("B", "y"))


def test_bundled_sample_reads_as_aihub(sample_dialogues: Path):
    result = read_dialogues(sample_dialogues)
    assert len(result.dialogues) == 72
    assert not result.problems and not result.turn_mismatches
    raw = json.loads(sample_dialogues.read_text(encoding="utf-8"))["data"][0]
    first = result.dialogues[0]
    assert first.id == raw["header"]["dialogueInfo"]["dialogueID"]
    assert len(first.turns) == raw["header"]["dialogueInfo"]["numberOfTurns"]
    assert first.summary == raw["body"]["summary"]


def test_aihub_sample_merging_matches_turn_ids(aihub_sample: Path):
    result = read_dialogues(aihub_sample)
    assert len(result.dialogues) == 1875
    assert result.turn_mismatches == []


def test_jsonl_format(tmp_path: Path):
    path = tmp_path / "chats.jsonl"
    lines = [
        {"id": "a", "dialogue": [{"speaker": "Human", "text": "오늘 피곤해"}, {"speaker": "Human", "text": "진짜로"},
                                 {"speaker": "AI", "text": "푹 쉬세요"}], "summary": "오늘은 피곤했다."},
        {"id": "b", "dialogue": [{"speaker": "Human", "text": "산책했어"}], "summary": "산책을 했다."},
    ]
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    result = read_dialogues(path)
    assert [d.id for d in result.dialogues] == ["a", "b"]
    assert result.dialogues[0].turns == (Turn("Human", "오늘 피곤해 진짜로"), Turn("AI", "푹 쉬세요"))


def test_predict_input_needs_no_summary(sample_chats: Path):
    with pytest.raises(DataError, match="no summary"):
        read_dialogues(sample_chats)
    assert len(read_dialogues(sample_chats, require_summary=False).dialogues) == 8


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    return path


GOOD = {"id": "ok", "dialogue": [{"speaker": "A", "text": "안녕"}], "summary": "좋았다."}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "x", "summary": "s"}, "no list of utterances"),
        ({"id": "x", "dialogue": [{"speaker": "A", "text": "hi"}]}, "no summary"),
        ({"id": "x", "dialogue": [{"speaker": "A", "text": None}], "summary": "s"}, "not a string"),
        ({"dialogue": [{"speaker": "A", "text": "hi"}], "summary": "s"}, "no dialogue id"),
    ],
)
def test_bad_record_names_file_record_and_problem(tmp_path: Path, record: dict, message: str):
    path = _write_jsonl(tmp_path / "bad.jsonl", [GOOD, record])
    with pytest.raises(DataError) as info:
        read_dialogues(path)
    text = str(info.value)
    assert str(path) in text and "record 1" in text and message in text


def test_skip_invalid_keeps_the_good_records(tmp_path: Path):
    path = _write_jsonl(tmp_path / "mixed.jsonl", [GOOD, {"id": "x", "summary": "s"}])
    result = read_dialogues(path, skip_invalid=True)
    assert [d.id for d in result.dialogues] == ["ok"]
    assert result.skipped == {"missing dialogue": 1}


def test_file_level_errors(tmp_path: Path):
    with pytest.raises(DataError, match="no such file"):
        read_dialogues(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.json: line 1, column"):
        read_dialogues(broken)
    odd = tmp_path / "odd.json"
    odd.write_text('"just a string"', encoding="utf-8")
    with pytest.raises(DataError, match="top level is a str"):
        read_dialogues(odd)


def test_a_read_that_takes_a_while_shows_its_progress(sample_dialogues: Path, sample_chats: Path, capsys, monkeypatch):
    import diary_lightning.data.dialogue as dialogue

    read_dialogues([str(sample_dialogues), str(sample_chats)], require_summary=False)
    assert "Reading dialogues" not in capsys.readouterr().err  # a quick read shows no bar
    monkeypatch.setattr(dialogue, "READ_PROGRESS_DELAY", 0)
    read_dialogues([str(sample_dialogues), str(sample_chats)], require_summary=False)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert any(line.startswith("Reading dialogues: 100%") and "B/s" in line for line in bar), bar


def test_progress_false_shows_no_bar_however_long_the_read(sample_dialogues: Path, capsys, monkeypatch):
    import diary_lightning.data.dialogue as dialogue

    monkeypatch.setattr(dialogue, "READ_PROGRESS_DELAY", 0)
    read_dialogues([str(sample_dialogues)], progress=False)
    assert "Reading dialogues" not in capsys.readouterr().err


def test_synthesize_reads_with_its_own_progress_setting(sample_dialogues: Path, capsys, monkeypatch):
    import diary_lightning.data.dialogue as dialogue
    from diary_lightning.synthesis.command import read_for_synthesis
    from diary_lightning.training.datamodule import DiaryDataModule

    monkeypatch.setattr(dialogue, "READ_PROGRESS_DELAY", 0)
    data = DiaryDataModule(paths=[str(sample_dialogues)])
    assert read_for_synthesis(data, progress=False)
    assert "Reading dialogues" not in capsys.readouterr().err
    read_for_synthesis(data, progress=True)
    assert "Reading dialogues" in capsys.readouterr().err

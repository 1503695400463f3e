"""Whose diary: choosing the writer of each dialogue, the prompt's labels, and the setting at fit and predict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diary_lightning.data.records import DataError, Dialogue, Turn
from diary_lightning.data.roles import (
    BOT_LABEL,
    DEFAULT_WRITER,
    WRITER_LABEL,
    assign_writers,
    choose_writer,
    count_rules,
    other_labels,
    role_labels,
    writer_setting,
)


def _dialogue(*speakers_and_texts: tuple[str, str], id: str = "d1", source: str = "chats.jsonl#3") -> Dialogue:
    return Dialogue(id, tuple(Turn(s, t) for s, t in speakers_and_texts), source=source)


SERVICE = _dialogue(("AI", "오늘 어땠어요?"), ("Human", "바빴어"), ("AI", "고생했어요"), ("Human", "응 고마워"))
FRIENDS = _dialogue(("준호", "잘 들어갔어?"), ("민지", "응 방금 도착했어 오늘 진짜 재밌었다"), ("준호", "나도"))
AIHUB = _dialogue(("P01", "야 뭐해"), ("P02", "그냥 있어"), ("P03", "나도 끼워줘"), ("P02", "ㅋㅋ 와"))


def test_the_writer_is_a_name_a_role_or_a_rule() -> None:
    assert choose_writer(SERVICE) == ("Human", "Human")  # the default: Human, else the first speaker
    assert choose_writer(AIHUB) == ("P01", "first")
    assert choose_writer(FRIENDS, "민지") == ("민지", "민지")
    assert choose_writer(AIHUB, "P02") == ("P02", "P02")
    assert choose_writer(FRIENDS, "most") == ("민지", "most")
    # The first speaker who is not a bot, and a list tried in order.
    assert choose_writer(SERVICE, "first") == ("Human", "first")
    assert choose_writer(FRIENDS, ["민수", "민지", "first"]) == ("민지", "민지")
    assert choose_writer(FRIENDS, ["민수", "first"]) == ("준호", "first")


def test_a_writer_who_does_not_speak_is_an_error_naming_the_dialogue() -> None:
    with pytest.raises(DataError) as err:
        choose_writer(FRIENDS, "민수")
    message = str(err.value)
    assert "chats.jsonl, record 3 (id 'd1')" in message
    assert "the writer (민수) does not speak" in message and "준호, 민지" in message
    bots_only = _dialogue(("AI", "안녕하세요"), id="bots")
    with pytest.raises(DataError, match=r"id 'bots'.*no speaker other than a bot"):
        choose_writer(bots_only, "first")


def test_assign_writers_collects_every_problem_or_skips() -> None:
    dialogues = [FRIENDS, _dialogue(("A", "x"), ("B", "y"), id="d2"), _dialogue(("민지", "z"), id="d3")]
    with pytest.raises(DataError) as err:
        assign_writers(dialogues, "민지")
    assert len(err.value.problems) == 1 and err.value.problems[0].record_id == "d2"
    kept, chosen_by, problems = assign_writers(dialogues, ["민지", "first"])
    assert [d.writer for d in kept] == ["민지", "A", "민지"] and not problems
    assert count_rules(kept, chosen_by, ["민지", "first"]) == {"민지": 2, "first": 1}
    kept, chosen_by, problems = assign_writers(dialogues, "민지", skip_invalid=True)
    assert [d.id for d in kept] == ["d1", "d3"] and [p.record_id for p in problems] == ["d2"]


def test_labels_say_who_is_the_writer_the_bot_and_distinct_others() -> None:
    assert role_labels([t.speaker for t in SERVICE.turns], "Human") == {"Human": WRITER_LABEL, "AI": BOT_LABEL}
    assert role_labels([t.speaker for t in AIHUB.turns], "P02") == {"P02": WRITER_LABEL, "P01": "상대1", "P03": "상대2"}
    assert other_labels(3) == ["상대1", "상대2", "상대3"]
    assert len(set(role_labels(["a", "b", "c", "d", "e"], "c").values())) == 5


@pytest.mark.parametrize("bad", ["", [], ["Human", " "], [3]])
def test_a_bad_writer_setting_names_the_setting(bad: object) -> None:
    with pytest.raises(ValueError, match="data.writer"):
        writer_setting(bad)
    assert writer_setting(None) == DEFAULT_WRITER and writer_setting(" 민지 ") == ("민지",)


def test_preprocess_reports_how_each_split_chose_its_writers(tmp_path: Path, tiny_model_dir: Path) -> None:
    from diary_lightning.data.prepare import summarize
    from diary_lightning.training.datamodule import DiaryDataModule

    chats = tmp_path / "chats.jsonl"
    lines = [{"id": f"s{i}", "summary": "오늘은 바빴다.",
              "dialogue": [{"speaker": "AI", "text": "오늘 어땠어요?"}, {"speaker": "Human", "text": f"바빴어 {i}"}]}
             for i in range(12)]
    lines += [{"id": f"f{i}", "summary": "친구와 놀았다.",
               "dialogue": [{"speaker": "준호", "text": "뭐해"}, {"speaker": "민지", "text": f"그냥 있어 {i}"}]}
              for i in range(8)]
    chats.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    data = DiaryDataModule(paths=[str(chats)], tokenizer=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"))
    chosen = summarize(data)["writer_chosen_by"]
    assert set(chosen) == {"train", "val", "test"}
    assert sum(c["Human"] for c in chosen.values()) == 12 and sum(c["first"] for c in chosen.values()) == 8

    data = DiaryDataModule(paths=[str(chats)], tokenizer=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"),
                           writer="민지")
    with pytest.raises(DataError, match=r"id 's0'\): the writer \(민지\) does not speak"):
        data.splits()


def test_a_synthesized_records_writer_is_the_writer_whatever_data_writer_says(tmp_path: Path,
                                                                             tiny_model_dir: Path) -> None:
    from diary_lightning.data.prepare import summarize
    from diary_lightning.data.roles import RECORD_WRITER
    from diary_lightning.training.datamodule import DiaryDataModule

    # Written as 민지 (the second speaker); data.writer's default would choose 준호, the first.
    diaries = tmp_path / "diaries.jsonl"
    records = [{"id": f"s{i}", "writer": "민지", "summary": "친구와 놀았다고 한다.", "diary": f"준호랑 놀았다 {i}.",
                "teacher": {"backend": "rules", "version": 1},
                "dialogue": [{"speaker": "준호", "text": "뭐해"}, {"speaker": "민지", "text": f"그냥 있어 {i}"}]}
               for i in range(10)]
    diaries.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    data = DiaryDataModule(paths=[str(diaries)], tokenizer=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"),
                           val_fraction=0.0, test_fraction=0.0)
    assert set(data.splits()["train"]["writer"]) == {"민지"}
    assert summarize(data)["writer_chosen_by"]["train"] == {"Human": 0, "exporter": 0, "first": 0, RECORD_WRITER: 10}
    prompt = data.splits()["train"]["speakers"][0]
    assert prompt == ["상대1", "글쓴이"]

    records[3]["writer"] = "지호"
    diaries.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    data = DiaryDataModule(paths=[str(diaries)], tokenizer=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"record 3 \(id 's3'\): the record's writer '지호' does not speak"):
        data.splits()


def test_the_writer_given_at_predict_overrides_what_the_checkpoint_stored(tmp_path: Path, tiny_model_dir: Path) -> None:
    from diary_lightning.model.settings import RunSettings
    from diary_lightning.training.datamodule import DiaryDataModule

    chat = tmp_path / "chat.txt"
    chat.write_text("준호: 잘 들어갔어?\n민지: 응 방금 도착했어\n준호: 다행이다\n", encoding="utf-8")
    trained = DiaryDataModule(tokenizer=str(tiny_model_dir), writer=["Human", "first"])
    state = trained.prompt_format.state()
    assert state["writer"] == ["Human", "first"] and state["label_scheme"]["writer"] == "글쓴이"

    def prompt(writer: str | None) -> str:
        data = DiaryDataModule(predict_path=str(chat), tokenizer=str(tiny_model_dir), writer=writer)
        data.adopt(RunSettings(trained.prompt_format))
        batch = next(iter(data.predict_dataloader()))
        return data.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)

    assert "글쓴이: 잘 들어갔어?\n상대1: 응 방금" in prompt(None)  # the stored rule: the first speaker
    assert "상대1: 잘 들어갔어?\n글쓴이: 응 방금" in prompt("민지")
    with pytest.raises(DataError, match="the writer \\(수아\\) does not speak"):
        prompt("수아")


def test_a_checkpoint_from_before_label_schemes_keeps_its_speaker_labels(tiny_model_dir: Path) -> None:
    from diary_lightning.model.metadata import RunMetadata
    from diary_lightning.training.datamodule import DiaryDataModule

    data = DiaryDataModule(tokenizer=str(tiny_model_dir))
    # Format 1 kept the prompt as the data module's state.
    data.adopt(RunMetadata.from_checkpoint({"diary_lightning": {"base_model": "m"}, "DiaryDataModule": {
        "prompt_template": "{dialogue}", "speaker_labels": {"P01": "Human"}, "anonymization": "keep"}}).settings)
    dialogue = Dialogue("d", (Turn("P01", "안녕"), Turn("P02", "응")), writer="P01")
    assert data.prompt_turns(dialogue) == (Turn("Human", "안녕"), Turn("P02", "응"))
    state = data.prompt_format.state()
    assert state["speaker_labels"] == {"P01": "Human"} and "label_scheme" not in state


@pytest.mark.slow
def test_preprocess_takes_the_writer_on_the_command_line(make_config: Any, capsys: pytest.CaptureFixture) -> None:
    from conftest import run_cli

    run_cli("preprocess", "--config", str(make_config()), "--data.writer", "P02")
    summary = json.loads(capsys.readouterr().out)
    assert {name: counts["P02"] for name, counts in summary["writer_chosen_by"].items()} == summary["splits"]


# -- whose diary a KakaoTalk export is: its exporter's, every day ------------------------------------------------
def _export(tmp_path: Path, header: str, name: str = "chat.txt") -> Path:
    days = ("2024년 1월 5일 금요일\n2024년 1월 5일 오후 6:02, 서연 : 오늘 영화 봤어\n2024년 1월 5일 오후 6:03, 지훈 : 재밌었어?\n"
            "2024년 1월 6일 토요일\n2024년 1월 6일 오후 1:02, 지훈 : 점심 뭐 먹었어\n2024년 1월 6일 오후 1:05, 서연 : 김밥\n")
    path = tmp_path / name
    path.write_text(f"{header}\n저장한 날짜 : 2024년 1월 7일 오전 9:30\n\n{days}" if header else days, encoding="utf-8")
    return path


@pytest.mark.parametrize("header", ["서연 님과 카카오톡 대화", "Talk with 서연"])
def test_a_one_to_one_export_is_its_exporters_every_day(tmp_path: Path, header: str, caplog) -> None:
    from diary_lightning.data.dialogue import read_dialogues
    from diary_lightning.data.roles import assign_writers

    dialogues = read_dialogues([str(_export(tmp_path, header))], require_summary=False).dialogues
    chosen, chosen_by, _ = assign_writers(dialogues)
    # The header names the partner, 서연; the first speaker changes by day (서연, then 지훈).
    assert [(d.id, d.writer) for d in chosen] == [("chat_2024-01-05", "지훈"), ("chat_2024-01-06", "지훈")]
    assert set(chosen_by.values()) == {"exporter"} and "writer changes" not in caplog.text
    told, _, _ = assign_writers(dialogues, "서연")  # a writer given always wins
    assert {d.writer for d in told} == {"서연"}


def test_days_of_one_log_with_different_writers_are_warned_about(tmp_path: Path, caplog) -> None:
    from diary_lightning.data.dialogue import read_dialogues
    from diary_lightning.data.roles import assign_writers

    path = _export(tmp_path, "")  # no header: nothing says who exported it
    dialogues = read_dialogues([str(path)], require_summary=False).dialogues
    with caplog.at_level("WARNING"):
        chosen, chosen_by, _ = assign_writers(dialogues)
    assert [d.writer for d in chosen] == ["서연", "지훈"] and set(chosen_by.values()) == {"first"}
    assert f"{path}: the writer changes from day to day (chat_2024-01-05: 서연, chat_2024-01-06: 지훈)" in caplog.text
    assert "--data.writer NAME" in caplog.text


def test_the_exporter_is_only_read_from_a_header_naming_one_of_two_speakers(tmp_path: Path) -> None:
    from diary_lightning.data.chatlog import export_partner
    from diary_lightning.data.dialogue import read_dialogues

    assert export_partner("\ufeff서연 님과 카카오톡 대화\n저장한 날짜 : 2024년 1월 7일") == "서연"
    assert export_partner("Talk with 서연\nDate Saved : 1/7/24") == "서연"
    assert export_partner("2024년 1월 5일 금요일\n") is None
    # A room named after someone who never speaks (a group room's name) says nothing of the exporter.
    dialogues = read_dialogues([str(_export(tmp_path, "민지 님과 카카오톡 대화"))], require_summary=False).dialogues
    assert {d.exporter for d in dialogues} == {None}

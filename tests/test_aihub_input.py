"""The input side at AI Hub scale: the folder layout, topics, 3-5 speakers, cleaning, field names, damage."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.records import DataError, Turn, record_fields
from diary_lightning.data.splits import split_dialogues


def aihub_record(dialogue_id: str, utterances: list[tuple[str, str]], summary: str = "즐거운 하루였다.",
                 topic: str = "개인 및 관계", turn_ids: list[str] | None = None) -> dict[str, Any]:
    """An AI Hub 한국어 대화 요약 record; turnIDs follow the speaker changes unless given."""
    if turn_ids is None:
        turn_ids, turn = [], 0
        for i, (speaker, _) in enumerate(utterances):
            turn += i == 0 or speaker != utterances[i - 1][0]
            turn_ids.append(f"T{turn}")
    speakers = sorted({s for s, _ in utterances})
    return {
        "header": {
            "dialogueInfo": {"dialogueID": dialogue_id, "numberOfParticipants": len(speakers),
                             "numberOfUtterances": len(utterances), "numberOfTurns": len(set(turn_ids)),
                             "type": "일상 대화", "topic": topic},
            "participantsInfo": [{"participantID": s, "gender": "여성", "age": "20대"} for s in speakers],
        },
        "body": {
            "dialogue": [{"utteranceID": f"U{i + 1}", "turnID": t, "participantID": s, "date": "2020-08-18",
                          "time": "18:23:00", "utterance": text}
                         for i, ((s, text), t) in enumerate(zip(utterances, turn_ids))],
            "summary": summary,
        },
    }


def write_aihub(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"numberOfItems": len(records), "data": records}, ensure_ascii=False), encoding="utf-8")
    return path


CHAT = [("P01", "오늘 뭐 했어?"), ("P02", "영화 봤어"), ("P01", "재밌었어?")]


def aihub_tree(root: Path) -> Path:
    """AI Hub's shipped layout: Training/[라벨]한국어대화요약_train/{topic}.json and Validation/..._valid/."""
    train = root / "Training" / "[라벨]한국어대화요약_train"
    valid = root / "Validation" / "[라벨]한국어대화요약_valid"
    write_aihub(train / "개인및관계.json", [aihub_record(f"tr-rel-{i}", CHAT) for i in range(60)])
    write_aihub(train / "식음료.json", [aihub_record(f"tr-food-{i}", CHAT, topic="식음료") for i in range(40)])
    write_aihub(valid / "개인및관계.json", [aihub_record(f"va-rel-{i}", CHAT) for i in range(15)])
    write_aihub(valid / "식음료.json", [aihub_record(f"va-food-{i}", CHAT, topic="식음료") for i in range(10)])
    return root


def test_aihub_tree_split_uses_the_folders_and_carves_test_from_training(tmp_path: Path):
    root = aihub_tree(tmp_path / "aihub")
    result = read_dialogues(root)
    assert len(result.per_file) == 4 and len(result.dialogues) == 125
    parts = split_dialogues(result.dialogues, val_fraction=0.15, test_fraction=0.2, mode="aihub")
    assert {d.id for d in parts["val"]} == {d.id for d in result.dialogues if d.id.startswith("va-")}
    train_ids = {d.id for d in parts["train"]} | {d.id for d in parts["test"]}
    assert train_ids == {d.id for d in result.dialogues if d.id.startswith("tr-")}
    assert 5 <= len(parts["test"]) <= 40  # about 20% of the 100 training dialogues


def test_split_aihub_refuses_files_outside_the_folders(tmp_path: Path):
    result = read_dialogues(write_aihub(tmp_path / "loose.json", [aihub_record("a", CHAT)]))
    with pytest.raises(ValueError, match="Training/ or Validation/"):
        split_dialogues(result.dialogues, mode="aihub")


def test_topics_filter_by_the_topic_field_and_count_the_rest(tmp_path: Path):
    result = read_dialogues(aihub_tree(tmp_path / "aihub"), topics=["식음료"])
    assert {d.topic for d in result.dialogues} == {"식음료"} and len(result.dialogues) == 50
    assert result.skipped == {"topic not selected": 75}


def test_paths_with_brackets_are_literal_and_globs_still_work(tmp_path: Path):
    root = aihub_tree(tmp_path / "aihub")
    folder = root / "Training" / "[라벨]한국어대화요약_train"
    assert len(read_dialogues(folder).dialogues) == 100
    assert len(read_dialogues(str(folder / "식음료.json")).dialogues) == 40
    assert len(read_dialogues(str(root / "*" / "*" / "개인및관계.json")).dialogues) == 75
    assert len(read_dialogues(str(root / "**" / "*.json")).dialogues) == 125


def test_three_to_five_participants_keep_every_speaker(tmp_path: Path):
    chats = {n: [(f"P0{i % n + 1}", f"{i}번 말") for i in range(2 * n)] for n in (3, 4, 5)}
    path = write_aihub(tmp_path / "group.json", [aihub_record(f"g{n}", chat) for n, chat in chats.items()])
    for dialogue, n in zip(read_dialogues(path).dialogues, (3, 4, 5)):
        assert len(dialogue.turns) == 2 * n
        assert {t.speaker for t in dialogue.turns} == {f"P0{i + 1}" for i in range(n)}


@pytest.mark.slow
def test_aihub_sample_groups_of_three_and_more(aihub_sample: Path):
    raw = {r["header"]["dialogueInfo"]["dialogueID"]: r["header"]["dialogueInfo"]["numberOfParticipants"]
           for f in sorted(aihub_sample.glob("*.json"))
           for r in json.loads(f.read_text(encoding="utf-8"))["data"]}
    groups = [d for d in read_dialogues(aihub_sample).dialogues if raw[d.id] >= 3]
    assert groups
    assert all(len({t.speaker for t in d.turns}) == raw[d.id] for d in groups)


def test_turn_id_disagreement_is_reported_not_fatal(tmp_path: Path):
    agree = aihub_record("agree", CHAT)
    # Speaker P01 talks twice in a row, yet AI Hub's turnIDs claim two turns: merging by speaker differs.
    disagree = aihub_record("disagree", [("P01", "안녕"), ("P01", "뭐해"), ("P02", "밥")], turn_ids=["T1", "T2", "T3"])
    result = read_dialogues(write_aihub(tmp_path / "t.json", [agree, disagree]))
    assert [d.id for d in result.dialogues] == ["agree", "disagree"]
    assert result.turn_mismatches == ["disagree"]
    assert result.dialogues[1].turns == (Turn("P01", "안녕 뭐해"), Turn("P02", "밥"))


def test_empty_after_cleaning_drops_utterances_and_reports_empty_dialogues(tmp_path: Path):
    chat = [("P01", "  오늘\n\t 비가   와 "), ("P01", "#@이모티콘#"), ("P02", "   "), ("P01", "우산 #@이름# 줬어")]
    only_tokens = [("P01", "#@시스템#사진#"), ("P02", "#@이모티콘#하하#")]
    path = write_aihub(tmp_path / "c.json", [aihub_record("kept", chat), aihub_record("emptied", only_tokens)])
    result = read_dialogues(path, anonymization="drop")
    assert [d.id for d in result.dialogues] == ["kept"]
    assert result.dialogues[0].turns == (Turn("P01", "오늘 비가 와 우산 줬어"),)
    assert result.empty_utterances == 4 and result.empty_dialogues == ["emptied"]
    assert result.skipped == {"empty after cleaning": 1}
    placeholder = read_dialogues(path)
    # The blank P02 utterance is gone, so the two P01 utterances around it form one turn.
    assert placeholder.dialogues[0].turns == (Turn("P01", "오늘 비가 와 (이모티콘) 우산 (이름) 줬어"),)
    assert placeholder.dialogues[1].turns == (Turn("P01", "(사진)"), Turn("P02", "(이모티콘)"))


def test_one_speaker_dialogue_is_allowed(tmp_path: Path):
    path = write_aihub(tmp_path / "solo.json", [aihub_record("solo", [("P01", "혼잣말"), ("P01", "또 혼잣말")])])
    assert read_dialogues(path).dialogues[0].turns == (Turn("P01", "혼잣말 또 혼잣말"),)


def test_configurable_field_names_load_a_users_chat_log(tmp_path: Path):
    log = tmp_path / "mine.jsonl"
    rows = [{"chat_id": 7, "meta": {"messages": [{"who": "me", "message": "출근했어"}, {"who": "bot", "message": "화이팅"}]},
             "diary": "출근을 했다."}]
    log.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    fields = record_fields({"id": "chat_id", "dialogue": "meta.messages", "speaker": "who", "text": "message",
                            "summary": "diary"})
    dialogue = read_dialogues(log, fields=fields).dialogues[0]
    assert (dialogue.id, dialogue.summary) == ("7", "출근을 했다.")
    assert dialogue.turns == (Turn("me", "출근했어"), Turn("bot", "화이팅"))
    as_list = tmp_path / "mine.json"
    as_list.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    assert read_dialogues(as_list, fields=fields).dialogues == [
        d.__class__(d.id, d.turns, d.summary, source=f"{as_list}#0") for d in [dialogue]]
    with pytest.raises(ValueError, match=r"unknown key\(s\) utterance; the keys are dialogue, id, speaker"):
        record_fields({"utterance": "message"})


def test_nikl_shape(tmp_path: Path):
    path = tmp_path / "nikl.json"
    rows = [{"id": "N1", "input": {"conversation": [{"speaker": "SD1", "utterance": "주말에 등산 갔어"},
                                                    {"speaker": "SD2", "utterance": "좋았겠다"}]},
             "output": "주말에 등산을 다녀왔다."}]
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    dialogue = read_dialogues(path).dialogues[0]
    assert dialogue.turns == (Turn("SD1", "주말에 등산 갔어"), Turn("SD2", "좋았겠다"))
    assert dialogue.summary == "주말에 등산을 다녀왔다."


# -- damaged input: each error names the file, the record (index and id) and the problem ------------------

def _damaged(record_edit) -> dict[str, Any]:
    records = [aihub_record(f"d{i}", CHAT) for i in range(3)]
    record_edit(records[2])
    return {"numberOfItems": 3, "data": records}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["body"].pop("dialogue"), "no list of utterances at 'body.dialogue'"),
        (lambda r: r["body"].pop("summary"), "no summary at 'body.summary'"),
        (lambda r: r["body"]["dialogue"][1].pop("participantID"), "utterance 1 has no speaker at 'participantID'"),
        (lambda r: r["body"]["dialogue"][0].update(utterance=None), "utterance 0 text at 'utterance' is null"),
        (lambda r: r["body"]["dialogue"][2].update(utterance=42), "utterance 2 text at 'utterance' is int"),
        (lambda r: r["body"]["dialogue"].__setitem__(1, "text"), "utterance 1 is a str, not an object"),
        (lambda r: r["body"].update(summary=["다."]), "summary at 'body.summary' is list"),
    ],
)
def test_damaged_record_error_names_file_index_and_id(tmp_path: Path, edit, message: str):
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(_damaged(edit), ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_dialogues(path)
    assert f"{path}, record 2 (id 'd2'): {message}" in str(info.value)
    assert "data.skip_invalid" in str(info.value)
    assert [d.id for d in read_dialogues(path, skip_invalid=True).dialogues] == ["d0", "d1"]


def test_record_without_id_is_named_by_index(tmp_path: Path):
    path = tmp_path / "noid.json"
    path.write_text(json.dumps(_damaged(lambda r: r["header"]["dialogueInfo"].pop("dialogueID"))), encoding="utf-8")
    with pytest.raises(DataError, match=r"noid.json, record 2: no dialogue id \(a string\) at 'header.dialogueInfo.dialogueID'"):
        read_dialogues(path)


def test_duplicate_ids_name_both_records(tmp_path: Path):
    first = write_aihub(tmp_path / "a.json", [aihub_record("same", CHAT)])
    second = write_aihub(tmp_path / "b.json", [aihub_record("other", CHAT), aihub_record("same", CHAT)])
    with pytest.raises(DataError) as info:
        read_dialogues([first, second])
    assert f"{second}, record 1 (id 'same'): repeats the dialogue id of {first}, record 0; the first one is kept" in str(info.value)
    result = read_dialogues([first, second], skip_invalid=True)
    assert [d.source for d in result.dialogues] == [f"{first}#0", f"{second}#0"]
    assert result.skipped == {"duplicate id": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"numberOfItems": 1, "data": [{"header": {"dialogueInfo": {"dia', r"line 1, column 60 \(character 59\): .*truncated"),
        (b'{"numberOfItems": 0}', r"top level is a dict; expected AI Hub's"),
        (b"[1, 2]", r"record 0: expected a JSON object, got int"),
        (b"", "the file is empty"),
        (b"  \n", "the file is empty"),
        ('{"data": [{"x": "한국어"}]}'.encode("utf-8")[:15] + b"\xb0\xa1" + b'"}]}', r"not UTF-8 text \(byte offset 15"),
        ('{"data": ["안녕"]}'.encode("cp949"), r"not UTF-8 text \(byte offset 11"),
    ],
)
def test_damaged_files_name_the_file_and_position(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_dialogues(path)
    assert str(info.value).splitlines()[1].strip().startswith(str(path))


def test_lone_surrogate_is_a_data_error(tmp_path: Path):
    path = tmp_path / "s.json"
    # json.dumps escapes the surrogate as \ud800, as a broken exporter would write it.
    path.write_text(json.dumps({"data": [aihub_record("s", [("P01", "a\ud800b")])]}), encoding="utf-8")
    with pytest.raises(DataError, match=r"record 0 \(id 's'\): utterance 0 holds a lone surrogate"):
        read_dialogues(path)


# -- property: random damage either parses or raises DataError --------------------------------------------

# Text includes lone surrogates, which only survive in the file as \\uXXXX escapes (ensure_ascii).
TEXT = st.text(st.characters(codec=None, categories=["L", "N", "Z", "P", "Cs"]), max_size=8)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key or index path inside a JSON value."""
    found = [prefix] if prefix else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found.extend(_paths(child, (*prefix, key)))
    return found


@st.composite
def damaged_files(draw) -> tuple[str, Any]:
    """An AI Hub file, a NIKL list or a JSONL/JSON record list with a few random edits: a value replaced by random
    JSON, a key deleted, a list emptied."""
    kind = draw(st.sampled_from(["aihub", "nikl", "jsonl", "json"]))
    if kind == "aihub":
        data: Any = {"numberOfItems": 2, "data": [aihub_record("a", CHAT), aihub_record("b", CHAT[:1])]}
    elif kind == "nikl":
        data = [{"id": f"n{i}", "input": {"conversation": [{"speaker": "SD1", "utterance": "안녕"}]}, "output": "인사했다."}
                for i in range(2)]
    else:
        data = [{"id": f"r{i}", "dialogue": [{"speaker": "A", "text": "안녕"}, {"speaker": "B", "text": "응"}],
                 "summary": "인사했다."} for i in range(2)]
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "empty"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], (list, dict, str)):
            parent[path[-1]] = type(parent[path[-1]])()
    return kind, data


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_files(), st.booleans())
def test_random_damage_parses_or_raises_data_error(case, skip_invalid: bool):
    kind, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("d.jsonl" if kind == "jsonl" else "d.json")
        if kind == "jsonl":
            text = "\n".join(json.dumps(r) for r in data) if isinstance(data, list) else json.dumps(data)
        else:
            text = json.dumps(data)
        path.write_text(text, encoding="utf-8")
        try:
            result = read_dialogues(path, skip_invalid=skip_invalid)
        except DataError as err:
            assert str(path) in str(err)
        else:
            for dialogue in result.dialogues:
                assert dialogue.id and dialogue.turns and dialogue.summary
                assert all(isinstance(t.text, str) and t.text for t in dialogue.turns)

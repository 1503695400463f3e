"""Prompt rendering, label masking token by token, truncation, and splits."""

from __future__ import annotations

import random

import pytest

from diary_lightning.data.encoding import IGNORE_INDEX, PromptTokenizer, encode_batch
from diary_lightning.data.prompts import TEMPLATES, render_prompt, resolve_template
from diary_lightning.data.records import Dialogue, Turn
from diary_lightning.data.splits import assign_split, split_dialogues

TURNS = [Turn("P01", "오늘 회사에서 발표했어"), Turn("P02", "잘 됐어?"), Turn("P01", "응 칭찬 받았어 ㅋㅋ")]
TARGET = "오늘 회사에서 발표를 했는데 칭찬을 받아서 뿌듯했다."


def test_default_template_is_eeve_with_the_dialogue():
    prompt = render_prompt(TEMPLATES["eeve-diary"], TURNS, {"P01": "Human"})
    assert prompt.startswith("A chat between a curious user and an artificial intelligence assistant.")
    assert "\nHuman: " in prompt and prompt.endswith("\nAssistant:\n")
    assert "Human: 오늘 회사에서 발표했어\nP02: 잘 됐어?" in prompt


def test_template_errors():
    with pytest.raises(ValueError, match="dialogue"):
        resolve_template("no field here")
    assert resolve_template("대화: {dialogue}\n일기:") == "대화: {dialogue}\n일기:"


def test_labels_mask_prompt_and_keep_target_and_eos(tokenizer):
    template = TEMPLATES["eeve-diary"]
    out = encode_batch(tokenizer, template, [TURNS], [TARGET], max_length=1024)
    ids, labels = out["input_ids"][0], out["labels"][0]
    prompt_ids = tokenizer(render_prompt(template, TURNS))["input_ids"]
    target_ids = tokenizer(TARGET, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert ids == prompt_ids + target_ids
    assert out["prompt_length"] == [len(prompt_ids)]
    for position, (token, label) in enumerate(zip(ids, labels)):
        expected = IGNORE_INDEX if position < len(prompt_ids) else token
        assert label == expected, position
    assert labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode([t for t in labels if t != IGNORE_INDEX], skip_special_tokens=True) == TARGET


@pytest.mark.parametrize("template", ["eeve-diary", "abc{dialogue}xyz", "대화 {dialogue} 일기:", "{dialogue}",
                                      "X\n\n{dialogue}\n\nY", "{{literal}} {dialogue}"])
def test_template_tokenized_once_gives_the_tokens_of_the_whole_prompt(tokenizer, template):
    """The fixed text of the template is tokenized once per batch; whatever the seams, the ids must be
    those of the whole rendered prompt (or the encoder falls back to whole prompts)."""
    template = resolve_template(template)
    dialogues = [TURNS, TURNS[1:], [Turn("Human", "ㅋㅋ (사진) 봐봐")], [Turn("P03", "  a")]] * 3
    summaries = [TARGET] * len(dialogues)
    out = encode_batch(tokenizer, template, dialogues, summaries, max_length=4096, speaker_labels={"P01": "Human"})
    for turns, ids, n in zip(dialogues, out["input_ids"], out["prompt_length"]):
        assert ids[:n] == tokenizer(render_prompt(template, turns, {"P01": "Human"}))["input_ids"]
    cut = encode_batch(tokenizer, template, dialogues, summaries, max_length=out["prompt_length"][0] + 10)
    assert cut["turns_cut"][0] > 0


def test_a_seam_inside_a_token_falls_back_to_whole_prompts(tokenizer):
    # "Human" is one token of the tiny tokenizer: "Hu" + "man: ..." tokenized apart would differ.
    assert tokenizer.convert_ids_to_tokens(tokenizer("Human")["input_ids"])[-1] == "Human"
    encoder = PromptTokenizer(tokenizer, "Hu{dialogue}", {"P01": "man"})
    ids = encoder([TURNS, TURNS[:1]])
    assert encoder.pieces is None
    assert ids == [tokenizer(render_prompt("Hu{dialogue}", t, {"P01": "man"}))["input_ids"] for t in (TURNS, TURNS[:1])]


def test_prediction_encoding_is_the_prompt_alone(tokenizer):
    out = encode_batch(tokenizer, TEMPLATES["eeve-diary"], [TURNS], None, max_length=1024)
    assert out["input_ids"][0] == tokenizer(render_prompt(TEMPLATES["eeve-diary"], TURNS))["input_ids"]
    assert out["target_length"] == [0]


def test_too_long_drops_oldest_turns_and_keeps_target(tokenizer):
    template = TEMPLATES["eeve-summary"]
    long_turns = [Turn("P01" if i % 2 else "P02", f"{i}번째 이야기인데 꽤 길게 말을 하고 있어") for i in range(30)]
    full = encode_batch(tokenizer, template, [long_turns], [TARGET], max_length=4096)
    limit = full["prompt_length"][0] - 60 + full["target_length"][0]
    out = encode_batch(tokenizer, template, [long_turns], [TARGET], max_length=limit)
    cut = out["turns_cut"][0]
    assert cut > 0 and len(out["input_ids"][0]) <= limit
    # Exactly the newest turns are kept, and keeping one more would not fit.
    kept = tokenizer(render_prompt(template, long_turns[cut:]))["input_ids"]
    assert out["input_ids"][0][: len(kept)] == kept
    one_more = tokenizer(render_prompt(template, long_turns[cut - 1 :]))["input_ids"]
    assert len(one_more) + out["target_length"][0] > limit
    target = [t for t in out["labels"][0] if t != IGNORE_INDEX]
    assert tokenizer.decode(target, skip_special_tokens=True) == TARGET
    assert render_prompt(template, [])[:40] in tokenizer.decode(out["input_ids"][0])


def _dialogues(n: int) -> list[Dialogue]:
    return [Dialogue(f"dlg-{i:05d}", (Turn("A", "x"),), "s") for i in range(n)]


def test_split_is_stable_under_file_order_and_close_to_fractions():
    dialogues = _dialogues(4000)
    shuffled = dialogues[:]
    random.Random(1).shuffle(shuffled)
    a = split_dialogues(dialogues)
    b = split_dialogues(shuffled)
    assert {k: {d.id for d in v} for k, v in a.items()} == {k: {d.id for d in v} for k, v in b.items()}
    assert abs(len(a["train"]) / 4000 - 0.70) < 0.03
    assert abs(len(a["val"]) / 4000 - 0.15) < 0.03
    # Adding dialogues never moves an existing one.
    more = split_dialogues(dialogues + _dialogues(5000)[4000:])
    assert {d.id for d in a["test"]} <= {d.id for d in more["test"]}


def test_split_depends_on_seed_and_validates_fractions():
    ids = [f"x{i}" for i in range(200)]
    assert [assign_split(i, 0.15, 0.15, 0) for i in ids] != [assign_split(i, 0.15, 0.15, 1) for i in ids]
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_dialogues(_dialogues(3), 0.6, 0.5)


# -- issue 22: predict cuts the chat as training does, and never past max_length ----------------------------------

LONG = [Turn("P01" if i % 2 else "P02", f"{i}번째 이야기인데 꽤 길게 말을 하고 있어") for i in range(30)]


def test_predict_cuts_the_oldest_turns_leaving_room_for_the_diary_as_training_does(tokenizer):
    template = TEMPLATES["eeve-diary"]
    trained = encode_batch(tokenizer, template, [LONG], [TARGET], max_length=256)
    room = trained["target_length"][0]
    predicted = encode_batch(tokenizer, template, [LONG], None, max_length=256, diary_room=room)
    assert predicted["turns_cut"] == trained["turns_cut"] and predicted["turns_cut"][0] > 0
    assert predicted["input_ids"][0] == trained["input_ids"][0][: trained["prompt_length"][0]]
    assert len(predicted["input_ids"][0]) + room <= 256


def test_predict_shortens_one_message_longer_than_max_length_from_its_start(tokenizer):
    template = TEMPLATES["eeve-diary"]
    huge = "아주 긴 메시지 " * 1500 + "그래서 결국 집에 왔어"
    out = encode_batch(tokenizer, template, [[Turn("P01", "안녕"), Turn("P02", huge)]], None, max_length=512,
                       diary_room=64)
    ids = out["input_ids"][0]
    assert len(ids) <= 512 - 64 and out["turns_cut"] == [2]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert "그래서 결국 집에 왔어" in text and text.rstrip().endswith("Assistant:")
    with pytest.raises(ValueError, match="max_new_tokens 600 leaves no room"):
        encode_batch(tokenizer, template, [LONG], None, max_length=512, diary_room=600)

"""The same prompt in the model server: the chat template of the exported tokenizer renders, token for token,
the prompt training and predict built, from the messages a service sends (system line, rendered chat)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.encoding import PromptFormat, render_chat
from diary_lightning.data.prompts import EEVE_SYSTEM, TEMPLATES, format_dialogue
from diary_lightning.data.records import DataError, Turn
from diary_lightning.inference.chat_template import build_chat_template, chat_messages, system_line


def _ids(out: Any) -> list[int]:
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)


def _with_template(tokenizer: Any, template: str) -> Any:
    served = copy.deepcopy(tokenizer)
    served.chat_template = build_chat_template(template, tokenizer)
    return served


def _served_ids(served: Any, user_message: str, template: str) -> list[int]:
    return _ids(served.apply_chat_template(chat_messages(user_message, template), add_generation_prompt=True))


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_chat_template_gives_the_training_prompt_token_for_token(name: str, tokenizer: Any, tiny_model_dir: Path,
                                                                 sample_dialogues: Path, tmp_path: Path) -> None:
    from diary_lightning.training.datamodule import DiaryDataModule

    # A max_length that cuts the oldest turns of some dialogues: the user message holds the turns kept.
    data = DiaryDataModule(paths=[str(sample_dialogues)], tokenizer=str(tiny_model_dir), prompt_template=name,
                           max_length=200, cache_dir=str(tmp_path / "cache"))
    served = _with_template(tokenizer, data.prompt_format.template)
    compared = cut = 0
    for split in data.splits().values():
        for example in split:
            turns = [Turn(s, t) for s, t in zip(example["speakers"], example["texts"])][example["turns_cut"]:]
            training = example["input_ids"][: example["prompt_length"]]
            assert _served_ids(served, format_dialogue(turns), data.prompt_format.template) == training, example["id"]
            compared += 1
            cut += example["turns_cut"] > 0
    assert compared > 50 and cut > 0


# Short enough that some sample chats are cut, long enough for the longest template (EEVE's system line and the
# diary instruction) and a turn in the tiny tokenizer.
LENGTH = 250


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_render_chat_and_chat_template_give_predicts_prompt(name: str, tokenizer: Any, tiny_model_dir: Path,
                                                            sample_chats: Path, tmp_path: Path) -> None:
    """A service holding only the raw chat messages gets predict's prompt, including the cut to max_length."""
    from diary_lightning.training.datamodule import DiaryDataModule

    data = DiaryDataModule(predict_path=str(sample_chats), tokenizer=str(tiny_model_dir), prompt_template=name,
                           max_length=LENGTH, cache_dir=str(tmp_path / "cache"))
    data.setup("predict")
    predicted = dict(row for batch in data.predict_dataloader() for row in _unbatch(batch))
    prompt_format = data.prompt_format
    served = _with_template(tokenizer, data.prompt_format.template)
    cut = 0
    for line in sample_chats.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        rendered = render_chat(record["dialogue"], prompt_format, tokenizer=tokenizer, max_length=LENGTH)
        assert _served_ids(served, rendered.user_message, data.prompt_format.template) == predicted[record["id"]], record["id"]
        assert rendered.dialogue.writer == "Human"
        cut += rendered.turns_cut > 0
    assert len(predicted) == 8 and cut > 0


def _unbatch(batch: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """(id, prompt ids without the left padding) of each row of a predict batch."""
    return [(dialogue_id, batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist())
            for i, dialogue_id in enumerate(batch["id"])]


def test_one_system_line_and_one_user_message_or_an_error(tokenizer: Any) -> None:
    template = TEMPLATES["eeve-diary"]
    served = _with_template(tokenizer, template)
    assert system_line(template) == EEVE_SYSTEM
    # Without the system message the template supplies it: the same prompt.
    assert _ids(served.apply_chat_template([{"role": "user", "content": "글쓴이: 안녕"}], add_generation_prompt=True)) \
        == _served_ids(served, "글쓴이: 안녕", template)
    wrong = [
        ([{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "x"}], "trained with the system"),
        ([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}], "one user message"),
        ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "one user message"),
        ([{"role": "system", "content": EEVE_SYSTEM}], "no user message"),
    ]
    for messages, error in wrong:
        with pytest.raises(Exception, match=error):
            served.apply_chat_template(messages, add_generation_prompt=True)
    # A template of one's own, without a system line, takes no system message.
    own = "일기를 써 줘:\n{dialogue}\n일기:\n"
    served = _with_template(tokenizer, own)
    assert _served_ids(served, "글쓴이: 안녕", own) == tokenizer(own.format(dialogue="글쓴이: 안녕"))["input_ids"]
    with pytest.raises(Exception, match="no system line"):
        served.apply_chat_template([{"role": "system", "content": EEVE_SYSTEM}, {"role": "user", "content": "x"}])


def test_render_chat_names_the_writer_once() -> None:
    chat = [{"speaker": "준호", "text": "오늘 영화 어땠어?"}, {"speaker": "민지", "text": "재밌었어 #@이름#도 왔어"},
            {"speaker": "민지", "text": "팝콘도 먹었어"}, {"speaker": "수아", "text": "나도 갈걸"}]
    rendered = render_chat(chat, writer="민지")
    assert rendered.user_message == ("상대1: 오늘 영화 어땠어?\n글쓴이: 재밌었어 (이름)도 왔어 팝콘도 먹었어\n"
                                     "상대2: 나도 갈걸")
    assert rendered.dialogue.writer == "민지" and rendered.chosen_by == "민지"
    assert render_chat(chat).user_message.startswith("글쓴이: 오늘 영화")  # no Human: the first speaker
    with pytest.raises(DataError, match="the writer \\(민수\\) does not speak"):
        render_chat(chat, writer="민수", source="service", index=7)


def test_render_chat_reads_a_chat_as_training_reads_a_file(sample_chats: Path) -> None:
    for dialogue in read_dialogues(str(sample_chats), require_summary=False).dialogues:
        record = next(json.loads(line) for line in sample_chats.read_text(encoding="utf-8").splitlines()
                      if json.loads(line)["id"] == dialogue.id)
        assert render_chat(record["dialogue"]).user_message == render_chat(dialogue).user_message


def test_rendering_needs_neither_torch_nor_lightning() -> None:
    code = ("import sys\n"
            "for name in ('torch', 'lightning', 'transformers'): sys.modules[name] = None\n"
            "from diary_lightning.data.encoding import render_chat\n"
            "from diary_lightning.inference.chat_template import build_chat_template, chat_messages\n"
            "print(render_chat([{'speaker': 'Human', 'text': '안녕'}, {'speaker': 'AI', 'text': '반가워요'}]).user_message)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out == "글쓴이: 안녕\n챗봇: 반가워요\n"

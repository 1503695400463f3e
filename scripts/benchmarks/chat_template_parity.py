"""Count the dialogues whose chat-template prompt equals the prompt training and predict built, token for token.

For every dialogue of each data path and each prompt template: the messages a service would send
(``chat_messages(render_chat(chat).user_message)``) go through the tokenizer's chat template
(``build_chat_template``, what ``export`` saves) with ``add_generation_prompt=True``, and the ids are compared
with training's prompt (the encoded example before its diary, with the turns training kept) and with predict's
(the same dialogue read as predict input, cut to ``max_length``).

    python -m diary_lightning.model.tiny --output runs/tiny-model
    python scripts/benchmarks/chat_template_parity.py --data diary_lightning/resources/sample_dialogues.json ../shared/aihub-sample
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from typing import Any


def _ids(out: Any) -> list[int]:
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def measure(path: str, template_name: str, tokenizer_path: str, max_length: int, cache_dir: str) -> dict[str, Any]:
    from diary_lightning.data.dialogue import read_dialogues
    from diary_lightning.data.encoding import PromptFormat, render_chat
    from diary_lightning.data.prompts import format_dialogue
    from diary_lightning.inference.chat_template import build_chat_template, chat_messages
    from diary_lightning.training.datamodule import DiaryDataModule

    data = DiaryDataModule(paths=[path], predict_path=path, tokenizer=tokenizer_path, prompt_template=template_name,
                           max_length=max_length, cache_dir=cache_dir, val_generate_samples=0)
    served = copy.deepcopy(data.tokenizer)
    served.chat_template = build_chat_template(data.template, data.tokenizer)
    prompt_format = PromptFormat.from_settings(data.prompt_state())

    def chat_ids(user_message: str) -> list[int]:
        messages = chat_messages(user_message, data.template)
        return _ids(served.apply_chat_template(messages, add_generation_prompt=True))

    # The chats as a service holds them: cleaned and merged by render_chat from the records as read.
    dialogues = {d.id: d for d in read_dialogues(path, require_summary=False).dialogues}

    training_equal = training_total = 0
    for split in data.splits().values():
        for example in split:
            rendered = render_chat(dialogues[example["id"]], prompt_format)
            user_message = format_dialogue(rendered.turns[example["turns_cut"]:])
            training_total += 1
            training_equal += chat_ids(user_message) == example["input_ids"][: example["prompt_length"]]

    data.setup("predict")
    predicted = {}
    for batch in data.predict_dataloader():
        for i, dialogue_id in enumerate(batch["id"]):
            predicted[dialogue_id] = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
    predict_equal = sum(
        chat_ids(render_chat(dialogues[i], prompt_format, tokenizer=data.tokenizer,
                             max_length=max_length).user_message) == ids
        for i, ids in predicted.items())
    return {"data": path, "template": template_name, "dialogues": len(dialogues),
            "training_equal": training_equal, "training_total": training_total,
            "predict_equal": predict_equal, "predict_total": len(predicted)}


def main() -> None:
    from diary_lightning.data.prompts import TEMPLATES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="dialogue files or folders (with summaries)")
    parser.add_argument("--tokenizer", default="runs/tiny-model", help="tokenizer folder (default: %(default)s)")
    parser.add_argument("--templates", nargs="+", default=sorted(TEMPLATES), help="prompt templates to check")
    parser.add_argument("--max-length", type=int, default=1024, help="data.max_length (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache_dir:
        for path in args.data:
            for name in args.templates:
                print(json.dumps(measure(path, name, args.tokenizer, args.max_length, cache_dir), ensure_ascii=False))


if __name__ == "__main__":
    main()

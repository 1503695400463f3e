"""The demo's tiny base: the command line pre-trains its random weights on the bundled chats."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from diary_lightning.model.loading import load_tokenizer
from diary_lightning.model.tiny import build_tiny_model, main, sample_data_path


def _chat_loss(model_dir) -> float:
    tokenizer = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    record = json.loads(sample_data_path().read_text(encoding="utf-8"))["data"][0]
    chat = "\n".join(f'{u["participantID"]}: {u["utterance"]}' for u in record["body"]["dialogue"])
    ids = torch.tensor([tokenizer(chat)["input_ids"]])
    with torch.no_grad():
        return float(model(input_ids=ids, labels=ids).loss)


@pytest.mark.slow
def test_pretraining_teaches_the_chats_and_reuse_keeps_the_model(tmp_path):
    random = build_tiny_model(tmp_path / "random")
    main(["--output", str(tmp_path / "warm"), "--pretrain-steps", "30"])
    # Reusing an existing directory must not pre-train it again (or rebuild it) without --force.
    before = (tmp_path / "warm" / "model.safetensors").stat().st_mtime_ns
    main(["--output", str(tmp_path / "warm"), "--pretrain-steps", "30"])
    assert (tmp_path / "warm" / "model.safetensors").stat().st_mtime_ns == before
    assert _chat_loss(tmp_path / "warm") < _chat_loss(random) - 1.0

"""The whole loop at once: fit on four dialogues until greedy generation from the saved checkpoint
reproduces every diary exactly and stops at EOS (the seed's output was cut mid-sentence)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli


@pytest.mark.slow
def test_memorizes_four_diaries_and_stops_at_eos(make_config, sample_dialogues, tmp_path):
    records = json.loads(sample_dialogues.read_text(encoding="utf-8"))["data"][:4]
    data = tmp_path / "four.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for r in records:
            dialogue = [{"speaker": u["participantID"], "text": u["utterance"]} for u in r["body"]["dialogue"]]
            f.write(json.dumps({"id": r["header"]["dialogueInfo"]["dialogueID"], "dialogue": dialogue,
                                "summary": r["body"]["summary"]}, ensure_ascii=False) + "\n")
    config = make_config(**{
        "data.paths": [str(data)], "data.predict_path": str(data),
        "data.val_fraction": 0.0, "data.test_fraction": 0.0, "trainer.limit_val_batches": 0,
        "trainer.max_steps": 150, "model.learning_rate": 0.01, "model.lora_r": 16, "model.lora_alpha": 32,
        "model.warmup_steps": 10, "model.max_new_tokens": 80,
    })
    run_cli("fit", "--config", str(config))
    output = tmp_path / "diaries.jsonl"
    run_cli("predict", "--config", str(config), "--ckpt_path", str(tmp_path / "run" / "checkpoints" / "last.ckpt"),
            "--output", str(output))
    expected = {json.loads(line)["id"]: json.loads(line)["summary"] for line in data.read_text(encoding="utf-8").splitlines()}
    written = {row["id"]: row["diary"] for row in map(json.loads, output.read_text(encoding="utf-8").splitlines())}
    assert written == expected

"""Every target token of an optimizer step weighs the same, however the step's dialogues are split into
micro-batches and ranks (diary_lightning.model.loss): the adapter gradient equals one big batch's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli, tiny_config
from fits import ddp_fit
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def four_dialogues(tmp_path_factory: pytest.TempPathFactory, sample_dialogues: Path) -> Path:
    """Four dialogues whose diaries have different lengths: a mean of per-dialogue means would weigh
    their tokens unequally."""
    records = json.loads(sample_dialogues.read_text(encoding="utf-8"))["data"][:4]
    assert len({len(r["body"]["summary"]) for r in records}) == 4
    path = tmp_path_factory.mktemp("four") / "four.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            dialogue = [{"speaker": u["participantID"], "text": u["utterance"]} for u in r["body"]["dialogue"]]
            f.write(json.dumps({"id": r["header"]["dialogueInfo"]["dialogueID"], "dialogue": dialogue,
                                "summary": r["body"]["summary"]}, ensure_ascii=False) + "\n")
    return path


def _config(tmp: Path, model_dir: Path, data: Path, batch_size: int, accumulate: int, chunk: int) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    return tiny_config(tmp, model_dir, **{
        "data.paths": [str(data)], "data.predict_path": str(data), "data.batch_size": batch_size,
        "data.val_fraction": 0.0, "data.test_fraction": 0.0, "data.val_generate_samples": 0,
        "trainer.max_steps": 1, "trainer.accumulate_grad_batches": accumulate,
        "trainer.limit_val_batches": 0, "trainer.num_sanity_val_steps": 0,
        "model.loss_chunk_size": chunk, "model.lora_dropout": 0.0,
    })


def _grads(tmp: Path, model_dir: Path, data: Path, batch_size: int, accumulate: int, chunk: int) -> dict:
    """The adapter gradient of the first optimizer step of an in-process fit."""
    config = _config(tmp, model_dir, data, batch_size, accumulate, chunk)
    run_cli("fit", "--config", str(config), "--trainer.callbacks+=grad_probe.GradProbe",
            "--trainer.callbacks.directory", str(tmp / "probe"))
    return load_file(tmp / "probe" / "rank0.safetensors")


@pytest.fixture(scope="module")
def one_batch(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, four_dialogues: Path):
    """The gradient of one batch of the four dialogues, per loss path, computed once for the module's tests."""
    grads: dict[int, dict] = {}

    def get(chunk: int) -> dict:
        if chunk not in grads:
            grads[chunk] = _grads(tmp_path_factory.mktemp(f"batch4-chunk{chunk}"), tiny_model_dir, four_dialogues,
                                  4, 1, chunk)
        return grads[chunk]

    return get


def _assert_same(grads: dict, expected: dict) -> None:
    assert grads.keys() == expected.keys() and any("layers.0." in k for k in expected)
    for name, grad in expected.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [0, 16], ids=["model_loss", "chunked_loss"])
def test_four_accumulated_micro_batches_give_one_batch_of_four(tmp_path, tiny_model_dir, four_dialogues, one_batch,
                                                              chunk):
    accumulated = _grads(tmp_path / "accumulate4", tiny_model_dir, four_dialogues, 1, 4, chunk)
    _assert_same(accumulated, one_batch(chunk))


@pytest.mark.slow  # two processes that train
def test_two_ddp_ranks_accumulating_give_one_batch_of_four(tmp_path, tiny_model_dir, four_dialogues, one_batch):
    """Two gloo ranks, each accumulating two micro-batches of one dialogue: the four of one step."""
    chunk = 16
    config = _config(tmp_path / "ddp", tiny_model_dir, four_dialogues, 1, 2, chunk)
    probe = tmp_path / "ddp" / "probe"
    ddp_fit(config, "grad_probe.GradProbe", probe)
    ranks = [load_file(probe / f"rank{r}.safetensors") for r in (0, 1)]
    for name, grad in ranks[0].items():
        assert grad.equal(ranks[1][name]), name
    _assert_same(ranks[0], one_batch(chunk))

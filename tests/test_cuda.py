"""The recipe's GPU path at tiny size: bf16-mixed fit and predict through the CLI on ``cuda`` with NF4,
bitsandbytes' 8-bit AdamW, gradient checkpointing and the chunked loss. Skipped without a CUDA GPU;
scripts/gpu/gpu_check.sh runs them (``pytest tests/test_cuda.py -m cuda``) on one.

The style metric is off: Kiwi cannot travel to the GPU machine (docs/performance.md), and scoring a diary's style
runs on the CPU, tested everywhere else. The optimizer is the 8-bit one without paging: paged AdamW asks for
managed memory, which can hang a shared GPU machine (its README)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import run_cli

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU: scripts/gpu/gpu_check.sh runs these on one"),
]
STEPS = 20


@pytest.fixture(scope="module")
def cuda_fit(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir):
    from conftest import tiny_config

    tmp = tmp_path_factory.mktemp("cuda")
    config = tiny_config(tmp, tiny_model_dir, **{
        "trainer.accelerator": "gpu", "trainer.devices": 1, "trainer.precision": "bf16-mixed",
        "trainer.max_steps": STEPS, "trainer.val_check_interval": 10, "trainer.log_every_n_steps": 1,
        "trainer.accumulate_grad_batches": 2,
        "model.compute_dtype": "bfloat16", "model.optimizer": "adamw_8bit", "model.style_metric": False,
        "model.gradient_checkpointing": True, "model.loss_chunk_size": 16, "model.max_new_tokens": 16,
        "data.val_generate_samples": 4,
    })
    run_cli("fit", "--config", str(config), "--trainer.callbacks+=cuda_probe.CudaProbe",
            "--trainer.callbacks.output", str(tmp / "probe.json"))
    return tmp, config, json.loads((tmp / "probe.json").read_text())


def test_fit_trains_nf4_with_bf16_8bit_adamw_checkpointing_and_chunked_loss_on_cuda(cuda_fit):
    _, _, probe = cuda_fit
    assert probe["precision"] == "bf16-mixed"
    assert probe["adapter_devices"] == ["cuda:0"]
    assert probe["four_bit_layers"] > 0 and probe["four_bit_devices"] == ["cuda:0"]
    assert probe["optimizer"] == "AdamW8bit"
    assert probe["gradient_checkpointing"] is True
    assert probe["lora_B_abs_sum"] > 0  # the adapters moved from their zero start
    for name in ("train/loss", "val/loss"):
        assert math.isfinite(probe["metrics"][name]), probe["metrics"]
    assert probe["max_memory_allocated"] > 0


def test_predict_writes_a_diary_per_chat_on_cuda(cuda_fit, sample_chats):
    tmp, config, _ = cuda_fit
    output = tmp / "diaries.jsonl"
    run_cli("predict", "--config", str(config), "--ckpt_path", str(tmp / "run" / "checkpoints" / "last.ckpt"),
            "--output", str(output))
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    chats = [json.loads(line)["id"] for line in sample_chats.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(chats)
    assert all(isinstance(r["diary"], str) and r["style_failures"] is None and r["faithfulness_failures"] is None
               for r in rows)

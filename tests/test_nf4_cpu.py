"""Gradients through frozen NF4 layers on the CPU stay right after an evaluation (diary_lightning.model.loading)."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch
from bitsandbytes.functional import dequantize_4bit, has_avx512bf16
from conftest import random_b_module

from diary_lightning.data.batching import batch_counts
from diary_lightning.data.encoding import IGNORE_INDEX
from diary_lightning.model.loading import load_base
from diary_lightning.training.lora_module import DiaryLoRAModule

pytestmark = pytest.mark.skipif(
    not has_avx512bf16(),
    reason="this CPU lacks AVX512-BF16, so bitsandbytes never repacks its 4-bit weights here and the "
           "gradients cannot go wrong the way this test checks",
)


def _module(model_dir) -> DiaryLoRAModule:
    return random_b_module(model_dir, seed=0)  # seed 0: the same lora_A in every module built here


def _batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(2)
    ids = torch.randint(5, 200, (2, 30))
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :10] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, **batch_counts(mask, labels)}


def _step_grads(module: DiaryLoRAModule, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    module.train()
    module.zero_grad()
    loss, _ = module._loss(batch)
    loss.backward()
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}


def _validate(module: DiaryLoRAModule, batch: dict[str, torch.Tensor]) -> None:
    """What the sanity check, a validation and generation do to the layers: eval mode, no grad."""
    module.eval()
    with torch.no_grad():
        module._loss(batch)
        module.model.generate(input_ids=batch["input_ids"][:1, :10], max_new_tokens=3, do_sample=False)


def _dequantize_base(module: DiaryLoRAModule) -> int:
    """Replace every NF4 base layer under a LoRA layer by a float32 nn.Linear holding its dequantized weight."""
    replaced = 0
    for layer in module.model.modules():
        base = getattr(layer, "base_layer", None)
        if isinstance(base, bnb.nn.Linear4bit):
            linear = torch.nn.Linear(base.in_features, base.out_features, bias=False)
            linear.weight.data = dequantize_4bit(base.weight.data, base.weight.quant_state).float()
            linear.requires_grad_(False)
            layer.base_layer = linear
            replaced += 1
    return replaced


@pytest.mark.slow
def test_a_validation_leaves_the_next_steps_gradients_unchanged(tiny_model_dir):
    batch = _batch()
    without = _step_grads(_module(tiny_model_dir), batch)

    validated = _module(tiny_model_dir)
    _validate(validated, batch)
    after = _step_grads(validated, batch)

    reference = _module(tiny_model_dir)
    assert _dequantize_base(reference) == 7 * reference.model.config.num_hidden_layers
    expected = _step_grads(reference, batch)

    assert without.keys() == after.keys() == expected.keys() and len(expected) > 0
    # Every layer, the first included: the bug dropped the gradient through the frozen weights, so the
    # layers below the last got wrong ones.
    assert any("layers.0." in name for name in expected)
    for name, grad in expected.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(after[name], without[name], msg=name)
        torch.testing.assert_close(after[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_inference_models_keep_the_weight_layout_and_compute_dtype(tiny_model_dir):
    """DiaryPipeline and predict load through load_base: after generating, the layers still hold the layout
    training reads, and eval logits match training-mode ones (the packed kernel computes in bfloat16)."""
    model = load_base(str(tiny_model_dir), load_in_4bit=True, compute_dtype="float32")
    ids = _batch()["input_ids"]
    model.train()
    with torch.no_grad():
        train_logits = model(input_ids=ids).logits
    model.eval()
    with torch.no_grad():
        model.generate(input_ids=ids[:1, :10], max_new_tokens=3, do_sample=False)
        eval_logits = model(input_ids=ids).logits
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    torch.testing.assert_close(eval_logits, train_logits)

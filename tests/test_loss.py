"""The chunked loss on the real QLoRA path: the same value and adapter gradients as transformers' loss."""

from __future__ import annotations

import pytest
import torch
from conftest import random_b_module

from diary_lightning.data.batching import batch_counts
from diary_lightning.data.encoding import IGNORE_INDEX
from diary_lightning.model.loss import check_chunked_loss_support, chunked_causal_lm_loss
from diary_lightning.training.lora_module import DiaryLoRAModule


def _module(model_dir, **kwargs) -> DiaryLoRAModule:
    return random_b_module(model_dir, **kwargs)


def _batch() -> dict[str, torch.Tensor]:
    """Two right-padded rows whose prompts are masked, as the collator makes them."""
    torch.manual_seed(2)
    ids = torch.randint(5, 200, (2, 30))
    mask = torch.ones_like(ids)
    mask[1, 22:] = 0
    labels = ids.clone()
    labels[0, :12] = IGNORE_INDEX
    labels[1, :9] = IGNORE_INDEX
    labels[1, 22:] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, **batch_counts(mask, labels)}


def _loss_and_grads(module: DiaryLoRAModule, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    module.zero_grad()
    loss, _ = module._loss(batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}


@pytest.mark.slow
@pytest.mark.parametrize("gradient_checkpointing", [False, True])
def test_chunked_loss_and_adapter_gradients_match_the_full_logits(tiny_model_dir, gradient_checkpointing):
    module = _module(tiny_model_dir, gradient_checkpointing=gradient_checkpointing)
    module.train()
    batch = _batch()
    loss, grads = _loss_and_grads(module, batch)
    for chunk in (1, 7, 10_000):  # a token a chunk, a chunk size that does not divide the 31 tokens, one chunk
        module.hparams.loss_chunk_size = chunk
        chunked, chunked_grads = _loss_and_grads(module, batch)
        torch.testing.assert_close(chunked, loss)
        assert chunked_grads.keys() == grads.keys() and len(grads) > 0
        for name, grad in grads.items():
            assert grad.abs().sum() > 0, name
            torch.testing.assert_close(chunked_grads[name], grad, msg=name)


def test_training_step_applies_lm_head_to_labelled_chunks_only(tiny_model_dir):
    module = _module(tiny_model_dir, loss_chunk_size=8)
    module.train()
    shapes: list[tuple[int, ...]] = []
    lm_head = module.model.get_base_model().get_output_embeddings()
    lm_head.register_forward_hook(lambda _m, args, _out: shapes.append(tuple(args[0].shape)))
    loss = module.training_step(_batch(), 0)
    loss.backward()
    assert int((_batch()["labels"][:, 1:] != IGNORE_INDEX).sum()) == 31
    # 8 + 8 + 8 + 7 scored positions in forward, each chunk again in backward; never (batch, seq, dim).
    assert shapes[:4] == [(8, 64)] * 3 + [(7, 64)]
    assert sorted(shapes[4:]) == sorted(shapes[:4])


def test_no_labelled_token_gives_zero_with_a_graph():
    hidden = torch.randn(1, 5, 4, requires_grad=True)
    head = torch.nn.Linear(4, 11)
    loss = chunked_causal_lm_loss(hidden, head, torch.full((1, 5), IGNORE_INDEX), 2)
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad is not None


def test_refuses_models_whose_logits_are_not_lm_head_alone():
    class Config:
        model_type = "gemma2"
        final_logit_softcapping = 30.0

    with pytest.raises(ValueError, match="final_logit_softcapping"):
        check_chunked_loss_support(Config())
    with pytest.raises(ValueError, match="loss_chunk_size=-1"):
        DiaryLoRAModule(base_model="unused", loss_chunk_size=-1)

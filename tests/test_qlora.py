"""The real QLoRA path on the CPU: bitsandbytes NF4 layers, LoRA on them, a backward pass that moves only adapters."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch

from diary_lightning.model import DiaryLoRAModule


def _module(model_dir, **kwargs) -> DiaryLoRAModule:
    module = DiaryLoRAModule(base_model=str(model_dir), compute_dtype="float32", lora_r=4, lora_alpha=8,
                             lora_dropout=0.0, **kwargs)
    module.configure_model()
    return module


@pytest.mark.parametrize("gradient_checkpointing", [False, True])
def test_backward_changes_only_adapter_weights(tiny_model_dir, gradient_checkpointing):
    module = _module(tiny_model_dir, gradient_checkpointing=gradient_checkpointing)
    base = module.model.get_base_model()
    q_proj = base.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit)
    assert q_proj.base_layer.weight.quant_type == "nf4"
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # Every linear layer of every block has an adapter ("all-linear"); lm_head does not.
    assert sum("lora_A" in n for n in trainable) == 7 * base.config.num_hidden_layers

    before = {k: v.clone() for k, v in module.state_dict().items()}
    module.train()
    ids = torch.randint(5, 200, (2, 24))
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=1.0)
    for _ in range(2):  # lora_B starts at zero, so lora_A only moves from the second step
        loss = module.model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
        loss.backward()
        grads = [p.grad for n, p in module.named_parameters() if n in trainable]
        assert all(g is not None for g in grads)
        optimizer.step()
        optimizer.zero_grad()
    after = module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {k for k in before if "lora_" in k}


def test_fresh_adapters_leave_the_base_model_unchanged(tiny_model_dir):
    """LoRA's B starts at zero: validate/test without a checkpoint score the untuned base (the zero-shot baseline)."""
    module = _module(tiny_model_dir)
    module.eval()
    ids = torch.randint(5, 200, (1, 16))
    with torch.no_grad():
        with_adapter = module.model(input_ids=ids).logits
        with module.model.disable_adapter():
            without = module.model(input_ids=ids).logits
    torch.testing.assert_close(with_adapter, without)


def test_unquantized_path_trains_adapters_only(tiny_model_dir):
    module = _module(tiny_model_dir, load_in_4bit=False)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in module.modules())
    assert all("lora_" in n for n, p in module.named_parameters() if p.requires_grad)


def test_fit_engages_gradient_checkpointing_and_lora_dropout(tiny_model_dir, sample_dialogues, tmp_path):
    """from_pretrained returns an eval-mode model and Lightning keeps module modes at the start of fit, while
    transformers checkpoints a decoder layer only in training mode: every module must train, or gradient
    checkpointing silently does nothing (and EEVE runs out of memory)."""
    import lightning as L

    from diary_lightning.data import DiaryDataModule

    seen: list[tuple[bool, bool, bool]] = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            layer = pl_module.model.get_base_model().model.layers[0]
            dropout = layer.self_attn.q_proj.lora_dropout["default"]
            seen.append((layer.training, layer.gradient_checkpointing, dropout.training))

    module = DiaryLoRAModule(base_model=str(tiny_model_dir), compute_dtype="float32", lora_r=4, lora_alpha=8,
                             lora_dropout=0.1, gradient_checkpointing=True)
    data = DiaryDataModule(paths=[str(sample_dialogues)], tokenizer=str(tiny_model_dir), batch_size=4,
                           val_generate_samples=0, cache_dir=str(tmp_path / "cache"))
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[Probe()], default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    assert seen == [(True, True, True)]

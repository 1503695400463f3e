"""The real QLoRA path on the CPU: bitsandbytes NF4 layers, LoRA on them, a backward pass that moves only adapters."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch
from conftest import lora_module

from diary_lightning.model.loading import keep_nf4_unpacked
from diary_lightning.training.lora_module import DiaryLoRAModule


@pytest.mark.slow
@pytest.mark.parametrize("gradient_checkpointing", [False, True])
def test_backward_changes_only_adapter_weights(tiny_model_dir, gradient_checkpointing):
    module = lora_module(tiny_model_dir, gradient_checkpointing=gradient_checkpointing)
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


@pytest.mark.slow
def test_fresh_adapters_leave_the_base_model_unchanged(tiny_model_dir, tokenizer):
    """LoRA's B starts at zero: validate/test without a checkpoint score the untuned base (the zero-shot
    baseline), exactly as the base loaded on its own would."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    module = lora_module(tiny_model_dir, lora_r=8, lora_alpha=16, lora_dropout=0.05)
    module.eval()
    quantized = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32,
                                                quantization_config=quantized, device_map={"": "cpu"}).eval()
    # The module's base runs the unpacked kernel; a repacked layer would compute in bfloat16 (bnb_cpu).
    keep_nf4_unpacked(base)
    ids = torch.tensor([tokenizer("Human: 오늘 영화 봤어\nAI: 재밌었어?")["input_ids"]])
    with torch.no_grad():
        tuned, plain = module.model(input_ids=ids).logits, base(input_ids=ids).logits
        with module.model.disable_adapter():
            without = module.model(input_ids=ids).logits
    lora_b = [p for name, p in module.model.named_parameters() if "lora_B" in name]
    assert lora_b and all(not p.any() for p in lora_b)
    assert not torch.equal(plain, torch.zeros_like(plain))
    torch.testing.assert_close(tuned, without)
    torch.testing.assert_close(tuned, plain, rtol=0, atol=0)


def test_unquantized_path_trains_adapters_only(tiny_model_dir):
    module = lora_module(tiny_model_dir, load_in_4bit=False)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in module.modules())
    assert all("lora_" in n for n, p in module.named_parameters() if p.requires_grad)


@pytest.mark.slow
def test_fit_engages_gradient_checkpointing_and_lora_dropout(tiny_model_dir, sample_dialogues, tmp_path):
    """from_pretrained returns an eval-mode model and Lightning keeps module modes at the start of fit, while
    transformers checkpoints a decoder layer only in training mode: every module must train, or gradient
    checkpointing silently does nothing (and EEVE runs out of memory)."""
    import lightning as L

    from diary_lightning.training.datamodule import DiaryDataModule

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


def test_adapter_state_round_trips_under_peft_names_and_refuses_unknown_names(tiny_model_dir):
    """Checkpoints hold the adapters as PEFT saves them; loading a name that matches nothing must fail, not
    load nothing (the loading is otherwise non-strict, as the base is not saved)."""
    from diary_lightning.model.loading import AdapterMismatchError, adapter_state, load_adapter_state, peft_names

    module = lora_module(tiny_model_dir)
    state = adapter_state(module.model)
    assert state and all(("lora_A" in k or "lora_B" in k) and ".default." not in k for k in state)
    changed = {k: torch.full_like(v, 0.5) for k, v in state.items()}
    load_adapter_state(module.model, changed)
    assert all(torch.equal(v, changed[k]) for k, v in adapter_state(module.model).items())

    # The names the LightningModule gave them in earlier checkpoints load as well.
    legacy = {k: v for k, v in module.state_dict().items() if "lora_" in k}
    assert all(k.startswith("model.") and ".default." in k for k in legacy)
    assert peft_names(legacy).keys() == state.keys()

    wrong = {k.replace("lora_A", "lora_X"): v for k, v in state.items()}
    with pytest.raises(AdapterMismatchError, match="match no adapter of the model"):
        load_adapter_state(module.model, wrong)

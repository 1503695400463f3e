"""LoRA on an unquantized bf16 base (configs/eeve-lora-bf16.yaml, ``model.load_in_4bit: false``), beside QLoRA:
on the tiny model, a few optimizer steps in bf16 move the adapters and nothing else, and the adapter saved from
them loads back to the same outputs."""

from __future__ import annotations

import subprocess
import sys

import bitsandbytes as bnb
import pytest
import torch
import yaml
from conftest import ROOT, lora_module, subprocess_env


@pytest.fixture(scope="module")
def trained(tiny_model_dir):
    """Three AdamW steps of LoRA on the bf16 base, as the recipe's optimizer makes them."""
    torch.manual_seed(0)
    module = lora_module(tiny_model_dir, load_in_4bit=False, compute_dtype="bfloat16")
    base = {n: p.detach().clone() for n, p in module.model.named_parameters() if "lora_" not in n}
    lora = {n: p.detach().clone() for n, p in module.model.named_parameters() if "lora_" in n}
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(3, 200, (2, 24), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    grads = []
    for _ in range(3):
        loss = module.model(**batch).loss
        loss.backward()
        grads.append({n: p.grad for n, p in module.model.named_parameters() if p.grad is not None})
        optimizer.step()
        optimizer.zero_grad()
    return module, base, lora, grads, batch


def test_the_base_loads_unquantized_in_bf16_and_only_lora_trains(trained):
    module, *_ = trained
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in module.modules())
    frozen = [p for n, p in module.model.named_parameters() if "lora_" not in n]
    assert frozen and all(p.dtype == torch.bfloat16 and not p.requires_grad for p in frozen)
    assert all("lora_" in n for n, p in module.named_parameters() if p.requires_grad)


def test_gradients_reach_the_adapters_alone_and_move_them(trained):
    module, base, lora, grads, _ = trained
    assert all("lora_" in n for step in grads for n in step)
    assert any(g.abs().sum() > 0 for n, g in grads[0].items() if "lora_B" in n)  # B starts at zero: A's grad is 0
    assert any(g.abs().sum() > 0 for n, g in grads[-1].items() if "lora_A" in n)  # then A learns too
    now = dict(module.model.named_parameters())
    assert all(torch.equal(now[n], p) for n, p in base.items())
    assert any(not torch.equal(now[n], p) for n, p in lora.items())


def test_the_saved_adapter_loads_back_onto_the_bf16_base(trained, tiny_model_dir, tmp_path):
    from diary_lightning.data.encoding import PromptFormat
    from diary_lightning.inference.export import save_adapter
    from diary_lightning.model.settings import RunSettings

    module, *_, batch = trained
    # As fit exports it (CHECKPOINT_DIR/adapter): PEFT's files and the run's settings beside them.
    save_adapter(module.model, tmp_path / "adapter", module.run_metadata(RunSettings(PromptFormat(), 512, module.generation)))
    loaded = lora_module(tiny_model_dir, load_in_4bit=False, compute_dtype="bfloat16",
                         adapter_path=str(tmp_path / "adapter"))
    module.model.eval()
    loaded.model.eval()
    with torch.no_grad():
        want = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        got = loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.slow
def test_the_bf16_recipe_overrides_only_the_quantization():
    override = yaml.safe_load((ROOT / "configs" / "eeve-lora-bf16.yaml").read_text(encoding="utf-8"))
    assert override == {"model": {"load_in_4bit": False}}
    done = subprocess.run(
        [sys.executable, "-m", "diary_lightning", "fit", "--config", "configs/eeve-qlora.yaml",
         "--config", "configs/eeve-lora-bf16.yaml", "--print_config"],
        capture_output=True, text=True, cwd=ROOT, env=subprocess_env(HF_HUB_OFFLINE="1"), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    model = yaml.safe_load(done.stdout)["model"]
    recipe = yaml.safe_load((ROOT / "configs" / "eeve-qlora.yaml").read_text(encoding="utf-8"))["model"]
    assert model["load_in_4bit"] is False
    assert all(model[key] == value for key, value in recipe.items() if key != "load_in_4bit")

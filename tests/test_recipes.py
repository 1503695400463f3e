"""The GPU recipes (configs/eeve-qlora.yaml and the seed's, configs/eeve-qlora-seed.yaml) train: each runs on
the CPU with only the base, the data and what needs CUDA swapped for tiny ones; and model.residual_dtype."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, lora_module, run_cli
from diary_lightning.model.tiny import sample_data_path

# What a CPU cannot run of a GPU recipe: the rest (batch size, accumulation, loss_chunk_size, checkpointing,
# eval batch size, callbacks, LoRA) is the recipe's own.
ON_THE_CPU = {"trainer.accelerator": "cpu", "trainer.precision": "32-true", "model.compute_dtype": "float32",
              "model.residual_dtype": "float32", "trainer.max_steps": 2, "trainer.val_check_interval": 2,
              "trainer.limit_val_batches": 1, "trainer.log_every_n_steps": 1, "model.max_new_tokens": 8,
              "data.val_generate_samples": 4, "data.num_workers": 0}


def cpu_recipe(name: str, tmp_path: Path, model_dir: Path) -> Path:
    config = yaml.safe_load((ROOT / "configs" / name).read_text())
    overrides = {**ON_THE_CPU, "model.base_model": str(model_dir), "data.paths": [str(sample_data_path())],
                 "data.cache_dir": str(tmp_path / "cache"), "trainer.default_root_dir": str(tmp_path / "run")}
    if config["model"]["optimizer"] != "adamw":
        overrides["model.optimizer"] = "adamw"  # bitsandbytes' paged optimizers need CUDA
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def test_the_seed_recipe_trains_as_much_as_the_recipe():
    # configs/eeve-qlora-seed.yaml is there to compare against: the same dialogues per optimizer step and the
    # same number of steps, or the comparison measures the amount of training instead of the recipe.
    def per_step(config):
        return config["data"]["batch_size"] * config["trainer"].get("accumulate_grad_batches", 1)

    recipe = yaml.safe_load((ROOT / "configs" / "eeve-qlora.yaml").read_text())
    seed = yaml.safe_load((ROOT / "configs" / "eeve-qlora-seed.yaml").read_text())
    assert per_step(seed) == per_step(recipe)
    assert recipe["trainer"]["max_steps"] == seed["trainer"]["max_steps"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["eeve-qlora.yaml", "eeve-qlora-seed.yaml"])
def test_each_gpu_recipe_trains_the_tiny_model_on_the_cpu(name, tmp_path, tiny_model_dir):
    run_cli("fit", "--config", str(cpu_recipe(name, tmp_path, tiny_model_dir)))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file()
    saved = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] >= 1  # the seed accumulates 8 batches a step; its last save may come a step early
    assert json.loads((checkpoints / "adapter" / "adapter_config.json").read_text())["r"] == 16


@pytest.mark.parametrize("residual", ["float32", "bfloat16"])
def test_residual_dtype_sets_the_norms_and_the_adapters(residual, tiny_model_dir):
    module = lora_module(tiny_model_dir, compute_dtype="bfloat16", residual_dtype=residual, gradient_checkpointing=True)
    base = module.model.get_base_model()
    want = getattr(torch, residual)
    assert base.model.norm.weight.dtype == want and base.get_input_embeddings().weight.dtype == want
    trained = [p for p in module.model.parameters() if p.requires_grad]
    assert trained and {p.dtype for p in trained} == {want}


def test_a_bf16_residual_stream_needs_bf16_compute():
    from diary_lightning.training.lora_module import DiaryLoRAModule

    with pytest.raises(ValueError, match="residual_dtype=bfloat16 with model.compute_dtype=float32"):
        DiaryLoRAModule(base_model="unused", compute_dtype="float32", residual_dtype="bfloat16")

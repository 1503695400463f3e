"""Inference without training: DiaryPipeline, export's save and merge load and run with Lightning unimportable
(and the plain half of the data pipeline imports without it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

# Run in a fresh interpreter in which importing Lightning (under any of its names) fails.
SCRIPT = r'''
import importlib.abc, json, sys

class NoLightning(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("lightning", "pytorch_lightning", "lightning_fabric"):
            raise ModuleNotFoundError(f"blocked for this test: {name}")
        return None

sys.meta_path.insert(0, NoLightning())
model_dir, adapter, merged = sys.argv[1:4]

import torch
from diary_lightning import DiaryPipeline
from diary_lightning.model.loading import load_tokenizer
from diary_lightning.data import cache
from diary_lightning.data import prepare
from diary_lightning.inference.export import merge_adapter, save_adapter
from diary_lightning.model.metadata import RunMetadata
from diary_lightning.model.settings import RunSettings
from diary_lightning.model.generation import GenerationSettings
from diary_lightning.data.encoding import PromptFormat
from diary_lightning.model.loading import build_model
from diary_lightning.data.prompts import TEMPLATES

hparams = {"base_model": model_dir, "load_in_4bit": True, "compute_dtype": "float32", "double_quant": True,
           "attn_implementation": "sdpa", "trust_remote_code": False, "gradient_checkpointing": False,
           "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear",
           "max_new_tokens": 6, "num_beams": 1, "do_sample": False, "temperature": 1.0, "top_p": 1.0,
           "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
model = build_model(hparams, torch.device("cpu"))
prompt = {"prompt_template": TEMPLATES["eeve-diary"], "speaker_labels": {"P01": "Human"}, "anonymization": "placeholder"}
settings = RunSettings(PromptFormat.from_settings(prompt), 256, GenerationSettings.from_mapping(hparams))
save_adapter(model, adapter, RunMetadata.of_run(hparams, settings), load_tokenizer(model_dir))
pipeline = DiaryPipeline.from_pretrained(adapter, device="cpu")
diary = pipeline.write([{"speaker": "P01", "text": "오늘 비가 왔어"}, {"speaker": "P02", "text": "우산은?"}])
merge_adapter(adapter, merged, "float32")
loaded = [name for name in sys.modules if name.split(".")[0] in ("lightning", "pytorch_lightning", "lightning_fabric")]
print(json.dumps({"diary": diary, "lightning_modules": loaded}))
'''


@pytest.mark.slow  # a fresh interpreter that loads, generates and merges
def test_diary_writer_and_merge_work_with_lightning_blocked(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_model_dir), str(tmp_path / "adapter"),
                           str(tmp_path / "merged")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert isinstance(result["diary"], str) and result["lightning_modules"] == []
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "merged" / "config.json").is_file()


@pytest.mark.slow
def test_the_blocker_blocks(tmp_path: Path) -> None:
    """The same interpreter set-up makes a module that does need Lightning fail, so the test above can fail."""
    script = SCRIPT.split("model_dir, adapter")[0] + "import diary_lightning.training.lora_module\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode != 0 and "blocked for this test: lightning" in done.stderr

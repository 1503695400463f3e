"""The command line end to end on the tiny model: fit, adapter-only checkpoints, resume, predict, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, run_cli

from diary_lightning.data.records import DataError
from diary_lightning.model.loading import AdapterMismatchError


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(config: Path, capsys):
    # A config layered on another says so in the command its header gives: parsed as that command reads it.
    header = re.search(r"^#\s+python -m diary_lightning fit (.*)$", config.read_text(encoding="utf-8"), re.M)
    layers = re.findall(r"--config (\S+)", header.group(1)) if header else []
    configs = [str(ROOT / layer) for layer in layers] if layers else [str(config)]
    assert str(config) in configs, f"{config.name}: its header's command does not use it"
    with pytest.raises(SystemExit) as exit_info:
        run_cli("fit", *(arg for path in configs for arg in ("--config", path)), "--print_config")
    assert exit_info.value.code in (0, None)
    parsed = yaml.safe_load(capsys.readouterr().out)
    assert parsed["model"]["base_model"] and parsed["data"]["paths"]
    checkpoints = [c for c in parsed["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    assert checkpoints and checkpoints[0]["init_args"]["save_last"] is True


@pytest.mark.slow  # two fresh interpreters that import Lightning
def test_module_and_console_entry_points_agree():
    out = subprocess.run([sys.executable, "-m", "diary_lightning", "--help"], capture_output=True, text=True, check=True)
    for subcommand in ("fit", "validate", "test", "predict", "preprocess", "export", "synthesize", "merge", "evaluate",
                       "app"):
        assert f"\n    {subcommand} " in out.stdout, subcommand
    assert out.stdout.split("\n\n")[1].startswith("diary_lightning: fine-tune") and "Lightning Trainer" not in out.stdout
    merge = subprocess.run([sys.executable, "-m", "diary_lightning", "merge", "--help"], capture_output=True,
                           text=True, check=True)
    assert "--adapter_path" in merge.stdout and "--dtype" in merge.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """One short fit shared by the tests below."""
    from conftest import tiny_config

    tmp = tmp_path_factory.mktemp("fit")
    config = tiny_config(tmp, tiny_model_dir, **{"trainer.max_steps": 6, "trainer.val_check_interval": 3})
    run_cli("fit", "--config", str(config))
    return config, tmp / "run"


@pytest.mark.slow
def test_checkpoints_hold_adapters_only(trained, tiny_model_dir):
    config, run = trained
    checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
    assert run / "checkpoints" / "last.ckpt" in checkpoints
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    keys = list(state["state_dict"])
    assert keys and all("lora_A" in k or "lora_B" in k for k in keys)
    assert state["global_step"] == 6 and state["optimizer_states"]
    assert state["diary_lightning"]["model"]["base_model"] == str(tiny_model_dir)
    # The prompt travels with the adapter.
    assert "Assistant:" in state["diary_lightning"]["prompt_template"]
    adapter_bytes = sum(v.numel() * v.element_size() for v in state["state_dict"].values())
    base_bytes = (tiny_model_dir / "model.safetensors").stat().st_size
    assert adapter_bytes < base_bytes / 4
    logs = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert logs


@pytest.mark.slow
def test_resume_continues_the_global_step(trained, tmp_path):
    config, run = trained
    # Another template configured: the resumed run trains on with the one its checkpoint was trained with.
    run_cli("fit", "--config", str(config), "--trainer.max_steps", "8", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
            "--data.prompt_template", "{dialogue}")
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 8
    assert "Assistant:" in state["diary_lightning"]["prompt_template"]


@pytest.mark.slow
def test_predict_writes_one_line_per_input(trained, tmp_path, sample_chats):
    config, run = trained
    output = tmp_path / "out" / "diaries.jsonl"
    run_cli("predict", "--config", str(config), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
            "--model.max_new_tokens", "8", "--output", str(output))
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    inputs = [json.loads(line)["id"] for line in sample_chats.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == inputs
    assert all(isinstance(r["diary"], str) for r in rows)
    assert not output.with_name("diaries.jsonl.partial").exists()


@pytest.mark.slow
def test_checkpoint_of_another_lora_shape_is_an_error(trained):
    config, run = trained
    with pytest.raises(AdapterMismatchError, match=r"LoRA r=4.*another shape|another shape"):
        run_cli("validate", "--config", str(config), "--model.lora_r", "4",
                "--ckpt_path", str(run / "checkpoints" / "last.ckpt"))


@pytest.mark.slow
def test_bad_data_stops_before_the_model_loads(make_config, tmp_path, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "dialogue": [], "summary": "x"}\n', encoding="utf-8")
    config = make_config(**{"data.paths": [str(bad)]})

    def fail(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr("diary_lightning.training.lora_module.build_model", fail)
    with pytest.raises(DataError, match=r"bad.jsonl, record 0 \(id 'a'\): no list of utterances"):
        run_cli("fit", "--config", str(config))

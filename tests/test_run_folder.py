"""One flag moves the whole run: checkpoints, logs, the adapter and predictions follow
``--trainer.default_root_dir``; a run never mixes its checkpoints with another's; a resumed fit logs into
the TensorBoard version it continues; commands that log nothing leave no version folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_cli, tiny_config

from diary_lightning.errors import ConfigError


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    """A fit from the tiny model's parent folder, with the base given as a relative path, moved by one flag."""
    tmp = tmp_path_factory.mktemp("moved")
    config = tiny_config(tmp, tiny_model_dir, **{"trainer.max_steps": 4, "trainer.val_check_interval": 2,
                                                 "trainer.log_every_n_steps": 1, "model.base_model": tiny_model_dir.name})
    root = tmp / "elsewhere"
    cwd = os.getcwd()
    os.chdir(tiny_model_dir.parent)
    try:
        run_cli("fit", "--config", str(config), "--trainer.default_root_dir", str(root))
    finally:
        os.chdir(cwd)
    return {"config": config, "root": root, "configured_root": tmp / "run"}


def _versions(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "tensorboard").iterdir())


@pytest.mark.slow
def test_default_root_dir_moves_checkpoints_logs_and_adapter(moved: dict[str, Any]) -> None:
    root = moved["root"]
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert (root / "checkpoints" / "adapter" / "adapter_model.safetensors").is_file()
    assert _versions(root) == ["version_0"]
    assert not moved["configured_root"].exists()  # the config's own default_root_dir stays untouched



@pytest.mark.slow
def test_tensorboard_opens_on_the_losses_without_lightnings_placeholder(moved: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(moved["root"] / "tensorboard" / "version_0"))
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"] and "hp_metric" not in events.Tags()["scalars"]
    # The Custom Scalars page's layout, the losses on one chart.
    assert "custom_scalars__config__" in events.Tags()["tensors"]


@pytest.mark.slow
def test_exported_adapter_records_a_local_base_as_given_and_finds_it_from_anywhere(
        moved: dict[str, Any], tiny_model_dir: Path) -> None:
    from diary_lightning.model.metadata import adapter_base_model

    adapter = moved["root"] / "checkpoints" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_model_dir.name  # as the config named it, relative
    settings = json.loads((adapter / "diary_lightning.json").read_text())
    assert settings["base_model_as_given"] == {"name": tiny_model_dir.name, "local": True}
    assert settings["model"]["base_model"] == str(tiny_model_dir.resolve())
    # From this test's working directory the relative name is no folder: the absolute path it had is used.
    assert not Path(tiny_model_dir.name).exists()
    assert adapter_base_model(adapter) == str(tiny_model_dir.resolve())
    card = (adapter / "README.md").read_text()
    assert f"`{tiny_model_dir.name}`, a local folder" in card and "base_model:" not in card.split("---")[1]


@pytest.mark.slow
def test_fit_into_a_folder_with_another_runs_checkpoints_is_refused(moved: dict[str, Any]) -> None:
    root = moved["root"]
    with pytest.raises(ConfigError) as error:
        run_cli("fit", "--config", str(moved["config"]), "--trainer.default_root_dir", str(root))
    message = str(error.value)
    assert str(root / "checkpoints") in message and "last.ckpt" in message
    assert "--trainer.default_root_dir" in message and "--ckpt_path last" in message


@pytest.mark.slow  # a fit, its resume, and four other commands
def test_resume_logs_into_the_same_version_and_other_commands_add_none(moved: dict[str, Any], tmp_path: Path,
                                                                         tiny_model_dir: Path) -> None:
    root, config = moved["root"], moved["config"]
    base = ["--config", str(config), "--trainer.default_root_dir", str(root), "--model.base_model", str(tiny_model_dir)]
    # From the step-2 checkpoint: the first run's steps 2 and 3 are superseded by the resumed ones.
    step2, = (root / "checkpoints").glob("step00002-*.ckpt")
    run_cli("fit", *base, "--trainer.max_steps", "6", "--ckpt_path", str(step2))
    state = torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 6
    assert _versions(root) == ["version_0"]

    from fits import scalars

    assert [step for step, _ in scalars(root, "train/loss")] == [0, 1, 2, 3, 4, 5]  # one curve, no step twice

    run_cli("predict", *base, "--ckpt_path", "last", "--model.max_new_tokens", "4")
    assert (root / "predictions.jsonl").is_file()
    # export on a CPU machine with a config that names a GPU: only the checkpoint's adapter is needed
    run_cli("export", *base, "--ckpt_path", "last", "--trainer.accelerator", "gpu", "--output", str(tmp_path / "a"))
    assert (tmp_path / "a" / "adapter_config.json").is_file()
    assert _versions(root) == ["version_0"]
    assert not (root / "lightning_logs").exists() and not (root / "config.yaml").exists()


@pytest.mark.slow
def test_export_and_predict_without_config_take_base_and_prompt_from_the_checkpoint(
        moved: dict[str, Any], tmp_path: Path, tiny_model_dir: Path) -> None:
    from diary_lightning.model.tiny import sample_data_path

    checkpoint = moved["root"] / "checkpoints" / "last.ckpt"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # elsewhere: the relative base of training would not resolve here
    try:
        run_cli("export", "--ckpt_path", str(checkpoint), "--output", "adapter")
        run_cli("predict", "--ckpt_path", str(checkpoint), "--data.predict_path", str(sample_data_path("sample_kakao.txt")),
                "--model.max_new_tokens", "4", "--output", "kakao.jsonl")
    finally:
        os.chdir(cwd)
    # The export spans two days: a diary for each.
    assert [json.loads(line)["id"] for line in (tmp_path / "kakao.jsonl").read_text().splitlines()] == [
        "sample_kakao_2024-01-05", "sample_kakao_2024-01-06"]
    adapter = tmp_path / "adapter"
    settings = json.loads((adapter / "diary_lightning.json").read_text())
    assert settings["model"]["base_model"] == str(tiny_model_dir.resolve())
    # Settings travel with the run: the generation settings it trained and validated with, not the defaults.
    assert settings["generation"]["max_new_tokens"] == 64
    assert settings["base_fingerprint"]["name"] == str(tiny_model_dir.resolve())
    assert settings["model"]["compute_dtype"] == "float32" and settings["max_length"] == 512  # tiny.yaml's
    assert "Assistant:" in settings["prompt_template"]  # the checkpoint's prompt, not a default
    assert (adapter / "tokenizer_config.json").is_file()
    assert not (tmp_path / "lightning_logs").exists()

"""The run's settings: one typed object, saved as it always was, adopted by the data module in one call."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

from diary_lightning.data.encoding import PromptFormat
from diary_lightning.data.records import Dialogue, ReadResult, Turn
from diary_lightning.data.roles import with_writers
from diary_lightning.model.generation import GenerationSettings
from diary_lightning.model.metadata import RunMetadata
from diary_lightning.model.settings import RunFolder, RunSettings


def test_with_writers_leaves_its_argument_as_it_was() -> None:
    speaks = Dialogue("a", (Turn("민지", "안녕"), Turn("준호", "응")))
    silent = Dialogue("b", (Turn("준호", "응"),))
    result = ReadResult([speaks, silent])
    chosen = with_writers(result, ("민지",), (), skip_invalid=True)
    assert [d.writer for d in chosen.dialogues] == ["민지"] and chosen.skipped == Counter({"writer does not speak": 1})
    assert result.dialogues == [speaks, silent] and not result.skipped and not result.problems
    assert not result.writer_chosen_by


def test_the_settings_keep_the_layout_readers_of_diary_lightning_json_know() -> None:
    settings = RunSettings(PromptFormat(writer=("민지", "first")), 512, GenerationSettings(max_new_tokens=64))
    saved = RunMetadata(settings, base_model="/m").to_dict()
    assert saved["writer"] == ["민지", "first"] and saved["max_length"] == 512  # the prompt at the top
    assert saved["generation"]["max_new_tokens"] == 64 and saved["model"] == {"base_model": "/m"}
    assert RunMetadata.from_dict(saved).settings == settings
    # Written without a data module: no prompt, read back as none rather than a default one.
    assert RunSettings.from_dict(RunSettings().to_dict()).prompt is None


def test_an_adapters_settings_replace_the_configured_prompt_and_max_length(tiny_model_dir: Path) -> None:
    from diary_lightning.training.datamodule import DiaryDataModule

    trained = RunSettings(PromptFormat("{dialogue}", "keep", writer=("P02",), bots=("봇",)), 300)
    default, given = (DiaryDataModule(tokenizer=str(tiny_model_dir), writer=writer) for writer in (None, "민지"))
    for data in (default, given):
        data.adopt(trained, max_length=True)
        assert (data.prompt_format.template, data.prompt_format.anonymization, data.max_length) == ("{dialogue}", "keep", 300)
        assert data.prompt_format.bots == ("봇",)
    assert default.prompt_format.writer == ("P02",) and given.prompt_format.writer == ("민지",)
    checkpoint = DiaryDataModule(tokenizer=str(tiny_model_dir), max_length=200)
    checkpoint.adopt(trained)
    assert checkpoint.max_length == 200  # a checkpoint's max_length only when asked for


def test_the_run_folder_names_derive_from_its_root_and_checkpoint_folder() -> None:
    folder = RunFolder.at("runs/a")
    assert (folder.last_checkpoint, folder.fit_adapter) == (Path("runs/a/checkpoints/last.ckpt"),
                                                            Path("runs/a/checkpoints/adapter"))
    assert (folder.exported_adapter, folder.predictions) == (Path("runs/a/adapter"), Path("runs/a/predictions.jsonl"))
    assert RunFolder.at("runs/a", "/ckpts").last_checkpoint == Path("/ckpts/last.ckpt")


def test_a_runs_recorded_settings_become_the_command_lines_defaults(tmp_path: Path) -> None:
    import pytest
    import torch
    from jsonargparse import Namespace

    from diary_lightning.cli.commands import recorded_run, run_defaults
    from diary_lightning.errors import ConfigError

    settings = RunSettings(PromptFormat(), 300, GenerationSettings(max_new_tokens=64))
    metadata = RunMetadata(settings, base_model="/base", loading={"load_in_4bit": False},
                           lora={"r": 4, "alpha": 8, "target_modules": "all-linear"})
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"diary_lightning": metadata.to_dict()}, ckpt)

    def config(ckpt_path: str | None, adapter_path: str | None = None) -> Namespace:
        return Namespace(ckpt_path=ckpt_path, model=Namespace(adapter_path=adapter_path, base_model=None),
                         trainer=Namespace(default_root_dir=str(tmp_path / "run"), callbacks=None))

    read, source, base = recorded_run(config("last"))
    assert (read, source, base) == (metadata, str(ckpt), "/base")
    defaults = run_defaults(read, base)
    assert defaults["model.max_new_tokens"] == 64 and defaults["data.max_length"] == 300
    assert (defaults["model.lora_r"], defaults["model.target_modules"], defaults["model.load_in_4bit"],
            defaults["model.base_model"]) == (4, "all-linear", False, "/base")
    # Every default names an option of the model or the data module.
    from diary_lightning.training.datamodule import DiaryDataModule
    from diary_lightning.training.lora_module import DiaryLoRAModule

    options = {f"model.{name}" for name in inspect.signature(DiaryLoRAModule).parameters} | {
        f"data.{name}" for name in inspect.signature(DiaryDataModule).parameters}
    assert set(defaults) <= options
    assert recorded_run(config(None)) is None
    with pytest.raises(ConfigError, match="give --ckpt_path or --model.adapter_path, not both"):
        recorded_run(config(str(ckpt), "adapter"))
    with pytest.raises(FileNotFoundError, match="--ckpt_path nowhere.ckpt: no such checkpoint"):
        recorded_run(config("nowhere.ckpt"))

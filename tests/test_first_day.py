"""The first day with a real chat (issue 23): errors that point the way, checks before the model loads,
settings that travel with the run, and what the data lost said by preprocess too."""

from __future__ import annotations

import pytest
from conftest import run_cli

from diary_lightning.errors import ConfigError


# -- the command line: options in full, a mistake in one line ---------------------------------------------------
def test_an_abbreviated_option_is_refused_naming_the_full_one(make_config):
    # argparse took --trainer.max_step for --trainer.max_steps, without a word.
    with pytest.raises(ConfigError, match=r"^unknown option --trainer\.max_step; did you mean --trainer\.max_steps\?"):
        run_cli("fit", "--config", str(make_config()), "--trainer.max_step", "10")


def test_a_typo_is_one_line_with_the_closest_option_and_no_usage(make_config, capsys):
    from diary_lightning.cli.commands import main

    with pytest.raises(SystemExit) as stopped:
        main(["preprocess", "--config", str(make_config()), "--model.lora_rr", "8"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err
    first, *rest = [line for line in err.splitlines() if line.startswith("error:")]
    assert not rest
    assert first == ("error: unknown option --model.lora_rr; did you mean --model.lora_r? "
                     "(all options: python -m diary_lightning preprocess --help)")


def test_help_still_shows_the_usage(capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli("predict", "--help")
    assert stopped.value.code in (0, None)
    assert "usage: python -m diary_lightning [options] predict" in capsys.readouterr().out


@pytest.mark.parametrize("args, missing", [
    (["fit"], "fit needs data.paths and model.base_model"),
    (["preprocess", "--model.base_model", "m"], "preprocess needs data.paths,"),
    (["predict", "--ckpt_path", "run.ckpt"], "predict needs data.predict_path,"),
])
def test_without_a_config_the_error_says_a_config_was_left_out(args, missing):
    with pytest.raises(ConfigError, match=rf"^{missing}.* and no --config was given: add the run's config "
                                          r"\(--config configs/tiny\.yaml"):
        run_cli(*args)


@pytest.mark.slow
def test_a_max_length_over_the_base_models_positions_is_refused_before_its_weights_load(make_config, monkeypatch):
    import diary_lightning.training.lora_module as lora_module

    monkeypatch.setattr(lora_module, "build_model", lambda *a: pytest.fail("the weights were loaded first"))
    with pytest.raises(ConfigError, match=r"^data\.max_length=4096 is over the 2048 positions of the base model .*"
                                          r"set data\.max_length to 2048 or less"):
        run_cli("fit", "--config", str(make_config(**{"data.max_length": 4096})))


# -- preprocess says what max_length cost, as fit does ----------------------------------------------------------
@pytest.mark.slow
def test_preprocess_names_the_file_whose_dialogues_are_too_long(make_config, tmp_path, caplog, capsys):
    import json
    import logging

    from conftest import sample_data_path

    long = tmp_path / "long.jsonl"
    long.write_text("".join(json.dumps({"id": f"long-{i}", "summary": "오늘은 길었다.", "dialogue": [
        {"speaker": "A", "text": "오늘 뭐 했어?"}, {"speaker": "B", "text": "회사 일이 많았어 " * 120}]},
        ensure_ascii=False) + "\n" for i in range(20)), encoding="utf-8")
    config = make_config(**{"data.paths": [str(sample_data_path()), str(long)]})
    with caplog.at_level(logging.INFO):
        run_cli("preprocess", "--config", str(config))
    summary = json.loads(capsys.readouterr().out)
    assert summary["too_long_by_file"] == {str(long): 20}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{long}: 20 of its 20 dialogues (100%) do not fit data.max_length=512 and were dropped; " \
           "raise data.max_length to keep them" in warned, warned
    assert not any(str(sample_data_path()) in w for w in warned), warned


@pytest.mark.slow
def test_preprocess_warns_about_dialogues_too_long(make_config, caplog, capsys):
    import logging

    with caplog.at_level(logging.INFO):
        run_cli("preprocess", "--config", str(make_config(**{"data.max_length": 190})))
    assert "preprocess: too long train" in caplog.text
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("train dialogues" in w and "do not fit data.max_length=190" in w and "raise data.max_length" in w
               for w in warned), warned


# -- the base model an adapter was trained on -------------------------------------------------------------------
def _fake_checkpoint(module) -> dict:
    from diary_lightning.model.metadata import CHECKPOINT_KEY
    from diary_lightning.model.settings import RunSettings

    return {CHECKPOINT_KEY: module.run_metadata(RunSettings(None, 512, module.generation), module.base_fingerprint).to_dict(),
            "state_dict": module.adapter_state_dict()}


def test_a_base_of_the_same_shape_but_other_weights_is_refused_naming_both(tiny_model_dir, tmp_path):
    from conftest import lora_module

    from diary_lightning.model.loading import check_adapter_checkpoint
    from diary_lightning.model.metadata import BaseMismatchError
    from diary_lightning.model.tiny import build_tiny_model

    trained = lora_module(tiny_model_dir, load_in_4bit=False)
    checkpoint = _fake_checkpoint(trained)
    other_dir = build_tiny_model(tmp_path / "other", seed=1)  # the same shape, other weights
    other = lora_module(other_dir, load_in_4bit=False)
    assert other.base_fingerprint.config == trained.base_fingerprint.config
    with pytest.raises(BaseMismatchError, match="other weights") as refused:
        check_adapter_checkpoint(checkpoint, other.hparams, other.base_fingerprint, other.adapter_state_dict())
    assert str(tiny_model_dir) in str(refused.value) and str(other_dir) in str(refused.value)
    assert "--model.allow_other_base true" in str(refused.value)
    allowed = lora_module(other_dir, load_in_4bit=False, allow_other_base=True)
    check_adapter_checkpoint(checkpoint, allowed.hparams, allowed.base_fingerprint, allowed.adapter_state_dict())
    # The same base loaded in 4 bits has the same fingerprint: a 4-bit fit loads on a 16-bit service.
    assert lora_module(tiny_model_dir, load_in_4bit=True).base_fingerprint == trained.base_fingerprint


def test_the_checkpoint_metadata_round_trips_and_reads_format_1():
    from diary_lightning.model.generation import GenerationSettings
    from diary_lightning.data.encoding import PromptFormat
    from diary_lightning.model.metadata import BaseFingerprint, RunMetadata
    from diary_lightning.model.settings import RunSettings

    settings = RunSettings(PromptFormat.from_settings({"prompt_template": "{dialogue}", "anonymization": "keep"}),
                           256, GenerationSettings(max_new_tokens=64))
    metadata = RunMetadata(settings, base_model="/m",
                           loading={"load_in_4bit": True}, lora={"r": 8, "alpha": 16, "target_modules": "all-linear"},
                           fingerprint=BaseFingerprint("/m", {"hidden_size": 64}, "abc"), log_version=3)
    assert RunMetadata.from_checkpoint({"diary_lightning": metadata.to_dict()}) == metadata
    old = RunMetadata.from_checkpoint({
        "diary_lightning": {"base_model": "m", "base_identity": {"hidden_size": 64}, "lora": {"r": 8}},
        "diary_lightning_run": {"base_model": "/abs/m", "model": {"load_in_4bit": True}, "max_length": 512,
                                "log_version": 0},
        "DiaryDataModule": {"prompt_template": "{dialogue}", "anonymization": "keep"}})
    assert (old.base_model, old.settings.max_length, old.log_version, old.format_version) == ("/abs/m", 512, 0, 1)
    assert old.settings.prompt.template == "{dialogue}" and old.fingerprint.weights is None


# -- predict reads every input before the model loads ------------------------------------------------------------
@pytest.mark.parametrize("problem", ["writer", "file"])
def test_predict_checks_its_chats_before_loading_the_model(make_config, tmp_path, monkeypatch, problem):
    from diary_lightning.data.records import DataError
    from diary_lightning.training import lora_module

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the chats were checked")

    monkeypatch.setattr(lora_module, "build_model", no_model)
    chat = tmp_path / "chat.txt"
    chat.write_text("준호: 잘 들어갔어?\n민지: 응 방금 도착했어\n" if problem == "writer" else "준호 잘 들어갔어?\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match="does not speak" if problem == "writer" else "no 'speaker:'"):
        run_cli("predict", "--config", str(make_config()), "--zero_shot", "true", "--data.predict_path", str(chat),
                "--data.writer", "수아", "--output", str(tmp_path / "out.jsonl"))

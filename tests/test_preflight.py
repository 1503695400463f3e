"""A newcomer's mistakes on the command line, answered before torch is imported (diary_lightning/cli/preflight.py):
every problem at once, the file it is in, the closest known name."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, subprocess_env

from diary_lightning.cli import preflight
from diary_lightning.cli.preflight import check_command_line
from diary_lightning.errors import ConfigError

TINY = str(ROOT / "configs" / "tiny.yaml")


def problems_of(*argv: str) -> str:
    with pytest.raises(ConfigError) as refused:
        check_command_line(list(argv))
    return str(refused.value)


def test_a_misspelt_subcommand_gets_the_closest_and_the_whole_list() -> None:
    message = problems_of("predcit", "--config", TINY)
    assert message.startswith("unknown subcommand 'predcit'; did you mean predict?")
    for name in ("fit", "validate", "test", "predict", "preprocess", "export", "synthesize", "merge", "evaluate", "app"):
        assert name in message.split("subcommands:")[1]


def test_every_misspelt_option_is_named_at_once_with_its_closest() -> None:
    lines = problems_of("fit", "--config", TINY, "--model.lora_rr", "8", "--trainer.max_step", "3",
                        "--data.batchsize=2", "--ckpt-path", "x").splitlines()
    assert lines == ["unknown option --model.lora_rr; did you mean --model.lora_r?",
                     "unknown option --trainer.max_step; did you mean --trainer.max_steps?",
                     "unknown option --data.batchsize; did you mean --data.batch_size?",
                     "unknown option --ckpt-path; did you mean --ckpt_path? "
                     "(all options: python -m diary_lightning fit --help)"]


def test_bad_keys_of_a_config_file_are_named_with_the_file(tmp_path: Path) -> None:
    config = yaml.safe_load(Path(TINY).read_text())
    config["model"]["lora_rank"] = 8
    config["data"]["bach_size"] = 2
    config["trainr"] = {"max_steps": 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    lines = problems_of("fit", "--config", str(bad)).split(" (all options")[0].splitlines()
    assert sorted(lines) == [f"{bad}: unknown key data.bach_size; did you mean data.batch_size?",
                             f"{bad}: unknown key model.lora_rank; did you mean model.lora_r?",
                             f"{bad}: unknown key trainr; did you mean trainer?"]


def test_a_missing_config_file_is_named() -> None:
    assert problems_of("fit", "--config", "configs/tiyn.yaml").startswith("--config configs/tiyn.yaml: no such file")


def test_a_missing_predict_input_is_named_as_the_predict_input(tmp_path: Path) -> None:
    assert problems_of("predict", "--config", TINY, "--data.predict_path", "chats.jsnol").startswith(
        "--data.predict_path chats.jsnol: no such file or folder (the chats to write diaries for")
    config = tmp_path / "predict.yaml"
    config.write_text(yaml.safe_dump({"data": {"predict_path": str(tmp_path / "gone.jsonl")}}))
    assert problems_of("predict", "--config", str(config)).startswith(
        f"{config}: data.predict_path {tmp_path / 'gone.jsonl'}: no such file or folder")


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_configs_and_good_options_pass(config: Path) -> None:
    check_command_line(["fit", "--config", str(config), "--trainer.max_steps", "3", "--model.lora_r=8",
                        "--data.writer", "민지", "--ckpt_path", "last", "--trainer.callbacks+=LearningRateMonitor",
                        "--seed_everything", "1", "--print_config"])
    check_command_line(["predict", "--config", str(config), "--data.predict_path",
                        str(ROOT / "diary_lightning" / "resources" / "sample_kakao.txt"), "--output", "x.jsonl",
                        "--zero_shot", "true", "--model.max_new_tokens", "8"])
    check_command_line(["merge", "--adapter_path", "anything", "--dtype", "float32"])  # merge's own parser


def test_what_it_knows_is_what_the_parser_knows() -> None:
    from lightning.pytorch import Trainer

    from diary_lightning.cli.commands import DiaryCLI
    from diary_lightning.training.datamodule import DiaryDataModule
    from diary_lightning.training.lora_module import DiaryLoRAModule

    def parameters(function) -> set[str]:
        return set(inspect.signature(function).parameters) - {"self"}

    known = preflight.known_settings()
    assert known["model"] == parameters(DiaryLoRAModule.__init__)
    assert known["data"] == parameters(DiaryDataModule.__init__)
    assert known["trainer"] == parameters(Trainer.__init__)
    assert set(DiaryCLI.subcommands()) <= set(preflight.subcommands())
    assert set(DiaryCLI.plain_subcommands(None)) == set(preflight.PLAIN_SUBCOMMANDS)
    # Each subcommand's own options (--output, --resume_predictions, ...) are its method's parameters.
    from diary_lightning.cli.commands import DiaryTrainer

    for method in ("fit", "validate", "test", "predict", "preprocess", "export"):
        assert parameters(getattr(DiaryTrainer, method)) <= preflight.top_level_options(), method


def test_a_typo_is_answered_without_importing_torch() -> None:
    # python -m diary_lightning as a user runs it, with torch made unimportable: the answer needs none of it
    # (and the interpreter starts in well under a second without it, so this stays in the fast lane).
    code = ("import runpy, sys\n"
            "for blocked in ('torch', 'lightning', 'transformers'): sys.modules[blocked] = None\n"
            "sys.argv = ['diary_lightning', 'fit', '--config', 'configs/tiny.yaml', '--model.lora_rr', '8']\n"
            "runpy.run_module('diary_lightning', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "error: unknown option --model.lora_rr; did you mean --model.lora_r?" in done.stderr

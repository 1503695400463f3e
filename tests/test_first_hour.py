"""A new user's first hour: errors they cause end with the message and status 2; zero-shot is a choice;
the user's chat is never overwritten; Ctrl-C saves and says how to go on; the console shows what is true."""

from __future__ import annotations

import logging
import shlex
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import run_cli, subprocess_env
from fits import finish, fit_config, run_dir, saved_step, start_fit

from diary_lightning.errors import DEBUG_ENV, ConfigError


def _cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = subprocess_env(**(env or {}))
    if DEBUG_ENV not in (env or {}):
        environment.pop(DEBUG_ENV, None)
    return subprocess.run([sys.executable, "-m", "diary_lightning", *args], capture_output=True, text=True,
                          cwd=cwd, env=environment, timeout=600)


# -- user errors: the message, exit status 2, no traceback ------------------------------------------------------
@pytest.mark.slow  # two fresh interpreters that import Lightning
def test_bad_data_exits_2_with_the_message_and_no_traceback(make_config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "dialogue": [], "summary": "x"}\n', encoding="utf-8")
    config = make_config(**{"data.paths": [str(bad)]})
    done = _cli("preprocess", "--config", str(config))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "bad.jsonl, record 0 (id 'a'): no list of utterances" in done.stderr
    assert "Traceback" not in done.stderr
    debug = _cli("preprocess", "--config", str(config), env={DEBUG_ENV: "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_yaml_syntax_error_names_the_file(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  max_steps: [1\nmodel:\n  base_model: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{config}, line \d+, column \d+: not valid YAML"):
        run_cli("fit", "--config", str(config))


@pytest.mark.slow
def test_missing_local_model_is_named_with_the_working_directory(make_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(**{"model.base_model": "runs/no-such-model"})
    # Offline, transformers would end in "couldn't connect to huggingface.co"; the path is named instead.
    with pytest.raises(FileNotFoundError, match=rf"'runs/no-such-model': no such folder \(resolved from the working "
                                                rf"directory {tmp_path}"):
        run_cli("preprocess", "--config", str(config))
    config = make_config(**{"model.base_model": "./models/typo"})
    with pytest.raises(FileNotFoundError, match=r"'./models/typo': no such folder"):
        run_cli("preprocess", "--config", str(config))


def test_a_missing_data_path_names_the_working_directory_it_was_resolved_from(tmp_path, monkeypatch):
    from diary_lightning.data.dialogue import read_dialogues
    from diary_lightning.data.records import DataError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=rf"data/typo.json.*no such file or directory \(resolved from the working "
                                        rf"directory {tmp_path}\)"):
        read_dialogues(["data/typo.json"])
    with pytest.raises(DataError, match=r"typo.json: no such file or directory\n"):
        read_dialogues([str(tmp_path / "typo.json")])  # absolute: nothing was resolved


def test_a_missing_folder_under_an_existing_one_never_asks_the_hub(tmp_path, monkeypatch):
    from diary_lightning.model.loading import load_pretrained

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()

    def hub(name):
        raise AssertionError(f"asked the Hub for {name}")

    with pytest.raises(FileNotFoundError, match=r"model.base_model='runs/typo': no such folder \(resolved"):
        load_pretrained(hub, "runs/typo", "model.base_model")
    # Without a ./runs folder the name may be a Hub id, and is tried there.
    with pytest.raises(AssertionError, match="asked the Hub for owner/name"):
        load_pretrained(hub, "owner/name", "model.base_model")


# -- zero-shot is a choice; the input is never the output --------------------------------------------------------
@pytest.mark.slow
def test_predict_without_adapter_is_refused_unless_zero_shot(make_config, tmp_path, sample_chats, caplog):
    caplog.set_level(logging.INFO, logger="diary_lightning")
    config = make_config()
    with pytest.raises(ConfigError, match=r"--ckpt_path CKPT.*--model.adapter_path DIR.*--zero_shot true"):
        run_cli("predict", "--config", str(config), "--output", str(tmp_path / "out.jsonl"))
    assert not (tmp_path / "out.jsonl").exists()
    run_cli("predict", "--config", str(config), "--zero_shot", "true", "--model.max_new_tokens", "2",
            "--output", str(tmp_path / "out.jsonl"))
    assert "zero-shot: writing with the base model" in caplog.text
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(written) == len(sample_chats.read_text(encoding="utf-8").splitlines())


def test_output_equal_to_the_input_is_refused(make_config, tmp_path):
    chat = tmp_path / "chat.txt"
    chat.write_text("P01: 오늘 비 왔어\nP02: 우산은?\n", encoding="utf-8")
    config = make_config()
    with pytest.raises(ValueError, match=r"--output .*chat.txt is the input --data.predict_path"):
        run_cli("predict", "--config", str(config), "--zero_shot", "true", "--data.predict_path", str(chat),
                "--output", str(chat))
    assert chat.read_text(encoding="utf-8") == "P01: 오늘 비 왔어\nP02: 우산은?\n"


# -- data that does not fit -------------------------------------------------------------------------------------
def test_too_long_counts_and_warning():
    from diary_lightning.data.prepare import DataReport, too_long

    report = DataReport(splits={"train": 90, "val": 2, "test": 10}, too_long_dropped={"train": 1, "val": 8, "test": 0})
    line, warnings_ = too_long(report, 512)
    assert "train 1 of 91, val 8 of 10, test 0 of 10" in line
    assert warnings_ == ["8 of 10 val dialogues (80%) do not fit data.max_length=512 and were dropped; "
                         "raise data.max_length to keep them"]


def test_data_with_every_record_dropped_is_an_error(make_config):
    from diary_lightning.data.records import DataError

    config = make_config(**{"data.max_length": 16})
    with pytest.raises(DataError, match=r"no dialogue is left.*longer than data.max_length=16"):
        run_cli("preprocess", "--config", str(config))


def test_preprocess_does_not_need_the_configs_gpu(make_config, capsys):
    config = make_config(**{"trainer.accelerator": "gpu", "trainer.precision": "bf16-mixed"})
    run_cli("preprocess", "--config", str(config))
    assert '"dialogues"' in capsys.readouterr().out


# -- Ctrl-C ------------------------------------------------------------------------------------------------------
def test_second_ctrl_c_stops_at_once():
    from diary_lightning.training.checkpointing import CheckpointOnSigterm

    callback = CheckpointOnSigterm()
    callback._note(signal.SIGINT, None)
    assert callback.requested
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            callback._note(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_ctrl_c_saves_and_prints_the_resume_command(tmp_path, tiny_model_dir):
    config = fit_config(tmp_path, tiny_model_dir, "interrupted")
    # Ctrl-C as the step-2 checkpoint lands (tests/faults.py), not raced from outside against a fast fit: the
    # save waits for the end of step 3.
    process = start_fit(config, signal_at="checkpoint-saved@1", signal="INT")
    last = run_dir(config) / "checkpoints" / "last.ckpt"
    err = finish(process, returncode=130)
    assert "SIGINT received" in err
    python = "python" if Path(shutil.which("python") or "").resolve() == Path(sys.executable).resolve() else sys.executable
    command = shlex.join([python, "-m", "diary_lightning", "fit", "--config", str(config), "--ckpt_path", "last"])
    assert command in err
    assert saved_step(last) == 3


# -- the console -------------------------------------------------------------------------------------------------
def test_progress_bar_under_max_steps_shows_no_negative_epoch(tmp_path):
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger

    from diary_lightning.cli.console import progress_bar

    bar = progress_bar()
    trainer = Trainer(max_steps=150, callbacks=[bar], logger=CSVLogger(tmp_path, version=0),
                      enable_checkpointing=False, enable_model_summary=False)
    bar._trainer = trainer  # what Lightning's setup does
    trainer.fit_loop.max_epochs = -1  # what fit makes of max_steps without max_epochs
    # Lightning's own bar reads "Epoch 11/-2" here.
    assert bar._get_train_description(11).strip() == "Epoch 11"
    metrics = bar.get_metrics(trainer, None)
    assert metrics["step"] == "0/150" and "v_num" not in metrics  # Lightning's shows "v_num: 0.000"


def test_the_progress_bar_shows_no_speed_it_has_not_measured():
    from types import SimpleNamespace

    from lightning.pytorch import Trainer

    from diary_lightning.cli.console import SpeedColumn, progress_bar

    bar = progress_bar()
    [column] = [c for c in bar.configure_columns(Trainer(logger=False)) if "Speed" in type(c).__name__]
    assert isinstance(column, SpeedColumn)
    # One batch (the four-chat fit's epochs, a small predict): rich has no speed yet; Lightning's column says 0.00it/s.
    assert column.render(SimpleNamespace(speed=None)).plain == ""
    assert column.render(SimpleNamespace(speed=12.345)).plain == "12.35it/s"
    assert column.render(SimpleNamespace(speed=0.4)).plain == "2.5s/it"  # a CPU generating: seconds a batch


def test_tqdm_bars_done_within_two_seconds_do_not_show():
    # A fresh interpreter: tqdm reads its environment once, when first imported, as under python -m diary_lightning.
    script = ("import time\nfrom diary_lightning.__main__ import delay_progress_bars\ndelay_progress_bars()\n"
              "from tqdm import tqdm\nfor _ in tqdm(range(3), desc='fast'): pass\n"
              "for _ in tqdm(range(2), desc='slow', mininterval=0): time.sleep(1.5)\n")
    env = {k: v for k, v in subprocess_env().items() if k != "TQDM_DELAY"}
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env).stderr
    assert "fast" not in shown and "slow" in shown


def test_known_noise_is_silenced_but_not_the_autograd_warning(caplog):
    from diary_lightning.cli.console import silence_known_noise

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_noise()
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'.")
        logging.getLogger("lightning.pytorch.utilities.rank_zero").info("💡 Tip: try installing litlogger")
        for line in ("GPU available: False, used: False", "TPU available: False, using: 0 TPU cores",
                     "GPU available: True (cuda), used: False"):
            logging.getLogger("lightning.pytorch.utilities.rank_zero").warning(line)
        warnings.warn_explicit("`is_gradient_checkpointing` is deprecated", FutureWarning, "modeling_utils.py", 1,
                               module="transformers.modeling_utils")
        warnings.warn_explicit("bitsandbytes::gemv_4bit: an autograd kernel was not registered", UserWarning,
                               "graph.py", 1, module="torch.autograd.graph")
    assert "kernels" not in caplog.text and "Tip" not in caplog.text
    # Nothing to report on a CPU; a GPU left unused is still said.
    assert "False, used: False" not in caplog.text and "TPU" not in caplog.text
    assert "GPU available: True (cuda), used: False" in caplog.text
    assert [str(w.message) for w in caught] == ["bitsandbytes::gemv_4bit: an autograd kernel was not registered"]


# -- "best checkpoint" means what --ckpt_path best finds ----------------------------------------------------------
def test_best_without_validation_is_the_last_checkpoint(tmp_path):
    from types import SimpleNamespace

    from diary_lightning.cli.commands import resolve_checkpoint

    last = tmp_path / "last.ckpt"
    # What a fit without validation leaves: the monitored ModelCheckpoint ranked nothing.
    torch.save({"callbacks": {"ModelCheckpoint{'monitor': 'val/loss'}": {"best_model_path": ""}}}, last)
    trainer = SimpleNamespace(checkpoint_callback=SimpleNamespace(best_model_path="", dirpath=str(tmp_path)))
    assert resolve_checkpoint("best", trainer) == str(last)
    torch.save({"callbacks": {"ModelCheckpoint{'monitor': 'val/loss'}": {"best_model_path": "/x/step2.ckpt"}}}, last)
    assert resolve_checkpoint("best", trainer) == "/x/step2.ckpt"


def test_which_errors_are_the_users():
    import json

    from diary_lightning.data.records import DataError
    from diary_lightning.errors import is_user_error
    from diary_lightning.model.loading import AdapterMismatchError
    from diary_lightning.training.lora_module import DiaryLoRAModule

    assert is_user_error(AdapterMismatchError("another base")) and is_user_error(DataError([]))
    assert is_user_error(FileNotFoundError("no such checkpoint")) and is_user_error(ConfigError("bad"))
    with pytest.raises(ValueError) as ours:
        DiaryLoRAModule("m", optimizer="sgd")  # a setting the package refuses
    assert is_user_error(ours.value)
    with pytest.raises(ValueError) as library:
        json.loads("{")  # a library's ValueError is a bug to report, with its traceback
    assert not is_user_error(library.value)

"""Issue 22: what the OS refuses (a full or read-only disk, no permission), a refused pickle and hostile text in a
message reach the user as one clear message with exit status 2, never a traceback, and nothing is half-written."""

from __future__ import annotations

import errno
import logging
import os
import pickle

import pytest
import torch

from diary_lightning.io.atomic import atomic_directory, atomic_file, write_text
from diary_lightning.errors import DEBUG_ENV, PrintableFormatter, UserError, printable, run_reporting_user_errors


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def reported(capsys, fn, *args) -> str:
    with pytest.raises(SystemExit) as stopped:
        run_reporting_user_errors(fn, *args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("code, advice", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"),
                                          (errno.EACCES, "permission denied"), (errno.EDQUOT, "quota")])
def test_an_os_error_while_writing_is_one_message_and_the_old_file_stays(tmp_path, capsys, code, advice):
    path = tmp_path / "predictions.jsonl"
    write_text(path, "old\n")

    def write():
        with atomic_file(path, "w", encoding="utf-8") as f:
            f.write("new, half")
            raise OSError(code, os.strerror(code))  # what f.write raises when the disk refuses

    err = reported(capsys, write)
    assert str(path) in err and advice in err.lower() and errno.errorcode[code] in err and "half-written" in err
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]


def test_a_full_disk_while_publishing_a_folder_names_the_folder(tmp_path, capsys):
    target = tmp_path / "adapter"

    def export():
        with atomic_directory(target) as tmp:
            (tmp / "weights").write_text("w")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    err = reported(capsys, export)
    assert str(target) in err and "disk is full" in err
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_checkpoint_save_is_the_disk_message_not_torchs(tmp_path, capsys, monkeypatch):
    """torch.save reports its file's failed write as a RuntimeError of its zip writer; the user must read that
    the disk is full, and where, and keep the previous checkpoint."""
    import diary_lightning.io.atomic as atomic
    from diary_lightning.training.checkpointing import SafeCheckpointIO

    path = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"global_step": 1}, path)
    fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(atomic.os, "fdopen", lambda *a, **k: FullDisk(fdopen(*a, **k)))
    err = reported(capsys, SafeCheckpointIO().save_checkpoint, {"global_step": 2, "w": torch.zeros(10_000)}, path)
    assert "disk is full" in err and str(path) in err and "unexpected pos" not in err
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_unreadable_file_is_the_one_message(tmp_path, capsys):
    from diary_lightning.data.cache import files_digest

    path = tmp_path / "chats.jsonl"
    path.write_text("{}\n")

    def digest():
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))  # as open() does for root too

    err = reported(capsys, digest)
    assert str(path) in err and "permission denied" in err.lower()
    assert files_digest([path])  # readable: no error


class _Runs:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("name", ["last.ckpt", "adapter_model.bin", "pytorch_model.bin"])
def test_a_refused_pickle_says_which_file_and_why(tmp_path, capsys, name):
    path = tmp_path / name
    torch.save({"state_dict": {"w": _Runs()}}, path)
    err = reported(capsys, lambda: torch.load(path, map_location="cpu", weights_only=True))
    assert str(path) in err and "refused" in err and "GLOBAL posix.system" in err and "pwned" not in err


def test_a_refused_pickle_inside_transformers_names_the_base_models_file(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, LlamaConfig

    LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1).save_pretrained(tmp_path)
    torch.save({"model.embed_tokens.weight": _Runs()}, tmp_path / "pytorch_model.bin")
    err = reported(capsys, AutoModelForCausalLM.from_pretrained, str(tmp_path))
    assert str(tmp_path / "pytorch_model.bin") in err and "refused" in err


def test_a_library_error_keeps_its_traceback():
    with pytest.raises(pickle.PicklingError):
        run_reporting_user_errors(lambda: (_ for _ in ()).throw(pickle.PicklingError("bug")))


def test_terminal_control_characters_are_escaped_in_messages_and_logs(capsys):
    hostile = "d\x1b[2J\x1b]0;owned\x07\u202eid"
    assert printable(hostile) == "d\\x1b[2J\\x1b]0;owned\\x07\\u202eid"
    assert printable("두 줄\n\t그대로") == "두 줄\n\t그대로"
    err = reported(capsys, lambda: (_ for _ in ()).throw(UserError(f"record {hostile}: bad")))
    assert "\x1b" not in err and "\\x1b[2J" in err

    logger = logging.getLogger("diary_lightning.test_escape")
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(message)s"))
    logger.addHandler(handler)
    try:
        logger.warning("dialogue %s: skipped", hostile)
    finally:
        logger.removeHandler(handler)
    logged = capsys.readouterr().err
    assert "\x1b" not in logged and "\u202e" not in logged and "\\x1b]0;owned" in logged



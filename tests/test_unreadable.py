"""Issue 22: an unreadable file or folder is the same error in every subcommand that reads data, or, with
data.skip_invalid, a warning and a count; never dialogues lost in silence. (Root reads everything, so the
denial is made by the operating system for other users and by a patched os.scandir/open for root.)"""

from __future__ import annotations

import builtins
import errno
import json
import os
import pathlib
from pathlib import Path

import pytest

from conftest import run_cli
from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.records import DataError


def record(i: int) -> str:
    return json.dumps({"id": f"r{i}", "dialogue": [{"speaker": "A", "text": f"오늘 {i}번 웃었어"},
                                                   {"speaker": "B", "text": "좋았겠다"}],
                       "summary": f"{i}번 웃었다."}, ensure_ascii=False) + "\n"


@pytest.fixture
def deny(monkeypatch):
    """Make a path unreadable: chmod for a user, the OS calls refusing it for root."""
    denied: list[str] = []

    def refuse(path):
        if isinstance(path, (str, os.PathLike)) and any(os.fspath(path).startswith(d) for d in denied):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    real_scandir, real_open, real_read_bytes = os.scandir, builtins.open, pathlib.Path.read_bytes
    monkeypatch.setattr(os, "scandir", lambda path=".": (refuse(path), real_scandir(path))[1])
    monkeypatch.setattr(builtins, "open", lambda file, *a, **k: (refuse(file) if isinstance(file, (str, os.PathLike))
                                                                 else None, real_open(file, *a, **k))[1])
    monkeypatch.setattr(os, "open", lambda path, *a, real=os.open, **k: (refuse(path), real(path, *a, **k))[1])
    monkeypatch.setattr(pathlib.Path, "read_bytes", lambda self: (refuse(self), real_read_bytes(self))[1])

    def make(path: Path) -> Path:
        denied.append(str(path))
        if os.geteuid() != 0:
            path.chmod(0)
        return path

    yield make


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    (root / "open").mkdir(parents=True)
    (root / "shut").mkdir()
    (root / "open" / "a.jsonl").write_text("".join(record(i) for i in range(20)), encoding="utf-8")
    (root / "shut" / "b.jsonl").write_text("".join(record(i) for i in range(20, 40)), encoding="utf-8")
    return root


def test_an_unreadable_folder_is_an_error_or_skipped_and_counted(data, deny):
    deny(data / "shut")
    with pytest.raises(DataError, match=r"shut.*unreadable folder"):
        read_dialogues(data)
    result = read_dialogues(data, skip_invalid=True)
    assert len(result.dialogues) == 20 and result.skipped == {"unreadable folder": 1}
    assert any("unreadable folder" in p for p in result.passed_over)


def test_an_unreadable_file_is_an_error_or_skipped_and_counted(data, deny):
    deny(data / "shut" / "b.jsonl")
    with pytest.raises(DataError, match=r"b.jsonl.*unreadable file"):
        read_dialogues(data)
    result = read_dialogues(data, skip_invalid=True)
    assert len(result.dialogues) == 20 and result.skipped == {"unreadable file": 1}


@pytest.mark.slow
@pytest.mark.parametrize("subcommand", ["preprocess", "fit"])
def test_fit_and_preprocess_refuse_an_unreadable_folder_as_the_reader_does(make_config, data, deny, subcommand):
    deny(data / "shut")
    config = make_config(**{"data.paths": [str(data)], "trainer.max_steps": 1})
    with pytest.raises(DataError, match=r"(?s)shut: unreadable folder.*skip_invalid"):
        run_cli(subcommand, "--config", str(config))


def test_fit_setup_with_skip_invalid_warns_and_counts(make_config, data, deny, tmp_path, caplog):
    from diary_lightning.training.datamodule import DiaryDataModule

    deny(data / "shut" / "b.jsonl")
    dm = DiaryDataModule(paths=[str(data)], tokenizer=str(make_config().parent / "unused"), skip_invalid=True)
    with caplog.at_level("WARNING"):
        result = dm._read(dm.hparams.paths, require_summary=True, progress=False)
    assert len(result.dialogues) == 20 and result.skipped["unreadable file"] == 1
    assert "b.jsonl" in caplog.text and "skip_invalid" in caplog.text

"""Files and folders written whole or not at all: a failure mid-write leaves the old version and no temporary."""

from __future__ import annotations

from pathlib import Path

import pytest

from diary_lightning.io.atomic import atomic_directory, atomic_file, write_text


class _DiskFull(RuntimeError):
    pass


def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_text(path, "old\n")
    with pytest.raises(_DiskFull):
        with atomic_file(path, "w", encoding="utf-8") as f:
            f.write("new, half")
            f.flush()
            assert path.read_text() == "old\n"  # the new text goes elsewhere until it is complete
            raise _DiskFull
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]

    with atomic_file(path, "wb", fsync=True) as f:
        f.write(b"new\n")
    assert path.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_folder_that_fails_midway_keeps_the_old_folder_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("old")
    with pytest.raises(_DiskFull):
        with atomic_directory(target) as tmp:
            (tmp / "weights").write_text("new")
            raise _DiskFull
    assert [p.name for p in target.iterdir()] == ["weights"] and (target / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]

    with atomic_directory(target) as tmp:
        (tmp / "other").write_text("new")
    assert [p.name for p in target.iterdir()] == ["other"]  # replaced whole, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]


def test_keep_existing_keeps_the_folder_another_process_finished_first(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    with atomic_directory(target, keep_existing=True) as tmp:
        (tmp / "report.json").write_text("mine")
        with atomic_directory(target) as theirs:  # finished while this one was still writing
            (theirs / "report.json").write_text("theirs")
    assert (target / "report.json").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_and_folders_follow_the_umask(tmp_path: Path, mask: int) -> None:
    import os

    old = os.umask(mask)
    try:
        write_text(tmp_path / "file.json", "{}")
        with atomic_directory(tmp_path / "folder") as tmp:
            (tmp / "weights").write_text("w")
        (tmp_path / "plain").write_text("")
        os.mkdir(tmp_path / "plain-dir")
    finally:
        os.umask(old)
    assert (tmp_path / "file.json").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "folder").stat().st_mode & 0o777 == (tmp_path / "plain-dir").stat().st_mode & 0o777 == 0o777 & ~mask

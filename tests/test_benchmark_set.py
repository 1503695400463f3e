"""The benchmark shipped in the package (resources/benchmark, docs/benchmark.md) is a sound yardstick: its schema,
its size, and items whose references, facts and traps agree with each other and with their chats."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from diary_lightning.evaluation.benchmark import (
    EXPORT_SETTING,
    benchmark_files,
    benchmark_root,
    content_problems,
    datasheet_tables,
    load_benchmark,
)


@pytest.fixture(scope="module")
def items():
    return load_benchmark()  # a schema problem anywhere fails here, naming every one


def test_the_set_is_as_large_as_its_datasheet_says(items):
    chats = [item for item in items if item.setting != EXPORT_SETTING]
    splits = Counter(item.split for item in chats)
    exports = {item.export for item in items if item.setting == EXPORT_SETTING}
    assert len(chats) >= 240, f"{len(chats)} chat items"
    assert splits["test"] >= 180 and splits["dev"] >= 60, splits
    assert len(exports) >= 20, f"{len(exports)} raw exports"


def test_every_setting_and_split_is_there(items):
    assert {item.setting for item in items} == {"bot", "kakao_1on1", "kakao_group", "kakao_export"}
    for setting in ("bot", "kakao_1on1", "kakao_group", "kakao_export"):
        assert {item.split for item in items if item.setting == setting} == {"dev", "test"}, setting


def test_references_facts_and_traps_agree_with_their_chats(items):
    # Every reference passes the style checks and recalls every fact; every fact's keys are in the dialogue;
    # every trap's own claim falls into it and the reference does not.
    problems = content_problems(items)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


def test_every_raw_export_is_an_item_and_ships_with_the_package(items):
    root = benchmark_root()
    files = {p.relative_to(root).as_posix() for p in root.rglob("*.txt")}
    assert files == {item.export_file for item in items if item.export_file}
    # package-data ships the folder with its subfolders (pyproject.toml: resources/**/*).
    assert Path(__file__).resolve().parents[1].joinpath("pyproject.toml").read_text().count('"resources/**/*"') == 1
    assert benchmark_files()  # the item files are found where the installed package keeps them


def test_the_datasheets_tables_are_those_of_the_files(items):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "benchmark.md").read_text(encoding="utf-8")
    block = doc.split("<!-- datasheet:start -->\n", 1)[1].split("\n<!-- datasheet:end -->", 1)[0]
    assert block == datasheet_tables(items), "run: python scripts/benchmarks/benchmark_datasheet.py --write docs/benchmark.md"

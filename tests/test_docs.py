"""What the documentation names exists: every dotted ``diary_lightning.x.y`` imports (a module, or a name in one),
and every file path of the project it names is there. A rename that forgets a doc line fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from conftest import ROOT

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "scripts").glob("*/README.md")])
# The package's own text counts too: its messages and chat template point users at functions.
SOURCES = DOCS + sorted((ROOT / "diary_lightning").rglob("*.py"))
DOTTED = re.compile(r"(?<![\w/.-])diary_lightning(?:\.[A-Za-z_]\w*)+")
# Files that share the package's name: diary_lightning.json in an adapter folder, the run folder's lock.
FILE_SUFFIXES = {"json", "lock", "yaml", "jsonl", "txt", "py", "md"}
PATH = re.compile(r"(?<![\w/.-])((?:diary_lightning|scripts|tests|configs|docs)/[\w./-]*\w)")


def dotted_names() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for source in SOURCES:
        for name in DOTTED.findall(source.read_text(encoding="utf-8")):
            if name.rsplit(".", 1)[-1] not in FILE_SUFFIXES:
                found.setdefault(name, []).append(str(source.relative_to(ROOT)))
    return found


def resolves(name: str) -> bool:
    """``name`` is a module, or an attribute chain off the longest importable module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        try:
            for attribute in parts[cut:]:
                target = getattr(target, attribute)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("name", sorted(dotted_names()))
def test_every_dotted_name_in_the_docs_imports(name: str) -> None:
    assert resolves(name), f"{name} (named in {', '.join(sorted(set(dotted_names()[name])))}) does not import"


def test_the_check_catches_a_name_that_moved() -> None:
    assert resolves("diary_lightning.data.encoding.render_chat")
    assert not resolves("diary_lightning.data.prompts.render_chat")
    assert not resolves("diary_lightning.no_such_module")


def test_every_project_path_in_the_docs_exists() -> None:
    missing = []
    for doc in DOCS:
        for path in PATH.findall(doc.read_text(encoding="utf-8")):
            # Glob patterns and placeholders (`tests/test_x.py`, `docs/*.png`) name no one file.
            if any(mark in path for mark in "*{}<>") or path.endswith("/..."):
                continue
            if not (ROOT / path).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing, missing

"""The layout is the architecture: what each subpackage may import, and no module importing itself round a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, subprocess_env

PACKAGE = ROOT / "diary_lightning"
# Read, trained on, scored and served without Lightning: a service imports these alone.
PLAIN = ("data", "model", "inference", "evaluation", "io")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known and name != "diary_lightning"}


def test_the_import_graph_has_no_cycle() -> None:
    known = set(modules())
    graph = {name: imports_of(path, known) - {name} for name, path in modules().items()}
    # Parent packages import nothing, so an edge to a package's __init__ is not a way round.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle = stack[stack.index(other):] + [other]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_package_top_level_is_short() -> None:
    entries = [p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"]
    assert len(entries) <= 12, sorted(entries)


@pytest.mark.parametrize("package", PLAIN)
def test_plain_packages_import_no_lightning(package: str) -> None:
    names = sorted(name for name in modules() if name == f"diary_lightning.{package}"
                   or name.startswith(f"diary_lightning.{package}."))
    code = ("import importlib, sys\n"
            "for blocked in ('lightning', 'pytorch_lightning'): sys.modules[blocked] = None\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "print('imported', len(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_plain_packages_import_nothing_of_the_lightning_half() -> None:
    lightning_half = ("diary_lightning.training", "diary_lightning.cli", "diary_lightning.synthesis")
    known = set(modules())
    for name, path in modules().items():
        if name.split(".")[1:2] and name.split(".")[1] in PLAIN:
            bad = sorted(m for m in imports_of(path, known) if m.startswith(lightning_half))
            assert not bad, f"{name} imports {bad}"


def test_the_package_ignores_the_test_fault_switch() -> None:
    # The fault injector lives in tests/faults.py; a stray value in a user's environment changes nothing.
    code = "import diary_lightning.cli.commands, diary_lightning.io.atomic as a; assert a.fault_hook is None"
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(DIARY_LIGHTNING_KILL_AT="bogus"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

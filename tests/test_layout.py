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


LIGHTNING = ("lightning", "pytorch_lightning", "lightning_fabric")


def lightning_imports(path: Path) -> list[str]:
    """Every import of Lightning in ``path``, at the top or inside a function (which runs only when called),
    and ``importlib.import_module("lightning...")`` with a literal name, as ``line: name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__")):
            names = [node.args[0].value]
        found += [f"{node.lineno}: {name}" for name in names if name.split(".")[0] in LIGHTNING]
    return found


def plain_modules() -> dict[str, Path]:
    return {name: path for name, path in modules().items() if name.split(".")[1:2] and name.split(".")[1] in PLAIN}


def test_plain_packages_import_no_lightning_even_when_called() -> None:
    # A lazy import inside a function passes an import-time check and fails a service the first time it calls it.
    bad = {name: found for name, path in plain_modules().items() if (found := lightning_imports(path))}
    assert not bad, f"Lightning imported by the Lightning-free packages: {bad}"


def test_the_call_time_check_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("import torch\n\ndef log(x):\n    from lightning.pytorch.loggers import TensorBoardLogger\n"
                      "    return importlib.import_module('lightning_fabric')\n")
    assert lightning_imports(module) == ["4: lightning.pytorch.loggers", "5: lightning_fabric"]


@pytest.mark.slow
def test_plain_packages_import_no_lightning() -> None:
    # What the static check cannot see: Lightning pulled in through a third-party import. One interpreter for
    # all of them, each module imported with Lightning made unimportable.
    code = ("import importlib, sys\n"
            "for blocked in ('lightning', 'pytorch_lightning', 'lightning_fabric'): sys.modules[blocked] = None\n"
            f"for name in {sorted(plain_modules())!r}: importlib.import_module(name)\n")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_plain_packages_import_nothing_of_the_lightning_half() -> None:
    lightning_half = ("diary_lightning.training", "diary_lightning.cli", "diary_lightning.synthesis")
    known = set(modules())
    for name, path in plain_modules().items():
        bad = sorted(m for m in imports_of(path, known) if m.startswith(lightning_half))
        assert not bad, f"{name} imports {bad}"

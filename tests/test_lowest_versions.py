"""CI's second pass runs against the lowest versions pyproject.toml allows: the pins in .ci/run are those bounds,
and that pass really imports them."""

from __future__ import annotations

import importlib.metadata
import os
import re

import pytest
from conftest import ROOT

CHECKED = ("lightning", "transformers", "peft", "bitsandbytes")


def lower_bounds() -> dict[str, str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return {name: bound for name, bound in re.findall(r'"([a-z]+)>=([0-9.]+),<[0-9.]+"', text) if name in CHECKED}


def test_ci_installs_exactly_the_lower_bounds() -> None:
    bounds = lower_bounds()
    assert sorted(bounds) == sorted(CHECKED)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert {name: pin for name, pin in re.findall(r"\b([a-z]+)==([0-9.]+)", ci) if name in CHECKED} == bounds


@pytest.mark.skipif(".ci-lowest" not in os.environ.get("PYTHONPATH", ""), reason="only in CI's lowest-versions pass")
def test_the_lowest_versions_are_the_ones_imported() -> None:
    import lightning
    import peft
    import transformers

    imported = {"lightning": lightning.__version__, "transformers": transformers.__version__,
                "peft": peft.__version__, "bitsandbytes": importlib.metadata.version("bitsandbytes")}
    assert imported == lower_bounds()

"""The damage suite (tests/damage_cases.py), one test per case, each named by its case: a damaged input or a
hostile run handled as its kind says (error, skip, read, kept, refuse, message, safe). The cases that start the
program or talk to the test chat server (outputs over inputs, a resumed predict on other data, the lock race,
the OpenAI teacher's failures) are marked slow."""

from __future__ import annotations

from pathlib import Path

import damage_cases
import pytest


def as_param(item: damage_cases.Case) -> object:
    marks = [pytest.mark.slow] if damage_cases.starts_the_program(item) else []
    return pytest.param(item, id=item.name, marks=marks)


@pytest.fixture(scope="session")
def damage_inputs(tmp_path_factory: pytest.TempPathFactory) -> None:
    damage_cases.prepare(tmp_path_factory.mktemp("damage"))


def test_every_case_has_its_own_name() -> None:
    names = [item.name for item in damage_cases.CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    # A prefix in damage_cases.SLOW that caught too much would empty the fast lane: four in five cases stay in it.
    assert sum(not damage_cases.starts_the_program(item) for item in damage_cases.CASES) >= 0.8 * len(names)


@pytest.mark.parametrize("item", [as_param(item) for item in damage_cases.CASES])
def test_damage_case_is_handled(item: damage_cases.Case, damage_inputs: None, tmp_path: Path,
                                request: pytest.FixtureRequest) -> None:
    if damage_cases.starts_the_program(item):
        damage_cases.Inputs.model_dir = request.getfixturevalue("tiny_model_dir")
    ok, note = item.run(tmp_path)
    assert ok, f"[{item.kind}] {item.name}: {note}"

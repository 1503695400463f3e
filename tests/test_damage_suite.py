"""The damage suite (scripts/damage_inputs.py): its fast part, every case handled. The cases that start the program
(outputs over inputs, a resumed predict on other data, the lock race) run with ``python scripts/damage_inputs.py``."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT, subprocess_env


def test_every_fast_case_of_the_damage_suite_is_handled():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "damage_inputs.py"), "--fast"], env=subprocess_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert not failed, "\n".join(failed)
    passed, total = map(int, re.search(r"handled correctly: (\d+) of (\d+)", result.stdout).groups())
    assert passed == total >= 90
